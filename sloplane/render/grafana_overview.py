"""The Grafana overview: one dashboard across every SLO, with a table and budget trends by team and service.

Separate from the per-SLO dashboard (`sloplane.render.grafana`) because it is built differently: its
rows come from what Prometheus records (`sloplane:slo:info` joined onto period-level series), not
from one declaration's windows and alert tiers, and the declarations only supply the dashboard uids
PromQL cannot derive. It shares the SDK builders of `sloplane.render.grafana_panels` with the
per-SLO dashboard and never imports `sloplane.render.grafana`, which re-exports `overview` and
writes it through the Grafana renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from sloplane.core import names
from sloplane.core.budget import WORKBOOK_PERIOD, burn_rate_alerts
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.render.grafana_panels import (
    BUDGET_OVERVIEW_ID,
    BUDGET_STEPS,
    GRID_WIDTH,
    SERIES_HEIGHT,
    SERVICE_VARIABLE,
    STAGE_VARIABLE,
    TABLE_HEIGHT,
    TABLE_ID,
    TAG,
    TEAM_VARIABLE,
    PrometheusAnnotation,
    Ready,
    base_url,
    burn_steps,
    datasource,
    datasource_variable,
    encode,
    override,
    percent_decimals,
    prometheus_query,
    ref_id,
    series_panel,
    thresholds_config,
)
from sloplane.render.options import RenderOptions
from sloplane.semantics.alerts import alert_names, alertname_matchers
from sloplane.semantics.promql import promql_matchers
from sloplane.semantics.subjects import FleetLike, subjects

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
    url = f"{base_url(options)}/d/{uid}/{slo}?var-{STAGE_VARIABLE}={stage}&${{__url_time_range}}"
    return builders.DashboardLink("SLO dashboard").url(url)


OVERVIEW_COLUMNS = ("Objective", "SLI over period", "Budget remaining", "Burn rate")


def _table_overrides(decimals: int) -> list[tuple[str, list[models.DynamicConfigValue]]]:
    workbook = [(alert.factor, alert.tier) for alert in burn_rate_alerts(WORKBOOK_PERIOD)]
    objective, sli, budget, burn = OVERVIEW_COLUMNS
    cell = common.TableColoredBackgroundCellOptions()
    return [
        override(objective, ("unit", "percentunit"), ("decimals", decimals)),
        override(sli, ("unit", "percentunit"), ("decimals", decimals + 1)),
        override(
            budget,
            ("unit", "percentunit"),
            ("decimals", 1),
            ("thresholds", thresholds_config(BUDGET_STEPS).build()),
            ("custom.cellOptions", cell),
        ),
        override(
            burn,
            ("decimals", 2),
            ("thresholds", thresholds_config(burn_steps(sorted(workbook))).build()),
            ("custom.cellOptions", cell),
        ),
        override("dashboard", ("custom.hidden", True)),
    ]


def _overview_table(declarations: Sequence[Declaration], info: str, options: RenderOptions) -> table.Panel:
    """Every SLO and stage in one row: objective, SLI, budget and burn, joined with team and tier."""
    exprs = (
        names.OBJECTIVE,
        f"(1 - {names.ERROR_RATIO_PERIOD})",
        names.BUDGET_REMAINING,
        names.BURN_RATE_CURRENT,
    )
    refs = [ref_id(index) for index in range(len(exprs))]
    order = ["slo", "stage", "service", "team", "tier", *(f"Value #{ref}" for ref in refs), "dashboard"]
    organize = {
        "excludeByName": {"Time": True},
        "indexByName": {field: index for index, field in enumerate(order)},
        "renameByName": {f"Value #{ref}": column for ref, column in zip(refs, OVERVIEW_COLUMNS, strict=True)},
    }
    decimals = percent_decimals(subject.objective for declaration in declarations for subject in subjects(declaration))
    panel = (
        table.Panel()
        .id(TABLE_ID)
        .title("SLOs")
        .description("Every SLO (and stage) now. Click a row to open its dashboard.")
        .datasource(datasource())
        .grid_pos(models.GridPos(h=TABLE_HEIGHT, w=GRID_WIDTH, x=0, y=0))
        .targets(
            [
                prometheus_query(_joined(expr, info), ref, table_format=True)
                for expr, ref in zip(exprs, refs, strict=True)
            ]
        )
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
        series_panel(
            BUDGET_OVERVIEW_ID,
            "Error budget remaining per SLO",
            "Share of each SLO's period budget left. Click a series to open its dashboard.",
            models.GridPos(h=SERIES_HEIGHT + 2, w=GRID_WIDTH, x=0, y=TABLE_HEIGHT),
        )
        .with_target(prometheus_query(_joined(names.BUDGET_REMAINING, info), "A", "{{slo}} {{stage}}"))
        .unit("percentunit")
        .decimals(1)
        .thresholds(thresholds_config(BUDGET_STEPS))
        .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
        .data_links([_data_link(options, "__field.labels.")])
    )


def _overview_alerts(declarations: Sequence[Declaration]) -> PrometheusAnnotation:
    """Burn-rate alerts of the SLOs the variables select (alerts carry the SLO's team and service)."""
    by_name, extra = alertname_matchers(alert_names(declarations))
    selector = promql_matchers(
        {**by_name, "alertstate": "firing"},
        (*extra, f'team=~"${TEAM_VARIABLE}"', f'service=~"${SERVICE_VARIABLE}"'),
    )
    return PrometheusAnnotation(
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
        .datasource(datasource())
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
        .with_variable(datasource_variable())
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
        .annotations([Ready[models.AnnotationQuery](_overview_alerts(declarations))])
        .with_panel(_overview_table(live, info, options))
        .with_panel(_overview_budget(info, options))
    )
    return encode(builder.build())
