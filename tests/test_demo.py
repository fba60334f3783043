"""`make demo`'s evaluator part runs end to end and tells the story it promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_the_demo_gates_the_incident_the_canary_a_freeze_and_break_glass_and_writes_its_report(
    tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    finished = subprocess.run(
        [sys.executable, "-m", "sloplane.cli.demo", "examples/slos", "--reports", str(reports)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    labels = re.findall(r"UTC, (.+):\ndecision: (\w+)", finished.stdout)
    assert labels == [
        ("2h before the incident", "pass"),
        ("20 min into the incident", "fail"),
        ("the canary, 20 min into the incident", "pass"),
        ("2h before the incident, checkout frozen", "fail"),
        ("the same, breaking the glass", "pass"),
    ]
    assert "the canary is not significantly worse than production" in finished.stdout
    assert "break-glass by on-call overrides 'fail'" in finished.stdout
    assert "5 decisions recorded" in finished.stdout
    opened = dict(re.findall(r"^(\w+) report: open (\S+) \(also \.csv and \.json\)$", finished.stdout, re.MULTILINE))
    assert sorted(opened) == ["budget", "oncall", "quarterly", "sla"]
    label = Path(opened["sla"]).stem.removeprefix("sla-")
    quarter = Path(opened["quarterly"]).stem
    assert Path(opened["sla"]) == reports / f"sla-{label}.html"
    stems = sorted(["budget", "oncall", quarter, f"sla-{label}"])
    assert sorted(path.name for path in reports.iterdir()) == [
        *(f"{stem}.{kind}" for stem in stems for kind in ("csv", "html", "json")),
        "status",
    ]
    oncall = json.loads((reports / "oncall.json").read_text())
    assert [page["slo"] for page in oncall["pages"]] == ["checkout-availability"], "the incident paged, once"
    report = json.loads((reports / f"sla-{label}.json").read_text())
    availability = next(line for line in report["slos"] if line["slo"] == "checkout-availability")
    assert availability["met"] is False and availability["badEvents"] > 0, "the incident's 45 minutes at 10% errors"
    assert report["evidence"]["decisionLog"]["decisions"] == 5
    status = json.loads((reports / "status" / "status.json").read_text())
    checkout = next(component for component in status["components"] if component["id"] == "checkout")
    assert f"status page: open {reports / 'status' / 'index.html'}" in finished.stdout
    assert len(checkout["sloplane"]["days"]) == 90 and checkout["sloplane"]["days"][-1]["events"] > 0


def test_the_datadog_demo_says_it_is_a_stand_in_and_gates_the_burst() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "tests.datadog_demo", "examples/slos"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert finished.stdout.startswith("LOCAL STAND-IN for Datadog's API at http://127.0.0.1:")
    assert re.findall(r"^decision: (\w+)$", finished.stdout, re.MULTILINE) == ["pass", "fail"]
    assert "page 1h/5m burn-rate alert active" in finished.stdout
    assert re.findall(r"\((\d+) scalar queries sent", finished.stdout) == ["9", "9"]
