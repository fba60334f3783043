"""The `sloplane` command as users run it (subprocesses), and its last line of defence (in process)."""

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sloplane.cli import main as cli
from tests.conftest import EXAMPLES, minimal, run_cli


def test_validate_examples() -> None:
    result = run_cli("validate", EXAMPLES)
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == "6 SLO(s) valid, 0 warning(s)"


def test_strict_turns_lints_into_failures(write: Any) -> None:
    path = write("lint.yaml", minimal(objective=90))
    relaxed = run_cli("validate", path)
    assert relaxed.code == 0 and "warning: spec.objective" in relaxed.stderr
    strict = run_cli("validate", "--strict", path)
    assert strict.code == 1 and "0 error(s), 1 warning(s): nothing done" in strict.stderr


def test_missing_paths_and_empty_folders_are_errors(tmp_path: Path) -> None:
    result = run_cli("validate", tmp_path / "nope.yaml", tmp_path)
    assert result.code == 1
    assert f"{tmp_path / 'nope.yaml'}:1:1: error: no such file or folder" in result.stderr
    assert f"{tmp_path}:1:1: error: folder holds no *.yaml or *.yml files" in result.stderr


def test_usage_errors_exit_2_without_traceback() -> None:
    result = run_cli("validate", "--no-such-flag")
    assert result.code == 2 and "Traceback" not in result.stderr


def _json_ready(value: Any) -> Any:
    """YAML dates as the strings a JSON-based editor would see."""
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, date | datetime) else v))


def test_schema_is_valid_and_accepts_every_example() -> None:
    result = run_cli("schema")
    assert result.code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            errors = list(validator.iter_errors(_json_ready(document)))
            assert errors == [], f"{path.name}: {[e.message for e in errors]}"
    broken = yaml.safe_load(minimal().replace("objective: 99.9", "objectve: 99.9"))
    assert list(validator.iter_errors(broken))


def test_the_debt_registers_schema_accepts_an_item_and_refuses_a_misspelt_one() -> None:
    result = run_cli("schema", "--kind", "ReliabilityDebt")
    assert result.code == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    item = {
        "apiVersion": "sloplane.dev/v1alpha1",
        "kind": "ReliabilityDebt",
        "metadata": {"name": "checkout-pool"},
        "spec": {
            "slos": ["checkout-availability"],
            "kind": "known-violation",
            "owner": {"name": "Payments", "contact": "#payments"},
            "cause": "The pool saturates.",
            "evidence": ["missed 2025-12"],
            "remediation": {"plan": "Shard it.", "tracker": "https://jira.example.com/PAY-1", "due": "2026-02-01"},
            "opened": "2026-01-05",
            "revisit": "2026-03-01",
        },
    }
    assert list(validator.iter_errors(item)) == []
    assert list(validator.iter_errors({**item, "spec": {**item["spec"], "kind": "debt"}}))
    assert run_cli("schema", "--kind", "Debt").code == 2


def test_explain_json_has_the_workbook_numbers() -> None:
    result = run_cli("explain", "--format", "json", EXAMPLES)
    assert result.code == 0, result.stderr
    checkout = next(e for e in json.loads(result.stdout) if e["slo"] == "checkout-availability" and e["stage"] is None)
    assert checkout["budgetMinutes"] == pytest.approx(43.2)
    fast, slow, *_ = checkout["alerts"]
    assert fast["windows"] == "1h/5m" and fast["burnRate"] == 14.4
    assert fast["detectionMinutes"]["1"] == pytest.approx(0.864)
    assert fast["detectionMinutes"]["0.01"] is None
    assert slow["detectionMinutes"]["1"] == pytest.approx(2.16)
    assert slow["detectionMinutes"]["0.01"] == pytest.approx(216)
    assert fast["resetMinutesAfterFullOutage"] < 6


def test_explain_table_lists_every_slo_and_stage() -> None:
    result = run_cli("explain", EXAMPLES)
    assert result.code == 0
    assert "checkout-availability [canary]: 99.5% over 30d rolling" in result.stdout
    assert "admin-console-probe: 99.5% over calendar month (Europe/London)" in result.stdout
    assert result.stdout.count("detect 100%") == 7


def test_import_and_export_round_trip_through_files(tmp_path: Path) -> None:
    exported = run_cli("export", "openslo", EXAMPLES, "--out", tmp_path / "openslo")
    assert exported.code == 0, exported.stderr
    files = sorted(p.name for p in (tmp_path / "openslo").iterdir())
    assert len(files) == 6 and "checkout-availability.yaml" in files
    imported = run_cli("import", "openslo", tmp_path / "openslo", "--out", tmp_path / "back")
    assert imported.code == 0, imported.stderr
    again = run_cli("validate", tmp_path / "back", "--strict")
    assert again.code == 0, again.stderr
    # same input, same bytes: a second export changes nothing
    second = run_cli("export", "openslo", EXAMPLES, "--out", tmp_path / "openslo")
    assert "wrote 0 file(s)" in second.stderr


def test_import_prints_to_stdout_and_writes_nothing_on_error(tmp_path: Path, write: Any) -> None:
    good = run_cli("import", "openslo", Path(__file__).parent / "data" / "openslo" / "v1-refs.yaml")
    assert good.code == 0
    (document,) = yaml.safe_load_all(good.stdout)
    assert document["apiVersion"] == "sloplane.dev/v1alpha1" and document["metadata"]["name"] == "web-availability"
    broken = write("broken.yaml", minimal().replace("99.9", "100"))
    failed = run_cli("import", "openslo", broken, "--out", tmp_path / "out")
    assert failed.code == 1 and not (tmp_path / "out").exists()


def test_internal_faults_become_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    def explode() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "app", explode)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert "internal error: RuntimeError: boom" in captured.err and "Traceback" not in captured.err
