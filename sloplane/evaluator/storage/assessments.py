"""Impact assessments of risky changes (`sloplane assess --record`, issue 18) in a SQLite file, and the rule the
gate asks of them (`coverage`: does this assessment id cover this service at this instant, and if not, why).

What is kept: the assessment as `governance.assessment.assessment_report` built it (its JSON, whole), under an id,
with the columns a lookup needs beside it — service, risk, verdict, the change window, when it was assessed and
when recorded. Like the release controls, an assessment is audit material (what was known and decided before a
risky change): nothing is ever changed or deleted, triggers refuse both, and a new assessment is a new record.

Why `coverage` lives here and not with the builder: the gate (`gate.requireAssessment`, wired by the deciding
code or the HTTP routes) sits below `evaluator.governance` in the layers; storage is below both, so the rule is
written once where every caller may import it. It reads only what the store returns.

`AssessmentStore` is what callers use of this store and of PostgreSQL's (`assessments_postgres.py`); one suite
(`tests/test_assessment_store.py`) runs against both. `assessments_open.open_assessments(target)` opens either, as
`storage.open` opens the others (a module of its own: the PostgreSQL store imports this one's rules).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from sloplane.core.serialize import wire_json
from sloplane.core.text import excerpt
from sloplane.evaluator.storage.decisions import utc_text
from sloplane.evaluator.storage.sqlite import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS assessments (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    service TEXT NOT NULL CHECK (length(service) > 0),
    risk TEXT NOT NULL,
    verdict TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL CHECK (window_end > window_start),
    assessed_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assessments_by_service ON assessments (service, seq);
CREATE TRIGGER IF NOT EXISTS assessments_no_delete BEFORE DELETE ON assessments
BEGIN
    SELECT RAISE(ABORT, 'assessments are kept: one cannot be deleted');
END;
CREATE TRIGGER IF NOT EXISTS assessments_no_update BEFORE UPDATE ON assessments
BEGIN
    SELECT RAISE(ABORT, 'assessments are kept: one cannot be changed, record a new one');
END;
"""
"""Times are `utc_text` (fixed width, UTC), so comparing the strings compares the instants."""

COLUMNS = "id, recorded_at, body"
VERDICTS = ("proceed", "proceed-with-conditions", "defer")

MISSING, UNKNOWN, OTHER_SERVICE, OUTSIDE_WINDOW, DEFERRED, LOWER_RISK = (
    "assessment-missing",
    "assessment-unknown",
    "assessment-other-service",
    "assessment-outside-window",
    "assessment-deferred",
    "assessment-lower-risk",
)
ID_PATTERN = r"^asm-[0-9a-f]{12}$"
"""What `new_id` makes: anything else names no assessment, and is not looked up."""
RISKS = ("low", "medium", "high", "critical")
"""The codes `coverage` answers with when an assessment does not cover a release (`assessment-missing`: no id)."""


class AssessmentError(Exception):
    """An assessment cannot be recorded or read; the message says which and why, in one line."""


class UnknownAssessmentError(AssessmentError):
    """No assessment has that id (an API answers 404)."""


class AssessmentStore(Protocol):
    """What the CLI, the routes and the gate use of either store."""

    def record(self, assessment: Mapping[str, Any], *, at: datetime | None = None) -> str: ...

    def get(self, assessment_id: str) -> dict[str, Any]: ...

    def latest(self, service: str, at: datetime) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


def new_id() -> str:
    """Short enough to paste into a pipeline's gate request, random enough never to collide in one store."""
    return f"asm-{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Fields:
    """The columns kept beside the body, read from the assessment (refused, by name, when absent or wrong)."""

    service: str
    risk: str
    verdict: str
    window_start: datetime
    window_end: datetime
    assessed_at: datetime


def _instant(assessment: Mapping[str, Any], *path: str) -> datetime:
    value: Any = assessment
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    try:
        found = datetime.fromisoformat(str(value))
    except ValueError:
        raise AssessmentError(f"the assessment's {'.'.join(path)} is no instant: {value!r}") from None
    if found.tzinfo is None:
        raise AssessmentError(f"the assessment's {'.'.join(path)} has no time zone: {value!r}")
    return found.astimezone(UTC)


