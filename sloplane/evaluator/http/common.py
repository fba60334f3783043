"""What every route module shares: JSON answers, the bearer scheme and the scope check, 401/403 documented.

Kept apart from the app so that route modules depend on it, and the app on them, never the other way.
No `from __future__ import annotations`: FastAPI must resolve the `Security(...)` annotation of `requires`.
"""

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sloplane.core.serialize import wire_json
from sloplane.evaluator.http import schemas
from sloplane.evaluator.http.auth import Principal, Scope
from sloplane.evaluator.http.guard import RouteGuard, unauthorised
from sloplane.evaluator.http.limits import Refusal, RefusalReason

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="slp_<random>",
    description="A sloplane token (`sloplane token new`); its scopes decide which endpoints it may call.",
)

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.Problem, "description": "No bearer token, or an unknown one."},
    403: {
        "model": schemas.Problem,
        "description": "The token lacks the scope this endpoint needs, or is limited to services or teams "
        "this request is not about; `detail` says which.",
    },
}
"""Documented on every `/v1` operation: `RequestGuard` answers 401, `requires` and `RouteGuard` 403."""


PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
"""Sent with every page the evaluator serves (reports, the status page): they are self-contained (inline CSS and
SVG, no script, nothing fetched), so nothing else may run or load — should a link or text from a declaration or
the decision log ever slip past the escaping, the browser still refuses it."""


def tagged(request: Request, content: bytes, media_type: str, headers: dict[str, str]) -> Response:
    """`content` with an ETag (a digest of it) beside `headers`, or 304 when the caller holds it already
    (`If-None-Match`): the catalog's answers and the status page, polled by every visitor."""
    tag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    headers = {"ETag": tag, **headers}
    if tag in {part.strip() for part in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=media_type, headers=headers)


class OrjsonResponse(JSONResponse):
    """JSON via orjson: NaN and infinities (a 0/0 ratio from a backend) become null instead of a 500."""

    def render(self, content: Any) -> bytes:
        return wire_json(content)


def requires(guard: RouteGuard, scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers whose token holds `scope` (401 without a known token, 403 without it).

    The scope is published in the operation's security requirement (`bearer: [scope]`: OpenAPI 3.1
    allows role names for schemes other than OAuth), so clients and tests read it from the document.
    """

    async def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme, scopes=[scope.value])],
    ) -> Principal:
        principal = None if credentials is None else guard.tokens.verify(credentials.credentials)
        if principal is None:  # the guard refuses these first; kept so a route never depends on it
            presented = None if credentials is None else f"Bearer {credentials.credentials}"
            detail, challenge = unauthorised(presented)
            raise HTTPException(401, detail, headers={"WWW-Authenticate": challenge})
        if not principal.allows(scope):
            raise scope_refusal(guard, principal, scope)
        return principal

    return authorised


def scope_refusal(guard: RouteGuard, principal: Principal, scope: Scope) -> HTTPException:
    """The 403 (counted) for a token without `scope`; the caller raises it."""
    challenge = f'Bearer error="insufficient_scope", scope="{scope.value}"'
    detail = f"token {principal.name!r} lacks the {scope.value!r} scope"
    return guard.refused(Refusal(RefusalReason.SCOPE, detail), challenge)


def method_not_allowed(router: APIRouter | FastAPI, path: str, allowed: str) -> None:
    """405 naming every method of `path`: Starlette's own names only the first route's methods."""
    others = sorted({"PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "HEAD", "GET", "POST"} - set(allowed.split(", ")))

    @router.api_route(path, methods=others, include_in_schema=False)
    def not_allowed() -> Response:
        return OrjsonResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allowed})


def invalid_field(field: str, message: str) -> RequestValidationError:
    """A 422 naming `field` of the body, in the shape FastAPI's own validation answers (`loc: ["body", field]`):
    for what only the store or the builder can check, so that a client reads every refusal of its body alike."""
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])
