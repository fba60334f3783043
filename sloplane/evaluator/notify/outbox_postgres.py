"""The notifier's outbox on PostgreSQL: the SQLite `Outbox`'s state, shared by every evaluator replica.

Why: with replicas, a decision is recorded on whichever replica answered the gate (`Notifier.on_decision`), but
only the leader dispatches; when the leader dies another takes over, and it must find every held incident
and pending delivery where the dead one left them. One database holds them for all. The methods, their
semantics and their results are `outbox.Outbox`'s (same rows, same order, same `Delivery` and `HeldIncident`),
so the `Notifier` does not care which store it has; `tests/test_postgres_outbox.py` runs one suite on both.

What SQLite's write lock does here. `transaction()` (the notifier's multi-step changes: check-and-mark a
dedup key then hold or enqueue; release held incidents into war rooms) takes the transaction-scoped advisory
lock `OUTBOX_LOCK` first, so outbox transactions run one at a time across every replica, as `BEGIN
IMMEDIATE` makes them on one SQLite file. In particular the dedup check is atomic across replicas: the
second replica's `recently_sent` runs after the first's commit (READ COMMITTED: a fresh snapshot per
statement) and sees its `mark_sent` (itself one upsert on the key), so one decision notifies, the rest are
suppressed. The transactions are a few statements, no HTTP, so the lock is held for milliseconds.

Delivery, exactly as implemented. A delivery is `pending`, then `delivered` or `dead`; a pending one may carry
a claim (`claimed_by`, `lease_until`: which dispatcher is sending it, until when, on the database's clock).
- `enqueue`: any replica; once it returns (or its `transaction()` commits) the delivery is in the database.
- `due_deliveries(now)` claims, in one statement (`FOR UPDATE SKIP LOCKED`, then UPDATE), at most `batch`
  pending deliveries due at `now` that no *other* dispatcher holds a live claim on, for `lease` seconds, and
  commits before returning them. Concurrent claimers skip each other's locked rows and re-check rows claimed
  meanwhile: two dispatchers never hold live claims on one delivery.
- After the POST the notifier marks it: `delivered` is always recorded (it happened, whoever holds the claim
  now); `retry` and `dead` only when no other dispatcher holds a live claim (else that one's outcome counts).
  Each mark renews this dispatcher's other claims, so `lease` must outlast one attempt (the notifier's
  timeout: 5 s to connect + 10 s to read by default), not a whole batch.
- A dispatcher that dies (SIGKILL, a lost node) leaves its claims; they are offered again when the lease
  ends: at most `lease` after its last claim or mark, plus the notifier's idle poll (one second). Unclaimed
  deliveries are offered to the next dispatcher at once; `close()` hands this dispatcher's claims back at once.
- Nothing is lost: a delivery leaves `pending` only through a `delivered` or `dead` mark; a claim expires.
- At least once, not exactly once: a POST the receiver accepted whose `delivered` mark was not committed —
  the dispatcher killed between the two, a POST outlasting the lease, PostgreSQL unreachable for the mark —
  is sent again by the next claimer. No ordering of a POST and a COMMIT closes that window; only the receiver
  can. PagerDuty does: every event carries the incident's `dedup_key`, and a trigger for an open incident
  with that key is merged into it, not paged again. Webhook bodies carry `dedupKey`, but a war room's later
  updates share it, so a receiver cannot tell a repeat from an update by it alone; the row's `claims` column
  (above 1) names the deliveries that may have gone out twice.

Differences from SQLite, all about claims: `due_deliveries` returns at most `batch` rows and claims them;
`next_delivery` ignores deliveries another dispatcher holds a live claim on (so a dispatcher waiting for a
dead one's lease polls idly instead of spinning); `retry`/`dead` defer to another's live claim. And
`counts()` is one statement, one snapshot (see there).

Connections and failures as in the decision log (`storage.postgres`): a pool, autocommit, one retry on a fresh
connection after PostgreSQL restarted unless a COMMIT was what failed; messages name the database without its
password (`postgres_conninfo`). Inside `transaction()` nothing is retried: the caller's steps would have to
be redone, so the error is raised and the transaction rolled back. Sessions wait at most `timeout` for a lock
(`lock_timeout`) and the server ends one left idle in a transaction (`IDLE_IN_TRANSACTION_SECONDS`), so a
wedged replica cannot hold the outbox lock, and every gate's `on_decision`, for long.

Size: one class answering `outbox.Outbox`'s two dozen methods one for one, in its order, so that the two read
side by side, plus the connection handling each PostgreSQL store repeats (pool, the retry after a restart,
scrubbed messages: some 100 lines that belong in one shared `storage` helper once the three stores settle).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from psycopg import Connection, OperationalError, connect
from psycopg import Error as DriverError
from psycopg.conninfo import make_conninfo
from psycopg_pool import PoolClosed, PoolTimeout

from sloplane.core.durations import DurationError, parse_duration
from sloplane.core.serialize import canonical_json
from sloplane.evaluator.notify.classify import Incident
from sloplane.evaluator.notify.events import Notice
from sloplane.evaluator.notify.outbox import (
    DEAD,
    DELIVERED,
    HELD,
    PENDING,
    RELEASED,
    Delivery,
    HeldIncident,
    OutboxError,
)
from sloplane.evaluator.notify.outbox_postgres_schema import (
    COUNTERS,
    DELIVERIES,
    INCIDENTS,
    MIGRATIONS,
    SENT_KEYS,
    STORE,
    WAR_ROOMS,
)
from sloplane.evaluator.storage.postgres_conninfo import ConninfoError, Target, target
from sloplane.evaluator.storage.postgres_pool import (
    POOL_SIZE,
    TIMEOUT_SECONDS,
    PooledStore,
    new_pool,
    use,
)
from sloplane.evaluator.storage.postgres_schema import MigrationError, migrate

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
"""How long a claim holds without news from its dispatcher: four times the notifier's default worst attempt
(15 s), renewed after every attempt. Also the longest a dead dispatcher's claimed deliveries wait."""
LEASE_ENV = "SLOPLANE_OUTBOX_LEASE"
"""The environment variable a lease other than `LEASE_SECONDS` is read from, as a duration (`20s`, `2m`): what
a replica killed mid-dispatch costs in delay against the risk of a slow attempt outliving its lease and being
sent twice. `sloplane serve` has no option for it (the outbox is opened deep inside the notifier); the
replica failover tests set it short so that a killed leader's claims come back in seconds, not a minute."""
CLAIM_BATCH = 16
"""Deliveries claimed at once: few enough that a dead dispatcher strands little, enough to keep the notifier's
loop (grouping, idle reads) out of the way of a backlog."""
OUTBOX_LOCK = int.from_bytes(b"sl/outbx")
"""The advisory lock `transaction()` takes: the outbox's, distinct from the migrations' and the leader's."""
IDLE_IN_TRANSACTION_SECONDS = 30
"""The server ends a session idle this long inside a transaction: an outbox transaction takes milliseconds."""

