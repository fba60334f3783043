"""The decision log's hash chain: a real SQLite file, tampered with as someone holding the file would.

The attacker drops the append-only triggers with the `sqlite3` module, edits, deletes or inserts, and puts
the triggers back: `PRAGMA integrity_check` still says ok and `sloplane decisions` lists the forged
history. `SqliteDecisionLog.verify` and `sloplane decisions verify` must name the first record that no
longer holds; `serve` must show it in `/readyz` and `/metrics` and go on gating.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sloplane.core.endpoints import GATE_PATH
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.model import ChainReport, Outcome
from sloplane.evaluator.storage import chain
from sloplane.evaluator.storage.chain import CHANGED, GENESIS, record_hash
from sloplane.evaluator.storage.chain_audit import ChainAudit, ChainStatus
from sloplane.evaluator.storage.decisions import (
    CHAIN_ROW,
    DecisionLogError,
    SqliteDecisionLog,
    record_columns,
)
from tests.conftest import run_cli
from tests.evaluator_data import T0, make_decision
from tests.served_evaluator import build

KEY = b"a key the file's writers do not hold"


def _fill(path: Path, count: int = 5, *, key: bytes | None = None) -> None:
    """Decisions d-000001.. one minute apart; d-000003 failed (the one an attacker wants to pass)."""
    with SqliteDecisionLog(path, chain_key=key) as log:
        for number in range(1, count + 1):
            log.append(make_decision(number, outcome=Outcome.FAIL if number == 3 else Outcome.PASS))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    found = tmp_path / "decisions.db"
    _fill(found)
    return found


def _verify(path: Path, key: bytes | None = None) -> ChainReport:
    with SqliteDecisionLog(path, chain_key=key) as log:
        return log.verify()


def _rows(path: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(f"SELECT {', '.join(CHAIN_ROW)} FROM decisions ORDER BY seq")]


_INSERT = f"INSERT INTO decisions ({', '.join(CHAIN_ROW)}) VALUES ({', '.join(':' + c for c in CHAIN_ROW)})"


def _as_attacker(path: Path, *steps: tuple[str, dict[str, Any] | tuple[Any, ...]]) -> None:
    """Drop the append-only triggers, run the statements, re-create the triggers: all a file's writer needs."""
    with closing(sqlite3.connect(path)) as db:
        triggers = [sql for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'")]
        assert len(triggers) == 2
        db.execute("DROP TRIGGER decisions_no_update")
        db.execute("DROP TRIGGER decisions_no_delete")
        for statement, values in steps:
            db.execute(statement, values)
        for sql in triggers:
            db.execute(sql)
        db.commit()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _rehash_from(path: Path, position: int, key: bytes | None = None) -> None:
    """Recompute the chain from the `position`-th row (1-based) to the end, as an attacker without the key
    can (plain SHA-256)."""
    rows = _rows(path)
    previous = rows[position - 2]["hash"] if position > 1 else GENESIS
    steps: list[tuple[str, dict[str, Any] | tuple[Any, ...]]] = []
    for row in rows[position - 1 :]:
        digest = record_hash(row, previous, key)
        steps.append(("UPDATE decisions SET prev_hash = ?, hash = ? WHERE seq = ?", (previous, digest, row["seq"])))
        previous = digest
    _as_attacker(path, *steps)


def _broken(report: ChainReport) -> tuple[int, str, str]:
    assert report.broken is not None, report
    return report.broken.seq, report.broken.decision_id, report.broken.reason


# --- appending ----------------------------------------------------------------------------------------


def test_an_untouched_log_is_intact_and_its_rows_link_up(path: Path) -> None:
    report = _verify(path)
    rows = _rows(path)
    assert (report.intact, report.records, report.head) == (True, 5, rows[-1]["hash"])
    assert [row["seq"] for row in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == GENESIS
    assert [row["prev_hash"] for row in rows[1:]] == [row["hash"] for row in rows[:-1]]


def test_an_empty_log_is_intact(tmp_path: Path) -> None:
    assert _verify(tmp_path / "empty.db") == ChainReport(0, GENESIS, None)


def test_two_writers_on_one_file_make_one_chain(tmp_path: Path) -> None:
    """Two log objects hold separate locks, as `serve` and `sloplane gate` in two processes do: only the
    file's write lock orders them, and each reads the last row inside its own write transaction."""
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as first, SqliteDecisionLog(path) as second:
        logs = (first, second)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: logs[n % 2].append(make_decision(n, decided_at=T0)), range(200)))
        report = first.verify()
    assert (report.intact, report.records) == (True, 200)
    assert [row["seq"] for row in _rows(path)] == list(range(1, 201))


