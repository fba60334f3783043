"""One SQLite connection per thread, for the evaluator's files (decision log, release controls).

Why per thread: readers never wait for each other or for a writer (WAL lets them see the last
committed state while a write is in progress). Each connection is autocommit with FULL sync, so a
recorded decision or freeze survives a crash, and is closed when its thread ends or when the file
is closed. Errors name the file and what it is, through the owner's own exception type.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a write waits for another process holding the database's write lock."""

ErrorFactory = Callable[[str], Exception]


class _Held:
    """A thread's connection; closed when the thread ends (sqlite3 connections take no weak refs)."""

    __slots__ = ("__weakref__", "connection")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __del__(self) -> None:
        self.connection.close()


class ThreadConnections:
    """One connection per thread to `path`, all of which `close` can reach.

    `what` names the file in messages ("the decision log"); `error` builds the owner's exception.
    """

    def __init__(self, path: Path, what: str, error: ErrorFactory) -> None:
        self._path = path
        self._what = what
        self._error = error
        self._local = threading.local()
        self._all: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        self._writer: _Held | None = None

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None:
            held = _Held(self._connect())
            with self._lock:
                if self._closed:
                    held.connection.close()
                    raise self._closed_error()
                self._all.add(held)
            self._local.held = held
        elif self._closed:
            raise self._closed_error()
        return held.connection

    def writer(self) -> sqlite3.Connection:
        """The one connection every write goes through, whichever thread makes it (under the owner's lock).

        Why: SQLite drops a connection's page cache whenever it finds that another connection changed the
        file. With a connection per thread, each write from the gate's thread pool found its cache stale
        (the last write was another thread's) and read every page it touched again: the system CPU of a
        warm gate. One writing connection keeps its cache between writes; readers keep their own.
        """
        with self._lock:
            if self._closed:
                raise self._closed_error()
            if self._writer is None:
                self._writer = _Held(self._connect())
                self._all.add(self._writer)
            return self._writer.connection

    def close(self) -> None:
        """Close every thread's connection; later `get` calls fail."""
        with self._lock:
            self._closed = True
            for held in list(self._all):
                held.connection.close()

    def _closed_error(self) -> Exception:
        return self._error(f"{self._what} at {self._path} is closed")

    def _connect(self) -> sqlite3.Connection:
        """Autocommit (each statement its own transaction), FULL sync."""
        try:
            connection = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise self._error(f"cannot open {self._what} at {self._path}: {exc}") from exc
        return connection


def create_folder(path: Path, what: str, error: ErrorFactory) -> None:
    """The folder of a database file, created when missing; failures as the owner's error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise error(f"cannot create the folder of {what} {path}: {reason}") from exc


class SqliteStore:
    """A store on one SQLite file through `ThreadConnections`: closing it closes every thread's connection.

    Shared by every SQLite store (decision log, release controls, rollups, assessments, feedback) so that each
    opens its file alike and is a context manager alike.
    """

    path: Path
    _connections: ThreadConnections
    _write_lock: threading.Lock
    _error: ErrorFactory

    def _attach(self, path: str | Path, what: str, error: ErrorFactory) -> None:
        """Open `what` ("the rollups") on its file: `:memory:` refused (each thread's connection would see its own
        database), the folder created when missing, a connection per thread, one writer at a time."""
        self.path = Path(path)
        if str(path) == ":memory:":
            raise error(f"{what} needs a file: each thread would see its own in-memory database")
        create_folder(self.path, what, error)
        self._connections = ThreadConnections(self.path, what, error)
        self._write_lock = threading.Lock()
        self._error = error

    @contextmanager
    def _writing(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writing connection, holding SQLite's write lock (`BEGIN IMMEDIATE`), so a
        check and the write it guards are atomic; a failure rolled back and raised as the store's error ("cannot
        `what`")."""
        connection = self._connections.writer()
        with self._write_lock:
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.rollback()
                    raise
                connection.commit()
            except sqlite3.Error as exc:
                if connection.in_transaction:
                    connection.rollback()
                raise self._error(f"cannot {what} in {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards."""
        self._connections.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
