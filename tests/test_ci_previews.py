"""The preview mode of the composite action and the GitLab preview template, run as their runners run
them (`tests/ci_runner.py`) on a real git repository holding a Pulumi project, against the local
GitHub and GitLab APIs (`tests/fake_forges.py`); and the example workflows, checked against the
action's inputs and the command's own `--help`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloplane.cli.sticky_comment import MARKER
from tests.ci_runner import ACTION, GITHUB, GITLAB_PREVIEW_TEMPLATE, job_variables, run_action, run_gitlab_job
from tests.conftest import ROOT
from tests.fake_forges import FakeGitHub, FakeGitLab, serve

EXAMPLES = ROOT / "examples" / "ci"
WRITER, READER = "ghs_writer", "ghs_reader"
PR = 12

PROGRAM = """\
from pathlib import Path

import pulumi_kubernetes as k8s

# Read relative to the project folder, as Pulumi runs a program: at BASE it reads BASE's file.
k8s.core.v1.ConfigMap(
    "settings",
    metadata={"name": "settings", "namespace": "apps"},
    data={"replicas": Path("replicas.txt").read_text().strip()},
)
k8s.core.v1.ConfigMap("static", metadata={"name": "static", "namespace": "apps"}, data={"a": "1"})
"""


def _git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", "-C", str(repo), *identity, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A repository whose `infra/` stack changes one ConfigMap in the working tree: (infra, base sha)."""
    root = tmp_path_factory.mktemp("checkout")
    infra = root / "infra"
    infra.mkdir()
    (infra / "Pulumi.yaml").write_text("name: infra\nruntime: python\n")
    (infra / "__main__.py").write_text(PROGRAM)
    (infra / "replicas.txt").write_text("2\n")
    _git(root, "init", "--quiet", "--initial-branch=main")
    _git(root, "add", ".")
    _git(root, "commit", "--quiet", "-m", "base")
    (infra / "replicas.txt").write_text("3\n")  # the pull request's change
    return infra, _git(root, "rev-parse", "HEAD")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tokens={WRITER: True, READER: False})
    with serve(fake):
        fake.add_pull_request(GITHUB["github.repository"], PR, ["please look at the replicas"])
        yield fake


def _pull_request(fake: FakeGitHub, base: str, token: str = WRITER) -> dict[str, str]:
    """The `github` context of a pull_request run, its API being the local one."""
    return {
        "github.api_url": fake.base_url,
        "github.token": token,
        "github.event.pull_request.number": str(PR),
        "github.event.pull_request.base.sha": base,
    }


# --- the action's preview mode ---------------------------------------------------------------------


def test_the_action_comments_the_preview_once_and_edits_it_on_the_next_push(
    checkout: tuple[Path, str], github: FakeGitHub, tmp_path: Path
) -> None:
    infra, base = checkout
    repo = GITHUB["github.repository"]
    given = {"mode": "preview", "preview-dir": "infra"}
    first = run_action(given, tmp_path / "one", _pull_request(github, base), cwd=infra.parent)
    assert first.code == 0, first.log
    human, mine = github.comments(repo, PR)
    assert human["body"] == "please look at the replicas"
    assert mine["body"].startswith(MARKER + "\n") and "Resources: ~ 1 to update 1 unchanged" in mine["body"]
    assert '~ data.replicas: "2" => "3"' in mine["body"]
    assert first.outputs["comment-url"] == mine["html_url"]
    assert first.outputs["decision"] == "", "preview mode gates nothing"
    assert MARKER in (tmp_path / "one" / "summary").read_text(), "the preview is in the step summary too"

    (infra / "replicas.txt").write_text("4\n")
    try:
        second = run_action(given, tmp_path / "two", _pull_request(github, base), cwd=infra.parent)
    finally:
        (infra / "replicas.txt").write_text("3\n")
    assert second.code == 0, second.log
    assert [c["id"] for c in github.comments(repo, PR)] == [human["id"], mine["id"]], "edited, not added"
    assert '"4"' in github.comments(repo, PR)[-1]["body"] and "updated " in second.log
    assert [method for method, _ in github.writes()] == ["POST", "PATCH"]
    sent = {headers.get("Authorization") for _, _, headers in github.requests}
    assert sent == {f"Bearer {WRITER}"}, "the token is the job's github.token"


