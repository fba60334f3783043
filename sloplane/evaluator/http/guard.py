"""What every request passes before a route sees it: a known token for `/v1`, one body limit, no 500 that resets.

FastAPI reads and parses a body before it runs a route's dependencies, so a route that checks the
token in a dependency has already read whatever a stranger sent: a 100 MB unauthenticated POST
costs 300 MB before its 401. This ASGI middleware runs first:

- every `/v1` request must carry a token the tokens file knows, else 401 before one body byte is
  read (which scope the route needs is still the route's dependency: 403 comes from there);
- no body may exceed `MAX_BODY_BYTES`: a declared `Content-Length` above it is 413 at once, a
  chunked body is cut off and answered 413 once it passes it. The gate route alone answers an
  authorised caller 200 with `decision: error` instead (its contract), so it reads its own body;
- a fault inside a route is answered 500 in the `Problem` shape and logged once, instead of
  propagating to the server, which would drop the keep-alive connection.

Validation errors (422) list what was wrong, never the input itself: `input_excerpt` bounds them.

`RouteGuard` is what the routes ask afterwards, once they know what a request is about: whether the
token holds the route's scope (`common.requires`) and, for a token limited to services or teams,
whether the SLO, service, freeze or incident is within its reach (`limits`). Every refusal, 401s from
the middleware included, is counted in `sloplane_auth_refusals_total{reason}`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from sloplane.core.serialize import wire_json
from sloplane.core.text import excerpt
from sloplane.evaluator.http import limits
from sloplane.evaluator.http.auth import Principal, TokenStore, parse_bearer
from sloplane.evaluator.http.limits import Ownership, Refusal, RefusalReason
from sloplane.evaluator.http.metrics import EvaluatorMetrics

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""The largest body any route takes: a gate request is a few hundred bytes, a freeze or incident less."""
MAX_ERRORS_SHOWN = 10
"""Validation problems listed in one 422; the rest are counted."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
DirectRoute = Callable[[Scope, Receive, Send, Principal], Awaitable[None]]
"""A route the guard answers itself, past FastAPI, given the principal it authenticated (`direct`)."""

MISSING_TOKEN = "a bearer token is required"
UNKNOWN_TOKEN = "unknown bearer token"


def unauthorised(header_value: str | None) -> tuple[str, str]:
    """(detail, WWW-Authenticate) for a request whose `Authorization` does not name a known token."""
    if parse_bearer(header_value) is None:
        return MISSING_TOKEN, "Bearer"
    return UNKNOWN_TOKEN, 'Bearer error="invalid_token"'


class RequestGuard:
    """The ASGI middleware described above; `own_body` paths read and bound their bodies themselves.

    `direct`: routes answered here, once the token is known, instead of through FastAPI — the gate's
    POST, which pipelines call hundreds of times a second: FastAPI's routing, dependency solving and
    response classes cost more CPU than deciding a cached gate does. Such a route is still declared in
    FastAPI (for the OpenAPI document, and as the behaviour the direct one must match: the tests run
    both), and reads and bounds its own body.
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenStore,
        own_body: frozenset[str],
        *,
        limit: int = MAX_BODY_BYTES,
        metrics: EvaluatorMetrics | None = None,
        direct: Mapping[tuple[str, str], DirectRoute] | None = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.own_body = own_body
        self.limit = limit
        self.metrics = metrics
        self.direct = dict(direct or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        path: str = scope.get("path", "")
        if path.startswith("/v1/") or path == "/v1":
            header = headers.get(b"authorization")
            presented = header.decode("latin-1") if header is not None else None
            principal = self.tokens.authenticate(presented)
            if principal is None:
                if self.metrics is not None:
                    self.metrics.record_refusal(RefusalReason.UNAUTHENTICATED)
                detail, challenge = unauthorised(presented)
                await _answer(send, 401, {"detail": detail}, {"www-authenticate": challenge})
                return
            route = self.direct.get((scope.get("method", ""), path))
            if route is not None:
                await self._direct(route, scope, receive, send, principal)
                return
        bounded = path not in self.own_body
        if bounded and _declared_length(headers) > self.limit:
            await _answer(send, 413, {"detail": self._too_large})
            return
        await self._forward(scope, receive, send, bounded)

    @property
    def _too_large(self) -> str:
        return f"the body is larger than {self.limit} bytes"

    async def _forward(self, scope: Scope, receive: Receive, send: Send, bounded: bool) -> None:
        """Run the app; past the limit its body reads end and whatever it answers becomes a 413."""
        seen = 0
        overflowed = started = False

        async def counted() -> Message:
            nonlocal seen, overflowed
            if overflowed:
                return {"type": "http.disconnect"}
            message = await receive()
            if bounded and message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    overflowed = True
                    return {"type": "http.disconnect"}  # the route stops reading; its answer is replaced
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            if overflowed:
                if not started:
                    started = True
                    await _answer(send, 413, {"detail": self._too_large})
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracking)
        except Exception:
            if not overflowed:
                logger.exception(
                    "unexpected fault answering %s %s", scope.get("method"), excerpt(scope.get("path", ""))
                )
            if not started:
                detail = self._too_large if overflowed else "internal error: the evaluator's log has the details"
                await _answer(send, 413 if overflowed else 500, {"detail": detail})
        else:
            if overflowed and not started:
                await _answer(send, 413, {"detail": self._too_large})

    async def _direct(
        self, route: DirectRoute, scope: Scope, receive: Receive, send: Send, principal: Principal
    ) -> None:
        """A direct route: a 403 it raises is answered as FastAPI would; any other fault is the 500 above."""
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await route(scope, receive, tracking, principal)
        except HTTPException as refusal:
            if not started:
                await _answer(send, refusal.status_code, {"detail": refusal.detail}, dict(refusal.headers or {}))
        except Exception:
            logger.exception("unexpected fault answering %s %s", scope.get("method"), excerpt(scope.get("path", "")))
            if not started:
                await _answer(send, 500, {"detail": "internal error: the evaluator's log has the details"})


