"""Hourly rollups in a SQLite file: each subject's events per hour of its time zone, for reports past
Prometheus' retention (`sloplane rollup`, and `serve`'s periodic job).

Why in the decision log's file by default: one file to back up, and reports read both. Unlike the log,
rows are rewritten: rolling an hour up again (a backfill, a correction added since) replaces its counts.
What is not replaced is the judgement of the time: the objective, policy version and time zone a row was
first written with stay, so a target changed later does not rewrite the past.

`RollupStore` (`contracts.py`) is what the rollup job and the reports use of this store and of
PostgreSQL's (`rollups_postgres.py`); one behaviour suite runs against both.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sloplane.evaluator.model import Rollup
from sloplane.evaluator.storage.decisions import utc_text
from sloplane.evaluator.storage.decisions_schema import roll_back
from sloplane.evaluator.storage.sqlite import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollups (
    slo TEXT NOT NULL,
    stage TEXT NOT NULL,
    start TEXT NOT NULL,
    "end" TEXT NOT NULL CHECK ("end" > start),
    bad_events REAL,
    total_events REAL,
    excluded_bad_events REAL NOT NULL,
    excluded_total_events REAL NOT NULL,
    excluded_minutes REAL NOT NULL CHECK (excluded_minutes >= 0),
    objective REAL NOT NULL,
    policy_version TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    source TEXT NOT NULL,
    rolled_at TEXT NOT NULL,
    PRIMARY KEY (slo, stage, start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollups_by_start ON rollups (start);
"""
"""`stage` is '' for an unstaged SLO: a key column cannot be NULL and stay unique."""

COLUMNS = (
    'slo, stage, start, "end", bad_events, total_events, excluded_bad_events, excluded_total_events, '
    "excluded_minutes, objective, policy_version, time_zone, source"
)
_UPSERT = f"""
INSERT INTO rollups ({COLUMNS}, rolled_at)
VALUES (:slo, :stage, :start, :end, :bad_events, :total_events, :excluded_bad_events, :excluded_total_events,
        :excluded_minutes, :objective, :policy_version, :time_zone, :source, :rolled_at)
ON CONFLICT (slo, stage, start) DO UPDATE SET
    "end" = excluded."end", bad_events = excluded.bad_events, total_events = excluded.total_events,
    excluded_bad_events = excluded.excluded_bad_events, excluded_total_events = excluded.excluded_total_events,
    excluded_minutes = excluded.excluded_minutes, source = excluded.source, rolled_at = excluded.rolled_at
"""
"""Counts are replaced; objective, policy version and time zone keep what the row was first written with."""


class RollupError(Exception):
    """The rollups cannot be read or written (a broken file, a full disk); said in one line."""


def rollup_row(rollup: Rollup, rolled_at: str) -> dict[str, Any]:
    """A rollup as both stores write it: times as `utc_text` (`rolled_at` already so: one batch, one
    instant, written once, not once a row), '' for the unstaged SLO's stage."""
    return {
        "slo": rollup.slo,
        "stage": rollup.stage or "",
        "start": utc_text(rollup.start),
        "end": utc_text(rollup.end),
        "bad_events": rollup.bad_events,
        "total_events": rollup.total_events,
        "excluded_bad_events": rollup.excluded_bad_events,
        "excluded_total_events": rollup.excluded_total_events,
        "excluded_minutes": rollup.excluded_minutes,
        "objective": rollup.objective,
        "policy_version": rollup.policy_version,
        "time_zone": rollup.time_zone,
        "source": rollup.source,
        "rolled_at": rolled_at,
    }


def rollup_from_row(row: Sequence[Any]) -> Rollup:
    """A row of `COLUMNS` (times as text or as instants) back as a `Rollup`."""
    slo, stage, start, end, bad, total, excluded_bad, excluded_total, minutes, objective, version, zone, source = row
    return Rollup(
        slo=slo,
        stage=stage or None,
        start=_instant(start),
        end=_instant(end),
        bad_events=None if bad is None else float(bad),
        total_events=None if total is None else float(total),
        excluded_bad_events=float(excluded_bad),
        excluded_total_events=float(excluded_total),
        excluded_minutes=float(minutes),
        objective=float(objective),
        policy_version=str(version),
        time_zone=zone,
        source=source,
    )


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else _parsed(str(value))


@functools.lru_cache(maxsize=65536)
def _parsed(text: str) -> datetime:
    """Remembered: the fleet's rows share their hours (2,000 SLOs' quarter is 8.7 million instants written as a
    few thousand strings), and parsing them was a third of reading them."""
    return datetime.fromisoformat(text)


class SqliteRollups(SqliteStore):
    """The rollups in a SQLite file (created, with its folder, when missing)."""

    def __init__(self, path: str | Path) -> None:
        self._attach(path, "the rollups", RollupError)
        try:
            connection = self._connections.writer()
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
        except Exception as exc:
            self.close()
            raise RollupError(f"cannot prepare the rollups in {self.path}: {exc}") from None

    def write(self, rollups: Sequence[Rollup], rolled_at: datetime) -> None:
        """Write (or rewrite) these rows in one transaction: all of them or, on failure, none."""
        rolled = utc_text(rolled_at)
        rows = [rollup_row(rollup, rolled) for rollup in rollups]
        connection = self._connections.writer()
        with self._write_lock:
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(_UPSERT, rows)
                connection.execute("COMMIT")
            except Exception as exc:
                roll_back(connection)
                raise RollupError(f"cannot write rollups to {self.path}: {exc}") from None

    def read(self, *, since: datetime, until: datetime, slos: Sequence[str] | None = None) -> list[Rollup]:
        """Rows whose hour starts in [since, until), by SLO, stage and start; `slos` limits them to those SLOs."""
        sql = f"SELECT {COLUMNS} FROM rollups WHERE start >= ? AND start < ?"
        values: list[Any] = [utc_text(since), utc_text(until)]
        if slos is not None:
            sql += f" AND slo IN ({', '.join('?' for _ in slos)})"
            values += list(slos)
        sql += " ORDER BY slo, stage, start"
        return [rollup_from_row(row) for row in self._read(sql, values)]

    def latest(self) -> dict[tuple[str, str | None], datetime]:
        """The end of the newest row of every subject: where a rollup without `--from` resumes."""
        rows = self._read('SELECT slo, stage, max("end") FROM rollups GROUP BY slo, stage', [])
        return {(slo, stage or None): _instant(end) for slo, stage, end in rows}

    def _read(self, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._connections.get().execute(sql, values).fetchall()
        except RollupError:  # closed: said as the write says it
            raise
        except Exception as exc:
            raise RollupError(f"cannot read the rollups in {self.path}: {exc}") from None


if TYPE_CHECKING:
    from sloplane.evaluator.contracts import RollupStore

    def _is_a_rollup_store(store: SqliteRollups) -> RollupStore:
        """`mypy sloplane` proves the store is what the rollup job and the reports use."""
        return store
