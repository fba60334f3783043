"""The SQLite decision log: what goes in comes out, filtered and ordered; nothing is ever rewritten."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from sloplane.evaluator.model import Outcome
from sloplane.evaluator.storage.decisions import DecisionLogError, SqliteDecisionLog
from tests.evaluator_data import T0, make_decision


@pytest.fixture
def log(tmp_path: Path) -> SqliteDecisionLog:
    return SqliteDecisionLog(tmp_path / "decisions.db")


def _ids(records: list[dict[str, object]]) -> list[object]:
    return [record["id"] for record in records]


def test_a_decision_comes_back_as_its_to_dict(log: SqliteDecisionLog) -> None:
    decision = make_decision(1)
    log.append(decision)
    assert log.query() == [decision.to_dict()]
    assert log.count() == 1


def test_newest_first_by_decision_time_not_insertion(log: SqliteDecisionLog) -> None:
    for number in (2, 5, 1, 4, 3):
        log.append(make_decision(number))
    assert _ids(log.query()) == ["d-000005", "d-000004", "d-000003", "d-000002", "d-000001"]
    assert _ids(log.query(limit=2)) == ["d-000005", "d-000004"]


def test_filters_combine(log: SqliteDecisionLog) -> None:
    log.append(make_decision(1, slo="a", stage="canary", outcome=Outcome.PASS, revision="v1"))
    log.append(make_decision(2, slo="a", stage="production", outcome=Outcome.FAIL, revision="v1"))
    log.append(make_decision(3, slo="b", stage="canary", outcome=Outcome.FAIL, revision="v2"))
    log.append(make_decision(4, slo="b", stage=None, outcome=Outcome.ERROR, revision=None))
    assert _ids(log.query(slo="a")) == ["d-000002", "d-000001"]
    assert _ids(log.query(stage="canary")) == ["d-000003", "d-000001"]
    assert _ids(log.query(outcome="fail")) == ["d-000003", "d-000002"]
    assert _ids(log.query(outcome=Outcome.ERROR)) == ["d-000004"]
    assert _ids(log.query(revision="v1")) == ["d-000002", "d-000001"]
    assert _ids(log.query(slo="b", outcome="fail", revision="v2", stage="canary")) == ["d-000003"]
    assert log.query(slo="c") == []


def test_since_and_until_bound_the_decision_time_inclusively_in_any_offset(log: SqliteDecisionLog) -> None:
    for number in range(1, 6):
        log.append(make_decision(number))
    berlin = timezone(timedelta(hours=1))
    since = (T0 + timedelta(minutes=2)).astimezone(berlin)
    until = (T0 + timedelta(minutes=4)).astimezone(berlin)
    assert _ids(log.query(since=since, until=until)) == ["d-000004", "d-000003", "d-000002"]
    assert _ids(log.query(until=T0 + timedelta(minutes=1))) == ["d-000001"]
    naive_utc = (T0 + timedelta(minutes=5)).replace(tzinfo=None)
    assert _ids(log.query(since=naive_utc)) == ["d-000005"]


def test_decision_times_in_other_offsets_sort_by_instant(log: SqliteDecisionLog) -> None:
    """Stored text is UTC of fixed width: 13:30+02:00 (11:30Z) sorts before 12:00Z."""
    log.append(make_decision(1, decided_at=T0))
    log.append(make_decision(2, decided_at=T0.replace(hour=13, minute=30).replace(tzinfo=timezone(timedelta(hours=2)))))
    assert _ids(log.query()) == ["d-000001", "d-000002"]


def test_limit_below_one_is_refused(log: SqliteDecisionLog) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        log.query(limit=0)


def test_a_decision_id_is_recorded_once(log: SqliteDecisionLog) -> None:
    log.append(make_decision(1))
    with pytest.raises(DecisionLogError, match="d-000001 is already in the decision log"):
        log.append(make_decision(1, outcome=Outcome.FAIL))
    assert log.query()[0]["decision"] == "pass"


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE decisions SET outcome = 'pass'", "cannot be changed"),
        ("UPDATE decisions SET record = '{}' WHERE id = 'd-000001'", "cannot be changed"),
        ("DELETE FROM decisions", "cannot be deleted"),
        ("DELETE FROM decisions WHERE id = 'd-000001'", "cannot be deleted"),
    ],
)
def test_history_cannot_be_rewritten_even_by_hand(log: SqliteDecisionLog, statement: str, message: str) -> None:
    log.append(make_decision(1, outcome=Outcome.FAIL))
    other = sqlite3.connect(log.path)
    with pytest.raises(sqlite3.IntegrityError, match=f"append-only: recorded decisions {message}"):
        other.execute(statement)
    other.close()
    assert log.count() == 1
    assert log.query()[0]["decision"] == "fail"


def test_thousand_appends_from_thirty_two_threads(log: SqliteDecisionLog) -> None:
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda number: log.append(make_decision(number)), range(1000)))
    assert log.count() == 1000
    assert len({record["id"] for record in log.iter_all()}) == 1000


def test_reads_from_many_threads_see_committed_appends(log: SqliteDecisionLog) -> None:
    log.append(make_decision(1))
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: log.count(), range(32)))
    assert counts == [1] * 32


def test_iter_all_walks_insertion_order_and_resumes(log: SqliteDecisionLog) -> None:
    order = [7, 3, 9, 1, 5]
    for number in order:
        log.append(make_decision(number))
    everything = list(log.iter_all(batch_size=2))
    assert _ids(everything) == [f"d-{n:06d}" for n in order]
    assert _ids(list(log.iter_all(after_id="d-000009", batch_size=2))) == ["d-000001", "d-000005"]
    assert list(log.iter_all(after_id="d-000005")) == []


def test_iter_all_after_an_unknown_id_is_an_error_not_a_restart(log: SqliteDecisionLog) -> None:
    log.append(make_decision(1))
    with pytest.raises(DecisionLogError, match="d-999999 is not in the decision log"):
        list(log.iter_all(after_id="d-999999"))


def test_creates_its_folder_uses_wal_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "decisions.db"
    with SqliteDecisionLog(path) as first:
        first.append(make_decision(1))
        assert first.journal_mode == "wal"
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with SqliteDecisionLog(str(path)) as again:
        assert _ids(again.query()) == ["d-000001"]


def test_a_closed_log_says_so(log: SqliteDecisionLog) -> None:
    log.close()
    with pytest.raises(DecisionLogError, match="is closed"):
        log.count()


def test_folder_that_cannot_be_created_is_a_readable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(DecisionLogError, match=r"cannot create the folder of the decision log .*not-a-folder"):
        SqliteDecisionLog(blocker / "decisions.db")


def test_a_folder_in_place_of_the_file_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(DecisionLogError, match=r"decision log at .*: unable to open database file"):
        SqliteDecisionLog(tmp_path)


def test_a_file_that_is_not_a_database_is_a_readable_error(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(DecisionLogError, match=r"decisions.db: file is not a database"):
        SqliteDecisionLog(path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA user_version = 99")
    with pytest.raises(DecisionLogError, match="schema version 99"):
        SqliteDecisionLog(path)


def test_in_memory_is_refused() -> None:
    with pytest.raises(DecisionLogError, match="needs a file"):
        SqliteDecisionLog(":memory:")


V1_SCHEMA = """
CREATE TABLE decisions (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, decided_at TEXT NOT NULL, evaluated_at TEXT,
    slo TEXT NOT NULL, stage TEXT, service TEXT, revision TEXT, pipeline TEXT, rollout TEXT,
    outcome TEXT NOT NULL, policy_version TEXT NOT NULL, record TEXT NOT NULL
);
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'the decision log is append-only: recorded decisions cannot be changed'); END;
PRAGMA user_version = 1;
"""


def test_a_version_1_log_is_migrated_and_its_replays_stay_out_of_deployment_history(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    live, replay = make_decision(1, revision="r1"), make_decision(2, revision="r2")
    replay_record = replay.to_dict()
    replay_record["request"]["at"] = (T0 - timedelta(days=3)).isoformat()
    with sqlite3.connect(path) as old:
        old.executescript(V1_SCHEMA)
        for number, decision, record in ((1, live, live.to_dict()), (2, replay, replay_record)):
            old.execute(
                "INSERT INTO decisions (id, decided_at, evaluated_at, slo, stage, service, revision, pipeline, "
                "rollout, outcome, policy_version, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    decision.id,
                    (T0 + timedelta(minutes=number)).isoformat(timespec="microseconds"),
                    T0.isoformat(timespec="microseconds"),
                    decision.slo,
                    decision.stage,
                    "checkout",
                    decision.request.revision,
                    "build-7",
                    None,
                    "pass",
                    "v",
                    json.dumps(record),
                ),
            )
    with SqliteDecisionLog(path) as log:
        assert [span.release for span in log.releases("checkout", T0 - timedelta(days=1))] == ["r1"]
        assert log.count() == 2
        report = log.verify()  # migrated through version 2 to the chain of version 3
        assert (report.intact, report.records) == (True, 2)
    with sqlite3.connect(path) as reopened:
        assert reopened.execute("PRAGMA user_version").fetchone()[0] == 3
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            reopened.execute("UPDATE decisions SET outcome = 'fail'")
