"""The decision log on PostgreSQL: the log `SqliteDecisionLog` keeps, shared by every evaluator replica.

Why: replicas on one SQLite file need POSIX locks over a network file system, which are unreliable, and
replicas with a file each keep one history each. One PostgreSQL database gives every replica the same
log, one `seq` order and one hash chain. It behaves as the SQLite log does — same columns, same filters
and order, the same JSON records back — so the evaluator, the export and the tests do not care which.

Appends: one short transaction locks the one-row chain head (`postgres_schema`), takes the next `seq`
and the previous hash, and inserts the record with its hash while moving the head, in one statement.
Appends that arrive together in one replica share that transaction (`group_commit`): a burst of gates
costs one lock, one pipeline of inserts and one commit, not one each. The
hash is `chain.record_hash` over the very columns the SQLite log stores (`record_columns`), an HMAC when
a chain key is set (by argument or `SLOPLANE_CHAIN_KEY`): the same decisions make the same chain in
either store. Appends from all replicas queue on that row lock, so `seq` is contiguous from 1; readers
never wait for it.

Connections: a `psycopg_pool.ConnectionPool`, autocommit (a read is one statement; a write opens its
own transaction). After PostgreSQL restarts, the pool's idle connections are dead; the first use of one
fails at once, the pool is then checked (every dead idle connection dropped) and the operation tried
once more on a fresh connection — unless what failed was the COMMIT of an append, which may have been
applied: that one is reported, never repeated. No connection within the timeout is reported with the
reason a fresh connection attempt gives (refused, unknown host, authentication).

Messages name the database by its URL without the password, and pass through `Secrets.scrub` first
(`postgres_conninfo`): they reach logs, `/readyz` and gate answers.

Size: over 500 lines because it is the whole `DecisionLog` protocol (appends in batches, queries, the chain
walk, the export's fence) over one pool and one set of messages; the schema, the pool's retry and the
connection strings already live apart (`postgres_schema`, `postgres_pool`, `postgres_conninfo`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import orjson
from psycopg import Connection
from psycopg import Error as DriverError
from psycopg.rows import dict_row
from psycopg_pool import PoolClosed, PoolTimeout

from sloplane.evaluator.model import Decision, Outcome, ReleaseSpan
from sloplane.evaluator.storage import chain
from sloplane.evaluator.storage.chain import CHAIN_ROW
from sloplane.evaluator.storage.decisions import (
    DecisionLogError,
    FenceBusyError,
    chain_key_from_environment,
    record_columns,
    utc_text,
)
from sloplane.evaluator.storage.group_commit import GroupCommit
from sloplane.evaluator.storage.postgres_pool import (
    POOL_SIZE,
    TIMEOUT_SECONDS,
    PooledStore,
    use,
)
from sloplane.evaluator.storage.postgres_schema import migrate

if TYPE_CHECKING:
    from sloplane.evaluator.contracts import DecisionLog

PROBE_TIMEOUT_SECONDS = 1.0
"""How long `problem()` waits for a connection: readiness probes call it, and must not hang."""
VERIFY_BATCH = 1000
"""Rows `verify` fetches per round trip from its server-side cursor: memory stays bounded on any log."""

_LAST_POSSIBLE_SEQ = 2**63 - 1
_Result = TypeVar("_Result")
_Connection = Connection[tuple[Any, ...]]

_HEAD = "SELECT seq, hash FROM decision_chain_head WHERE id = 1 FOR UPDATE"
_KNOWN_IDS = "SELECT id FROM decisions WHERE id = ANY(%s)"
_EXPORT_LOCK = "SELECT pg_try_advisory_xact_lock(%(key)s)"
EXPORT_LOCK_KEY = 0x736C_6578_706F_7274
"""The export round's advisory lock ("slexport"): apart from the leader's, so a replica that lost leadership
without knowing cannot export beside the new leader, whoever holds the election lock."""

_APPEND = """
WITH appended AS (
    INSERT INTO decisions (seq, id, decided_at, evaluated_at, slo, stage, service, revision, pipeline, rollout,
                           outcome, policy_version, record, requested_at, prev_hash, hash)
    VALUES (%(seq)s, %(id)s, %(decided_at)s::timestamptz, %(evaluated_at)s::timestamptz, %(slo)s, %(stage)s,
            %(service)s, %(revision)s, %(pipeline)s, %(rollout)s, %(outcome)s, %(policy_version)s, %(record)s,
            %(requested_at)s::timestamptz, %(prev_hash)s, %(hash)s)
    RETURNING seq, hash
)
UPDATE decision_chain_head AS head SET seq = appended.seq, hash = appended.hash FROM appended WHERE head.id = 1
"""
"""The record and the head's move in one statement: one round trip fewer inside the locked transaction."""

