"""The decision log on SQLite: every gate decision, kept in full, never changed or removed.

Why SQLite: the evaluator is one process per cluster and must keep working with no database
server to operate; a single file is easy to back up, to copy off a pod and to read with the
`sqlite3` shell. Why append-only, enforced by triggers: the log is the audit trail of which
release was let through and why; a bug (or a hand in the shell) must not rewrite history.

Threads: one connection per thread, so readers never wait for each other or for a writer (WAL
mode lets readers see the last committed state while a write is in progress); appends are
serialised by a lock in the process, so writer threads queue on a mutex instead of polling in
SQLite's busy handler. The busy timeout still covers other processes (the CLI reading the log).
A connection is closed when its thread ends or when the log is closed.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from sloplane.core.serialize import wire_json
from sloplane.evaluator.model import Decision, Outcome, ReleaseSpan
from sloplane.evaluator.storage.sqlite import SqliteStore, ThreadConnections, create_folder

if TYPE_CHECKING:
    from sloplane.evaluator.contracts import DecisionLog

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    decided_at TEXT NOT NULL,
    evaluated_at TEXT,
    slo TEXT NOT NULL,
    stage TEXT,
    service TEXT,
    revision TEXT,
    pipeline TEXT,
    rollout TEXT,
    outcome TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    record TEXT NOT NULL,
    requested_at TEXT
);
CREATE INDEX IF NOT EXISTS decisions_by_slo ON decisions (slo, decided_at);
CREATE INDEX IF NOT EXISTS decisions_by_outcome ON decisions (outcome, decided_at);
CREATE INDEX IF NOT EXISTS decisions_by_decided_at ON decisions (decided_at);
CREATE INDEX IF NOT EXISTS decisions_by_revision ON decisions (revision);
CREATE INDEX IF NOT EXISTS decisions_by_service ON decisions (service, decided_at);
CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'the decision log is append-only: recorded decisions cannot be changed');
END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'the decision log is append-only: recorded decisions cannot be deleted');
END;
"""
"""`requested_at` is the request's `at`: NULL for a live gate, set for a replay (back-testing), which
must never count as deployment history. `seq` is the rowid made explicit: an INTEGER PRIMARY KEY
keeps its values through VACUUM, so insertion order (what a resumable export walks) is stable. `id`
stays unique. Times are UTC text of fixed width, so comparing them as strings compares the instants."""

_MIGRATE_TO_2 = """
ALTER TABLE decisions ADD COLUMN requested_at TEXT;
DROP TRIGGER IF EXISTS decisions_no_update;
UPDATE decisions SET requested_at = json_extract(record, '$.request.at');
"""
"""Version 1 files kept replays apart only inside the JSON record: the column is filled from it, with
the append-only trigger lifted for that one statement inside the migration's transaction (`_SCHEMA`
puts it back before the transaction commits)."""

_INSERT = """
INSERT INTO decisions (id, decided_at, evaluated_at, slo, stage, service, revision, pipeline, rollout,
                       outcome, policy_version, record, requested_at)
VALUES (:id, :decided_at, :evaluated_at, :slo, :stage, :service, :revision, :pipeline, :rollout,
        :outcome, :policy_version, :record, :requested_at)
"""

_RELEASES = """
SELECT grouped.release, grouped.first, grouped.last, grouped.decisions, latest.pipeline, latest.outcome
FROM (
    SELECT coalesce(revision, pipeline) AS release, min(decided_at) AS first, max(decided_at) AS last,
           count(*) AS decisions, max(seq) AS last_seq
    FROM decisions
    WHERE service = :service AND decided_at >= :since AND requested_at IS NULL AND evaluated_at IS NOT NULL
          AND coalesce(revision, pipeline) IS NOT NULL
    GROUP BY release
) AS grouped JOIN decisions AS latest ON latest.seq = grouped.last_seq
ORDER BY grouped.first, grouped.release
"""
"""Each release of a service gated live since `since`: its first and last decision, how many, and the
last one's pipeline and outcome. One indexed range scan (`decisions_by_service`), no record parsed."""


class DecisionLogError(Exception):
    """The decision log cannot be opened, written or read; the message says which file and why."""


