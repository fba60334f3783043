"""Exporting the decision log to S3: against moto's real HTTP server, so boto3 really signs, sends and retries.

The property that matters: however often an export is interrupted and re-run, every recorded
decision ends up in the bucket exactly once, in order, with its seq.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from botocore.exceptions import EndpointConnectionError

from sloplane.evaluator import export
from sloplane.evaluator.export import (
    ExportError,
    PeriodicExporter,
    S3Location,
    export_decisions,
    exported_chain_rows,
    s3_client,
)
from sloplane.evaluator.http.auth import new_token
from sloplane.evaluator.storage import chain
from sloplane.evaluator.storage.decisions import CHAIN_ROW, SqliteDecisionLog
from tests.conftest import ROOT, minimal, run_cli
from tests.evaluator_data import make_decision
from tests.fake_http import EventReceiver
from tests.fake_http import serve as serve_script
from tests.servers import wait_until_up

MOTO_SERVER = Path(sys.executable).parent / "moto_server"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/moto-api/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto_server in its own process for this module; its URL."""
    port = _free_port()
    server = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            assert server.poll() is None, f"moto_server exited with {server.returncode}"
            assert time.monotonic() < deadline, "moto_server did not answer within 30 s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials in the environment (inherited by the CLI subprocess); no real AWS config is read."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def client(moto_endpoint: str, aws_env: None) -> Any:
    return s3_client(moto_endpoint, "us-east-1")


@pytest.fixture
def bucket(client: Any) -> str:
    """A fresh bucket per test: the moto server is shared by the module."""
    name = f"audit-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteDecisionLog]:
    with SqliteDecisionLog(tmp_path / "decisions.db") as opened:
        yield opened


def _fill(log: SqliteDecisionLog, numbers: range) -> None:
    for number in numbers:
        log.append(make_decision(number))


def _keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [entry["Key"] for page in pages for entry in page.get("Contents", [])]


def _exported(client: Any, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    """Every line of every object, in key order."""
    lines: list[dict[str, Any]] = []
    for key in _keys(client, bucket, prefix):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        lines += [orjson.loads(line) for line in body.splitlines()]
    return lines


def _expected(log: SqliteDecisionLog) -> list[dict[str, Any]]:
    """Each record with its seq and its link in the chain, as recorded."""
    return [
        {"seq": row["seq"], "prevHash": row["prev_hash"], "hash": row["hash"], **orjson.loads(row["record"])}
        for row in log.chain_rows()
    ]


# --- the store's seq walk ---------------------------------------------------------------------


def test_iter_with_seq_walks_insertion_order_and_resumes_after_a_seq(log: SqliteDecisionLog) -> None:
    assert log.last_seq() == 0
    assert list(log.iter_with_seq()) == []
    for number in (7, 3, 9):
        log.append(make_decision(number))
    walked = list(log.iter_with_seq(batch_size=2))
    assert [(seq, record["id"]) for seq, record in walked] == [(1, "d-000007"), (2, "d-000003"), (3, "d-000009")]
    assert walked[0][1] == make_decision(7).to_dict()
    assert [seq for seq, _ in log.iter_with_seq(2)] == [3]
    assert log.last_seq() == 3
    with pytest.raises(ValueError, match="at least 1"):
        list(log.iter_with_seq(batch_size=0))


# --- locations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bucket", "prefix"),
    [
        ("s3://audit", "audit", ""),
        ("s3://audit/", "audit", ""),
        ("s3://audit/sloplane/prod/", "audit", "sloplane/prod"),
        ("s3://my.audit-logs/x", "my.audit-logs", "x"),
    ],
)
def test_s3_locations_parse(text: str, bucket: str, prefix: str) -> None:
    assert S3Location.parse(text) == S3Location(bucket, prefix)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("audit/prefix", "not an S3 location"),
        ("https://audit.s3.amazonaws.com/x", "not an S3 location"),
        ("s3://", "not a bucket name"),
        ("s3:///prefix", "not a bucket name"),
        ("s3://Audit/x", "not a bucket name"),
        ("s3://a/x", "not a bucket name"),
        ("s3://audit/a//b", "empty folder"),
    ],
)
def test_bad_s3_locations_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        S3Location.parse(text)


# --- exporting --------------------------------------------------------------------------------


