"""Running the PostgreSQL decision log: migrations, credentials that never show, a server that goes and comes back."""

from __future__ import annotations

import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from sloplane.evaluator.storage.decisions import DecisionLogError, SqliteDecisionLog
from sloplane.evaluator.storage.open import open_decision_log
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from sloplane.evaluator.storage.postgres_conninfo import is_postgres_url, redacted
from sloplane.evaluator.storage.postgres_pool import failing_fast
from sloplane.evaluator.storage.postgres_schema import LATEST, WRITER_ROLE
from tests.evaluator_data import T0, make_decision
from tests.postgres import tcp_login_url, writer_login

if TYPE_CHECKING:
    from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)

SECRET = "Pw-9f3k!x@y:z"
"""A password with the characters a URL must escape: it must not appear in any spelling."""


def _spellings(secret: str) -> list[str]:
    return [secret, quote(secret, safe="")]


def _assert_secret_free(error: BaseException, *texts: str, secret: str = SECRET) -> None:
    shown = [str(error), repr(error), "".join(traceback.format_exception(error)), *texts]
    for spelling in _spellings(secret):
        assert all(spelling not in text for text in shown), f"{spelling!r} shown in {shown}"


# -- migrations ------------------------------------------------------------------------------------------


def test_migrations_run_once_and_a_second_start_changes_nothing(
    postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    url = postgres_cluster.url(postgres_database)
    PostgresDecisionLog(url).close()
    first = postgres_cluster.execute(
        "SELECT store, version, name, applied_at FROM schema_migrations", postgres_database
    )
    with PostgresDecisionLog(url) as again:
        again.append(make_decision(1))
    assert (
        postgres_cluster.execute("SELECT store, version, name, applied_at FROM schema_migrations", postgres_database)
        == first
    )
    assert [(store, version) for store, version, *_ in first] == [("decisions", v) for v in range(1, LATEST + 1)]


def test_a_newer_schema_is_refused(
    postgres_url: str, postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    PostgresDecisionLog(postgres_url).close()
    postgres_cluster.execute(
        "INSERT INTO schema_migrations (store, version, name) VALUES ('decisions', 99, 'from the future')",
        postgres_database,
    )
    with pytest.raises(DecisionLogError, match=r"schema is at version 99; this sloplane knows up to \d"):
        PostgresDecisionLog(postgres_url)


def test_a_failing_migration_leaves_nothing_half_done(
    postgres_url: str, postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    postgres_cluster.execute("CREATE TABLE decisions (something text)", postgres_database)
    with pytest.raises(DecisionLogError, match=r"to version 1 \(decisions.*\): relation \"decisions\" already exists"):
        PostgresDecisionLog(postgres_url)
    leftovers = postgres_cluster.execute(
        "SELECT to_regclass('schema_migrations'), to_regclass('decision_chain_head')", postgres_database
    )
    assert leftovers == [(None, None)]


def test_a_migrating_role_that_cannot_create_the_writer_role_says_so(
    private_postgres_cluster: PostgresCluster,
) -> None:
    """The writer role belongs to the cluster: a database owner without CREATEROLE cannot make it, and is told.

    Once an administrator has created it, the same owner migrates (grants on its own tables need no more).
    """
    cluster = private_postgres_cluster
    database = cluster.create_database()
    cluster.execute(f"CREATE ROLE app_owner LOGIN; ALTER DATABASE {database} OWNER TO app_owner")
    owner_url = cluster.url(database, user="app_owner")
    with pytest.raises(DecisionLogError, match=rf"version 2 \(the {WRITER_ROLE} role\).*permission denied to create"):
        PostgresDecisionLog(owner_url)
    cluster.execute(f"CREATE ROLE {WRITER_ROLE} NOLOGIN")
    with PostgresDecisionLog(owner_url) as log:
        log.append(make_decision(1))
    granted = cluster.execute(f"SELECT has_table_privilege('{WRITER_ROLE}', 'decisions', 'INSERT')", database)
    assert granted == [(True,)]


# -- credentials -----------------------------------------------------------------------------------------


@pytest.fixture
def migrated(postgres_cluster: PostgresCluster, postgres_database: str) -> str:
    """A database migrated by its owner; its name."""
    PostgresDecisionLog(postgres_cluster.url(postgres_database)).close()
    return postgres_database


def test_the_password_can_come_from_the_url_a_file_or_the_environment(
    postgres_cluster: PostgresCluster, migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = writer_login(postgres_cluster, SECRET)
    with PostgresDecisionLog(tcp_login_url(postgres_cluster, migrated, user, SECRET)) as log:
        log.append(make_decision(1))
        assert SECRET not in log.where and user in log.where
    secret_file = tmp_path / "password"
    secret_file.write_text(f"{SECRET}\n")
    with PostgresDecisionLog(tcp_login_url(postgres_cluster, migrated, user, None), password_file=secret_file) as log:
        log.append(make_decision(2))
    monkeypatch.setenv("PGPASSWORD", SECRET)
    with open_decision_log(tcp_login_url(postgres_cluster, migrated, user, None)) as log:
        log.append(make_decision(3))
        assert log.count() == 3


def test_a_wrong_password_is_refused_without_being_shown(
    postgres_cluster: PostgresCluster, migrated: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = writer_login(postgres_cluster, "the-right-one")
    url = tcp_login_url(postgres_cluster, migrated, user, SECRET)
    with caplog.at_level(logging.DEBUG), pytest.raises(DecisionLogError) as refused:
        PostgresDecisionLog(url)
    assert f"cannot open the decision log at postgresql://{user}@127.0.0.1:{postgres_cluster.port}/" in str(
        refused.value
    )
    assert "password authentication failed" in str(refused.value)
    _assert_secret_free(refused.value, caplog.text)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://someone:{SECRET}@127.0.0.1:1/decisions",
        f"postgresql://someone:{SECRET}@no-such-host.invalid/decisions",
        f"postgres://someone@127.0.0.1:1/decisions?password={SECRET}",
        f"postgresql://someone:{SECRET}@127.0.0.1:1/decisions?not_a_parameter=1",
        f"postgresql://someone:{SECRET}@127.0.0.1:not-a-port/decisions",
    ],
    ids=["refused", "unknown-host", "password-parameter", "bad-parameter", "bad-port"],
)
def test_a_database_that_cannot_be_reached_is_named_without_the_password(url: str) -> None:
    with pytest.raises(DecisionLogError, match=r"cannot open the decision log at postgres(ql)?://someone@") as failed:
        PostgresDecisionLog(url.replace(SECRET, _spellings(SECRET)[1]))
    _assert_secret_free(failed.value)
    assert "\n" not in str(failed.value)


def test_a_password_in_the_url_and_a_file_is_refused(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("from-the-file")
    url = f"postgresql://someone:{_spellings(SECRET)[1]}@127.0.0.1:1/decisions"
    with pytest.raises(DecisionLogError, match="has a password and a password file was given too") as refused:
        PostgresDecisionLog(url, password_file=secret_file)
    _assert_secret_free(refused.value)
    _assert_secret_free(refused.value, secret="from-the-file")


@pytest.mark.parametrize(("content", "message"), [(None, "No such file"), ("", "is empty"), ("\n", "is empty")])
def test_a_password_file_that_holds_no_password_is_refused(tmp_path: Path, content: str | None, message: str) -> None:
    secret_file = tmp_path / "password"
    if content is not None:
        secret_file.write_text(content)
    with pytest.raises(DecisionLogError, match=f"database password file {secret_file}.*{message}"):
        PostgresDecisionLog("postgresql://someone@127.0.0.1:1/decisions", password_file=secret_file)


def test_urls_are_told_from_paths_and_shown_without_passwords(tmp_path: Path) -> None:
    assert is_postgres_url("postgresql://u@h/db")
    assert is_postgres_url("POSTGRES://u@h/db")
    assert not is_postgres_url("decisions.db")
    assert not is_postgres_url(Path("postgresql://u@h/db"))
    assert not is_postgres_url("sqlite:///decisions.db")
    assert redacted("postgresql://u:p%40ss@h:5432/db?sslmode=require") == "postgresql://u@h:5432/db?sslmode=require"
    assert redacted("postgresql://:only-password@h/db") == "postgresql://h/db"
    assert redacted("postgresql://u@/db?host=/tmp/s&password=x&port=5") == "postgresql://u@/db?host=/tmp/s&port=5"
    with pytest.raises(DecisionLogError, match="is a file path, not a PostgreSQL URL"):
        open_decision_log(tmp_path / "decisions.db", password_file=tmp_path / "password")
    with open_decision_log(tmp_path / "decisions.db") as log:
        assert isinstance(log, SqliteDecisionLog)


# -- the server goes away and comes back -----------------------------------------------------------------


def test_a_stopped_server_is_a_problem_until_a_write_succeeds_again(
    private_postgres_cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Down: appends fail fast with the reason, `problem()` says why, readiness probes keep failing. Back: the
    next probe that writes clears it, appends go on from the same chain, nothing recorded twice or lost."""
    cluster = private_postgres_cluster
    database = cluster.create_database()
    PostgresDecisionLog(cluster.url(database)).close()
    url = tcp_login_url(cluster, database, writer_login(cluster, SECRET), SECRET)
    with caplog.at_level(logging.DEBUG), PostgresDecisionLog(url, timeout=1.0) as log:
        log.append(make_decision(1))
        cluster.stop()
        started = time.monotonic()
        with pytest.raises(DecisionLogError, match=r"cannot record decision d-000002 in postgresql://.*refused"):
            log.append(make_decision(2))
        assert time.monotonic() - started < 5, "a gate must not hang on a database that is gone"
        problem = log.problem()
        assert problem is not None and problem.startswith("cannot write postgresql://evaluator_")
        with pytest.raises(DecisionLogError, match="refused") as unwritable:
            log.check_writable()
        with pytest.raises(DecisionLogError, match=r"cannot read the decision log at .*refused"):
            log.count()
        cluster.start()
        recovered = _until_writable(log, within=20.0)
        assert log.problem() is None
        log.append(make_decision(3))
        assert [record["id"] for record in log.iter_all()] == ["d-000001", "d-000003"]
        report = log.verify()
        assert (report.intact, report.records) == (True, 2)
    _assert_secret_free(unwritable.value, problem, caplog.text)
    assert recovered < 20


def _until_writable(log: PostgresDecisionLog, within: float) -> float:
    """Probe as the evaluator's health loop does until a write succeeds; how long it took."""
    started = time.monotonic()
    while True:
        try:
            log.check_writable()
        except DecisionLogError:
            if time.monotonic() - started > within:
                raise
            time.sleep(0.2)
        else:
            return time.monotonic() - started


def test_a_restart_between_two_appends_costs_no_decision(private_postgres_cluster: PostgresCluster) -> None:
    """Every pooled connection is dead after a restart: the first use finds out, the pool drops them all, and the
    append goes through on a fresh one (it had not been sent, so sending it again cannot record it twice)."""
    cluster = private_postgres_cluster
    with PostgresDecisionLog(cluster.url(cluster.create_database()), pool_size=4) as log:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda number: log.append(make_decision(number, decided_at=T0)), range(1, 41)))
        cluster.stop()
        cluster.start()
        log.append(make_decision(41, decided_at=T0))
        assert log.problem() is None
        assert (log.count(), log.last_seq(), log.verify().intact) == (41, 41, True)


def test_after_one_timed_out_wait_calls_fail_fast_until_the_database_answers_again(
    private_postgres_cluster: PostgresCluster,
) -> None:
    """A gate waits for a connection twice (controls, then its record): with PostgreSQL gone, each wait was the
    full timeout. After one timed-out wait the pool is taken as down for a few seconds and calls wait briefly;
    the pool reconnects in the background, so once the database is back the calls succeed again."""
    cluster = private_postgres_cluster
    with PostgresDecisionLog(cluster.url(cluster.create_database()), timeout=2.0) as log:
        log.append(make_decision(1))
        assert not failing_fast(log._pool)
        cluster.stop()
        for number in (2, 3):
            with pytest.raises(DecisionLogError, match="cannot record decision"):
                log.append(make_decision(number))
            assert failing_fast(log._pool)
        cluster.start()
        _until_writable(log, within=20.0)
        log.append(make_decision(4))
        assert not failing_fast(log._pool)
        assert [record["id"] for record in log.iter_all()] == ["d-000001", "d-000004"]


def test_a_pool_busy_with_a_healthy_database_does_not_fail_fast(postgres_url: str) -> None:
    """Every connection in use is not a database that is down: a wait that times out then is not followed by
    short waits (which would fail calls a free connection would have answered a moment later)."""
    with PostgresDecisionLog(postgres_url, pool_size=1, timeout=0.5) as log:
        with log._pool.connection(), pytest.raises(DecisionLogError, match="no free connection"):
            log.count()
        assert not failing_fast(log._pool)
        assert log.count() == 0
