"""The PostgreSQL decision log's integrity: one contiguous chain under concurrent writers, history the
evaluator's role cannot rewrite, and every rewrite by the owner found by `verify`, naming the record."""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg.rows import dict_row

from sloplane.evaluator.model import Decision
from sloplane.evaluator.storage import chain
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from sloplane.evaluator.storage.postgres_schema import LATEST, WRITER_ROLE
from tests.evaluator_data import T0, make_decision

if TYPE_CHECKING:
    from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)


def _owner(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(url, autocommit=True)


def _seqs_and_ids(url: str) -> tuple[list[int], list[str]]:
    with _owner(url) as connection:
        rows = connection.execute("SELECT seq, id FROM decisions ORDER BY seq").fetchall()
    return [int(seq) for seq, _ in rows], [str(decision_id) for _, decision_id in rows]


def _now(number: int) -> Decision:
    """Decision `number`, decided at one instant: appended in any order, none is backdated."""
    return make_decision(number, decided_at=T0)


def _append_range(url: str, first: int, count: int, start: Any) -> None:
    """A separate process: open the log (migrating it, if it gets there first) and append with four threads."""
    start.wait(timeout=60)
    with PostgresDecisionLog(url, pool_size=4) as log, ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda number: log.append(_now(number)), range(first, first + count)))


def test_two_processes_migrate_and_append_at_once_into_one_contiguous_chain(postgres_url: str) -> None:
    """Both open a brand-new database at the same instant (one migrates, the other waits for its lock), then
    append 200 decisions each from four threads: seq 1..400, every id once, one intact chain."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    processes = [
        context.Process(target=_append_range, args=(postgres_url, first, 200, start)) for first in (1_000, 2_000)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    seqs, ids = _seqs_and_ids(postgres_url)
    assert seqs == list(range(1, 401))
    assert sorted(ids) == sorted({f"d-{n:06d}" for n in (*range(1_000, 1_200), *range(2_000, 2_200))})
    with _owner(postgres_url) as connection:
        versions = connection.execute("SELECT store, version FROM schema_migrations ORDER BY version").fetchall()
    assert versions == [("decisions", version) for version in range(1, LATEST + 1)]
    with PostgresDecisionLog(postgres_url) as log:
        report = log.verify()
    assert (report.intact, report.records) == (True, 400)


def test_threads_of_two_replicas_share_one_sequence(postgres_url: str) -> None:
    with PostgresDecisionLog(postgres_url) as first, PostgresDecisionLog(postgres_url) as second:
        logs = (first, second)
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda number: logs[number % 2].append(_now(number)), range(300)))
        assert first.verify() == second.verify()
        assert first.verify().records == 300
    assert _seqs_and_ids(postgres_url)[0] == list(range(1, 301))


def test_verify_streams_a_long_log(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """More rows than one cursor batch: the walk fetches batch after batch and still checks every link."""
    monkeypatch.setattr("sloplane.evaluator.storage.postgres.VERIFY_BATCH", 7)
    with PostgresDecisionLog(postgres_url) as log:
        for number in range(1, 51):
            log.append(make_decision(number))
        report = log.verify()
    assert (report.intact, report.records) == (True, 50)


# -- what the database refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("TRUNCATE decisions", "decision log is append-only: recorded decisions cannot be truncated"),
        ("UPDATE decision_chain_head SET seq = 0", "chain head only moves forward"),
        ("UPDATE decision_chain_head SET seq = seq + 2", "chain head only moves forward"),
        ("DELETE FROM decision_chain_head", "chain head only moves forward"),
        ("TRUNCATE decision_chain_head", "chain head only moves forward"),
    ],
)
def test_the_owner_cannot_truncate_nor_move_the_head_back(postgres_url: str, statement: str, message: str) -> None:
    with PostgresDecisionLog(postgres_url) as log:
        log.append(make_decision(1))
        with _owner(postgres_url) as owner, pytest.raises(psycopg.errors.RestrictViolation, match=message):
            owner.execute(statement)
        assert (log.count(), log.verify().intact) == (1, True)


def test_the_writer_role_has_no_update_delete_or_truncate(postgres_url: str) -> None:
    PostgresDecisionLog(postgres_url).close()
    checks = [
        (table, privilege)
        for table in ("decisions", "decision_chain_head", "write_probe", "schema_migrations")
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
    ]
    with _owner(postgres_url) as owner:
        granted = {
            (table, privilege)
            for table, privilege in checks
            if owner.execute("SELECT has_table_privilege(%s, %s, %s)", (WRITER_ROLE, table, privilege)).fetchone()
            == (True,)
        }
        login = owner.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (WRITER_ROLE,)).fetchone()
    assert granted == {
        ("decisions", "SELECT"),
        ("decisions", "INSERT"),
        ("decision_chain_head", "SELECT"),
        ("decision_chain_head", "UPDATE"),
        ("write_probe", "SELECT"),
        ("write_probe", "INSERT"),
        ("write_probe", "UPDATE"),
        ("schema_migrations", "SELECT"),
    }
    assert login == (False,)


def test_an_evaluator_logging_in_with_only_the_writer_role_records_but_cannot_rewrite(
    postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    """The operator's setup: the owner migrates once; the evaluator's login role is granted `sloplane_writer`.

    It starts (nothing left to migrate), appends, verifies; and with the triggers dropped by the owner it
    still cannot UPDATE, DELETE or TRUNCATE, nor move the head back: it lacks the privilege, not only a trigger.
    """
    owner_url = postgres_cluster.url(postgres_database)
    PostgresDecisionLog(owner_url).close()
    evaluator = f"evaluator_{uuid.uuid4().hex[:8]}"
    postgres_cluster.execute(f"CREATE ROLE {evaluator} LOGIN; GRANT {WRITER_ROLE} TO {evaluator}")
    evaluator_url = postgres_cluster.url(postgres_database, user=evaluator)
    with PostgresDecisionLog(evaluator_url) as log:
        log.append(make_decision(1))
        log.append(make_decision(2))
        log.check_writable()
        assert (log.count(), log.verify().intact) == (2, True)
    postgres_cluster.execute(
        "DROP TRIGGER decisions_no_update_or_delete ON decisions; DROP TRIGGER decisions_no_truncate ON decisions;"
        "DROP TRIGGER decision_chain_head_forward ON decision_chain_head",
        postgres_database,
    )
    for statement in (
        "UPDATE decisions SET outcome = 'fail'",
        "DELETE FROM decisions",
        "TRUNCATE decisions",
        "UPDATE decision_chain_head SET seq = 0",  # UPDATE is granted on the head, and the trigger is gone...
    ):
        with _owner(evaluator_url) as connection:
            if statement.startswith("UPDATE decision_chain_head"):
                connection.execute(statement)  # ...so this one passes: the chain is what finds it
                continue
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                connection.execute(statement)
    assert _seqs_and_ids(owner_url)[0] == [1, 2]
    with PostgresDecisionLog(owner_url) as log:
        broken = log.verify().broken
    assert broken is not None
    assert (broken.seq, broken.decision_id) == (1, "d-000001")
    assert "comes after the end the chain head records (record 0)" in broken.reason


# -- what verify finds -----------------------------------------------------------------------------------


def _five(url: str, key: bytes | None = None) -> PostgresDecisionLog:
    log = PostgresDecisionLog(url, chain_key=key)
    for number in range(1, 6):
        log.append(make_decision(number))
    assert log.verify().intact
    return log


def _row(url: str, seq: int) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        row = connection.execute("SELECT * FROM decisions WHERE seq = %s", (seq,)).fetchone()
    assert row is not None
    return row


_INSERT = """
INSERT INTO decisions (seq, id, decided_at, evaluated_at, slo, stage, service, revision, pipeline, rollout, outcome,
                       policy_version, record, requested_at, prev_hash, hash)