def _declared_length(headers: dict[bytes, bytes]) -> int:
    value = headers.get(b"content-length")
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0  # the server refuses a malformed Content-Length itself


async def _answer(send: Send, status: int, content: dict[str, Any], extra: Mapping[str, str] | None = None) -> None:
    await answer_json(send, status, wire_json(content), extra)


async def answer_json(send: Send, status: int, body: bytes, extra: Mapping[str, str] | None = None) -> None:
    """An answer of JSON `body`, as two ASGI messages (what FastAPI's JSON responses send, minus their layers)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in (extra or {}).items()]
    if status in (413, 500):
        headers.append((b"connection", b"close"))  # the rest of an unread body must not be parsed as a request
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RouteGuard:
    """What the routes ask before acting for a caller: the token's scope, and a limited token's reach.

    The fleet's owners are read once, at the first limited request (`slos` is `GateService.slos`): the
    declarations a server loaded do not change while it runs, and an unrestricted token never pays
    for them.
    """

    def __init__(
        self,
        tokens: TokenStore,
        slos: Callable[[], Iterable[Mapping[str, object]]],
        metrics: EvaluatorMetrics | None = None,
    ) -> None:
        self.tokens = tokens
        self._slos = slos
        self._metrics = metrics
        self._owners: Ownership | None = None
        self._lock = threading.Lock()
        if metrics is not None:
            metrics.expect_refusals(reason.value for reason in RefusalReason)

    def owners(self) -> Ownership:
        """Each SLO's service and team."""
        with self._lock:
            if self._owners is None:
                self._owners = Ownership(self._slos())
            return self._owners

    def refused(self, refusal: Refusal, challenge: str = 'Bearer error="insufficient_scope"') -> HTTPException:
        """The 403 for `refusal`, counted; the caller raises it."""
        if self._metrics is not None:
            self._metrics.record_refusal(refusal.reason)
        logger.info("refused token: %s", refusal.detail)
        return HTTPException(403, refusal.detail, headers={"WWW-Authenticate": challenge})

    def _check(self, refusal: Refusal | None) -> None:
        if refusal is not None:
            raise self.refused(refusal)

    def slo(self, principal: Principal, name: str) -> None:
        """403 unless the token reaches this SLO."""
        if principal.limited:
            self._check(limits.slo_refusal(principal, self.owners(), name))

    def service(self, principal: Principal, name: str, *, acting: bool = True) -> None:
        """403 unless the token may act on (`acting=False`: see) this service."""
        if principal.limited:
            self._check(limits.service_refusal(principal, self.owners(), name, acting=acting))

    def services(self, principal: Principal, services: Sequence[str], action: str) -> None:
        """403 unless the token may do `action` (`freezing`) to all of `services` (none: every service)."""
        if principal.limited:
            self._check(limits.services_refusal(principal, self.owners(), services, action))

    def sees_slo(self, principal: Principal, name: str) -> bool:
        """Whether an SLO (a summary, a decision) belongs in the token's lists."""
        return not principal.limited or limits.reaches_slo(principal, self.owners(), name)

    def sees_services(self, principal: Principal, services: Sequence[str]) -> bool:
        """Whether a freeze or incident covering `services` (none: every one) belongs in the token's lists."""
        return not principal.limited or limits.sees_services(principal, self.owners(), services)


async def validation_failed(request: Request, error: Exception) -> JSONResponse:
    """422 listing each problem's location, message and type: never the input, which may be huge."""
    assert isinstance(error, RequestValidationError)
    problems = error.errors()
    shown = [
        {"loc": list(problem.get("loc", ())), "msg": excerpt(str(problem.get("msg", "")), 200), "type": problem["type"]}
        for problem in problems[:MAX_ERRORS_SHOWN]
    ]
    if len(problems) > MAX_ERRORS_SHOWN:
        shown.append({"loc": [], "msg": f"and {len(problems) - MAX_ERRORS_SHOWN} more problems", "type": "more"})
    return JSONResponse({"detail": shown}, status_code=422)
