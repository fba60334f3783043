"""Impact assessments, once for each store: SQLite (a file) and PostgreSQL (a throw-away cluster), and the rule the
gate asks of them (`coverage`).

Why one suite: `sloplane assess --record`, the gate's `requireAssessment` and a future `/v1/assessments` use
either store through `AssessmentStore`, so the two must not drift apart — same records back (same keys in the
same order), same `latest`, same refusals, same kept-forever records. Both are opened through
`open_assessments`, as the CLI opens them; a second store object on the same database (a replica) sees what the
first recorded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg
import pytest

from sloplane.evaluator.storage.assessments import (
    DEFERRED,
    MISSING,
    OTHER_SERVICE,
    OUTSIDE_WINDOW,
    UNKNOWN,
    AssessmentError,
    SqliteAssessments,
    UnknownAssessmentError,
    coverage,
)
from sloplane.evaluator.storage.assessments_postgres import PostgresAssessments
from sloplane.evaluator.storage.assessments_postgres_schema import LATEST
from sloplane.evaluator.storage.open import open_assessments, open_decision_log, open_release_controls
from tests.evaluator_data import T0
from tests.postgres import assert_secret_free, writer_login

if TYPE_CHECKING:
    from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)

HOUR = timedelta(hours=1)
SECRET = "Pw-9f3k!x@y:z"
"""A password with the characters a URL must escape: it must not appear in any spelling."""
Assessments = SqliteAssessments | PostgresAssessments


def _assessment(service: str = "checkout", start: datetime = T0, hours: int = 2, **changes: Any) -> dict[str, Any]:
    """What `assessment_report` returns, cut down to what a store reads, plus nested data it must keep whole."""
    assessment = {
        "kind": "assessment",
        "service": service,
        "risk": "high",
        "at": (start - HOUR).isoformat(),
        "window": {"start": start.isoformat(), "end": (start + hours * HOUR).isoformat()},
        "verdict": "proceed-with-conditions",
        "zeta": 1,
        "slos": [{"slo": "checkout-api", "budgetRemaining": 0.8, "outageShare": 0.1388888888888889, "via": None}],
        "alpha": "é ünïcode",
        "reasons": [],
        "conditions": [{"rule": "no-canary", "message": "no canary", "inputs": {}}],
    }
    assessment.update(changes)
    return assessment


@dataclass
class Store:
    kind: str
    assessments: Assessments
    target: str | Path
    execute: Callable[[str], None]
    opened: list[Assessments] = field(default_factory=list)

    def replica(self) -> Assessments:
        replica = open_assessments(self.target)
        self.opened.append(replica)
        return replica


def _sqlite_execute(path: Path) -> Callable[[str], None]:
    def run(statement: str) -> None:
        connection = sqlite3.connect(path)
        try:
            connection.execute(statement)
            connection.commit()
        finally:
            connection.close()

    return run


def _postgres_execute(url: str) -> Callable[[str], None]:
    def run(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(statement)

    return run


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        path = tmp_path / "decisions.db"
        made = Store("sqlite", open_assessments(path), path, _sqlite_execute(path))
    else:
        url = request.getfixturevalue("postgres_url")
        made = Store("postgres", open_assessments(url), url, _postgres_execute(url))
    try:
        yield made
    finally:
        for assessments in [made.assessments, *made.opened]:
            assessments.close()


# --- recording and reading back ----------------------------------------------------------------------------------


def test_a_recorded_assessment_comes_back_whole_with_its_id_and_recording_time(store: Store) -> None:
    written = _assessment()
    recorded_at = T0 - 30 * timedelta(minutes=1)
    assessment_id = store.assessments.record(written, at=recorded_at)
    assert assessment_id.startswith("asm-") and len(assessment_id) == len("asm-") + 12
    back = store.assessments.get(assessment_id)
    assert back == {"id": assessment_id, "recordedAt": recorded_at.isoformat(), **written}
    assert list(back) == ["id", "recordedAt", *written], "the keys in the order the builder wrote them"
    assert store.replica().get(assessment_id) == back, "another replica reads what this one recorded"


def test_ids_are_new_for_each_record_even_of_the_same_assessment(store: Store) -> None:
    ids = {store.assessments.record(_assessment(), at=T0) for _ in range(5)}
    assert len(ids) == 5


def test_an_id_and_recording_time_in_the_assessment_are_not_stored_as_its_own(store: Store) -> None:
    """Recording what `get` returned records it again under a new id: the old id is not carried in the body."""
    first = store.assessments.get(store.assessments.record(_assessment(), at=T0))
    second_id = store.assessments.record(first, at=T0 + HOUR)
    second = store.assessments.get(second_id)
    assert second["id"] == second_id != first["id"]
    assert second["recordedAt"] == (T0 + HOUR).isoformat()
    assert {k: v for k, v in second.items() if k not in ("id", "recordedAt")} == _assessment()


def test_get_of_an_unknown_id_says_so(store: Store) -> None:
    with pytest.raises(UnknownAssessmentError, match="no assessment 'asm-000000000000'"):
        store.assessments.get("asm-000000000000")


def test_latest_is_the_newest_of_the_service_whose_window_holds_the_instant(store: Store) -> None:
    """Window start included, end excluded; recorded at or before the instant; other services never."""
    older = store.assessments.record(_assessment(start=T0, hours=4), at=T0 - 2 * HOUR)
    newer = store.assessments.record(_assessment(start=T0 + HOUR, hours=1), at=T0 - HOUR)
    store.assessments.record(_assessment("search", start=T0, hours=4), at=T0 - HOUR)
    later = store.assessments.record(_assessment(start=T0, hours=4), at=T0 + 3 * HOUR)

    def latest(at: datetime, service: str = "checkout") -> str | None:
        found = store.assessments.latest(service, at)
        return None if found is None else str(found["id"])

    assert latest(T0) == older, "the newer one's window has not begun"
    assert latest(T0 + HOUR) == newer, "both hold it: the newest recorded"
    assert latest(T0 + 2 * HOUR) == older, "the newer one's window ended (end excluded)"
    assert latest(T0 + 3 * HOUR) == later, "recorded at that very instant"
    assert latest(T0 + 3 * HOUR - timedelta(microseconds=1)) == older, "recorded after it: not yet known"
    assert latest(T0 + 4 * HOUR) is None, "every window ended"
    assert latest(T0 - timedelta(microseconds=1)) is None
    assert latest(T0, "cart") is None
    paris = timezone(timedelta(hours=1))
    assert latest((T0 + HOUR).astimezone(paris)) == newer, "an instant in any offset means the same"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"service": ""}, "names no service"),
        ({"service": None}, "names no service"),
        ({"risk": ""}, "names no risk"),
        ({"verdict": "maybe"}, "verdict must be one of proceed, proceed-with-conditions, defer, not 'maybe'"),
        ({"window": {"start": T0.isoformat(), "end": T0.isoformat()}}, "window ends"),
        ({"window": {"start": T0.isoformat()}}, r"window.end is no instant: None"),
        ({"window": "soon"}, r"window.start is no instant"),
        ({"at": "2026-11-26T12:00:00"}, "at has no time zone"),
    ],
)
def test_an_assessment_missing_what_a_lookup_needs_is_refused(
    store: Store, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(AssessmentError, match=message):
        store.assessments.record(_assessment(**changes), at=T0)
    assert store.assessments.latest("checkout", T0) is None, "nothing was recorded"


@pytest.mark.parametrize("statement", ["UPDATE {table} SET verdict = 'proceed'", "DELETE FROM {table}"])
def test_records_are_kept_updates_and_deletes_are_refused(store: Store, statement: str) -> None:
    assessment_id = store.assessments.record(_assessment(), at=T0)
    table = "assessments" if store.kind == "sqlite" else "change_assessments"
    error = sqlite3.DatabaseError if store.kind == "sqlite" else psycopg.Error
    with pytest.raises(error, match="assessments are kept"):
        store.execute(statement.format(table=table))
    assert store.assessments.get(assessment_id)["verdict"] == "proceed-with-conditions"


def test_a_closed_store_says_so(store: Store) -> None:
    store.assessments.close()
    with pytest.raises(AssessmentError, match="is closed"):
        store.assessments.record(_assessment(), at=T0)
    with pytest.raises(AssessmentError, match="is closed"):
        store.assessments.get("asm-000000000000")


# --- the gate's question -----------------------------------------------------------------------------------------


def test_coverage_answers_each_rule_with_its_code(store: Store) -> None:
    assessments = store.assessments
    good = assessments.record(_assessment(start=T0, hours=2), at=T0)
    deferred = assessments.record(
        _assessment(verdict="defer", reasons=[{"rule": "freeze", "message": "freeze frz-1 overlaps", "inputs": {}}]),
        at=T0,
    )

    def answer(assessment_id: str | None, service: str, at: datetime) -> tuple[bool, str | None]:
        found = coverage(assessments, assessment_id, service, at)
        return found.covered, found.code

    assert answer(good, "checkout", T0) == (True, None), "the window's start is covered"
    assert answer(good, "checkout", T0 + 2 * HOUR - timedelta(microseconds=1)) == (True, None)
    assert answer(good, "checkout", T0 + 2 * HOUR) == (False, OUTSIDE_WINDOW), "its end is not"
    assert answer(good, "checkout", T0 - timedelta(microseconds=1)) == (False, OUTSIDE_WINDOW)
    assert answer(good, "search", T0) == (False, OTHER_SERVICE)
    assert answer(deferred, "checkout", T0) == (False, DEFERRED)
    assert answer("asm-000000000000", "checkout", T0) == (False, UNKNOWN)
    assert answer(None, "checkout", T0) == (False, MISSING)
    assert answer("  ", "checkout", T0) == (False, MISSING)
    refused = coverage(assessments, deferred, "checkout", T0)
    assert refused.message == f"assessment {deferred} says defer: freeze frz-1 overlaps"
    outside = coverage(assessments, good, "checkout", T0 + 2 * HOUR)
    assert outside.message == (
        f"assessment {good} covers {T0.isoformat()} to {(T0 + 2 * HOUR).isoformat()}, not {(T0 + 2 * HOUR).isoformat()}"
    )
    assert coverage(assessments, good, "checkout", T0).assessment == assessments.get(good)


# --- one store only ------------------------------------------------------------------------------------------------


def test_sqlite_refuses_memory_and_a_password_file(tmp_path: Path) -> None:
    with pytest.raises(AssessmentError, match="needs a file"):
        open_assessments(":memory:")
    with pytest.raises(AssessmentError, match="password file was given"):
        open_assessments(tmp_path / "a.db", password_file=tmp_path / "pw")


def test_sqlite_shares_the_decision_logs_file(tmp_path: Path) -> None:
    """The default --db holds the decision log, the controls, the rollups and the assessments side by side."""
    path = tmp_path / "decisions.db"
    with open_decision_log(path), open_release_controls(path), open_assessments(path) as assessments:
        assessment_id = assessments.record(_assessment(), at=T0)
    with open_assessments(path) as again:
        assert again.get(assessment_id)["service"] == "checkout"


def test_postgres_records_its_migrations_and_the_writer_may_only_read_and_insert(postgres_url: str) -> None:
    with open_assessments(postgres_url) as store:
        store.record(_assessment(), at=T0)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        versions = connection.execute(
            "SELECT max(version) FROM schema_migrations WHERE store = 'assessments'"
        ).fetchone()
        grants = connection.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE table_name = 'change_assessments' AND grantee = 'sloplane_writer' ORDER BY privilege_type"
        ).fetchall()
    assert versions == (LATEST,)
    assert [privilege for (privilege,) in grants] == ["INSERT", "SELECT"]
    with open_assessments(postgres_url) as again:  # opened again: nothing left to migrate
        assert again.latest("checkout", T0) is not None


def test_postgres_an_unreachable_database_is_named_without_the_password() -> None:
    url = f"postgresql://someone:{quote(SECRET, safe='')}@127.0.0.1:1/assessments"
    with pytest.raises(AssessmentError, match=r"^cannot open the assessments at postgresql://someone@127") as failed:
        open_assessments(url)
    assert_secret_free(SECRET, failed.value)
    assert "\n" not in str(failed.value)


def test_postgres_a_writer_login_records_and_reads_but_cannot_rewrite(
    postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    """The least-privileged role the pods log in as (once the owner migrated): records and reads, nothing more."""
    PostgresAssessments(postgres_cluster.url(postgres_database)).close()
    user = writer_login(postgres_cluster, "the-right-one")
    url = postgres_cluster.tcp_url(postgres_database, user, "the-right-one")
    with open_assessments(url) as store:
        assessment_id = store.record(_assessment(), at=T0)
        assert store.get(assessment_id)["service"] == "checkout"
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in ("UPDATE change_assessments SET verdict = 'defer'", "TRUNCATE change_assessments"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
