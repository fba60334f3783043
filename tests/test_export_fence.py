"""The export fence: with replicas on one PostgreSQL log, one export round at a time, and none past its session.

Why: the leader exports, but a replica that lost its database session may not know it yet while the next
leader already lists the bucket; both would write the records after one cursor as different objects, and
the bucket would hold decisions twice. Each round therefore holds the log's export lock and checks it
before every object (`PostgresDecisionLog.export_fence`). Two logs on one database stand for two replicas,
against moto's S3 server.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sloplane.evaluator.export import PeriodicExporter, S3Location, export_decisions, exported_chain_rows, s3_client
from sloplane.evaluator.storage import chain
from sloplane.evaluator.storage.decisions import DecisionLogError, FenceBusyError
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from tests.conftest import run_cli
from tests.evaluator_data import make_decision
from tests.replica_harness import moto_server

pytest_plugins = ("tests.postgres",)

SOURCE = "gates"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with moto_server() as url:
        yield url


@pytest.fixture
def client(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_client(s3_endpoint, "us-east-1")


@pytest.fixture
def location(client: Any, request: pytest.FixtureRequest) -> S3Location:
    bucket = re.sub(r"[^a-z0-9]", "-", request.node.name.lower())[:50].strip("-") + "-fence"
    client.create_bucket(Bucket=bucket)
    return S3Location(bucket, "audit")


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[PostgresDecisionLog, PostgresDecisionLog]]:
    with PostgresDecisionLog(postgres_url) as first, PostgresDecisionLog(postgres_url) as second:
        for number in range(1, 7):
            first.append(make_decision(number))
        yield first, second


def _exported_seqs(client: Any, location: S3Location) -> list[int]:
    listed = client.list_objects_v2(Bucket=location.bucket, Prefix=location.folder(SOURCE))
    lines: list[bytes] = []
    for key in sorted(item["Key"] for item in listed.get("Contents", [])):
        lines += client.get_object(Bucket=location.bucket, Key=key)["Body"].read().splitlines()
    return [row["seq"] for row in exported_chain_rows(lines)]


def test_a_second_round_skips_its_turn_while_one_holds_the_fence(
    replicas: tuple[PostgresDecisionLog, PostgresDecisionLog], client: Any, location: S3Location
) -> None:
    first, second = replicas
    with first.export_fence() as still_fenced:
        with pytest.raises(FenceBusyError, match="another process is exporting"), second.export_fence():
            pass
        skipped = PeriodicExporter(
            second, client, location, source=SOURCE, interval=timedelta(minutes=1), fence=second.export_fence
        )
        assert skipped.export_once() is None
        assert skipped.last_error is None, "a skipped turn is not a failure"
        assert _exported_seqs(client, location) == []
        export_decisions(first, client, location, source=SOURCE, batch_size=2, still_fenced=still_fenced)
    with second.export_fence():
        pass  # released with its round
    assert _exported_seqs(client, location) == [1, 2, 3, 4, 5, 6]


def test_a_round_whose_session_is_killed_stops_before_its_next_object(
    replicas: tuple[PostgresDecisionLog, PostgresDecisionLog], client: Any, location: S3Location, postgres_url: str
) -> None:
    """The old leader's session ends after its first object (a partition, `pg_terminate_backend`): it writes
    nothing more, the next holder resumes after that object, and every decision is in the bucket once."""
    first, second = replicas
    written: list[str] = []

    class Recording:
        """The S3 client, ending the round's database session once its first object is written."""

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def put_object(self, **arguments: Any) -> Any:
            answer = client.put_object(**arguments)
            written.append(arguments["Key"])
            if len(written) == 1:
                with psycopg.connect(postgres_url, autocommit=True) as admin:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    )
            return answer

    recording: Any = Recording()
    with first.export_fence() as still_fenced, pytest.raises(DecisionLogError, match="lost the export lock"):
        export_decisions(first, recording, location, source=SOURCE, batch_size=2, still_fenced=still_fenced)
    assert len(written) == 1
    with second.export_fence() as still_fenced:
        report = export_decisions(second, client, location, source=SOURCE, batch_size=2, still_fenced=still_fenced)
    assert report.resumed_after == 2
    assert _exported_seqs(client, location) == [1, 2, 3, 4, 5, 6]
    rows = list(second.chain_rows())
    assert chain.verify(rows, None).intact


def test_the_command_takes_the_fence_too(
    replicas: tuple[PostgresDecisionLog, PostgresDecisionLog],
    client: Any,
    location: S3Location,
    s3_endpoint: str,
    postgres_url: str,
) -> None:
    """An operator's `sloplane export-decisions` on the shared log skips while a replica's round holds the lock,
    and exports once it is free."""
    first, _ = replicas
    command = ["export-decisions", "--db", postgres_url, "--to", f"s3://{location.bucket}/{location.prefix}"]
    command += ["--endpoint-url", s3_endpoint, "--region", "us-east-1", "--source", SOURCE]
    with first.export_fence():
        busy = run_cli(*command)
    assert busy.code != 0
    assert "another process is exporting" in busy.stderr
    assert _exported_seqs(client, location) == []
    assert run_cli(*command).code == 0
    assert _exported_seqs(client, location) == [1, 2, 3, 4, 5, 6]
