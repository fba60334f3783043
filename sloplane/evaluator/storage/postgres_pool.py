"""What every PostgreSQL store (decision log, release controls, notification outbox) does with its
connections, in one place so that the three cannot drift apart.

- `new_pool`: autocommit connections from a `psycopg_pool.ConnectionPool`, configured per store (UTC,
  bounded waits), opened now so that a store that cannot reach its database says so when it opens.
- `use`: run work on a pooled connection and, when that connection turns out dead (PostgreSQL restarted),
  once more on a fresh one — unless the caller says a retry could apply a write twice (its COMMIT may have
  landed). The pool is checked once, so a restart costs one failed request, not one per idle connection.
- `why_unreachable`: a pool that hands out nothing only times out; one direct attempt says why (refused,
  unknown host, authentication).
- Failing fast: once a wait for a connection has timed out while the pool was short of connections (it
  could not make them: the database is unreachable, not merely busy), calls in the next `FAIL_FAST_SECONDS`
  wait only `FAIL_FAST_WAIT` for one. A gate reads the controls and appends its decision, each a wait: with
  PostgreSQL down every gate took two full timeouts (10 s) to be answered by policy, close to a
  pipeline's own timeout. The pool keeps reconnecting in the background, so once the database is back a
  connection is there within the short wait, and nothing that would have succeeded fails.
- `scrubbed`: driver messages can quote the connection string; no password passes.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from psycopg import Connection, OperationalError, connect
from psycopg import Error as DriverError
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from sloplane.evaluator.storage.postgres_conninfo import ConninfoError, Target, target
from sloplane.evaluator.storage.postgres_schema import MigrationError

POOL_SIZE = 10
"""Connections per store and replica: gates are answered from a thread pool of about this size."""
TIMEOUT_SECONDS = 5.0
"""How long a call waits for a connection: a gate must answer (by policy) rather than hang."""
RECONNECT_SECONDS = 10.0
"""How long the pool keeps trying to replace a connection before reporting the database gone."""
UNREACHABLE_CONNECT_TIMEOUT = 2
FAIL_FAST_SECONDS = 5.0
"""How long after a timed-out wait for a connection the pool is taken to be unreachable."""
FAIL_FAST_WAIT = 0.25
"""How long a call waits for a connection meanwhile."""

_timed_out: weakref.WeakKeyDictionary[ConnectionPool[Any], float] = weakref.WeakKeyDictionary()
"""When each pool's last wait for a connection timed out (monotonic seconds); gone after a success."""

PooledConnection = Connection[tuple[Any, ...]]
_Result = TypeVar("_Result")


