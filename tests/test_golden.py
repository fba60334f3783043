"""Everything `sloplane render` writes, byte for byte: the examples and `tests/golden/declarations/`.

The declarations cover every SLI kind, staged SLOs, calendar windows, time slices, exclusions and a
handful of `bench/fleet.py` declarations. The expected output is in `tests/golden/render/<set>/`.

Golden files are reviewed like code, never regenerated blindly. To accept a change on purpose:

    SLOPLANE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py

then read `git diff tests/golden/` as you would read the code change that caused it.
"""

from __future__ import annotations

import difflib
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, run_cli

GOLDEN = ROOT / "tests" / "golden"
SETS = {"examples": EXAMPLES, "declarations": GOLDEN / "declarations"}
UPDATE = os.environ.get("SLOPLANE_UPDATE_GOLDEN") == "1"


def _tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _difference(name: str, expected: bytes, actual: bytes, limit: int = 60) -> str:
    lines = difflib.unified_diff(
        expected.decode().splitlines(), actual.decode().splitlines(), f"golden/{name}", f"rendered/{name}", lineterm=""
    )
    shown = list(lines)
    return "\n".join(shown[:limit] + ([f"... ({len(shown) - limit} more lines)"] if len(shown) > limit else []))


@pytest.mark.parametrize("name", sorted(SETS))
def test_render_output_is_identical_to_the_golden_files(name: str, tmp_path: Path) -> None:
    expected_root = GOLDEN / "render" / name
    out = expected_root if UPDATE else tmp_path / "out"
    result = run_cli("render", SETS[name], "--out", out)
    assert result.code == 0, result.stderr
    if UPDATE:
        return
    expected, actual = _tree(expected_root), _tree(out)
    assert expected, f"no golden files in {expected_root}: create them with SLOPLANE_UPDATE_GOLDEN=1"
    assert sorted(actual) == sorted(expected), {
        "missing": sorted(set(expected) - set(actual)),
        "unexpected": sorted(set(actual) - set(expected)),
    }
    changed = [path for path in expected if expected[path] != actual[path]]
    assert not changed, "\n\n".join(_difference(path, expected[path], actual[path]) for path in changed[:3])


@pytest.mark.parametrize("name", sorted(SETS))
def test_promtool_accepts_and_passes_the_golden_rules(name: str) -> None:
    """The golden rules are what users deploy: promtool checks each file and runs the generated tests."""
    folder = GOLDEN / "render" / name / "prometheus"
    rules = sorted(path.name for path in folder.glob("*.rules.yaml"))
    tests = sorted(path.name for path in folder.glob("*.test.yaml"))
    assert rules and len(tests) == len(rules)
    checked = subprocess.run(
        ["promtool", "check", "rules", *rules], capture_output=True, text=True, cwd=folder, check=False
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    tested = subprocess.run(
        ["promtool", "test", "rules", *tests], capture_output=True, text=True, cwd=folder, check=False
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
