"""Grafana dashboards: one per SLO, and one overview across all of them.

Dashboards are built as data with the typed grafana-foundation-sdk (pinned), never from text
templates, so a panel cannot drift from the schema Grafana loads. They read only the series
sloplane records (`sloplane.core.names`) with the subject's labels, plus `ALERTS` and the
declared deployment signal: what a dashboard shows is what the alerts and gates compute, and a
dashboard never re-derives an SLI from raw metrics.

A staged SLO gets a `stage` variable (default: the production stage) and every query filters on
it; an unstaged one has neither. All panels use a `datasource` variable of type prometheus, so one
JSON file works against any Prometheus-compatible data source.

Archived SLOs render no recording rules, so their dashboards would be empty: callers skip them
(`dashboard` itself renders whatever it is given; `overview` leaves them out of its links).

This module holds the per-SLO dashboard and the renderer's registry entry (`RENDERER`). The SDK
builders both dashboards share are in `sloplane.render.grafana_panels`, and the overview is in
`sloplane.render.grafana_overview`, re-exported here as `overview`: callers keep importing the
dashboards from this module, and neither of those modules imports this one (no cycle).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from sloplane.core import names
from sloplane.core.budget import Tier
from sloplane.core.durations import format_duration
from sloplane.core.serialize import to_json
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import TargetSystem
from sloplane.render import kubernetes
from sloplane.render.grafana_overview import overview
from sloplane.render.grafana_panels import (
    ALERT_HEIGHT,
    ALERTS_ID,
    BUDGET_ID,
    BUDGET_SERIES_ID,
    BUDGET_STEPS,
    BURN_HEIGHT,
    BURN_RATE_ID,
    BURN_SERIES_ID,
    DASHED,
    EVENTS_ID,
    GRID_WIDTH,
    OBJECTIVE_ID,
    SERIES_HEIGHT,
    SLI_ID,
    SLI_SERIES_ID,
    STAGE_VARIABLE,
    STAT_HEIGHT,
    TAG,
    PrometheusAnnotation,
    Ready,
    Scope,
    base_url,
    burn_steps,
    columns,
    datasource,
    datasource_variable,
    encode,
    override,
    percent_decimals,
    prometheus_query,
    ref_id,
    series_panel,
    stat_panel,
    thresholds_config,
)
from sloplane.render.options import BundleOptions, RenderOptions
from sloplane.render.registry import Child, Document, Renderer
from sloplane.semantics.alerts import alert_names, alertname_matchers
from sloplane.semantics.indicators import subject_indicator
from sloplane.semantics.recording import own_windows, recorded_windows
from sloplane.semantics.subjects import Fleet, FleetLike, production_subject, subjects

__all__ = ["RENDERER", "dashboard", "dashboard_model", "overview"]
"""`overview` lives in `grafana_overview`; it is re-exported so `grafana.overview(...)` keeps working."""


def _scope(declaration: Declaration) -> Scope:
    labels = {"slo": declaration.name, "service": declaration.spec.service}
    return Scope(labels=tuple(sorted(labels.items())), staged=bool(declaration.spec.stages))


def _windows(declaration: Declaration, fleet: FleetLike) -> tuple[timedelta, ...]:
    """Windows with recorded series for this SLO, exactly as the Prometheus renderer chooses them."""
    return recorded_windows(fleet).get(declaration.name) or tuple(sorted(own_windows(declaration)))


def _counts_events(declaration: Declaration) -> bool:
    """Whether `sloplane:events:period` is recorded: event-based SLIs only (not composite, raw, threshold)."""
    spec = declaration.spec
    if spec.sli.composite is not None:
        return False
    queries = subject_indicator(spec, production_subject(declaration)).queries
    return queries is not None and queries.total is not None


def _burn_rate_thresholds(declaration: Declaration) -> list[tuple[float, Tier]]:
    """Burn-rate factors of the enabled alert tiers, ascending; a factor two tiers share is the louder's."""
    spec = declaration.spec
    tiers = set(spec.alerting.enabled_tiers())
    loudest: dict[float, Tier] = {}
    for alert in spec.burn_rate_alerts():
        if alert.tier in tiers and loudest.get(alert.factor) is not Tier.PAGE:
            loudest[alert.factor] = alert.tier
    return sorted(loudest.items())


