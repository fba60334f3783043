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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import orjson
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from sloplane.core import names
from sloplane.core.budget import WORKBOOK_PERIOD, Tier, burn_rate_alerts
from sloplane.core.durations import format_duration
from sloplane.core.serialize import to_json
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.policy import TargetSystem
from sloplane.render import kubernetes
from sloplane.render.options import BundleOptions, RenderOptions
from sloplane.render.registry import Child, Document, Renderer
from sloplane.semantics.indicators import subject_indicator
from sloplane.semantics.promql import promql_matchers
from sloplane.semantics.recording import own_windows, recorded_windows
from sloplane.semantics.subjects import Fleet, FleetLike, production_subject, subjects

T = TypeVar("T")

DATASOURCE_VARIABLE = "datasource"
STAGE_VARIABLE = "stage"
TEAM_VARIABLE = "team"
SERVICE_VARIABLE = "service"
TAG = "sloplane"
"""Every sloplane dashboard carries it; the overview's dashboard menu lists dashboards by it."""

GRID_WIDTH = 24
STAT_HEIGHT = 4
SERIES_HEIGHT = 8
BURN_HEIGHT = 9
ALERT_HEIGHT = 6
TABLE_HEIGHT = 12

BUDGET_STEPS: tuple[tuple[float | None, str], ...] = ((None, "red"), (0.0, "orange"), (0.25, "green"))
"""Budget remaining: red once overspent, orange in its last quarter, green otherwise."""
TIER_COLOURS = {Tier.PAGE: "red", Tier.TICKET: "orange"}
BELOW_THRESHOLDS = "green"
DASHED = ("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})
"""Field override for lines that are references rather than measurements (objective, short windows)."""

# Panel ids are fixed per role, so a panel keeps its id (and links to it keep working) whatever
# else the SLI kind adds or leaves out.
OBJECTIVE_ID = 1
SLI_ID = 2
BUDGET_ID = 3
BURN_RATE_ID = 4
EVENTS_ID = 5
SLI_SERIES_ID = 6
BUDGET_SERIES_ID = 7
BURN_SERIES_ID = 8
ALERTS_ID = 9
TABLE_ID = 1
BUDGET_OVERVIEW_ID = 2


class _Ready(Builder[T]):
    """A model already built, for SDK methods that only take builders."""

    def __init__(self, model: T) -> None:
        self._model = model

    def build(self) -> T:
        return self._model


class _PrometheusAnnotation(models.AnnotationQuery):
    """The SDK's annotation model lacks the Prometheus data source's title and tag options."""

    def __init__(self, name: str, expr: str, colour: str, title_format: str, tag_keys: str = "") -> None:
        super().__init__(name=name, datasource=_datasource(), enable=True, icon_color=colour, expr=expr)
        self.title_format = title_format
        self.tag_keys = tag_keys

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload["titleFormat"] = self.title_format
        payload["tagKeys"] = self.tag_keys
        payload["useValueForTime"] = False
        return payload


@dataclass(frozen=True)
class _Scope:
    """How a dashboard's queries select its subject: fixed labels, plus `stage="$stage"` when staged."""

    labels: tuple[tuple[str, str], ...]
    staged: bool

    def matchers(self, **extra_labels: str) -> str:
        extra = (f'stage="${STAGE_VARIABLE}"',) if self.staged else ()
        return promql_matchers({**dict(self.labels), **extra_labels}, extra)

    def series(self, name: str) -> str:
        return f"{name}{self.matchers()}"


def _datasource() -> models.DataSourceRef:
    return models.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")


def _to_json(model: Any) -> Any:
    """What the SDK's own JSONEncoder does: each model knows its JSON form."""
    return model.to_json()


def _encode(model: models.Dashboard) -> dict[str, Any]:
    """The SDK's models as plain JSON data (orjson: the stdlib encoder is most of a render's time)."""
    encoded: dict[str, Any] = orjson.loads(orjson.dumps(model, default=_to_json))
    return encoded


def _query(expr: str, ref: str, legend: str | None = None, *, table_format: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(_datasource())
    if legend is not None:
        query = query.legend_format(legend)
    if table_format:
        return query.instant().format(PromQueryFormat.TABLE)
    return query.range()


def _thresholds(steps: Iterable[tuple[float | None, str]]) -> builders.ThresholdsConfig:
    return (
        builders.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=value, color=colour) for value, colour in steps])
    )


