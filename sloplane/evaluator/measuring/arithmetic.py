"""The arithmetic of a measurement: numbers from the backend's answers, with no querying in it.

Once every answer of an evaluation is in, what is left is plain computation: an error ratio from
bad and all events, the period's ratio with excluded spans subtracted (as events, or by weighting
time where an SLI has no event counts), a composite's ratio from its parts. The names of the
excluded spans' batches and the time-slice expression live here too, because `_period` must find
the answers under the same names the plan asked them with. Kept apart from `measure` so that the
sums can be read (and checked) without the planning and the parallel querying around them; kept
apart from `periods`, which decides *which* stretches are excluded, not what they subtract.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sloplane.core.durations import format_duration
from sloplane.evaluator.model import Exclusion, Measurement
from sloplane.semantics.promql import WindowedQueries


@dataclass
class _Run:
    """One evaluation's shared state: the instant, the answers, and per-target facts."""

    at: datetime
    answers: dict[tuple[str, str, str], float | None]
    excluded: dict[str, list[Exclusion]]
    recorded: set[str]
    expressions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def _window_ratio(measurement: Measurement, window: timedelta) -> float | None:
    found = measurement.window(window)
    return None if found is None else found.error_ratio


def _spans(excluded: list[tuple[datetime, datetime]]) -> list[tuple[str, timedelta, datetime]]:
    """(batch, length, end) of each excluded span."""
    return [(_span_batch(start, end), end - start, end) for start, end in excluded]


def _span_batch(start: datetime, end: datetime) -> str:
    return f"excluded:{format_duration(end - start)}@{end.timestamp():.0f}"


def _ratio(bad: float | None, total: float | None) -> float | None:
    if bad is None or total is None or total <= 0:
        return None
    return max(0.0, bad / total)


def _slices_expression(
    queries: WindowedQueries, window: timedelta, target_percent: float, length: timedelta, end: datetime | None
) -> str:
    """Share of bad time slices over `length` (ending at `end`): a subquery stepping by slice."""
    _, _, ratio = queries.at(window).single_series()
    threshold = repr(round(1 - target_percent / 100, 12))
    anchor = "" if end is None else f" @ {end.timestamp():.3f}"
    return f"avg_over_time(({ratio} > bool {threshold})[{format_duration(length)}:{format_duration(window)}]{anchor})"


def _period(
    answers: dict[tuple[str, str, str], float | None],
    key: str,
    length: timedelta,
    excluded: list[tuple[datetime, datetime]],
    recorded: bool,
) -> tuple[float | None, float | None, float | None]:
    """(error ratio, events, bad events) over the period with excluded spans taken out."""
    batch = f"period:{format_duration(length)}"
    ratio = answers.get((key, "ratio", batch))
    bad, total = answers.get((key, "bad", batch)), answers.get((key, "total", batch))
    if recorded and not excluded and ratio is not None:
        return ratio, total, None if total is None else ratio * total
    if bad is not None and total is not None:
        for start, end in excluded:
            span = _span_batch(start, end)
            bad -= answers.get((key, "bad", span)) or 0.0
            total -= answers.get((key, "total", span)) or 0.0
        return _ratio(bad, total), max(total, 0.0), max(bad, 0.0)
    if ratio is None:
        return None, None, None
    kept = length.total_seconds()
    weighted = ratio * kept
    for start, end in excluded:
        span_ratio = answers.get((key, "ratio", _span_batch(start, end)))
        seconds = (end - start).total_seconds()
        if span_ratio is not None:
            weighted -= span_ratio * seconds
            kept -= seconds
    return (max(0.0, weighted / kept) if kept > 0 else None), None, None


def _combine(parts: list[tuple[float, float | None]], worst: bool) -> float | None:
    """A composite's ratio: the worst part, or the weighted mean (None when a part has no data)."""
    values = [(weight, ratio) for weight, ratio in parts if ratio is not None]
    if worst:
        return max((ratio for _, ratio in values), default=None)
    if not parts or len(values) != len(parts):
        return None
    return sum(weight * ratio for weight, ratio in values) / sum(weight for weight, _ in values)
