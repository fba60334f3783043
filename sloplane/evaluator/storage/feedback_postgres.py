"""Support feedback on PostgreSQL: the reports `SqliteFeedback` keeps, shared by every replica.

Why: a report posted through one replica must be counted by `govern stale` and the quarterly review wherever
they run, and classified again by whichever replica's rollup job gets there. It behaves as the SQLite store
does — same methods, ids, validation (`feedback.checked_report`), errors and messages, same order (by start, then
as recorded) — so the API and governance do not care which; `tests/test_feedback_store.py` runs one suite
against both. Connections and failures as for the release controls (`postgres_controls`): a pool, autocommit,
sessions in UTC; a write is one statement, tried again on a fresh connection only when it cannot have been
applied (never after its COMMIT was sent); reads always; messages never hold the password.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from psycopg import Connection
from psycopg import Error as DriverError
from psycopg_pool import PoolClosed, PoolTimeout

from sloplane.core.text import excerpt
from sloplane.evaluator.storage.feedback import (  # the SQLite store's rules and messages, shared on purpose
    COLUMNS,
    FeedbackError,
    FeedbackReport,
    FeedbackStore,
    NewReport,
    UnknownFeedbackError,
    aware,
    checked_verdict,
    classification_json,
    new_id,
    now,
    stored_instant,
)
from sloplane.evaluator.storage.feedback_postgres_schema import FEEDBACK, MIGRATIONS, STORE
from sloplane.evaluator.storage.postgres_pool import POOL_SIZE, TIMEOUT_SECONDS, PooledStore, use
from sloplane.evaluator.storage.postgres_schema import migrate

_Result = TypeVar("_Result")
_Connection = Connection[tuple[Any, ...]]

_INSERT = f"""
INSERT INTO {FEEDBACK} (id, service, start, "end", impact, ticket, reported_by, received_at, verdict,
                        classification, classified_at)
VALUES (%(id)s, %(service)s, %(start)s, %(end)s, %(impact)s, %(ticket)s, %(reported_by)s, %(received_at)s,
        %(verdict)s, %(classification)s, %(classified_at)s)
RETURNING {COLUMNS}
"""
_RECLASSIFY = f"""
UPDATE {FEEDBACK} SET verdict = %(verdict)s, classification = %(classification)s, classified_at = %(classified_at)s
WHERE id = %(id)s RETURNING {COLUMNS}
"""


def _report(row: Sequence[Any]) -> FeedbackReport:
    id_, service, start, end, impact, ticket, reported_by, received_at, verdict, classification = row
    return FeedbackReport(
        id=id_,
        service=service,
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        impact=impact,
        ticket=ticket,
        reported_by=reported_by,
        received_at=received_at.astimezone(UTC),
        verdict=verdict,
        classification=orjson.loads(classification),
    )


class PostgresFeedback(PooledStore):
    """Support feedback in a PostgreSQL database, given as a `postgresql://` URL; migrated when opened."""

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
            label="support feedback",
            error=FeedbackError,
            migrate=lambda connection: migrate(connection, STORE, MIGRATIONS),
            pool=("sloplane-feedback", pool_size, timeout),
        )

    def add(self, report: NewReport, classification: Mapping[str, Any]) -> FeedbackReport:
        """Record a report (`checked_report`'s), classified as `classification` at its receipt."""
        row = {
            "id": new_id(),
            "service": report.service,
            "start": report.start,
            "end": report.end,
            "impact": report.impact,
            "ticket": report.ticket,
            "reported_by": report.reported_by,
            "received_at": report.received_at,
            "verdict": checked_verdict(classification),
            "classification": classification_json(classification),
            "classified_at": report.received_at,
        }
        return self._write("record a report", lambda connection: _report(_one(connection, _INSERT, row)))

    def reclassify(
        self, report_id: str, classification: Mapping[str, Any], *, at: datetime | None = None
    ) -> FeedbackReport:
        """Replace a report's classification (its rollups have arrived since); what was reported stays."""
        values = {
            "id": report_id,
            "verdict": checked_verdict(classification),
            "classification": classification_json(classification),
            "classified_at": stored_instant(aware(at or now(), "at")),
        }

        def update(connection: _Connection) -> FeedbackReport:
            row = connection.execute(_RECLASSIFY, values).fetchone()
            if row is None:
                raise UnknownFeedbackError(f"no report {excerpt(report_id)!r} in {self.where}")
            return _report(row)

        return self._write(f"classify report {report_id} again", update)

    def get(self, report_id: str) -> FeedbackReport:
        """The report with this id."""
        rows = self._read(f"SELECT {COLUMNS} FROM {FEEDBACK} WHERE id = %(id)s", {"id": report_id})
        if not rows:
            raise UnknownFeedbackError(f"no report {excerpt(report_id)!r} in {self.where}")
        return _report(rows[0])

    def reports(
        self,
        *,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        verdict: str | None = None,
    ) -> list[FeedbackReport]:
        """Reports whose problem started in [since, until) (either bound optional), of `service` and with `verdict`
        when given; by start, then as recorded."""
        conditions: list[str] = []
        values: dict[str, Any] = {}
        for column, value in (("service", service), ("verdict", verdict)):
            if value is not None:
                conditions.append(f"{column} = %({column})s")
                values[column] = value
        if since is not None:
            conditions.append("start >= %(since)s")
            values["since"] = stored_instant(aware(since, "since"))
        if until is not None:
            conditions.append("start < %(until)s")
            values["until"] = stored_instant(aware(until, "until"))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT {COLUMNS} FROM {FEEDBACK} {where} ORDER BY start, seq"
        return [_report(row) for row in self._read(sql, values)]

    # --- the database ----------------------------------------------------------------------------------

    def _write(self, what: str, work: Callable[[_Connection], _Result]) -> _Result:
        """`work` (one statement, autocommit); on a dead pooled connection once more, unless it was sent."""
        sent = False

        def attempt(connection: _Connection) -> _Result:
            nonlocal sent
            sent = True
            return work(connection)

        try:
            return use(self._pool, attempt, self._timeout, lambda: not sent)
        except DriverError as exc:
            raise self._failed(exc, f"cannot {what} in {self.where}") from None

    def _read(self, sql: str, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            return use(self._pool, lambda connection: connection.execute(sql, values).fetchall(), self._timeout)
        except DriverError as exc:
            raise self._failed(exc, f"cannot read the support feedback at {self.where}") from None

    def _failed(self, exc: DriverError, doing: str) -> FeedbackError:
        """`doing` and the driver's message, scrubbed; a closed store says so as the SQLite store does."""
        if isinstance(exc, PoolClosed):
            return FeedbackError(f"the support feedback at {self.where} is closed")
        reason = self._unreachable() if isinstance(exc, PoolTimeout) else self._scrub(exc)
        return FeedbackError(f"{doing}: {reason}")


def _one(connection: _Connection, sql: str, values: dict[str, Any]) -> tuple[Any, ...]:
    """The row an INSERT ... RETURNING wrote (always one)."""
    row = connection.execute(sql, values).fetchone()
    if row is None:  # pragma: no cover - an INSERT returns its row; kept for the type checker and the reader
        raise FeedbackError("a report was written but not returned")
    return row


if TYPE_CHECKING:

    def _is_a_feedback_store(store: PostgresFeedback) -> FeedbackStore:
        """`mypy sloplane` proves the store satisfies what the API and governance use."""
        return store