def test_the_action_outside_a_pull_request_is_an_error_exit(tmp_path: Path) -> None:
    run = run_action({"mode": "preview"}, tmp_path)
    assert run.code == 2
    assert "::error title=sloplane preview::no pull request" in run.log


def test_a_read_only_token_fails_the_action_with_the_permission_it_needs(
    checkout: tuple[Path, str], github: FakeGitHub, tmp_path: Path
) -> None:
    infra, base = checkout
    run = run_action({"mode": "preview", "preview-dir": str(infra)}, tmp_path, _pull_request(github, base, READER))
    assert run.code == 2, run.log
    assert "pull-requests: write" in run.log and "::error title=sloplane preview::the comment could not" in run.log
    assert "Traceback" not in run.log and github.writes() == [
        ("POST", f"/repos/{GITHUB['github.repository']}/issues/{PR}/comments")
    ]
    assert len(github.comments(GITHUB["github.repository"], PR)) == 1


def test_a_bad_base_fails_the_action_before_any_comment(
    github: FakeGitHub, checkout: tuple[Path, str], tmp_path: Path
) -> None:
    infra, _ = checkout
    run = run_action(
        {"mode": "preview", "preview-dir": str(infra), "preview-base": "no-such-rev"},
        tmp_path,
        _pull_request(github, "unused"),
    )
    assert run.code == 2, run.log
    assert "is not a revision" in run.log and "::error title=sloplane preview::the preview failed (exit 2)" in run.log
    assert github.requests == []


# --- the GitLab template ---------------------------------------------------------------------------


def test_the_gitlab_preview_job_writes_the_note_and_keeps_the_report(
    checkout: tuple[Path, str], tmp_path: Path
) -> None:
    infra, base = checkout
    fake = FakeGitLab(tokens={"glpat-writer"})
    with serve(fake):
        fake.add_merge_request("acme/infra", 42, 5, [("first!", False)])
        ci = {
            "CI_PROJECT_ID": "42",
            "CI_MERGE_REQUEST_IID": "5",
            "CI_API_V4_URL": f"{fake.base_url}/api/v4",
            "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
            "GITLAB_TOKEN": "glpat-writer",
            "SLOPLANE_PREVIEW_DIR": str(infra),
        }
        job = run_gitlab_job(".example-sloplane-preview", ci, tmp_path, GITLAB_PREVIEW_TEMPLATE)
        assert job.code == 0, job.log
        first, mine = fake.notes(42, 5)
        assert first["body"] == "first!" and mine["body"].startswith(MARKER)
        assert '~ data.replicas: "2" => "3"' in mine["body"]
        assert (tmp_path / "sloplane-preview.md").read_text() == mine["body"], "kept as the job's artifact"
        assert fake.writes() == [("POST", "/api/v4/projects/42/merge_requests/5/notes")]
        assert {headers.get("PRIVATE-TOKEN") for _, _, headers in fake.requests} == {"glpat-writer"}

        outside = run_gitlab_job(
            ".sloplane-preview", {**ci, "CI_MERGE_REQUEST_IID": ""}, tmp_path, GITLAB_PREVIEW_TEMPLATE
        )
        assert outside.code == 2 and "not a merge-request pipeline" in outside.log


def test_the_gitlab_preview_template_only_defines_hidden_merge_request_jobs() -> None:
    template = yaml.safe_load(GITLAB_PREVIEW_TEMPLATE.read_text())
    assert all(name.startswith(".") for name in template)
    job = template[".sloplane-preview"]
    assert [rule["if"] for rule in job["rules"]] == ['$CI_PIPELINE_SOURCE == "merge_request_event"']
    assert job_variables(template, ".sloplane-preview")["GIT_DEPTH"] == "0"