def test_a_refused_append_leaves_the_chain_as_it_was(path: Path) -> None:
    with SqliteDecisionLog(path) as log:
        with pytest.raises(DecisionLogError, match="already in the decision log"):
            log.append(make_decision(2))
        log.append(make_decision(6))
        report = log.verify()
    assert (report.intact, report.records) == (True, 6)


def test_the_walk_reads_in_batches_in_seq_order(path: Path) -> None:
    with SqliteDecisionLog(path) as log:
        walked = [row["seq"] for row in log.chain_rows(batch_size=2)]
        assert walked == [1, 2, 3, 4, 5]
        assert [row["seq"] for row in log.chain_rows(1, 3, batch_size=1)] == [2, 3]
        with pytest.raises(ValueError, match="at least 1"):
            list(log.chain_rows(batch_size=0))


# --- tampering ----------------------------------------------------------------------------------------

_FAIL, _PASS = '"decision":"fail"', '"decision":"pass"'


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE decisions SET outcome = 'pass', record = replace(record, '{_FAIL}', '{_PASS}') WHERE seq = 3",
        "UPDATE decisions SET outcome = 'pass' WHERE seq = 3",
        f"UPDATE decisions SET record = replace(record, '{_FAIL}', '{_PASS}') WHERE seq = 3",
    ],
    ids=["column-and-record", "column-only", "record-only"],
)
def test_a_fail_turned_into_a_pass_is_named(path: Path, statement: str) -> None:
    before = _rows(path)[2]
    _as_attacker(path, (statement, ()))
    assert _rows(path)[2] != before
    assert _broken(_verify(path)) == (3, "d-000003", CHANGED)


def test_a_deleted_record_names_the_one_after_it(path: Path) -> None:
    _as_attacker(path, ("DELETE FROM decisions WHERE seq = 3", ()))
    report = _verify(path)
    seq, decision_id, reason = _broken(report)
    assert (seq, decision_id) == (4, "d-000004")
    assert reason == "does not follow record 2: a record was inserted or deleted here"
    assert report.records == 2


def test_a_deleted_first_record_names_the_new_first(path: Path) -> None:
    _as_attacker(path, ("DELETE FROM decisions WHERE seq = 1", ()))
    assert _broken(_verify(path))[:2] == (2, "d-000002")


def test_a_deleted_record_with_the_tail_recomputed_is_named_by_its_gap(path: Path) -> None:
    _as_attacker(path, ("DELETE FROM decisions WHERE seq = 3", ()))
    _rehash_from(path, 3)  # the rows now third and fourth (seqs 4 and 5), chained to row 2
    seq, _, reason = _broken(_verify(path))
    assert seq == 4
    assert "comes after record 2 but is numbered 4: the records between were deleted" in reason


def _forged(number: int, seq: int, prev_hash: str, *, decided_minutes: float | None = None) -> dict[str, Any]:
    """A made-up decision's row with a made-up hash."""
    when = None if decided_minutes is None else T0 + timedelta(minutes=decided_minutes)
    row = record_columns(make_decision(number, decided_at=when).to_dict())
    return {**row, "seq": seq, "prev_hash": prev_hash, "hash": "f" * 64}


def test_a_record_inserted_at_the_end_with_a_made_up_hash_is_named(path: Path) -> None:
    head = _rows(path)[-1]["hash"]
    _as_attacker(path, (_INSERT, _forged(90, 6, head)))
    assert _broken(_verify(path)) == (6, "d-000090", CHANGED)


def _shift_up_from(seq: int) -> list[tuple[str, dict[str, Any] | tuple[Any, ...]]]:
    """Make room at `seq`: every later row one further (through negative seqs, as the key is unique)."""
    return [
        ("UPDATE decisions SET seq = -(seq + 1) WHERE seq >= ?", (seq,)),
        ("UPDATE decisions SET seq = -seq WHERE seq < 0", ()),
    ]


def test_a_record_inserted_in_the_middle_is_named(path: Path) -> None:
    rows = _rows(path)
    _as_attacker(path, *_shift_up_from(3), (_INSERT, _forged(90, 3, rows[1]["hash"], decided_minutes=2.5)))
    assert _broken(_verify(path)) == (3, "d-000090", CHANGED)


