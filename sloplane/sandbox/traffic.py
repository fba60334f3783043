"""Synthetic traffic of each SLI kind, and the hand numbers a correct query must return for it.

A `Traffic` turns a `Timeline` into the series of one SLI kind's shape (http status codes, a latency
histogram, a probe gauge, Argo Rollouts events); `expected_counts` computes what Prometheus should
answer from the same segments, never from Prometheus. It is kept apart from the timeline arithmetic
(`sloplane.sandbox.timeline`) and from writing and serving, because this is the part tests and
benchmarks read when they build a scenario and check a number.

Why the numbers are exact, in Prometheus 2.42 (tests/test_sandbox.py checks each point):

- Samples lie exactly on step boundaries and range windows are closed at both ends, so
  `increase(x[w])` at a sample instant, with `w` a multiple of the step, sees a sample at each end of
  the window and extrapolates nothing: it is the difference of two counter values.
- Every synthetic counter is 0 at the history's first sample, so a window reaching back before the
  history is not extrapolated either (Prometheus never extrapolates a counter below zero): it counts
  the whole history up to its end.
- `count_over_time(g[w])` counts the w/step + 1 samples of the closed window; probe expectations
  count the same samples.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from sloplane.sandbox.openmetrics import Series
from sloplane.sandbox.timeline import STEP, PerStep, Segment, Timeline


@dataclass(frozen=True)
class Traffic(ABC):
    """Synthetic traffic of one SLI kind: a timeline, a metric and labels, and the series they make."""

    timeline: Timeline
    metric: str
    labels: Mapping[str, str] = field(default_factory=dict)

    counts_samples: ClassVar[bool] = False
    """True when an SLI counts samples in a window (probes), False when it reads counter increases."""

    @abstractmethod
    def series(self) -> list[Series]:
        """The series Prometheus will hold for this traffic."""

    def _counter(self, name: str, extra: Mapping[str, str], per_step: PerStep) -> Series:
        timeline = self.timeline
        values = timeline.counter_values(per_step)
        samples = [(float(timeline.time_of(index)), value) for index, value in enumerate(values)]
        return Series(name, {**self.labels, **extra}, "counter", samples)


@dataclass(frozen=True)
class HttpTraffic(Traffic):
    """The http shorthand's shape: one counter, good and bad requests told apart by a status code label."""

    code_label: str = "code"
    bad_code: str = "500"
    good_code: str = "200"

    def series(self) -> list[Series]:
        """The good-code and the bad-code series (together: every request)."""
        return [
            self._counter(self.metric, {self.code_label: self.good_code}, _good),
            self._counter(self.metric, {self.code_label: self.bad_code}, _bad),
        ]


@dataclass(frozen=True)
class LatencyTraffic(Traffic):
    """A latency histogram: `_bucket{le=threshold}` counts fast requests, `+Inf` and `_count` all of them.

    `metric` is the histogram's base name, as in a latency SLI; slow requests are the "bad" ones.
    """

    le: str = "0.3"

    def series(self) -> list[Series]:
        """The threshold bucket, the +Inf bucket and `_count`."""
        return [
            self._counter(f"{self.metric}_bucket", {"le": self.le}, _good),
            self._counter(f"{self.metric}_bucket", {"le": "+Inf"}, _all),
            self._counter(f"{self.metric}_count", {}, _all),
        ]


@dataclass(frozen=True)
class ProbeTraffic(Traffic):
    """A probe gauge (`probe_success`): one probe per step, 1 when it passed, 0 when it failed.

    Failures are spread evenly: sample i fails when floor(cumulative error ratio) grows at step i,
    so a 2% segment fails every 50th probe. There is no sample 0: probe i reports step i.
    """

    counts_samples: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for segment in self.timeline.segments:
            if segment.events_per_step != 1:
                raise ValueError("a probe runs once per step: give segments with events_per_step=1")

    def series(self) -> list[Series]:
        """The probe gauge, one 0/1 sample per step."""
        timeline = self.timeline
        samples = [
            (float(timeline.time_of(index)), 0.0 if failed else 1.0)
            for index, failed in enumerate(timeline.failure_flags(), start=1)
        ]
        return [Series(self.metric, dict(self.labels), "gauge", samples)]


@dataclass(frozen=True)
class RolloutTraffic(Traffic):
    """Argo Rollouts' `rollout_events_total{reason=...}`: every event starts a rollout, bad ones abort.

    Started (`RolloutUpdated`) grows by all events, completed by the good and aborted by the bad, so
    both deployment measures (aborted / (completed + aborted) and aborted / updated) see the same
    error ratio and `expected_counts` fits either.
    """

    reason_label: str = "reason"
    bad_reason: str = "RolloutAborted"
    good_reason: str = "RolloutCompleted"
    started_reason: str = "RolloutUpdated"

    def series(self) -> list[Series]:
        """Started, completed and aborted rollouts."""
        return [
            self._counter(self.metric, {self.reason_label: self.started_reason}, _all),
            self._counter(self.metric, {self.reason_label: self.good_reason}, _good),
            self._counter(self.metric, {self.reason_label: self.bad_reason}, _bad),
        ]