def test_every_record_is_exported_once_in_order_in_batches(log: SqliteDecisionLog, client: Any, bucket: str) -> None:
    _fill(log, range(1, 8))
    location = S3Location(bucket, "sloplane/prod")
    report = export_decisions(log, client, location, source="eu1", batch_size=3)
    assert _keys(client, bucket) == [
        "sloplane/prod/eu1/decisions-000000000001-000000000003.jsonl",
        "sloplane/prod/eu1/decisions-000000000004-000000000006.jsonl",
        "sloplane/prod/eu1/decisions-000000000007-000000000007.jsonl",
    ]
    assert _exported(client, bucket) == _expected(log)
    assert (report.objects_written, report.records_written) == (3, 7)
    assert (report.first_seq, report.last_seq, report.resumed_after) == (1, 7, 0)
    assert report.keys == tuple(_keys(client, bucket))
    head = client.head_object(Bucket=bucket, Key=report.keys[0])
    assert head["ContentType"] == "application/x-ndjson"


def test_a_second_export_with_nothing_new_writes_nothing(log: SqliteDecisionLog, client: Any, bucket: str) -> None:
    _fill(log, range(1, 5))
    location = S3Location(bucket)
    export_decisions(log, client, location, source="eu1")
    again = export_decisions(log, client, location, source="eu1")
    assert (again.objects_written, again.records_written, again.resumed_after) == (0, 0, 4)
    assert again.first_seq is None
    assert "nothing new" in again.summary()
    assert _keys(client, bucket) == ["eu1/decisions-000000000001-000000000004.jsonl"]


def test_records_added_later_go_to_a_new_object(log: SqliteDecisionLog, client: Any, bucket: str) -> None:
    location = S3Location(bucket, "audit")
    _fill(log, range(1, 3))
    export_decisions(log, client, location, source="eu1")
    _fill(log, range(3, 6))
    report = export_decisions(log, client, location, source="eu1")
    assert (report.resumed_after, report.first_seq, report.last_seq) == (2, 3, 5)
    assert _keys(client, bucket) == [
        "audit/eu1/decisions-000000000001-000000000002.jsonl",
        "audit/eu1/decisions-000000000003-000000000005.jsonl",
    ]
    assert _exported(client, bucket) == _expected(log)


class _InterruptedError(Exception):
    """Stands for the process dying mid-export."""


class _DiesOnPut:
    """An S3 client that dies on its third PutObject: before sending it, or after S3 stored it."""

    def __init__(self, client: Any, *, after_the_write: bool) -> None:
        self._client = client
        self._after_the_write = after_the_write
        self.puts = 0

    def put_object(self, **arguments: Any) -> Any:
        self.puts += 1
        if self.puts < 3:
            return self._client.put_object(**arguments)
        if self._after_the_write:
            self._client.put_object(**arguments)
        raise _InterruptedError

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.parametrize("after_the_write", [False, True], ids=["before-the-write", "after-the-write"])
def test_an_interrupted_export_resumed_writes_every_record_exactly_once(
    log: SqliteDecisionLog, client: Any, bucket: str, after_the_write: bool
) -> None:
    _fill(log, range(1, 11))
    location = S3Location(bucket, "audit")
    dying = _DiesOnPut(client, after_the_write=after_the_write)
    with pytest.raises(_InterruptedError):
        export_decisions(log, dying, location, source="eu1", batch_size=3)
    written_before = 3 if after_the_write else 2
    assert len(_keys(client, bucket)) == written_before
    report = export_decisions(log, client, location, source="eu1", batch_size=3)
    assert report.resumed_after == 3 * written_before
    exported = _exported(client, bucket)
    assert [line["seq"] for line in exported] == list(range(1, 11))
    assert [line["id"] for line in exported] == [record["id"] for _, record in log.iter_with_seq()]
    assert exported == _expected(log)


_DIES_AFTER_TWO_PUTS = """
import os, sys
from sloplane.evaluator.export import S3Location, export_decisions, s3_client
from sloplane.evaluator.storage import chain
from sloplane.evaluator.storage.decisions import CHAIN_ROW, SqliteDecisionLog

client = s3_client(sys.argv[1], "us-east-1")
real_put, puts = client.put_object, []

def put_object(**arguments):
    if len(puts) == 2:
        os._exit(137)  # no finally, no atexit: as abrupt as SIGKILL
    puts.append(real_put(**arguments))

client.put_object = put_object
export_decisions(SqliteDecisionLog(sys.argv[2]), client, S3Location.parse(sys.argv[3]), source="eu1", batch_size=4)
"""


