"""OpenSLO indicators (SLI objects and inline `indicator`s) as sloplane `sli` mappings.

An OpenSLO indicator is a ratioMetric (good/bad/total or raw) or a thresholdMetric, each slot a
metric source: a query plus the DataSource it runs against, inline or by reference. This module
finds the indicator (inline or by `indicatorRef`/`sliRef`), works out which backend each slot reads,
and writes our `sli`: ratio, raw or threshold. Ratio queries count events (`interop.counts`):
`counter: true` selectors become `sum(increase(...[{{window}}]))`, gauges are summed over the window,
and queries that already hold `{{window}}` (or Sloth's `{{.window}}`) keep their shape with rates
over the window turned into increases.

It is separate from `slo` because it is the part that knows about metric sources and query text,
while `slo` knows about objectives, windows, alerting and metadata; it only needs the catalog below.
"""

from __future__ import annotations

from typing import Any

from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.sli import WINDOW_PLACEHOLDER, Backend, normalise_placeholders
from sloplane.interop.counts import counter_counts, is_plain_selector, rates_as_counts
from sloplane.interop.openslo.catalog import Catalog, ImportProblemError, ParsedObject
from sloplane.interop.openslo.models import ODataSourceSpec, OInlineSLI, OMetric, OObjective, OSLISpec

_BACKEND_TYPES = {"prometheus": Backend.PROMETHEUS, "datadog": Backend.DATADOG}


_READ_SPEC_KEYS = frozenset({"query", "promql", "queryType"})
"""Keys of a metric source's spec sloplane reads; others (`dimensions`, vendor options) are warned about."""
_UNNAMED_TYPES = frozenset({"any", "generic"})
"""Types the spec's own examples use for "any system": their query is read as PromQL, with a warning."""


def _connection_unused(spec: ODataSourceSpec, loc: Loc, warnings: list[tuple[Loc, str]]) -> str:
    """A data source's type; its connectionDetails are said not to be used (sloplane reads the backend it is given)."""
    if spec.connection_details:
        warnings.append(
            (loc, "connectionDetails are not used: sloplane reads from the backend given to evaluate, gate or serve")
        )
    return spec.type


def _data_source(found: ParsedObject, loc: Loc, warnings: list[tuple[Loc, str]]) -> str:
    spec: ODataSourceSpec = found.spec
    return _connection_unused(spec, loc, warnings)


def _query_of(metric: OMetric, catalog: Catalog, loc: Loc, warnings: list[tuple[Loc, str]]) -> tuple[Backend, str]:
    """Which backend a metric slot reads and its query text."""
    if metric.metric_source is not None:
        source = metric.metric_source
        kind_text = source.type
        ref_loc: Loc = (*loc, "metricSource", "metricSourceRef")
        if kind_text is None and source.metric_source_ref is not None:
            kind_text = _data_source(catalog.get("DataSource", source.metric_source_ref, ref_loc), ref_loc, warnings)
        spec, spec_loc = source.spec, (*loc, "metricSource", "spec")
    else:
        inline: ODataSourceSpec | None = metric.data_source_spec
        if inline is not None:
            kind_text = _connection_unused(inline, (*loc, "dataSourceSpec"), warnings)
        elif metric.data_source_ref is not None:
            ref: Loc = (*loc, "dataSourceRef")
            kind_text = _data_source(catalog.get("DataSource", metric.data_source_ref, ref), ref, warnings)
        else:
            raise ImportProblemError(loc, "give 'dataSourceRef' or 'dataSourceSpec'")
        assert metric.spec is not None
        spec, spec_loc = metric.spec, (*loc, "spec")
    if kind_text is None:
        raise ImportProblemError(loc, "the metric source names no type (Prometheus or Datadog) and no DataSource")
    backend = _BACKEND_TYPES.get(kind_text.lower())
    if backend is None and kind_text.lower() in _UNNAMED_TYPES:
        warnings.append((loc, f"data source type '{kind_text}' names no system: its query is read as PromQL"))
        backend = Backend.PROMETHEUS
    if backend is None:
        raise ImportProblemError(loc, f"data source type '{kind_text}' is not supported (Prometheus, Datadog)")
    query = spec.get("query", spec.get("promql"))
    if not isinstance(query, str) or not query.strip():
        raise ImportProblemError(spec_loc, "the metric source spec has no 'query'")
    for key in sorted(set(spec) - _READ_SPEC_KEYS):
        warnings.append(((*spec_loc, key), f"'{key}' is not read: sloplane runs the query as written"))
    return backend, normalise_placeholders(query.strip())


