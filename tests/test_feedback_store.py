"""Support feedback's store, once for each store: SQLite (a file) and PostgreSQL (a throw-away cluster).

Why one suite: the API, `govern stale` and the quarterly review read either store through the same methods, so the
two must give the same reports back, in the same order, and refuse the same things with the same messages.
The PostgreSQL-only tests at the end: the migration recorded under its own store name, the writer role's grants.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sloplane.evaluator.storage.feedback import (
    IMPACT_LENGTH,
    MAX_RANGE,
    FeedbackError,
    FeedbackReport,
    SqliteFeedback,
    UnknownFeedbackError,
    checked_report,
)
from sloplane.evaluator.storage.feedback_postgres import PostgresFeedback
from sloplane.evaluator.storage.feedback_postgres_schema import LATEST
from sloplane.evaluator.storage.open import open_feedback
from sloplane.evaluator.storage.postgres_schema import WRITER_ROLE

pytest_plugins = ("tests.postgres",)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
Feedback = SqliteFeedback | PostgresFeedback


@dataclass
class Store:
    """The store under test, more objects on the same database (replicas), and SQL by the owner's hand."""

    kind: str
    feedback: Feedback
    target: str | Path
    by_hand: Callable[[str], None]
    table: str
    opened: list[Feedback] = field(default_factory=list)

    def replica(self) -> Feedback:
        replica = open_feedback(self.target)
        self.opened.append(replica)
        return replica

    def refusal(self, statement: str) -> str:
        """The database's message refusing `statement` (empty when it was carried out)."""
        try:
            self.by_hand(statement.format(table=self.table))
        except (sqlite3.Error, psycopg.Error) as error:
            return str(error)
        return ""


def _sqlite_by_hand(path: Path) -> Callable[[str], None]:
    def run(statement: str) -> None:
        with sqlite3.connect(path) as connection:
            connection.execute(statement)
        connection.close()

    return run