def test_a_record_inserted_in_the_middle_with_its_hash_recomputed_names_the_next(path: Path) -> None:
    rows = _rows(path)
    forged = _forged(90, 3, rows[1]["hash"], decided_minutes=2.5)
    forged["hash"] = record_hash(forged, rows[1]["hash"])
    _as_attacker(path, *_shift_up_from(3), (_INSERT, forged))
    assert _broken(_verify(path)) == (4, "d-000003", "does not follow record 3: a record was inserted or deleted here")


def test_a_backdated_record_with_a_correct_plain_hash_is_named_as_backdated(path: Path) -> None:
    """Without a key anyone can compute a hash: the record's time must follow its predecessor's as well."""
    head = _rows(path)[-1]["hash"]
    forged = _forged(90, 6, head, decided_minutes=5 - 3 * 60)
    forged["hash"] = record_hash(forged, head)
    _as_attacker(path, (_INSERT, forged))
    seq, decision_id, reason = _broken(_verify(path))
    assert (seq, decision_id) == (6, "d-000090")
    assert reason.startswith("is backdated: decided at 2026-11-26T09:05:00.000000+00:00")


def test_a_row_without_a_hash_is_named_as_written_outside_sloplane(path: Path) -> None:
    forged = {**_forged(90, 6, GENESIS), "prev_hash": None, "hash": None}
    _as_attacker(path, (_INSERT, forged))
    assert _broken(_verify(path)) == (6, "d-000090", "has no hash: it was written outside sloplane")


# --- the chain key ------------------------------------------------------------------------------------