def test_an_export_process_killed_mid_way_then_rerun_writes_every_record_once(
    tmp_path: Path, moto_endpoint: str, client: Any, bucket: str
) -> None:
    db = tmp_path / "decisions.db"
    with SqliteDecisionLog(db) as log:
        _fill(log, range(1, 15))
        expected = _expected(log)
    to = f"s3://{bucket}/audit"
    killed = subprocess.run(
        [sys.executable, "-c", _DIES_AFTER_TWO_PUTS, moto_endpoint, str(db), to], cwd=ROOT, check=False, timeout=60
    )
    assert killed.returncode == 137
    assert len(_keys(client, bucket)) == 2
    rerun = run_cli("export-decisions", "--db", db, "--to", to, "--source", "eu1", "--endpoint-url", moto_endpoint)
    assert rerun.code == 0, rerun.stderr
    assert "resumed after 8" in rerun.stdout
    assert _exported(client, bucket) == expected


def test_a_resumed_export_with_another_batch_size_still_writes_each_record_once(
    log: SqliteDecisionLog, client: Any, bucket: str
) -> None:
    _fill(log, range(1, 8))
    location = S3Location(bucket)
    export_decisions(log, client, location, source="eu1", batch_size=5)
    _fill(log, range(8, 12))
    export_decisions(log, client, location, source="eu1", batch_size=2)
    assert [line["seq"] for line in _exported(client, bucket)] == list(range(1, 12))


def _bodies(client: Any, bucket: str, prefix: str = "") -> list[bytes]:
    """Every line of every object, in key order, as the bucket holds it."""
    lines: list[bytes] = []
    for key in _keys(client, bucket, prefix):
        lines += client.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    return lines


def test_the_exported_records_of_resumed_runs_are_one_chain(log: SqliteDecisionLog, client: Any, bucket: str) -> None:
    """The bucket verifies on its own: objects written by two runs, the second resumed, read in key order."""
    location = S3Location(bucket, "audit")
    _fill(log, range(1, 8))
    export_decisions(log, client, location, source="eu1", batch_size=3)
    _fill(log, range(8, 12))
    resumed = export_decisions(log, client, location, source="eu1", batch_size=3)
    assert resumed.resumed_after == 7
    lines = _bodies(client, bucket)
    assert not any(b"storedColumns" in line for line in lines)  # records written by sloplane reproduce their rows
    report = chain.verify(exported_chain_rows(lines))
    assert (report.intact, report.records, report.head) == (True, 11, log.verify().head)


def test_an_edited_exported_record_is_named(log: SqliteDecisionLog, client: Any, bucket: str) -> None:
    _fill(log, range(1, 5))
    export_decisions(log, client, S3Location(bucket), source="eu1")
    lines = _bodies(client, bucket)
    lines[2] = lines[2].replace(b'"decision":"pass"', b'"decision":"fail"', 1)
    broken = chain.verify(exported_chain_rows(lines)).broken
    assert broken is not None
    assert (broken.seq, broken.decision_id, broken.reason) == (3, "d-000003", chain.CHANGED)
    assert chain.verify(exported_chain_rows([*lines[:1], b"not json", *lines[2:]])).broken is not None