# --- the examples, against the action and the command ----------------------------------------------


def _options(*command: str) -> set[str]:
    """The long options `sloplane COMMAND --help` lists: the flags CI files may use."""
    done = subprocess.run(
        [sys.executable, "-m", "sloplane", *command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
    )
    return set(re.findall(r"--[a-z][a-z-]+", done.stdout))


def test_every_flag_the_ci_files_pass_exists() -> None:
    known = {
        "preview": _options("preview"),
        "comment github": _options("comment", "github"),
        "comment gitlab": _options("comment", "gitlab"),
    }
    action = yaml.safe_load(ACTION.read_text())
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "preview"]
    template = yaml.safe_load(GITLAB_PREVIEW_TEMPLATE.read_text())
    example = yaml.safe_load((EXAMPLES / "gitlab-preview.yml").read_text())
    scripts = {
        "action.yml": (step["run"], "comment github"),
        "gitlab template": ("\n".join(template[".sloplane-preview"]["script"]), "comment gitlab"),
        "gitlab example": ("\n".join(example["pulumi-preview"]["script"]), "comment gitlab"),
    }
    for where, (script, comment) in scripts.items():
        lines = [
            line for line in script.splitlines() if re.search(r"\bsloplane (preview|comment)|^\s*(set --|args)", line)
        ]
        flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", "\n".join(lines)))
        allowed = known["preview"] | known[comment]
        assert flags, where
        assert flags <= allowed, f"{where} passes flags the command lacks: {flags - allowed}"
    assert {"--repo", "--pr", "--body-file", "--api-url", "--marker"} <= known["comment github"]
    assert {"--project", "--mr", "--body-file", "--api-url", "--marker"} <= known["comment gitlab"]


CONDITION = re.compile(r"^env\.(\w+) (==|!=) ''$")


def _holds(condition: str | None, env: Mapping[str, str]) -> bool:
    """A step's `if:` over `env.X == ''` / `!= ''` terms joined by `||` or `&&` (one kind per condition)."""
    if condition is None:
        return True
    joiner = "||" if "||" in condition else "&&"
    terms = []
    for term in condition.split(joiner):
        match = CONDITION.match(term.strip())
        assert match, f"an if: this test cannot evaluate: {condition!r}"
        empty = env.get(match.group(1), "") == ""
        terms.append(empty if match.group(2) == "==" else not empty)
    return any(terms) if joiner == "||" else all(terms)


def test_the_github_example_runs_pulumi_with_a_backend_and_sloplane_without() -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-preview.yml").read_text())
    assert workflow["permissions"]["pull-requests"] == "write"
    (job,) = workflow["jobs"].values()
    assert "secrets.PULUMI_ACCESS_TOKEN" in job["env"]["PULUMI_ACCESS_TOKEN"]
    steps: list[dict[str, Any]] = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["fetch-depth"] == 0
    pulumi = next(s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["comment-on-pr"] is True
    ours = next(s for s in steps if str(s.get("uses", "")).startswith("sloplane/sloplane@"))
    inputs = yaml.safe_load(ACTION.read_text())["inputs"]
    assert set(ours["with"]) <= set(inputs) and ours["with"]["mode"] == "preview"
    assert ours["with"]["preview-dir"] == pulumi["with"]["work-dir"], "both preview the same stack"
    for token, backend in product(["", "pul-abc"], ["", "s3://state"]):
        env = {"PULUMI_ACCESS_TOKEN": token, "PULUMI_BACKEND_URL": backend}
        ran = [s for s in steps if _holds(s.get("if"), env)]
        configured = bool(token or backend)
        assert (pulumi in ran, ours in ran) == (configured, not configured), env
