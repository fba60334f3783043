"""From an SLI to the queries each backend runs: bad events, all events and the error ratio.

Every SLI kind is reduced here to the same three windowed templates (with `{{window}}` still in
them), so the Prometheus rules, the Datadog objects, the Argo analysis and the evaluator all ask one
function and measure the same thing. Stage selectors are merged in here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sloplane.core.durations import format_duration
from sloplane.declaration.sli import (
    SELECTOR_PLACEHOLDER,
    SLI,
    WINDOW_PLACEHOLDER,
    Backend,
    BackendQueries,
    DeploymentMeasure,
    DeploymentSLI,
    DeploymentSource,
    HttpErrors,
    ThresholdOperator,
)

ARGO_EVENTS_METRIC = "rollout_events_total"
SLOPLANE_DECISIONS_METRIC = "sloplane_gate_decisions_total"

DEPLOYMENT_REASONS: dict[tuple[DeploymentSource, DeploymentMeasure], tuple[tuple[str, ...], tuple[str, ...]]] = {
    (DeploymentSource.ARGO_ROLLOUTS, DeploymentMeasure.SUCCESS_RATE): (
        ("RolloutAborted",),
        ("RolloutCompleted", "RolloutAborted"),
    ),
    (DeploymentSource.ARGO_ROLLOUTS, DeploymentMeasure.ROLLBACK_RATE): (
        ("RolloutAborted",),
        ("RolloutUpdated",),
    ),
    (DeploymentSource.SLOPLANE, DeploymentMeasure.SUCCESS_RATE): (("fail",), ("pass", "fail")),
    (DeploymentSource.SLOPLANE, DeploymentMeasure.ROLLBACK_RATE): (
        ("fail",),
        ("pass", "fail", "inconclusive"),
    ),
}
"""(bad, all) event reasons per source and measure. Argo: success = completed vs aborted among
finished rollouts; rollback = aborted among started ones (`RolloutUpdated`). sloplane: its own
gate decisions. Declarations can override both lists for controllers that name events differently."""

_INVERSE_OPERATOR = {
    ThresholdOperator.LT: ">=",
    ThresholdOperator.LTE: ">",
    ThresholdOperator.GT: "<=",
    ThresholdOperator.GTE: "<",
}
"""A threshold sample is *bad* when the good comparison fails."""


@dataclass(frozen=True)
class WindowedQueries:
    """Templates over `{{window}}`: bad events, all events (both as counts), and the error ratio.

    `errors` and `total` are None where the SLI has no event counts (raw and threshold SLIs).
    Counts rather than rates, so that the evaluator's minimum-events policy and dashboards read
    events, and a period total can be added up from short windows.
    """

    error_ratio: str
    errors: str | None = None
    total: str | None = None

    def at(self, window: timedelta, end: datetime | None = None) -> WindowedQueries:
        """The same queries over `window`; with `end`, anchored there (`[1h] @ 1700000000`).

        Anchoring lets one query read a past interval (an excluded maintenance window) while every
        other query of the same evaluation reads the present.
        """
        text = format_duration(window)
        anchor = "" if end is None else f" @ {end.timestamp():.3f}"

        def fill(query: str | None) -> str | None:
            if query is None:
                return None
            return _RANGE.sub(lambda match: f"[{text}{match.group(1) or ''}]{anchor}", query)

        error_ratio = fill(self.error_ratio)
        assert error_ratio is not None
        return WindowedQueries(error_ratio, fill(self.errors), fill(self.total))

    def single_series(self) -> tuple[str | None, str | None, str]:
        """(bad events, all events, error ratio), each one series, as recording rules and the evaluator read them.

        Bad events default to 0 (a service that never failed has no error series at all); the ratio
        drops NaN (no traffic) rather than carrying it.
        """
        if self.errors is None or self.total is None:
            return None, None, f"avg(({self.error_ratio}) >= 0)"
        bad, total = f"({aggregated(self.errors)} or vector(0))", aggregated(self.total)
        return bad, total, f"({bad} / {total}) >= 0"


_RANGE = re.compile(r"\[\{\{window\}\}(:[^\]]*)?\]")
"""A range or subquery over the window placeholder: `[{{window}}]`, `[{{window}}:]`, `[{{window}}:1m]`."""


def aggregated(query: str) -> str:
    """`sum(...)` around a query unless it already is one aggregate (a recorded series must be single)."""
    if query.startswith("sum(") and query.endswith(")") and _closes_at_end(query, 3):
        return query
    return f"sum({query})"


def _closes_at_end(text: str, opening: int) -> bool:
    """Whether the parenthesis at `opening` is closed by the last character (not earlier)."""
    depth = 0
    position = opening
    while True:
        next_open = text.find("(", position + 1)
        next_close = text.find(")", position + 1)
        if next_close == -1:
            return False
        if next_open != -1 and next_open < next_close:
            depth += 1
            position = next_open
            continue
        if depth == 0:
            return next_close == len(text) - 1
        depth -= 1
        position = next_close


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def promql_matchers(selector: dict[str, str], extra: tuple[str, ...] = ()) -> str:
    """`{a="1",b=~"x"}` from labels (sorted, for stable output) and extra raw matchers."""
    parts = [f"{key}={_quote(value)}" for key, value in sorted(selector.items())]
    return "{" + ",".join([*parts, *extra]) + "}"


def expand_selector(query: str, selector: dict[str, str], backend: Backend) -> str:
    """Put a stage's labels where a hand-written query has `{{selector}}`."""
    if backend is Backend.PROMETHEUS:
        text = ",".join(f"{key}={_quote(value)}" for key, value in sorted(selector.items()))
    else:
        text = ",".join(f"{key}:{value}" for key, value in sorted(selector.items()))
    return query.replace(SELECTOR_PLACEHOLDER, text)


