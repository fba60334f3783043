"""`sloplane archive NAME`: refused with every blocker and nothing written, or the declaration, rollups and decision
slice written with a hash manifest (a folder, or moto's S3), `lifecycle: archived` set by editing that one line,
`render` then leaving the SLO out, and the series-deletion call printed for the selectors the rules record.

Expected values come from what each test wrote itself: the rows and decisions it stored, the document text it
declared, hashes computed here with hashlib.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import requests
import typer
from rich.console import Console
from typer.testing import CliRunner, Result

from sloplane.cli import archive
from sloplane.cli.main import _consoles
from sloplane.core.serialize import to_yaml
from sloplane.evaluator.export import S3Location, export_line, s3_client
from sloplane.evaluator.governance.archive import plan_archive
from sloplane.evaluator.governance.archive_source import SourceEditError, read
from sloplane.evaluator.governance.archive_store import (
    ArchiveWriteError,
    verify_folder,
    verify_s3,
    write_folder,
    write_s3,
)
from sloplane.evaluator.model import Decision, Rollup
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.interop import load_paths
from sloplane.render.prometheus import rule_file
from sloplane.sandbox import PrometheusSandbox, Segment, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.conftest import run_cli
from tests.evaluator_data import make_decision
from tests.replica_harness import moto_server

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OLD = "old-checkout"

HEADER = """\
# the checkout API before v2
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: old-checkout}
spec:
  service: checkout
  owners: {team: payments}
  history:
    - {date: 2026-03-02, author: ana, change: objective 99.5 -> 99.9, reason: retries moved client-side}
    - {date: DEPRECATED_ON, author: ana, change: "lifecycle: deprecated", reason: replaced by checkout-v2}
  lifecycle: deprecated   # since DEPRECATED_ON
  sli: {http: {metric: http_requests_total, selector: {job: old-checkout}}}
  objective: 99.9
"""
SIBLING = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: checkout-v2}
spec:
  service: checkout
  owners: {team: payments}
  sli: {http: {metric: http_requests_total, selector: {job: checkout}}}
  objective: 99.9
"""
REFERRING = """\
  gate: {dependencies: [old-checkout]}
---
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: journey}
spec:
  service: shop
  owners: {team: payments}
  sli: {composite: {components: [{slo: old-checkout}, {slo: checkout-v2}]}}
  objective: 99.5
"""


def fleet_text(deprecated_on: str, *, referenced: bool = False) -> str:
    return HEADER.replace("DEPRECATED_ON", deprecated_on) + "---\n" + SIBLING + (REFERRING if referenced else "")


def rollup(slo: str, hour: int) -> Rollup:
    start = datetime(2026, 9, 1, tzinfo=UTC) + timedelta(hours=hour)
    return Rollup(
        slo=slo,
        stage=None,
        start=start,
        end=start + timedelta(hours=1),
        bad_events=float(hour),
        total_events=1000.0 + hour,
        excluded_bad_events=0.0,
        excluded_total_events=0.0,
        excluded_minutes=0.0,
        objective=99.9,
        policy_version="sha256:abc",
        time_zone="UTC",
        source="prometheus",
    )


def replayed(decision: Decision, at: datetime) -> Decision:
    return replace(decision, request=replace(decision.request, at=at))


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    """The fleet folder, a store with rollups of both SLOs and decisions about both (a replay among them)."""
    folder = tmp_path / "slos"
    folder.mkdir()
    db = tmp_path / "store.db"
    old_rows = [rollup(OLD, hour) for hour in range(4)]
    with SqliteRollups(db) as store:
        store.write([*old_rows, rollup("checkout-v2", 0)], AT)
    with SqliteDecisionLog(db) as log:
        log.append(make_decision(1, slo=OLD, stage=None, decided_at=datetime(2026, 9, 20, tzinfo=UTC)))
        log.append(make_decision(2, slo="checkout-v2", stage=None, decided_at=datetime(2026, 11, 1, tzinfo=UTC)))
        late = make_decision(3, slo=OLD, stage=None, decided_at=datetime(2026, 11, 15, tzinfo=UTC))
        log.append(replayed(late, datetime(2026, 9, 1, tzinfo=UTC)))
    return {"folder": folder, "file": folder / "fleet.yaml", "db": db, "rows": old_rows, "out": tmp_path / "archive"}


def run_command(command: str, *args: str | Path) -> tuple[Result, str]:
    """`command` registered on a local app as `sloplane` will register it; its result and its table output."""
    out = io.StringIO()
    app = typer.Typer()
    app.callback()(lambda: None)
    archive.register(app, replace(_consoles, out=Console(file=out, width=400)))
    result = CliRunner().invoke(app, [command, *map(str, args)])
    return result, out.getvalue()


