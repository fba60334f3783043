"""Shared helpers: the example folder, a minimal declaration, and running the real CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.pulumi_mocks import Recorder, recording_mocks

# Deterministic examples: a CI run is reproducible and a failure is the same on every machine.
settings.register_profile("sloplane", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("sloplane")

SUMMARY: list[str] = []
"""Counts some tests report (fuzz and schemathesis totals), printed once at the end of the run."""


def summarised(label: str, counts: Counter[str]) -> Any:
    """A module-scoped autouse fixture that hands `counts` to the end-of-run summary as `label: n what, ...`."""

    @pytest.fixture(scope="module", autouse=True)
    def report() -> Iterator[None]:
        yield
        if counts:
            SUMMARY.append(f"{label}: " + ", ".join(f"{count:,} {what}" for what, count in sorted(counts.items())))

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the counts tests reported (`SUMMARY`): a run shows how much input its fuzzing covered."""
    for line in SUMMARY:
        terminalreporter.write_line(line)


ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "slos"

MINIMAL = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata:
  name: {name}
spec:
  service: checkout
  owners: {{team: payments}}
  objective: {objective}
  sli:
    http: {{metric: http_requests_total, selector: {{job: checkout}}}}
"""


def minimal(name: str = "checkout-availability", objective: float = 99.9) -> str:
    """The ~10-line declaration the README promises."""
    return MINIMAL.format(name=name, objective=objective)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path, cwd: Path | None = None) -> CliResult:
    """Run `python -m sloplane` as a user would, in a subprocess."""
    completed = subprocess.run(
        [sys.executable, "-m", "sloplane", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=120,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def mocks() -> Iterator[Recorder]:
    """Pulumi SDK mocks with a fresh loop and stack, recording every registration."""
    yield from recording_mocks()


@pytest.fixture
def write(tmp_path: Path):  # type: ignore[no-untyped-def]
    """write('a.yaml', text) -> path, with the text dedented."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write
