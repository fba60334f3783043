"""One sticky comment on a GitHub pull request or a GitLab merge request, through their REST APIs.

A CI job that comments on every push would bury the conversation under copies of the same preview;
so the comment carries a marker as its first line (an HTML comment, invisible when rendered) and
the job edits the comment that starts with it, creating one only when none does. Comments that do
not start with the marker are never written to, whoever wrote them.

Both APIs are paged (GitHub by its `Link` header, GitLab by `X-Next-Page`), so every page is read
before deciding that no marked comment exists. Rate limits are waited out when the API says the
wait is short (at most `WAIT_LIMIT` seconds: a CI job may sleep that long) and are a clear failure
otherwise, naming when to retry, rather than a job that hangs for an hour. The token is only ever
sent to the API's own origin: a `next` link pointing elsewhere is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests

MARKER = "<!-- sloplane-preview -->"
"""The first line of `sloplane preview --format markdown` (`components.preview_report.MARKER`, kept
equal by a test: importing the components here would load the Pulumi SDK for every command)."""

WAIT_LIMIT = 10.0
"""The longest rate-limit wait worth sleeping through in a CI job, in seconds."""
MAX_WAITS = 3
"""Rate-limit waits per request before giving up: a limit that keeps coming back is not short."""
MAX_PAGES = 200
"""20,000 comments at 100 a page: far past any real pull request, short of looping forever."""
TIMEOUT_SECONDS = 30.0
GITHUB_BODY_LIMIT = 65_536
"""GitHub refuses longer comment bodies (422); refused here first, with a message that says so."""
GITLAB_BODY_LIMIT = 1_000_000
GITHUB_API_VERSION = "2022-11-28"

Action = Literal["created", "updated", "unchanged"]


class CommentError(Exception):
    """The comment could not be written; the message says why and what to do (printed, exit 2)."""


@dataclass(frozen=True)
class Posted:
    """What happened: the comment created, edited, or left alone because it already said this."""

    action: Action
    id: int
    url: str


@dataclass(frozen=True)
class Remote:
    """One forge's API: its base URL, credentials and the words its messages use."""

    forge: Literal["GitHub", "GitLab"]
    api_url: str
    headers: Mapping[str, str]
    token_name: str
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    session: requests.Session = field(default_factory=requests.Session)


def with_marker(body: str, marker: str = MARKER) -> str:
    """The body with `marker` as its first line: added when the body does not start with it."""
    first = body.split("\n", 1)[0].strip()
    return body if first == marker else f"{marker}\n{body}"


def carries(body: object, marker: str) -> bool:
    """Whether a comment's body starts with the marker line (a quote of it further down does not count)."""
    return isinstance(body, str) and body.lstrip().split("\n", 1)[0].strip() == marker


def check_api_url(url: str) -> str:
    """An https URL, or http on the loopback interface (a local stand-in): tokens never travel in clear."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommentError(f"--api-url: '{url}' is not an http(s) URL")
    if parts.scheme == "http" and not loopback:
        raise CommentError(f"--api-url: '{url}' is plain http; the token would travel in clear: use https")
    return url.rstrip("/")


def _same_origin(url: str, api_url: str) -> bool:
    here, there = urlsplit(url), urlsplit(api_url)
    return (here.scheme, here.netloc) == (there.scheme, there.netloc)


def _seconds_until(value: str, now: float) -> float | None:
    """`Retry-After` as seconds or an HTTP date; None when it is neither."""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def rate_limit_wait(status: int, headers: Mapping[str, str], message: str, now: float) -> float | None:
    """Seconds to wait before asking again when the answer is a rate limit, else None.

    GitHub's primary limit is 403 or 429 with `X-RateLimit-Remaining: 0` and the reset instant in
    `X-RateLimit-Reset`; its secondary limit a 403 or 429 with `Retry-After`, or without it a message
    about a secondary rate limit (then at least a minute, GitHub says). GitLab answers 429 with
    `Retry-After` and `RateLimit-Reset`. A 429 that says nothing more is taken as a minute.
    """
    if status not in (403, 429):
        return None
    retry_after = headers.get("Retry-After")
    if retry_after is not None and (seconds := _seconds_until(retry_after, now)) is not None:
        return seconds
    for prefix in ("X-RateLimit", "RateLimit"):
        remaining, reset = headers.get(f"{prefix}-Remaining"), headers.get(f"{prefix}-Reset")
        if remaining == "0" and reset is not None:
            try:
                return max(0.0, float(reset) - now)
            except ValueError:
                return 60.0
    if status == 429 or "rate limit" in message.lower():
        return 60.0
    return None


def _message(response: requests.Response) -> str:
    """The API's own words: `message` (and GitHub's validation `errors`), else the text."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if not isinstance(data, dict):
        return str(data)[:300]
    text = str(data.get("message") or data.get("error") or "").strip()
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        details = [str(e.get("message") or e.get("code")) if isinstance(e, dict) else str(e) for e in errors]
        text = f"{text}: {'; '.join(details)}" if text else "; ".join(details)
    return text[:300]