def run_archive(*args: str | Path) -> tuple[Result, str]:
    return run_command("archive", *args)


def run_archive_verify(*args: str | Path) -> tuple[Result, str]:
    return run_command("archive-verify", *args)


def chain_rows_of(db: Path, slo: str) -> list[dict[str, Any]]:
    with SqliteDecisionLog(db) as log:
        return [row for row in log.chain_rows() if row["slo"] == slo]


def test_archives_to_a_folder_edits_only_the_lifecycle_line_and_render_leaves_it_out(setup: dict[str, Any]) -> None:
    text = fleet_text("2026-10-01")
    setup["file"].write_text(text)
    rendered_before = run_cli("render", setup["folder"], "--out", setup["out"].parent / "rendered")
    assert rendered_before.code == 0, rendered_before.stderr
    rendered = setup["out"].parent / "rendered"
    assert any(OLD in path.name for path in rendered.rglob("*"))

    result, out = run_archive(OLD, setup["folder"], "--to", setup["out"], "--db", setup["db"], "--at", AT.isoformat())

    assert result.exit_code == 0, result.output
    folder = setup["out"] / OLD / "20261120T120000Z"
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        ["declaration.yaml", "rollups.jsonl", "decisions.jsonl", "manifest.json"]
    )
    assert [path.name for path in (setup["out"] / OLD).iterdir()] == [folder.name]  # no temporary folder left
    # the document as written: the file's first document (its header comment sits before it)
    first_document = text.split("---\n")[0]
    assert (folder / "declaration.yaml").read_text() == first_document[first_document.index("apiVersion") :]
    assert [json.loads(line) for line in (folder / "rollups.jsonl").read_text().splitlines()] == [
        row.to_dict() for row in setup["rows"]
    ]
    decisions = [json.loads(line) for line in (folder / "decisions.jsonl").read_text().splitlines()]
    stored = chain_rows_of(setup["db"], OLD)
    assert [(line["seq"], line["id"], line["hash"], line["prevHash"]) for line in decisions] == [
        (row["seq"], row["id"], row["hash"], row["prev_hash"]) for row in stored
    ]
    assert [line["id"] for line in decisions] == ["d-000001", "d-000003"]
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert (entry["sha256"], entry["bytes"]) == (hashlib.sha256(data).hexdigest(), len(data))
    assert [entry["records"] for entry in manifest["files"]] == [1, 4, 2]
    assert manifest["archivedAt"] == AT.isoformat()
    assert manifest["sources"]["declaration"] == str(setup["file"])
    assert verify_folder(folder) == []

    edited = setup["file"].read_text().splitlines(keepends=True)
    before = text.splitlines(keepends=True)
    changed = [index for index, (old, new) in enumerate(zip(before, edited, strict=True)) if old != new]
    assert [edited[index] for index in changed] == ["  lifecycle: archived   # since 2026-10-01\n"]
    assert load_paths([setup["folder"]]).errors == []
    assert f"archived {OLD} to {folder}" in out

    rendered_after = run_cli("render", setup["folder"], "--out", rendered)
    assert rendered_after.code == 0, rendered_after.stderr
    assert not [path for path in rendered.rglob("*") if path.is_file() and OLD in path.read_text()]
    assert any("checkout-v2" in path.name for path in rendered.rglob("*"))

    verified, said = run_archive_verify(folder)
    assert verified.exit_code == 0 and "every file as its manifest says" in said
    (folder / "rollups.jsonl").write_text("tampered\n")
    assert [problem.split(":")[0] for problem in verify_folder(folder)] == ["rollups.jsonl"]
    verified, _ = run_archive_verify(folder)
    assert verified.exit_code == 1 and verified.stderr.startswith("rollups.jsonl: 9 bytes")


