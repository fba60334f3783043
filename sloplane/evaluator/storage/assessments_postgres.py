"""Impact assessments on PostgreSQL: the records `SqliteAssessments` keeps, shared by every replica.

Why: an assessment recorded through one replica (or by `sloplane assess --record` from a laptop) must be found by
the gate on every other. It behaves as the SQLite store does — same methods, ids, refusals and messages (the rules
are `assessments`' own functions), same records back with the same key order (the body is kept as the JSON text
recorded) — so callers do not care which; `tests/test_assessment_store.py` runs one suite against both.

A `record` is one INSERT: there is nothing to check first, so no lock is taken. When PostgreSQL restarted and the
pooled connection is dead it is tried once more on a fresh one unless what failed was its COMMIT (which may have
been applied: reported, never repeated — a second try would record the assessment twice under two ids); reads are
always tried again. Messages name the database without its password and pass through `Secrets.scrub`. Times are
stored as the SQLite store would write them (`utc_text`, so the clamping at the edges of time is the same).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg import Connection
from psycopg import Error as DriverError
from psycopg_pool import PoolClosed, PoolTimeout

from sloplane.evaluator.storage.assessments import (  # the SQLite store's rules and messages, shared on purpose
    COLUMNS,
    AssessmentError,
    UnknownAssessmentError,
    as_record,
    body_text,
    fields,
    new_id,
)
from sloplane.evaluator.storage.assessments_postgres_schema import ASSESSMENTS, MIGRATIONS, STORE
from sloplane.evaluator.storage.decisions import utc_text
from sloplane.evaluator.storage.postgres_pool import POOL_SIZE, TIMEOUT_SECONDS, PooledStore, use
from sloplane.evaluator.storage.postgres_schema import migrate

if TYPE_CHECKING:
    from sloplane.evaluator.storage.assessments import AssessmentStore

_Result = TypeVar("_Result")
_Connection = Connection[tuple[Any, ...]]

_INSERT = f"""
INSERT INTO {ASSESSMENTS} (id, service, risk, verdict, window_start, window_end, assessed_at, recorded_at, body)
VALUES (%(id)s, %(service)s, %(risk)s, %(verdict)s, %(window_start)s, %(window_end)s, %(assessed_at)s,
        %(recorded_at)s, %(body)s)
"""
_GET = f"SELECT {COLUMNS} FROM {ASSESSMENTS} WHERE id = %s"
_LATEST = f"""
SELECT {COLUMNS} FROM {ASSESSMENTS}
WHERE service = %(service)s AND window_start <= %(at)s AND %(at)s < window_end AND recorded_at <= %(at)s
ORDER BY seq DESC LIMIT 1
"""


def _stored(value: datetime) -> datetime:
    """The instant the SQLite store would record: `utc_text`'s (a naive time is UTC; clamped at the edges)."""
    return datetime.fromisoformat(utc_text(value))


class PostgresAssessments(PooledStore):
    """Assessments in a PostgreSQL database, given as a `postgresql://` URL; migrated when opened.

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
            label="assessments",
            error=AssessmentError,
            migrate=lambda connection: migrate(connection, STORE, MIGRATIONS),
            pool=("sloplane-assessments", pool_size, timeout),
        )

    def record(self, assessment: Mapping[str, Any], *, at: datetime | None = None) -> str:
        """Keep `assessment` (recorded at `at`, default now) under a new id, which is returned."""
        found = fields(assessment)
        row = {
            "id": new_id(),
            "service": found.service,
            "risk": found.risk,
            "verdict": found.verdict,
            "window_start": _stored(found.window_start),
            "window_end": _stored(found.window_end),
            "assessed_at": _stored(found.assessed_at),
            "recorded_at": _stored(at or datetime.now(UTC)),
            "body": body_text(assessment),
        }
        committing = False

        def insert(connection: _Connection) -> None:
            nonlocal committing
            committing = False
            with connection.transaction():
                connection.execute(_INSERT, row)
                committing = True

        try:
            use(self._pool, insert, self._timeout, lambda: not committing)
        except DriverError as exc:
            raise self._failed(exc, f"cannot record an assessment in {self.where}") from None
        return str(row["id"])

    def get(self, assessment_id: str) -> dict[str, Any]:
        """The assessment with this id (UnknownAssessmentError when none has it)."""
        rows = self._read(lambda connection: connection.execute(_GET, (assessment_id,)).fetchall())
        if not rows:
            raise UnknownAssessmentError(f"no assessment {assessment_id!r} in {self.where}")
        found_id, recorded_at, body = rows[0]
        return as_record(found_id, recorded_at, body)

    def latest(self, service: str, at: datetime) -> dict[str, Any] | None:
        """The newest recorded assessment of `service` whose window holds `at` (start ≤ at < end), recorded at
        or before `at`; None when there is none."""
        values = {"service": service, "at": _stored(at)}
        rows = self._read(lambda connection: connection.execute(_LATEST, values).fetchall())
        if not rows:
            return None
        found_id, recorded_at, body = rows[0]
        return as_record(found_id, recorded_at, body)

    def _read(self, work: Callable[[_Connection], _Result]) -> _Result:
        try:
            return use(self._pool, work, self._timeout)
        except DriverError as exc:
            raise self._failed(exc, f"cannot read the assessments in {self.where}") from None

    def _failed(self, exc: DriverError, doing: str) -> AssessmentError:
        """`doing` and the driver's message, scrubbed; a closed store says so as the SQLite store does."""
        if isinstance(exc, PoolClosed):
            return AssessmentError(f"the assessments at {self.where} is closed")
        reason = self._unreachable() if isinstance(exc, PoolTimeout) else self._scrub(exc)
        return AssessmentError(f"{doing}: {reason}")


if TYPE_CHECKING:

    def _is_an_assessment_store(store: PostgresAssessments) -> AssessmentStore:
        """`mypy sloplane` proves the store is what the callers use."""
        return store
