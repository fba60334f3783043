"""Release controls on PostgreSQL: the freezes and incidents `ReleaseControls` keeps, shared by every replica.

Why: a freeze created through one replica must stop gates on every other at once, and two replicas told of
the same alert must open one incident. One database does both; nothing is cached between calls, so every
read sees what any replica committed before it. It behaves as the SQLite store does — same methods, ids,
validation, errors and messages (the rules are `controls`' own functions), same order (newest first, then
latest recorded) — so the API, the gate and the CLI do not care which; `tests/test_postgres_controls.py`
runs one suite against both.

What SQLite's write lock does here, per write:
- opening an incident with a `key` is one `INSERT ... ON CONFLICT DO NOTHING` against the partial unique
  index on open incidents' keys (`postgres_controls_schema`): of replicas racing, one inserts, the others
  wait for it and then read its incident (in a loop, should that one be resolved in between);
- lifting and resolving lock the row (`SELECT ... FOR UPDATE`) before checking it is still open: a second
  lifter waits, then sees the lift and gets `AlreadyEndedError`.

Connections and failures as in the decision log (`postgres`): a pool, autocommit, sessions in UTC. A write is
one short transaction; when PostgreSQL restarted and the pooled connection is dead, it is tried once more on
a fresh one unless what failed was its COMMIT (which may have been applied: reported, never repeated); reads
are always tried again. Messages name the database without its password and pass through `Secrets.scrub`.
Times are stored as the SQLite store would write them (`utc_text`, so the clamping at the edges of time is
the same) and come back as UTC instants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg import Connection
from psycopg import Error as DriverError
from psycopg_pool import PoolClosed, PoolTimeout

from sloplane.evaluator.model import Freeze, Incident
from sloplane.evaluator.storage.controls import (  # the SQLite store's rules and messages, shared on purpose
    AlreadyEndedError,
    ControlsError,
    UnknownControlError,
    _new_id,
    _required,
    _services,
    _severity,
    _utc,
)
from sloplane.evaluator.storage.decisions import utc_text
from sloplane.evaluator.storage.postgres_controls_schema import FREEZES, INCIDENTS, MIGRATIONS, STORE
from sloplane.evaluator.storage.postgres_pool import (
    POOL_SIZE,
    TIMEOUT_SECONDS,
    PooledStore,
    use,
)
from sloplane.evaluator.storage.postgres_schema import migrate

if TYPE_CHECKING:
    from sloplane.evaluator.contracts import ReleaseControlsView

KEY_ATTEMPTS = 5
"""Rounds of "insert, else read the open one" before giving up: each extra round needs the open incident with
that key to be resolved between the two statements, so more than two is already a storm."""

_Result = TypeVar("_Result")
_Connection = Connection[tuple[Any, ...]]

_FREEZE_COLUMNS = "id, service, reason, created_by, created_at, until, lifted_at, lifted_by, lift_reason"
_INCIDENT_COLUMNS = "id, title, severity, services, opened_by, opened_at, resolved_at, resolved_by, key, source"
_FREEZE_ACTIVE = (
    "created_at <= %(at)s AND (lifted_at IS NULL OR %(at)s < lifted_at) AND (until IS NULL OR %(at)s < until)"
)
_INCIDENT_OPEN = "opened_at <= %(at)s AND (resolved_at IS NULL OR %(at)s < resolved_at)"

_INSERT_FREEZE = f"""
INSERT INTO {FREEZES} (id, service, reason, created_by, created_at, until)
VALUES (%(id)s, %(service)s, %(reason)s, %(created_by)s, %(created_at)s, %(until)s)
RETURNING {_FREEZE_COLUMNS}
"""
_LIFT = f"""
UPDATE {FREEZES} SET lifted_at = %(lifted_at)s, lifted_by = %(lifted_by)s, lift_reason = %(lift_reason)s
WHERE id = %(id)s RETURNING {_FREEZE_COLUMNS}
"""
_OPEN_INCIDENT = f"""
INSERT INTO {INCIDENTS} (id, title, severity, services, opened_by, opened_at, key, source)
VALUES (%(id)s, %(title)s, %(severity)s, %(services)s, %(opened_by)s, %(opened_at)s, %(key)s, %(source)s)
ON CONFLICT (key) WHERE resolved_at IS NULL DO NOTHING
RETURNING {_INCIDENT_COLUMNS}
"""
"""Nothing returned: an incident with this key is open (committed, or committed by the replica we waited for)."""
_OPEN_WITH_KEY = f"SELECT {_INCIDENT_COLUMNS} FROM {INCIDENTS} WHERE key = %s AND resolved_at IS NULL"
_RESOLVE = f"""
UPDATE {INCIDENTS} SET resolved_at = %(resolved_at)s, resolved_by = %(resolved_by)s
WHERE id = %(id)s RETURNING {_INCIDENT_COLUMNS}
"""


def _stored(value: datetime | None) -> datetime:
    """`value` (now when None) as the instant the SQLite store would record: `utc_text`'s, clamped at the edges."""
    return datetime.fromisoformat(utc_text(_utc(value)))