def _columns(count: int, y: int, height: int) -> list[models.GridPos]:
    """`count` panels side by side across the full width; leftover columns widen the first ones."""
    width, extra = divmod(GRID_WIDTH, count)
    positions = []
    x = 0
    for index in range(count):
        w = width + (1 if index < extra else 0)
        positions.append(models.GridPos(h=height, w=w, x=x, y=y))
        x += w
    return positions


def _percent_decimals(objectives: Iterable[float]) -> int:
    """Decimals that print every objective exactly as a percentage (99.95 -> 2), at least one."""
    return max([1, *(len(f"{objective:g}".partition(".")[2]) for objective in objectives)])


def _override(name: str, *values: tuple[str, object]) -> tuple[str, list[models.DynamicConfigValue]]:
    return name, [models.DynamicConfigValue(id_val=key, value=value) for key, value in values]


# --- per-SLO dashboard --------------------------------------------------------------------------


def _scope(declaration: Declaration) -> _Scope:
    labels = {"slo": declaration.name, "service": declaration.spec.service}
    return _Scope(labels=tuple(sorted(labels.items())), staged=bool(declaration.spec.stages))


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
    for alert in burn_rate_alerts(spec.window.period):
        if alert.tier in tiers and loudest.get(alert.factor) is not Tier.PAGE:
            loudest[alert.factor] = alert.tier
    return sorted(loudest.items())


def _burn_steps(thresholds: Iterable[tuple[float, Tier]]) -> list[tuple[float | None, str]]:
    return [(None, BELOW_THRESHOLDS), *((factor, TIER_COLOURS[tier]) for factor, tier in thresholds)]


def _stat(panel_id: int, title: str, description: str, expr: str, *, unit: str, position: models.GridPos) -> stat.Panel:
    return (
        stat.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(_datasource())
        .grid_pos(position)
        .with_target(_query(expr, "A"))
        .unit(unit)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
    )


