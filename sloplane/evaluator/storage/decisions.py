"""The decision log on SQLite: every gate decision, kept in full, never changed or removed.

Why SQLite: the evaluator is one process per cluster and must keep working with no database
server to operate; a single file is easy to back up, to copy off a pod and to read with the
`sqlite3` shell. Why append-only, enforced by triggers: the log is the audit trail of which
release was let through and why; a bug (or a hand in the shell) must not rewrite history.

Threads: one connection per thread, so readers never wait for each other or for a writer (WAL
mode lets readers see the last committed state while a write is in progress); appends are
written by one thread at a time (`group_commit`): the appends that arrive while a transaction is
being written go together into the next one, so a burst of gates costs a few fsyncs, not one each,
and no thread polls in SQLite's busy handler. The busy timeout still covers other processes (the CLI
reading the log, or appending to it).
A connection is closed when its thread ends or when the log is closed.

The hash chain (`storage.chain`, schema version 3): each row carries `prev_hash`, the hash of the row
before it, and `hash`, its own, so that a writer with access to the file (who can drop the triggers)
cannot edit, delete, insert or backdate a record without `verify` naming it. An append reads the last
row inside its write transaction (`BEGIN IMMEDIATE`), never from memory: `serve` and the CLI (`sloplane
gate --prometheus`) may append to one file, and one sequence with one chain must come out of both.
`seq` is assigned explicitly, the last one plus one, so that it is contiguous from 1 as the chain needs.
The schema and its migrations (a version 2 file is chained as found) are `decisions_schema.py`.

The chain key: with `SLOPLANE_CHAIN_KEY` in the environment (or `chain_key` given) the hashes are
HMACs under it, so someone who can write the file but does not hold the key (kept in a Secret the
volume's other users cannot read) cannot recompute a rewritten tail. Every process that appends to a
log, and `sloplane decisions verify`, must use the same key for the log's whole life: a record hashed
under another key (or none) is reported as changed. Without a key the chain is plain SHA-256, which
finds every edit that does not also recompute the rest of the log.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from sloplane.core.serialize import wire_json
from sloplane.evaluator.model import ChainReport, Decision, Outcome, ReleaseSpan
from sloplane.evaluator.storage import chain
from sloplane.evaluator.storage.chain import GENESIS, record_hash
from sloplane.evaluator.storage.decisions_schema import (
    CHAIN_ROWS,
    LAST_POSSIBLE_SEQ,
    SCHEMA_VERSION,
    prepare,
    roll_back,
)
from sloplane.evaluator.storage.group_commit import GroupCommit
from sloplane.evaluator.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from sloplane.evaluator.contracts import DecisionLog

CHAIN_ROW = chain.CHAIN_ROW
"""The columns of a row as `chain.verify` reads it; named here too, as the stores' callers knew it."""
CHAIN_KEY_ENV = "SLOPLANE_CHAIN_KEY"
"""The environment variable the chain key is read from (text, used as its UTF-8 bytes; empty: no key)."""

_INSERT = """
INSERT INTO decisions (seq, id, decided_at, evaluated_at, slo, stage, service, revision, pipeline, rollout,
                       outcome, policy_version, record, requested_at, prev_hash, hash)
VALUES (:seq, :id, :decided_at, :evaluated_at, :slo, :stage, :service, :revision, :pipeline, :rollout,
        :outcome, :policy_version, :record, :requested_at, :prev_hash, :hash)
"""

_LAST = "SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1"

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


class FenceBusyError(DecisionLogError):
    """Another process holds a lock this one needed (an export round's): not a fault, a turn skipped."""


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


def _time_text(value: Any) -> str | None:
    """A time from a record's JSON as the columns hold it (fixed-width UTC text), None for none."""
    return None if value is None else utc_text(datetime.fromisoformat(str(value)))


