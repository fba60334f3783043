"""`/status` (HTML) and `/status.json` (Statuspage's summary shape): the status page, served by `serve`.

Who sees what:
- a `read` token: every service's component (a token limited to services or teams: its own SLOs, SLO by SLO);
- with `serve --public-status`, a request without a token: the public page (only SLOs marked
  `statusPage.public`, each said in plain words, incidents without their internal titles; see
  `history.status_board`). A token, when
  given, is still checked, and an unknown one refused: a caller who meant to be recognised must learn that
  they were not, rather than silently get the smaller page;
- without `--public-status`, no token: 401, as every `/v1` route.

Answers carry an ETag and `max-age` of the evaluation interval (a repeat with `If-None-Match` gets 304), `public`
for the public page so a CDN in front may keep it, `private` otherwise, and `Vary: Authorization`.

No `from __future__ import annotations`: FastAPI must resolve the closures' `Depends(...)` annotations.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from sloplane.core.serialize import wire_json
from sloplane.evaluator.history.catalog import CACHE_SECONDS
from sloplane.evaluator.history.report_files import status_html
from sloplane.evaluator.history.status_board import StatusBoard
from sloplane.evaluator.http.auth import Principal, Scope
from sloplane.evaluator.http.common import AUTH_RESPONSES, PAGE_HEADERS, bearer_scheme, scope_refusal, tagged
from sloplane.evaluator.http.guard import RouteGuard, unauthorised

STATUS_PATH = "/status"
STATUS_JSON_PATH = "/status.json"
_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "Unchanged since the ETag in If-None-Match."}}

Viewer = Callable[..., Awaitable[Principal | None]]


def _viewer(guard: RouteGuard, public: bool) -> Viewer:
    """A dependency: the caller's principal (scope `read` checked), or None for an anonymous caller of a public
    page; 401 for an anonymous caller when the page is not public, or for a token nobody issued."""

    async def viewer(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme, scopes=[Scope.READ.value])],
    ) -> Principal | None:
        if credentials is None and public:
            return None
        principal = None if credentials is None else guard.tokens.verify(credentials.credentials)
        if principal is None:
            presented = None if credentials is None else f"Bearer {credentials.credentials}"
            detail, challenge = unauthorised(presented)
            raise HTTPException(401, detail, headers={"WWW-Authenticate": challenge})
        if not principal.allows(Scope.READ):
            raise scope_refusal(guard, principal, Scope.READ)
        return principal

    return viewer


def _answer(request: Request, content: bytes, media_type: str, *, public: bool) -> Response:
    visibility = "public" if public else "private"
    headers = {"Cache-Control": f"{visibility}, max-age={int(CACHE_SECONDS)}", "Vary": "Authorization"}
    if media_type.startswith("text/html"):
        headers |= PAGE_HEADERS
    return tagged(request, content, media_type, headers)


def add_status_routes(app: FastAPI, board: StatusBoard, guard: RouteGuard, *, public: bool) -> None:
    """`/status` and `/status.json`; `public`: `serve --public-status`."""
    viewer = _viewer(guard, public)

    def page_for(principal: Principal | None) -> dict[str, Any]:
        if principal is None:
            return board.page(public=True)
        if not principal.limited:
            return board.page(public=False)
        # SLO by SLO, as `/v1/slos` lists them: a token limited to a team sees its SLOs of a shared service, and
        # neither the other teams' SLOs nor their events in the service's bars
        visible = frozenset(name for name in board.fleet if guard.sees_slo(principal, name))
        return board.page(public=False, slos=visible)

    who = "Scope `read`" + (", or no token for the public page (SLOs marked `statusPage.public`)" if public else "")

    @app.get(
        STATUS_JSON_PATH,
        tags=["status"],
        summary="The status page's data (Statuspage's summary shape)",
        description="A component per service in Statuspage's states, the page indicator, 90 daily bars and the "
        f"uptime under `sloplane`, open incidents. Cached for the evaluation interval. {who}.",
        response_model=None,
        responses={200: {"description": "The page's data.", "content": {"application/json": {}}}, **_NOT_MODIFIED}
        | AUTH_RESPONSES,
    )
    def status_json(request: Request, principal: Annotated[Principal | None, Depends(viewer)]) -> Response:
        page = page_for(principal)
        return _answer(request, wire_json(page), "application/json", public=principal is None)

    @app.get(
        STATUS_PATH,
        tags=["status"],
        summary="The status page",
        description=f"The same page as `status.json`, as one self-contained HTML page (no JavaScript). {who}.",
        response_model=None,
        responses={200: {"description": "The page.", "content": {"text/html": {}}}, **_NOT_MODIFIED} | AUTH_RESPONSES,
    )
    def status_html_page(request: Request, principal: Annotated[Principal | None, Depends(viewer)]) -> Response:
        page = page_for(principal)
        return _answer(request, status_html(page).encode(), "text/html; charset=utf-8", public=principal is None)