def status_code_regex(errors: HttpErrors) -> str:
    """['5xx', '429'] -> '5..|429' (anchored by PromQL's =~)."""
    return "|".join(code.lower().replace("x", ".") for code in errors.codes)


def _bucket_bound(threshold: timedelta) -> str:
    """The `le` matcher for a latency threshold; whole seconds match both Go's `1` and Python's `1.0`."""
    seconds = threshold.total_seconds()
    if seconds.is_integer():
        return f'le=~"{int(seconds)}(\\\\.0)?"'
    return f"le={_quote(repr(seconds))}"


def _increase_sum(metric: str, selector: dict[str, str], extra: tuple[str, ...] = ()) -> str:
    return f"sum(increase({metric}{promql_matchers(selector, extra)}[{WINDOW_PLACEHOLDER}]))"


def _ratio(errors: str, total: str) -> WindowedQueries:
    return WindowedQueries(error_ratio=f"({errors}) / ({total})", errors=errors, total=total)


def _handwritten(queries: BackendQueries, selector: dict[str, str], backend: Backend) -> str | None:
    query = queries.for_backend(backend)
    return None if query is None else expand_selector(query, selector, backend)


def deployment_reasons(sli: DeploymentSLI) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(bad, all) event reasons of a deployment SLI: the declaration's, else the source's defaults."""
    bad, every = DEPLOYMENT_REASONS[(sli.source, sli.measure)]
    return tuple(sli.bad_reasons or bad), tuple(sli.all_reasons or every)


def prometheus_queries(sli: SLI, selector: dict[str, str], interval: timedelta) -> WindowedQueries | None:
    """PromQL templates for an SLI, with the stage's labels merged in; None when not expressible.

    Composite SLIs return None: their ratio is computed from their components' recorded ratios.
    """
    backend = Backend.PROMETHEUS
    if sli.ratio is not None:
        total = _handwritten(sli.ratio.total, selector, backend)
        numerator = _handwritten(sli.ratio.numerator, selector, backend)
        if total is None or numerator is None:
            return None
        errors = numerator if sli.ratio.errors is not None else f"({total}) - ({numerator})"
        return _ratio(errors, total)
    if sli.http is not None:
        labels = {**sli.http.selector, **selector}
        code = f"{sli.http.errors.label}=~{_quote(status_code_regex(sli.http.errors))}"
        return _ratio(_increase_sum(sli.http.metric, labels, (code,)), _increase_sum(sli.http.metric, labels))
    if sli.latency is not None:
        labels = {**sli.latency.selector, **selector}
        total = _increase_sum(f"{sli.latency.metric}_count", labels)
        good = _increase_sum(f"{sli.latency.metric}_bucket", labels, (_bucket_bound(sli.latency.threshold),))
        return _ratio(f"{total} - {good}", total)
    if sli.probe is not None:
        selected = f"{sli.probe.metric}{promql_matchers({**sli.probe.selector, **selector})}[{WINDOW_PLACEHOLDER}]"
        total = f"sum(count_over_time({selected}))"
        return _ratio(f"{total} - sum(sum_over_time({selected}))", total)
    if sli.raw is not None:
        raw = _handwritten(sli.raw.error_ratio, selector, backend)
        return None if raw is None else WindowedQueries(error_ratio=raw)
    if sli.threshold is not None:
        query = _handwritten(sli.threshold.query, selector, backend)
        if query is None:
            return None
        bad = f"({query}) {_INVERSE_OPERATOR[sli.threshold.op]} bool {sli.threshold.value!r}"
        step = format_duration(interval)
        return WindowedQueries(error_ratio=f"avg(avg_over_time(({bad})[{WINDOW_PLACEHOLDER}:{step}]))")
    if sli.deployment is not None:
        bad_reasons, all_reasons = deployment_reasons(sli.deployment)
        labels = {**sli.deployment.selector, **selector}
        if sli.deployment.source is DeploymentSource.ARGO_ROLLOUTS:
            metric, label = ARGO_EVENTS_METRIC, "reason"
        else:
            metric, label = SLOPLANE_DECISIONS_METRIC, "decision"
        bad = _increase_sum(metric, labels, (f"{label}=~{_quote('|'.join(bad_reasons))}",))
        every = _increase_sum(metric, labels, (f"{label}=~{_quote('|'.join(all_reasons))}",))
        return _ratio(bad, every)
    return None


@dataclass(frozen=True)
class Aggregation:
    """One aggregated read that many SLIs share, told apart by the values of `keys`.

    Derived SLIs of a fleet usually differ only in selector values (`job="checkout"`,
    `job="search"`); asking once per window for `sum by (job) (increase(metric{...}[w]))` answers
    them all, where one expression per SLI would cost Prometheus far more to parse and evaluate.
    `function` None reads a series as it is (recorded series), `max by` the keys.
    """

    function: str | None
    metric: str
    keys: tuple[str, ...]
    extra: tuple[str, ...] = ()

    def query(self, values: Iterable[tuple[str, ...]], window: timedelta | None, end: datetime | None = None) -> str:
        """The grouped query for the given key values (a regex per key), over `window`, ending at `end`."""
        wanted = sorted(set(values))
        matchers = list(self.extra)
        for position, key in enumerate(self.keys):
            alternatives = sorted({value[position] for value in wanted})
            matchers.append(f"{key}=~{_quote('|'.join(re.escape(v) for v in alternatives))}")
        selector = f"{self.metric}{{{','.join(matchers)}}}"
        by = ", ".join(self.keys)
        if self.function is None:
            return f"max by ({by}) ({selector})"
        anchor = "" if end is None else f" @ {end.timestamp():.3f}"
        assert window is not None
        return f"sum by ({by}) ({self.function}({selector}[{format_duration(window)}]{anchor}))"


@dataclass(frozen=True)
class Term:
    """`sign` x the value an aggregation has for one set of key values."""

    sign: float
    aggregation: Aggregation
    values: tuple[str, ...]


@dataclass(frozen=True)
class EventTerms:
    """Bad and all events of a derived SLI as sums of grouped reads (see Aggregation)."""

    bad: tuple[Term, ...]
    total: tuple[Term, ...]

    def __add__(self, other: EventTerms) -> EventTerms:
        return EventTerms(self.bad + other.bad, self.total + other.total)


def _term(sign: float, function: str, metric: str, labels: dict[str, str], extra: tuple[str, ...] = ()) -> Term:
    keys = tuple(sorted(labels))
    return Term(sign, Aggregation(function, metric, keys, extra), tuple(labels[key] for key in keys))


def event_terms(sli: SLI, selector: dict[str, str]) -> EventTerms | None:
    """The grouped form of a derived SLI's bad and all events (same numbers as prometheus_queries).

    None for SLIs whose queries are hand-written (ratio, raw, threshold) or composite.
    """
    if sli.http is not None:
        labels = {**sli.http.selector, **selector}
        code = f"{sli.http.errors.label}=~{_quote(status_code_regex(sli.http.errors))}"
        return EventTerms(
            (_term(1, "increase", sli.http.metric, labels, (code,)),), (_term(1, "increase", sli.http.metric, labels),)
        )
    if sli.latency is not None:
        labels = {**sli.latency.selector, **selector}
        count = _term(1, "increase", f"{sli.latency.metric}_count", labels)
        good = _term(-1, "increase", f"{sli.latency.metric}_bucket", labels, (_bucket_bound(sli.latency.threshold),))
        return EventTerms((count, good), (count,))
    if sli.probe is not None:
        labels = {**sli.probe.selector, **selector}
        count = _term(1, "count_over_time", sli.probe.metric, labels)
        return EventTerms((count, _term(-1, "sum_over_time", sli.probe.metric, labels)), (count,))
    if sli.deployment is not None:
        bad_reasons, all_reasons = deployment_reasons(sli.deployment)
        labels = {**sli.deployment.selector, **selector}
        is_argo = sli.deployment.source is DeploymentSource.ARGO_ROLLOUTS
        metric, label = (ARGO_EVENTS_METRIC, "reason") if is_argo else (SLOPLANE_DECISIONS_METRIC, "decision")
        bad = _term(1, "increase", metric, labels, (f"{label}=~{_quote('|'.join(bad_reasons))}",))
        every = _term(1, "increase", metric, labels, (f"{label}=~{_quote('|'.join(all_reasons))}",))
        return EventTerms((bad,), (every,))
    return None


def datadog_metric_name(prometheus_name: str) -> str:
    """Datadog's OpenMetrics naming for a counter: `http_requests_total` -> `http_requests.count`."""
    base = prometheus_name.removesuffix("_total")
    return f"{base}.count"


