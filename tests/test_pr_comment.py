"""`sloplane comment github|gitlab`: the one sticky preview comment, against local stand-ins for
GitHub's and GitLab's REST APIs (`tests/fake_forges.py`) that page, authenticate and rate-limit as
the real ones do. Waits are recorded by an injected `sleep` (and read off an injected clock), never
timed; the command itself runs as a user runs it, in a subprocess."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from sloplane.cli.sticky_comment import (
    MARKER,
    CommentError,
    Remote,
    call,
    check_api_url,
    github_remote,
    github_sticky,
    gitlab_remote,
    gitlab_sticky,
)
from sloplane.components.preview_report import MARKER as REPORT_MARKER
from tests.conftest import ROOT
from tests.fake_forges import FakeGitHub, FakeGitLab, serve

NOW = 1_900_000_000.0
WRITER, READER = "ghs_writer", "ghs_reader"
REPO, PR = "acme/infra", 7
BODY = f"{MARKER}\n#### sloplane preview: stack\n\n**Resources: ~ 1 to update 3 unchanged**\n"
OTHERS = ["LGTM", f"why does it say {MARKER} here?", f"> {MARKER}\n> quoted"]


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"waited {seconds} s where no wait was due")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tokens={WRITER: True, READER: False})
    with serve(fake):
        fake.add_pull_request(REPO, PR, OTHERS)
        yield fake


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    fake = FakeGitLab(tokens={"glpat-writer"}, job_tokens={"job-token"})
    with serve(fake):
        fake.add_merge_request("acme/infra", 42, 5, [("nice", False), (f"{MARKER}\nsystem says", True)])
        yield fake


def _github(fake: FakeGitHub, token: str = WRITER, waits: list[float] | None = None) -> Remote:
    sleep = waits.append if waits is not None else _no_sleep
    return github_remote(fake.base_url, token, sleep=sleep, clock=lambda: NOW)


def _gitlab(fake: FakeGitLab, waits: list[float] | None = None) -> Remote:
    sleep = waits.append if waits is not None else _no_sleep
    return gitlab_remote(f"{fake.base_url}/api/v4", "glpat-writer", sleep=sleep, clock=lambda: NOW)


def test_the_marker_is_the_first_line_of_the_preview_report() -> None:
    assert MARKER == REPORT_MARKER


# --- GitHub ----------------------------------------------------------------------------------------


def test_the_comment_is_created_when_absent_then_edited_and_others_never_touched(github: FakeGitHub) -> None:
    before = copy.deepcopy(github.comments(REPO, PR))
    created = github_sticky(_github(github), REPO, PR, BODY)
    assert created.action == "created"
    *others, mine = github.comments(REPO, PR)
    assert others == before, "comments without the marker as their first line are left alone"
    assert mine["body"] == BODY and created.url == f"https://github.com/{REPO}/pull/{PR}#issuecomment-{mine['id']}"

    edited = github_sticky(_github(github), REPO, PR, BODY.replace("~ 1 to update", "+ 2 to create"))
    assert (edited.action, edited.id) == ("updated", mine["id"])
    assert github.comments(REPO, PR)[:-1] == before and "+ 2 to create" in github.comments(REPO, PR)[-1]["body"]
    again = github_sticky(_github(github), REPO, PR, github.comments(REPO, PR)[-1]["body"])
    assert again.action == "unchanged"
    assert github.writes() == [
        ("POST", f"/repos/{REPO}/issues/{PR}/comments"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{mine['id']}"),
    ], "an unchanged comment is not written again"


def test_the_marked_comment_on_page_two_is_edited_following_the_link_header(github: FakeGitHub) -> None:
    bodies = [f"comment {n}" for n in range(150)]
    bodies[130] = f"{MARKER}\nthe old preview"
    github.add_pull_request(REPO, 8, bodies)
    before = copy.deepcopy(github.comments(REPO, 8))
    target = before[130]["id"]

    posted = github_sticky(_github(github), REPO, 8, BODY)
    assert (posted.action, posted.id) == ("updated", target)
    after = github.comments(REPO, 8)
    assert after[130]["body"] == BODY
    assert [c for i, c in enumerate(after) if i != 130] == [c for i, c in enumerate(before) if i != 130]
    reads = [path for method, path, _ in github.requests if method == "GET"]
    repo_id = github.repo_ids[REPO]
    assert reads == [
        f"/repos/{REPO}/issues/8/comments?per_page=100",
        f"/repositories/{repo_id}/issues/8/comments?per_page=100&page=2",  # the link as GitHub gives it
    ]
    assert github.writes() == [("PATCH", f"/repos/{REPO}/issues/comments/{target}")]


def test_a_body_without_the_marker_gets_it_and_another_marker_is_another_comment(github: FakeGitHub) -> None:
    github_sticky(_github(github), REPO, PR, "plain text")
    assert github.comments(REPO, PR)[-1]["body"] == f"{MARKER}\nplain text"
    github_sticky(_github(github), REPO, PR, BODY, marker="<!-- sloplane-preview:dns -->")
    bodies = [c["body"] for c in github.comments(REPO, PR)]
    assert bodies[-2:] == [f"{MARKER}\nplain text", f"<!-- sloplane-preview:dns -->\n{BODY}"]


@pytest.mark.parametrize(
    ("status", "headers", "message", "expected_wait"),
    [
        (403, {"Retry-After": "2"}, "You have exceeded a secondary rate limit.", 2.0),
        (429, {"Retry-After": "1"}, "You have exceeded a secondary rate limit.", 1.0),
        (
            403,
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 5), "X-RateLimit-Limit": "1000"},
            "API rate limit exceeded for installation ID 1.",
            5.0,
        ),
    ],
    ids=["secondary-403", "secondary-429", "primary"],
)
def test_a_short_rate_limit_is_waited_out(
    github: FakeGitHub, status: int, headers: dict[str, str], message: str, expected_wait: float
) -> None:
    github.throttle(status, headers, {"message": message, "documentation_url": "https://docs.github.com/rest"})
    waits: list[float] = []
    posted = github_sticky(_github(github, waits=waits), REPO, PR, BODY)
    assert posted.action == "created"
    assert waits == [expected_wait]
    assert [method for method, _, _ in github.requests] == ["GET", "GET", "POST"], "the limited read is asked again"


@pytest.mark.parametrize(
    ("headers", "message", "said"),
    [
        ({"Retry-After": "60"}, "You have exceeded a secondary rate limit.", "again after 60 s"),
        (
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 3600)},
            "API rate limit",
            "again after 3600 s",
        ),
        ({}, "You have exceeded a secondary rate limit. Please wait a few minutes", "again after 60 s"),
    ],
    ids=["retry-after", "primary-reset", "secondary-without-headers"],
)
def test_a_long_rate_limit_fails_at_once_with_when_to_retry(
    github: FakeGitHub, headers: dict[str, str], message: str, said: str
) -> None:
    github.throttle(403, headers, {"message": message})
    with pytest.raises(CommentError, match=f"^GitHub rate-limited the request \\(403: .*\\); {said}"):
        github_sticky(_github(github), REPO, PR, BODY)
    assert github.writes() == []


def test_a_limit_that_keeps_coming_back_is_given_up_after_three_waits(github: FakeGitHub) -> None:
    github.throttle(429, {"Retry-After": "1"}, {"message": "slow down"}, times=10)
    waits: list[float] = []
    with pytest.raises(CommentError, match=r"still, after 3 waits"):
        github_sticky(_github(github, waits=waits), REPO, PR, BODY)
    assert waits == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("token", "repo", "number", "message"),
    [
        ("wrong", REPO, PR, r"^GitHub refused the token \(401: Bad credentials\): check GITHUB_TOKEN$"),
        (WRITER, REPO, 99, rf"^GitHub found no pull request 99 in {REPO} \(404: Not Found\)"),
        (WRITER, "acme/elsewhere", PR, r"^GitHub found no pull request 7 in acme/elsewhere \(404"),
        (
            READER,
            REPO,
            PR,
            r"^GitHub forbids this \(403: Resource not accessible by integration\): .*pull-requests: write",
        ),
    ],
    ids=["bad-token", "no-such-pr", "no-such-repo", "read-only-token"],
)
def test_refusals_are_one_clear_line(github: FakeGitHub, token: str, repo: str, number: int, message: str) -> None:
    with pytest.raises(CommentError, match=message):
        github_sticky(_github(github, token=token), repo, number, BODY)
    assert all(c["body"] in OTHERS for c in github.comments(REPO, PR))


def test_a_renamed_repository_is_not_followed_with_the_token(github: FakeGitHub) -> None:
    github.renamed["acme/old-infra"] = REPO
    with pytest.raises(CommentError, match=r"^GitHub moved pull request 7 in acme/old-infra \(answered 301\)"):
        github_sticky(_github(github), "acme/old-infra", PR, BODY)
    assert len(github.requests) == 1


def test_a_body_over_githubs_limit_is_refused_before_any_request(github: FakeGitHub) -> None:
    with pytest.raises(CommentError, match=r"65,537 characters; GitHub takes at most 65,536"):
        github_sticky(_github(github), REPO, PR, MARKER + "\n" + "x" * (65_536 - len(MARKER)))
    assert github.requests == []


def test_the_fake_refuses_an_over_long_body_as_github_does(github: FakeGitHub) -> None:
    remote = _github(github)  # `call` alone: the transport, past the local length check
    with pytest.raises(CommentError, match=r"GitHub answered 422: Validation Failed: body is too long"):
        call(remote, "POST", f"{remote.api_url}/repos/{REPO}/issues/{PR}/comments", "x", {"body": "x" * 70_000})


def test_a_next_page_on_another_host_is_refused_and_gets_no_token(github: FakeGitHub) -> None:
    github.add_pull_request(REPO, 9, [f"comment {n}" for n in range(120)])
    api_url = github.base_url
    github.base_url = "http://127.0.0.2:9"  # the fake now links its next page elsewhere
    remote = github_remote(api_url, WRITER, sleep=_no_sleep)
    with pytest.raises(CommentError, match=r"next page is on another host \(127\.0\.0\.2:9\): not sending the token"):
        github_sticky(remote, REPO, 9, BODY)
    assert len(github.requests) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://github.example.com/api/v3", "plain http; the token would travel in clear"),
        ("ftp://github.example.com", "not an http"),
        ("github.example.com", "not an http"),
    ],
)
def test_an_api_url_that_would_leak_the_token_is_refused(url: str, message: str) -> None:
    with pytest.raises(CommentError, match=message):
        check_api_url(url)
    assert check_api_url("https://github.example.com/api/v3/") == "https://github.example.com/api/v3"


# --- GitLab ----------------------------------------------------------------------------------------


def test_gitlab_creates_the_note_then_edits_it_and_skips_system_notes(gitlab: FakeGitLab) -> None:
    before = copy.deepcopy(gitlab.notes(42, 5))
    created = gitlab_sticky(_gitlab(gitlab), "acme/infra", 5, BODY)
    assert created.action == "created" and gitlab.notes(42, 5)[:-1] == before
    edited = gitlab_sticky(_gitlab(gitlab), "42", 5, BODY + "more\n")
    assert (edited.action, edited.id) == ("updated", created.id)
    assert gitlab.notes(42, 5)[:-1] == before and gitlab.notes(42, 5)[-1]["body"] == BODY + "more\n"
    assert gitlab.writes() == [
        ("POST", "/api/v4/projects/acme%2Finfra/merge_requests/5/notes"),
        ("PUT", f"/api/v4/projects/42/merge_requests/5/notes/{created.id}"),
    ]


def test_gitlab_edits_the_marked_note_on_page_two(gitlab: FakeGitLab) -> None:
    notes = [(f"note {n}", n % 10 == 0) for n in range(130)]
    notes[110] = (f"{MARKER}\nold", False)
    gitlab.add_merge_request("acme/infra", 42, 6, notes)
    before = copy.deepcopy(gitlab.notes(42, 6))
    posted = gitlab_sticky(_gitlab(gitlab), "42", 6, BODY)
    assert (posted.action, posted.id) == ("updated", before[110]["id"])
    after = gitlab.notes(42, 6)
    assert after[110]["body"] == BODY and after[:110] + after[111:] == before[:110] + before[111:]
    pages = [path.rsplit("page=", 1)[1] for method, path, _ in gitlab.requests if method == "GET"]
    assert pages == ["1", "2"]


def test_gitlab_waits_out_a_short_429_and_fails_on_a_long_one(gitlab: FakeGitLab) -> None:
    gitlab.throttle(429, {"Retry-After": "3", "RateLimit-Remaining": "0"}, "Retry later")
    waits: list[float] = []
    assert gitlab_sticky(_gitlab(gitlab, waits), "42", 5, BODY).action == "created"
    assert waits == [3.0]
    gitlab.throttle(429, {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 600)}, "Retry later")
    with pytest.raises(CommentError, match=r"^GitLab rate-limited the request \(429: Retry later\); again after 600 s"):
        gitlab_sticky(_gitlab(gitlab), "42", 5, BODY + "x")


@pytest.mark.parametrize(
    ("token", "project", "iid", "message"),
    [
        ("nope", "42", 5, r"^GitLab refused the token \(401: 401 Unauthorized\): check GITLAB_TOKEN$"),
        (
            "glpat-writer",
            "acme/missing",
            5,
            r"^GitLab found no merge request !5 in project acme/missing \(404: 404 Proj",
        ),
        ("glpat-writer", "42", 77, r"^GitLab found no merge request !77 in project 42 \(404: 404 Not found\)"),
    ],
    ids=["bad-token", "no-such-project", "no-such-mr"],
)
def test_gitlab_refusals_are_one_clear_line(
    gitlab: FakeGitLab, token: str, project: str, iid: int, message: str
) -> None:
    remote = gitlab_remote(f"{gitlab.base_url}/api/v4", token, sleep=_no_sleep)
    with pytest.raises(CommentError, match=message):
        gitlab_sticky(remote, project, iid, BODY)
    assert gitlab.writes() == []


# --- the command -----------------------------------------------------------------------------------


def _sloplane(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("GITHUB_", "GITLAB_", "CI_"))}
    return subprocess.run(
        [sys.executable, "-m", "sloplane", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_github_command_creates_then_updates(github: FakeGitHub, tmp_path: Path) -> None:
    body = tmp_path / "comment.md"
    body.write_text(BODY)
    args = ["comment", "github", "--repo", REPO, "--pr", str(PR), "--body-file", str(body)]
    first = _sloplane(*args, "--api-url", github.base_url, env={"GITHUB_TOKEN": WRITER})
    assert first.returncode == 0, first.stderr
    comment_id = github.comments(REPO, PR)[-1]["id"]
    assert first.stdout == f"created https://github.com/{REPO}/pull/{PR}#issuecomment-{comment_id}\n"
    body.write_text(BODY + "changed\n")
    second = _sloplane(*args, env={"GITHUB_TOKEN": WRITER, "GITHUB_API_URL": github.base_url})
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("updated ") and github.comments(REPO, PR)[-1]["body"].endswith("changed\n")
    assert len(github.comments(REPO, PR)) == len(OTHERS) + 1


class Failing(NamedTuple):
    extra: list[str]
    env: dict[str, str]
    message: str
    throttled: bool = False


GOOD = {"GITHUB_TOKEN": WRITER}


@pytest.mark.parametrize(
    "case",
    [
        Failing([], {}, "sloplane comment: set GITHUB_TOKEN in the environment"),
        Failing([], {"GITHUB_TOKEN": "wrong"}, "GitHub refused the token (401: Bad credentials)"),
        Failing(["--pr", "99"], GOOD, "GitHub found no pull request 99 in acme/infra (404"),
        Failing([], GOOD, "GitHub rate-limited the request (403: ", throttled=True),
        Failing(["--repo", "not a repo"], GOOD, "'not a repo' is not OWNER/REPO"),
        Failing(["--body-file", "/nonexistent/comment.md"], GOOD, "cannot read /nonexistent"),
        Failing(["--marker", " "], GOOD, "give one non-blank line"),
    ],
    ids=["no-token", "bad-token", "no-such-pr", "long-rate-limit", "bad-repo", "no-body-file", "blank-marker"],
)
def test_the_github_command_fails_with_one_line_and_exit_2(github: FakeGitHub, tmp_path: Path, case: Failing) -> None:
    if case.throttled:
        github.throttle(403, {"Retry-After": "120"}, {"message": "You have exceeded a secondary rate limit."})
    body = tmp_path / "comment.md"
    body.write_text(BODY)
    args = ["--repo", REPO, "--pr", str(PR), "--body-file", str(body), "--api-url", github.base_url, *case.extra]
    done = _sloplane("comment", "github", *args, env=case.env)
    assert done.returncode == 2
    assert case.message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert github.writes() == []


def test_the_gitlab_command_reads_ci_variables_and_falls_back_to_the_job_token(
    gitlab: FakeGitLab, tmp_path: Path
) -> None:
    body = tmp_path / "note.md"
    body.write_text(BODY)
    ci = {"CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "5", "CI_API_V4_URL": f"{gitlab.base_url}/api/v4"}
    done = _sloplane("comment", "gitlab", "--body-file", str(body), env={**ci, "CI_JOB_TOKEN": "job-token"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created merge request !5 in project 42, note ")
    (_, _, headers) = gitlab.requests[-1]
    assert headers.get("JOB-TOKEN") == "job-token" and "PRIVATE-TOKEN" not in headers
    refused = _sloplane("comment", "gitlab", "--body-file", str(body), env={**ci, "GITLAB_TOKEN": "expired"})
    assert refused.returncode == 2 and "GitLab refused the token (401" in refused.stderr
    assert "Traceback" not in refused.stderr