def _refusal(remote: Remote, status: int, message: str, what: str) -> CommentError:
    """The one-line message for an answer that is not a success, saying what to check."""
    said = f": {message}" if message else ""
    if status == 401:
        return CommentError(f"{remote.forge} refused the token (401{said}): check {remote.token_name}")
    if status == 403:
        hint = (
            "the token needs `pull-requests: write` (workflow `permissions:`); a pull request from a fork "
            "gets a read-only GITHUB_TOKEN"
            if remote.forge == "GitHub"
            else "the token needs the `api` scope and at least the Reporter role; CI_JOB_TOKEN cannot write "
            "notes on most GitLab versions: set GITLAB_TOKEN"
        )
        return CommentError(f"{remote.forge} forbids this (403{said}): {hint}")
    if 300 <= status < 400:  # redirects are not followed: a custom token header would go along
        return CommentError(f"{remote.forge} moved {what} (answered {status}): use the new name or --api-url")
    if status == 404:
        return CommentError(f"{remote.forge} found no {what} (404{said}), or the token cannot see it")
    return CommentError(f"{remote.forge} answered {status}{said} for {what}")


def call(remote: Remote, method: str, url: str, what: str, body: Any = None) -> requests.Response:
    """One request, rate limits waited out when short; any other failure is a `CommentError`."""
    waits = 0
    while True:
        try:
            response = remote.session.request(
                method, url, headers=dict(remote.headers), json=body, timeout=TIMEOUT_SECONDS, allow_redirects=False
            )
        except requests.RequestException as error:
            raise CommentError(f"cannot reach {remote.forge} at {remote.api_url}: {type(error).__name__}") from None
        if 200 <= response.status_code < 300:
            return response
        message = _message(response)
        wait = rate_limit_wait(response.status_code, response.headers, message, remote.clock())
        if wait is None:
            raise _refusal(remote, response.status_code, message, what)
        if wait > WAIT_LIMIT or waits >= MAX_WAITS:
            again = f"again after {wait:.0f} s" if waits < MAX_WAITS else f"still, after {waits} waits"
            raise CommentError(
                f"{remote.forge} rate-limited the request ({response.status_code}{f': {message}' if message else ''}); "
                f"{again}: run the job again later"
            )
        waits += 1
        remote.sleep(wait)


def _json_list(response: requests.Response, what: str) -> list[dict[str, Any]]:
    try:
        data = response.json()
    except ValueError:
        raise CommentError(f"the answer listing {what} is not JSON") from None
    if not isinstance(data, list):
        raise CommentError(f"the answer listing {what} is not a list")
    return [item for item in data if isinstance(item, dict)]


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# --- GitHub ----------------------------------------------------------------------------------------


def github_remote(api_url: str, token: str, **options: Any) -> Remote:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
        "User-Agent": "sloplane",  # GitHub refuses requests without one
    }
    return Remote("GitHub", check_api_url(api_url), headers, "GITHUB_TOKEN", **options)