def utc_text(value: datetime) -> str:
    """A fixed-width UTC timestamp; a naive datetime is taken to be UTC already."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    except OverflowError:  # within hours of year 1 or 9999 (a replayed `at`): clamp; the order still holds
        edge = datetime.min if aware.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC).isoformat(timespec="microseconds")


def _encode(record: dict[str, Any]) -> str:
    """JSON text; NaN becomes null and anything JSON cannot hold its str(), so no decision is lost."""
    return wire_json(record).decode()


def _row(decision: Decision) -> dict[str, Any]:
    record = decision.to_dict()
    evaluated = decision.evaluated_at
    return {
        "id": decision.id,
        "decided_at": utc_text(decision.decided_at),
        "evaluated_at": None if evaluated is None else utc_text(evaluated),
        "slo": decision.slo,
        "stage": decision.stage,
        "service": record.get("service") or decision.request.service,
        "revision": decision.request.revision,
        "pipeline": decision.request.pipeline,
        "rollout": decision.request.rollout,
        "outcome": decision.outcome.value,
        "policy_version": decision.policy_version,
        "record": _encode(record),
        "requested_at": None if decision.request.at is None else utc_text(decision.request.at),
    }


def _prepare(connection: sqlite3.Connection, path: Path) -> str:
    """Switch to WAL, check the schema version and create what is missing; the journal mode in use.

    `BEGIN IMMEDIATE` takes the write lock, so a read-only file or folder is reported here, when
    the evaluator starts, rather than at its first decision.
    """
    try:
        mode = str(connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise DecisionLogError(
                f"the decision log at {path} has schema version {version}; this sloplane reads up to {SCHEMA_VERSION}"
            )
        migration = _MIGRATE_TO_2 if version == 1 else ""
        # One script, one transaction: executescript() would commit a transaction begun outside it.
        script = f"BEGIN IMMEDIATE;\n{migration}{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
        connection.executescript(script)
    except sqlite3.Error as exc:
        if connection.in_transaction:
            connection.rollback()
        raise DecisionLogError(f"cannot write the decision log at {path}: {exc}") from exc
    return mode


class SqliteDecisionLog(SqliteStore):
    """The `DecisionLog` on a SQLite file (created, with its folder, when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) == ":memory:":
            raise DecisionLogError("the decision log needs a file: each thread would see its own in-memory database")
        create_folder(self.path, "the decision log", DecisionLogError)
        self._connections = ThreadConnections(self.path, "the decision log", DecisionLogError)
        self._write_lock = threading.Lock()
        self._write_problem: str | None = None
        self.journal_mode = _prepare(self._connections.get(), self.path)
        """`wal` normally; a file system without shared memory (some network mounts) keeps `delete`."""

    def append(self, decision: Decision) -> None:
        """Record one decision; a decision whose id is already recorded is refused."""
        row = _row(decision)
        connection = self._connections.get()
        try:
            with self._write_lock:
                connection.execute(_INSERT, row)
        except sqlite3.IntegrityError:
            raise DecisionLogError(f"decision {decision.id} is already in the decision log at {self.path}") from None
        except sqlite3.Error as exc:
            self._write_problem = f"cannot write {self.path}: {exc}"
            raise DecisionLogError(f"cannot record decision {decision.id} in {self.path}: {exc}") from None
        self._write_problem = None

    def problem(self) -> str | None:
        """Why the log cannot be used now: the last append failed (until a write succeeds), or it cannot be read.

        Answers from state and one indexed read of the newest row: readiness calls it on every probe.
        """
        if self._write_problem is not None:
            return self._write_problem
        try:
            self._read("SELECT seq FROM decisions ORDER BY seq DESC LIMIT 1", ())
        except DecisionLogError as error:
            return str(error)
        return None

    def check_writable(self) -> None:
        """Write one row to `write_probe` (never to the decisions): clears a write problem once it succeeds."""
        try:
            with self._write_lock:
                self._connections.get().execute(
                    "INSERT OR REPLACE INTO write_probe (id, at) VALUES (1, ?)", (utc_text(datetime.now(UTC)),)
                )
        except sqlite3.Error as exc:
            self._write_problem = f"cannot write {self.path}: {exc}"
            raise DecisionLogError(self._write_problem) from None
        self._write_problem = None

    def query(
        self,
        *,
        slo: str | None = None,
        stage: str | None = None,
        outcome: str | Outcome | None = None,
        revision: str | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Recorded decisions (their `to_dict()` form), newest first; `since`/`until` bound `decidedAt`, inclusive."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        equal = {"slo": slo, "stage": stage, "outcome": outcome, "revision": revision, "service": service}
        conditions, values = _filters(equal, since, until)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT record FROM decisions {where} ORDER BY decided_at DESC, seq DESC LIMIT ?"
        rows = self._read(sql, (*values, limit))
        return [orjson.loads(record) for (record,) in rows]

    def releases(self, service: str, since: datetime) -> list[ReleaseSpan]:
        """Every release (revision, else pipeline) of `service` gated live since `since`, first gated first.

        Replays (a request with `at`) are left out: back-testing must never create deployment history.
        """
        rows = self._read(_RELEASES, {"service": service, "since": utc_text(since)})
        return [
            ReleaseSpan(release, datetime.fromisoformat(first), datetime.fromisoformat(last), count, pipeline, outcome)
            for release, first, last, count, pipeline, outcome in rows
        ]

    def count(self) -> int:
        """How many decisions are recorded."""
        ((count,),) = self._read("SELECT count(*) FROM decisions", ())
        return int(count)

    def iter_all(self, after_id: str | None = None, *, batch_size: int = 500) -> Iterator[dict[str, Any]]:
        """Every decision in the order it was recorded, starting after `after_id` (to resume an export).

        Reads in batches, each its own short read transaction: a long export never holds a
        snapshot open, and decisions recorded meanwhile are included.
        """
        position = 0 if after_id is None else self._position_of(after_id)
        while True:
            rows = self._read(
                "SELECT seq, record FROM decisions WHERE seq > ? ORDER BY seq LIMIT ?", (position, batch_size)
            )
            if not rows:
                return
            for _, record in rows:
                yield orjson.loads(record)
            position = rows[-1][0]

    def iter_with_seq(self, after_seq: int = 0, *, batch_size: int = 500) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every decision after `after_seq` with its `seq`, in the order it was recorded.

        The `seq` is what a resumable export keeps as its position: a decision id says nothing
        about order, while `seq` only grows, so "everything after N" is one indexed range scan.
        Batches are separate short read transactions, as in `iter_all`.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        position = after_seq
        while True:
            rows = self._read(
                "SELECT seq, record FROM decisions WHERE seq > ? ORDER BY seq LIMIT ?", (position, batch_size)
            )
            if not rows:
                return
            for seq, record in rows:
                yield int(seq), orjson.loads(record)
            position = rows[-1][0]

    def last_seq(self) -> int:
        """The `seq` of the newest decision (0 when empty): where an export run stops, so it is bounded."""
        ((last,),) = self._read("SELECT coalesce(max(seq), 0) FROM decisions", ())
        return int(last)

    def _position_of(self, decision_id: str) -> int:
        rows = self._read("SELECT seq FROM decisions WHERE id = ?", (decision_id,))
        if not rows:
            raise DecisionLogError(f"decision {decision_id} is not in the decision log at {self.path}")
        return int(rows[0][0])

    def _read(self, sql: str, values: tuple[Any, ...] | dict[str, Any]) -> list[Any]:
        try:
            return self._connections.get().execute(sql, values).fetchall()
        except sqlite3.Error as exc:
            raise DecisionLogError(f"cannot read the decision log at {self.path}: {exc}") from exc


def _filters(
    equal: dict[str, str | None], since: datetime | None, until: datetime | None
) -> tuple[list[str], list[Any]]:
    """SQL conditions for the filters that are set: column names from the caller's literal keys, values bound."""
    conditions = [f"{column} = ?" for column, value in equal.items() if value is not None]
    values: list[Any] = [str(value) for value in equal.values() if value is not None]
    if since is not None:
        conditions.append("decided_at >= ?")
        values.append(utc_text(since))
    if until is not None:
        conditions.append("decided_at <= ?")
        values.append(utc_text(until))
    return conditions, values


if TYPE_CHECKING:

    def _is_a_decision_log(log: SqliteDecisionLog) -> DecisionLog:
        """`mypy sloplane` proves the SQLite log satisfies the protocol the evaluator is built against."""
        return log
