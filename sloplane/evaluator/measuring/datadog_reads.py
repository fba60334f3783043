"""Reading SLIs from Datadog: which subjects to read there, what to ask, and the answers as the plan keys them.

A subject is read from the backend its SLI names. When the SLI can be read from both and the
evaluator has both, the declaration's `targets` break the tie: a declaration that provisions Datadog
SLOs and monitors is gated on Datadog's numbers, so its gate and its Datadog SLO agree; otherwise
Prometheus (whose recording rules sloplane also writes) is read.

The questions are event counts — bad (or good) and all events — over every window, the period and
each excluded span, and all events over the staleness bound. They are asked as `sum:…as_count()`
queries over aligned `[from, to)` intervals, grouped by interval, so one request carries the
queries of every subject that needs that interval: the number of requests grows with the distinct
intervals (windows, period lengths, excluded spans), not with SLOs × windows. The answers are keyed
exactly as the Prometheus plan's (target, part, batch), so the same arithmetic (`arithmetic._period`,
`Measurer._compute`) turns both into measurements, and a composite may combine parts read from
either backend.

What is not read from Datadog (and fails the measurement with a message saying so): raw and
threshold SLIs (no event counts) and time-slice budgeting of event SLIs; the Datadog renderer warns
about the same declarations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sloplane.core.durations import format_duration
from sloplane.declaration.model import BudgetingMethod, Declaration
from sloplane.declaration.policy import TargetSystem
from sloplane.declaration.sli import Backend
from sloplane.evaluator.measuring.arithmetic import _span_batch
from sloplane.evaluator.measuring.backends.base import BackendError
from sloplane.evaluator.measuring.backends.datadog import ROLLUP, UNGROUPED, DatadogCounts
from sloplane.evaluator.measuring.cache import TTLCache
from sloplane.evaluator.measuring.datadog_grouping import GroupedQuery, grouped
from sloplane.evaluator.measuring.periods import period_start
from sloplane.semantics.datadog import DatadogQueries, datadog_queries
from sloplane.semantics.subjects import Subject


def reads_from(declaration: Declaration, *, prometheus: bool, datadog: bool) -> Backend | None:
    """The backend this declaration's SLI is read from (see the module docstring); None for composites."""
    named = declaration.spec.sli.backends()
    if not named:
        return None
    usable = [
        backend
        for backend, configured in ((Backend.PROMETHEUS, prometheus), (Backend.DATADOG, datadog))
        if configured and backend in named
    ]
    if len(usable) == 2:
        return Backend.DATADOG if TargetSystem.DATADOG in declaration.spec.targets else Backend.PROMETHEUS
    if usable:
        return usable[0]
    return Backend.DATADOG if named == {Backend.DATADOG} else Backend.PROMETHEUS


def subject_queries(declaration: Declaration, subject: Subject) -> DatadogQueries | None:
    """The subject's Datadog event-count queries (its stage's tags merged in); None without counts."""
    stage = declaration.spec.stage(subject.stage) if subject.stage is not None else None
    return datadog_queries(declaration.spec.sli, dict(stage.selector) if stage is not None else {})


def unreadable(declaration: Declaration, queries: DatadogQueries | None) -> str | None:
    """Why a subject with these Datadog queries cannot be measured from Datadog, or None when it can."""
    if queries is None:
        return (
            f"the {declaration.spec.sli.kind} SLI has no Datadog event counts: sloplane reads good/bad and "
            "total events from Datadog (raw and threshold SLIs are read from Prometheus only)"
        )
    if declaration.spec.budgeting_method is BudgetingMethod.TIMESLICES:
        return "time-slice budgeting is read from Prometheus only; Datadog gives event counts"
    return None


@dataclass(frozen=True)
class Interval:
    """An aligned `[start, end)` in epoch milliseconds."""

    start: int
    end: int


@dataclass(frozen=True)
class _Request:
    """One scalar request: queries over one interval, all grouped by the same tag or none."""

    interval: Interval
    queries: list[GroupedQuery]
    grouped: bool


