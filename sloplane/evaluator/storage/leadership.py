"""Which replica does the singleton work: notification dispatch, the S3 export, the Argo CD deny-window
reconciler. Every replica answers gates; exactly one at a time may deliver a page or patch an AppProject.

With PostgreSQL the leader is the replica holding a session-level advisory lock on a connection of its
own. PostgreSQL releases the lock when that session ends — the process killed, the pod gone, the
connection cut — so another replica, trying every `interval`, takes over within about one interval
(plus, for a vanished host, the TCP keepalive and `tcp_user_timeout` set on the connection). The leader
checks its own session each interval too and steps down the moment it cannot: it stops its singleton
work before any other replica can have the lock, so two leaders never act at once (the lock is the fence;
work that outlives a lost session would not be fenced, hence `is_leader` is read before each unit of work).

Which replica leads is visible in the database: each replica's election session is named
`sloplane-leadership <host>/<pid>` (`application_name`), and `current_leader` names the one whose session holds
the lock (for people asking `pg_stat_activity`, and for the failover tests, which measure takeover by it).

With SQLite there is one replica by construction (`SoleLeader`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Protocol

import psycopg

LOCK_KEY = 0x510_9A4E
"""The advisory lock's key: sloplane's, in every database it uses (one leader per store)."""
CONNECT_OPTIONS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
"""A dead peer is noticed in seconds, not in the kernel's two hours (ignored on a unix socket)."""
SESSION_PREFIX = "sloplane-leadership"
"""The start of every election session's `application_name`; the host (the pod) and pid follow."""
_HOLDER = """
SELECT activity.application_name FROM pg_locks AS held JOIN pg_stat_activity AS activity ON activity.pid = held.pid
WHERE held.locktype = 'advisory' AND held.granted AND held.classid = %(high)s AND held.objid = %(low)s
      AND held.objsubid = 1 AND held.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
"""Who holds the bigint advisory lock `key` in this database (PostgreSQL shows it as two 32-bit halves)."""

_log = logging.getLogger(__name__)


def session_name() -> str:
    """This process's election session's `application_name` (PostgreSQL keeps its first 63 bytes)."""
    return f"{SESSION_PREFIX} {socket.gethostname()}/{os.getpid()}"


def current_leader(connection: psycopg.Connection[tuple[object, ...]], key: int = LOCK_KEY) -> str | None:
    """The `application_name` of the session holding the leader's lock in the connection's database ("" for a
    session that set none), or None when no replica leads."""
    row = connection.execute(_HOLDER, {"high": key >> 32, "low": key & 0xFFFF_FFFF}).fetchone()
    return None if row is None else str(row[0])


class Leadership(Protocol):
    """Whether this replica may do the singleton work now."""

    @property
    def is_leader(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class SoleLeader:
    """One replica (SQLite): always the leader."""

    is_leader = True

    def start(self) -> None:
        """Nothing to elect."""

    def stop(self) -> None:
        """Nothing to release."""


class AdvisoryLockLeadership:
    """Leadership by `pg_try_advisory_lock` on a dedicated connection, checked every `interval` seconds.

    `on_change(True|False)` is called (on the election thread) when this replica becomes or stops being
    the leader, so that the singleton work can start at once rather than at its next tick."""

    def __init__(
        self,
        url: str,
        *,
        interval: float = 1.0,
        key: int = LOCK_KEY,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._url = url
        self._interval = interval
        self._key = key
        self._on_change = on_change
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None
        self._leader = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader.is_set()

    def start(self) -> None:
        """Try at once, then every interval, on a daemon thread."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="sloplane-leadership", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Step down and release the lock (by ending the session) so another replica takes over at once."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 10)
        self._step_down()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except psycopg.Error as error:  # the session is gone: whatever we held is released with it
                _log.warning("leadership: the database connection failed (%s); not the leader", type(error).__name__)
                self._step_down()
            self._stopping.wait(self._interval)

    def _tick(self) -> None:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(
                self._url,
                autocommit=True,
                application_name=session_name(),
                **CONNECT_OPTIONS,  # type: ignore[arg-type]
            )
        if self.is_leader:
            self._connection.execute("SELECT 1")  # still our session, so still our lock
            return
        row = self._connection.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        if row is not None and row[0]:
            self._leader.set()
            _log.info("leadership: this replica is now the leader")
            self._changed(True)

    def _step_down(self) -> None:
        was_leader = self.is_leader
        self._leader.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):  # closing a broken connection: nothing more to release
                connection.close()
        if was_leader:
            _log.info("leadership: this replica stepped down")
            self._changed(False)

    def _changed(self, leader: bool) -> None:
        if self._on_change is not None:
            self._on_change(leader)
