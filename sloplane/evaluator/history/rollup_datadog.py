"""The hourly bad and total events of the SLIs the gate reads from Datadog, for rollups (`history.rollup`).

What is read: each subject's own Datadog event-count queries, the gate's (`datadog_reads.subject_queries`): all
events, and bad ones (or good ones: bad = total − good, as the gate computes it). An hour with no point of the
total has no data (None); bad events missing where the total has data are zero (Datadog has no series for a
count that never rose), as the gate reads them.

How: one `POST /api/v2/query/timeseries` per batch of queries and span of up to `MAX_POINTS` buckets, each
query asked as `<query>.rollup(sum, W)` with `interval` W, so that every point is the sum of the events of one
W-second bucket. Datadog aligns rollup buckets to UNIX time (not to a query's edges, not to a time zone: its
calendar rollups are daily and longer), so a row of the zone is the sum of the buckets inside it, and W is the
largest of 3600, 1800 and 900 seconds that divides every row's edges: 3600 where the zone's hours are UTC's
(Europe/Berlin, its DST change included), 1800 for a zone at half past (Asia/Kolkata) or a 30- or 90-minute
row (Australia/Lord_Howe), 900 at a quarter past or to (Asia/Kathmandu). So every zone is read with one query
per read and W, never with scalar queries per hour: a week of the fleet's hours is a request or two per W
instead of 168 or more, and it spends the timeseries endpoint's rate limit rather than the scalar one that
every gate of the process waits on.

The same numbers as the gate: a W bucket holds the one-minute buckets whose start lies inside it, exactly the
ones the gate's scalar `[from, to)` sum takes over the same hour. Queries are regrouped as the gate's are
(`datadog_grouping`: queries that differ in one tag's value asked as one `by {tag}`), at most `max_queries` to
a request, a request's queries sharing their grouping.

Datadog gives at most 1,500 points per series and silently widens the interval of a longer request, so a
request spans at most `MAX_POINTS` buckets, and an answer in other buckets than asked is refused
(`bad-response`) rather than summed into the wrong hours.

Excluded spans (maintenance, exclusion windows, emergency changes) inside an hour are read apart with the
gate's own scalar plan (`DatadogPlan.add_counts`: minute-aligned `[start, end)`), since they need not fall on
W's edges; they are few.

Rate limits: the transport's process-wide `RateLimits`, under the timeseries limit's own name (learnt from
Datadog's answers). Requests go one at a time: they are few, and no pipeline waits on them, so a rollup also
waits up to `MAX_WAIT` seconds for a limit to reset (a gate waits 10), and a longer wait fails its requests as
`rate-limited`. A request that fails (after the transport's retries) fails the subjects whose queries it
carried, with the reason; the others go on, and a later run retries the failed ones from their last row.

The transport: `DatadogCounts` (the gate's, `measuring/backends/datadog.py`); `_Timeseries` here posts to the
timeseries endpoint through its `post`, `guard` and `scrubbed`: the same session, keys, circuit breaker and rate
limits, and one implementation of Datadog's errors and limits.

Composites are never read here: they have no events of their own (their components are rolled up).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from sloplane.evaluator.measuring.backends.base import BackendError, FailureKind
from sloplane.evaluator.measuring.backends.datadog import (
    ROLLUP,
    UNGROUPED,
    DatadogCounts,
    checked_answer,
    number_of,
)
from sloplane.evaluator.measuring.datadog_grouping import GroupedQuery, grouped
from sloplane.evaluator.measuring.datadog_reads import DatadogPlan
from sloplane.semantics.datadog import DatadogQueries

Span = tuple[datetime, datetime]

TIMESERIES_PATH = "/api/v2/query/timeseries"
TIMESERIES_LIMIT = "query_timeseries_public"
"""The timeseries endpoint's rate limit until an answer names it."""
BUCKETS = (3600, 1800, 900)
"""Bucket widths in seconds, widest first: every tz database offset since 1972 is a multiple of 15 minutes."""
MAX_POINTS = 1440
"""Buckets per request: under the 1,500 points per series past which Datadog widens the interval."""
MAX_WAIT = 60.0
"""The longest wait for a rate limit to reset that a rollup waits out."""
DEFAULT_RESET = 1.0
"""How long to stay away after a 429 that says nothing about when to come back."""
RETRIES = 3


def bucket_seconds(hours: Sequence[Span]) -> int:
    """The widest bucket (`BUCKETS`) that divides every row's start (into the UTC hour) and length."""
    width = BUCKETS[0]
    for start, end in hours:
        width = math.gcd(width, int(start.timestamp()) % BUCKETS[0], int((end - start).total_seconds()))
    if width not in BUCKETS:
        raise ValueError(f"rows not on quarter hours cannot be read from Datadog's buckets ({width} s)")
    return width