def _postgres_by_hand(url: str) -> Callable[[str], None]:
    def run(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(statement)

    return run


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        path = tmp_path / "decisions.db"
        made = Store("sqlite", open_feedback(path), path, _sqlite_by_hand(path), "feedback")
    else:
        url = request.getfixturevalue("postgres_url")
        made = Store("postgres", open_feedback(url), url, _postgres_by_hand(url), "support_feedback")
    try:
        yield made
    finally:
        for feedback in [made.feedback, *made.opened]:
            feedback.close()


def _classification(verdict: str, **more: Any) -> dict[str, Any]:
    return {"verdict": verdict, "blindSpot": None, "seenBy": [], **more}


def _add(
    feedback: Feedback, service: str, start: datetime, hours: int = 2, verdict: str = "missed", **fields: Any
) -> FeedbackReport:
    report = checked_report(
        service=service,
        start=start,
        end=start + hours * HOUR,
        impact=fields.get("impact", "checkout spun forever for EU customers"),
        ticket=fields.get("ticket", "https://support.example.com/tickets/4711"),
        reported_by=fields.get("reported_by", "support-bot"),
        received_at=fields.get("received_at", T0 + 30 * 24 * HOUR),
    )
    return feedback.add(report, _classification(verdict))


def test_a_report_comes_back_as_it_was_recorded(store: Store) -> None:
    berlin = timezone(timedelta(hours=1))
    received = datetime(2026, 3, 3, 12, 0, 0, 123456, tzinfo=UTC)
    report = checked_report(
        service="checkout",
        start=datetime(2026, 3, 2, 10, 15, tzinfo=berlin),
        end=datetime(2026, 3, 2, 11, 45, tzinfo=berlin),
        impact="  Payments failed with 'try again later'.\nAbout 40 customers wrote in.  ",
        ticket=" ZD-4711 ",
        reported_by="support",
        received_at=received,
    )
    classification = _classification("seen", seenBy=[{"kind": "gate", "decisionId": "d-000001"}], ratio=0.25)
    added = store.feedback.add(report, classification)

    assert added.id.startswith("fb-") and len(added.id) == len("fb-") + 12
    assert added.to_dict() == {
        "id": added.id,
        "service": "checkout",
        "start": "2026-03-02T09:15:00+00:00",
        "end": "2026-03-02T10:45:00+00:00",
        "impact": "Payments failed with 'try again later'.\nAbout 40 customers wrote in.",
        "ticket": "ZD-4711",
        "reportedBy": "support",
        "receivedAt": received.isoformat(),
        "verdict": "seen",
        "classification": classification,
    }
    assert store.feedback.get(added.id) == added
    assert store.replica().get(added.id) == added, "another replica reads it at once"


def test_reports_are_those_that_started_in_the_span_by_start_then_as_recorded(store: Store) -> None:
    feedback = store.feedback
    late = _add(feedback, "checkout", T0 + 5 * HOUR)
    early = _add(feedback, "checkout", T0, verdict="seen")
    search = _add(feedback, "search", T0 + HOUR)
    same_start = _add(feedback, "checkout", T0 + 5 * HOUR, hours=1)
    before = _add(feedback, "checkout", T0 - 3 * HOUR, hours=4)  # still going on at T0: started before the span

    def ids(**filters: Any) -> list[str]:
        return [report.id for report in feedback.reports(**filters)]

    assert ids() == [before.id, early.id, search.id, late.id, same_start.id]
    assert ids(since=T0, until=T0 + 5 * HOUR) == [early.id, search.id], "until is exclusive"
    assert ids(since=T0 + 5 * HOUR) == [late.id, same_start.id]
    assert ids(service="checkout", until=T0 + HOUR) == [before.id, early.id]
    assert ids(verdict="seen") == [early.id]
    assert ids(service="ledger") == []


def test_a_report_can_be_classified_again_and_nothing_else(store: Store) -> None:
    feedback = store.feedback
    added = _add(feedback, "checkout", T0, verdict="pending")
    settled = _classification("missed", blindSpot="measured-fine")
    again = feedback.reclassify(added.id, settled, at=T0 + 3 * HOUR)
    assert again.to_dict() == {**added.to_dict(), "verdict": "missed", "classification": settled}
    assert store.replica().get(added.id) == again

    with pytest.raises(UnknownFeedbackError, match=r"^no report 'fb-000000000000' in "):
        feedback.reclassify("fb-000000000000", settled)
    with pytest.raises(UnknownFeedbackError, match=r"^no report 'fb-000000000000' in "):
        feedback.get("fb-000000000000")
    with pytest.raises(FeedbackError, match=r"^a classification's verdict must be one of seen, missed, pending, "):
        feedback.reclassify(added.id, {"verdict": "maybe"})
    assert feedback.get(added.id) == again, "the refused classification changed nothing"


def test_the_database_keeps_every_report(store: Store) -> None:
    """Even SQL by hand cannot delete a report or rewrite what the customer said: only its classification."""
    added = _add(store.feedback, "checkout", T0)
    rewrite = "UPDATE {table} SET impact = 'nothing happened' WHERE id = '" + added.id + "'"
    assert "a report can only be classified again: what the customer reported cannot change" in store.refusal(rewrite)
    delete = "DELETE FROM {table} WHERE id = '" + added.id + "'"
    assert "support feedback is kept: a report cannot be deleted" in store.refusal(delete)
    assert store.refusal("UPDATE {table} SET verdict = 'seen' WHERE id = '" + added.id + "'") == ""
    assert store.feedback.get(added.id).verdict == "seen"
    assert store.feedback.get(added.id).impact == added.impact


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"service": "  "}, "service", "service is required and cannot be empty"),
        ({"start": datetime(2026, 3, 2, 9)}, "start", "start has no time zone: add Z or an offset"),
        ({"end": T0}, "end", "end (2026-03-02T09:00:00+00:00) must be after start (2026-03-02T09:00:00+00:00)"),
        ({"end": T0 + MAX_RANGE + HOUR}, "end", f"a report spans at most {MAX_RANGE.days} days, not 31 days, 1:00"),
        ({"received_at": T0 + HOUR}, "end", "is after the report was received (2026-03-02T10:00:00+00:00)"),
        ({"impact": "x" * (IMPACT_LENGTH + 1)}, "impact", f"impact is {IMPACT_LENGTH + 1:,} characters long"),
        ({"impact": "broken\x1b[2J"}, "impact", "impact holds a control character (U+001B)"),
        ({"ticket": "ZD-1\nZD-2"}, "ticket", "ticket holds a control character (U+000A)"),
        ({"ticket": ""}, "ticket", "ticket is required and cannot be empty"),
        ({"reported_by": "\t"}, "reportedBy", "reportedBy is required"),
    ],
)
def test_a_report_that_says_nothing_checkable_is_refused_naming_the_field(
    change: dict[str, Any], field: str, message: str
) -> None:
    fields: dict[str, Any] = {
        "service": "checkout",
        "start": T0,
        "end": T0 + 2 * HOUR,
        "impact": "slow",
        "ticket": "ZD-1",
        "reported_by": "support",
        "received_at": T0 + 2 * HOUR,
    }
    with pytest.raises(FeedbackError, match=re.escape(message)) as refused:
        checked_report(**(fields | change))
    assert refused.value.field == field


