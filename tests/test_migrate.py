"""`sloplane migrate`: the owner migrates once, then a role holding only `sloplane_writer` opens every store."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from sloplane.evaluator.model import Rollup
from sloplane.evaluator.notify import outbox_postgres_schema
from sloplane.evaluator.notify.outbox_postgres import PostgresOutbox
from sloplane.evaluator.storage import (
    assessments_postgres_schema,
    feedback_postgres_schema,
    postgres_controls_schema,
    postgres_schema,
    rollups_postgres_schema,
)
from sloplane.evaluator.storage.assessments_postgres import PostgresAssessments
from sloplane.evaluator.storage.feedback_postgres import PostgresFeedback
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from sloplane.evaluator.storage.postgres_conninfo import redacted
from sloplane.evaluator.storage.postgres_controls import PostgresReleaseControls
from sloplane.evaluator.storage.postgres_schema import WRITER_ROLE
from sloplane.evaluator.storage.rollups_postgres import PostgresRollups
from tests.conftest import run_cli
from tests.evaluator_data import T0, make_decision
from tests.postgres import tcp_login_url, writer_login

if TYPE_CHECKING:
    from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)

ROLLUP = Rollup(
    "checkout", None, T0, T0 + timedelta(hours=1), 2.0, 100.0, 0.0, 0.0, 0.0, 99.5, "sha256:x", "UTC", "prometheus"
)

SECRET = "Mg-7q!x@y:z"
"""A password with the characters a URL must escape: it must not appear in any spelling."""

DECISIONS = postgres_schema.LATEST
CONTROLS = postgres_controls_schema.LATEST
OUTBOX = outbox_postgres_schema.LATEST
ROLLUPS = rollups_postgres_schema.LATEST
ASSESSMENTS = assessments_postgres_schema.LATEST
FEEDBACK = feedback_postgres_schema.LATEST


def test_a_fresh_database_is_migrated_and_a_second_run_changes_nothing(
    postgres_url: str, postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    first = run_cli("migrate", "--db", postgres_url)
    assert first.code == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"decision log: schema version {DECISIONS} (was 0)",
        f"release controls: schema version {CONTROLS} (was 0)",
        f"notification outbox: schema version {OUTBOX} (was 0)",
        f"rollups: schema version {ROLLUPS} (was 0)",
        f"change assessments: schema version {ASSESSMENTS} (was 0)",
        f"support feedback: schema version {FEEDBACK} (was 0)",
    ]
    tables = {
        name
        for (name,) in postgres_cluster.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()", postgres_database
        )
    }
    expected = {
        "schema_migrations",
        "decisions",
        "decision_chain_head",
        postgres_controls_schema.FREEZES,
        postgres_controls_schema.INCIDENTS,
        outbox_postgres_schema.DELIVERIES,
        outbox_postgres_schema.COUNTERS,
        "slo_rollups",
        assessments_postgres_schema.ASSESSMENTS,
        feedback_postgres_schema.FEEDBACK,
    }
    assert expected <= tables
    recorded = postgres_cluster.execute(
        "SELECT store, max(version) FROM schema_migrations GROUP BY store ORDER BY store", postgres_database
    )
    assert recorded == [
        ("assessments", ASSESSMENTS),
        ("controls", CONTROLS),
        ("decisions", DECISIONS),
        ("feedback", FEEDBACK),
        ("outbox", OUTBOX),
        ("rollups", ROLLUPS),
    ]

    again = run_cli("migrate", "--db", postgres_url)
    assert again.code == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"decision log: already at schema version {DECISIONS}",
        f"release controls: already at schema version {CONTROLS}",
        f"notification outbox: already at schema version {OUTBOX}",
        f"rollups: already at schema version {ROLLUPS}",
        f"change assessments: already at schema version {ASSESSMENTS}",
        f"support feedback: already at schema version {FEEDBACK}",
    ]
    assert postgres_cluster.execute("SELECT count(*) FROM schema_migrations", postgres_database) == [
        (DECISIONS + CONTROLS + OUTBOX + ROLLUPS + ASSESSMENTS + FEEDBACK,)
    ]


def test_a_partly_migrated_database_says_what_each_store_was_at(postgres_url: str) -> None:
    PostgresDecisionLog(postgres_url).close()
    result = run_cli("migrate", "--db", postgres_url)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"decision log: already at schema version {DECISIONS}",
        f"release controls: schema version {CONTROLS} (was 0)",
        f"notification outbox: schema version {OUTBOX} (was 0)",
        f"rollups: schema version {ROLLUPS} (was 0)",
        f"change assessments: schema version {ASSESSMENTS} (was 0)",
        f"support feedback: schema version {FEEDBACK} (was 0)",
    ]


def test_after_the_owner_migrates_a_writer_only_role_opens_every_store(
    private_postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """A new cluster (no `sloplane_writer` yet): the owner's `migrate` creates it; the pods' role needs nothing more."""
    cluster = private_postgres_cluster
    database = cluster.create_database()
    user = _login_role_after_migrate(cluster, database)
    url = tcp_login_url(cluster, database, user, SECRET)
    with PostgresDecisionLog(url) as log:
        log.append(make_decision(1))
        assert [record["id"] for record in log.query(limit=5)] == [make_decision(1).id]
    with PostgresReleaseControls(url) as controls:
        freeze = controls.freeze(None, "release train", "ci", at=T0)
        assert [found.id for found in controls.active_freezes(None, T0 + timedelta(minutes=1))] == [freeze.id]
    with PostgresOutbox(url) as outbox:
        outbox.bump("migrate-test")
        assert outbox.counters()["migrate-test"] == 1
    rollups = PostgresRollups(url)
    try:
        rollups.write([ROLLUP], T0)
        assert rollups.read(since=ROLLUP.start, until=ROLLUP.end) == [ROLLUP]
    finally:
        rollups.close()
    PostgresAssessments(url).close()  # each opens as the writer: nothing left to migrate
    PostgresFeedback(url).close()
    # The writer-only role may run `migrate` too: nothing is left to do, so it only reads.
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    as_writer = run_cli("migrate", "--db", tcp_login_url(cluster, database, user, None), "--password-file", secret_file)
    assert as_writer.code == 0, as_writer.stderr
    assert all("already at" in line for line in as_writer.stdout.splitlines())


def _login_role_after_migrate(cluster: PostgresCluster, database: str) -> str:
    migrated = run_cli("migrate", "--db", cluster.url(database))
    assert migrated.code == 0, migrated.stderr
    return writer_login(cluster, SECRET)


def test_a_writer_only_role_cannot_migrate_and_is_told_in_one_line(
    private_postgres_cluster: PostgresCluster,
) -> None:
    cluster = private_postgres_cluster
    cluster.execute(f"CREATE ROLE {WRITER_ROLE} NOLOGIN")
    database = cluster.create_database()
    url = tcp_login_url(cluster, database, writer_login(cluster, SECRET), SECRET)
    result = run_cli("migrate", "--db", url)
    assert result.code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("sloplane migrate: ")
    assert "permission denied" in line
    assert SECRET not in line
    assert quote(SECRET, safe="") not in line


def test_a_newer_schema_is_refused(
    postgres_url: str, postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    assert run_cli("migrate", "--db", postgres_url).code == 0
    postgres_cluster.execute(
        "INSERT INTO schema_migrations (store, version, name) VALUES ('controls', 99, 'from the future')",
        postgres_database,
    )
    result = run_cli("migrate", "--db", postgres_url)
    assert result.code == 1
    [line] = result.stderr.splitlines()
    assert "the release controls at" in line
    assert "version 99" in line
    assert "Traceback" not in result.stderr


def test_a_sqlite_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    result = run_cli("migrate", "--db", path)
    assert result.code == 2
    assert result.stderr.strip() == (
        "sloplane migrate: migrate is for PostgreSQL; a SQLite file is migrated when it is opened"
    )
    assert not path.exists()


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    url = f"postgresql://owner:{quote(SECRET, safe='')}@127.0.0.1:{_closed_port()}/sloplane?connect_timeout=2"
    result = run_cli("migrate", "--db", url)
    assert result.code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"sloplane migrate: cannot connect to {redacted(url)}: ")
    assert SECRET not in result.stderr
    assert quote(SECRET, safe="") not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_password_is_one_line_without_it(postgres_cluster: PostgresCluster, postgres_database: str) -> None:
    user = writer_login(postgres_cluster, "the-right-one")
    result = run_cli("migrate", "--db", tcp_login_url(postgres_cluster, postgres_database, user, SECRET))
    assert result.code == 1
    [line] = result.stderr.splitlines()
    assert "password authentication failed" in line
    assert SECRET not in result.stderr
    assert quote(SECRET, safe="") not in result.stderr