def test_the_printed_deletion_call_selects_what_the_rules_record(setup: dict[str, Any]) -> None:
    setup["file"].write_text(fleet_text("2026-10-01"))
    args = ("--to", setup["out"], "--db", setup["db"], "--at", AT.isoformat(), "--prometheus", "http://prom:9090")
    result, out = run_archive(OLD, setup["folder"], *args)
    assert result.exit_code == 0, result.output
    command = next(line for line in out.splitlines() if "delete_series" in line)
    words = shlex.split(command)
    assert words[:3] == ["curl", "-X", "POST"]
    url = urlsplit(words[3])
    assert "[" not in words[3] and "]" not in words[3]  # curl would read brackets as a glob
    assert (url.netloc, url.path) == ("prom:9090", "/api/v1/admin/tsdb/delete_series")
    assert parse_qs(url.query)["match[]"] == [
        '{__name__=~"sloplane:.+",slo="old-checkout"}',
        '{__name__=~"ALERTS|ALERTS_FOR_STATE",alertname="SLOErrorBudgetBurn",slo="old-checkout"}',
    ]
    assert "curl -X POST http://prom:9090/api/v1/admin/tsdb/clean_tombstones" in out


def test_refused_with_every_blocker_listed_and_nothing_written(setup: dict[str, Any]) -> None:
    text = fleet_text("2026-11-10", referenced=True)
    setup["file"].write_text(text)
    with SqliteDecisionLog(setup["db"]) as log:
        log.append(make_decision(4, slo=OLD, stage=None, decided_at=datetime(2026, 11, 15, tzinfo=UTC)))

    result, _ = run_archive(
        OLD, setup["folder"], "--to", setup["out"], "--db", setup["db"], "--at", AT.isoformat(), "--format", "json"
    )

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    rules = [blocker["rule"] for blocker in report["blockers"]]
    assert rules == ["deprecation-period", "referenced", "gated"]
    for rule in rules:
        assert f"  {rule}: " in result.stderr
    assert report["checks"]["deprecation"]["eligibleFrom"] == "2026-12-10T00:00:00+00:00"
    assert report["checks"]["referencedBy"] == [
        {"slo": "checkout-v2", "role": "dependency", "lifecycle": "active"},
        {"slo": "journey", "role": "composite component", "lifecycle": "active"},
    ]
    # d-000004 is live and after the deprecation; d-000003 (a replay) and d-000001 (before it) are not use
    assert report["checks"]["liveDecisions"]["count"] == 1
    assert report["checks"]["liveDecisions"]["last"] == "2026-11-15T00:00:00+00:00"
    assert report["checks"]["debtRegister"] == "read"  # the command reads the register in the declarations' files
    assert not setup["out"].exists()
    assert setup["file"].read_text() == text


DEBT = """\
apiVersion: sloplane.dev/v1alpha1
kind: ReliabilityDebt
metadata: {name: old-checkout-retries}
spec:
  slos: [old-checkout]
  kind: known-violation
  owner: {name: Payments, contact: "#payments"}
  cause: Retries amplify a slow dependency.
  evidence: ["missed 2026-08"]
  remediation: {plan: Move retries client-side., tracker: "https://jira.example.com/PAY-9", due: 2026-12-31}
  opened: 2026-08-01
  revisit: 2027-01-31
  status: STATUS
"""


@pytest.mark.parametrize(("status", "blocked"), [("in-progress", True), ("resolved", False)])
def test_the_register_in_the_declarations_files_blocks_with_open_debt(
    setup: dict[str, Any], status: str, blocked: bool
) -> None:
    setup["file"].write_text(fleet_text("2026-09-25"))  # after the live decision of 2026-09-20
    (setup["folder"] / "debt.yaml").write_text(DEBT.replace("STATUS", status))
    result, _ = run_archive(OLD, setup["folder"], "--db", setup["db"], "--at", AT.isoformat(), "--dry-run",
                            "--format", "json")  # fmt: skip
    report = json.loads(result.stdout)
    assert [b["rule"] for b in report["blockers"]] == (["open-debt"] if blocked else [])
    assert report["checks"]["openDebt"] == (["old-checkout-retries"] if blocked else [])
    assert result.exit_code == (1 if blocked else 0)


def store_readers(db: Path) -> tuple[Any, Any]:
    store, log = SqliteRollups(db), SqliteDecisionLog(db)

    def decisions(name: str) -> Iterator[dict[str, Any]]:
        return (export_line(row) for row in log.chain_rows() if row["slo"] == name)

    return (lambda since, until, names: store.read(since=since, until=until, slos=names)), decisions