def _stats(declaration: Declaration, scope: _Scope) -> list[stat.Panel]:
    """The top row: objective, SLI over the period, budget left, current burn, and events when counted."""
    spec = declaration.spec
    period = format_duration(spec.window.period)
    decimals = _percent_decimals(subject.objective for subject in subjects(declaration))
    counts = _counts_events(declaration)
    positions = iter(_columns(5 if counts else 4, 0, STAT_HEIGHT))
    panels = [
        _stat(
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
        _stat(
            SLI_ID,
            f"SLI over {period}",
            "What was delivered over the period: 1 minus the error ratio the budget is charged with.",
            f"1 - {scope.series(names.ERROR_RATIO_PERIOD)}",
            unit="percentunit",
            position=next(positions),
        )
        .decimals(decimals + 1)
        .color_mode(common.BigValueColorMode.NONE),
        _stat(
            BUDGET_ID,
            "Error budget remaining",
            "Share of the period's error budget left: 100% untouched, 0% spent, negative overspent.",
            scope.series(names.BUDGET_REMAINING),
            unit="percentunit",
            position=next(positions),
        )
        .decimals(1)
        .thresholds(_thresholds(BUDGET_STEPS))
        .color_mode(common.BigValueColorMode.BACKGROUND),
        _stat(
            BURN_RATE_ID,
            "Burn rate (now)",
            "How many times faster than sustainable the budget is spent over the shortest window; "
            "1 empties it in exactly one period. Colours mark the burn-rate alert thresholds.",
            scope.series(names.BURN_RATE_CURRENT),
            unit="none",
            position=next(positions),
        )
        .decimals(2)
        .thresholds(_thresholds(_burn_steps(_burn_rate_thresholds(declaration)))),
    ]
    if counts:
        panels.append(
            _stat(
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


def _series(
    panel_id: int, title: str, description: str, position: models.GridPos, interval: str | None = None
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(_datasource())
        .grid_pos(position)
        .line_width(1)
        .fill_opacity(0)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )
    return panel if interval is None else panel.interval(interval)


def _sli_panel(declaration: Declaration, scope: _Scope, base: timedelta, interval: str) -> timeseries.Panel:
    """The SLI at the shortest recorded window against the objective: where budget is being spent now."""
    window = format_duration(base)
    decimals = _percent_decimals(subject.objective for subject in subjects(declaration)) + 1
    left, _ = _columns(2, STAT_HEIGHT, SERIES_HEIGHT)
    objective, colour = _override("objective", DASHED, ("color", {"mode": "fixed", "fixedColor": "red"}))
    return (
        _series(
            SLI_SERIES_ID,
            f"SLI ({window}) vs objective",
            f"1 minus the error ratio over {window}; dips under the dashed objective line spend budget.",
            left,
            interval,
        )
        .with_target(_query(f"1 - {scope.series(names.windowed(names.ERROR_RATIO, base))}", "A", f"SLI ({window})"))
        .with_target(_query(scope.series(names.OBJECTIVE), "B", "objective"))
        .unit("percentunit")
        .decimals(decimals)
        .override_by_name(objective, colour)
    )


def _budget_panel(scope: _Scope, interval: str) -> timeseries.Panel:
    """Budget remaining over time: the slope is the burn, the level is what is left to deploy with."""
    _, right = _columns(2, STAT_HEIGHT, SERIES_HEIGHT)
    return (
        _series(
            BUDGET_SERIES_ID,
            "Error budget remaining",
            "Share of the period's error budget left. Orange: last quarter; red: overspent.",
            right,
            interval,
        )
        .with_target(_query(scope.series(names.BUDGET_REMAINING), "A", "budget remaining"))
        .unit("percentunit")
        .decimals(1)
        .thresholds(_thresholds(BUDGET_STEPS))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED_AND_AREA)
        )
    )


def _alert_windows(declaration: Declaration, recorded: Iterable[timedelta]) -> tuple[list[timedelta], set[timedelta]]:
    """Every window a burn-rate alert reads that has recorded series, and which of them are long."""
    alerts = burn_rate_alerts(declaration.spec.window.period)
    longs = {alert.long_window for alert in alerts}
    shorts = {alert.short_window for alert in alerts}
    return sorted((longs | shorts) & set(recorded)), longs


def _burn_rate_panel(
    declaration: Declaration, recorded: Iterable[timedelta], scope: _Scope, interval: str
) -> timeseries.Panel:
    """Burn rate per alert window with the alert thresholds: an alert fires when a long window and its
    short window are both over the same line."""
    windows, longs = _alert_windows(declaration, recorded)
    thresholds = _burn_rate_thresholds(declaration)
    budget = scope.series(names.ERROR_BUDGET)
    panel = (
        _series(
            BURN_SERIES_ID,
            "Burn rate per alert window",
            "Error ratio over each alert window divided by the error budget. Dashed lines are the "
            "thresholds (red: page, orange: ticket); dashed series are the short windows that let alerts reset.",
            models.GridPos(h=BURN_HEIGHT, w=GRID_WIDTH, x=0, y=STAT_HEIGHT + SERIES_HEIGHT),
            interval,
        )
        .unit("none")
        .decimals(2)
        .thresholds(_thresholds(_burn_steps(thresholds)))
        .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
    )
    if thresholds:
        panel = panel.axis_soft_max(max(factor for factor, _ in thresholds))
    for index, window in enumerate(windows):
        legend = format_duration(window)
        ratio = scope.series(names.windowed(names.ERROR_RATIO, window))
        panel = panel.with_target(_query(f"{ratio} / {budget}", _ref(index), legend))
        if window not in longs:
            panel = panel.override_by_name(*_override(legend, DASHED))
    return panel


def _ref(index: int) -> str:
    """Query ref ids A, B, ... Z, AA, AB, ..."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _firing(scope: _Scope) -> str:
    return f"ALERTS{scope.matchers(alertname=names.ALERT, alertstate='firing')}"


def _alerts_panel(declaration: Declaration, scope: _Scope, interval: str) -> statetimeline.Panel:
    """Which burn-rate alerts fired when, one row per window pair (and rollout cause when split)."""
    labels = ["severity", "long_window", "short_window"]
    legend = "{{severity}} {{long_window}}/{{short_window}}"
    if declaration.spec.alerting.deployment_signal is not None:
        labels.append("during_deployment")
        legend += " (during rollout: {{during_deployment}})"
    expr = f"max by ({', '.join(labels)}) ({_firing(scope)})"
    return (
        statetimeline.Panel()
        .id(ALERTS_ID)
        .title("Burn-rate alerts")
        .description(f"{names.ALERT} alerts firing for this SLO, by severity and window pair.")
        .datasource(_datasource())
        .grid_pos(models.GridPos(h=ALERT_HEIGHT, w=GRID_WIDTH, x=0, y=STAT_HEIGHT + SERIES_HEIGHT + BURN_HEIGHT))
        .interval(interval)
        .with_target(_query(expr, "A", legend))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .mappings([models.ValueMap(options={"1": models.ValueMappingResult(text="firing", color="red", index=0)})])
    )


def _annotations(declaration: Declaration, scope: _Scope) -> list[Builder[models.AnnotationQuery]]:
    """Burn-rate alerts firing, and rollouts in progress when the SLO declares a deployment signal."""
    annotations = [
        _PrometheusAnnotation(
            "Burn-rate alerts",
            _firing(scope),
            "red",
            "{{severity}} burn over {{long_window}}/{{short_window}}",
            "severity,long_window,short_window",
        )
    ]
    signal = declaration.spec.alerting.deployment_signal
    if signal is not None:
        annotations.append(_PrometheusAnnotation("Deployments", f"({signal}) > 0", "blue", "Rollout in progress"))
    return [_Ready[models.AnnotationQuery](annotation) for annotation in annotations]


def _datasource_variable() -> builders.DatasourceVariable:
    return builders.DatasourceVariable(DATASOURCE_VARIABLE).label("Data source").type("prometheus")


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


def _base_url(options: RenderOptions) -> str:
    return options.grafana_url.rstrip("/")


def _slo_links(declaration: Declaration, options: RenderOptions) -> list[Builder[models.DashboardLink]]:
    links: list[Builder[models.DashboardLink]] = [
        builders.DashboardLink("SLO overview")
        .type(models.DashboardLinkType.LINK)
        .icon("dashboard")
        .url(f"{_base_url(options)}/d/{names.OVERVIEW_UID}")
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
    return _encode(dashboard_model(declaration, fleet, options))


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
        .with_variable(_datasource_variable())
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


# --- overview -----------------------------------------------------------------------------------

INFO_JOIN_LABELS = ("team", "tier", "dashboard")
"""Labels the overview copies from `sloplane:slo:info` onto each series (`dashboard`: the uid)."""
SUBJECT_LABELS = "slo, service, stage"


def _info(declarations: Sequence[Declaration]) -> str:
    """`sloplane:slo:info` filtered by the team and service variables, with a `dashboard` label.

    The uid is `slo-<name>` except for long names, which `names.dashboard_uid` shortens with a hash
    PromQL cannot compute: those get their uid written in. Names are RFC 1123 labels, so they are
    safe in a regex and a string literal as they are.
    """
    selector = promql_matchers({}, (f'team=~"${TEAM_VARIABLE}"', f'service=~"${SERVICE_VARIABLE}"'))
    expr = f'label_replace({names.INFO}{selector}, "dashboard", "slo-$1", "slo", "(.+)")'
    for name in sorted({declaration.name for declaration in declarations}):
        uid = names.dashboard_uid(name)
        if uid != f"slo-{name}":
            expr = f'label_replace({expr}, "dashboard", "{uid}", "slo", "{name}")'
    return expr


def _joined(expr: str, info: str) -> str:
    """A recorded series with its SLO's team, tier and dashboard uid; only subjects the variables keep."""
    return f"{expr} * on({SUBJECT_LABELS}) group_left({', '.join(INFO_JOIN_LABELS)}) {info}"


def _data_link(options: RenderOptions, field: str) -> builders.DashboardLink:
    """A link from a row or series to its SLO's dashboard, on its stage: `dashboard_url`'s form."""
    uid, slo, stage = (f"${{{field}{label}}}" for label in ("dashboard", "slo", "stage"))
    url = f"{_base_url(options)}/d/{uid}/{slo}?var-{STAGE_VARIABLE}={stage}&${{__url_time_range}}"
    return builders.DashboardLink("SLO dashboard").url(url)


OVERVIEW_COLUMNS = ("Objective", "SLI over period", "Budget remaining", "Burn rate")


def _table_overrides(decimals: int) -> list[tuple[str, list[models.DynamicConfigValue]]]:
    workbook = [(alert.factor, alert.tier) for alert in burn_rate_alerts(WORKBOOK_PERIOD)]
    objective, sli, budget, burn = OVERVIEW_COLUMNS
    cell = common.TableColoredBackgroundCellOptions()
    return [
        _override(objective, ("unit", "percentunit"), ("decimals", decimals)),
        _override(sli, ("unit", "percentunit"), ("decimals", decimals + 1)),
        _override(
            budget,
            ("unit", "percentunit"),
            ("decimals", 1),
            ("thresholds", _thresholds(BUDGET_STEPS).build()),
            ("custom.cellOptions", cell),
        ),
        _override(
            burn,
            ("decimals", 2),
            ("thresholds", _thresholds(_burn_steps(sorted(workbook))).build()),
            ("custom.cellOptions", cell),
        ),
        _override("dashboard", ("custom.hidden", True)),
    ]


def _overview_table(declarations: Sequence[Declaration], info: str, options: RenderOptions) -> table.Panel:
    """Every SLO and stage in one row: objective, SLI, budget and burn, joined with team and tier."""
    exprs = (
        names.OBJECTIVE,
        f"(1 - {names.ERROR_RATIO_PERIOD})",
        names.BUDGET_REMAINING,
        names.BURN_RATE_CURRENT,
    )
    refs = [_ref(index) for index in range(len(exprs))]
    order = ["slo", "stage", "service", "team", "tier", *(f"Value #{ref}" for ref in refs), "dashboard"]
    organize = {
        "excludeByName": {"Time": True},
        "indexByName": {field: index for index, field in enumerate(order)},
        "renameByName": {f"Value #{ref}": column for ref, column in zip(refs, OVERVIEW_COLUMNS, strict=True)},
    }
    decimals = _percent_decimals(subject.objective for declaration in declarations for subject in subjects(declaration))
    panel = (
        table.Panel()
        .id(TABLE_ID)
        .title("SLOs")
        .description("Every SLO (and stage) now. Click a row to open its dashboard.")
        .datasource(_datasource())
        .grid_pos(models.GridPos(h=TABLE_HEIGHT, w=GRID_WIDTH, x=0, y=0))
        .targets([_query(_joined(expr, info), ref, table_format=True) for expr, ref in zip(exprs, refs, strict=True)])
        .transformations(
            [
                models.DataTransformerConfig(id_val="merge", options={}),
                models.DataTransformerConfig(id_val="organize", options=organize),
            ]
        )
        .sort_by([common_builders.TableSortByFieldState().display_name("Budget remaining").desc(False)])
        .data_links([_data_link(options, "__data.fields.")])
    )
    for name, values in _table_overrides(decimals):
        panel = panel.override_by_name(name, values)
    return panel


def _overview_budget(info: str, options: RenderOptions) -> timeseries.Panel:
    """Budget remaining of every SLO over time: which ones are trending towards empty."""
    return (
        _series(
            BUDGET_OVERVIEW_ID,
            "Error budget remaining per SLO",
            "Share of each SLO's period budget left. Click a series to open its dashboard.",
            models.GridPos(h=SERIES_HEIGHT + 2, w=GRID_WIDTH, x=0, y=TABLE_HEIGHT),
        )
        .with_target(_query(_joined(names.BUDGET_REMAINING, info), "A", "{{slo}} {{stage}}"))
        .unit("percentunit")
        .decimals(1)
        .thresholds(_thresholds(BUDGET_STEPS))
        .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
        .data_links([_data_link(options, "__field.labels.")])
    )


def _overview_alerts() -> _PrometheusAnnotation:
    """Burn-rate alerts of the SLOs the variables select (alerts carry the SLO's team and service)."""
    selector = promql_matchers(
        {"alertname": names.ALERT, "alertstate": "firing"},
        (f'team=~"${TEAM_VARIABLE}"', f'service=~"${SERVICE_VARIABLE}"'),
    )
    return _PrometheusAnnotation(
        "Burn-rate alerts",
        f"ALERTS{selector}",
        "red",
        "{{slo}} {{stage}}: {{severity}} burn over {{long_window}}/{{short_window}}",
        "slo,stage,severity",
    )


def _info_variable(name: str, label: str, query: str) -> builders.QueryVariable:
    return (
        builders.QueryVariable(name)
        .label(label)
        .datasource(_datasource())
        .query(query)
        .refresh(models.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(selected=True, text="All", value="$__all"))
    )


def overview(
    declarations: Sequence[Declaration], fleet: FleetLike, options: RenderOptions | None = None
) -> dict[str, Any]:
    """One dashboard across all SLOs (uid `names.OVERVIEW_UID`): a table and budget trends, by team and service.

    Rows come from what Prometheus records, so every SLO and stage appears without the dashboard
    changing when one is added; the declarations supply the dashboard uids PromQL cannot derive.
    Archived SLOs have no dashboard and are left out. `fleet` is taken like every renderer takes it,
    though the overview reads only period-level series, which no composite changes.
    """
    options = options or RenderOptions()
    live = [declaration for declaration in declarations if declaration.spec.lifecycle is not Lifecycle.ARCHIVED]
    info = _info(live)
    builder = (
        builders.Dashboard("SLO overview")
        .uid(names.OVERVIEW_UID)
        .description(f"Every SLO sloplane manages ({len(live)} declared): objective, SLI, budget and burn rate.")
        .tags([TAG])
        .time("now-7d", "now")
        .refresh("5m")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .with_variable(_datasource_variable())
        .with_variable(_info_variable(TEAM_VARIABLE, "Team", f"label_values({names.INFO}, team)"))
        .with_variable(
            _info_variable(
                SERVICE_VARIABLE,
                "Service",
                f'label_values({names.INFO}{{team=~"${TEAM_VARIABLE}"}}, service)',
            )
        )
        .links(
            [
                builders.DashboardLink("SLO dashboards")
                .type(models.DashboardLinkType.DASHBOARDS)
                .tags([TAG])
                .as_dropdown(True)
                .keep_time(True)
            ]
        )
        .annotations([_Ready[models.AnnotationQuery](_overview_alerts())])
        .with_panel(_overview_table(live, info, options))
        .with_panel(_overview_budget(info, options))
    )
    return _encode(builder.build())


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