@dataclass(frozen=True)
class HourReads:
    """One subject to read: its queries, its rows, and the excluded spans inside each row (by the row's start)."""

    key: str
    queries: DatadogQueries
    hours: Sequence[Span]
    excluded: Mapping[datetime, Sequence[Span]] = field(default_factory=dict)


@dataclass
class HourCounts:
    """What was read: per subject and row start, (bad, total) and the excluded (bad, total); who failed, why."""

    counts: dict[str, dict[datetime, tuple[float | None, float | None]]] = field(default_factory=dict)
    excluded: dict[str, dict[datetime, tuple[float, float]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0


def read_hours(counts: DatadogCounts, wanted: Sequence[HourReads]) -> HourCounts:
    """Every row of every subject in `wanted` (see the module docstring); a fault fails its subjects only."""
    found = HourCounts()
    series = _Timeseries(counts)
    by_width: dict[int, list[HourReads]] = defaultdict(list)
    for item in wanted:
        if item.hours:
            by_width[bucket_seconds(item.hours)].append(item)
    for width, items in sorted(by_width.items(), reverse=True):
        values, failures = _read_width(series, width, items)
        for item in items:
            why = next((failures[q] for q in _texts(item.queries) if q in failures), None)
            if why is not None:
                found.failed[item.key] = f"Datadog could not be read: {why}"
                continue
            found.counts[item.key] = {
                start: _hour(item.queries, values, start, end, width) for start, end in item.hours
            }
    found.requests = series.requests
    _read_excluded(counts, [item for item in wanted if item.key not in found.failed], found)
    return found


def _texts(queries: DatadogQueries) -> list[str]:
    return [text for text in (queries.total, queries.errors, queries.good) if text is not None]


def _read_width(
    series: _Timeseries, width: int, items: Sequence[HourReads]
) -> tuple[dict[str, dict[int, float | None]], dict[str, str]]:
    """Each query's points (bucket start in seconds → count) over the rows of `items`, and the queries whose
    request failed, with why."""
    first = min(int(item.hours[0][0].timestamp()) for item in items)
    last = max(int(item.hours[-1][1].timestamp()) for item in items)
    texts = list(dict.fromkeys(text for item in items for text in _texts(item.queries)))
    values: dict[str, dict[int, float | None]] = defaultdict(dict)
    failures: dict[str, str] = {}
    for request in _requests(texts, series.max_queries):
        for start in range(first, last, MAX_POINTS * width):
            end = min(last, start + MAX_POINTS * width)
            try:
                answered = series.read([query.text for query in request], start, end, width)
            except BackendError as error:
                failures.update({original: str(error) for query in request for original in _originals(query)})
                continue
            for query, by_group in zip(request, answered, strict=True):
                if query.key is None:
                    values[query.text].update(by_group.get(UNGROUPED, {}))
                    continue
                for original, value in query.members.items():
                    values[original].update(by_group.get(value, {}))
    return values, failures


def _originals(query: GroupedQuery) -> list[str]:
    return list(query.members) if query.key is not None else [query.text]


def _requests(texts: Sequence[str], size: int) -> list[list[GroupedQuery]]:
    """The queries regrouped (`datadog_grouping`), those of one grouping `size` to a request."""
    by_key: dict[str | None, list[GroupedQuery]] = defaultdict(list)
    for query in grouped(texts):
        by_key[query.key].append(query)
    return [
        sent[index : index + size]
        for _, sent in sorted(by_key.items(), key=lambda kv: kv[0] or "")
        for index in range(0, len(sent), size)
    ]


def _bucket_sum(points: Mapping[int, float | None], start: datetime, end: datetime, width: int) -> float | None:
    present = [
        value
        for at in range(int(start.timestamp()), int(end.timestamp()), width)
        if (value := points.get(at)) is not None
    ]
    return math.fsum(present) if present else None


def _hour(
    queries: DatadogQueries,
    values: Mapping[str, Mapping[int, float | None]],
    start: datetime,
    end: datetime,
    width: int,
) -> tuple[float | None, float | None]:
    """(bad, total) of one row from its buckets, as the gate reads a window (see the module docstring)."""
    total = _bucket_sum(values.get(queries.total, {}), start, end, width)
    if total is None:
        return None, None
    if queries.errors is not None:
        bad = _bucket_sum(values.get(queries.errors, {}), start, end, width)
        return (bad if bad is not None else 0.0), total
    assert queries.good is not None  # `datadog_queries` gives errors or good with every total
    good = _bucket_sum(values.get(queries.good, {}), start, end, width)
    return max(0.0, total - (good or 0.0)), total


def _read_excluded(counts: DatadogCounts, items: Sequence[HourReads], found: HourCounts) -> None:
    """The excluded spans' events, with the gate's own scalar plan over each span (one plan for the fleet); not
    in an hour without data."""
    spans = [
        (item, start, span)
        for item in items
        for start, inside in item.excluded.items()
        if found.counts[item.key].get(start, (None, None))[1] is not None
        for span in inside
    ]
    if not spans:
        return
    latest = max(span[1] for _, _, span in spans)
    plan = DatadogPlan(counts, latest + counts.delay + ROLLUP)
    for item, start, (span_start, span_end) in spans:
        plan.add_counts(item.key, item.queries, _batch(start, span_start, span_end), span_end - span_start, span_end)
    found.requests += plan.requests_needed()
    try:
        answers, _ = plan.answer()
    except BackendError as error:
        for item in items:
            if item.excluded:
                found.failed[item.key] = f"an excluded span could not be read from Datadog: {error}"
                found.counts.pop(item.key, None)
        return
    for item, start, (span_start, span_end) in spans:
        batch = _batch(start, span_start, span_end)
        bad, total = answers.get((item.key, "bad", batch)), answers.get((item.key, "total", batch))
        known_bad, known_total = found.excluded.setdefault(item.key, {}).get(start, (0.0, 0.0))
        found.excluded[item.key][start] = (known_bad + (bad or 0.0), known_total + (total or 0.0))


def _batch(hour: datetime, start: datetime, end: datetime) -> str:
    return f"{hour.isoformat()}|{start.isoformat()}|{end.isoformat()}"


class _Timeseries:
    """Datadog's timeseries endpoint, spoken through a `DatadogCounts` transport (`post`, `guard`, `scrubbed`):
    its session, keys, circuit breaker and the process's shared rate limits (see the module docstring)."""

    def __init__(self, counts: DatadogCounts) -> None:
        self.url = counts.url
        self.max_queries = counts.max_queries
        self._counts = counts
        self._limit_name = TIMESERIES_LIMIT
        self.requests = 0

    def read(
        self, queries: Sequence[str], start: int, end: int, width: int
    ) -> list[dict[str, dict[int, float | None]]]:
        """Per query, per group (`UNGROUPED` for an ungrouped query), each bucket's count over `[start, end)`
        (seconds, multiples of `width`); raises BackendError."""
        body = {
            "data": {
                "type": "timeseries_request",
                "attributes": {
                    "from": start * 1000,
                    "to": end * 1000,
                    "interval": width * 1000,
                    "queries": [
                        {"data_source": "metrics", "name": f"q{index}", "query": f"{query}.rollup(sum, {width})"}
                        for index, query in enumerate(queries)
                    ],
                },
            }
        }

        def ask() -> list[dict[str, dict[int, float | None]]]:
            with self._counts.scrubbed():  # an answer may quote the keys it was sent
                self.requests += 1
                payload, _, self._limit_name = self._counts.post(
                    TIMESERIES_PATH, body, limit=self._limit_name, max_wait=MAX_WAIT
                )
                return _series(payload, queries, width)

        return self._counts.guard(ask, retries=max(RETRIES, self._counts.retries), max_wait=MAX_WAIT)


def _series(payload: Any, queries: Sequence[str], width: int) -> list[dict[str, dict[int, float | None]]]:
    """A timeseries answer as per query, per group, bucket start (seconds) → count; BackendError for anything
    else, and for buckets other than `width` (Datadog widened the interval)."""
    payload = checked_answer(payload, "timeseries")
    try:
        attributes = payload["data"]["attributes"]
        times = [int(at) // 1000 for at in attributes.get("times") or []]
        lines = attributes.get("values") or []
        described = attributes.get("series") or []
        found: list[dict[str, dict[int, float | None]]] = [{} for _ in queries]
        for about, line in zip(described, lines, strict=True):
            index = about["query_index"]
            if not isinstance(index, int) or not 0 <= index < len(queries) or len(line) != len(times):
                raise BackendError(FailureKind.BAD_RESPONSE, "a series that does not fit the request")
            group = _group(about.get("group_tags") or [])
            found[index][group] = {at: number_of(value) for at, value in zip(times, line, strict=True)}
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BackendError(FailureKind.BAD_RESPONSE, f"malformed timeseries answer: {error!r:.200}") from None
    steps = {later - earlier for earlier, later in pairwise(times)}
    if any(at % width for at in times) or steps - {width}:
        raise BackendError(
            FailureKind.BAD_RESPONSE, f"Datadog answered in other buckets than the {width} s asked (too many points?)"
        )
    return found


def _group(tags: Sequence[Any]) -> str:
    """The row a series answers: its one `by` tag's value (`UNGROUPED` for an ungrouped query)."""
    if not tags:
        return UNGROUPED
    return str(tags[0]).partition(":")[2]
