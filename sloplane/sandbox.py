"""A throw-away local Prometheus holding synthetic history whose numbers are known exactly.

The runtime evaluator's integration tests compare its numbers with hand computations to 1e-9,
`make demo` shows a synthetic day that contains an incident, and benchmarks need a real backend.
All three need a real Prometheus (the evaluator's PromQL must meet a real engine) and history that
is simple enough to compute by hand. So traffic is a list of `Segment`s (constant events per step
and error ratio), a `Traffic` turns them into series of one SLI kind's shape, `expected_counts`
computes the hand numbers from the same segments (never from Prometheus), and `PrometheusSandbox`
writes the series as OpenMetrics, turns them into TSDB blocks with promtool and serves them.

Why the numbers are exact, in Prometheus 2.42 (tests/test_sandbox.py checks each point):

- Samples lie exactly on step boundaries and range windows are closed at both ends, so
  `increase(x[w])` at a sample instant, with `w` a multiple of the step, sees a sample at each end of
  the window and extrapolates nothing: it is the difference of two counter values.
- Every synthetic counter is 0 at the history's first sample, so a window reaching back before the
  history is not extrapolated either (Prometheus never extrapolates a counter below zero): it counts
  the whole history up to its end.
- `count_over_time(g[w])` counts the w/step + 1 samples of the closed window; probe expectations
  count the same samples.

What promtool 2.42 does with OpenMetrics (found by trying): it stores every sample under the name
written on the sample line and ignores `# TYPE` for storage. `# TYPE http_requests counter` and
`# TYPE http_requests_total counter` followed by `http_requests_total{...}` lines both give the
series `http_requests_total`; a counter sample line without `_total` is stored without it; a family
name that does not match its samples, repeated `# TYPE` lines, interleaved families and interleaved
series are all accepted silently. A sample whose timestamp is not after the previous one of the same series is
dropped silently, and a file without the final `# EOF` is refused. So this module writes OpenMetrics
by the rules (family `http_requests`, samples `http_requests_total`, histograms as one family of
`_bucket`/`_count` series) and checks sample order itself instead of relying on promtool.
"""

from __future__ import annotations

import atexit
import bisect
import ctypes
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import requests

STEP = timedelta(seconds=60)
"""Default distance between synthetic samples (a typical scrape interval)."""

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


class SandboxError(RuntimeError):
    """The sandbox could not be prepared, started or queried; the message says why (with log lines)."""


