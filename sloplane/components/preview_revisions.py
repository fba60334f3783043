"""`sloplane preview --diff BASE`: the stack program at a git revision and at the working tree, compared.

BASE is checked out in a temporary `git worktree add --detach` of the repository holding the
project (removed afterwards), and the project folder's path relative to the repository root is
used inside it. Both programs then run under the SDK's mocks, each in a process of its own: the
Pulumi SDK keeps the stack, the settings and the event loop in module globals, so two programs in
one process would see each other's resources. The processes are forked from a server process that
has imported Pulumi and sloplane once (pulumi_datadog alone takes seconds to import), and a fresh
one runs each program.

Both runs use the sloplane of *this* installation: BASE's program is diffed as BASE declared it,
rendered by the working tree's sloplane, so the diff shows what the change to the declarations and
the program does, not what a sloplane upgrade would.

Secrets never leave the run that recorded them: each becomes a digest keyed by a random key that
lives for one diff, enough to say a secret changed and nothing more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sloplane.components.preview import program_path, run_program
from sloplane.components.preview_diff import Diff, DuplicateUrnError, Resource, Secret, diff_states

SECRET_SIGNATURE = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")
"""How a secret input reaches the mocks: a map with this key and value, the secret under "value"
(the Pulumi wire protocol's special signature key and its secret marker)."""

PRELOADED = ["sloplane.components", "sloplane.components.preview_revisions"]
"""What the fork server imports once so that each run starts with it imported."""


class PreviewDiffError(Exception):
    """A diff that cannot be made: not a repository, not a revision, a program that fails. One line."""


@dataclass(frozen=True)
class Compared:
    """The diff, and what was compared: for the report's heading."""

    diff: Diff
    project: str
    """The project folder relative to the repository root (`.` for the root)."""
    base: str
    commit: str
    """BASE's commit, abbreviated."""
    base_missing: bool = False
    """The project has no Pulumi.yaml at BASE (a new stack): everything is a create."""

    @property
    def heading(self) -> str:
        """`examples/stack: main (1a2b3c4) -> working tree`."""
        shown = self.base if self.commit.startswith(self.base) else f"{self.base} ({self.commit})"
        return f"{self.project}: {shown} -> working tree"


def diff_against(project_dir: Path, base: str) -> Compared:
    """Run the project's program at `base` and as it is in the working tree, and compare them."""
    program_path(project_dir)  # refuses a folder without a Pulumi.yaml or program before any git work
    root = _git(project_dir, "rev-parse", "--show-toplevel", fault=f"{project_dir} is not in a git repository")
    relative = project_dir.resolve().relative_to(Path(root).resolve())
    commit = _git(
        project_dir,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{base}^{{commit}}",
        fault=f"{base!r} is not a revision of the repository at {root}",
    )
    short = _git(project_dir, "rev-parse", "--short", commit, fault=f"cannot abbreviate {commit}")
    key = secrets.token_bytes(32)
    with _fork_server() as pool:
        head = pool.submit(_record, str(project_dir.resolve()), key)
        with _worktree(Path(root), commit) as tree:
            base_dir = tree / relative
            missing = not (base_dir / "Pulumi.yaml").is_file()
            before = [] if missing else _result(pool.submit(_record, str(base_dir), key), f"at {base}")
        after = _result(head, "in the working tree")
    try:
        diff = diff_states(before, after)
    except DuplicateUrnError as error:
        raise PreviewDiffError(str(error)) from None
    return Compared(diff, relative.as_posix() or ".", base, short, missing)


def _git(where: Path, *args: str, fault: str) -> str:
    """A git command's one line of output; any failure is `fault`."""
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, check=False)
    except OSError as error:
        raise PreviewDiffError(f"cannot run git: {error}") from None
    if done.returncode != 0:
        raise PreviewDiffError(fault)
    return done.stdout.strip()


@contextmanager
def _worktree(root: Path, commit: str) -> Iterator[Path]:
    """A detached checkout of `commit` in a temporary folder, removed (and unregistered) afterwards."""
    with tempfile.TemporaryDirectory(prefix="sloplane-preview-") as scratch:
        tree = Path(scratch) / "base"
        _git(root, "worktree", "add", "--detach", "--quiet", str(tree), commit, fault=f"cannot check out {commit}")
        try:
            yield tree
        finally:
            # Unregister even when removal fails: a stale entry would pin the commit in `git worktree list`.
            for command in (["worktree", "remove", "--force", str(tree)], ["worktree", "prune"]):
                subprocess.run(["git", "-C", str(root), *command], capture_output=True, check=False)


@contextmanager
def _fork_server() -> Iterator[ProcessPoolExecutor]:
    """Two workers forked from a server with Pulumi imported; each runs one program, then exits.
    (Where there is no fork server, Windows, each worker is a fresh interpreter: slower, as isolated.)"""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    context.set_forkserver_preload(PRELOADED)
    with ProcessPoolExecutor(max_workers=2, mp_context=context, max_tasks_per_child=1) as pool:
        yield pool


def _result(future: Future[list[Resource] | str], where: str) -> list[Resource]:
    try:
        outcome = future.result()
    except BrokenProcessPool:
        outcome = "its process died"
    if isinstance(outcome, str):
        raise PreviewDiffError(f"the stack program failed {where}: {outcome}")
    return outcome


def _record(project_dir: str, key: bytes) -> list[Resource] | str:
    """In a fresh process: run the program as Pulumi would (from its project folder) and return its
    resources with secrets as digests, or the one-line reason it failed."""
    os.dup2(2, 1)  # what the program prints must not end up in the report on standard output
    sys.stdout = sys.stderr
    try:
        os.chdir(project_dir)
        result = run_program(Path(project_dir))
        return [
            Resource(r.urn, r.type, r.name, r.parent, _digested(r.inputs, key), r.provider) for r in result.resources
        ]
    except BaseException as error:
        lines = str(error).strip().splitlines()
        return f"{type(error).__name__}: {lines[-1] if lines else 'no message'}"


def _digested(value: Any, key: bytes) -> Any:
    """Inputs as plain data: secrets replaced by keyed digests, anything else not plain data by its type."""
    if isinstance(value, dict):
        if value.get(SECRET_SIGNATURE[0]) == SECRET_SIGNATURE[1]:
            text = json.dumps(value.get("value"), sort_keys=True, default=repr)
            return Secret(hmac.new(key, text.encode(), hashlib.sha256).hexdigest())
        return {str(k): _digested(v, key) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_digested(v, key) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return f"<{type(value).__name__}>"