def fields(assessment: Mapping[str, Any]) -> Fields:
    """What both stores index an assessment by; an assessment missing one is refused (AssessmentError)."""
    service, risk, verdict = assessment.get("service"), assessment.get("risk"), assessment.get("verdict")
    if not isinstance(service, str) or not service.strip():
        raise AssessmentError("the assessment names no service")
    if not isinstance(risk, str) or not risk:
        raise AssessmentError("the assessment names no risk")
    if verdict not in VERDICTS:
        raise AssessmentError(f"the assessment's verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    start, end = _instant(assessment, "window", "start"), _instant(assessment, "window", "end")
    if end <= start:
        raise AssessmentError(f"the assessment's window ends ({end.isoformat()}) before it starts")
    return Fields(service, risk, verdict, start, end, _instant(assessment, "at"))


def body_text(assessment: Mapping[str, Any]) -> str:
    """The assessment as stored: compact JSON, key order as built (the id and recording time are columns)."""
    return wire_json({k: v for k, v in assessment.items() if k not in ("id", "recordedAt")}).decode()


def as_record(assessment_id: str, recorded_at: datetime, body: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """The assessment as `get` returns it: its id and `recordedAt` first, then the body as recorded."""
    loaded = body if isinstance(body, dict) else orjson.loads(body)
    return {"id": assessment_id, "recordedAt": recorded_at.astimezone(UTC).isoformat(), **loaded}


def _now() -> datetime:
    return datetime.now(UTC)


class SqliteAssessments(SqliteStore):
    """Assessments in a SQLite file (created, with its folder, when missing; by default the decision log's)."""

    def __init__(self, path: str | Path) -> None:
        self._attach(path, "the assessments", AssessmentError)
        try:
            connection = self._connections.writer()
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
        except Exception as exc:
            self.close()
            raise AssessmentError(f"cannot prepare the assessments in {self.path}: {exc}") from None

    def record(self, assessment: Mapping[str, Any], *, at: datetime | None = None) -> str:
        """Keep `assessment` (recorded at `at`, default now) under a new id, which is returned."""
        found = fields(assessment)
        assessment_id = new_id()
        row = {
            "id": assessment_id,
            "service": found.service,
            "risk": found.risk,
            "verdict": found.verdict,
            "window_start": utc_text(found.window_start),
            "window_end": utc_text(found.window_end),
            "assessed_at": utc_text(found.assessed_at),
            "recorded_at": utc_text(at or _now()),
            "body": body_text(assessment),
        }
        with self._writing("record an assessment") as connection:
            connection.execute(
                "INSERT INTO assessments (id, service, risk, verdict, window_start, window_end, assessed_at, "
                "recorded_at, body) VALUES (:id, :service, :risk, :verdict, :window_start, :window_end, "
                ":assessed_at, :recorded_at, :body)",
                row,
            )
        return assessment_id

    def get(self, assessment_id: str) -> dict[str, Any]:
        """The assessment with this id (UnknownAssessmentError when none has it)."""
        rows = self._read(f"SELECT {COLUMNS} FROM assessments WHERE id = ?", (assessment_id,))
        if not rows:
            raise UnknownAssessmentError(f"no assessment {assessment_id!r} in {self.path}")
        (found_id, recorded_at, body), *_ = rows
        return as_record(found_id, datetime.fromisoformat(recorded_at), body)

    def latest(self, service: str, at: datetime) -> dict[str, Any] | None:
        """The newest recorded assessment of `service` whose window holds `at` (start ≤ at < end), recorded at
        or before `at`; None when there is none."""
        when = utc_text(at)
        rows = self._read(
            f"SELECT {COLUMNS} FROM assessments WHERE service = ? AND window_start <= ? AND ? < window_end "
            "AND recorded_at <= ? ORDER BY seq DESC LIMIT 1",
            (service, when, when, when),
        )
        if not rows:
            return None
        found_id, recorded_at, body = rows[0]
        return as_record(found_id, datetime.fromisoformat(recorded_at), body)

    def _read(self, sql: str, values: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._connections.get().execute(sql, values).fetchall()
        except AssessmentError:  # closed
            raise
        except sqlite3.Error as exc:
            raise AssessmentError(f"cannot read the assessments in {self.path}: {exc}") from None


# --- what the gate asks ------------------------------------------------------------------------------------------


class AssessmentReader(Protocol):
    def get(self, assessment_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Coverage:
    """Whether an assessment lets a release of `service` through at `at`: `code` None when it does, else the
    reason's code (`MISSING`, `UNKNOWN`, `OTHER_SERVICE`, `OUTSIDE_WINDOW`, `DEFERRED`) and `message` in words."""

    covered: bool
    code: str | None
    message: str
    assessment: dict[str, Any] | None = None


def coverage(
    store: AssessmentReader, assessment_id: str | None, service: str, at: datetime, risk: str | None = None
) -> Coverage:
    """Does assessment `assessment_id` cover a release of `service` at `at` (declared at `risk`, if it says)? It
    must exist, be for that service, have a window holding `at` (start ≤ at < end), a verdict other than `defer`,
    and a risk no lower than the release's; the first rule it breaks is the answer. An id `new_id` could not have
    made is unknown without a lookup. `AssessmentError` (the store cannot be read) is left to the caller: an
    unreadable store is no missing assessment, and the gate's policy for a backend fault decides. Messages name
    only `service` and the id: a limited token reads them."""
    if assessment_id is None or not assessment_id.strip():
        return Coverage(False, MISSING, f"a high-risk release of {service} must name an impact assessment")
    if re.fullmatch(ID_PATTERN, assessment_id) is None:
        return Coverage(False, UNKNOWN, f"no assessment {excerpt(assessment_id)!r} is recorded")
    try:
        found = store.get(assessment_id)
    except UnknownAssessmentError:
        return Coverage(False, UNKNOWN, f"no assessment {assessment_id!r} is recorded")
    if found.get("service") != service:
        message = f"assessment {assessment_id} is not for service {service!r}"
        return Coverage(False, OTHER_SERVICE, message, found)
    assessed = found.get("risk")
    if risk is not None and assessed in RISKS and RISKS.index(str(assessed)) < RISKS.index(risk):
        message = f"assessment {assessment_id} assessed a {assessed}-risk change; this release is {risk} risk"
        return Coverage(False, LOWER_RISK, message, found)
    start, end = _instant(found, "window", "start"), _instant(found, "window", "end")
    when = at.astimezone(UTC)
    if not start <= when < end:
        message = f"assessment {assessment_id} covers {start.isoformat()} to {end.isoformat()}, not {when.isoformat()}"
        return Coverage(False, OUTSIDE_WINDOW, message, found)
    if found.get("verdict") == "defer":
        reasons = "; ".join(str(reason.get("message")) for reason in found.get("reasons", []))
        return Coverage(False, DEFERRED, f"assessment {assessment_id} says defer: {reasons}", found)
    return Coverage(True, None, f"assessment {assessment_id} ({found.get('verdict')}) covers {service}", found)


if TYPE_CHECKING:

    def _is_an_assessment_store(store: SqliteAssessments) -> AssessmentStore:
        """`mypy sloplane` proves the store is what the callers use."""
        return store
