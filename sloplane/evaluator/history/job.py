"""Rolling a fleet up into a store a week at a time, each subject from its last row: what `sloplane rollup` and
`serve`'s periodic job both do.

Why a week at a time: each week's rows are written before the next is read, so an interrupted backfill of
months loses at most one week, and memory stays bounded. Why each subject from its own last row rather than
from the chunk's start: an hour of a zone at :30 straddles a chunk ending on the hour, and would be lost.
Why a subject whose reads failed in one week is not rolled up in the weeks after it, in this run: its last
row then stays before the hours it lacks, and the next run (from the store's last rows) reads them again
rather than leaving a gap behind later rows.

Each subject is read from the backend the gate reads it from: Prometheus (`backend`) or Datadog (`datadog`,
`history.rollup_datadog`); either may be absent, and what is read from the absent one is left out with why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sloplane.evaluator.contracts import RollupStore
from sloplane.evaluator.history.rollup import RollupRun, roll_up
from sloplane.evaluator.measuring.backends.base import MetricsBackend
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts
from sloplane.semantics.subjects import Fleet, subjects

SETTLE = timedelta(minutes=5)
"""An hour is rolled up once it ended this long ago: Prometheus may still be ingesting its last scrapes, and
Datadog's intake lags by tens of seconds."""
FIRST_BACKFILL = timedelta(days=14)
"""How far back a subject never rolled up starts: within Prometheus' default retention (15 days)."""
CHUNK = timedelta(days=7)


@dataclass
class RollupSummary:
    """What a rollup wrote and what it could not, kept as it goes: the rows themselves are dropped once
    written, so a backfill of months holds one week of rows at a time."""

    rows: int = 0
    no_data: int = 0
    queries: int = 0
    subjects: set[str] = field(default_factory=set)
    first_hour: datetime | None = None
    last_hour: datetime | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    """Subject key → why it cannot be rolled up (no event counts, a backend this rollup does not read)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Subject key → why its reads failed (a later run retries them); the last week's reason."""

    def add(self, run: RollupRun) -> None:
        self.rows += len(run.rows)
        self.queries += run.queries
        self.skipped.update(run.skipped)
        self.failed.update(run.failed)
        for row in run.rows:
            self.no_data += row.total_events is None
            self.subjects.add(row.slo if row.stage is None else f"{row.slo}/{row.stage}")
            self.first_hour = row.start if self.first_hour is None else min(self.first_hour, row.start)
            self.last_hour = row.end if self.last_hour is None else max(self.last_hour, row.end)


def settled_now(now: datetime | None = None) -> datetime:
    """The latest instant whose hours may be rolled up: now, less `SETTLE`, to the minute."""
    moment = (now or datetime.now(UTC)) - SETTLE
    return moment.replace(second=0, microsecond=0)


def roll_up_into(
    store: RollupStore,
    fleet: Fleet,
    backend: MetricsBackend | None,
    since: datetime | None,
    until: datetime,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    datadog: DatadogCounts | None = None,
) -> RollupSummary:
    """Roll up [since, until] (every subject again), or with `since` None each subject from its last row in
    the store (`FIRST_BACKFILL` before `until` the first time), writing a week at a time. A subject whose reads
    failed is not rolled up further in this run (see the module docstring)."""
    pairs = {subject.key: (subject.slo, subject.stage) for name in fleet for subject in subjects(fleet[name])}
    if since is None:
        latest = store.latest()
        backfill = until - FIRST_BACKFILL
        resume = {pair: latest.get(pair, backfill) for pair in pairs.values()}
        start = min(resume.values(), default=until)
    else:
        resume, start = {}, since
    summary = RollupSummary()
    while start < until:
        end = min(start + CHUNK, until)
        run = roll_up(fleet, backend, start, end, resume, datadog=datadog)
        store.write(run.rows, clock())
        summary.add(run)
        for row in run.rows:
            resume[(row.slo, row.stage)] = max(row.end, resume.get((row.slo, row.stage), row.end))
        for key in run.failed:
            resume[pairs[key]] = until  # no hours left for it in this run
        start = end
    return summary
