"""Canary attribution: is the new stage worse than the one it replaces, over the same minutes?

A canary that breaches while the stable stage breaches as well is having the same bad day as
everyone else; rolling it back fixes nothing. A canary that is worse than stable over the same
window is the release's fault. "Worse" needs evidence, not a single unlucky minute: both stages
are read as one error ratio per step (say per minute) over the analysis window, and the canary's
values are compared with the baseline's by a one-sided Mann-Whitney U test. It makes no
assumption about the distribution of errors (bursty errors break the independence a pooled
two-proportion test would assume), and its p-value is reported. A minimum effect size, in burn
rates of the canary's budget, keeps a statistically real but negligible difference from ever
failing a release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import Attribution, GatePolicy, Stage
from sloplane.evaluator.measuring.backends.base import MetricsBackend, RangeSeries
from sloplane.evaluator.measuring.cache import TTLCache
from sloplane.semantics.indicators import prometheus_queries


@dataclass(frozen=True)
class StageIntervals:
    """One stage's traffic, step by step: bad and all events per interval that had traffic."""

    stage: str
    bad: tuple[float, ...]
    total: tuple[float, ...]

    @property
    def ratios(self) -> tuple[float, ...]:
        """Error ratio of each interval with traffic."""
        return tuple(b / t for b, t in zip(self.bad, self.total, strict=True))

    @property
    def events(self) -> float:
        """All events over the window."""
        return math.fsum(self.total)

    @property
    def mean_ratio(self) -> float | None:
        """Bad over all events across the window (events-weighted, not a mean of ratios)."""
        events = self.events
        return math.fsum(self.bad) / events if events > 0 else None


@dataclass(frozen=True)
class Comparison:
    """The canary against its baseline over one window: the inputs and the verdict's numbers."""

    canary: StageIntervals
    baseline: StageIntervals
    window: timedelta
    step: timedelta
    p_value: float | None
    effect: float | None
    """(canary ratio − baseline ratio) / the canary's error budget: extra burn rate the canary adds."""
    verdict: str
    """`worse`, `comparable`, `low-traffic` or `too-few-intervals`."""

    def values(self) -> dict[str, Any]:
        """The numbers for a decision's reasons."""
        return {
            "canary_stage": self.canary.stage,
            "baseline_stage": self.baseline.stage,
            "canary_events": self.canary.events,
            "baseline_events": self.baseline.events,
            "canary_error_ratio": self.canary.mean_ratio,
            "baseline_error_ratio": self.baseline.mean_ratio,
            "canary_intervals": len(self.canary.total),
            "baseline_intervals": len(self.baseline.total),
            "p_value": self.p_value,
            "effect_burn_rate": self.effect,
            "window_seconds": self.window.total_seconds(),
            "step_seconds": self.step.total_seconds(),
            "test": "mann-whitney-u, one-sided (canary greater)",
        }


def compare(
    canary: StageIntervals,
    baseline: StageIntervals,
    *,
    budget: float,
    policy: Attribution,
    window: timedelta,
    step: timedelta,
) -> Comparison:
    """The verdict: too little canary traffic, too few intervals, significantly worse, or comparable."""

    def result(verdict: str, p_value: float | None = None, effect: float | None = None) -> Comparison:
        return Comparison(canary, baseline, window, step, p_value, effect, verdict)

    if canary.events < policy.min_canary_events:
        return result("low-traffic")
    if len(canary.total) < policy.min_intervals or len(baseline.total) < policy.min_intervals:
        return result("too-few-intervals")
    canary_ratio, baseline_ratio = canary.mean_ratio, baseline.mean_ratio
    assert canary_ratio is not None and baseline_ratio is not None  # both have traffic (checked above)
    effect = (canary_ratio - baseline_ratio) / budget
    if len(set(canary.ratios) | set(baseline.ratios)) == 1:
        return result("comparable", 1.0, effect)  # identical values everywhere: nothing to rank
    from scipy.stats import mannwhitneyu  # noqa: PLC0415 - scipy takes 0.7 s to import; only canary gates need it

    p_value = float(mannwhitneyu(canary.ratios, baseline.ratios, alternative="greater").pvalue)
    worse = p_value < policy.alpha and effect >= policy.min_effect
    return result("worse" if worse else "comparable", p_value, effect)


def _points(series: list[RangeSeries]) -> dict[float, float]:
    """Values by timestamp, summed over series (a query may not aggregate to one series)."""
    found: dict[float, float] = {}
    for one in series:
        for stamp, value in one.points:
            if math.isfinite(value):
                found[stamp] = found.get(stamp, 0.0) + value
    return found


class IntervalReader:
    """Reads a stage's per-step event counts with range queries, cached per (query, instant)."""

    def __init__(self, backend: MetricsBackend, ttl_seconds: float) -> None:
        self.backend = backend
        self._cache: TTLCache[list[RangeSeries]] = TTLCache(ttl_seconds, max_entries=10_000)

    def _range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        key = (expression, start.timestamp(), end.timestamp(), step.total_seconds())
        cached = self._cache.get(key)
        if cached is None:
            cached = self.backend.query_range(expression, start, end, step)
            self._cache.put(key, cached)
        return cached

    def read(
        self, declaration: Declaration, stage: Stage, at: datetime, *, window: timedelta, step: timedelta
    ) -> StageIntervals | None:
        """Bad and all events in each step of the window ending at `at`; None when the SLI has no counts."""
        spec = declaration.spec
        queries = prometheus_queries(spec.sli, stage.selector, spec.interval)
        if queries is None:
            return None
        stepped = queries.at(step)
        if stepped.errors is None or stepped.total is None:
            return None
        start = at - window + step
        totals = _points(self._range(stepped.total, start, at, step))
        bads = _points(self._range(f"({stepped.errors}) or vector(0)", start, at, step))
        stamps = sorted(stamp for stamp, total in totals.items() if total > 0)
        return StageIntervals(
            stage.name, tuple(min(bads.get(s, 0.0), totals[s]) for s in stamps), tuple(totals[s] for s in stamps)
        )


def baseline_stage(declaration: Declaration, stage: str | None) -> Stage | None:
    """The stage a gated stage is compared with; None when there is nothing to compare."""
    spec = declaration.spec
    policy = spec.effective_gate.attribution
    if stage is None or not spec.stages or not policy.enabled:
        return None
    chosen = spec.stage(policy.baseline) if policy.baseline is not None else spec.production_stage
    if chosen is None or chosen.name == stage:
        return None
    return chosen


def attribution_window(policy: GatePolicy, interval: timedelta) -> tuple[timedelta, timedelta]:
    """(window, step) for the comparison: declared, else the analysis window and the evaluation interval."""
    attribution = policy.attribution
    return attribution.window or policy.analysis_window, attribution.step or interval
