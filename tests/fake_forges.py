"""Local stand-ins for GitHub's and GitLab's REST APIs (comments on pull requests, notes on merge
requests), on 127.0.0.1, answering as the real ones do: their paths, paging headers, JSON shapes,
error bodies, authentication and rate limits.

GitHub: `GET/POST /repos/{owner}/{repo}/issues/{n}/comments` (paged by `per_page`/`page`, at most
100, with a `Link` header whose URLs use the `/repositories/{id}/...` form GitHub really sends),
`PATCH /repos/{owner}/{repo}/issues/comments/{id}`; `Authorization: Bearer|token`, a `User-Agent`
required (403 without, as GitHub does); 401 `Bad credentials`, 403 `Resource not accessible by
integration` for a read-only token, 404 `Not Found`, 422 `Validation Failed` for a body over 65,536
characters; `X-RateLimit-*` on every answer. GitLab: `GET/POST
/api/v4/projects/{id}/merge_requests/{iid}/notes` (id or URL-encoded path; `X-Page`,
`X-Next-Page`, `X-Total`...), `PUT .../notes/{id}`; `PRIVATE-TOKEN`, `JOB-TOKEN` or Bearer; 401
`401 Unauthorized`, 404 `404 Project Not Found`.

Rate limits are scripted (`throttle`): the next requests get the limit's answer, with its headers.
The existing `tests/fake_http.py` scripts replies without seeing request headers or PUT, which
authentication and GitLab's edits need; hence a server of its own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Answer = tuple[int, dict[str, str], Any]

GITHUB_DOCS = "https://docs.github.com/rest"
GITHUB_LIMIT = 65_536


@dataclass
class Throttle:
    """A rate-limit answer for the next `times` requests."""

    status: int
    headers: dict[str, str]
    body: Any
    times: int = 1


@dataclass
class Fake:
    """What both forges share: the requests seen, scripted throttles, a lock, the base URL."""

    base_url: str = ""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    throttles: list[Throttle] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1000

    def throttle(self, status: int, headers: dict[str, str], body: Any, times: int = 1) -> None:
        self.throttles.append(Throttle(status, headers, body, times))

    def writes(self) -> list[tuple[str, str]]:
        """The requests that changed something: method and path."""
        return [(method, path) for method, path, _ in self.requests if method != "GET"]

    def _throttled(self) -> Answer | None:
        if not self.throttles:
            return None
        first = self.throttles[0]
        first.times -= 1
        if first.times <= 0:
            self.throttles.pop(0)
        return first.status, dict(first.headers), first.body

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        raise NotImplementedError


# --- GitHub ----------------------------------------------------------------------------------------


@dataclass
class FakeGitHub(Fake):
    """Pull requests by (repo, number), each a list of comments; tokens with write access or read-only."""

    tokens: dict[str, bool] = field(default_factory=dict)  # token -> may write
    issues: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    repo_ids: dict[str, int] = field(default_factory=dict)
    login: str = "github-actions[bot]"
    renamed: dict[str, str] = field(default_factory=dict)  # old name -> new name: 301, as GitHub answers

    def add_pull_request(self, repo: str, number: int, bodies: Sequence[str] = (), author: str = "octocat") -> None:
        self.repo_ids.setdefault(repo, 4000 + len(self.repo_ids))
        comments = self.issues.setdefault((repo, number), [])
        comments.extend(self._comment(repo, number, text, author) for text in bodies)

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        return self.issues[(repo, number)]

    def _comment(self, repo: str, number: int, body: str, author: str) -> dict[str, Any]:
        comment_id = self.new_id()
        stamp = "2026-12-01T10:00:00Z"
        return {
            "id": comment_id,
            "node_id": f"IC_{comment_id}",
            "url": f"{self.base_url}/repos/{repo}/issues/comments/{comment_id}",
            "html_url": f"https://github.com/{repo}/pull/{number}#issuecomment-{comment_id}",
            "issue_url": f"{self.base_url}/repos/{repo}/issues/{number}",
            "body": body,
            "user": {"login": author, "id": 1, "type": "Bot" if author.endswith("[bot]") else "User"},
            "author_association": "NONE",
            "created_at": stamp,
            "updated_at": stamp,
        }

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Used": "1",
            "X-RateLimit-Reset": "1893456000",
            "X-RateLimit-Resource": "core",
        }

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        lowered = {key.lower(): value for key, value in headers.items()}
        with self.lock:
            self.requests.append((method, target, headers))
            if not lowered.get("user-agent"):
                message = (
                    "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"
                )
                return 403, {}, {"message": message, "documentation_url": GITHUB_DOCS}
            scheme, _, token = lowered.get("authorization", "").partition(" ")
            if scheme.lower() not in ("bearer", "token") or token not in self.tokens:
                return 401, {}, {"message": "Bad credentials", "documentation_url": GITHUB_DOCS, "status": "401"}
            throttled = self._throttled()
            if throttled is not None:
                return throttled
            status, extra, data = self._route(method, target, body, may_write=self.tokens[token])
            return status, {**self._rate_headers(), **extra}, data

    def _route(self, method: str, target: str, body: bytes, *, may_write: bool) -> Answer:
        split = urlsplit(target)
        parts = [unquote(p) for p in split.path.strip("/").split("/")]
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        not_found: Answer = (404, {}, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"})
        repo, rest = None, []
        if len(parts) >= 3 and parts[0] == "repos":
            repo, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        elif len(parts) >= 2 and parts[0] == "repositories":
            repo = next((name for name, rid in self.repo_ids.items() if str(rid) == parts[1]), None)
            rest = parts[2:]
        if repo in self.renamed:
            moved = f"{self.base_url}/repositories/{self.repo_ids[self.renamed[repo]]}/{'/'.join(rest)}"
            return (
                301,
                {"Location": moved},
                {"message": "Moved Permanently", "url": moved, "documentation_url": GITHUB_DOCS},
            )
        if repo is None or repo not in self.repo_ids:
            return not_found
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments" and rest[1].isdigit():
            key = (repo, int(rest[1]))
            if key not in self.issues:
                return not_found
            if method == "GET":
                return self._page(repo, key, query)
            if method == "POST":
                return self._write(repo, key, body, None, may_write)
        if len(rest) == 3 and rest[:2] == ["issues", "comments"] and rest[2].isdigit() and method == "PATCH":
            for key, comments in self.issues.items():
                if key[0] == repo and any(c["id"] == int(rest[2]) for c in comments):
                    return self._write(repo, key, body, int(rest[2]), may_write)
            return not_found
        return not_found

    def _page(self, repo: str, key: tuple[str, int], query: dict[str, str]) -> Answer:
        per_page = min(100, max(1, int(query.get("per_page", "30"))))
        page = max(1, int(query.get("page", "1")))
        comments = self.issues[key]
        last = max(1, -(-len(comments) // per_page))
        chunk = comments[(page - 1) * per_page : page * per_page]
        link = f"{self.base_url}/repositories/{self.repo_ids[repo]}/issues/{key[1]}/comments?per_page={per_page}"
        rels = []
        if page < last:
            rels += [f'<{link}&page={page + 1}>; rel="next"', f'<{link}&page={last}>; rel="last"']
        if page > 1:
            rels += [f'<{link}&page={page - 1}>; rel="prev"', f'<{link}&page=1>; rel="first"']
        return 200, {"Link": ", ".join(rels)} if rels else {}, chunk

    def _write(self, repo: str, key: tuple[str, int], raw: bytes, comment_id: int | None, may_write: bool) -> Answer:
        if not may_write:
            message = "Resource not accessible by integration"
            return 403, {}, {"message": message, "documentation_url": GITHUB_DOCS, "status": "403"}
        try:
            text = json.loads(raw).get("body")
        except (ValueError, AttributeError):
            return 400, {}, {"message": "Problems parsing JSON", "documentation_url": GITHUB_DOCS}
        if not isinstance(text, str) or not text or len(text) > GITHUB_LIMIT:
            code, why = ("custom", "body is too long (maximum is 65536 characters)") if text else ("missing_field", "")
            error = {"resource": "IssueComment", "code": code, "field": "body", "message": why}
            return 422, {}, {"message": "Validation Failed", "errors": [error], "documentation_url": GITHUB_DOCS}
        if comment_id is None:
            comment = self._comment(repo, key[1], text, self.login)
            self.issues[key].append(comment)
            return 201, {"Location": comment["url"]}, comment
        comment = next(c for c in self.issues[key] if c["id"] == comment_id)
        comment.update(body=text, updated_at="2026-12-01T11:00:00Z")
        return 200, {}, comment


# --- GitLab ----------------------------------------------------------------------------------------


@dataclass
class FakeGitLab(Fake):
    """Merge requests by (project id, iid), each a list of notes; projects known by id and by path."""

    tokens: set[str] = field(default_factory=set)
    job_tokens: set[str] = field(default_factory=set)
    notes_by_mr: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=dict)

    def add_merge_request(self, path: str, project_id: int, iid: int, bodies: list[tuple[str, bool]]) -> None:
        """Notes as (body, system): system notes are GitLab's own ("added 1 commit")."""
        self.paths[path] = project_id
        notes = self.notes_by_mr.setdefault((project_id, iid), [])
        notes.extend(self._note(project_id, iid, text, system, "alice") for text, system in bodies)

    def notes(self, project_id: int, iid: int) -> list[dict[str, Any]]:
        return self.notes_by_mr[(project_id, iid)]

    def _note(self, project_id: int, iid: int, body: str, system: bool, author: str) -> dict[str, Any]:
        stamp = "2026-12-01T10:00:00.000Z"
        return {
            "id": self.new_id(),
            "type": None,
            "body": body,
            "attachment": None,
            "author": {"id": 7, "username": author, "name": author, "state": "active"},
            "created_at": stamp,
            "updated_at": stamp,
            "system": system,
            "noteable_id": 900 + iid,
            "noteable_type": "MergeRequest",
            "noteable_iid": iid,
            "project_id": project_id,
            "resolvable": False,
            "confidential": False,
            "internal": False,
        }

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        lowered = {key.lower(): value for key, value in headers.items()}
        with self.lock:
            self.requests.append((method, target, headers))
            bearer = lowered.get("authorization", "").removeprefix("Bearer ")
            known = (
                lowered.get("private-token") in self.tokens
                or lowered.get("job-token") in self.job_tokens
                or bearer in self.tokens
            )
            if not known:
                return 401, {}, {"message": "401 Unauthorized"}
            throttled = self._throttled()
            if throttled is not None:
                return throttled
            return self._route(method, target, body)

    def _route(self, method: str, target: str, body: bytes) -> Answer:
        split = urlsplit(target)
        parts = split.path.strip("/").split("/")  # still encoded: a project path is one segment
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        if parts[:3] != ["api", "v4", "projects"] or len(parts) < 7:
            return 404, {}, {"error": "404 Not Found"}
        name = unquote(parts[3])
        project_id = int(name) if name.isdigit() else self.paths.get(name)
        if project_id is None or project_id not in self.paths.values():
            return 404, {}, {"message": "404 Project Not Found"}
        if parts[4] != "merge_requests" or parts[6] != "notes" or not parts[5].isdigit():
            return 404, {}, {"error": "404 Not Found"}
        key = (project_id, int(parts[5]))
        if key not in self.notes_by_mr:
            return 404, {}, {"message": "404 Not found"}
        if len(parts) == 7 and method == "GET":
            return self._page(key, query)
        try:
            text = json.loads(body).get("body") if body else None
        except (ValueError, AttributeError):
            text = None
        if not isinstance(text, str) or not text:
            return 400, {}, {"error": "body is missing"}
        if len(parts) == 7 and method == "POST":
            note = self._note(key[0], key[1], text, False, "project_42_bot")
            self.notes_by_mr[key].append(note)
            return 201, {}, note
        if len(parts) == 8 and method == "PUT" and parts[7].isdigit():
            note = next((n for n in self.notes_by_mr[key] if n["id"] == int(parts[7])), None)
            if note is None:
                return 404, {}, {"message": "404 Note Not Found"}
            note.update(body=text, updated_at="2026-12-01T11:00:00.000Z")
            return 200, {}, note
        return 405, {}, {"error": "405 Method Not Allowed"}

    def _page(self, key: tuple[int, int], query: dict[str, str]) -> Answer:
        per_page = min(100, max(1, int(query.get("per_page", "20"))))
        page = max(1, int(query.get("page", "1")))
        notes = self.notes_by_mr[key]
        if query.get("sort", "desc") == "desc":
            notes = list(reversed(notes))
        pages = max(1, -(-len(notes) // per_page))
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(notes)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        return 200, headers, notes[(page - 1) * per_page : page * per_page]


@contextmanager
def serve(fake: Fake) -> Iterator[str]:
    """Run the fake on a free port of 127.0.0.1; yields its base URL (also set on the fake)."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, data = fake.handle(self.command, self.path, dict(self.headers), body)
            payload = data.encode() if isinstance(data, str) else json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer  # noqa: N815

        def log_message(self, *_: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake.base_url
    finally:
        server.shutdown()
        server.server_close()
