"""Release controls on SQLite: freezes (no releases of a service, or of anything) and incidents.

A gate fails "frozen" while a freeze covers the service or a major incident is open; these records
say which. They are audit material like the decision log, so nothing is ever deleted: lifting a
freeze or resolving an incident fills its `*_at`/`*_by` fields, once, and triggers refuse any other
change. Because every record keeps when it started and ended, the controls in force at any past
instant can be read back, and a replayed gate (`at` in the past) sees the freezes of that time.

The tables may share the decision log's file (the default: one file to back up) or live in their
own; they have their own names and leave the decision log's schema version alone. Threads get
their own connection (WAL lets readers proceed during a write), writes queue on a lock in the
process and take SQLite's write lock with `BEGIN IMMEDIATE`, so that "is an incident with this key
open?" and "open it" happen as one step even against another process.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from sloplane.core.serialize import wire_json
from sloplane.core.text import control_character, excerpt
from sloplane.evaluator.model import SEVERITIES, Freeze, Incident, Severity
from sloplane.evaluator.storage.decisions import utc_text
from sloplane.evaluator.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from sloplane.evaluator.contracts import ReleaseControlsView


_SCHEMA = """
CREATE TABLE IF NOT EXISTS freezes (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    service TEXT,
    reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    until TEXT CHECK (until IS NULL OR until > created_at),
    lifted_at TEXT,
    lifted_by TEXT,
    lift_reason TEXT
);
CREATE INDEX IF NOT EXISTS freezes_by_created_at ON freezes (created_at);
CREATE TRIGGER IF NOT EXISTS freezes_no_delete BEFORE DELETE ON freezes
BEGIN
    SELECT RAISE(ABORT, 'release controls are kept: a freeze cannot be deleted, only lifted');
END;
CREATE TRIGGER IF NOT EXISTS freezes_lift_only BEFORE UPDATE ON freezes
WHEN OLD.lifted_at IS NOT NULL
    OR NEW.lifted_at IS NULL OR NEW.lifted_by IS NULL OR NEW.lift_reason IS NULL
    OR NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.service IS NOT OLD.service
    OR NEW.reason IS NOT OLD.reason OR NEW.created_by IS NOT OLD.created_by
    OR NEW.created_at IS NOT OLD.created_at OR NEW.until IS NOT OLD.until
BEGIN
    SELECT RAISE(ABORT, 'a freeze can only be lifted, once: its other fields cannot change');