def test_history_stored_otherwise_than_its_record_says_is_exported_as_stored(
    tmp_path: Path, client: Any, bucket: str
) -> None:
    """A version 1 log's `requested_at` was copied from the JSON as written (not normalised to UTC): the
    migration chains it as found, and the export carries those columns so that the copy verifies too."""
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as log:
        _fill(log, range(1, 3))
    replay = make_decision(3).to_dict()
    replay["request"]["at"] = "2026-11-26T13:00:00+01:00"
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TRIGGER decisions_no_update")  # a stand-in for the old file: its row, then chained
        db.execute(
            "INSERT INTO decisions (seq, id, decided_at, slo, outcome, policy_version, record, requested_at) "
            "VALUES (3, 'd-000003', '2026-11-26T12:03:00.000000+00:00', 'checkout-availability', 'pass', "
            "'sha256:abc', ?, '2026-11-26T13:00:00+01:00')",
            (orjson.dumps(replay).decode(),),
        )
        stored = db.execute(f"SELECT {', '.join(CHAIN_ROW)} FROM decisions WHERE seq = 3").fetchone()
        row = dict(zip(CHAIN_ROW, stored, strict=True))
        previous = db.execute("SELECT hash FROM decisions WHERE seq = 2").fetchone()[0]
        digest = chain.record_hash(row, previous)
        db.execute("UPDATE decisions SET prev_hash = ?, hash = ? WHERE seq = 3", (previous, digest))
        db.commit()
    with SqliteDecisionLog(path) as log:
        assert log.verify().intact
        export_decisions(log, client, S3Location(bucket), source="eu1")
    lines = _bodies(client, bucket)
    assert [b"storedColumns" in line for line in lines] == [False, False, True]
    assert orjson.loads(lines[2])["id"] == "d-000003"  # the record's fields are still where a reader looks
    assert chain.verify(exported_chain_rows(lines)).records == 3


def test_resume_reads_every_page_of_the_listing(
    log: SqliteDecisionLog, client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "LIST_PAGE_SIZE", 2)
    _fill(log, range(1, 8))
    location = S3Location(bucket)
    export_decisions(log, client, location, source="eu1", batch_size=1)
    _fill(log, range(8, 9))
    report = export_decisions(log, client, location, source="eu1", batch_size=1)
    assert (report.resumed_after, report.keys) == (7, ("eu1/decisions-000000000008-000000000008.jsonl",))
    assert [line["seq"] for line in _exported(client, bucket)] == list(range(1, 9))


def test_other_objects_and_other_sources_do_not_move_the_resume_point(
    log: SqliteDecisionLog, client: Any, bucket: str
) -> None:
    client.put_object(Bucket=bucket, Key="audit/eu1/README.txt", Body=b"exports of eu1")
    client.put_object(Bucket=bucket, Key="audit/eu10/decisions-000000000001-000000000099.jsonl", Body=b"{}\n")
    _fill(log, range(1, 4))
    report = export_decisions(log, client, S3Location(bucket, "audit"), source="eu1")
    assert (report.resumed_after, report.records_written) == (0, 3)


def test_an_object_already_there_is_not_replaced(log: SqliteDecisionLog, client: Any, bucket: str) -> None:
    """A second exporter (or a retried write) that reaches an existing key leaves it as it was."""
    _fill(log, range(1, 3))
    key = "eu1/decisions-000000000001-000000000002.jsonl"
    client.put_object(Bucket=bucket, Key=key, Body=b"first writer\n")

    class _SeesNothing:
        """Lists an empty folder, as a concurrent exporter that listed first would have."""

        def get_paginator(self, name: str) -> Any:
            return _Empty()

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

    class _Empty:
        def paginate(self, **_: Any) -> list[dict[str, Any]]:
            return [{}]

    report = export_decisions(log, _SeesNothing(), S3Location(bucket), source="eu1")
    assert (report.objects_written, report.records_written) == (0, 0)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"first writer\n"


def test_a_missing_bucket_is_a_one_line_error_naming_it(log: SqliteDecisionLog, client: Any) -> None:
    _fill(log, range(1, 2))
    with pytest.raises(ExportError) as caught:
        export_decisions(log, client, S3Location("no-such-bucket-here", "audit"), source="eu1")
    message = str(caught.value)
    assert message == "cannot list s3://no-such-bucket-here/audit/eu1/: the bucket does not exist"


def test_an_unreachable_endpoint_is_a_one_line_error(log: SqliteDecisionLog, aws_env: None) -> None:
    _fill(log, range(1, 2))
    closed = s3_client(f"http://127.0.0.1:{_free_port()}", "us-east-1")
    with pytest.raises(ExportError, match=r"^cannot list s3://audit/eu1/: cannot reach the endpoint http://127"):
        export_decisions(log, closed, S3Location("audit"), source="eu1")


def test_a_source_with_a_slash_is_refused(log: SqliteDecisionLog, client: Any, bucket: str) -> None:
    with pytest.raises(ValueError, match="not a source name"):
        export_decisions(log, client, S3Location(bucket), source="eu1/../eu2")


