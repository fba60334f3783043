"""Hostile and careless files given to the CLI: alias bombs, deep nesting, huge numbers, symlinks, bad tokens files.

Each test names the defect of issue 10 it guards. Files are refused with `path:line` and a short message,
in bounded time and memory, with nothing written outside the folder the user named and no traceback.
The memory of a subprocess is read from its own resource usage (`os.wait4`), never from the test process.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from sloplane.interop import load_paths
from sloplane.sandbox import free_port
from tests.conftest import ROOT, minimal, run_cli
from tests.servers import wait_until_up

MEMORY_CEILING = 4 * 2**30
"""Address space a refused input may use: far above what loading takes, far below what a bomb grows to."""


@dataclass
class Bounded:
    code: int
    stdout: str
    stderr: str
    max_rss_mib: float


_LAUNCH = (
    "import atexit, resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1]))); "
    "report = sys.argv[2]; "
    "atexit.register(lambda: open(report, 'w').write("
    "next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')).split()[1])); "
    "sys.argv = ['sloplane', *sys.argv[3:]]; "
    "runpy.run_module('sloplane', run_name='__main__')"
)
"""Start `python -m sloplane` under an address-space ceiling set inside the child (no preexec_fn), writing
its peak resident memory (`VmHWM`, kB) to a file as it exits.

Not `wait4`'s `ru_maxrss`: Linux carries the peak of the memory a process had *before* exec into it, so a
child forked from a large pytest process reports pytest's size, not its own."""


def run_bounded(*args: str | Path, timeout: float = 60.0, cwd: Path | None = None) -> Bounded:
    """The CLI under an address-space ceiling, with its own peak resident memory."""
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        report = Path(folder) / "peak"
        command = [sys.executable, "-c", _LAUNCH, str(MEMORY_CEILING), str(report), *map(str, args)]
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=cwd or ROOT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"sloplane {' '.join(map(str, args))} did not finish within {timeout} s") from None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
        peak_kib = int(report.read_text()) if report.exists() else 0
    assert peak_kib > 0, f"the child reported no peak memory: {stderr[-2000:]}"
    return Bounded(process.returncode, stdout, stderr, peak_kib / 1024)


HEADER = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata:
  name: bomb