def _datadog_filter(selector: dict[str, str], extra: tuple[str, ...] = ()) -> str:
    parts = [f"{key}:{value}" for key, value in sorted(selector.items())]
    parts.extend(extra)
    return "{" + (",".join(parts) if parts else "*") + "}"


def _datadog_code(label: str, code: str) -> str:
    """'5xx' -> 'code:5*' (Datadog wildcards match any suffix)."""
    lowered = code.lower()
    return f"{label}:{lowered[: lowered.index('x')]}*" if "x" in lowered else f"{label}:{lowered}"


def _datadog_errors_filter(tags: dict[str, str], errors: HttpErrors) -> str:
    """Tags plus the error codes; several codes need Datadog's boolean filter syntax."""
    codes = [_datadog_code(errors.label, code) for code in errors.codes]
    if len(codes) == 1:
        return _datadog_filter(tags, (codes[0],))
    terms = [f"{key}:{value}" for key, value in sorted(tags.items())]
    terms.append("(" + " OR ".join(codes) + ")")
    return "{" + " AND ".join(terms) + "}"


@dataclass(frozen=True)
class DatadogQueries:
    """Datadog metric queries: bad (or good) events and all events, as counts."""

    total: str
    errors: str | None = None
    good: str | None = None


def datadog_queries(sli: SLI, selector: dict[str, str]) -> DatadogQueries | None:
    """Datadog event-count queries for an SLI, stage tags merged in; None without event counts.

    Raw and threshold SLIs have no event counts; their hand-written Datadog queries are used as given.
    """
    backend = Backend.DATADOG
    if sli.ratio is not None:
        total = _handwritten(sli.ratio.total, selector, backend)
        numerator = _handwritten(sli.ratio.numerator, selector, backend)
        if total is None or numerator is None:
            return None
        if sli.ratio.errors is not None:
            return DatadogQueries(total=total, errors=numerator)
        return DatadogQueries(total=total, good=numerator)
    if sli.http is not None:
        metric = sli.http.datadog_metric or datadog_metric_name(sli.http.metric)
        tags = {**sli.http.selector, **selector}
        return DatadogQueries(
            total=f"sum:{metric}{_datadog_filter(tags)}.as_count()",
            errors=f"sum:{metric}{_datadog_errors_filter(tags, sli.http.errors)}.as_count()",
        )
    derived = sli.latency or sli.probe
    if derived is not None and derived.datadog is not None:
        ratio = derived.datadog

        def expand(query: str | None) -> str | None:
            return None if query is None else expand_selector(query, selector, backend)

        total = expand(ratio.total)
        assert total is not None
        return DatadogQueries(total=total, errors=expand(ratio.errors), good=expand(ratio.good))
    return None