_RELEASES = """
SELECT grouped.release, grouped.first, grouped.last, grouped.decisions, latest.pipeline, latest.outcome
FROM (
    SELECT coalesce(revision, pipeline) AS release, min(decided_at) AS first, max(decided_at) AS last,
           count(*) AS decisions, max(seq) AS last_seq
    FROM decisions
    WHERE service = %(service)s AND decided_at >= %(since)s::timestamptz AND requested_at IS NULL
          AND evaluated_at IS NOT NULL AND coalesce(revision, pipeline) IS NOT NULL
    GROUP BY coalesce(revision, pipeline)
) AS grouped JOIN decisions AS latest ON latest.seq = grouped.last_seq
ORDER BY grouped.first, grouped.release
"""
"""As the SQLite log's: each live-gated release of a service since `since`, its last decision's pipeline and outcome."""

_CHAIN_ROWS = f"SELECT {', '.join(CHAIN_ROW)} FROM decisions WHERE seq > %s AND seq <= %s ORDER BY seq"
_ALL_CHAIN_ROWS = f"SELECT {', '.join(CHAIN_ROW)} FROM decisions ORDER BY seq"
_TIME_COLUMNS = ("decided_at", "evaluated_at", "requested_at")


class PostgresDecisionLog(PooledStore):
    """The `DecisionLog` on a PostgreSQL database, given as a `postgresql://` URL; migrated when opened.

    The password comes from the URL, from `password_file` (its whole content), or from libpq's environment
    (`PGPASSWORD`, `PGPASSFILE`); it is never part of a message. `chain_key`: the key the chain's hashes are
    HMACs under; None reads `SLOPLANE_CHAIN_KEY`, as the SQLite log does (no key: plain SHA-256).
    """

    def __init__(
        self,
        url: str,
        *,
        chain_key: bytes | None = None,
        password_file: str | Path | None = None,
        pool_size: int = POOL_SIZE,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._key = chain_key if chain_key is not None else chain_key_from_environment()
        self._write_problem: str | None = None
        self._appends: GroupCommit[dict[str, Any]] = GroupCommit(self._append_batch)
        self._open(
            url,
            password_file,
            label="decision log",
            error=DecisionLogError,
            migrate=migrate,
            pool=("sloplane-decisions", pool_size, timeout),
        )

    # -- writing ------------------------------------------------------------------------------------------

    def append(self, decision: Decision) -> None:
        """Record one decision as the next link of the chain; a decision whose id is already recorded is refused.

        Returns once the record is committed. Appends from several threads of this replica at once are
        written together (`GroupCommit`): one transaction, one round trip of inserts, one WAL flush.
        """
        try:
            self._appends.submit(record_columns(decision.to_dict()))
        except DecisionLogError:
            raise
        except DriverError as exc:
            self._write_failed(decision, exc)
        self._write_problem = None

    def _append_batch(self, rows: Sequence[dict[str, Any]]) -> list[BaseException | None]:
        """One transaction for a batch, under the chain head's row lock (which every replica's appends take).

        Ids already recorded are found under that lock, so no other append can add one meanwhile; such a
        row (or a second row of one id in the batch) is refused alone and the chain links past it. The
        inserts go in one pipeline (`executemany`), each moving the head by one as its trigger demands.
        """
        committing = False
        outcomes: list[BaseException | None] = []

        def write(connection: _Connection) -> None:
            nonlocal committing
            committing = False
            outcomes.clear()
            with connection.transaction():
                head = connection.execute(_HEAD).fetchone()
                if head is None:
                    raise DecisionLogError(f"the decision log at {self.where} has lost its chain head")
                known = {str(found) for (found,) in connection.execute(_KNOWN_IDS, ([row["id"] for row in rows],))}
                linked = self._linked(rows, int(head[0]), str(head[1]), known, outcomes)
                if linked:
                    with connection.cursor() as cursor:
                        cursor.executemany(_APPEND, linked)
                committing = True

        self._use(write, self._timeout, retry=lambda: not committing)
        return outcomes

    def _linked(
        self,
        rows: Sequence[dict[str, Any]],
        seq: int,
        previous: str,
        known: set[str],
        outcomes: list[BaseException | None],
    ) -> list[dict[str, Any]]:
        """The rows to insert, each chained to the one before; a known id gets its refusal in `outcomes`."""
        linked: list[dict[str, Any]] = []
        for row in rows:
            if row["id"] in known:
                known_id = f"decision {row['id']} is already in the decision log at {self.where}"
                outcomes.append(DecisionLogError(known_id))
                continue
            known.add(row["id"])
            seq += 1
            link = {**row, "seq": seq, "prev_hash": previous}
            link["hash"] = previous = chain.record_hash(link, previous, self._key)
            linked.append(link)
            outcomes.append(None)
        return linked

    @contextmanager
    def export_fence(self) -> Iterator[Callable[[], None]]:
        """Hold the export lock for one export round; yields the check to run before each object is written.

        A transaction-level advisory lock on a pooled connection, held while the round runs: a second round
        (another replica, or this one's last export after it stepped down) finds it taken and skips its turn
        (`FenceBusyError`). The check runs one statement on that connection: if the session is gone (killed,
        partitioned, PostgreSQL restarted), so is the lock, and the round stops before its next object
        rather than racing the next holder's. The lock goes with the transaction, however the round ends.
        """
        try:
            with self._pool.connection(timeout=self._timeout) as connection, connection.transaction():
                (taken,) = connection.execute(_EXPORT_LOCK, {"key": EXPORT_LOCK_KEY}).fetchone() or (False,)
                if not taken:
                    raise FenceBusyError(f"another process is exporting the decision log at {self.where}")

                def still_fenced() -> None:
                    try:
                        connection.execute("SELECT 1")
                    except DriverError as exc:
                        lost = f"lost the export lock on {self.where}: {self._reason(exc)}"
                        raise DecisionLogError(lost) from None

                yield still_fenced
        except DriverError as exc:
            raise DecisionLogError(f"cannot take the export lock on {self.where}: {self._reason(exc)}") from None

    def _write_failed(self, decision: Decision, exc: DriverError) -> NoReturn:
        reason = self._reason(exc)
        self._write_problem = f"cannot write {self.where}: {reason}"
        raise DecisionLogError(f"cannot record decision {decision.id} in {self.where}: {reason}") from None

    def check_writable(self) -> None:
        """Write one row to `write_probe` (never to the decisions): clears a write problem once it succeeds."""

        def probe(connection: _Connection) -> None:
            connection.execute(
                "INSERT INTO write_probe (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = excluded.at"
            )

        try:
            self._use(probe, PROBE_TIMEOUT_SECONDS)
        except DriverError as exc:
            self._write_problem = f"cannot write {self.where}: {self._reason(exc)}"
            raise DecisionLogError(self._write_problem) from None
        self._write_problem = None

    def problem(self) -> str | None:
        """Why the log cannot be used now: the last append failed (until a write succeeds), or it cannot be read.

        From state and one indexed read of the newest row, waiting at most `PROBE_TIMEOUT_SECONDS` for a
        connection (plus one connection attempt to say why there is none): readiness calls it on every probe.
        """
        if self._write_problem is not None:
            return self._write_problem
        try:
            self._read("SELECT seq FROM decisions ORDER BY seq DESC LIMIT 1", (), timeout=PROBE_TIMEOUT_SECONDS)
        except DecisionLogError as error:
            return str(error)
        return None

    # -- reading ------------------------------------------------------------------------------------------

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
        conditions = [f"{column} = %s" for column, value in equal.items() if value is not None]
        values: list[Any] = [str(value) for value in equal.values() if value is not None]
        if since is not None:
            conditions.append("decided_at >= %s::timestamptz")
            values.append(utc_text(since))
        if until is not None:
            conditions.append("decided_at <= %s::timestamptz")
            values.append(utc_text(until))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT record FROM decisions {where} ORDER BY decided_at DESC, seq DESC LIMIT %s"
        return [orjson.loads(record) for (record,) in self._read(sql, (*values, limit))]

    def releases(self, service: str, since: datetime) -> list[ReleaseSpan]:
        """Every release (revision, else pipeline) of `service` gated live since `since`, first gated first.

        Replays (a request with `at`) are left out: back-testing must never create deployment history.
        """
        rows = self._read(_RELEASES, {"service": service, "since": utc_text(since)})
        return [
            ReleaseSpan(release, first.astimezone(UTC), last.astimezone(UTC), int(count), pipeline, outcome)
            for release, first, last, count, pipeline, outcome in rows
        ]

    def count(self) -> int:
        """How many decisions are recorded."""
        ((count,),) = self._read("SELECT count(*) FROM decisions", ())
        return int(count)

    def span(self, since: datetime, until: datetime) -> tuple[int, int | None, int | None]:
        """How many decisions were decided in [since, until), and the first and last `seq` among them (as SQLite's)."""
        sql = "SELECT count(*), min(seq), max(seq) FROM decisions WHERE decided_at >= %s AND decided_at < %s"
        ((count, first, last),) = self._read(sql, (since, until))
        return int(count), first, last

    def iter_all(self, after_id: str | None = None, *, batch_size: int = 500) -> Iterator[dict[str, Any]]:
        """Every decision in the order it was recorded, starting after `after_id` (to resume an export)."""
        position = 0 if after_id is None else self._position_of(after_id)
        for _, record in self.iter_with_seq(position, batch_size=batch_size):
            yield record

    def iter_with_seq(self, after_seq: int = 0, *, batch_size: int = 500) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every decision after `after_seq` with its `seq`, in the order it was recorded.

        Batches are separate short reads (keyset on `seq`): a long export holds no snapshot open, and
        decisions recorded meanwhile are included.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        position = after_seq
        while True:
            rows = self._read(
                "SELECT seq, record FROM decisions WHERE seq > %s ORDER BY seq LIMIT %s", (position, batch_size)
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
        """Rows as the chain reads them (`CHAIN_ROW`, times as the fixed-width UTC text they were hashed as), in
        seq order, after `after_seq` and up to `until_seq` (default: all): what the export writes.

        Batches are separate short reads, as in `iter_with_seq`.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        position, last = after_seq, _LAST_POSSIBLE_SEQ if until_seq is None else until_seq
        while True:
            found = self._read(f"{_CHAIN_ROWS} LIMIT %s", (position, last, batch_size))
            if not found:
                return
            yield from _chained(dict(zip(CHAIN_ROW, values, strict=True)) for values in found)
            position = found[-1][0]

    def verify(self) -> chain.ChainReport:
        """Walk the whole chain in `seq` order and report the first broken record (`chain.verify`).

        One read-only REPEATABLE READ transaction: the rows and the chain head are one snapshot, while
        appends go on. Rows come through a server-side cursor, `VERIFY_BATCH` at a time. Besides what the
        rows show, the head must agree with the last row: records deleted from the end leave it ahead.
        """

        def walk(connection: _Connection) -> chain.ChainReport:
            with connection.transaction():
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                head = connection.execute("SELECT seq, hash FROM decision_chain_head WHERE id = 1").fetchone()
                with connection.cursor(name="sloplane_verify", row_factory=dict_row) as cursor:
                    cursor.itersize = VERIFY_BATCH
                    cursor.execute(_ALL_CHAIN_ROWS)
                    report = chain.verify(_chained(cursor), self._key)
                if head is None:
                    return chain.ChainReport(report.records, report.head, chain.ChainBreak(0, "-", "no chain head"))
                return _against_head(connection, report, int(head[0]), str(head[1]))

        try:
            return self._use(walk, self._timeout)
        except DriverError as exc:
            raise DecisionLogError(f"cannot read the decision log at {self.where}: {self._reason(exc)}") from None

    # -- connections --------------------------------------------------------------------------------------

    def _position_of(self, decision_id: str) -> int:
        rows = self._read("SELECT seq FROM decisions WHERE id = %s", (decision_id,))
        if not rows:
            raise DecisionLogError(f"decision {decision_id} is not in the decision log at {self.where}")
        return int(rows[0][0])

    def _read(
        self, sql: str, values: tuple[Any, ...] | dict[str, Any], *, timeout: float | None = None
    ) -> list[tuple[Any, ...]]:
        try:
            return self._use(lambda connection: connection.execute(sql, values).fetchall(), timeout or self._timeout)
        except DriverError as exc:
            raise DecisionLogError(f"cannot read the decision log at {self.where}: {self._reason(exc)}") from None

    def _use(
        self, work: Callable[[_Connection], _Result], timeout: float, retry: Callable[[], bool] = lambda: True
    ) -> _Result:
        return use(self._pool, work, timeout, retry)

    def _reason(self, exc: DriverError) -> str:
        """The driver's message, scrubbed; for no connection at all, the reason a fresh attempt gives."""
        if isinstance(exc, PoolClosed):
            return "the log is closed"
        if isinstance(exc, PoolTimeout):
            return self._unreachable()
        return self._scrub(exc)


def _chained(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Rows as they were hashed: the times as the same fixed-width UTC text (`columns`)."""
    for row in rows:
        for column in _TIME_COLUMNS:
            if row[column] is not None:
                row[column] = utc_text(row[column])
        yield row


def _against_head(connection: _Connection, report: chain.ChainReport, seq: int, hash_: str) -> chain.ChainReport:
    """An intact walk must end where the chain head is: rows deleted from the end leave the head ahead of them,
    rows inserted by hand after it leave it behind, and a changed head or last record leaves two hashes."""
    if not report.intact or (report.records == seq and report.head == hash_):
        return report
    if seq > report.records:
        reason = f"is missing: the chain head says {seq} records were appended, the log holds {report.records}"
        return chain.ChainReport(report.records, report.head, chain.ChainBreak(report.records + 1, "deleted", reason))
    if seq < report.records:
        named = seq + 1
        reason = f"comes after the end the chain head records (record {seq}): inserted by hand, or the head moved back"
    else:
        named, reason = seq, "is not where the chain head says the log ends: the head or this record was changed"
    found = connection.execute("SELECT id FROM decisions WHERE seq = %s", (named,)).fetchone()
    broken = chain.ChainBreak(named, str(found[0]) if found else "-", reason)
    return chain.ChainReport(report.records, report.head, broken)


if TYPE_CHECKING:

    def _is_a_decision_log(log: PostgresDecisionLog) -> DecisionLog:
        """`mypy sloplane` proves the PostgreSQL log satisfies the protocol the evaluator is built against."""
        return log