# --- the periodic exporter ----------------------------------------------------------------------


def test_periodic_exporter_exports_at_start_and_on_stop(log: SqliteDecisionLog, client: Any, bucket: str) -> None:
    _fill(log, range(1, 3))
    exporter = PeriodicExporter(log, client, S3Location(bucket), source="eu1", interval=timedelta(hours=1))
    exporter.start()
    deadline = time.monotonic() + 30
    while exporter.last_report is None and time.monotonic() < deadline:
        time.sleep(0.05)
    _fill(log, range(3, 5))
    final = exporter.stop()
    assert final is not None
    assert (final.resumed_after, final.first_seq, final.last_seq) == (2, 3, 4)
    assert _exported(client, bucket) == _expected(log)


def test_periodic_exporter_logs_failures_and_recovers(
    log: SqliteDecisionLog, client: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    class _Flaky:
        """Fails its first listing the way an unreachable endpoint does."""

        failures = 1

        def get_paginator(self, name: str) -> Any:
            if self.failures:
                self.failures -= 1
                raise EndpointConnectionError(endpoint_url="http://s3.example")
            return client.get_paginator(name)

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

    _fill(log, range(1, 3))
    exporter = PeriodicExporter(log, _Flaky(), S3Location(bucket), source="eu1", interval=timedelta(hours=1))
    assert exporter.export_once() is None
    assert exporter.last_error == "cannot list s3://" + bucket + "/eu1/: cannot reach the endpoint http://s3.example"
    assert "decision export failed" in caplog.text
    report = exporter.stop()
    assert report is not None
    assert report.records_written == 2
    assert exporter.last_error is None


def test_periodic_exporter_needs_a_positive_interval(log: SqliteDecisionLog, client: Any) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        PeriodicExporter(log, client, S3Location("audit"), source="eu1", interval=timedelta(0))


# --- the command --------------------------------------------------------------------------------


def test_the_command_exports_and_then_has_nothing_new(
    tmp_path: Path, moto_endpoint: str, client: Any, bucket: str
) -> None:
    db = tmp_path / "prod-eu1.db"
    with SqliteDecisionLog(db) as log:
        _fill(log, range(1, 6))
        expected = _expected(log)
    to = f"s3://{bucket}/sloplane"
    first = run_cli("export-decisions", "--db", db, "--to", to, "--endpoint-url", moto_endpoint, "--batch-size", "2")
    assert first.code == 0, first.stderr
    assert first.stdout == (
        f"exported 5 decision(s) in 3 object(s) to s3://{bucket}/sloplane/prod-eu1/ (seq 1-5, resumed after 0)\n"
    )
    assert _exported(client, bucket) == expected
    again = run_cli(
        "export-decisions", "--db", db, "--to", to, "--endpoint-url", moto_endpoint, "--region", "us-east-1",
        "--source", "prod-eu1", "--format", "json",
    )  # fmt: skip
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout) == {
        "location": to,
        "source": "prod-eu1",
        "objectsWritten": 0,
        "recordsWritten": 0,
        "firstSeq": None,
        "lastSeq": None,
        "resumedAfter": 5,
        "keys": [],
    }