def _stats(declaration: Declaration, scope: Scope) -> list[stat.Panel]:
    """The top row: objective, SLI over the period, budget left, current burn, and events when counted."""
    spec = declaration.spec
    period = format_duration(spec.window.period)
    decimals = percent_decimals(subject.objective for subject in subjects(declaration))
    counts = _counts_events(declaration)
    positions = iter(columns(5 if counts else 4, 0, STAT_HEIGHT))
    panels = [
        stat_panel(
            OBJECTIVE_ID,
            "Objective",
            f"The share of good events promised over {spec.window.describe()}.",
            scope.series(names.OBJECTIVE),
            unit="percentunit",
            position=next(positions),
        )
        .decimals(decimals)
        .color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE),
        stat_panel(
            SLI_ID,
            f"SLI over {period}",
            "What was delivered over the period: 1 minus the error ratio the budget is charged with.",
            f"1 - {scope.series(names.ERROR_RATIO_PERIOD)}",
            unit="percentunit",
            position=next(positions),
        )
        .decimals(decimals + 1)
        .color_mode(common.BigValueColorMode.NONE),
        stat_panel(
            BUDGET_ID,
            "Error budget remaining",
            "Share of the period's error budget left: 100% untouched, 0% spent, negative overspent.",
            scope.series(names.BUDGET_REMAINING),
            unit="percentunit",
            position=next(positions),
        )
        .decimals(1)
        .thresholds(thresholds_config(BUDGET_STEPS))
        .color_mode(common.BigValueColorMode.BACKGROUND),
        stat_panel(
            BURN_RATE_ID,
            "Burn rate (now)",
            "How many times faster than sustainable the budget is spent over the shortest window; "
            "1 empties it in exactly one period. Colours mark the burn-rate alert thresholds.",
            scope.series(names.BURN_RATE_CURRENT),
            unit="none",
            position=next(positions),
        )
        .decimals(2)
        .thresholds(thresholds_config(burn_steps(_burn_rate_thresholds(declaration)))),
    ]
    if counts:
        panels.append(
            stat_panel(
                EVENTS_ID,
                f"Events in {period}",
                "Events counted over the period: a budget over few events moves in large steps.",
                scope.series(names.EVENTS_PERIOD),
                unit="short",
                position=next(positions),
            )
            .decimals(0)
            .color_mode(common.BigValueColorMode.NONE)
        )
    return panels


def _sli_panel(declaration: Declaration, scope: Scope, base: timedelta, interval: str) -> timeseries.Panel:
    """The SLI at the shortest recorded window against the objective: where budget is being spent now."""
    window = format_duration(base)
    decimals = percent_decimals(subject.objective for subject in subjects(declaration)) + 1
    left, _ = columns(2, STAT_HEIGHT, SERIES_HEIGHT)
    objective, colour = override("objective", DASHED, ("color", {"mode": "fixed", "fixedColor": "red"}))
    return (
        series_panel(
            SLI_SERIES_ID,
            f"SLI ({window}) vs objective",
            f"1 minus the error ratio over {window}; dips under the dashed objective line spend budget.",
            left,
            interval,
        )
        .with_target(
            prometheus_query(f"1 - {scope.series(names.windowed(names.ERROR_RATIO, base))}", "A", f"SLI ({window})")
        )
        .with_target(prometheus_query(scope.series(names.OBJECTIVE), "B", "objective"))
        .unit("percentunit")
        .decimals(decimals)
        .override_by_name(objective, colour)
    )


def _budget_panel(scope: Scope, interval: str) -> timeseries.Panel:
    """Budget remaining over time: the slope is the burn, the level is what is left to deploy with."""
    _, right = columns(2, STAT_HEIGHT, SERIES_HEIGHT)
    return (
        series_panel(
            BUDGET_SERIES_ID,
            "Error budget remaining",
            "Share of the period's error budget left. Orange: last quarter; red: overspent.",
            right,
            interval,
        )
        .with_target(prometheus_query(scope.series(names.BUDGET_REMAINING), "A", "budget remaining"))
        .unit("percentunit")
        .decimals(1)
        .thresholds(thresholds_config(BUDGET_STEPS))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED_AND_AREA)
        )
    )


