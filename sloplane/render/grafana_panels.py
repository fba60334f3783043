"""Shared grafana-foundation-sdk builders for sloplane's dashboards, and the constants they agree on.

The per-SLO dashboards (`sloplane.render.grafana`) and the fleet overview
(`sloplane.render.grafana_overview`) must look and query alike: the same `datasource` variable, the
same budget and burn-rate colours, the same grid, the same JSON encoding. Those pieces live here, in
a module that imports neither dashboard module, so both can use them without importing each other.
Also here are the workarounds for what the SDK lacks (`Ready`, `PrometheusAnnotation`) and the
fixed panel ids of both dashboards, in one list so each dashboard's ids are seen side by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from sloplane.core.budget import Tier
from sloplane.render.options import RenderOptions
from sloplane.semantics.promql import promql_matchers

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


class Ready(Builder[T]):
    """A model already built, for SDK methods that only take builders."""

    def __init__(self, model: T) -> None:
        self._model = model

    def build(self) -> T:
        return self._model


class PrometheusAnnotation(models.AnnotationQuery):
    """The SDK's annotation model lacks the Prometheus data source's title and tag options."""

    def __init__(self, name: str, expr: str, colour: str, title_format: str, tag_keys: str = "") -> None:
        super().__init__(name=name, datasource=datasource(), enable=True, icon_color=colour, expr=expr)
        self.title_format = title_format
        self.tag_keys = tag_keys

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload["titleFormat"] = self.title_format
        payload["tagKeys"] = self.tag_keys
        payload["useValueForTime"] = False
        return payload


@dataclass(frozen=True)
class Scope:
    """How a dashboard's queries select its subject: fixed labels, plus `stage="$stage"` when staged."""

    labels: tuple[tuple[str, str], ...]
    staged: bool

    def matchers(self, raw: tuple[str, ...] = (), **extra_labels: str) -> str:
        extra = (f'stage="${STAGE_VARIABLE}"',) if self.staged else ()
        return promql_matchers({**dict(self.labels), **extra_labels}, (*extra, *raw))

    def series(self, name: str) -> str:
        return f"{name}{self.matchers()}"


def datasource() -> models.DataSourceRef:
    return models.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")


def _to_json(model: Any) -> Any:
    """What the SDK's own JSONEncoder does: each model knows its JSON form."""
    return model.to_json()


def encode(model: models.Dashboard) -> dict[str, Any]:
    """The SDK's models as plain JSON data (orjson: the stdlib encoder is most of a render's time)."""
    encoded: dict[str, Any] = orjson.loads(orjson.dumps(model, default=_to_json))
    return encoded


def prometheus_query(
    expr: str, ref: str, legend: str | None = None, *, table_format: bool = False
) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(datasource())
    if legend is not None:
        query = query.legend_format(legend)
    if table_format:
        return query.instant().format(PromQueryFormat.TABLE)
    return query.range()


def thresholds_config(steps: Iterable[tuple[float | None, str]]) -> builders.ThresholdsConfig:
    return (
        builders.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=value, color=colour) for value, colour in steps])
    )


def columns(count: int, y: int, height: int) -> list[models.GridPos]:
    """`count` panels side by side across the full width; leftover columns widen the first ones."""
    width, extra = divmod(GRID_WIDTH, count)
    positions = []
    x = 0
    for index in range(count):
        w = width + (1 if index < extra else 0)
        positions.append(models.GridPos(h=height, w=w, x=x, y=y))
        x += w
    return positions


def percent_decimals(objectives: Iterable[float]) -> int:
    """Decimals that print every objective exactly as a percentage (99.95 -> 2), at least one."""
    return max([1, *(len(f"{objective:g}".partition(".")[2]) for objective in objectives)])


def override(name: str, *values: tuple[str, object]) -> tuple[str, list[models.DynamicConfigValue]]:
    return name, [models.DynamicConfigValue(id_val=key, value=value) for key, value in values]


def burn_steps(thresholds: Iterable[tuple[float, Tier]]) -> list[tuple[float | None, str]]:
    return [(None, BELOW_THRESHOLDS), *((factor, TIER_COLOURS[tier]) for factor, tier in thresholds)]


def stat_panel(
    panel_id: int, title: str, description: str, expr: str, *, unit: str, position: models.GridPos
) -> stat.Panel:
    return (
        stat.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(datasource())
        .grid_pos(position)
        .with_target(prometheus_query(expr, "A"))
        .unit(unit)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
    )


def series_panel(
    panel_id: int, title: str, description: str, position: models.GridPos, interval: str | None = None
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(datasource())
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


def ref_id(index: int) -> str:
    """Query ref ids A, B, ... Z, AA, AB, ..."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def datasource_variable() -> builders.DatasourceVariable:
    return builders.DatasourceVariable(DATASOURCE_VARIABLE).label("Data source").type("prometheus")


def base_url(options: RenderOptions) -> str:
    return options.grafana_url.rstrip("/")