def _unboxed(text: str) -> str:
    """Typer's usage error is a box wrapped at 80 columns: the words, without the frame or line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize(
    ("to", "message"),
    [("bucket/prefix", "not an S3 location"), ("s3://Bad_Bucket/x", "not a bucket name")],
)
def test_the_command_refuses_a_bad_destination(tmp_path: Path, to: str, message: str) -> None:
    result = run_cli("export-decisions", "--db", tmp_path / "decisions.db", "--to", to)
    assert result.code == 2
    assert "--to" in result.stderr
    assert message in _unboxed(result.stderr)
    assert "Traceback" not in result.stderr


def test_the_command_reports_a_missing_bucket_in_one_line(tmp_path: Path, moto_endpoint: str, aws_env: None) -> None:
    db = tmp_path / "decisions.db"
    with SqliteDecisionLog(db) as log:
        _fill(log, range(1, 2))
    result = run_cli(
        "export-decisions", "--db", db, "--to", "s3://no-such-bucket-here", "--endpoint-url", moto_endpoint
    )
    assert result.code == 1
    assert result.stderr.strip() == (
        "sloplane export-decisions: cannot list s3://no-such-bucket-here/decisions/: the bucket does not exist"
    )


def test_the_command_reports_a_missing_log(tmp_path: Path) -> None:
    result = run_cli("export-decisions", "--db", tmp_path / "absent.db", "--to", "s3://audit")
    assert result.code == 1
    assert "no decision log at" in result.stderr
    assert not (tmp_path / "absent.db").exists()


# -- sloplane serve with every release-aware part switched on ---------------------------------------


def _serve(tmp_path: Path, *extra: str) -> tuple[list[str], int]:
    (tmp_path / "slos.yaml").write_text(minimal())
    port = _free_port()
    command = [sys.executable, "-m", "sloplane", "serve", str(tmp_path / "slos.yaml")]
    command += ["--prometheus", f"http://127.0.0.1:{_free_port()}", "--tokens", str(tmp_path / "tokens.yaml")]
    command += ["--port", str(port), "--db", str(tmp_path / "eu1.db"), *extra]
    return command, port


def _write_tokens(folder: Path) -> str:
    """A tokens file granting one admin token, private to its owner as `serve` requires; the token."""
    token, entry = new_token("release-manager", ["admin"])
    path = folder / "tokens.yaml"
    path.write_text(json.dumps({"tokens": [entry.to_dict()]}))
    path.chmod(0o600)
    return token


def test_serve_freezes_breaks_glass_and_exports_its_log_when_stopped(
    moto_endpoint: str, client: Any, bucket: str, tmp_path: Path
) -> None:
    token = _write_tokens(tmp_path)
    receiver = EventReceiver()
    with serve_script(receiver) as base:
        (tmp_path / "receivers.yaml").write_text(f'receivers:\n  oncall:\n    webhook: {{url: "{base}/hook"}}\n')
        command, port = _serve(
            tmp_path,
            *("--receivers", str(tmp_path / "receivers.yaml"), "--export-s3", f"s3://{bucket}/audit"),
            *("--s3-endpoint-url", moto_endpoint, "--export-interval", "1h"),
        )
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        try:
            wait_until_up(f"{url}/readyz", server)  # ready, though degraded: Prometheus is not there
            freeze = requests.post(f"{url}/v1/freezes", json={"reason": "quarter close"}, headers=auth, timeout=10)
            assert freeze.status_code == 201 and freeze.json()["createdBy"] == "release-manager"
            body = {"slo": "checkout-availability", "revision": "r9"}
            frozen = requests.post(f"{url}/v1/gates/evaluate", json=body, headers=auth, timeout=30).json()
            assert frozen["decision"] == "fail" and frozen["reasons"][0]["code"] == "frozen"
            override = {**body, "breakGlass": {"reason": "INC-12 fix"}}
            let_through = requests.post(f"{url}/v1/gates/evaluate", json=override, headers=auth, timeout=30).json()
            assert let_through["decision"] == "pass"
            assert let_through["decisions"][0]["request"]["breakGlass"]["identity"] == "release-manager"
        finally:
            server.terminate()
            assert server.wait(timeout=20) == 0, server.stderr.read().decode() if server.stderr else ""
    exported = _exported(client, bucket, "audit/eu1/")
    assert [line["decision"] for line in exported] == ["fail", "pass"]
    assert [line["seq"] for line in exported] == [1, 2]
    assert receiver.events("/hook") == []  # a frozen gate is not a breach: nobody is paged


def test_serve_refuses_a_bad_receivers_file_with_its_line(tmp_path: Path) -> None:
    _write_tokens(tmp_path)
    (tmp_path / "receivers.yaml").write_text("receivers:\n  oncall:\n    pagerduty: {routingkey: x}\n")
    command, _ = _serve(tmp_path, "--receivers", str(tmp_path / "receivers.yaml"))
    finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert finished.returncode == 1
    assert "receivers.yaml:3:" in finished.stderr and "routingKey" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_serve_with_an_argocd_project_outside_a_cluster_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    _write_tokens(tmp_path)
    command, _ = _serve(tmp_path, "--argocd-project", "shop")
    finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert finished.returncode == 1
    assert "not in a cluster" in finished.stderr and "Traceback" not in finished.stderr