def test_open_debt_an_active_lifecycle_and_an_unrecorded_deprecation_block(setup: dict[str, Any]) -> None:
    text = fleet_text("2026-10-01").replace("lifecycle: deprecated", "lifecycle: active")
    text = text.replace('change: "lifecycle: deprecated"', "change: moved to the new pager")
    setup["file"].write_text(text)
    fleet = Fleet(load_paths([setup["folder"]]).declarations)
    rows, decisions = store_readers(setup["db"])
    open_items = {OLD: ["debt-7", "debt-9"]}

    plan = plan_archive(
        fleet, OLD, [setup["folder"]], rows, AT, decisions=decisions, open_debt=lambda name: open_items.get(name, [])
    )

    assert plan.refused and plan.files == {} and plan.archived_text is None
    assert [blocker["rule"] for blocker in plan.report["blockers"]] == [
        "not-deprecated",
        "deprecation-unrecorded",
        "open-debt",
    ]
    assert plan.report["blockers"][2]["inputs"] == {"openDebt": open_items[OLD]}
    assert plan.report["checks"]["debtRegister"] == "read"


def test_the_lifecycle_is_inserted_under_spec_keeping_crlf_and_a_byte_order_mark(tmp_path: Path) -> None:
    body = SIBLING.replace("\n", "\r\n")
    path = tmp_path / "one.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    edit = read([tmp_path], "checkout-v2").archived_edit()
    expected = body.replace("spec:\r\n", "spec:\r\n  lifecycle: archived\r\n")
    assert (edit.text, edit.kind, edit.line) == ("\ufeff" + expected, "inserted", 5)

    flow = "- apiVersion: sloplane.dev/v1alpha1\n  kind: ServiceLevelObjective\n  metadata: {name: a}\n"
    flow += "  spec: {service: s, owners: {team: t}, objective: 99, sli: {http: {metric: m}}}\n"
    (tmp_path / "flow.yaml").write_text(flow)
    source = read([tmp_path / "flow.yaml"], "a")
    assert source.archived_edit().text == flow.replace("spec: {service", "spec: {lifecycle: archived, service")
    assert source.document_text() == flow


def test_an_edit_that_would_change_more_than_the_lifecycle_is_refused(tmp_path: Path) -> None:
    shared = SIBLING.replace("  owners: {team: payments}\n", "  owners: {team: &state deprecated}\n")
    (tmp_path / "alias.yaml").write_text(
        shared.replace("  objective: 99.9\n", "  lifecycle: *state\n  objective: 99.9\n")
    )
    with pytest.raises(SourceEditError, match="set it by hand"):
        read([tmp_path], "checkout-v2").archived_edit()
    with pytest.raises(SourceEditError, match="no sloplane declaration"):
        read([tmp_path], "nowhere")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("--format", "xml"), "--format"),
        (("--s3", "s3://bucket/p"), "--to/--s3"),
        (("--deprecated-for", "a while"), "--deprecated-for"),
        (("--at", "yesterday"), "--at"),
    ],
)
def test_bad_options_are_usage_errors_naming_the_option(
    setup: dict[str, Any], args: tuple[str, ...], option: str
) -> None:
    setup["file"].write_text(fleet_text("2026-10-01"))
    result, _ = run_archive(OLD, setup["folder"], "--to", setup["out"], "--db", setup["db"], *args)
    assert result.exit_code == 2
    assert option in result.output
    assert not setup["out"].exists()


def test_an_unknown_slo_or_a_missing_store_is_said_in_one_line(setup: dict[str, Any]) -> None:
    setup["file"].write_text(fleet_text("2026-10-01"))
    result, _ = run_archive("old-chekout", setup["folder"], "--to", setup["out"], "--db", setup["db"])
    assert result.exit_code == 1
    assert "no SLO named 'old-chekout'" in result.stderr and "did you mean 'old-checkout'" in result.stderr
    missing = setup["db"].with_name("missing.db")
    result, _ = run_archive(OLD, setup["folder"], "--to", setup["out"], "--db", missing)
    assert result.exit_code == 1
    assert f"no store at {missing}" in result.stderr
    assert not missing.exists() and not setup["out"].exists()


