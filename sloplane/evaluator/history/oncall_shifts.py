"""The time arithmetic of the on-call report, apart from reading Prometheus: when an alert fires given the
evaluations at which its condition held (Prometheus' `for`), spans taken from spans, and shifts cut by the clock in
a time zone. Pure functions on aware datetimes; `oncall` says what they mean for pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise

from sloplane.core.schedules import merge_spans
from sloplane.evaluator.history.hours import zone

DAY = timedelta(days=1)
Span = tuple[datetime, datetime]


def firing_spans(
    held: Iterable[float], first: datetime, until: datetime, step: timedelta, pending: timedelta
) -> list[Span]:
    """Where an alert fired, from the evaluations (unix seconds) at which its condition held, evaluating at
    `first`, `first + step`, … before `until`, with Prometheus' `for` of `pending` (see `oncall`'s docstring).
    A span still firing at the last evaluation ends at `until`."""
    true_at = set(held)
    spans: list[Span] = []
    active: datetime | None = None
    firing: datetime | None = None
    moment = first
    while moment < until:
        if moment.timestamp() in true_at:
            active = active or moment
            if firing is None and moment - active >= pending:
                firing = moment
        else:
            if firing is not None:
                spans.append((firing, moment))
            active = firing = None
        moment += step
    if firing is not None:
        spans.append((firing, until))
    return spans


def subtract(spans: Sequence[Span], taken: Sequence[Span]) -> list[Span]:
    """`spans` without the time in `taken` (both sorted, not overlapping among themselves)."""
    left: list[Span] = []
    for start, end in spans:
        cursor = start
        for cut_start, cut_end in taken:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                left.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
        if cursor < end:
            left.append((cursor, end))
    return left


def shift_spans(
    since: datetime, until: datetime, length: timedelta, start: time, zone_name: str
) -> list[tuple[Span, bool]]:
    """The shifts overlapping [since, until), clipped to it, each with whether it was clipped (see the module's
    docstring for clock changes)."""
    zone_info = zone(zone_name)
    day = since.astimezone(zone_info).date() - DAY
    last_day = until.astimezone(zone_info).date() + DAY
    bounds: set[datetime] = set()
    while day <= last_day:
        opening = datetime.combine(day, start)
        for index in range(DAY // length):
            local = opening + length * index
            bounds.add(local.replace(tzinfo=zone_info).astimezone(UTC))
        day += DAY
    ordered = sorted(bounds)
    shifts = []
    for first, last in pairwise(ordered):
        if last <= since or first >= until:
            continue
        clipped = (max(first, since), min(last, until))
        shifts.append((clipped, clipped != (first, last)))
    return shifts


def overlap(spans: Sequence[Span], other: Sequence[Span]) -> list[Span]:
    """The time in both (each sorted, not overlapping among themselves)."""
    return subtract(spans, subtract(spans, other))


def minutes_in(spans: Iterable[Span]) -> float:
    return sum((end - start).total_seconds() for start, end in merge_spans(spans)) / 60


def within(spans: Iterable[Span], bounds: Span) -> list[Span]:
    return [(max(s, bounds[0]), min(e, bounds[1])) for s, e in spans if s < bounds[1] and e > bounds[0]]