def _alert_windows(declaration: Declaration, recorded: Iterable[timedelta]) -> tuple[list[timedelta], set[timedelta]]:
    """Every window a burn-rate alert reads that has recorded series, and which of them are long."""
    alerts = declaration.spec.burn_rate_alerts()
    longs = {alert.long_window for alert in alerts}
    shorts = {alert.short_window for alert in alerts}
    return sorted((longs | shorts) & set(recorded)), longs


def _burn_rate_panel(
    declaration: Declaration, recorded: Iterable[timedelta], scope: Scope, interval: str
) -> timeseries.Panel:
    """Burn rate per alert window with the alert thresholds: an alert fires when a long window and its
    short window are both over the same line."""
    windows, longs = _alert_windows(declaration, recorded)
    thresholds = _burn_rate_thresholds(declaration)
    budget = scope.series(names.ERROR_BUDGET)
    panel = (
        series_panel(
            BURN_SERIES_ID,
            "Burn rate per alert window",
            "Error ratio over each alert window divided by the error budget. Dashed lines are the "
            "thresholds (red: page, orange: ticket); dashed series are the short windows that let alerts reset.",
            models.GridPos(h=BURN_HEIGHT, w=GRID_WIDTH, x=0, y=STAT_HEIGHT + SERIES_HEIGHT),
            interval,
        )
        .unit("none")
        .decimals(2)
        .thresholds(thresholds_config(burn_steps(thresholds)))
        .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
    )
    if thresholds:
        panel = panel.axis_soft_max(max(factor for factor, _ in thresholds))
    for index, window in enumerate(windows):
        legend = format_duration(window)
        ratio = scope.series(names.windowed(names.ERROR_RATIO, window))
        panel = panel.with_target(prometheus_query(f"{ratio} / {budget}", ref_id(index), legend))
        if window not in longs:
            panel = panel.override_by_name(*override(legend, DASHED))
    return panel


def _firing(declaration: Declaration, scope: Scope) -> str:
    by_name, extra = alertname_matchers(alert_names([declaration]))
    return f"ALERTS{scope.matchers(extra, alertstate='firing', **by_name)}"


def _alerts_panel(declaration: Declaration, scope: Scope, interval: str) -> statetimeline.Panel:
    """Which burn-rate alerts fired when, one row per window pair (and rollout cause when split)."""
    labels = ["severity", "long_window", "short_window"]
    legend = "{{severity}} {{long_window}}/{{short_window}}"
    if declaration.spec.alerting.deployment_signal is not None:
        labels.append("during_deployment")
        legend += " (during rollout: {{during_deployment}})"
    expr = f"max by ({', '.join(labels)}) ({_firing(declaration, scope)})"
    return (
        statetimeline.Panel()
        .id(ALERTS_ID)
        .title("Burn-rate alerts")
        .description(
            f"{' / '.join(alert_names([declaration]))} alerts firing for this SLO, by severity and window pair."
        )
        .datasource(datasource())
        .grid_pos(models.GridPos(h=ALERT_HEIGHT, w=GRID_WIDTH, x=0, y=STAT_HEIGHT + SERIES_HEIGHT + BURN_HEIGHT))
        .interval(interval)
        .with_target(prometheus_query(expr, "A", legend))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .mappings([models.ValueMap(options={"1": models.ValueMappingResult(text="firing", color="red", index=0)})])
    )


def _annotations(declaration: Declaration, scope: Scope) -> list[Builder[models.AnnotationQuery]]:
    """Burn-rate alerts firing, and rollouts in progress when the SLO declares a deployment signal."""
    annotations = [
        PrometheusAnnotation(
            "Burn-rate alerts",
            _firing(declaration, scope),
            "red",
            "{{severity}} burn over {{long_window}}/{{short_window}}",
            "severity,long_window,short_window",
        )
    ]
    signal = declaration.spec.alerting.deployment_signal
    if signal is not None:
        annotations.append(PrometheusAnnotation("Deployments", f"({signal}) > 0", "blue", "Rollout in progress"))
    return [Ready[models.AnnotationQuery](annotation) for annotation in annotations]