_Result = TypeVar("_Result")
_Connection = Connection[tuple[Any, ...]]

_DELIVERY_COLUMNS = "id, receiver, channel, notice, state, attempts, next_at, last_error"
_OFFERED = "(claimed_by IS NULL OR claimed_by = %(me)s OR lease_until <= clock_timestamp())"
"""A delivery this dispatcher may take: unclaimed, claimed by itself, or claimed by one whose lease is over."""
_LEASE = "clock_timestamp() + %(lease)s * interval '1 second'"

_CLAIM = f"""
WITH due AS (
    SELECT id FROM {DELIVERIES}
    WHERE state = %(pending)s AND next_at <= %(now)s AND {_OFFERED}
    ORDER BY id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {DELIVERIES} AS delivery
SET claimed_by = %(me)s, lease_until = {_LEASE}, claims = delivery.claims + 1
FROM due WHERE delivery.id = due.id
RETURNING {", ".join(f"delivery.{column}" for column in _DELIVERY_COLUMNS.split(", "))}
"""
"""Select and claim in one statement: a row locked by a concurrent claimer is skipped, one it claimed and
committed meanwhile is re-checked against `_OFFERED` (READ COMMITTED re-reads a row it locks) and dropped."""
_RENEW = f"UPDATE {DELIVERIES} SET lease_until = {_LEASE} WHERE claimed_by = %(me)s AND id <> %(id)s"
_UNCLAIMED = "claimed_by = NULL, lease_until = NULL"