# --- synthetic traffic --------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A stretch of constant traffic: `events_per_step` events per step, `error_ratio` of them bad.

    Fractional events are allowed: counters are floats, and exact fractions keep hand sums simple.
    """

    duration: timedelta
    events_per_step: float
    error_ratio: float

    def __post_init__(self) -> None:
        if self.duration <= timedelta(0):
            raise ValueError(f"segment duration must be positive, got {self.duration}")
        if not (math.isfinite(self.events_per_step) and self.events_per_step >= 0):
            raise ValueError(f"events_per_step must be a finite number >= 0, got {self.events_per_step}")
        if not 0 <= self.error_ratio <= 1:
            raise ValueError(f"error_ratio must be within [0, 1], got {self.error_ratio}")

    @property
    def bad_per_step(self) -> float:
        """How much the bad counter grows per step."""
        return self.events_per_step * self.error_ratio

    @property
    def good_per_step(self) -> float:
        """How much the good counter grows per step (the rest, so good + bad is the events)."""
        return self.events_per_step - self.bad_per_step

    @property
    def all_per_step(self) -> float:
        """How much a total counter grows per step."""
        return self.events_per_step


PerStep = Callable[[Segment], float]


def _whole_seconds(delta: timedelta, what: str) -> int:
    if delta.microseconds or delta <= timedelta(0):
        raise ValueError(f"{what} must be a positive whole number of seconds, got {delta}")
    return int(delta.total_seconds())


def _unix_seconds(instant: datetime) -> int:
    """Whole Unix seconds of an aware datetime (synthetic samples never fall between seconds)."""
    if instant.tzinfo is None:
        raise ValueError(f"give times with a time zone (UTC), got naive {instant}")
    if instant.microsecond:
        raise ValueError(f"{instant} is not on a whole second")
    return int(instant.timestamp())


def aligned_now(step: timedelta = STEP) -> datetime:
    """Now (UTC) rounded down to the step: an end for history that tools without a time parameter read."""
    seconds = _whole_seconds(step, "step")
    now = int(time.time())
    return datetime.fromtimestamp(now - now % seconds, UTC)


@dataclass(frozen=True)
class Timeline:
    """Segments laid out from `start`, one sample per step: sample i is at start + i*step, i = 0..steps.

    Step i (1-based) is the interval that ends at sample i; it belongs to the segment covering it.
    A counter's value at sample i is the sum of steps 1..i, computed per segment as
    `prefix + k * per_step` so that rounding does not accumulate over long histories.
    """

    start: datetime
    segments: tuple[Segment, ...]
    step: timedelta = STEP

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.segments))
        if not self.segments:
            raise ValueError("a timeline needs at least one segment")
        step = _whole_seconds(self.step, "step")
        if _unix_seconds(self.start) % step:
            raise ValueError(f"start {self.start.isoformat()} is not aligned to the {step}s step")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        for segment in self.segments:
            if _whole_seconds(segment.duration, "segment duration") % step:
                raise ValueError(f"segment duration {segment.duration} is not a multiple of the {step}s step")

    @classmethod
    def build(
        cls,
        segments: Sequence[Segment],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        step: timedelta = STEP,
    ) -> Timeline:
        """A timeline from its start, or from its end (e.g. `aligned_now()`): exactly one of them."""
        if (start is None) == (end is None):
            raise ValueError("give exactly one of start or end")
        if start is None:
            assert end is not None
            start = end - sum((segment.duration for segment in segments), timedelta(0))
        return cls(start, tuple(segments), step)

    @property
    def step_seconds(self) -> int:
        """The step in whole seconds."""
        return int(self.step.total_seconds())

    @property
    def start_seconds(self) -> int:
        """Unix time of sample 0."""
        return int(self.start.timestamp())

    @cached_property
    def _spans(self) -> tuple[tuple[int, int, Segment], ...]:
        """(first step, last step, segment): steps first..last (1-based, inclusive) belong to segment."""
        spans = []
        first = 1
        for segment in self.segments:
            count = int(segment.duration.total_seconds()) // self.step_seconds
            spans.append((first, first + count - 1, segment))
            first += count
        return tuple(spans)

    @property
    def steps(self) -> int:
        """Number of steps; there are steps + 1 samples."""
        return self._spans[-1][1]

    @property
    def end(self) -> datetime:
        """Time of the last sample."""
        return self.start + self.steps * self.step

    def time_of(self, index: int) -> int:
        """Unix time of sample `index`."""
        return self.start_seconds + index * self.step_seconds

    def index_of(self, instant: datetime) -> int:
        """The sample at `instant`; refuses instants between samples or outside the history."""
        offset = _unix_seconds(instant) - self.start_seconds
        if offset % self.step_seconds:
            raise ValueError(f"{instant.isoformat()} is not on a sample (step {self.step_seconds}s)")
        index = offset // self.step_seconds
        if not 0 <= index <= self.steps:
            raise ValueError(f"{instant.isoformat()} is outside the history {self.start} .. {self.end}")
        return index

    def steps_in(self, window: timedelta) -> int:
        """How many steps a window spans; windows must be whole steps so both ends fall on samples."""
        seconds = _whole_seconds(window, "window")
        if seconds % self.step_seconds:
            raise ValueError(f"window {window} is not a multiple of the {self.step_seconds}s step")
        return seconds // self.step_seconds

    def counter_values(self, per_step: PerStep) -> list[float]:
        """A counter's value at every sample (steps + 1 values, starting at 0)."""
        values = [0.0]
        prefix = 0.0
        for first, last, segment in self._spans:
            increment = per_step(segment)
            values.extend(prefix + k * increment for k in range(1, last - first + 2))
            prefix = values[-1]
        return values

    def counted(self, after: int, upto: int, per_step: PerStep) -> float:
        """The hand sum: what a counter gains over steps after+1..upto, segment overlap by overlap."""
        total = 0.0
        for first, last, segment in self._spans:
            overlap = min(last, upto) - max(first, after + 1) + 1
            if overlap > 0:
                total += overlap * per_step(segment)
        return total

    @cached_property
    def _error_units(self) -> tuple[int, tuple[int, ...]]:
        """Error ratios as integers over one common denominator, so failure counts are exact integers."""
        ratios = [Fraction(repr(segment.error_ratio)) for segment in self.segments]
        denominator = math.lcm(*(ratio.denominator for ratio in ratios))
        return denominator, tuple(int(ratio * denominator) for ratio in ratios)

    def failures_through(self, index: int) -> int:
        """floor(sum of the error ratios of steps 1..index): failures so far, with no rounding at all."""
        denominator, units = self._error_units
        total = 0
        for (first, last, _), unit in zip(self._spans, units, strict=True):
            overlap = min(last, index) - first + 1
            if overlap > 0:
                total += overlap * unit
        return total // denominator

    def failure_flags(self) -> list[bool]:
        """For steps 1..steps: whether the step holds a failure (floor of the cumulative ratio grew)."""
        denominator, units = self._error_units
        flags = []
        cumulative = 0
        for (first, last, _), unit in zip(self._spans, units, strict=True):
            for _ in range(last - first + 1):
                before = cumulative // denominator
                cumulative += unit
                flags.append(cumulative // denominator > before)
        return flags


@dataclass(frozen=True)
class Series:
    """One time series: name, labels, counter or gauge, and (unix seconds, value) samples in time order.

    `name` is the name queried (`http_requests_total`); the OpenMetrics family is derived when writing.
    """

    name: str
    labels: Mapping[str, str]
    kind: Literal["counter", "gauge"]
    samples: Sequence[tuple[float, float]]

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")
        for label in self.labels:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} on {self.name}")
        if self.kind not in ("counter", "gauge"):
            raise ValueError(f"kind must be 'counter' or 'gauge', got {self.kind!r}")
        previous = -math.inf
        for timestamp, _ in self.samples:
            if not timestamp > previous:
                raise ValueError(f"{self.identity}: sample times must increase strictly (promtool drops the rest)")
            previous = timestamp

    @property
    def identity(self) -> str:
        """`name{labels}` with sorted labels: what Prometheus considers the same series."""
        return self.name + _format_labels(self.labels)


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