@dataclass(frozen=True)
class _Ask:
    target: str
    part: str
    batch: str
    query: str
    interval: Interval


@dataclass
class DatadogPlan:
    """Everything one evaluation asks Datadog, and how each answer is filed."""

    counts: DatadogCounts
    at: datetime
    asks: list[_Ask] = field(default_factory=list)

    def interval(self, length: timedelta, end: datetime | None = None) -> Interval:
        """`length` ending at the evaluation's aligned end, or at `end` (aligned down, never later)."""
        start_ms, end_ms = self.counts.window(self.at, length)
        if end is None:
            return Interval(start_ms, end_ms)
        step = int(ROLLUP.total_seconds() * 1000)
        aligned_end = min(end_ms, int(end.timestamp() * 1000) // step * step)
        aligned_start = int((end - length).timestamp() * 1000) // step * step
        return Interval(aligned_start, max(aligned_start, aligned_end))

    def add_counts(
        self, key: str, queries: DatadogQueries, batch: str, length: timedelta, end: datetime | None = None
    ) -> None:
        """Bad (or good) and all events of one subject over one interval."""
        interval = self.interval(length, end)
        self.asks.append(_Ask(key, "total", batch, queries.total, interval))
        if queries.errors is not None:
            self.asks.append(_Ask(key, "bad", batch, queries.errors, interval))
        elif queries.good is not None:
            self.asks.append(_Ask(key, "good", batch, queries.good, interval))

    def add_subject(
        self,
        key: str,
        queries: DatadogQueries,
        *,
        windows: Sequence[timedelta],
        period: timedelta,
        excluded: Sequence[tuple[datetime, datetime]],
        staleness: timedelta,
    ) -> None:
        """Every window, the period, each excluded span and freshness of one subject."""
        for window in windows:
            self.add_counts(key, queries, format_duration(window), window)
        self.add_counts(key, queries, f"period:{format_duration(period)}", period)
        for start, end in excluded:
            self.add_counts(key, queries, _span_batch(start, end), end - start, end)
        self.add_fresh(key, queries, staleness)

    def add_fresh(self, key: str, queries: DatadogQueries, staleness: timedelta) -> None:
        """All events over the staleness bound: none means the SLI's data stopped arriving."""
        self.asks.append(_Ask(key, "fresh", "fresh", queries.total, self.interval(staleness)))

    def expressions(self) -> dict[str, list[str]]:
        """What each target asked, for its measurement's record: the query and its interval."""
        found: dict[str, list[str]] = defaultdict(list)
        for ask in self.asks:
            start = datetime.fromtimestamp(ask.interval.start / 1000, UTC).isoformat()
            end = datetime.fromtimestamp(ask.interval.end / 1000, UTC).isoformat()
            found[ask.target].append(f"datadog: {ask.query} over [{start}, {end})")
        return found

    def requests_needed(self) -> int:
        """Requests this plan takes: per interval, its queries regrouped (`datadog_grouping`), the ungrouped
        ones and each tag's grouped ones `max_queries` to a request."""
        return sum(len(self._requests(interval, queries)) for interval, queries in self._by_interval().items())

    def _by_interval(self) -> dict[Interval, list[str]]:
        grouped: dict[Interval, dict[str, None]] = defaultdict(dict)
        for ask in self.asks:
            grouped[ask.interval][ask.query] = None
        return {interval: list(queries) for interval, queries in grouped.items()}

    def _requests(self, interval: Interval, queries: Sequence[str]) -> list[_Request]:
        """The requests for one interval's queries: a request's queries share their grouping."""
        by_key: dict[str | None, list[GroupedQuery]] = defaultdict(list)
        for query in grouped(queries):
            by_key[query.key].append(query)
        size = self.counts.max_queries
        return [
            _Request(interval, sent[first : first + size], key is not None)
            for key, sent in by_key.items()
            for first in range(0, len(sent), size)
        ]

    def answer(
        self, cache: TTLCache[tuple[float | None]] | None = None
    ) -> tuple[dict[tuple[str, str, str], float | None], float]:
        """Ask everything not in the cache (`_requests`); the answers keyed as the Prometheus plan keys them,
        and the seconds spent waiting for rate limits. Raises BackendError."""
        values: dict[tuple[Interval, str], float | None] = {}
        requests: list[_Request] = []
        for interval, queries in self._by_interval().items():
            if interval.end <= interval.start:
                values.update({(interval, query): 0.0 for query in queries})
                continue
            missing = []
            for query in queries:
                cached = None if cache is None else cache.get(("datadog", query, interval))
                if cached is None:
                    missing.append(query)
                else:
                    values[(interval, query)] = cached[0]
            if missing:
                requests += self._requests(interval, missing)
        counted = self.counts.read_many(
            [([q.text for q in r.queries], r.interval.start, r.interval.end, r.grouped) for r in requests]
        )
        waited = max((c.waited for c in counted), default=0.0)
        for request, found in zip(requests, counted, strict=True):
            for sent, row in zip(request.queries, found.rows, strict=True):
                counts = {sent.text: row.get(UNGROUPED)} if sent.key is None else sent.members_in(row)
                for query, value in counts.items():
                    values[(request.interval, query)] = value
                    if cache is not None:
                        cache.put(("datadog", query, request.interval), (value,))
        answers: dict[tuple[str, str, str], float | None] = {}
        for ask in self.asks:
            answers[(ask.target, ask.part, ask.batch)] = values[(ask.interval, ask.query)]
        for (target, part, batch), answered in list(answers.items()):
            if part not in ("good", "bad"):
                continue
            total = answers.get((target, "total", batch))
            # Datadog has no series for a count that never rose: where there are events, none of these
            number = 0.0 if total is not None and answered is None else answered
            if part == "good":
                answers[(target, "bad", batch)] = None if total is None or number is None else max(0.0, total - number)
            else:
                answers[(target, part, batch)] = number
        return answers, waited


@dataclass(frozen=True)
class DatadogSubject:
    """A subject read from Datadog, with the windows and excluded spans its measurement needs."""

    key: str
    declaration: Declaration
    subject: Subject
    windows: Sequence[timedelta]
    excluded: Sequence[tuple[datetime, datetime]]


@dataclass
class Reading:
    """What one evaluation read from Datadog: answers keyed as the plan's, and who could not be read."""

    answers: dict[tuple[str, str, str], float | None] = field(default_factory=dict)
    expressions: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    waited: float = 0.0


def read(
    counts: DatadogCounts | None,
    wanted: Sequence[DatadogSubject],
    at: datetime,
    staleness: timedelta,
    cache: TTLCache[tuple[float | None]] | None = None,
) -> Reading:
    """Plan and ask Datadog for every readable subject in one go; a fault fails those subjects only."""
    reading = Reading()
    if counts is None:
        message = "this SLI is read from Datadog, and the evaluator has no Datadog (--datadog) configured"
        reading.failures = {item.key: message for item in wanted}
        return reading
    plan = DatadogPlan(counts, at)
    readable = []
    for item in wanted:
        queries = subject_queries(item.declaration, item.subject)
        why = unreadable(item.declaration, queries)
        if why is not None or queries is None:
            reading.failures[item.key] = why or "no Datadog queries"
            continue
        period = at - period_start(item.declaration.spec.window, at)
        plan.add_subject(
            item.key, queries, windows=item.windows, period=period, excluded=item.excluded, staleness=staleness
        )
        readable.append(item.key)
    if not readable:
        return reading
    try:
        reading.answers, reading.waited = plan.answer(cache)
    except BackendError as error:
        reading.failures.update({key: str(error) for key in readable})
        return reading
    reading.expressions = plan.expressions()
    return reading