def new_pool(
    target: Target,
    *,
    name: str,
    configure: Callable[[PooledConnection], None],
    pool_size: int = POOL_SIZE,
    timeout: float = TIMEOUT_SECONDS,
) -> ConnectionPool[PooledConnection]:
    """A pool for one store, opened (raises `PoolTimeout`, after closing it, when no connection comes)."""
    pool: ConnectionPool[PooledConnection] = ConnectionPool(
        target.conninfo,
        kwargs={**target.parameters, "autocommit": True},
        min_size=1,
        max_size=max(1, pool_size),
        configure=configure,
        name=name,
        timeout=timeout,
        reconnect_timeout=RECONNECT_SECONDS,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except BaseException:
        pool.close()
        raise
    return pool


def use(
    pool: ConnectionPool[PooledConnection],
    work: Callable[[PooledConnection], _Result],
    timeout: float,
    retry: Callable[[], bool] = lambda: True,
) -> _Result:
    """Run `work` on a pooled connection; once more on a fresh one when the first was dead and `retry()` allows.

    Waits `timeout` for a connection, or only `FAIL_FAST_WAIT` shortly after a wait timed out (see the module).
    """
    try:
        with pool.connection(timeout=_wait(pool, timeout)) as connection:
            try:
                result = work(connection)
            except OperationalError:
                if not (connection.broken and retry()):
                    raise
            else:
                _timed_out.pop(pool, None)
                return result
        pool.check()  # PostgreSQL restarted: drop every dead idle connection, not one per request
        with pool.connection(timeout=_wait(pool, timeout)) as connection:
            result = work(connection)
    except PoolTimeout:
        if _short_of_connections(pool):  # cannot make them, not merely all in use: a busy pool is not a down one
            _timed_out[pool] = time.monotonic()
        raise
    _timed_out.pop(pool, None)
    return result


def failing_fast(pool: ConnectionPool[Any]) -> bool:
    """Whether calls on `pool` wait only `FAIL_FAST_WAIT` for a connection now (a wait timed out recently)."""
    since = _timed_out.get(pool)
    return since is not None and time.monotonic() - since < FAIL_FAST_SECONDS


def _short_of_connections(pool: ConnectionPool[Any]) -> bool:
    """Whether the pool holds fewer connections than it may: after a timed-out wait, it could not make one."""
    return pool.get_stats().get("pool_size", 0) < pool.max_size


def _wait(pool: ConnectionPool[Any], timeout: float) -> float:
    return min(timeout, FAIL_FAST_WAIT) if failing_fast(pool) else timeout


def scrubbed(target: Target, error: BaseException) -> str:
    """The error's message with every spelling of the password removed (its type when nothing is left)."""
    return target.secrets.scrub(str(error)) or type(error).__name__


def why_unreachable(target: Target, connect: Callable[[int], PooledConnection], timeout: float, pool_size: int) -> str:
    """Why no connection came: one direct attempt (`connect(connect_timeout)`) says refused, unknown host or
    authentication; when it succeeds, the pool was simply busy."""
    try:
        with connect(UNREACHABLE_CONNECT_TIMEOUT):
            pass
    except DriverError as exc:
        return scrubbed(target, exc)
    return f"no free connection within {timeout:g} s (the pool holds at most {pool_size}, all busy)"


def in_utc(connection: PooledConnection) -> None:
    """Times come back in UTC whatever the server's default (and year-1 edges stay in range)."""
    connection.execute("SET TIME ZONE 'UTC'")


class PooledStore:
    """What every PostgreSQL store does with its pool and target alike: open (the target, the migrations on a
    connection of their own, then the pool), name why no connection came, scrub a message, close, and be a
    context manager. A store opens with `_open`, or sets `_target`, `_timeout` and `_pool` itself."""

    _target: Target
    _timeout: float
    _pool: ConnectionPool[PooledConnection]
    where: str
    """The database's URL without its password: what messages say."""

    def _open(
        self,
        url: str,
        password_file: str | Path | None,
        *,
        label: str,
        error: Callable[[str], Exception],
        migrate: Callable[[PooledConnection], object],
        pool: tuple[str, int, float],
    ) -> None:
        """Find the database, bring the schema up to date before the pool opens, then open the pool (`pool`: its
        name, size and wait); every failure as `error`, naming the store as `label` and never the password."""
        name, size, timeout = pool
        try:
            self._target = target(url, password_file)
        except ConninfoError as failure:
            raise error(str(failure)) from None
        self.where = self._target.where
        self._timeout = timeout
        try:
            with self._connect(None) as connection:
                migrate(connection)
        except MigrationError as failure:
            raise error(f"the {label} at {self.where}: {self._scrub(failure)}") from None
        except DriverError as exc:
            raise error(f"cannot open the {label} at {self.where}: {self._scrub(exc)}") from None
        try:
            self._pool = new_pool(self._target, name=name, configure=in_utc, pool_size=size, timeout=timeout)
        except PoolTimeout:
            raise error(f"cannot open the {label} at {self.where}: {self._unreachable()}") from None

    def _connect(self, connect_timeout: int | None) -> PooledConnection:
        """A connection of its own, outside the pool (migrating, saying why the pool has none), in UTC."""
        parameters = dict(self._target.parameters)
        if connect_timeout is not None:
            parameters["connect_timeout"] = str(connect_timeout)
        connection = connect(make_conninfo(self._target.conninfo, **parameters), autocommit=True)
        try:
            in_utc(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _unreachable(self) -> str:
        """Why no connection came; also while the pool is being opened, before `_pool` is set."""
        pool: ConnectionPool[PooledConnection] | None = getattr(self, "_pool", None)
        size = POOL_SIZE if pool is None else pool.max_size
        return why_unreachable(self._target, self._connect, self._timeout, size)

    def _scrub(self, error: BaseException) -> str:
        return scrubbed(self._target, error)

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used afterwards."""
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