VALUES (%(seq)s, %(id)s, %(decided_at)s, %(evaluated_at)s, %(slo)s, %(stage)s, %(service)s, %(revision)s,
        %(pipeline)s, %(rollout)s, %(outcome)s, %(policy_version)s, %(record)s, %(requested_at)s, %(prev_hash)s,
        %(hash)s)
"""


def _hashable(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its times as the log hashes them (fixed-width UTC text)."""
    return {
        column: value.isoformat(timespec="microseconds") if hasattr(value, "isoformat") else value
        for column, value in row.items()
    }


def _broken(log: PostgresDecisionLog) -> chain.ChainBreak:
    report = log.verify()
    assert report.broken is not None, "the tampering went unnoticed"
    return report.broken


def test_an_edited_outcome_is_found(postgres_url: str) -> None:
    """The owner lifts the trigger, turns a `fail` into `pass` in the column and the record, and puts it back."""
    with _five(postgres_url) as log, _owner(postgres_url) as owner:
        owner.execute(
            "ALTER TABLE decisions DISABLE TRIGGER USER;"
            "UPDATE decisions SET outcome = 'fail', record = replace(record, '\"decision\":\"pass\"', "
            '\'"decision":"fail"\') WHERE seq = 3;'
            "ALTER TABLE decisions ENABLE TRIGGER USER"
        )
        assert log.query(outcome="fail")[0]["id"] == "d-000003"
        broken = _broken(log)
    assert (broken.seq, broken.decision_id) == (3, "d-000003")
    assert broken.reason == chain.CHANGED


