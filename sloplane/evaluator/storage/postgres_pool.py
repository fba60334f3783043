"""What every PostgreSQL store (decision log, release controls, notification outbox) does with its
connections, in one place so that the three cannot drift apart.

- `new_pool`: autocommit connections from a `psycopg_pool.ConnectionPool`, configured per store (UTC,
  bounded waits), opened now so that a store that cannot reach its database says so when it opens.
- `use`: run work on a pooled connection and, when that connection turns out dead (PostgreSQL restarted),
  once more on a fresh one — unless the caller says a retry could apply a write twice (its COMMIT may have
  landed). The pool is checked once, so a restart costs one failed request, not one per idle connection.
- `why_unreachable`: a pool that hands out nothing only times out; one direct attempt says why (refused,
  unknown host, authentication).
- `scrubbed`: driver messages can quote the connection string; no password passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from psycopg import Connection, OperationalError
from psycopg import Error as DriverError
from psycopg_pool import ConnectionPool

from sloplane.evaluator.storage.postgres_conninfo import Target

POOL_SIZE = 10
"""Connections per store and replica: gates are answered from a thread pool of about this size."""
TIMEOUT_SECONDS = 5.0
"""How long a call waits for a connection: a gate must answer (by policy) rather than hang."""
RECONNECT_SECONDS = 10.0
"""How long the pool keeps trying to replace a connection before reporting the database gone."""
UNREACHABLE_CONNECT_TIMEOUT = 2

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
    """Run `work` on a pooled connection; once more on a fresh one when the first was dead and `retry()` allows."""
    with pool.connection(timeout=timeout) as connection:
        try:
            return work(connection)
        except OperationalError:
            if not (connection.broken and retry()):
                raise
    pool.check()  # PostgreSQL restarted: drop every dead idle connection, not one per request
    with pool.connection(timeout=timeout) as connection:
        return work(connection)


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
    return f"no free connection within {timeout:g} s ({pool_size} in use)"