def _instant(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _freeze(row: Sequence[Any]) -> Freeze:
    id_, service, reason, created_by, created_at, until, lifted_at, lifted_by, lift_reason = row
    return Freeze(
        id=id_,
        service=service,
        reason=reason,
        created_by=created_by,
        created_at=created_at.astimezone(UTC),
        until=_instant(until),
        lifted_at=_instant(lifted_at),
        lifted_by=lifted_by,
        lift_reason=lift_reason,
    )


def _incident(row: Sequence[Any]) -> Incident:
    id_, title, severity, services, opened_by, opened_at, resolved_at, resolved_by, key, source = row
    return Incident(
        id=id_,
        title=title,
        severity=severity,
        services=tuple(services),
        opened_by=opened_by,
        opened_at=opened_at.astimezone(UTC),
        resolved_at=_instant(resolved_at),
        resolved_by=resolved_by,
        key=key,
        source=source,
    )


class PostgresReleaseControls(PooledStore):
    """Freezes and incidents in a PostgreSQL database, given as a `postgresql://` URL; migrated when opened.

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
            label="release controls",
            error=ControlsError,
            migrate=lambda connection: migrate(connection, STORE, MIGRATIONS),
            pool=("sloplane-controls", pool_size, timeout),
        )

    # --- freezes ---------------------------------------------------------------------------------------

    def freeze(
        self,
        service: str | None,
        reason: str,
        created_by: str,
        *,
        until: datetime | None = None,
        at: datetime | None = None,
    ) -> Freeze:
        """Freeze releases of `service` (every service when None) from `at` (now) until lifted or `until`."""
        created_at = _utc(at)
        until = None if until is None else _utc(until)
        if until is not None and until <= created_at:
            raise ControlsError(f"a freeze until {until.isoformat()} would already be over at {created_at.isoformat()}")
        row = {
            "id": _new_id("frz"),
            "service": None if service is None else _required(service, "the service name"),
            "reason": _required(reason, "a reason for the freeze"),
            "created_by": _required(created_by, "who freezes"),
            "created_at": _stored(created_at),
            "until": None if until is None else _stored(until),
        }
        return self._write("record a freeze", lambda connection: _freeze(_one(connection, _INSERT_FREEZE, row)))

    def lift(self, freeze_id: str, lifted_by: str, reason: str, *, at: datetime | None = None) -> Freeze:
        """End a freeze at `at` (now); it stays recorded, with who lifted it and why."""
        lifted_at = _utc(at)
        values = {
            "id": freeze_id,
            "lifted_at": _stored(lifted_at),
            "lifted_by": _required(lifted_by, "who lifts the freeze"),
            "lift_reason": _required(reason, "a reason for lifting the freeze"),
        }

        def lift(connection: _Connection) -> Freeze:
            current = self._freeze_in(connection, freeze_id, lock=True)
            if current.lifted_at is not None:
                when = current.lifted_at.isoformat()
                raise AlreadyEndedError(f"freeze {freeze_id} was already lifted by {current.lifted_by} at {when}")
            if lifted_at < current.created_at:
                raise ControlsError(f"freeze {freeze_id} cannot be lifted before it was created")
            return _freeze(_one(connection, _LIFT, values))

        return self._write(f"lift freeze {freeze_id}", lift)

    def get_freeze(self, freeze_id: str) -> Freeze:
        """The freeze with this id, lifted or not."""
        return self._reading(lambda connection: self._freeze_in(connection, freeze_id, lock=False))

    def freezes(
        self, *, at: datetime | None = None, active_only: bool = True, service: str | None = None
    ) -> list[Freeze]:
        """Freezes newest first: those in force at `at` (now), or with `active_only=False` every one recorded.

        With `service`, only the freezes covering it: its own and the global ones.
        """
        conditions = [_FREEZE_ACTIVE] if active_only else []
        if service is not None:
            conditions.append("(service IS NULL OR service = %(service)s)")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT {_FREEZE_COLUMNS} FROM {FREEZES} {where} ORDER BY created_at DESC, seq DESC"
        rows = self._read(sql, {"at": _stored(at), "service": service})
        return [_freeze(row) for row in rows]

    def active_freezes(self, service: str | None, at: datetime) -> list[Freeze]:
        """The freezes stopping a release of `service` at `at`: its own and the global ones (what the gate asks)."""
        return self.freezes(at=at, service=service)

    # --- incidents -------------------------------------------------------------------------------------

    def open_incident(
        self,
        title: str,
        severity: str,
        opened_by: str,
        *,
        services: Iterable[str] = (),
        key: str | None = None,
        source: str = "manual",
        at: datetime | None = None,
    ) -> Incident:
        """Open an incident; with a `key` already open (a notifier repeating an alert), that incident instead."""
        incident, _ = self.record_incident(title, severity, opened_by, services=services, key=key, source=source, at=at)
        return incident

    def record_incident(
        self,
        title: str,
        severity: str,
        opened_by: str,
        *,
        services: Iterable[str] = (),
        key: str | None = None,
        source: str = "manual",
        at: datetime | None = None,
    ) -> tuple[Incident, bool]:
        """`open_incident`, also saying whether the incident is new (the API answers 201 or 200)."""
        row = {
            "id": _new_id("inc"),
            "title": _required(title, "an incident title"),
            "severity": _severity(severity),
            "services": list(_services(services)),
            "opened_by": _required(opened_by, "who opens the incident"),
            "opened_at": _stored(at),
            "key": None if key is None else _required(key, "the incident key"),
            "source": _required(source, "the incident source"),
        }

        def open_or_find(connection: _Connection) -> tuple[Incident, bool]:
            for _ in range(KEY_ATTEMPTS):
                opened = connection.execute(_OPEN_INCIDENT, row).fetchone()
                if opened is not None:
                    return _incident(opened), True
                existing = connection.execute(_OPEN_WITH_KEY, (row["key"],)).fetchone()
                if existing is not None:
                    return _incident(existing), False
            raise ControlsError(
                f"cannot open an incident in {self.where}: the open incident with key {row['key']!r} "
                f"was resolved and opened again {KEY_ATTEMPTS} times meanwhile"
            )

        return self._write("open an incident", open_or_find)

    def resolve_incident(self, incident_id: str, resolved_by: str, *, at: datetime | None = None) -> Incident:
        """Close an incident at `at` (now); it stays recorded, with who resolved it."""
        resolved_at = _utc(at)
        values = {
            "id": incident_id,
            "resolved_at": _stored(resolved_at),
            "resolved_by": _required(resolved_by, "who resolves the incident"),
        }

        def resolve(connection: _Connection) -> Incident:
            current = self._incident_in(connection, incident_id, lock=True)
            if current.resolved_at is not None:
                when = current.resolved_at.isoformat()
                raise AlreadyEndedError(
                    f"incident {incident_id} was already resolved by {current.resolved_by} at {when}"
                )
            if resolved_at < current.opened_at:
                raise ControlsError(f"incident {incident_id} cannot be resolved before it was opened")
            return _incident(_one(connection, _RESOLVE, values))

        return self._write(f"resolve incident {incident_id}", resolve)

    def get_incident(self, incident_id: str) -> Incident:
        """The incident with this id, resolved or not."""
        return self._reading(lambda connection: self._incident_in(connection, incident_id, lock=False))

    def incidents(self, *, at: datetime | None = None, open_only: bool = True) -> list[Incident]:
        """Incidents newest first: those open at `at` (now), or with `open_only=False` every one recorded."""
        where = f"WHERE {_INCIDENT_OPEN}" if open_only else ""
        sql = f"SELECT {_INCIDENT_COLUMNS} FROM {INCIDENTS} {where} ORDER BY opened_at DESC, seq DESC"
        return [_incident(row) for row in self._read(sql, {"at": _stored(at)})]

    def open_major_incidents(self, at: datetime) -> list[Incident]:
        """The major incidents open at `at`, which stop releases (of their services; of all when none named)."""
        sql = (
            f"SELECT {_INCIDENT_COLUMNS} FROM {INCIDENTS} WHERE {_INCIDENT_OPEN} AND severity = 'major' "
            "ORDER BY opened_at DESC, seq DESC"
        )
        return [_incident(row) for row in self._read(sql, {"at": _stored(at)})]

    # --- the database ----------------------------------------------------------------------------------

    def _freeze_in(self, connection: _Connection, freeze_id: str, *, lock: bool) -> Freeze:
        sql = f"SELECT {_FREEZE_COLUMNS} FROM {FREEZES} WHERE id = %s{' FOR UPDATE' if lock else ''}"
        row = connection.execute(sql, (freeze_id,)).fetchone()
        if row is None:
            raise UnknownControlError(f"no freeze {freeze_id!r} in {self.where}")
        return _freeze(row)

    def _incident_in(self, connection: _Connection, incident_id: str, *, lock: bool) -> Incident:
        sql = f"SELECT {_INCIDENT_COLUMNS} FROM {INCIDENTS} WHERE id = %s{' FOR UPDATE' if lock else ''}"
        row = connection.execute(sql, (incident_id,)).fetchone()
        if row is None:
            raise UnknownControlError(f"no incident {incident_id!r} in {self.where}")
        return _incident(row)

    def _write(self, what: str, work: Callable[[_Connection], _Result]) -> _Result:
        """`work` in one transaction; on a dead pooled connection once more, unless its COMMIT was what failed."""
        committing = False

        def attempt(connection: _Connection) -> _Result:
            nonlocal committing
            committing = False
            with connection.transaction():
                result = work(connection)
                committing = True
            return result

        try:
            return self._use(attempt, retry=lambda: not committing)
        except DriverError as exc:
            raise self._failed(exc, f"cannot {what} in {self.where}") from None

    def _read(self, sql: str, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self._reading(lambda connection: connection.execute(sql, values).fetchall())

    def _reading(self, work: Callable[[_Connection], _Result]) -> _Result:
        try:
            return self._use(work)
        except DriverError as exc:
            raise self._failed(exc, f"cannot read the release controls at {self.where}") from None

    def _use(self, work: Callable[[_Connection], _Result], retry: Callable[[], bool] = lambda: True) -> _Result:
        return use(self._pool, work, self._timeout, retry)

    def _failed(self, exc: DriverError, doing: str) -> ControlsError:
        """`doing` and the driver's message, scrubbed; for no connection at all, the reason a fresh attempt gives.

        A closed store says so as the SQLite store does, whatever was being done.
        """
        if isinstance(exc, PoolClosed):
            return ControlsError(f"the release controls at {self.where} is closed")
        reason = self._unreachable() if isinstance(exc, PoolTimeout) else self._scrub(exc)
        return ControlsError(f"{doing}: {reason}")


def _one(connection: _Connection, sql: str, values: dict[str, Any]) -> tuple[Any, ...]:
    """The row a statement with RETURNING wrote (always one: it inserts, or updates a row locked beforehand)."""
    row = connection.execute(sql, values).fetchone()
    if row is None:  # pragma: no cover - the row is locked or new; kept for the type checker and the reader
        raise ControlsError("a release control was written but not returned")
    return row


if TYPE_CHECKING:

    def _is_a_controls_view(controls: PostgresReleaseControls) -> ReleaseControlsView:
        """`mypy sloplane` proves the store satisfies what the decision pipeline reads."""
        return controls
