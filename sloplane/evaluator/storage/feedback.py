"""Support feedback on SQLite: problems customers reported (service, time range, impact, ticket), each with how
monitoring saw it (`governance.feedback`: *seen*, or *missed by monitoring*: a blind spot).

Why a store of its own: a customer's report is evidence about the SLOs, read by `govern stale` and the quarterly
review long after the ticket is closed, so it is kept like the decision log — never deleted, and only its
classification may change. The classification is stored as the JSON the classifier returned (this layer does not
interpret it beyond its `verdict`, kept in a column of its own to filter on): rollups arrive hourly, so a report
received while its hours were not yet rolled up is classified again later (`reclassify`), and the record keeps
when it last was (`classifiedAt` inside the JSON).

A report belongs to the span its problem *started* in: `reports(since=, until=)` answers those whose `start`
is in [since, until), so consecutive quarters count each report once.

The tables may share the decision log's file (one file to back up) or live in their own; `feedback_open.open_feedback`
opens either this store or PostgreSQL's (`feedback_postgres`) from a `--db` target. Threads get their own
connection, writes take SQLite's write lock (`BEGIN IMMEDIATE`), as the release controls do.

A report's JSON (`FeedbackReport.to_dict`, what the API answers):

    {"id": "fb-…", "service", "start", "end", "impact", "ticket", "reportedBy", "receivedAt",
     "verdict": "seen|missed|pending|excluded", "classification": {…}}   (`governance.feedback` documents it)
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from sloplane.core.serialize import wire_json
from sloplane.core.text import control_character, excerpt
from sloplane.evaluator.storage.decisions import utc_text
from sloplane.evaluator.storage.sqlite import SqliteStore

IMPACT_LENGTH = 2000
"""Characters of impact text: a paragraph or two of what the customer could not do, not a pasted log."""
TICKET_LENGTH = 512
"""A ticket id or its URL."""
NAME_LENGTH = 253
MAX_RANGE = timedelta(days=31)
"""The longest problem a report may span: the on-call replay's limit (`history.oncall.MAX_SPAN`), and longer
than any problem a customer can date to the hour."""
FUTURE_SLACK = timedelta(minutes=5)
"""How far after receipt a report's `end` may lie (clocks disagree); a problem still going on ends now."""
VERDICTS = ("seen", "missed", "pending", "excluded")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    service TEXT NOT NULL CHECK (length(trim(service)) > 0),
    start TEXT NOT NULL,
    "end" TEXT NOT NULL CHECK ("end" > start),
    impact TEXT NOT NULL CHECK (length(trim(impact)) > 0),
    ticket TEXT NOT NULL CHECK (length(trim(ticket)) > 0),
    reported_by TEXT NOT NULL,
    received_at TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('seen', 'missed', 'pending', 'excluded')),
    classification TEXT NOT NULL,
    classified_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_by_start ON feedback (start);
CREATE TRIGGER IF NOT EXISTS feedback_no_delete BEFORE DELETE ON feedback
BEGIN
    SELECT RAISE(ABORT, 'support feedback is kept: a report cannot be deleted');
END;
CREATE TRIGGER IF NOT EXISTS feedback_reclassify_only BEFORE UPDATE ON feedback
WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.service IS NOT OLD.service
    OR NEW.start IS NOT OLD.start OR NEW."end" IS NOT OLD."end" OR NEW.impact IS NOT OLD.impact
    OR NEW.ticket IS NOT OLD.ticket OR NEW.reported_by IS NOT OLD.reported_by
    OR NEW.received_at IS NOT OLD.received_at
BEGIN
    SELECT RAISE(ABORT, 'a report can only be classified again: what the customer reported cannot change');