# --- OpenMetrics --------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels.items())) + "}"


def _number(value: float) -> str:
    """Exact text for a float: repr round-trips, and OpenMetrics spells infinities `+Inf`/`-Inf`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _family(series: Series, histograms: set[str]) -> tuple[str, str]:
    """(family, OpenMetrics type) of a series: counters are `<family>_total`, histogram parts grouped."""
    if series.kind == "gauge":
        return series.name, "gauge"
    if series.name.endswith("_total"):
        return series.name.removesuffix("_total"), "counter"
    for suffix in _HISTOGRAM_SUFFIXES:
        base = series.name.removesuffix(suffix)
        if series.name.endswith(suffix) and base in histograms:
            return base, "histogram"
    return series.name, "unknown"


def _families(series: Iterable[Series]) -> dict[tuple[str, str], list[Series]]:
    """Series grouped by family in first-appearance order (OpenMetrics forbids interleaved families)."""
    members = list(series)
    histograms = {
        item.name.removesuffix("_bucket")
        for item in members
        if item.kind == "counter" and item.name.endswith("_bucket") and "le" in item.labels
    }
    families: dict[tuple[str, str], list[Series]] = {}
    kinds: dict[str, str] = {}
    seen: set[str] = set()
    for item in members:
        if item.identity in seen:
            raise ValueError(f"series {item.identity} given twice")
        seen.add(item.identity)
        family, kind = _family(item, histograms)
        if kinds.setdefault(family, kind) != kind:
            raise ValueError(f"metric family {family} would be both {kinds[family]} and {kind}")
        families.setdefault((family, kind), []).append(item)
    return families


def write_openmetrics(series: Iterable[Series], path: Path) -> Path:
    """Write series as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`; returns path.

    Counters `x_total` go under `# TYPE x counter`, histogram parts under `# TYPE x histogram`, other
    counters as `unknown` (OpenMetrics counters must end in `_total`); series one after another,
    samples in time order, then `# EOF`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for (family, kind), members in _families(series).items():
            out.write(f"# TYPE {family} {kind}\n")
            for item in members:
                prefix = item.identity
                out.writelines(f"{prefix} {_number(value)} {_number(stamp)}\n" for stamp, value in item.samples)
        out.write("# EOF\n")
    return path