def test_a_deleted_record_is_found(postgres_url: str) -> None:
    with _five(postgres_url) as log, _owner(postgres_url) as owner:
        owner.execute(
            "ALTER TABLE decisions DISABLE TRIGGER USER; DELETE FROM decisions WHERE seq = 2;"
            "ALTER TABLE decisions ENABLE TRIGGER USER"
        )
        broken = _broken(log)
    assert (broken.seq, broken.decision_id) == (3, "d-000003")
    assert "deleted" in broken.reason


def test_the_newest_records_deleted_are_found_by_the_chain_head(postgres_url: str) -> None:
    with _five(postgres_url) as log, _owner(postgres_url) as owner:
        owner.execute(
            "ALTER TABLE decisions DISABLE TRIGGER USER; DELETE FROM decisions WHERE seq >= 4;"
            "ALTER TABLE decisions ENABLE TRIGGER USER"
        )
        broken = _broken(log)
    assert (broken.seq, broken.decision_id) == (4, "deleted")
    assert "the chain head says 5 records were appended, the log holds 3" in broken.reason


def test_a_record_inserted_with_a_made_up_hash_is_found(postgres_url: str) -> None:
    with _five(postgres_url) as log, _owner(postgres_url) as owner:
        forged = {**_row(postgres_url, 5), "seq": 6, "id": "forged", "prev_hash": "f" * 64, "hash": "e" * 64}
        owner.execute(_INSERT, forged)
        broken = _broken(log)
    assert (broken.seq, broken.decision_id) == (6, "forged")
    assert "inserted" in broken.reason


def test_a_backdated_record_with_a_recomputed_hash_is_found(postgres_url: str) -> None:
    """Without a key, a forger can compute a valid plain hash: the record still cannot claim an earlier time."""
    with _five(postgres_url) as log, _owner(postgres_url) as owner:
        last = _row(postgres_url, 5)
        forged = _hashable({**last, "seq": 6, "id": "backdated", "decided_at": last["decided_at"] - timedelta(hours=3)})
        forged["prev_hash"] = last["hash"]
        forged["hash"] = chain.record_hash(forged, last["hash"])
        owner.execute(_INSERT, forged)
        broken = _broken(log)
    assert (broken.seq, broken.decision_id) == (6, "backdated")
    assert "is backdated" in broken.reason


def test_a_record_appended_by_hand_past_the_chain_head_is_found(postgres_url: str) -> None:
    """Correctly linked and hashed, at the right time, but not through the head: the head says where the log ends."""
    with _five(postgres_url) as log, _owner(postgres_url) as owner:
        last = _row(postgres_url, 5)
        forged = _hashable({**last, "seq": 6, "id": "by-hand", "decided_at": last["decided_at"] + timedelta(minutes=1)})
        forged["prev_hash"] = last["hash"]
        forged["hash"] = chain.record_hash(forged, last["hash"])
        owner.execute(_INSERT, forged)
        broken = _broken(log)
    assert (broken.seq, broken.decision_id) == (6, "by-hand")
    assert "inserted by hand" in broken.reason


def test_with_a_chain_key_a_recomputed_plain_hash_is_found(postgres_url: str) -> None:
    key = b"a key the database's owner does not hold"
    with _five(postgres_url, key) as log, _owner(postgres_url) as owner:
        first = _hashable(_row(postgres_url, 1))
        assert first["hash"] != chain.record_hash(first, chain.GENESIS), "keyed: not the plain hash"
        assert first["hash"] == chain.record_hash(first, chain.GENESIS, key)
        owner.execute(
            "ALTER TABLE decisions DISABLE TRIGGER USER;"
            f"UPDATE decisions SET outcome = 'fail', hash = '{'0' * 64}' WHERE seq = 5;"
            "ALTER TABLE decisions ENABLE TRIGGER USER"
        )
        broken = _broken(log)
    assert (broken.seq, broken.decision_id) == (5, "d-000005")
    with PostgresDecisionLog(postgres_url) as keyless:
        assert _broken(keyless).seq == 1, "read without the key, every keyed hash disagrees"


def test_the_chain_key_comes_from_the_argument_else_the_environment(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOPLANE_CHAIN_KEY", "from-env")
    with PostgresDecisionLog(postgres_url) as log:
        log.append(make_decision(1))
    first = _hashable(_row(postgres_url, 1))
    assert first["hash"] == chain.record_hash(first, chain.GENESIS, b"from-env")
    with PostgresDecisionLog(postgres_url, chain_key=b"from-env") as given:
        assert given.verify().intact
    monkeypatch.delenv("SLOPLANE_CHAIN_KEY")
    with PostgresDecisionLog(postgres_url) as keyless:
        assert _broken(keyless).reason == chain.CHANGED
