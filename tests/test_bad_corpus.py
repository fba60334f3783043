"""Every broken declaration in tests/bad/ through the real CLI: exit 1, file:line, message, no traceback.

Each file states what it expects in header comments: `# expect: LINE MESSAGE-FRAGMENT`.
"""

from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

BAD = Path(__file__).parent / "bad"
CASES = sorted(BAD.glob("*.yaml"))


def _expectations(path: Path) -> list[tuple[int, str]]:
    expected = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect: "):
            number, message = line.removeprefix("# expect: ").split(" ", 1)
            expected.append((int(number), message))
    return expected


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert all(_expectations(path) for path in CASES)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_declaration_is_reported_precisely(path: Path) -> None:
    relative = path.relative_to(ROOT)
    result = run_cli("validate", relative)
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    for line_number, message in _expectations(path):
        prefix = f"{relative}:{line_number}:"
        matching = [line for line in lines if line.startswith(prefix) and message in line]
        assert matching, f"expected {prefix} ... {message!r} in:\n{result.stderr}"
    assert lines[-1].endswith("nothing done")
