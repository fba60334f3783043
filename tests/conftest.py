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

SUMMARY: dict[str, Counter[str]] = {}
"""Counts some tests report (fuzz and schemathesis totals) by label, printed once at the end of the run."""


def summarised(label: str, counts: Counter[str]) -> Any:
    """A module-scoped autouse fixture that adds `counts` to the end-of-run summary under `label`."""

    @pytest.fixture(scope="module", autouse=True)
    def report() -> Iterator[None]:
        yield
        SUMMARY.setdefault(label, Counter()).update(counts)

    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its counts to the controller, which prints the summary."""
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["summary"] = {label: dict(counts) for label, counts in SUMMARY.items()}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """The controller adds up what each worker counted: one module's tests may run on both."""
    for label, counts in getattr(node, "workeroutput", {}).get("summary", {}).items():
        SUMMARY.setdefault(label, Counter()).update(counts)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One node id per test: schemathesis 4 names each operation's test `name[METHOD /path]` but sets
    the id through an attribute pytest 9 no longer reads, so every operation shared one id and
    pytest-xdist's `--dist loadfile` ran only one of them. The id is rebuilt from the name, and a
    duplicate left over stops the run instead of silently dropping tests."""
    for item in items:
        if item.parent is not None and item.nodeid.rsplit("::", 1)[-1] != item.name:
            item._id = item.parent.id.child(item.name)  # type: ignore[attr-defined]
    shared = sorted(nodeid for nodeid, count in Counter(item.nodeid for item in items).items() if count > 1)
    if shared:
        raise pytest.UsageError(f"tests that share a node id would not all run: {shared[:5]}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the counts tests reported (`SUMMARY`): a run shows how much input its fuzzing covered."""
    for label, counts in sorted(SUMMARY.items()):
        if counts:
            terminalreporter.write_line(f"{label}: " + ", ".join(f"{n:,} {what}" for what, n in sorted(counts.items())))


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