"""

LAUGHS = (
    HEADER
    + "spec:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"  a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n" for level in range(1, 9))
)
"""The 'billion laughs': nine aliases per level, nine levels - 387 million strings from under 1 KB."""

DOUBLING = (
    HEADER
    + "spec:\n  d0: &d0 [x, x]\n"
    + "".join(f"  d{level}: &d{level} [*d{level - 1}, *d{level - 1}]\n" for level in range(1, 40))
)
"""An anchor chain that doubles at each step: 2^40 strings from 1.5 KB."""


@pytest.mark.parametrize(("text", "line"), [(LAUGHS, 7), (DOUBLING, 7)], ids=["billion-laughs", "doubling-chain"])
def test_defect_1_an_alias_bomb_is_refused_at_its_line_in_bounded_memory(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    assert len(text) < 2000
    result = run_bounded("validate", path)
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr
    (problem,) = [entry for entry in result.stderr.splitlines() if entry.startswith(f"{path}:")]
    where = int(problem.split(":")[1])
    assert where >= line and "alias" in problem, problem
    assert result.max_rss_mib < 400, f"validate of a {len(text)}-byte bomb peaked at {result.max_rss_mib:.0f} MiB"


def test_defect_1_a_recursive_alias_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(HEADER + "spec: &spec\n  service: checkout\n  again: *spec\n", encoding="utf-8")
    result = load_paths([path])
    (error,) = result.errors
    assert error.position.line == 7 and "recursive alias" in error.message, error.render()


def test_defect_1_deep_nesting_is_a_clean_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(HEADER + "spec:\n  a: " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    result = run_bounded("validate", path)
    assert result.code == 1, (result.code, result.stderr[-2000:])
    assert f"{path}:" in result.stderr and "nested deeper than" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_defect_1_a_file_too_large_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w", encoding="utf-8") as stream:
        stream.write(minimal())
        stream.write(f"# {'x' * 1024}\n" * (40 * 1024))
    result = run_bounded("validate", path)
    assert result.code == 1
    assert f"{path}:1:1: error:" in result.stderr and "MiB" in result.stderr, result.stderr
    assert result.max_rss_mib < 400


def test_defect_1_a_bomb_in_a_receivers_or_tokens_file_stops_serve_with_a_message(tmp_path: Path) -> None:
    declarations = tmp_path / "slo.yaml"
    declarations.write_text(minimal(), encoding="utf-8")
    bomb = "".join(f"k{level}: &k{level} [{', '.join([f'*k{level - 1}'] * 9)}]\n" for level in range(1, 9))
    bomb = "k0: &k0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + bomb
    receivers, tokens = tmp_path / "receivers.yaml", tmp_path / "tokens.yaml"
    receivers.write_text(bomb, encoding="utf-8")
    tokens.write_text(bomb, encoding="utf-8")
    tokens.chmod(0o600)
    good_tokens = tmp_path / "good-tokens.yaml"
    good_tokens.write_text("tokens:\n  - {name: ci, sha256: " + "a" * 64 + ", scopes: [gate]}\n", encoding="utf-8")
    good_tokens.chmod(0o600)
    serve = ["serve", declarations, "--prometheus", "http://127.0.0.1:9", "--port", "0", "--db", tmp_path / "d.db"]
    for extra, named in (
        (["--tokens", tokens], tokens),
        (["--tokens", good_tokens, "--receivers", receivers], receivers),
    ):
        result = run_bounded(*serve, *extra, timeout=60)
        assert result.code == 1, result.stderr
        assert f"{named}:" in result.stderr and "alias" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert result.max_rss_mib < 400


def test_defect_9_numbers_and_durations_beyond_any_meaning_are_clean_errors(tmp_path: Path) -> None:
    digits = tmp_path / "digits.yaml"
    digits.write_text(minimal().replace("objective: 99.9", "objective: " + "9" * 100_000), encoding="utf-8")
    window = tmp_path / "window.yaml"
    window.write_text(minimal() + "  window: 99999999999999999999d\n", encoding="utf-8")
    for path, line, field in ((digits, 8, "spec.objective"), (window, 11, "spec.window")):
        result = run_cli("validate", path)
        assert result.code == 1, result.stderr
        (problem,) = [entry for entry in result.stderr.splitlines() if entry.startswith(f"{path}:{line}:")]
        assert field in problem and len(problem) < 400, problem
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr


# --- render --out and symlinks (defect 2) ------------------------------------------------------------------


def test_defect_2_render_never_writes_or_removes_through_a_symlinked_folder(tmp_path: Path) -> None:
    declarations = tmp_path / "slo.yaml"
    declarations.write_text(minimal(), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    foreign = elsewhere / "someone-elses.rules.yaml"
    foreign.write_text("groups: []\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "prometheus").symlink_to(elsewhere, target_is_directory=True)
    for extra in ((), ("--check",)):
        result = run_cli("render", declarations, "--out", out, *extra)
        assert result.code == 1, result.stderr
        assert f"{out / 'prometheus'}" in result.stderr and "symbolic link" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["someone-elses.rules.yaml"]
    assert foreign.read_text(encoding="utf-8") == "groups: []\n"
    assert sorted(p.name for p in out.iterdir()) == ["prometheus"]  # nothing half-written beside it


def test_defect_2_a_symlinked_output_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    declarations = tmp_path / "slo.yaml"
    declarations.write_text(minimal(), encoding="utf-8")
    out = tmp_path / "out"
    (out / "grafana").mkdir(parents=True)
    outside = tmp_path / "outside.json"
    outside.write_text("{}", encoding="utf-8")
    (out / "grafana" / "checkout-availability.json").symlink_to(outside)
    result = run_cli("render", declarations, "--out", out)
    assert result.code == 0, result.stderr
    assert outside.read_text(encoding="utf-8") == "{}"
    written = out / "grafana" / "checkout-availability.json"
    assert not written.is_symlink() and written.read_text(encoding="utf-8").startswith("{")


def test_defect_10_rendered_files_are_readable_as_the_umask_allows(tmp_path: Path) -> None:
    declarations = tmp_path / "slo.yaml"
    declarations.write_text(minimal(), encoding="utf-8")
    for umask, expected in ((0o022, 0o644), (0o077, 0o600)):
        out = tmp_path / f"out-{umask:o}"
        launch = "import os, runpy, sys; os.umask(int(sys.argv[1], 8)); sys.argv = ['sloplane', *sys.argv[2:]]; "
        launch += "runpy.run_module('sloplane', run_name='__main__')"
        command = [sys.executable, "-c", launch, f"{umask:o}", "render", str(declarations), "--out", str(out)]
        process = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
        assert process.returncode == 0, process.stderr
        modes = {stat.S_IMODE(path.stat().st_mode) for path in out.rglob("*") if path.is_file()}
        assert modes == {expected}, (umask, modes)


def test_defect_2_the_folder_named_may_be_reached_through_a_link_but_not_folders_inside_it(tmp_path: Path) -> None:
    declarations = tmp_path / "slo.yaml"
    declarations.write_text(minimal(), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere, target_is_directory=True)
    named = run_cli("export", "openslo", declarations, "--out", tmp_path / "link" / "inner")
    assert named.code == 0, named.stderr  # the user chose that path, link and all
    assert (elsewhere / "inner" / "checkout-availability.yaml").is_file()
    out = tmp_path / "out"
    (out / "prometheus").mkdir(parents=True)
    (out / "kubernetes").symlink_to(elsewhere, target_is_directory=True)
    refused = run_cli("render", declarations, "--out", out)
    assert refused.code == 1 and f"{out / 'kubernetes'}" in refused.stderr, refused.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["inner"]
    assert list((out / "prometheus").iterdir()) == []


# --- tokens files (defect 9) ----------------------------------------------------------------------------------


def _serve_with_tokens(tmp_path: Path, tokens: Path, timeout: float = 60) -> Bounded:
    declarations = tmp_path / "slo.yaml"
    declarations.write_text(minimal(), encoding="utf-8")
    return run_bounded(
        "serve",
        declarations,
        "--prometheus",
        "http://127.0.0.1:9",
        "--tokens",
        tokens,
        "--port",
        "1",  # never reached: every case here is refused before listening
        "--db",
        tmp_path / "d.db",
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"tokens:\n  - name: \xff\xfe\n", "not UTF-8 text"),
        (b"tokens: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", "nested deeper than"),
        (b"tokens: []\n", "no tokens"),
        (b"tokens:\n", "no tokens"),
    ],
    ids=["bad-utf8", "deep", "empty-list", "null"],
)
def test_defect_9_a_bad_tokens_file_is_refused_naming_the_file(tmp_path: Path, content: bytes, expected: str) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_bytes(content)
    tokens.chmod(0o600)
    result = _serve_with_tokens(tmp_path, tokens)
    assert result.code == 1, result.stderr
    assert f"{tokens}" in result.stderr and expected in result.stderr, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_defect_9_a_tokens_file_others_may_write_is_refused_and_one_they_may_read_is_warned_of(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens:\n  - {name: ci, sha256: " + "a" * 64 + ", scopes: [gate]}\n", encoding="utf-8")
    tokens.chmod(0o666)
    refused = _serve_with_tokens(tmp_path, tokens)
    assert refused.code == 1 and "writable by others" in refused.stderr and "chmod" in refused.stderr, refused.stderr
    tokens.chmod(0o644)
    declarations = tmp_path / "slo.yaml"
    port = free_port()
    command = [sys.executable, "-m", "sloplane", "serve", str(declarations), "--prometheus", "http://127.0.0.1:9"]
    command += ["--tokens", str(tokens), "--port", str(port), "--db", str(tmp_path / "d.db")]
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    warned = stderr.decode()
    assert "readable by others" in warned and "chmod 600" in warned, warned
    assert "writable by others" not in warned