def test_with_a_key_a_tail_recomputed_without_it_is_named(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    _fill(path, key=KEY)
    assert _verify(path, KEY).intact
    _as_attacker(path, (f"UPDATE decisions SET record = replace(record, '{_FAIL}', '{_PASS}') WHERE seq = 3", ()))
    _rehash_from(path, 3)  # every link holds again, under plain SHA-256
    assert _broken(_verify(path, KEY)) == (3, "d-000003", CHANGED)


def test_without_a_key_a_recomputed_tail_holds_and_only_its_head_differs(path: Path) -> None:
    """Why the key (and the export's copy of each hash) matter: the log alone cannot tell."""
    before = _verify(path)
    _as_attacker(path, (f"UPDATE decisions SET record = replace(record, '{_FAIL}', '{_PASS}') WHERE seq = 3", ()))
    _rehash_from(path, 3)
    after = _verify(path)
    assert (after.intact, after.records) == (True, 5)
    assert after.head != before.head


def test_a_keyed_log_read_without_its_key_breaks_at_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    _fill(path, key=KEY)
    assert _broken(_verify(path)) == (1, "d-000001", CHANGED)


def test_the_key_is_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "decisions.db"
    monkeypatch.setenv("SLOPLANE_CHAIN_KEY", KEY.decode())
    _fill(path)
    assert _verify(path).intact
    assert _verify(path, KEY).intact
    monkeypatch.delenv("SLOPLANE_CHAIN_KEY")
    assert not _verify(path).intact


# --- verify never crashes on what it reads -----------------------------------------------------------


def test_rows_that_are_not_rows_are_findings_not_crashes() -> None:
    first = {**record_columns(make_decision(1).to_dict()), "seq": 1, "prev_hash": GENESIS}
    first["hash"] = record_hash(first, GENESIS)
    garbage = {**first, "seq": "two", "prev_hash": first["hash"], "decided_at": "yesterday"}
    assert _broken(chain.verify([first, garbage]))[0] == 2
    assert _broken(chain.verify([{}]))[:2] == (1, "None")
    undated = {**first, "decided_at": "yesterday"}
    undated["hash"] = record_hash(undated, GENESIS)
    assert _broken(chain.verify([undated]))[2].startswith("has a decision time that is not a time")


# --- migration ----------------------------------------------------------------------------------------

V2_SCHEMA = """
CREATE TABLE decisions (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, decided_at TEXT NOT NULL, evaluated_at TEXT,
    slo TEXT NOT NULL, stage TEXT, service TEXT, revision TEXT, pipeline TEXT, rollout TEXT,
    outcome TEXT NOT NULL, policy_version TEXT NOT NULL, record TEXT NOT NULL, requested_at TEXT
);
CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'the decision log is append-only: recorded decisions cannot be changed'); END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'the decision log is append-only: recorded decisions cannot be deleted'); END;
PRAGMA user_version = 2;
"""


def _version_2_log(path: Path, count: int) -> None:
    """A log as sloplane wrote it before the chain: the same columns less `prev_hash` and `hash`."""
    columns = [column for column in chain.CHAINED_COLUMNS if column != "seq"]
    insert = f"INSERT INTO decisions ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
    with closing(sqlite3.connect(path)) as old:
        old.executescript(V2_SCHEMA)
        for number in range(1, count + 1):
            old.execute(insert, record_columns(make_decision(number).to_dict()))
        old.commit()


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "keyed"])
def test_a_version_2_log_is_chained_as_found_and_appends_continue_the_chain(tmp_path: Path, key: bytes | None) -> None:
    path = tmp_path / "decisions.db"
    _version_2_log(path, 1200)  # more than one batch of the migration
    with SqliteDecisionLog(path, chain_key=key) as log:
        assert (log.verify().intact, log.count()) == (True, 1200)
        log.append(make_decision(1201))
        report = log.verify()
    assert (report.intact, report.records) == (True, 1201)
    with closing(sqlite3.connect(path)) as reopened:
        assert reopened.execute("PRAGMA user_version").fetchone()[0] == 3
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            reopened.execute("UPDATE decisions SET outcome = 'fail' WHERE seq = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            reopened.execute("DELETE FROM decisions WHERE seq = 1")


def test_a_migrated_log_is_tamper_evident_from_then_on(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    _version_2_log(path, 4)
    _verify(path)  # the migration runs on open
    _as_attacker(path, ("UPDATE decisions SET outcome = 'fail' WHERE seq = 2", ()))
    assert _broken(_verify(path)) == (2, "d-000002", CHANGED)


# --- the command --------------------------------------------------------------------------------------


def test_the_command_says_intact_with_the_count_and_head(path: Path) -> None:
    result = run_cli("decisions", "verify", "--db", path)
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == f"intact: 5 records, head {_rows(path)[-1]['hash']}"


def test_the_command_names_the_first_broken_record_and_exits_1(path: Path) -> None:
    _as_attacker(path, ("UPDATE decisions SET outcome = 'pass' WHERE seq = 3", ()))
    result = run_cli("decisions", "--db", path, "verify")  # the group's --db serves verify too
    assert result.code == 1
    assert f"broken: record 3 (d-000003) {CHANGED}" in result.stdout
    assert "2 records before it verified" in result.stdout
    assert "SLOPLANE_CHAIN_KEY" in result.stderr  # a hash mismatch may be a missing key: said on stderr
    json_result = run_cli("decisions", "verify", "--db", path, "--format", "json")
    assert json_result.code == 1
    assert '"firstBroken": {\n    "seq": 3,\n    "id": "d-000003"' in json_result.stdout


def test_the_command_verifies_with_the_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "decisions.db"
    _fill(path, key=KEY)
    assert run_cli("decisions", "verify", "--db", path).code == 1
    monkeypatch.setenv("SLOPLANE_CHAIN_KEY", KEY.decode())
    assert run_cli("decisions", "verify", "--db", path).code == 0


@pytest.mark.parametrize("what", ["missing", "not-a-database", "folder"])
def test_a_log_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path, what: str) -> None:
    target = tmp_path / "decisions.db"
    if what == "not-a-database":
        target.write_bytes(b"not SQLite at all" * 100)
    elif what == "folder":
        target.mkdir()
    result = run_cli("decisions", "verify", "--db", target)
    assert result.code == 2
    assert result.stderr.startswith("sloplane decisions verify: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_the_listing_still_works_as_before(path: Path) -> None:
    result = run_cli("decisions", "--db", path, "--outcome", "fail", "--format", "json")
    assert result.code == 0, result.stderr
    assert '"id": "d-000003"' in result.stdout
    assert run_cli("decisions", "--db", path.with_name("none.db")).code == 1


# --- serve --------------------------------------------------------------------------------------------


class _SlowLog:
    """A log whose walk waits until released, or fails: what `serve` shows meanwhile."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.release = threading.Event()
        self.failure = failure

    def verify(self) -> ChainReport:
        self.release.wait(30)
        if self.failure is not None:
            raise self.failure
        return ChainReport(7, "ab" * 32, None)


def _settled(audit: ChainAudit) -> None:
    deadline = time.monotonic() + 30
    while audit.state().status is ChainStatus.VERIFYING:
        assert time.monotonic() < deadline, "the chain was still being verified after 30 s"
        time.sleep(0.01)


def test_the_audit_says_verifying_until_the_walk_ends() -> None:
    slow = _SlowLog()
    audit = ChainAudit(slow)  # type: ignore[arg-type]
    metrics = EvaluatorMetrics()
    metrics.watch_chain(audit.state)
    audit.start()
    assert audit.state().to_dict() == {"state": "verifying"}
    verifying = metrics.render()[0].decode()
    assert _metric(verifying, "sloplane_decision_chain_verifying") == 1.0
    assert _metric(verifying, "sloplane_decision_chain_intact") is None  # not known yet: absent, not 0
    slow.release.set()
    _settled(audit)
    assert _metric(metrics.render()[0].decode(), "sloplane_decision_chain_intact") == 1.0
    assert audit.state().to_dict() | {"seconds": 0} == {
        "state": "intact",
        "records": 7,
        "head": "ab" * 32,
        "seconds": 0,
    }


def test_an_unreadable_log_is_a_failed_audit_not_a_crash() -> None:
    slow = _SlowLog(DecisionLogError("cannot read the decision log at /x: disk I/O error"))
    slow.release.set()
    audit = ChainAudit(slow)  # type: ignore[arg-type]
    audit.start()
    _settled(audit)
    state = audit.state().to_dict()
    assert (state["state"], state["reason"]) == ("failed", "cannot read the decision log at /x: disk I/O error")


@contextmanager
def _serve(folder: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """`serve`'s service over the log in `folder`, started, once the chain has been verified in the background;
    a token of each scope, by scope."""
    service, tokens = build(folder, "http://127.0.0.1:9")
    assert service.chain is not None
    service.start()
    try:
        _settled(service.chain)
        with TestClient(service.app) as client:
            yield client, tokens
    finally:
        service.close()


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_serve_shows_an_intact_chain_in_readyz_and_metrics(tmp_path: Path) -> None:
    _fill(tmp_path / "decisions.db")
    with _serve(tmp_path) as (client, _):
        answer = client.get("/readyz")
        assert answer.status_code == 200
        found = answer.json()["decisionChain"]
        assert (found["state"], found["records"], found["head"]) == (
            "intact",
            5,
            _rows(tmp_path / "decisions.db")[-1]["hash"],
        )
        metrics = client.get("/metrics").text
        assert _metric(metrics, "sloplane_decision_chain_intact") == 1.0
        assert _metric(metrics, "sloplane_decision_chain_records") == 5.0
        assert _metric(metrics, "sloplane_decision_chain_verifying") == 0.0


def test_serve_shows_a_broken_chain_and_stays_ready(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    _fill(path)
    _as_attacker(path, ("UPDATE decisions SET outcome = 'pass' WHERE seq = 3", ()))
    with _serve(tmp_path) as (client, tokens):
        answer = client.get("/readyz")
        assert (answer.status_code, answer.json()["status"]) == (200, "ready")
        found = answer.json()["decisionChain"]
        assert found["state"] == "broken"
        assert found["firstBroken"] == {"seq": 3, "id": "d-000003", "reason": CHANGED}
        metrics = client.get("/metrics").text
        assert _metric(metrics, "sloplane_decision_chain_intact") == 0.0
        assert _metric(metrics, "sloplane_decision_chain_records") == 2.0
        gate = client.post(GATE_PATH, json={"slo": "checkout-availability"}, headers=_bearer(tokens["gate"]))
        assert gate.status_code == 200  # gates go on deciding (here by policy: Prometheus is not there)
    assert [row["seq"] for row in _rows(path)][-1] == 6  # and recording, chained on


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_command_verifies_without_writing_to_the_file(path: Path) -> None:
    """An auditor's evidence copy: `verify` opens it read-only, so the file is byte for byte what was handed over."""
    before = path.read_bytes()
    assert run_cli("decisions", "verify", "--db", path).code == 0
    _as_attacker(path, ("UPDATE decisions SET outcome = 'pass' WHERE seq = 3", ()))
    tampered = path.read_bytes()
    assert run_cli("decisions", "verify", "--db", path).code == 1
    assert path.read_bytes() == tampered != before
    assert sorted(child.name for child in path.parent.iterdir()) == ["decisions.db"], "nothing created beside it"


def test_the_command_does_not_migrate_a_log_from_before_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    _version_2_log(path, 3)
    result = run_cli("decisions", "verify", "--db", path)
    assert result.code == 2
    assert "schema version 2, from before the hash chain" in result.stderr
    with closing(sqlite3.connect(path)) as untouched:
        assert untouched.execute("PRAGMA user_version").fetchone()[0] == 2
        assert untouched.execute("SELECT count(*) FROM decisions").fetchone()[0] == 3