BLOCK_SECONDS = 2 * 3600
"""promtool 2.42 cuts OpenMetrics input into 2h blocks aligned to the epoch."""


def _split_by_block(series: Series) -> dict[int, Series]:
    """The series' samples per 2h block (key: block start in seconds), in one pass over sorted samples."""
    parts: dict[int, Series] = {}
    samples = series.samples
    first = 0
    while first < len(samples):
        key = int(samples[first][0] // BLOCK_SECONDS) * BLOCK_SECONDS
        last = bisect.bisect_left(samples, float(key + BLOCK_SECONDS), lo=first, key=lambda sample: sample[0])
        parts[key] = Series(series.name, series.labels, series.kind, samples[first:last])
        first = last
    return parts


def write_openmetrics_blocks(series: Iterable[Series], folder: Path) -> list[Path]:
    """One OpenMetrics file per 2h block, for `create-blocks-from openmetrics` to read once each.

    promtool 2.42 parses its whole input once per block it creates, so one file holding a week
    (84 blocks) takes minutes; per-block files take seconds and can be converted in parallel.
    """
    by_block: dict[int, list[Series]] = {}
    for item in series:
        for key, part in _split_by_block(item).items():
            by_block.setdefault(key, []).append(part)
    return [write_openmetrics(parts, Path(folder) / f"series-{key}.om") for key, parts in sorted(by_block.items())]


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now (the server retries if another process takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills the server if the Python process dies hard."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def _time_param(at: datetime | float) -> str:
    seconds = at.timestamp() if isinstance(at, datetime) else float(at)
    return _number(seconds)


Sample = tuple[dict[str, str], float]
"""One instant-vector element: its labels and its value."""


class PrometheusSandbox:
    """A local Prometheus 2.42 over synthetic history, for tests, `make demo` and benchmarks.

    Preparing (on the first `start()`): series are written to `<workdir>/openmetrics/` (one file per
    2h block, see `write_openmetrics_blocks`), every OpenMetrics file becomes TSDB blocks in
    `<workdir>/data`, and the server starts on a free port with no scrape targets and 3650d retention
    (blocks older than that, counted back from the newest block, would be deleted). Recording rules
    are then backfilled with `promtool tsdb create-blocks-from rules` against the running server into
    `<workdir>/rule-blocks`; a running server only sees new blocks after a reload, so the server is
    stopped, the blocks moved into the data folder, and the server started again.

    Backfilled rule samples are *not* on the data's step boundaries: like a real server, promtool
    evaluates a group at `interval * k + offset`, the offset a hash of the group's name and file.

    A work folder prepared before can be served again by giving neither series nor files (benchmarks
    reuse big histories that way). The server logs to `<workdir>/prometheus.log`. It never outlives
    its owner: `stop()` on leaving `with`, an atexit hook, a kill when starting fails, and (Linux,
    main thread) a parent-death signal.
    """

    def __init__(
        self,
        workdir: Path | str,
        series: Iterable[Series | Traffic] = (),
        *,
        openmetrics: Iterable[Path | str] = (),
        rule_files: Iterable[Path | str] = (),
        rule_interval: timedelta = STEP,
        rule_range: tuple[datetime, datetime] | None = None,
        port: int | None = None,
        ready_timeout: float = 30.0,
        prometheus: str = "prometheus",
        promtool: str = "promtool",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self._series = [part for item in series for part in ([item] if isinstance(item, Series) else item.series())]
        self._openmetrics = [Path(path).resolve() for path in openmetrics]
        self._rule_files = [Path(path).resolve() for path in rule_files]
        self._rule_interval = rule_interval
        self._rule_range = rule_range
        self._port = port
        self._ready_timeout = ready_timeout
        self._prometheus = prometheus
        self._promtool = promtool
        self._extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._prepared = False
        self._log_lock = threading.Lock()

    # paths and state

    @property
    def data_dir(self) -> Path:
        """The TSDB folder the server reads."""
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        """The server's log (every start appends to it)."""
        return self.workdir / "prometheus.log"

    @property
    def config_path(self) -> Path:
        """The server's configuration: no scrape targets, so nothing but the synthetic history exists."""
        return self.workdir / "prometheus.yml"

    @property
    def port(self) -> int:
        """The port the server listens on (kept across restarts)."""
        if self._port is None:
            raise SandboxError("the sandbox has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server's HTTP API, e.g. `http://127.0.0.1:40123`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, None when it is not running."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive (ready or not)."""
        return self._process is not None and self._process.poll() is None

    def time_range(self) -> tuple[datetime, datetime]:
        """First and last sample time held in the data folder's blocks (from their meta.json)."""
        bounds = [json.loads(meta.read_text(encoding="utf-8")) for meta in self.data_dir.glob("*/meta.json")]
        if not bounds:
            raise SandboxError(f"no TSDB blocks in {self.data_dir}")
        first_ms = min(int(meta["minTime"]) for meta in bounds)
        last_ms = max(int(meta["maxTime"]) for meta in bounds) - 1  # maxTime is exclusive
        return datetime.fromtimestamp(first_ms / 1000, UTC), datetime.fromtimestamp(last_ms / 1000, UTC)

    # lifecycle

    def __enter__(self) -> PrometheusSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> PrometheusSandbox:
        """Prepare the data on first use, then start the server and wait until it is ready."""
        if self.running:
            return self
        try:
            if self._prepared:
                self._launch()
            else:
                self._prepare()
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL after `timeout` seconds): a clean shutdown."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._forget()

    def kill(self) -> None:
        """SIGKILL and wait: what a crashed backend looks like to its clients."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._forget()

    def restart(self) -> PrometheusSandbox:
        """Stop (if running) and start again on the same port, over the same data."""
        self.stop()
        return self.start()

    def _forget(self) -> None:
        self._process = None
        atexit.unregister(self.kill)

    # preparation

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        inputs = [*self._openmetrics]
        if self._series:
            folder = self.workdir / "openmetrics"
            shutil.rmtree(folder, ignore_errors=True)
            inputs.extend(write_openmetrics_blocks(self._series, folder))
        if inputs and self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise SandboxError(f"{self.data_dir} already holds data; give the sandbox an empty work folder")
        self.data_dir.mkdir(exist_ok=True)
        self.config_path.write_text("global:\n  evaluation_interval: 1m\nscrape_configs: []\n", encoding="utf-8")
        self._create_blocks(inputs)
        self._launch()
        if self._rule_files:
            self._backfill_rules()
        self._prepared = True

    def _backfill_rules(self) -> None:
        """Evaluate recording rules against the running server, then restart it to load the blocks."""
        begin, finish = self._rule_range or self.time_range()
        output = self.workdir / "rule-blocks"
        shutil.rmtree(output, ignore_errors=True)
        self._promtool_run(
            "create-blocks-from",
            "rules",
            f"--url={self.url}",
            f"--start={_time_param(begin)}",
            f"--end={_time_param(finish)}",
            f"--eval-interval={_whole_seconds(self._rule_interval, 'rule interval')}s",
            f"--output-dir={output}",
            *map(str, self._rule_files),
        )
        self.stop()
        for block in sorted(output.glob("*/meta.json")):
            block.parent.rename(self.data_dir / block.parent.name)
        self._launch()

    def _create_blocks(self, inputs: Sequence[Path]) -> None:
        """TSDB blocks from every OpenMetrics file, several promtools at once (each writes its own block)."""
        workers = max(1, min(len(inputs), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            runs = [
                pool.submit(self._promtool_run, "create-blocks-from", "openmetrics", str(path), str(self.data_dir))
                for path in inputs
            ]
            for run in runs:
                run.result()

    def _promtool_run(self, *args: str) -> None:
        command = [self._promtool, "tsdb", *args[:2], "--quiet", *args[2:]]
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        with self._log_lock, (self.workdir / "promtool.log").open("a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(command)}\n{completed.stdout}{completed.stderr}")
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr).strip()[-3000:]
            raise SandboxError(f"promtool failed ({completed.returncode}): {' '.join(command)}\n{output}")

    # the process

    def _command(self, port: int) -> list[str]:
        return [
            self._prometheus,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.listen-address=127.0.0.1:{port}",
            *self._extra_args,
        ]

    def _launch(self) -> None:
        """Start the server; with a port of our own choosing, retry when another process grabbed it."""
        attempts = 1 if self._port is not None else 3
        for attempt in range(attempts):
            port = self._port if self._port is not None else free_port()
            if self._spawn_and_wait(port, last_attempt=attempt == attempts - 1):
                self._port = port
                return

    def _spawn_and_wait(self, port: int, *, last_attempt: bool) -> bool:
        """True once ready; False when the port was taken and another may be tried."""
        linux_main = sys.platform == "linux" and threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            log.write(f"--- sloplane sandbox: starting on port {port}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if linux_main else None,  # noqa: PLW1509 - main thread only
            )
        atexit.register(self.kill)
        return self._wait_ready(port, last_attempt=last_attempt)

    def _wait_ready(self, port: int, *, last_attempt: bool) -> bool:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = _tail(self.log_path)
                self._forget()
                if "address already in use" in tail and not last_attempt:
                    return False
                raise SandboxError(f"prometheus exited ({process.returncode}) before it was ready:\n{tail}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise SandboxError(
            f"prometheus was not ready within {self._ready_timeout}s; last lines of {self.log_path}:\n"
            + _tail(self.log_path)
        )

    # queries

    def query(self, expr: str, at: datetime | float | None = None) -> list[Sample]:
        """An instant query (`/api/v1/query`) at `at` (default: the server's now): labels and values."""
        params = {"query": expr}
        if at is not None:
            params["time"] = _time_param(at)
        response = requests.get(f"{self.url}/api/v1/query", params=params, timeout=60)
        body = response.json()
        if body.get("status") != "success":
            raise SandboxError(f"query {expr!r} failed: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]

    def value(self, expr: str, at: datetime | float | None = None) -> float:
        """The single value of an instant query; an error when it returns none or several."""
        result = self.query(expr, at)
        if len(result) != 1:
            raise SandboxError(f"query {expr!r} returned {len(result)} samples, expected exactly one")
        return result[0][1]