def record_columns(record: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a decision is stored under (what the log is searched by and the chain hashes, all but
    `seq`), from its `to_dict()` form.

    From the JSON rather than the `Decision`, so that whoever holds only the JSON (the S3 export, read
    back to be verified) derives exactly the columns the store wrote. Raises KeyError, TypeError or
    ValueError for something that is not a decision's JSON.
    """
    request = record.get("request") or {}
    return {
        "id": record["id"],
        "decided_at": _time_text(record["decidedAt"]),
        "evaluated_at": _time_text(record.get("evaluatedAt")),
        "slo": record["slo"],
        "stage": record.get("stage"),
        "service": record.get("service") or request.get("service"),
        "revision": request.get("revision"),
        "pipeline": request.get("pipeline"),
        "rollout": request.get("rollout"),
        "outcome": record["decision"],
        "policy_version": record["policyVersion"],
        "record": _encode(dict(record)),
        "requested_at": _time_text(request.get("at")),
    }


def _row(decision: Decision) -> dict[str, Any]:
    return record_columns(decision.to_dict())


def chain_key_from_environment() -> bytes | None:
    """`SLOPLANE_CHAIN_KEY` as bytes, or None when unset or empty."""
    text = os.environ.get(CHAIN_KEY_ENV, "")
    return text.encode() if text else None


class SqliteDecisionLog(SqliteStore):
    """The `DecisionLog` on a SQLite file (created, with its folder, when missing).

    `chain_key`: the key the chain's hashes are HMACs under; None reads `SLOPLANE_CHAIN_KEY` (see the
    module's docstring), whose absence means plain SHA-256.
    """

    def __init__(self, path: str | Path, *, chain_key: bytes | None = None) -> None:
        self._attach(path, "the decision log", DecisionLogError)
        self._key = chain_key if chain_key is not None else chain_key_from_environment()
        self._appends: GroupCommit[dict[str, Any]] = GroupCommit(self._append_batch)
        self._write_problem: str | None = None
        self.journal_mode = prepare(self._connections.get(), self.path, self._key, DecisionLogError)
        """`wal` normally; a file system without shared memory (some network mounts) keeps `delete`."""

    def append(self, decision: Decision) -> None:
        """Record one decision, chained to the last one; a decision whose id is already recorded is refused.

        Returns once the record is committed. Appends from several threads at once are written together
        (`GroupCommit`): one transaction, one fsync, for everything that queued meanwhile.
        """
        try:
            self._appends.submit(_row(decision))
        except DecisionLogError:
            raise
        except sqlite3.Error as exc:
            self._write_problem = f"cannot write {self.path}: {exc}"
            raise DecisionLogError(f"cannot record decision {decision.id} in {self.path}: {exc}") from None
        self._write_problem = None

    def _append_batch(self, rows: Sequence[dict[str, Any]]) -> list[BaseException | None]:
        """One write transaction for a batch: the last row is read under the write lock another process
        would need too, so the links and the `seq`s are the file's, not this process's idea of it.

        A row whose id is already recorded is refused alone: SQLite backs out only the failed statement,
        the transaction and the rest of the batch go on, and the chain links past it.
        """
        connection = self._connections.writer()
        outcomes: list[BaseException | None] = []
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            try:
                last = connection.execute(_LAST).fetchone()
                seq, previous = (0, GENESIS) if last is None else (int(last[0]), last[1] or GENESIS)
                for row in rows:
                    linked = {**row, "seq": seq + 1, "prev_hash": previous}
                    linked["hash"] = record_hash(linked, previous, self._key)
                    try:
                        connection.execute(_INSERT, linked)
                    except sqlite3.IntegrityError as exc:
                        if "decisions.id" not in str(exc):  # not a repeated id: the batch fails, and says why
                            raise
                        known = f"decision {row['id']} is already in the decision log at {self.path}"
                        outcomes.append(DecisionLogError(known))
                        continue
                    seq, previous = seq + 1, linked["hash"]
                    outcomes.append(None)
                connection.execute("COMMIT")
            except BaseException:
                roll_back(connection)
                raise
        return outcomes

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
                self._connections.writer().execute(
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

    def span(self, since: datetime, until: datetime) -> tuple[int, int | None, int | None]:
        """How many decisions were decided in [since, until), and the first and last `seq` among them: the range
        of the log a report's evidence cites (and `decisions verify` checks)."""
        sql = "SELECT count(*), min(seq), max(seq) FROM decisions WHERE decided_at >= ? AND decided_at < ?"
        ((count, first, last),) = self._read(sql, (utc_text(since), utc_text(until)))
        return int(count), first, last

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

    def chain_rows(
        self, after_seq: int = 0, until_seq: int | None = None, *, batch_size: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Rows as the chain reads them (`CHAIN_ROW`: the hashed columns, `prev_hash`, `hash`), in seq order,
        after `after_seq` and up to `until_seq` (default: all).

        Batches are separate short read transactions, as in `iter_with_seq`: a walk over millions of
        rows holds one batch in memory and no snapshot open.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        position, last = after_seq, LAST_POSSIBLE_SEQ if until_seq is None else until_seq
        while True:
            found = self._read(CHAIN_ROWS, (position, last, batch_size))
            if not found:
                return
            for values in found:
                yield dict(zip(CHAIN_ROW, values, strict=True))
            position = found[-1][0]

    def verify(self) -> ChainReport:
        """Walk the chain from the first record to the last one there when the walk starts.

        Bounded by the last `seq` at the start, so a walk on a busy log ends; what is appended meanwhile
        is chained to what was walked, and found by the next walk.
        """
        return chain.verify(self.chain_rows(until_seq=self.last_seq()), self._key)

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


def verify_file(path: str | Path, *, chain_key: bytes | None = None, batch_size: int = 500) -> ChainReport:
    """Verify a SQLite decision log's chain without writing to it: for evidence copies and read-only mounts.

    `SqliteDecisionLog` opens a file to use it: it creates what is missing and migrates an older schema,
    which would change the very file an auditor was handed. Here the file is opened read-only
    (`mode=ro`), nothing is created or migrated, and a file whose schema predates the chain (version
    2 or older) is reported as such rather than chained on the spot. `chain_key`: as the log's (None:
    `SLOPLANE_CHAIN_KEY`).
    """
    file = Path(path)
    key = chain_key if chain_key is not None else chain_key_from_environment()
    if not file.is_file():
        raise DecisionLogError(f"no decision log at {file}")
    # No `-wal` beside it: nobody has it open for writing, so it is read as immutable (no lock, no `-shm`
    # created, a read-only mount is fine); otherwise read-only, which reads the WAL through its `-shm`.
    live = file.with_name(f"{file.name}-wal").exists()
    options = "mode=ro" if live else "mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(f"{file.resolve().as_uri()}?{options}", uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise DecisionLogError(f"cannot open the decision log at {file} read-only: {exc}") from None
    try:
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if version < SCHEMA_VERSION:
            raise DecisionLogError(
                f"the decision log at {file} is schema version {version}, from before the hash chain: nothing "
                "to verify until a sloplane that chains it opens it for writing"
            )
        ((last,),) = connection.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchall()
        return chain.verify(_read_only_rows(connection, int(last), batch_size), key)
    except sqlite3.Error as exc:
        raise DecisionLogError(f"cannot read the decision log at {file}: {exc}") from None
    finally:
        connection.close()


def _read_only_rows(connection: sqlite3.Connection, last: int, batch_size: int) -> Iterator[dict[str, Any]]:
    """Chain rows up to `last`, a batch at a time (as `SqliteDecisionLog.chain_rows`)."""
    position = 0
    while True:
        found = connection.execute(CHAIN_ROWS, (position, last, batch_size)).fetchall()
        if not found:
            return
        for values in found:
            yield dict(zip(CHAIN_ROW, values, strict=True))
        position = found[-1][0]


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