def test_a_problem_still_going_on_may_end_at_the_report_within_the_clocks_slack() -> None:
    received = T0 + 2 * HOUR
    report = checked_report(
        service="checkout",
        start=T0,
        end=received + timedelta(minutes=4),
        impact="still failing",
        ticket="ZD-2",
        reported_by="support",
        received_at=received,
    )
    assert report.end - report.start == 2 * HOUR + timedelta(minutes=4)


def test_a_sqlite_path_with_a_password_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FeedbackError, match="is a file path, not a PostgreSQL URL"):
        open_feedback(tmp_path / "feedback.db", password_file=tmp_path / "password")


def test_the_feedback_may_share_the_decision_logs_file(tmp_path: Path) -> None:
    from sloplane.evaluator.storage.decisions import SqliteDecisionLog  # noqa: PLC0415 - this test only

    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as log, open_feedback(path) as feedback:
        added = _add(feedback, "checkout", T0)
        assert log.count() == 0
        assert feedback.get(added.id) == added


# --- PostgreSQL only ----------------------------------------------------------------------------------------


def test_the_postgres_migration_is_recorded_under_its_own_store(postgres_url: str) -> None:
    with open_feedback(postgres_url), open_feedback(postgres_url):  # a second opening applies nothing again
        pass
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute("SELECT store, version FROM schema_migrations ORDER BY store, version").fetchall()
    assert rows == [("feedback", version) for version in range(1, LATEST + 1)]


def test_the_writer_role_may_add_and_reclassify_but_not_rewrite_or_delete(postgres_url: str) -> None:
    with open_feedback(postgres_url):
        pass
    checks = {
        "insert": f"SELECT has_table_privilege('{WRITER_ROLE}', 'support_feedback', 'INSERT')",
        "delete": f"SELECT has_table_privilege('{WRITER_ROLE}', 'support_feedback', 'DELETE')",
        "truncate": f"SELECT has_table_privilege('{WRITER_ROLE}', 'support_feedback', 'TRUNCATE')",
        "verdict": f"SELECT has_column_privilege('{WRITER_ROLE}', 'support_feedback', 'verdict', 'UPDATE')",
        "impact": f"SELECT has_column_privilege('{WRITER_ROLE}', 'support_feedback', 'impact', 'UPDATE')",
    }
    with psycopg.connect(postgres_url) as connection:
        granted = {name: connection.execute(sql).fetchone() for name, sql in checks.items()}
    expected = {"insert": True, "delete": False, "truncate": False, "verdict": True, "impact": False}
    assert granted == {name: (value,) for name, value in expected.items()}
