"""Traffic as segments of constant rate laid out in time: `Segment`, `Timeline` and the step grid.

Everything else in the sandbox stands on this: a `Timeline` places one sample per step from an aligned
start, computes a counter's value at every sample, and computes the hand sums that `expected_counts`
compares with Prometheus, all from the segments alone. It is kept apart from the SLI shapes
(`sloplane.sandbox.traffic`) because it knows nothing of metric names or labels: it is the arithmetic
the exactness argument rests on, and the one place that refuses inexact descriptions (unaligned
starts, windows or durations that are not whole steps, naive times).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import cached_property

STEP = timedelta(seconds=60)
"""Default distance between synthetic samples (a typical scrape interval)."""


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