def lease_from_environment() -> float:
    """`SLOPLANE_OUTBOX_LEASE` in seconds, or `LEASE_SECONDS` when unset or empty; a ValueError naming the
    variable when it is not a positive duration (`serve` reports it and exits 1, before anything is claimed)."""
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return LEASE_SECONDS
    try:
        return parse_duration(text).total_seconds()  # positive, or a DurationError saying what would do
    except DurationError as error:
        raise ValueError(f"${LEASE_ENV}: {error}") from None


def default_dispatcher() -> str:
    """This process's name in `claimed_by`: host (the pod) and pid for people, and a random part so that a
    restarted process never mistakes its predecessor's claims for its own."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Claim:
    """A pending delivery some dispatcher is sending: for status pages and tests."""

    delivery_id: int
    dispatcher: str
    lease_until: datetime
    claims: int
    """How many times the delivery has been claimed (more than 1: a dispatcher died or lost it meanwhile)."""


def _dumps(value: Any) -> str:
    """JSON spelled as the SQLite outbox stores it (sorted, spaced, anything else as its str())."""
    return canonical_json(value, spaced=True, default=str)


def _delivery(row: Sequence[Any]) -> Delivery:
    id_, receiver, channel, notice, state, attempts, next_at, last_error = row
    notice_ = Notice.from_json(json.loads(notice))
    return Delivery(int(id_), receiver, channel, notice_, state, int(attempts), float(next_at), last_error)


class PostgresOutbox(PooledStore):
    """The notifier's outbox in a PostgreSQL database, given as a `postgresql://` URL; migrated when opened.

    The password comes from the URL, `password_file` or libpq's environment, as for the decision log; it is
    never part of a message. `dispatcher` names this outbox's claims (default: host/pid/random); `lease` and
    `batch` are explained in the module's docstring (`lease` None: `lease_from_environment()`).
    """

    def __init__(
        self,
        url: str,
        *,
        password_file: str | Path | None = None,
        dispatcher: str | None = None,
        lease: float | None = None,
        batch: int = CLAIM_BATCH,
        pool_size: int = POOL_SIZE,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        lease = lease_from_environment() if lease is None else lease
        if lease <= 0 or batch < 1:
            raise ValueError(f"lease must be positive and batch at least 1, not {lease} and {batch}")
        try:
            self._target: Target = target(url, password_file)
        except ConninfoError as error:
            raise OutboxError(str(error)) from None
        self.where = self._target.where
        """The database's URL without its password: what messages say."""
        self.dispatcher = dispatcher or default_dispatcher()
        self.lease = lease
        self.batch = batch
        self._timeout = timeout
        self._local = threading.local()
        self._migrate()
        try:
            self._pool = new_pool(
                self._target, name="sloplane-outbox", configure=self._configure, pool_size=pool_size, timeout=timeout
            )
        except PoolTimeout:
            raise OutboxError(f"cannot open the notification outbox at {self.where}: {self._unreachable()}") from None

    def _migrate(self) -> None:
        try:
            with self._connect(None) as connection:
                migrate(connection, STORE, MIGRATIONS)
        except MigrationError as error:
            raise OutboxError(f"the notification outbox at {self.where}: {self._scrub(error)}") from None
        except DriverError as exc:
            raise OutboxError(f"cannot open the notification outbox at {self.where}: {self._scrub(exc)}") from None

    def _connect(self, connect_timeout: int | None) -> _Connection:
        """A connection of its own (migrating, saying why the pool has none), without the pool's `lock_timeout`:
        migrations wait for other replicas' as long as those take."""
        parameters = dict(self._target.parameters)
        if connect_timeout is not None:
            parameters["connect_timeout"] = str(connect_timeout)
        return connect(make_conninfo(self._target.conninfo, **parameters), autocommit=True)

    def _configure(self, connection: _Connection) -> None:
        """UTC, and bounded waits: for a lock (`timeout`), and for a transaction left idle (by a wedged replica)."""
        connection.execute(
            "SELECT set_config('TimeZone', 'UTC', false), set_config('lock_timeout', %s, false), "
            "set_config('idle_in_transaction_session_timeout', %s, false)",
            (f"{int(self._timeout * 1000)}ms", f"{IDLE_IN_TRANSACTION_SECONDS}s"),
        )

    def close(self) -> None:
        """Hand this dispatcher's claims back (another replica may send them at once), then close the pool."""
        if self._pool.closed:
            return
        try:
            self.release_claims()
        except OutboxError as error:  # the database is gone: the claims expire with their lease instead
            log.warning("could not hand back the outbox's claims: %s", error)
        self._pool.close()

    # -- transactions and statements ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction under `OUTBOX_LOCK` for the calls this thread makes inside: they land together or not
        at all, and no other replica's outbox transaction interleaves. Nested: the outer one commits."""
        if self._current() is not None:
            yield
            return
        connection = self._begin()
        self._local.connection = connection
        try:
            try:
                yield
            except BaseException:
                with suppress(DriverError):  # a broken connection has rolled back by itself
                    connection.execute("ROLLBACK")
                raise
            try:
                connection.execute("COMMIT")
            except DriverError as exc:
                doing = f"cannot commit to the notification outbox at {self.where} (applied or not: unknown)"
                raise self._failed(exc, doing) from None
        finally:
            self._local.connection = None
            self._pool.putconn(connection)

    def _begin(self) -> _Connection:
        """A pooled connection in a transaction holding `OUTBOX_LOCK`; once more on a fresh one if it was dead."""
        doing = f"cannot write the notification outbox at {self.where}"
        for attempt in (1, 2):
            try:
                connection = self._pool.getconn(timeout=self._timeout)
            except DriverError as exc:
                raise self._failed(exc, doing) from None
            try:
                connection.execute("BEGIN")
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (OUTBOX_LOCK,))
            except DriverError as exc:
                dead = isinstance(exc, OperationalError) and connection.broken
                if not connection.broken:
                    with suppress(DriverError):
                        connection.execute("ROLLBACK")
                self._pool.putconn(connection)
                if not (dead and attempt == 1):
                    raise self._failed(exc, doing) from None
                self._pool.check()  # PostgreSQL restarted: drop every dead idle connection at once
                continue
            return connection
        raise OutboxError(f"{doing}: no live connection")  # pragma: no cover - the loop returns or raises

    def _current(self) -> _Connection | None:
        """The connection of this thread's open `transaction()`, if any."""
        connection: _Connection | None = getattr(self._local, "connection", None)
        return connection

    def _read(self, sql: str, values: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        def read(connection: _Connection) -> list[tuple[Any, ...]]:
            return connection.execute(sql, values).fetchall()

        current = self._current()
        try:
            return read(current) if current is not None else self._use(read)
        except DriverError as exc:
            raise self._failed(exc, f"cannot read the notification outbox at {self.where}") from None

    def _write(self, work: Callable[[_Connection], _Result]) -> _Result:
        """`work` in this thread's `transaction()`, else in one of its own, tried once more on a fresh connection
        after a dead one unless its COMMIT was what failed (it may have been applied: reported, not repeated)."""
        current = self._current()
        committing = False

        def attempt(connection: _Connection) -> _Result:
            nonlocal committing
            committing = False
            with connection.transaction():
                result = work(connection)
                committing = True
            return result

        try:
            return work(current) if current is not None else self._use(attempt, retry=lambda: not committing)
        except DriverError as exc:
            raise self._failed(exc, f"cannot write the notification outbox at {self.where}") from None

    def _run(self, sql: str, values: Sequence[Any] | dict[str, Any]) -> int:
        """One write statement; how many rows it changed."""
        return self._write(lambda connection: connection.execute(sql, values).rowcount)

    def _use(self, work: Callable[[_Connection], _Result], retry: Callable[[], bool] = lambda: True) -> _Result:
        return use(self._pool, work, self._timeout, retry)

    def _failed(self, exc: DriverError, doing: str) -> OutboxError:
        if isinstance(exc, PoolClosed):
            return OutboxError(f"the notification outbox at {self.where} is closed")
        reason = self._unreachable() if isinstance(exc, PoolTimeout) else self._scrub(exc)
        return OutboxError(f"{doing}: {reason}")

    # -- counters -------------------------------------------------------------------------------------

    def bump(self, name: str, by: int = 1) -> None:
        """Add to a persistent counter (suppressed repeats, attempts, war rooms opened), shared by every replica."""
        self._run(
            f"INSERT INTO {COUNTERS} (name, value) VALUES (%s, %s) "
            f"ON CONFLICT (name) DO UPDATE SET value = {COUNTERS}.value + excluded.value",
            (name, by),
        )

    def counters(self) -> dict[str, int]:
        """Every counter."""
        return {name: int(value) for name, value in self._read(f"SELECT name, value FROM {COUNTERS}")}

    # -- repeats --------------------------------------------------------------------------------------

    def recently_sent(self, dedup_key: str, since: float) -> bool:
        """Whether this dedup key started a notification at or after `since` (atomic with `mark_sent` inside
        `transaction()`, across replicas: see the module's docstring)."""
        sql = f"SELECT 1 FROM {SENT_KEYS} WHERE dedup_key = %s AND first_at >= %s"
        return bool(self._read(sql, (dedup_key, since)))

    def mark_sent(self, dedup_key: str, now: float) -> None:
        """Remember that this dedup key started a notification now."""
        self._run(
            f"INSERT INTO {SENT_KEYS} (dedup_key, first_at) VALUES (%s, %s) "
            "ON CONFLICT (dedup_key) DO UPDATE SET first_at = excluded.first_at",
            (dedup_key, now),
        )

    # -- incidents held for grouping ------------------------------------------------------------------

    def hold(self, incident: Incident, receiver: str, now: float) -> None:
        """Keep a deployment incident, to see whether other services join it."""
        self._run(
            f"INSERT INTO {INCIDENTS} (dedup_key, grp, receiver, service, data, received_at, state) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (incident.dedup_key, incident.group, receiver, incident.service, _dumps(incident.to_json()), now, HELD),
        )

    def _incidents(self, where: str, values: Sequence[Any]) -> list[HeldIncident]:
        sql = f"SELECT id, data, receiver, received_at, state FROM {INCIDENTS} WHERE {where} ORDER BY id"
        return [
            HeldIncident(int(id_), Incident.from_json(json.loads(data)), receiver, received_at, state)
            for id_, data, receiver, received_at, state in self._read(sql, values)
        ]

    def due(self, received_by: float) -> list[HeldIncident]:
        """Held incidents received at or before `received_by` (whose wait is over), oldest first."""
        return self._incidents("state = %s AND received_at <= %s", (HELD, received_by))

    def in_group(self, group: str, since: float) -> list[HeldIncident]:
        """Every incident of a group received at or after `since`, held or released."""
        return self._incidents("grp = %s AND received_at >= %s", (group, since))

    def release(self, ids: list[int]) -> None:
        """Mark incidents as handled."""
        if ids:
            self._run(f"UPDATE {INCIDENTS} SET state = %s WHERE id = ANY(%s)", (RELEASED, list(ids)))

    def held_count(self) -> int:
        """Incidents still held."""
        return int(self._read(f"SELECT count(*) FROM {INCIDENTS} WHERE state = %s", (HELD,))[0][0])

    def oldest_held(self) -> float | None:
        """When the oldest held incident was received."""
        value = self._read(f"SELECT min(received_at) FROM {INCIDENTS} WHERE state = %s", (HELD,))[0][0]
        return None if value is None else float(value)

    # -- war rooms ------------------------------------------------------------------------------------

    def war_room(self, group: str, since: float) -> list[tuple[Incident, str]] | None:
        """The members of the group's war room (incident, receiver), if one opened at or after `since`."""
        rows = self._read(f"SELECT members FROM {WAR_ROOMS} WHERE grp = %s AND opened_at >= %s", (group, since))
        if not rows:
            return None
        return [(Incident.from_json(member["incident"]), member["receiver"]) for member in json.loads(rows[0][0])]

    def save_war_room(self, group: str, members: list[tuple[Incident, str]], opened_at: float | None) -> None:
        """Record a room's members; `opened_at` when it opens (None keeps the opening time)."""
        text = _dumps([{"incident": incident.to_json(), "receiver": receiver} for incident, receiver in members])
        if opened_at is None:
            self._run(f"UPDATE {WAR_ROOMS} SET members = %s WHERE grp = %s", (text, group))
            return
        self._run(
            f"INSERT INTO {WAR_ROOMS} (grp, opened_at, members) VALUES (%s, %s, %s) "
            "ON CONFLICT (grp) DO UPDATE SET opened_at = excluded.opened_at, members = excluded.members",
            (group, opened_at, text),
        )

    # -- deliveries -----------------------------------------------------------------------------------

    def enqueue(self, receiver: str, channel: str, notice: Notice, now: float) -> None:
        """A notice to send to one channel of a receiver, due now."""
        self._run(
            f"INSERT INTO {DELIVERIES} (receiver, channel, dedup_key, notice, state, next_at, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (receiver, channel, notice.dedup_key, _dumps(notice.to_json()), PENDING, now, now),
        )

    def due_deliveries(self, now: float) -> list[Delivery]:
        """Claim (for `lease` seconds) and return up to `batch` pending deliveries due at `now`, oldest first;
        none that another dispatcher holds a live claim on."""
        values = {"pending": PENDING, "now": now, "me": self.dispatcher, "batch": self.batch, "lease": self.lease}
        rows = self._write(lambda connection: connection.execute(_CLAIM, values).fetchall())
        return sorted((_delivery(row) for row in rows), key=lambda delivery: delivery.id)

    def deliveries(self, state: str) -> list[Delivery]:
        """Every delivery in a state (claimed or not)."""
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM {DELIVERIES} WHERE state = %s ORDER BY id"
        return [_delivery(row) for row in self._read(sql, (state,))]

    def next_delivery(self) -> float | None:
        """When the next pending delivery this dispatcher may take is due."""
        sql = f"SELECT min(next_at) FROM {DELIVERIES} WHERE state = %(pending)s AND {_OFFERED}"
        value = self._read(sql, {"pending": PENDING, "me": self.dispatcher})[0][0]
        return None if value is None else float(value)

    def delivered(self, delivery_id: int, now: float) -> None:
        """Sent and accepted: recorded whoever holds the delivery's claim now, since the receiver has it."""
        sql = (
            f"UPDATE {DELIVERIES} SET state = %(state)s, attempts = attempts + 1, delivered_at = %(now)s, "
            f"last_error = NULL, {_UNCLAIMED} WHERE id = %(id)s"
        )
        self._mark(sql, {"state": DELIVERED, "now": now, "id": delivery_id})

    def retry(self, delivery_id: int, next_at: float, error: str) -> None:
        """Failed for now; try again at `next_at` (unless another dispatcher holds the delivery now)."""
        sql = (
            f"UPDATE {DELIVERIES} SET attempts = attempts + 1, next_at = %(next_at)s, last_error = %(error)s, "
            f"{_UNCLAIMED} WHERE id = %(id)s AND {_OFFERED}"
        )
        self._mark(sql, {"next_at": next_at, "error": error, "id": delivery_id})

    def dead(self, delivery_id: int, error: str) -> None:
        """Refused for good (or out of attempts): kept, with the error (unless another dispatcher holds it now)."""
        sql = (
            f"UPDATE {DELIVERIES} SET state = %(state)s, attempts = attempts + 1, last_error = %(error)s, "
            f"{_UNCLAIMED} WHERE id = %(id)s AND {_OFFERED}"
        )
        self._mark(sql, {"state": DEAD, "error": error, "id": delivery_id})

    def _mark(self, sql: str, values: dict[str, Any]) -> None:
        """An attempt's outcome, and this dispatcher's other claims renewed: the lease covers one attempt."""
        values = {**values, "me": self.dispatcher, "lease": self.lease}

        def mark(connection: _Connection) -> int:
            changed = connection.execute(sql, values).rowcount
            connection.execute(_RENEW, values)
            return changed

        if not self._write(mark):
            log.warning("delivery %s is being sent by another dispatcher now: its outcome there counts", values["id"])

    def claims(self) -> list[Claim]:
        """Pending deliveries claimed by a dispatcher (live or expired), oldest first."""
        sql = f"SELECT id, claimed_by, lease_until, claims FROM {DELIVERIES} WHERE claimed_by IS NOT NULL ORDER BY id"
        return [Claim(int(id_), by, until, int(claims)) for id_, by, until, claims in self._read(sql)]

    def release_claims(self) -> int:
        """Hand back every claim of this dispatcher (stopping: another may send them at once); how many."""
        return self._run(f"UPDATE {DELIVERIES} SET {_UNCLAIMED} WHERE claimed_by = %s", (self.dispatcher,))

    def prune(self, delivered_before: float, grouping_before: float) -> None:
        """Forget what no longer matters: deliveries accepted before `delivered_before`, and incidents, sent keys
        and war rooms older than the grouping window. Dead and pending deliveries are never pruned."""
        with self.transaction():
            self._run(f"DELETE FROM {DELIVERIES} WHERE state = %s AND delivered_at < %s", (DELIVERED, delivered_before))
            self._run(f"DELETE FROM {INCIDENTS} WHERE state = %s AND received_at < %s", (RELEASED, grouping_before))
            self._run(f"DELETE FROM {SENT_KEYS} WHERE first_at < %s", (grouping_before,))
            self._run(f"DELETE FROM {WAR_ROOMS} WHERE opened_at < %s", (grouping_before,))

    def counts(self) -> dict[str, int]:
        """Deliveries by state (claimed ones are pending), and held incidents: one statement, so one snapshot.

        Two reads would let a release commit between them (seen as neither held nor pending yet), and
        `Notifier.flush` would call an outbox with work in it drained.
        """
        sql = (
            f"SELECT state, count(*) FROM {DELIVERIES} GROUP BY state "
            f"UNION ALL SELECT %s, count(*) FROM {INCIDENTS} WHERE state = %s"
        )
        found = dict.fromkeys((PENDING, DELIVERED, DEAD, HELD), 0)
        for state, count in self._read(sql, (HELD, HELD)):
            found[state] = int(count)
        return found