END;
CREATE TABLE IF NOT EXISTS incidents (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL CHECK (length(trim(title)) > 0),
    severity TEXT NOT NULL CHECK (severity IN ('major', 'minor')),
    services TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    resolved_at TEXT,
    resolved_by TEXT,
    key TEXT,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_opened_at ON incidents (opened_at);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open_key ON incidents (key) WHERE resolved_at IS NULL;
CREATE TRIGGER IF NOT EXISTS incidents_no_delete BEFORE DELETE ON incidents
BEGIN
    SELECT RAISE(ABORT, 'release controls are kept: an incident cannot be deleted, only resolved');
END;
CREATE TRIGGER IF NOT EXISTS incidents_resolve_only BEFORE UPDATE ON incidents
WHEN OLD.resolved_at IS NOT NULL
    OR NEW.resolved_at IS NULL OR NEW.resolved_by IS NULL
    OR NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.title IS NOT OLD.title
    OR NEW.severity IS NOT OLD.severity OR NEW.services IS NOT OLD.services
    OR NEW.opened_by IS NOT OLD.opened_by OR NEW.opened_at IS NOT OLD.opened_at
    OR NEW.key IS NOT OLD.key OR NEW.source IS NOT OLD.source
BEGIN
    SELECT RAISE(ABORT, 'an incident can only be resolved, once: its other fields cannot change');
END;
"""
"""Times are `utc_text` (fixed-width UTC), so comparing the strings compares the instants. The
partial unique index makes an incident key unique among open incidents only: a resolved incident's
key may be used again by the next occurrence."""

_FREEZE_COLUMNS = "id, service, reason, created_by, created_at, until, lifted_at, lifted_by, lift_reason"
_INCIDENT_COLUMNS = "id, title, severity, services, opened_by, opened_at, resolved_at, resolved_by, key, source"
_FREEZE_ACTIVE = "created_at <= :at AND (lifted_at IS NULL OR :at < lifted_at) AND (until IS NULL OR :at < until)"
_INCIDENT_OPEN = "opened_at <= :at AND (resolved_at IS NULL OR :at < resolved_at)"


class ControlsError(Exception):
    """A release control cannot be recorded, changed or read; the message says which and why."""


class UnknownControlError(ControlsError):
    """No freeze or incident has that id (the API answers 404)."""


class AlreadyEndedError(ControlsError):
    """The freeze is already lifted, or the incident already resolved (the API answers 409)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime:
    """`value` (now when None) as an aware instant; a naive one is taken to be UTC, as `utc_text` does."""
    if value is None:
        return _now()
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _new_id(prefix: str) -> str:
    """Short enough to type in `sloplane freeze lift`, random enough never to collide in one file."""
    return f"{prefix}-{secrets.token_hex(4)}"


def _required(value: str, what: str) -> str:
    """The text stripped, or an error: an empty reason or name is no record of why or who."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ControlsError(f"{what} is required and cannot be empty")
    hidden = control_character(text)
    if hidden is not None:
        raise ControlsError(f"{what} holds a control character ({hidden}): {excerpt(repr(text))}")
    return text


def _freeze(row: tuple[Any, ...]) -> Freeze:
    id_, service, reason, created_by, created_at, until, lifted_at, lifted_by, lift_reason = row
    return Freeze(
        id=id_,
        service=service,
        reason=reason,
        created_by=created_by,
        created_at=datetime.fromisoformat(created_at),
        until=_instant(until),
        lifted_at=_instant(lifted_at),
        lifted_by=lifted_by,
        lift_reason=lift_reason,
    )


def _incident(row: tuple[Any, ...]) -> Incident:
    id_, title, severity, services, opened_by, opened_at, resolved_at, resolved_by, key, source = row
    return Incident(
        id=id_,
        title=title,
        severity=severity,
        services=tuple(orjson.loads(services)),
        opened_by=opened_by,
        opened_at=datetime.fromisoformat(opened_at),
        resolved_at=_instant(resolved_at),
        resolved_by=resolved_by,
        key=key,
        source=source,
    )


def _services(services: Iterable[str]) -> tuple[str, ...]:
    """Named once each, in the order given; a blank name would silently match nothing."""
    return tuple(dict.fromkeys(_required(service, "a service name") for service in services))


def _severity(severity: str) -> Severity:
    if severity not in SEVERITIES:
        raise ControlsError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    return cast(Severity, severity)


class ReleaseControls(SqliteStore):
    """Freezes and incidents in a SQLite file (created, with its folder, when missing)."""

    def __init__(self, path: str | Path) -> None:
        self._attach(path, "the release controls", ControlsError)
        try:
            self._create()
        except ControlsError:
            self.close()
            raise

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
        freeze_id = _new_id("frz")
        row = {
            "id": freeze_id,
            "service": None if service is None else _required(service, "the service name"),
            "reason": _required(reason, "a reason for the freeze"),
            "created_by": _required(created_by, "who freezes"),
            "created_at": utc_text(created_at),
            "until": None if until is None else utc_text(until),
        }
        with self._writing("record a freeze") as connection:
            connection.execute(
                "INSERT INTO freezes (id, service, reason, created_by, created_at, until) "
                "VALUES (:id, :service, :reason, :created_by, :created_at, :until)",
                row,
            )
        return self.get_freeze(freeze_id)

    def lift(self, freeze_id: str, lifted_by: str, reason: str, *, at: datetime | None = None) -> Freeze:
        """End a freeze at `at` (now); it stays recorded, with who lifted it and why."""
        lifted_at = _utc(at)
        values = {
            "id": freeze_id,
            "lifted_at": utc_text(lifted_at),
            "lifted_by": _required(lifted_by, "who lifts the freeze"),
            "lift_reason": _required(reason, "a reason for lifting the freeze"),
        }
        with self._writing(f"lift freeze {freeze_id}") as connection:
            current = self._freeze_in(connection, freeze_id)
            if current.lifted_at is not None:
                when = current.lifted_at.isoformat()
                raise AlreadyEndedError(f"freeze {freeze_id} was already lifted by {current.lifted_by} at {when}")
            if lifted_at < current.created_at:
                raise ControlsError(f"freeze {freeze_id} cannot be lifted before it was created")
            connection.execute(
                "UPDATE freezes SET lifted_at = :lifted_at, lifted_by = :lifted_by, lift_reason = :lift_reason "
                "WHERE id = :id",
                values,
            )
        return self.get_freeze(freeze_id)

    def get_freeze(self, freeze_id: str) -> Freeze:
        """The freeze with this id, lifted or not."""
        try:
            return self._freeze_in(self._connection(), freeze_id)
        except sqlite3.Error as exc:
            raise ControlsError(f"cannot read the release controls at {self.path}: {exc}") from exc

    def freezes(
        self, *, at: datetime | None = None, active_only: bool = True, service: str | None = None
    ) -> list[Freeze]:
        """Freezes newest first: those in force at `at` (now), or with `active_only=False` every one recorded.

        With `service`, only the freezes covering it: its own and the global ones.
        """
        conditions = [_FREEZE_ACTIVE] if active_only else []
        if service is not None:
            conditions.append("(service IS NULL OR service = :service)")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT {_FREEZE_COLUMNS} FROM freezes {where} ORDER BY created_at DESC, seq DESC"
        rows = self._read(sql, {"at": utc_text(_utc(at)), "service": service})
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
        incident_id = _new_id("inc")
        row = {
            "id": incident_id,
            "title": _required(title, "an incident title"),
            "severity": _severity(severity),
            "services": wire_json(list(_services(services))).decode(),
            "opened_by": _required(opened_by, "who opens the incident"),
            "opened_at": utc_text(_utc(at)),
            "key": None if key is None else _required(key, "the incident key"),
            "source": _required(source, "the incident source"),
        }
        with self._writing("open an incident") as connection:
            existing = self._open_with_key(connection, row["key"])
            if existing is not None:
                return existing, False
            connection.execute(
                "INSERT INTO incidents (id, title, severity, services, opened_by, opened_at, key, source) "
                "VALUES (:id, :title, :severity, :services, :opened_by, :opened_at, :key, :source)",
                row,
            )
        return self.get_incident(incident_id), True

    def resolve_incident(self, incident_id: str, resolved_by: str, *, at: datetime | None = None) -> Incident:
        """Close an incident at `at` (now); it stays recorded, with who resolved it."""
        resolved_at = _utc(at)
        values = {
            "id": incident_id,
            "resolved_at": utc_text(resolved_at),
            "resolved_by": _required(resolved_by, "who resolves the incident"),
        }
        with self._writing(f"resolve incident {incident_id}") as connection:
            current = self._incident_in(connection, incident_id)
            if current.resolved_at is not None:
                when = current.resolved_at.isoformat()
                raise AlreadyEndedError(
                    f"incident {incident_id} was already resolved by {current.resolved_by} at {when}"
                )
            if resolved_at < current.opened_at:
                raise ControlsError(f"incident {incident_id} cannot be resolved before it was opened")
            connection.execute(
                "UPDATE incidents SET resolved_at = :resolved_at, resolved_by = :resolved_by WHERE id = :id", values
            )
        return self.get_incident(incident_id)

    def get_incident(self, incident_id: str) -> Incident:
        """The incident with this id, resolved or not."""
        try:
            return self._incident_in(self._connection(), incident_id)
        except sqlite3.Error as exc:
            raise ControlsError(f"cannot read the release controls at {self.path}: {exc}") from exc

    def incidents(self, *, at: datetime | None = None, open_only: bool = True) -> list[Incident]:
        """Incidents newest first: those open at `at` (now), or with `open_only=False` every one recorded."""
        where = f"WHERE {_INCIDENT_OPEN}" if open_only else ""
        sql = f"SELECT {_INCIDENT_COLUMNS} FROM incidents {where} ORDER BY opened_at DESC, seq DESC"
        return [_incident(row) for row in self._read(sql, {"at": utc_text(_utc(at))})]

    def open_major_incidents(self, at: datetime) -> list[Incident]:
        """The major incidents open at `at`, which stop releases (of their services; of all when none named)."""
        return [incident for incident in self.incidents(at=at) if incident.severity == "major"]

    # --- the file --------------------------------------------------------------------------------------

    def _create(self) -> None:
        connection = self._connection()
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            self._check_tables(connection)
            # One script, one transaction; BEGIN IMMEDIATE reports a read-only file now, not at the first freeze.
            connection.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.rollback()
            raise ControlsError(f"cannot write the release controls at {self.path}: {exc}") from exc

    def _check_tables(self, connection: sqlite3.Connection) -> None:
        """Refuse a file whose `freezes`/`incidents` are someone else's (the notifier's outbox has `incidents`)."""
        for table, needed in (("freezes", _FREEZE_COLUMNS), ("incidents", _INCIDENT_COLUMNS)):
            present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            missing = [column for column in needed.split(", ") if column not in present]
            if present and missing:
                raise ControlsError(
                    f"{self.path} has a table {table!r} that is not release controls' (no {', '.join(missing)}): "
                    "keep the release controls in another file"
                )

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit, FULL sync: a recorded freeze survives a crash)."""
        return self._connections.get()

    def _read(self, sql: str, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            return self._connection().execute(sql, values).fetchall()
        except sqlite3.Error as exc:
            raise ControlsError(f"cannot read the release controls at {self.path}: {exc}") from exc

    def _freeze_in(self, connection: sqlite3.Connection, freeze_id: str) -> Freeze:
        row = connection.execute(f"SELECT {_FREEZE_COLUMNS} FROM freezes WHERE id = ?", (freeze_id,)).fetchone()
        if row is None:
            raise UnknownControlError(f"no freeze {freeze_id!r} in {self.path}")
        return _freeze(row)

    def _incident_in(self, connection: sqlite3.Connection, incident_id: str) -> Incident:
        row = connection.execute(f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            raise UnknownControlError(f"no incident {incident_id!r} in {self.path}")
        return _incident(row)

    def _open_with_key(self, connection: sqlite3.Connection, key: str | None) -> Incident | None:
        if key is None:
            return None
        sql = f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE key = ? AND resolved_at IS NULL"
        row = connection.execute(sql, (key,)).fetchone()
        return None if row is None else _incident(row)


if TYPE_CHECKING:

    def _is_a_controls_view(controls: ReleaseControls) -> ReleaseControlsView:
        """`mypy sloplane` proves the store satisfies what the decision pipeline reads."""
        return controls
