"""Hourly rollups on PostgreSQL: the rows `SqliteRollups` keeps, shared by every replica.

Why: with replicas, whichever one runs the periodic rollup job (or an operator's `sloplane rollup`) must write
where every replica's reports read. It behaves as the SQLite store does — same methods, same rows back, same
order (by SLO, stage with the unstaged SLO first, start), same upsert rule (counts, end, source and `rolled_at`
replaced; objective, policy version and time zone kept from the first write), all or nothing per `write`, same
one-line `RollupError`s — so the job and the reports do not care which; `tests/test_rollup_store.py` runs one
suite against both. Rows are built by `rollups`' own `rollup_row` and read back by its `rollup_from_row`.

What SQLite's write lock does here: a `write` is one transaction of one `INSERT ... ON CONFLICT ... DO UPDATE`
run for every row (`executemany`, pipelined); replicas writing the same hours at once queue on the rows' locks.
The rows are written in key order, so two batches sharing hours lock them in the same order and cannot
deadlock; the sort is stable, so a key given twice in one batch ends as SQLite's would (the last one given).

Where the two engines differ by nature, this store follows SQLite: a NaN count is stored as NULL (SQLite has no
NaN), so a NaN `bad_events` reads back as None and a NaN in a NOT NULL column refuses the batch; times are the
instants `utc_text` would write (a naive one is UTC; clamped at the edges of time) and come back in UTC.

Connections and failures as in the other PostgreSQL stores (`postgres_controls`): a pool, autocommit, sessions
in UTC, migrations on open under the shared advisory lock. A call whose pooled connection turns out dead
(PostgreSQL restarted) is tried once more on a fresh one — a write too, even when its COMMIT was what failed:
the upsert is idempotent (the same rows written twice are the same rows), so repeating it cannot double
anything. Messages name the database without its password and pass through `Secrets.scrub`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg import Connection
from psycopg import Error as DriverError
from psycopg_pool import PoolClosed, PoolTimeout

from sloplane.evaluator.model import Rollup
from sloplane.evaluator.storage.decisions import utc_text
from sloplane.evaluator.storage.postgres_pool import POOL_SIZE, TIMEOUT_SECONDS, PooledStore, use
from sloplane.evaluator.storage.postgres_schema import migrate
from sloplane.evaluator.storage.rollups import COLUMNS, RollupError, rollup_from_row, rollup_row
from sloplane.evaluator.storage.rollups_postgres_schema import MIGRATIONS, REWRITTEN, ROLLUPS, STORE

if TYPE_CHECKING:
    from sloplane.evaluator.contracts import RollupStore

_Result = TypeVar("_Result")
_Connection = Connection[tuple[Any, ...]]

_TIMES = ("start", "end", "rolled_at")
_NUMBERS = ("bad_events", "total_events", "excluded_bad_events", "excluded_total_events", "excluded_minutes")
_PARAMETERS = [name.strip().strip('"') for name in COLUMNS.split(",")] + ["rolled_at"]
"""The row's keys in `COLUMNS`' order (and `rolled_at`), as `rollup_row` names them."""

_UPSERT = f"""
INSERT INTO {ROLLUPS} ({COLUMNS}, rolled_at)
VALUES ({", ".join(f"%({name})s" for name in _PARAMETERS)})
ON CONFLICT (slo, stage, start) DO UPDATE SET {", ".join(f"{column} = EXCLUDED.{column}" for column in REWRITTEN)}
"""
"""Counts are replaced; objective, policy version and time zone keep what the row was first written with."""
_LATEST = f'SELECT slo, stage, max("end") FROM {ROLLUPS} GROUP BY slo, stage'


def _stored(value: datetime) -> datetime:
    """The instant the SQLite store would record: `utc_text`'s (a naive time is UTC; clamped at the edges)."""
    return datetime.fromisoformat(utc_text(value))


