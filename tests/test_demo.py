"""`make demo`'s evaluator part runs end to end and tells the story it promises."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_demo_gates_the_incident_the_canary_a_freeze_and_break_glass() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "sloplane.cli.demo", "examples/slos"],
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
