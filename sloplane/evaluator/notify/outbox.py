"""The notifier's outbox on SQLite: held incidents, war rooms, and deliveries waiting to be sent.

Why a file and not a queue in memory: a gate's answer must never wait for PagerDuty, so sending
happens later, on another thread, and "later" must survive a crash or a rolling restart; an
incident notification that is lost is an outage nobody is told about. Every state the notifier
needs (what is held for grouping, which dedup keys were sent recently, which war rooms are open,
what is still to deliver) lives here, so a new notifier on the same file carries on exactly.

Threads: one connection, shared, behind a re-entrant lock. The writes are small and rare (one per
failing decision, one per delivery attempt), so a mutex costs nothing and keeps multi-statement
steps (grouping) atomic. WAL mode lets the `sqlite3` shell read the file meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sloplane.core.serialize import canonical_json
from sloplane.evaluator.notify.classify import Incident
from sloplane.evaluator.notify.events import Notice
from sloplane.evaluator.storage.sqlite import BUSY_TIMEOUT_SECONDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    dedup_key TEXT NOT NULL,
    grp TEXT,
    receiver TEXT NOT NULL,
    service TEXT NOT NULL,
    data TEXT NOT NULL,
    received_at REAL NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_state ON incidents (state, received_at);
CREATE INDEX IF NOT EXISTS incidents_by_group ON incidents (grp, received_at);
CREATE TABLE IF NOT EXISTS sent_keys (dedup_key TEXT PRIMARY KEY, first_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS war_rooms (grp TEXT PRIMARY KEY, opened_at REAL NOT NULL, members TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    receiver TEXT NOT NULL,
    channel TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    notice TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
"""Times are seconds since the epoch (the notifier's clock). `incidents.state`: held | released.
`deliveries.state`: pending | delivered | dead. `sent_keys` remembers when each dedup key last
started a notification, for suppressing repeats within the grouping window."""

HELD = "held"
RELEASED = "released"
PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


class OutboxError(Exception):
    """The outbox file cannot be opened or written; the message names the file."""


@dataclass(frozen=True)
class HeldIncident:
    """An incident row: the facts and where they go."""

    id: int
    incident: Incident
    receiver: str
    received_at: float
    state: str


@dataclass(frozen=True)
class Delivery:
    """One notice to one channel of one receiver."""

    id: int
    receiver: str
    channel: str
    notice: Notice
    state: str
    attempts: int
    next_at: float
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for tests and status pages."""
        return {
            "id": self.id,
            "receiver": self.receiver,
            "channel": self.channel,
            "dedupKey": self.notice.dedup_key,
            "state": self.state,
            "attempts": self.attempts,
            "nextAt": self.next_at,
            "lastError": self.last_error,
            "notice": self.notice.to_json(),
        }


def _dumps(value: Any) -> str:
    """A row's JSON, spelled as the outbox has always stored it (sorted, spaced, anything else as its str())."""
    return canonical_json(value, spaced=True, default=str)


class Outbox:
    """Every durable piece of the notifier's state."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise OutboxError(f"{self.path}: cannot open the notification outbox: {error}") from error

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and one write transaction: multi-step changes land together or not at all."""
        with self._lock:
            if self._db.in_transaction:  # nested: the outer transaction commits
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _all(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    def _run(self, sql: str, *params: Any) -> None:
        with self._lock:
            self._db.execute(sql, params)

    # -- counters ---------------------------------------------------------------------------------

    def bump(self, name: str, by: int = 1) -> None:
        """Add to a persistent counter (suppressed repeats, attempts, war rooms opened)."""
        self._run(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
            name,
            by,
            by,
        )

    def counters(self) -> dict[str, int]:
        """Every counter."""
        return {name: int(value) for name, value in self._all("SELECT name, value FROM counters")}

    # -- repeats ----------------------------------------------------------------------------------

    def recently_sent(self, dedup_key: str, since: float) -> bool:
        """Whether this dedup key started a notification at or after `since`."""
        rows = self._all("SELECT 1 FROM sent_keys WHERE dedup_key = ? AND first_at >= ?", dedup_key, since)
        return bool(rows)

    def mark_sent(self, dedup_key: str, now: float) -> None:
        """Remember that this dedup key started a notification now."""
        self._run(
            "INSERT INTO sent_keys (dedup_key, first_at) VALUES (?, ?) "
            "ON CONFLICT(dedup_key) DO UPDATE SET first_at = excluded.first_at",
            dedup_key,
            now,
        )

    # -- incidents held for grouping --------------------------------------------------------------

    def hold(self, incident: Incident, receiver: str, now: float) -> None:
        """Keep a deployment incident, to see whether other services join it."""
        self._run(
            "INSERT INTO incidents (dedup_key, grp, receiver, service, data, received_at, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            incident.dedup_key,
            incident.group,
            receiver,
            incident.service,
            _dumps(incident.to_json()),
            now,
            HELD,
        )

    def _incidents(self, where: str, *params: Any) -> list[HeldIncident]:
        rows = self._all(
            f"SELECT id, data, receiver, received_at, state FROM incidents WHERE {where} ORDER BY id", *params
        )
        return [HeldIncident(row[0], Incident.from_json(json.loads(row[1])), row[2], row[3], row[4]) for row in rows]

    def due(self, received_by: float) -> list[HeldIncident]:
        """Held incidents received at or before `received_by` (whose wait is over), oldest first.

        The wait is applied when reading, not stored, so a changed `grouping.wait` applies to
        incidents held across a restart too.
        """
        return self._incidents("state = ? AND received_at <= ?", HELD, received_by)

    def in_group(self, group: str, since: float) -> list[HeldIncident]:
        """Every incident of a group received at or after `since`, held or released."""
        return self._incidents("grp = ? AND received_at >= ?", group, since)

    def release(self, ids: list[int]) -> None:
        """Mark incidents as handled."""
        for incident_id in ids:
            self._run("UPDATE incidents SET state = ? WHERE id = ?", RELEASED, incident_id)

    def held_count(self) -> int:
        """Incidents still held."""
        return int(self._all("SELECT count(*) FROM incidents WHERE state = ?", HELD)[0][0])

    def oldest_held(self) -> float | None:
        """When the oldest held incident was received."""
        value = self._all("SELECT min(received_at) FROM incidents WHERE state = ?", HELD)[0][0]
        return None if value is None else float(value)

    # -- war rooms --------------------------------------------------------------------------------

    def war_room(self, group: str, since: float) -> list[tuple[Incident, str]] | None:
        """The members of the group's war room (incident, receiver), if one opened at or after `since`."""
        rows = self._all("SELECT members FROM war_rooms WHERE grp = ? AND opened_at >= ?", group, since)
        if not rows:
            return None
        return [(Incident.from_json(member["incident"]), member["receiver"]) for member in json.loads(rows[0][0])]

    def save_war_room(self, group: str, members: list[tuple[Incident, str]], opened_at: float | None) -> None:
        """Record a room's members; `opened_at` when it opens (None keeps the opening time)."""
        text = _dumps([{"incident": incident.to_json(), "receiver": receiver} for incident, receiver in members])
        if opened_at is None:
            self._run("UPDATE war_rooms SET members = ? WHERE grp = ?", text, group)
        else:
            self._run(
                "INSERT INTO war_rooms (grp, opened_at, members) VALUES (?, ?, ?) "
                "ON CONFLICT(grp) DO UPDATE SET opened_at = excluded.opened_at, members = excluded.members",
                group,
                opened_at,
                text,
            )

    # -- deliveries -------------------------------------------------------------------------------

    def enqueue(self, receiver: str, channel: str, notice: Notice, now: float) -> None:
        """A notice to send to one channel of a receiver, due now."""
        self._run(
            "INSERT INTO deliveries (receiver, channel, dedup_key, notice, state, next_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            receiver,
            channel,
            notice.dedup_key,
            _dumps(notice.to_json()),
            PENDING,
            now,
            now,
        )

    def _deliveries(self, where: str, *params: Any) -> list[Delivery]:
        rows = self._all(
            "SELECT id, receiver, channel, notice, state, attempts, next_at, last_error FROM deliveries "
            f"WHERE {where} ORDER BY id",
            *params,
        )
        return [
            Delivery(row[0], row[1], row[2], Notice.from_json(json.loads(row[3])), row[4], row[5], row[6], row[7])
            for row in rows
        ]

    def due_deliveries(self, now: float) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest first."""
        return self._deliveries("state = ? AND next_at <= ?", PENDING, now)

    def deliveries(self, state: str) -> list[Delivery]:
        """Every delivery in a state."""
        return self._deliveries("state = ?", state)

    def next_delivery(self) -> float | None:
        """When the next pending delivery is due."""
        value = self._all("SELECT min(next_at) FROM deliveries WHERE state = ?", PENDING)[0][0]
        return None if value is None else float(value)

    def delivered(self, delivery_id: int, now: float) -> None:
        """Sent and accepted."""
        self._run(
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, delivered_at = ?, last_error = NULL "
            "WHERE id = ?",
            DELIVERED,
            now,
            delivery_id,
        )

    def retry(self, delivery_id: int, next_at: float, error: str) -> None:
        """Failed for now; try again at `next_at`."""
        self._run(
            "UPDATE deliveries SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?",
            next_at,
            error,
            delivery_id,
        )

    def dead(self, delivery_id: int, error: str) -> None:
        """Refused for good (or out of attempts): kept, with the error, for people to see."""
        self._run(
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
            DEAD,
            error,
            delivery_id,
        )

    def prune(self, delivered_before: float, grouping_before: float) -> None:
        """Forget what no longer matters: deliveries accepted before `delivered_before`, and
        incidents, sent keys and war rooms older than the grouping window. Dead and pending
        deliveries are never pruned: they are work left to do or to look at."""
        with self.transaction():
            self._run("DELETE FROM deliveries WHERE state = ? AND delivered_at < ?", DELIVERED, delivered_before)
            self._run("DELETE FROM incidents WHERE state = ? AND received_at < ?", RELEASED, grouping_before)
            self._run("DELETE FROM sent_keys WHERE first_at < ?", grouping_before)
            self._run("DELETE FROM war_rooms WHERE opened_at < ?", grouping_before)

    def counts(self) -> dict[str, int]:
        """Deliveries by state, and held incidents."""
        found = dict.fromkeys((PENDING, DELIVERED, DEAD), 0)
        with self._lock:  # one view: a release between the two reads would let `flush` see nothing pending
            for state, count in self._all("SELECT state, count(*) FROM deliveries GROUP BY state"):
                found[state] = int(count)
            found[HELD] = self.held_count()
        return found