def _stage_variable(declaration: Declaration) -> builders.CustomVariable:
    """Stage picker, on the production stage by default: the budget that gates releases."""
    spec = declaration.spec
    production = spec.production_stage
    assert production is not None
    stages = [stage.name for stage in spec.stages]
    return (
        builders.CustomVariable(STAGE_VARIABLE)
        .label("Stage")
        .values(",".join(stages))
        .current(models.VariableOption(selected=True, text=production.name, value=production.name))
        .options([models.VariableOption(selected=name == production.name, text=name, value=name) for name in stages])
    )


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _slo_links(declaration: Declaration, options: RenderOptions) -> list[Builder[models.DashboardLink]]:
    links: list[Builder[models.DashboardLink]] = [
        builders.DashboardLink("SLO overview")
        .type(models.DashboardLinkType.LINK)
        .icon("dashboard")
        .url(f"{base_url(options)}/d/{names.OVERVIEW_UID}")
        .keep_time(True)
    ]
    runbook = declaration.spec.alerting.runbook
    if runbook:
        link = builders.DashboardLink("Runbook").type(models.DashboardLinkType.LINK).icon("doc").url(str(runbook))
        links.append(link.target_blank(True))
    return links


def _description(declaration: Declaration) -> str:
    spec = declaration.spec
    summary = f"{spec.objective:g}% over {spec.window.describe()}, owned by {spec.owners.team}."
    return f"{spec.description} {summary}" if spec.description else summary


def dashboard(declaration: Declaration, fleet: FleetLike, options: RenderOptions | None = None) -> dict[str, Any]:
    """The dashboard of one SLO as Grafana dashboard JSON data (see `dashboard_model`)."""
    return encode(dashboard_model(declaration, fleet, options))


def dashboard_model(
    declaration: Declaration, fleet: FleetLike, options: RenderOptions | None = None
) -> models.Dashboard:
    """The dashboard of one SLO as the SDK's typed model (uid from `names.dashboard_uid`).

    Stats, SLI against the objective, budget remaining, burn rate per alert window with its
    thresholds, alert state, and annotations for firing alerts and rollouts. Archived SLOs are
    rendered like any other: the caller skips them, as their series are no longer recorded.
    """
    options = options or RenderOptions()
    spec = declaration.spec
    scope = _scope(declaration)
    interval = format_duration(spec.interval)
    windows = _windows(declaration, fleet)
    builder = (
        builders.Dashboard(declaration.name)
        .uid(names.dashboard_uid(declaration.name))
        .description(_description(declaration))
        .tags(_unique([TAG, spec.service, spec.owners.team, spec.tier.value]))
        .time(f"now-{format_duration(spec.window.period)}", "now")
        .refresh(interval)
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable())
        .annotations(_annotations(declaration, scope))
        .links(_slo_links(declaration, options))
    )
    if scope.staged:
        builder = builder.with_variable(_stage_variable(declaration))
    panels: list[Builder[models.Panel]] = [
        *_stats(declaration, scope),
        _sli_panel(declaration, scope, min(windows), interval),
        _budget_panel(scope, interval),
        _burn_rate_panel(declaration, windows, scope, interval),
        _alerts_panel(declaration, scope, interval),
    ]
    for panel in panels:
        builder = builder.with_panel(panel)
    return builder.build()


def _documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    return {f"grafana/{declaration.name}.json": ("json", dashboard_model(declaration, fleet, options.render))}


def _overview_documents(charted: Sequence[Declaration], fleet: Fleet, options: BundleOptions) -> dict[str, Document]:
    """The overview is written even when no SLO is charted: an empty table says so."""
    return {"grafana/overview.json": ("json", overview(charted, fleet, options.render))}


def _children(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> list[Child]:
    """The dashboard as a ConfigMap the Grafana sidecar loads."""
    name = declaration.name
    json_text = to_json(dashboard(declaration, fleet, options.render))
    config = kubernetes.dashboard_config_map(
        kubernetes.dashboard_config_map_name(name), f"{name}.json", json_text, options.kubernetes, slo=name
    )
    return [Child("dashboard", "dashboard", "config-map", config)]


def _overview_children(charted: Sequence[Declaration], fleet: Fleet, options: BundleOptions) -> list[Child]:
    json_text = to_json(overview(charted, fleet, options.render))
    config = kubernetes.dashboard_config_map(
        kubernetes.dashboard_config_map_name(None), "sloplane-overview.json", json_text, options.kubernetes
    )
    return [Child("overview", "overview", "config-map", config)]


RENDERER = Renderer(
    TargetSystem.GRAFANA,
    folders=("grafana",),
    slo_documents=_documents,
    fleet_documents=_overview_documents,
    child_keys=("dashboard",),
    slo_children=_children,
    fleet_children=_overview_children,
)