def _bad(segment: Segment) -> float:
    return segment.bad_per_step


def _good(segment: Segment) -> float:
    return segment.good_per_step


def _all(segment: Segment) -> float:
    return segment.all_per_step


def http_traffic(
    segments: Sequence[Segment],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta = STEP,
    metric: str = "http_requests_total",
    labels: Mapping[str, str] | None = None,
    code_label: str = "code",
    bad_code: str = "500",
    good_code: str = "200",
) -> HttpTraffic:
    """Requests counted by status code (the http SLI shorthand); give `start` or `end`."""
    timeline = Timeline.build(segments, start=start, end=end, step=step)
    return HttpTraffic(timeline, metric, dict(labels or {}), code_label, bad_code, good_code)


def le_label(threshold: timedelta) -> str:
    """The `le` a Go client writes for a bucket bound: `0.3`, `1` (sloplane's queries accept `1` and `1.0`)."""
    seconds = threshold.total_seconds()
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def latency_traffic(
    segments: Sequence[Segment],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta = STEP,
    metric: str = "http_request_duration_seconds",
    threshold: timedelta = timedelta(milliseconds=300),
    labels: Mapping[str, str] | None = None,
) -> LatencyTraffic:
    """A latency histogram whose slow requests (above `threshold`) are the segments' errors."""
    timeline = Timeline.build(segments, start=start, end=end, step=step)
    return LatencyTraffic(timeline, metric, dict(labels or {}), le_label(threshold))


def probe_traffic(
    segments: Sequence[Segment],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta = STEP,
    metric: str = "probe_success",
    labels: Mapping[str, str] | None = None,
) -> ProbeTraffic:
    """Probe results, one per step (segments need events_per_step=1)."""
    timeline = Timeline.build(segments, start=start, end=end, step=step)
    return ProbeTraffic(timeline, metric, dict(labels or {}))


def rollout_traffic(
    segments: Sequence[Segment],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta = STEP,
    metric: str = "rollout_events_total",
    labels: Mapping[str, str] | None = None,
    bad_reason: str = "RolloutAborted",
    good_reason: str = "RolloutCompleted",
    started_reason: str = "RolloutUpdated",
) -> RolloutTraffic:
    """Argo Rollouts events; fractional events per step are fine (counters only need to grow)."""
    timeline = Timeline.build(segments, start=start, end=end, step=step)
    return RolloutTraffic(
        timeline,
        metric,
        dict(labels or {}),
        bad_reason=bad_reason,
        good_reason=good_reason,
        started_reason=started_reason,
    )


def expected_counts(traffic: Traffic, window_end: datetime, window: timedelta) -> tuple[float, float]:
    """(bad, total) events over `window` ending at `window_end`, computed from the segments by hand.

    Counter shapes: what `sum(increase(...[window]))` returns at `window_end` (steps inside the
    window; a window reaching before the history counts the history). Probes: failed and all
    samples in the closed window, what `count_over_time` and `sum_over_time` see. `window_end` must be
    a sample instant within the history and `window` a multiple of the step. A window holding a single
    sample is (0, 0); Prometheus returns no result there.
    """
    timeline = traffic.timeline
    upto = timeline.index_of(window_end)
    after = upto - timeline.steps_in(window)
    if traffic.counts_samples:
        first = max(after, 1)
        if first > upto:
            return 0.0, 0.0
        failures = timeline.failures_through(upto) - timeline.failures_through(first - 1)
        return float(failures), float(upto - first + 1)
    after = max(after, 0)
    return timeline.counted(after, upto, _bad), timeline.counted(after, upto, _all)


def incident_day(
    *,
    events_per_step: float = 600.0,
    baseline: float = 0.001,
    incident_ratio: float = 0.02,
    incident_at: timedelta = timedelta(hours=14),
    incident_for: timedelta = timedelta(minutes=30),
    day: timedelta = timedelta(days=1),
) -> list[Segment]:
    """A day of steady traffic with one incident: what `make demo` shows and a gate should catch."""
    pieces = [(incident_at, baseline), (incident_for, incident_ratio), (day - incident_at - incident_for, baseline)]
    if pieces[2][0] < timedelta(0):
        raise ValueError("the incident must end within the day")
    return [Segment(duration, events_per_step, ratio) for duration, ratio in pieces if duration > timedelta(0)]


def traffic_series(*traffics: Traffic) -> list[Series]:
    """Every series of several traffics, for one sandbox."""
    return [series for traffic in traffics for series in traffic.series()]