def _number(value: Any) -> Any:
    """NaN as NULL, as SQLite stores it: both stores then read back, and refuse, the same rows."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _row(rollup: Rollup, rolled_at: str) -> dict[str, Any]:
    """`rollup_row`'s row with instants for the `timestamptz` columns and SQLite's NaN rule."""
    row = rollup_row(rollup, rolled_at)
    for name in _TIMES:
        row[name] = datetime.fromisoformat(row[name])
    for name in _NUMBERS:
        row[name] = _number(row[name])
    return row


def _key(row: dict[str, Any]) -> tuple[str, str, datetime]:
    return row["slo"], row["stage"], row["start"]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class PostgresRollups(PooledStore):
    """The rollups in a PostgreSQL database, given as a `postgresql://` URL; migrated when opened.

    The password comes from the URL, from `password_file`, or from libpq's environment, as for the decision log
    (`postgres_conninfo`); it is never part of a message.
    """

    def __init__(
        self,
        url: str,
        *,
        password_file: str | Path | None = None,
        pool_size: int = POOL_SIZE,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._open(
            url,
            password_file,
            label="rollups",
            error=RollupError,
            migrate=lambda connection: migrate(connection, STORE, MIGRATIONS),
            pool=("sloplane-rollups", pool_size, timeout),
        )

    def write(self, rollups: Sequence[Rollup], rolled_at: datetime) -> None:
        """Write (or rewrite) these rows in one transaction: all of them or, on failure, none."""
        rolled = utc_text(rolled_at)
        rows = sorted((_row(rollup, rolled) for rollup in rollups), key=_key)

        def upsert(connection: _Connection) -> None:
            with connection.transaction(), connection.cursor() as cursor:
                if rows:
                    cursor.executemany(_UPSERT, rows)

        try:
            self._use(upsert)  # retried after a restart even past COMMIT: the upsert is idempotent
        except DriverError as exc:
            raise self._failed(exc, f"cannot write rollups to {self.where}") from None

    def read(self, *, since: datetime, until: datetime, slos: Sequence[str] | None = None) -> list[Rollup]:
        """Rows whose hour starts in [since, until), by SLO, stage and start; `slos` limits them to those SLOs."""
        sql = f"SELECT {COLUMNS} FROM {ROLLUPS} WHERE start >= %(since)s AND start < %(until)s"
        values: dict[str, Any] = {"since": _stored(since), "until": _stored(until)}
        if slos is not None:
            sql += " AND slo = ANY(%(slos)s::text[])"
            values["slos"] = list(slos)
        sql += " ORDER BY slo, stage, start"
        rows = self._read(lambda connection: connection.execute(sql, values).fetchall())
        return [rollup_from_row((*row[:2], _utc(row[2]), _utc(row[3]), *row[4:])) for row in rows]

    def latest(self) -> dict[tuple[str, str | None], datetime]:
        """The end of the newest row of every subject: where a rollup without `--from` resumes."""
        rows = self._read(lambda connection: connection.execute(_LATEST).fetchall())
        return {(slo, stage or None): _utc(end) for slo, stage, end in rows}

    def _read(self, work: Callable[[_Connection], _Result]) -> _Result:
        try:
            return self._use(work)
        except DriverError as exc:
            raise self._failed(exc, f"cannot read the rollups in {self.where}") from None

    def _use(self, work: Callable[[_Connection], _Result]) -> _Result:
        return use(self._pool, work, self._timeout)

    def _failed(self, exc: DriverError, doing: str) -> RollupError:
        """`doing` and the driver's message, scrubbed; for no connection at all, the reason a fresh attempt gives.

        A closed store says so as the SQLite store does, whatever was being done.
        """
        if isinstance(exc, PoolClosed):
            return RollupError(f"the rollups at {self.where} is closed")
        reason = self._unreachable() if isinstance(exc, PoolTimeout) else self._scrub(exc)
        return RollupError(f"{doing}: {reason}")


if TYPE_CHECKING:

    def _is_a_rollup_store(rollups: PostgresRollups) -> RollupStore:
        """`mypy sloplane` proves the store satisfies what the rollup job and the reports use."""
        return rollups