def test_dry_run_writes_nothing(setup: dict[str, Any]) -> None:
    text = fleet_text("2026-10-01")
    setup["file"].write_text(text)
    result, out = run_archive(OLD, setup["folder"], "--db", setup["db"], "--at", AT.isoformat(), "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"would set lifecycle: archived at {setup['file']}:11" in out
    assert setup["file"].read_text() == text
    assert not setup["out"].exists()


def test_an_archive_is_never_replaced(tmp_path: Path) -> None:
    files = {"declaration.yaml": "a: 1\n", "manifest.json": "{}\n"}
    write_folder(tmp_path, OLD, "20261120T120000Z", files)
    with pytest.raises(ArchiveWriteError, match="exists already"):
        write_folder(tmp_path, OLD, "20261120T120000Z", files)
    os.symlink(tmp_path / OLD, tmp_path / "linked")
    with pytest.raises(ArchiveWriteError, match="symbolic link"):
        write_folder(tmp_path, "linked", "20261121T000000Z", files)


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


def test_archives_to_s3_the_manifest_last(setup: dict[str, Any], client: Any, s3_endpoint: str) -> None:
    setup["file"].write_text(fleet_text("2026-10-01"))
    client.create_bucket(Bucket="slo-archive")
    location = "s3://slo-archive/governance/archives"
    args = ("--s3", location, "--endpoint-url", s3_endpoint, "--region", "us-east-1", "--format", "json")
    result, _ = run_archive(OLD, setup["folder"], *args, "--db", setup["db"], "--at", AT.isoformat())

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    folder = f"governance/archives/{OLD}/20261120T120000Z/"
    assert report["archived"] and report["location"] == f"s3://slo-archive/{folder}"
    listed = client.list_objects_v2(Bucket="slo-archive", Prefix=folder)["Contents"]
    assert sorted(entry["Key"].removeprefix(folder) for entry in listed) == sorted(e["name"] for e in report["files"])
    for entry in report["files"]:
        body = client.get_object(Bucket="slo-archive", Key=folder + entry["name"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    rows = orjson.loads(client.get_object(Bucket="slo-archive", Key=folder + "manifest.json")["Body"].read())
    assert rows["sources"]["store"] == str(setup["db"])
    assert verify_s3(client, "slo-archive", folder) == []
    verified, said = run_archive_verify(f"s3://slo-archive/{folder}", "--endpoint-url", s3_endpoint)
    assert verified.exit_code == 0, verified.output
    assert "every file as its manifest says" in said
    assert "lifecycle: archived" in setup["file"].read_text()


def test_s3_objects_are_written_before_their_manifest_and_never_replaced(client: Any) -> None:
    client.create_bucket(Bucket="slo-archive-order")
    written: list[str] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def put_object(self, **arguments: Any) -> Any:
            written.append(arguments["Key"].rpartition("/")[2])
            return client.put_object(**arguments)

    files = {"manifest.json": "{}\n", "rollups.jsonl": "", "declaration.yaml": "a: 1\n", "decisions.jsonl": ""}
    location = S3Location("slo-archive-order", "p")
    write_s3(Recording(), location.bucket, location.prefix, slo=OLD, archive_id="x", files=files)  # type: ignore[arg-type]
    assert written[-1] == "manifest.json" and sorted(written) == sorted(files)
    with pytest.raises(ArchiveWriteError, match="never replaced"):
        write_s3(client, location.bucket, location.prefix, slo=OLD, archive_id="x", files=files)
    assert re.search("missing", " ".join(verify_s3(client, location.bucket, "p/nothing-here/")))


def test_the_deletion_call_removes_exactly_the_series_its_rules_recorded(setup: dict[str, Any], tmp_path: Path) -> None:
    """Against a real Prometheus (admin API on) holding both SLOs' recorded series: the printed call, sent by the
    test, leaves none of the archived SLO's and every one of its sibling's."""
    setup["file"].write_text(fleet_text("2026-10-01"))
    fleet = Fleet(load_paths([setup["folder"]]).declarations)
    end = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    traffic = [
        http_traffic([Segment(timedelta(hours=2), 60, 0.01)], end=end, labels={"job": job})
        for job in ("old-checkout", "checkout")
    ]
    rules = []
    for name in (OLD, "checkout-v2"):
        rules.append(tmp_path / f"{name}.rules.yaml")
        rules[-1].write_text(to_yaml(rule_file(fleet[name], fleet)))
    with PrometheusSandbox(
        tmp_path / "prometheus",
        traffic,
        rule_files=rules,
        rule_range=(end - timedelta(minutes=30), end),
        extra_args=["--web.enable-admin-api"],
    ) as prometheus:

        def recorded(slo: str) -> set[str]:
            samples = prometheus.query(f'{{__name__=~"sloplane:.+",slo="{slo}"}}', end)
            return {labels["__name__"] for labels, _ in samples}

        sibling = recorded("checkout-v2")
        assert recorded(OLD) and sibling
        args = ("--to", setup["out"], "--db", setup["db"], "--at", AT.isoformat(), "--prometheus", prometheus.url)
        result, out = run_archive(OLD, setup["folder"], *args)
        assert result.exit_code == 0, result.output
        for line in out.splitlines():
            if line.startswith("curl -X POST "):
                assert requests.post(shlex.split(line)[3], timeout=30).status_code == 204
        assert recorded(OLD) == set()
        assert recorded("checkout-v2") == sibling
