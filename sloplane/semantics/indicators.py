"""Every SLI kind described once, as what it counts; printed as PromQL text and as grouped reads.

A *derived* SLI (http, latency, probe, deployment) is fully described by two signed sums of counted
reads — bad events and all events — each read being `function(metric{labels}[window])` summed over
series (`EventCounts`). The same description is printed as the PromQL templates recording rules,
Argo analysis and Spinnaker canaries use (`prometheus_queries`), and as the grouped reads the
evaluator batches a fleet's questions with (`event_terms`): a rule, a gate and `explain` cannot
count different things. Hand-written SLIs (ratio, raw, threshold) are their author's query text with
the stage selector put in; composites are described by their parts (None here).

A subject counts its own stage and, for production, the stages marked `countsTowardProduction`
(`counted_stages`); `SubjectIndicator` adds them up, once, for every printer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sloplane.core.durations import format_duration
from sloplane.core.names import ARGO_EVENTS_METRIC, SLOPLANE_DECISIONS_METRIC
from sloplane.declaration.model import Spec
from sloplane.declaration.sli import (
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
from sloplane.semantics.promql import Aggregation, EventTerms, Term, WindowedQueries, expand_selector, promql_matchers
from sloplane.semantics.promql import quote as _quote
from sloplane.semantics.subjects import Subject, counted_stages

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
class Count:
    """One counted read, `function(metric{labels, extra}[window])` summed over series, with a sign."""

    function: str
    """`increase` for counters; `count_over_time` / `sum_over_time` for 0/1 gauges (probes)."""
    metric: str
    labels: tuple[tuple[str, str], ...]
    """Selector labels, sorted by name."""
    extra: tuple[str, ...] = ()
    """Raw matchers that are not plain equalities (`code=~"5.."`, `le="0.3"`)."""
    sign: int = 1

    def promql(self) -> str:
        """`sum(function(metric{...}[{{window}}]))`."""
        selector = promql_matchers(dict(self.labels), self.extra)
        return f"sum({self.function}({self.metric}{selector}[{WINDOW_PLACEHOLDER}]))"

    def term(self) -> Term:
        """The same read as a grouped term: one `sum by (label names)` answers every SLI of this shape."""
        keys = tuple(name for name, _ in self.labels)
        return Term(
            self.sign, Aggregation(self.function, self.metric, keys, self.extra), tuple(v for _, v in self.labels)
        )


def _count(function: str, metric: str, labels: dict[str, str], extra: tuple[str, ...] = (), sign: int = 1) -> Count:
    return Count(function, metric, tuple(sorted(labels.items())), extra, sign)


def _sum_text(counts: tuple[Count, ...]) -> str:
    """A signed sum of counts as PromQL: `a - b + c`."""
    text = counts[0].promql()
    for count in counts[1:]:
        text += f" {'-' if count.sign < 0 else '+'} {count.promql()}"
    return text


@dataclass(frozen=True)
class EventCounts:
    """Bad and all events of a derived SLI, each a signed sum of counted reads."""

    bad: tuple[Count, ...]
    total: tuple[Count, ...]

    def queries(self) -> WindowedQueries:
        """PromQL templates: bad events, all events, and their ratio."""
        errors, total = _sum_text(self.bad), _sum_text(self.total)
        return WindowedQueries(error_ratio=f"({errors}) / ({total})", errors=errors, total=total)

    def terms(self) -> EventTerms:
        """Grouped reads of the same counts."""
        return EventTerms(tuple(c.term() for c in self.bad), tuple(c.term() for c in self.total))


def status_code_regex(errors: HttpErrors) -> str:
    """['5xx', '429'] -> '5..|429' (anchored by PromQL's =~)."""
    return "|".join(code.lower().replace("x", ".") for code in errors.codes)


def _bucket_bound(threshold: timedelta) -> str:
    """The `le` matcher for a latency threshold; whole seconds match both Go's `1` and Python's `1.0`."""
    seconds = threshold.total_seconds()
    if seconds.is_integer():
        return f'le=~"{int(seconds)}(\\\\.0)?"'
    return f"le={_quote(repr(seconds))}"


def deployment_reasons(sli: DeploymentSLI) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(bad, all) event reasons of a deployment SLI: the declaration's, else the source's defaults."""
    bad, every = DEPLOYMENT_REASONS[(sli.source, sli.measure)]
    return tuple(sli.bad_reasons or bad), tuple(sli.all_reasons or every)


def event_counts(sli: SLI, selector: dict[str, str]) -> EventCounts | None:
    """The description of a derived SLI with a stage's labels merged in; None for every other kind."""
    if sli.http is not None:
        labels = {**sli.http.selector, **selector}
        code = f"{sli.http.errors.label}=~{_quote(status_code_regex(sli.http.errors))}"
        return EventCounts(
            (_count("increase", sli.http.metric, labels, (code,)),), (_count("increase", sli.http.metric, labels),)
        )
    if sli.latency is not None:
        labels = {**sli.latency.selector, **selector}
        count = _count("increase", f"{sli.latency.metric}_count", labels)
        bound = (_bucket_bound(sli.latency.threshold),)
        return EventCounts((count, _count("increase", f"{sli.latency.metric}_bucket", labels, bound, -1)), (count,))
    if sli.probe is not None:
        labels = {**sli.probe.selector, **selector}
        count = _count("count_over_time", sli.probe.metric, labels)
        return EventCounts((count, _count("sum_over_time", sli.probe.metric, labels, sign=-1)), (count,))
    if sli.deployment is not None:
        bad_reasons, all_reasons = deployment_reasons(sli.deployment)
        labels = {**sli.deployment.selector, **selector}
        is_argo = sli.deployment.source is DeploymentSource.ARGO_ROLLOUTS
        metric, label = (ARGO_EVENTS_METRIC, "reason") if is_argo else (SLOPLANE_DECISIONS_METRIC, "decision")
        bad = _count("increase", metric, labels, (f"{label}=~{_quote('|'.join(bad_reasons))}",))
        every = _count("increase", metric, labels, (f"{label}=~{_quote('|'.join(all_reasons))}",))
        return EventCounts((bad,), (every,))
    return None


def _handwritten(queries: BackendQueries, selector: dict[str, str]) -> str | None:
    query = queries.for_backend(Backend.PROMETHEUS)
    return None if query is None else expand_selector(query, selector, Backend.PROMETHEUS)


def _ratio(errors: str, total: str) -> WindowedQueries:
    return WindowedQueries(error_ratio=f"({errors}) / ({total})", errors=errors, total=total)


def prometheus_queries(sli: SLI, selector: dict[str, str], interval: timedelta) -> WindowedQueries | None:
    """PromQL templates for an SLI, with a stage's labels merged in; None when not expressible.

    Composite SLIs return None: their ratio is computed from their components' recorded ratios.
    """
    counts = event_counts(sli, selector)
    if counts is not None:
        return counts.queries()
    if sli.ratio is not None:
        total = _handwritten(sli.ratio.total, selector)
        numerator = _handwritten(sli.ratio.numerator, selector)
        if total is None or numerator is None:
            return None
        errors = numerator if sli.ratio.errors is not None else f"({total}) - ({numerator})"
        return _ratio(errors, total)
    if sli.raw is not None:
        raw = _handwritten(sli.raw.error_ratio, selector)
        return None if raw is None else WindowedQueries(error_ratio=raw)
    if sli.threshold is not None:
        query = _handwritten(sli.threshold.query, selector)
        if query is None:
            return None
        bad = f"({query}) {_INVERSE_OPERATOR[sli.threshold.op]} bool {sli.threshold.value!r}"
        step = format_duration(interval)
        return WindowedQueries(error_ratio=f"avg(avg_over_time(({bad})[{WINDOW_PLACEHOLDER}:{step}]))")
    return None


def event_terms(sli: SLI, selector: dict[str, str]) -> EventTerms | None:
    """The grouped form of a derived SLI's bad and all events (the same counts as `prometheus_queries`)."""
    counts = event_counts(sli, selector)
    return None if counts is None else counts.terms()


def _or_zero(query: str) -> str:
    return f"({query} or vector(0))"


@dataclass(frozen=True)
class SubjectIndicator:
    """A subject's SLI read over each stage it counts: its own, plus counted stages for production."""

    parts: tuple[WindowedQueries | None, ...]
    """PromQL templates, one per counted stage (one with no stage labels when unstaged)."""
    counts: tuple[EventCounts, ...] | None
    """The same, described, for derived SLIs (None for hand-written and composite ones)."""

    @property
    def queries(self) -> WindowedQueries | None:
        """One set of templates: the stages' event counts added up.

        Raw and threshold SLIs have no counts to add, so their production stage measures its own
        traffic only (the first part); composites have none (None).
        """
        first = self.parts[0]
        if first is None or len(self.parts) == 1:
            return first
        if any(part is None or part.errors is None or part.total is None for part in self.parts):
            return first
        errors = " + ".join(_or_zero(part.errors) for part in self.parts if part and part.errors)
        total = " + ".join(_or_zero(part.total) for part in self.parts if part and part.total)
        return WindowedQueries(error_ratio=f"({errors}) / ({total})", errors=errors, total=total)

    @property
    def terms(self) -> EventTerms | None:
        """Grouped reads of the stages' counts added up; None for SLIs that are not derived."""
        if self.counts is None:
            return None
        total = self.counts[0].terms()
        for more in self.counts[1:]:
            total = total + more.terms()
        return total


def subject_indicator(spec: Spec, subject: Subject) -> SubjectIndicator:
    """The subject's SLI over its counted stages (see `SubjectIndicator`)."""
    selectors = [dict(stage.selector) for stage in counted_stages(spec, subject)] or [{}]
    described = [event_counts(spec.sli, selector) for selector in selectors]
    counts = tuple(c for c in described if c is not None)
    if len(counts) == len(described):  # a derived SLI: its text is printed from the description
        return SubjectIndicator(tuple(c.queries() for c in counts), counts)
    return SubjectIndicator(
        tuple(prometheus_queries(spec.sli, selector, spec.interval) for selector in selectors), None
    )