END;
"""
"""Times are `utc_text` (fixed-width UTC), so comparing the strings compares the instants."""

COLUMNS = 'id, service, start, "end", impact, ticket, reported_by, received_at, verdict, classification'


class FeedbackError(Exception):
    """A report cannot be recorded or read; `field` names the input at fault (the API's 422 names it), if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownFeedbackError(FeedbackError):
    """No report has that id (the API answers 404)."""


@dataclass(frozen=True)
class FeedbackReport:
    """One customer-reported problem as stored, with its latest classification."""

    id: str
    service: str
    start: datetime
    end: datetime
    impact: str
    ticket: str
    reported_by: str
    received_at: datetime
    verdict: str
    classification: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON (see the module's docstring)."""
        return {
            "id": self.id,
            "service": self.service,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "impact": self.impact,
            "ticket": self.ticket,
            "reportedBy": self.reported_by,
            "receivedAt": self.received_at.isoformat(),
            "verdict": self.verdict,
            "classification": dict(self.classification),
        }


@dataclass(frozen=True)
class NewReport:
    """A report's fields, checked (`checked_report`), ready to store."""

    service: str
    start: datetime
    end: datetime
    impact: str
    ticket: str
    reported_by: str
    received_at: datetime


class FeedbackStore(Protocol):
    """What the API and governance use of either store (`SqliteFeedback`, `feedback_postgres.PostgresFeedback`)."""

    def add(self, report: NewReport, classification: Mapping[str, Any]) -> FeedbackReport: ...

    def reclassify(
        self, report_id: str, classification: Mapping[str, Any], *, at: datetime | None = None
    ) -> FeedbackReport: ...

    def get(self, report_id: str) -> FeedbackReport: ...

    def reports(
        self,
        *,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        verdict: str | None = None,
    ) -> list[FeedbackReport]: ...

    def close(self) -> None: ...


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime, what: str) -> datetime:
    """`value` in UTC; a naive instant is refused (a customer's "14:00" in which zone?)."""
    if value.tzinfo is None:
        raise FeedbackError(f"{what} has no time zone: add Z or an offset such as +01:00", what)
    return value.astimezone(UTC)


def stored_instant(value: datetime) -> datetime:
    """The instant as the store keeps it: `utc_text`'s microseconds, clamped at the edges of time."""
    return datetime.fromisoformat(utc_text(value))


def _text(value: object, what: str, limit: int, *, lines: bool = False) -> str:
    """`value` stripped, or an error naming `what`: empty, too long, or hiding a control character (newlines and
    tabs are allowed in multi-line text)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise FeedbackError(f"{what} is required and cannot be empty", what)
    if len(text) > limit:
        raise FeedbackError(f"{what} is {len(text):,} characters long; at most {limit:,} are kept", what)
    hidden = control_character(text.replace("\n", "").replace("\t", "") if lines else text)
    if hidden is not None:
        raise FeedbackError(f"{what} holds a control character ({hidden}): {excerpt(repr(text))}", what)
    return text


def checked_report(
    *,
    service: str,
    start: datetime,
    end: datetime,
    impact: str,
    ticket: str,
    reported_by: str,
    received_at: datetime | None = None,
) -> NewReport:
    """The fields of a new report, or `FeedbackError` naming the first one at fault (`service`, `start`, `end`,
    `impact`, `ticket`, `reportedBy`); `received_at` now when None. The API checks a request with this before
    classifying it; both stores take only what it returns, so they refuse alike."""
    received = stored_instant(aware(received_at or now(), "receivedAt"))
    first, last = stored_instant(aware(start, "start")), stored_instant(aware(end, "end"))
    if last <= first:
        raise FeedbackError(f"end ({last.isoformat()}) must be after start ({first.isoformat()})", "end")
    if last - first > MAX_RANGE:
        raise FeedbackError(f"a report spans at most {MAX_RANGE.days} days, not {last - first}", "end")
    if last > received + FUTURE_SLACK:
        raise FeedbackError(
            f"end ({last.isoformat()}) is after the report was received ({received.isoformat()}): "
            "for a problem still going on, give the time of reporting",
            "end",
        )
    return NewReport(
        service=_text(service, "service", NAME_LENGTH),
        start=first,
        end=last,
        impact=_text(impact, "impact", IMPACT_LENGTH, lines=True),
        ticket=_text(ticket, "ticket", TICKET_LENGTH),
        reported_by=_text(reported_by, "reportedBy", NAME_LENGTH),
        received_at=received,
    )


def checked_verdict(classification: Mapping[str, Any]) -> str:
    """The classification's verdict, which must be one of `VERDICTS`."""
    verdict = classification.get("verdict")
    if verdict not in VERDICTS:
        raise FeedbackError(f"a classification's verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    return str(verdict)


def classification_json(classification: Mapping[str, Any]) -> str:
    return wire_json(dict(classification)).decode()


def new_id() -> str:
    """Short enough to quote in a ticket, random enough never to collide."""
    return f"fb-{secrets.token_hex(6)}"


def _report(row: tuple[Any, ...]) -> FeedbackReport:
    id_, service, start, end, impact, ticket, reported_by, received_at, verdict, classification = row
    return FeedbackReport(
        id=id_,
        service=service,
        start=datetime.fromisoformat(start),
        end=datetime.fromisoformat(end),
        impact=impact,
        ticket=ticket,
        reported_by=reported_by,
        received_at=datetime.fromisoformat(received_at),
        verdict=verdict,
        classification=orjson.loads(classification),
    )


class SqliteFeedback(SqliteStore):
    """Support feedback in a SQLite file (created, with its folder, when missing)."""

    def __init__(self, path: str | Path) -> None:
        self._attach(path, "the support feedback", FeedbackError)
        try:
            self._create()
        except FeedbackError:
            self.close()
            raise

    def add(self, report: NewReport, classification: Mapping[str, Any]) -> FeedbackReport:
        """Record a report (`checked_report`'s), classified as `classification` at its receipt."""
        row = {
            "id": new_id(),
            "service": report.service,
            "start": utc_text(report.start),
            "end": utc_text(report.end),
            "impact": report.impact,
            "ticket": report.ticket,
            "reported_by": report.reported_by,
            "received_at": utc_text(report.received_at),
            "verdict": checked_verdict(classification),
            "classification": classification_json(classification),
            "classified_at": utc_text(report.received_at),
        }
        with self._writing("record a report") as connection:
            connection.execute(
                'INSERT INTO feedback (id, service, start, "end", impact, ticket, reported_by, received_at, verdict, '
                "classification, classified_at) VALUES (:id, :service, :start, :end, :impact, :ticket, :reported_by, "
                ":received_at, :verdict, :classification, :classified_at)",
                row,
            )
        return self.get(row["id"])

    def reclassify(
        self, report_id: str, classification: Mapping[str, Any], *, at: datetime | None = None
    ) -> FeedbackReport:
        """Replace a report's classification (its rollups have arrived since); what was reported stays."""
        values = {
            "id": report_id,
            "verdict": checked_verdict(classification),
            "classification": classification_json(classification),
            "classified_at": utc_text(aware(at or now(), "at")),
        }
        with self._writing(f"classify report {report_id} again") as connection:
            updated = connection.execute(
                "UPDATE feedback SET verdict = :verdict, classification = :classification, "
                "classified_at = :classified_at WHERE id = :id",
                values,
            )
            if updated.rowcount == 0:
                raise UnknownFeedbackError(f"no report {excerpt(report_id)!r} in {self.path}")
        return self.get(report_id)

    def get(self, report_id: str) -> FeedbackReport:
        """The report with this id."""
        rows = self._read(f"SELECT {COLUMNS} FROM feedback WHERE id = ?", (report_id,))
        if not rows:
            raise UnknownFeedbackError(f"no report {excerpt(report_id)!r} in {self.path}")
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
        conditions, values = [], {}
        for column, value in (("service", service), ("verdict", verdict)):
            if value is not None:
                conditions.append(f"{column} = :{column}")
                values[column] = value
        if since is not None:
            conditions.append("start >= :since")
            values["since"] = utc_text(aware(since, "since"))
        if until is not None:
            conditions.append("start < :until")
            values["until"] = utc_text(aware(until, "until"))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        return [
            _report(row) for row in self._read(f"SELECT {COLUMNS} FROM feedback {where} ORDER BY start, seq", values)
        ]

    # --- the file --------------------------------------------------------------------------------------

    def _create(self) -> None:
        connection = self._connections.get()
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.rollback()
            raise FeedbackError(f"cannot write the support feedback at {self.path}: {exc}") from exc

    def _read(self, sql: str, values: tuple[Any, ...] | dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            return self._connections.get().execute(sql, values).fetchall()
        except sqlite3.Error as exc:
            raise FeedbackError(f"cannot read the support feedback at {self.path}: {exc}") from exc


if TYPE_CHECKING:

    def _is_a_feedback_store(store: SqliteFeedback) -> FeedbackStore:
        """`mypy sloplane` proves the store satisfies what the API and governance use."""
        return store