def _github_comments(remote: Remote, repo: str, number: int) -> Iterator[dict[str, Any]]:
    """Every comment on the pull request, oldest first, following the `Link` header's next page."""
    what = f"pull request {number} in {repo}"
    url: str | None = f"{remote.api_url}/repos/{repo}/issues/{number}/comments?per_page=100"
    for _ in range(MAX_PAGES):
        if url is None:
            return
        response = call(remote, "GET", url, what)
        yield from _json_list(response, f"the comments of {what}")
        url = response.links.get("next", {}).get("url")
        if url is not None and not _same_origin(url, remote.api_url):
            raise CommentError(f"GitHub's next page is on another host ({urlsplit(url).netloc}): not sending the token")
    raise CommentError(f"{what} has more than {MAX_PAGES} pages of comments")


def github_sticky(remote: Remote, repo: str, number: int, body: str, marker: str = MARKER) -> Posted:
    """Edit the comment on `repo`'s pull request `number` that starts with `marker`, else create one."""
    body = with_marker(body, marker)
    if len(body) > GITHUB_BODY_LIMIT:
        raise CommentError(f"the comment has {len(body):,} characters; GitHub takes at most {GITHUB_BODY_LIMIT:,}")
    found = next((c for c in _github_comments(remote, repo, number) if carries(c.get("body"), marker)), None)
    if found is None:
        url = f"{remote.api_url}/repos/{repo}/issues/{number}/comments"
        created = _json_object(call(remote, "POST", url, f"pull request {number} in {repo}", {"body": body}))
        return Posted("created", int(created.get("id", 0)), str(created.get("html_url", "")))
    comment_id = int(found["id"])
    if found.get("body") == body:
        return Posted("unchanged", comment_id, str(found.get("html_url", "")))
    url = f"{remote.api_url}/repos/{repo}/issues/comments/{comment_id}"
    edited = _json_object(call(remote, "PATCH", url, f"comment {comment_id} in {repo}", {"body": body}))
    return Posted("updated", comment_id, str(edited.get("html_url", found.get("html_url", ""))))


# --- GitLab ----------------------------------------------------------------------------------------


def gitlab_remote(api_url: str, token: str, *, job_token: bool = False, **options: Any) -> Remote:
    """A personal, project or group access token goes in `PRIVATE-TOKEN`, CI_JOB_TOKEN in `JOB-TOKEN`."""
    headers = {"JOB-TOKEN" if job_token else "PRIVATE-TOKEN": token, "User-Agent": "sloplane"}
    name = "CI_JOB_TOKEN" if job_token else "GITLAB_TOKEN"
    return Remote("GitLab", check_api_url(api_url), headers, name, **options)


def _gitlab_notes(remote: Remote, base: str, what: str) -> Iterator[dict[str, Any]]:
    """Every note on the merge request, oldest first, page by page while `X-Next-Page` names one."""
    page = "1"
    for _ in range(MAX_PAGES):
        url = f"{base}?per_page=100&sort=asc&order_by=created_at&page={quote(page)}"
        response = call(remote, "GET", url, what)
        yield from _json_list(response, f"the notes of {what}")
        page = response.headers.get("X-Next-Page", "").strip()
        if not page:
            return
    raise CommentError(f"{what} has more than {MAX_PAGES} pages of notes")


def gitlab_sticky(remote: Remote, project: str, iid: int, body: str, marker: str = MARKER) -> Posted:
    """Edit the note on merge request `iid` of `project` (an id or a path) that starts with `marker`,
    else create one. System notes ("added 1 commit") are never candidates."""
    body = with_marker(body, marker)
    if len(body) > GITLAB_BODY_LIMIT:
        raise CommentError(f"the note has {len(body):,} characters; GitLab takes at most {GITLAB_BODY_LIMIT:,}")
    what = f"merge request !{iid} in project {project}"
    base = f"{remote.api_url}/projects/{quote(project, safe='')}/merge_requests/{iid}/notes"
    notes = _gitlab_notes(remote, base, what)
    found = next((n for n in notes if not n.get("system") and carries(n.get("body"), marker)), None)
    if found is None:
        created = _json_object(call(remote, "POST", base, what, {"body": body}))
        return Posted("created", int(created.get("id", 0)), f"{what}, note {created.get('id')}")
    note_id = int(found["id"])
    if found.get("body") == body:
        return Posted("unchanged", note_id, f"{what}, note {note_id}")
    call(remote, "PUT", f"{base}/{note_id}", f"note {note_id} of {what}", {"body": body})
    return Posted("updated", note_id, f"{what}, note {note_id}")