def _windowed(query: str, backend: Backend, counter: bool, loc: Loc, warnings: list[tuple[Loc, str]]) -> str:
    """A Prometheus query counting events over `{{window}}` (see `interop.counts`).

    A query that holds the window already is used as written, its rates over the window turned into
    increases; a counter selector becomes `sum(increase(...))`; a gauge is summed over the window.
    """
    if backend is not Backend.PROMETHEUS:
        return query
    if WINDOW_PLACEHOLDER in query:
        counted = rates_as_counts(query)
        if not counted.exact:
            warnings.append((loc, _INEXACT_COUNTS))
        return counted.query
    if counter:
        if not is_plain_selector(query):
            warnings.append((loc, _SUBQUERY.format(function="increase")))
        return counter_counts(query)
    if is_plain_selector(query):
        return f"sum(sum_over_time({query}[{WINDOW_PLACEHOLDER}]))"
    warnings.append((loc, _SUBQUERY.format(function="sum_over_time")))
    return f"sum(sum_over_time(({query})[{WINDOW_PLACEHOLDER}:]))"


_INEXACT_COUNTS = (
    "a rate in this query is not over the window ({{window}}), so it cannot become an event count: ratios are "
    "right, event counts (period events, minEvents, the evaluator's events) are not; write increase(...[{{window}}])"
)
_SUBQUERY = (
    "query is not a plain selector, so it is wrapped in a subquery ({function} over {{{{window}}}}); "
    "write the windowed query yourself with {{{{window}}}} for exact results"
)


def sli_of(
    indicator: OSLISpec, objective: OObjective, catalog: Catalog, loc: Loc, warnings: list[tuple[Loc, str]]
) -> tuple[dict[str, Any], Backend]:
    """Our `sli` mapping from an OpenSLO indicator (thresholds take the objective's op/value), and its backend."""
    if indicator.threshold_metric is not None:
        if objective.op is None or objective.value is None:
            raise ImportProblemError(loc, "a thresholdMetric needs 'op' and 'value' on its objective")
        backend, query = _query_of(indicator.threshold_metric, catalog, (*loc, "thresholdMetric"), warnings)
        return {"threshold": {"query": {backend.value: query}, "op": objective.op, "value": objective.value}}, backend
    ratio = indicator.ratio_metric
    assert ratio is not None
    ratio_loc = (*loc, "ratioMetric")
    if ratio.raw is not None:
        backend, query = _query_of(ratio.raw, catalog, (*ratio_loc, "raw"), warnings)
        error_ratio = query if ratio.raw_type == "failure" else f"1 - ({query})"
        return {"raw": {"errorRatio": {backend.value: error_ratio}}}, backend
    slots: dict[str, tuple[Backend, str]] = {}
    for part in ("good", "bad", "total"):
        metric = getattr(ratio, part)
        if metric is not None:
            backend, query = _query_of(metric, catalog, (*ratio_loc, part), warnings)
            slots[part] = (backend, _windowed(query, backend, ratio.counter, (*ratio_loc, part), warnings))
    backends = {backend for backend, _ in slots.values()}
    if len(backends) != 1:
        raise ImportProblemError(ratio_loc, "good/bad and total read different backends")
    ratio_data = {("errors" if part == "bad" else part): {b.value: query} for part, (b, query) in slots.items()}
    return {"ratio": ratio_data}, backends.pop()


def targets_for(backend: Backend) -> dict[str, Any]:
    """A Datadog indicator renders for Datadog; a Prometheus one keeps the default targets."""
    return {"targets": [Backend.DATADOG.value]} if backend is Backend.DATADOG else {}


def find_indicator(
    inline: OInlineSLI | None, ref: str | None, catalog: Catalog, loc_inline: Loc, loc_ref: Loc
) -> tuple[OSLISpec, Loc, str | None] | None:
    """(indicator spec, where its fields are, the SLI's name when referenced) or None."""
    if inline is not None:
        return inline.spec, (*loc_inline, "spec"), None
    if ref is not None:
        found = catalog.get("SLI", ref, loc_ref)
        return found.spec, loc_ref, ref
    return None
