"""`sloplane comment github|gitlab`: post `sloplane preview --format markdown` as one sticky comment.

Run in CI after the preview: the first run on a pull request (merge request) creates the comment,
later runs edit it, so the conversation holds one preview that is always the latest. Tokens come
from the environment only (`GITHUB_TOKEN`; `GITLAB_TOKEN`, else `CI_JOB_TOKEN`), never from an
option, so they stay out of shell history and process listings. The HTTP part is
`sticky_comment.py`; this module is the command line around it.

Prints `created|updated|unchanged URL` on standard output. Exit codes: 0 written (or already
current), 2 anything else (one line on standard error: a missing token, a refusal by the API, a
rate limit too long to wait for).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from sloplane.cli.common import Consoles
from sloplane.cli.sticky_comment import (
    MARKER,
    CommentError,
    Posted,
    github_remote,
    github_sticky,
    gitlab_remote,
    gitlab_sticky,
)

EXIT_FAULT = 2
REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")

BodyFile = Annotated[
    Path,
    typer.Option(
        "--body-file", help="The comment, e.g. the output of `sloplane preview --format markdown`; - reads stdin."
    ),
]
Marker = Annotated[
    str,
    typer.Option(
        "--marker",
        help="The first line that identifies the comment; added when the body lacks it. Give each previewed "
        "stack its own marker to keep one comment per stack.",
    ),
]


def _body(path: Path) -> str:
    """The body file's text (UTF-8), or a `CommentError` naming the file."""
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise CommentError(f"--body-file: cannot read {path}: {reason}") from None


def _token(*names: str) -> tuple[str, str]:
    """The first of these environment variables that is set and not blank, with its name."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    raise CommentError(f"set {' or '.join(names)} in the environment (tokens are never taken as options)")


def _marker(text: str) -> str:
    """One non-blank line: the marker is compared with each comment's first line."""
    marker = text.strip()
    if not marker or "\n" in marker:
        raise typer.BadParameter("give one non-blank line, e.g. <!-- sloplane-preview:infra -->", param_hint="--marker")
    return marker


def _run(console: Consoles, post: Callable[[], Posted]) -> None:
    """Post, print what happened, and turn every failure into one line and exit 2."""
    try:
        posted = post()
    except CommentError as error:
        console.err.print(f"sloplane comment: {error}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAULT) from None
    sys.stdout.write(f"{posted.action} {posted.url}\n")


def register(app: typer.Typer, console: Consoles) -> None:
    """Add `comment github` and `comment gitlab` to the `sloplane` app."""
    comment_app = typer.Typer(
        help="Create or edit the one sticky preview comment on a pull request (GitHub) or merge request (GitLab).",
        no_args_is_help=True,
    )
    app.add_typer(comment_app, name="comment")

    @comment_app.command(name="github")
    def github_command(  # keyword-only: typer passes options by name
        *,
        repo: Annotated[
            str, typer.Option("--repo", envvar="GITHUB_REPOSITORY", help="OWNER/REPO ($GITHUB_REPOSITORY).")
        ],
        pr: Annotated[int, typer.Option("--pr", min=1, help="The pull request's number.")],
        body_file: BodyFile,
        api_url: Annotated[
            str, typer.Option("--api-url", envvar="GITHUB_API_URL", help="The REST API ($GITHUB_API_URL).")
        ] = "https://api.github.com",
        marker: Marker = MARKER,
    ) -> None:
        """Edit the pull request's comment that starts with the marker, or create it. Token: $GITHUB_TOKEN."""
        if not REPO.fullmatch(repo):
            raise typer.BadParameter(f"'{repo}' is not OWNER/REPO", param_hint="--repo")
        marker = _marker(marker)

        def post() -> Posted:
            _, token = _token("GITHUB_TOKEN")
            body = _body(body_file)
            return github_sticky(github_remote(api_url, token), repo, pr, body, marker)

        _run(console, post)

    @comment_app.command(name="gitlab")
    def gitlab_command(
        *,
        project: Annotated[
            str, typer.Option("--project", envvar="CI_PROJECT_ID", help="Project id or path ($CI_PROJECT_ID).")
        ],
        mr: Annotated[
            int,
            typer.Option(
                "--mr", envvar="CI_MERGE_REQUEST_IID", min=1, help="The merge request's IID ($CI_MERGE_REQUEST_IID)."
            ),
        ],
        body_file: BodyFile,
        api_url: Annotated[
            str, typer.Option("--api-url", envvar="CI_API_V4_URL", help="The REST API, .../api/v4 ($CI_API_V4_URL).")
        ] = "https://gitlab.com/api/v4",
        marker: Marker = MARKER,
    ) -> None:
        """Edit the merge request's note that starts with the marker, or create it.

        Token: $GITLAB_TOKEN (an access token with the `api` scope), else $CI_JOB_TOKEN.
        """
        if not project.strip():
            raise typer.BadParameter("give the project's id or path", param_hint="--project")
        marker = _marker(marker)

        def post() -> Posted:
            name, token = _token("GITLAB_TOKEN", "CI_JOB_TOKEN")
            body = _body(body_file)
            remote = gitlab_remote(api_url, token, job_token=name == "CI_JOB_TOKEN")
            return gitlab_sticky(remote, project.strip(), mr, body, marker)

        _run(console, post)
