"""Rolling a fleet up into a store a week at a time, each subject from its last row: what `sloplane rollup` and
`serve`'s periodic job both do.

Why a week at a time: each week's rows are written before the next is read, so an interrupted backfill of
months loses at most one week, and memory stays bounded. Why each subject from its own last row rather than
from the chunk's start: an hour of a zone at :30 straddles a chunk ending on the hour, and would be lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sloplane.evaluator.contracts import RollupStore
from sloplane.evaluator.history.rollup import RollupRun, roll_up
from sloplane.evaluator.measuring.backends.base import MetricsBackend
from sloplane.semantics.subjects import Fleet, subjects

SETTLE = timedelta(minutes=5)
"""An hour is rolled up once it ended this long ago: Prometheus may still be ingesting its last scrapes."""
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
    """Subject key → why it cannot be rolled up (no event counts, read from Datadog)."""
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
    backend: MetricsBackend,
    since: datetime | None,
    until: datetime,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    datadog: bool = False,
) -> RollupSummary:
    """Roll up [since, until] (every subject again), or with `since` None each subject from its last row in
    the store (`FIRST_BACKFILL` before `until` the first time), writing a week at a time."""
    if since is None:
        latest = store.latest()
        backfill = until - FIRST_BACKFILL
        resume = {
            (subject.slo, subject.stage): latest.get((subject.slo, subject.stage), backfill)
            for name in fleet
            for subject in subjects(fleet[name])
        }
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
        start = end
    return summary
