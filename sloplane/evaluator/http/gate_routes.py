"""The gate endpoints: `POST` (and `GET`, for pollers) `/v1/gates/evaluate`, and how answers are counted.

The gate endpoint always answers 200 with a `decision` once the caller is authenticated: Argo
Rollouts' web provider (and most pipeline steps) read `{$.decision}` and treat any other status
as a failure of the analysis, so a malformed request or an evaluator fault must arrive as
`decision: error` with a reason (which the policy can tell apart from `fail`), never as a 4xx/5xx
that looks like an unhealthy release. Only authentication (401) and authorisation (403) fail
otherwise: a caller that may not ask must not get an answer it could mistake for one. A token limited
to services or teams asking about another's SLO or service is such a caller: 403, decided once the
body is known to name a subject, before break-glass is looked at and before anything is recorded.

No `from __future__ import annotations`: FastAPI must resolve the closures' `Depends(...)` annotations.
"""

import asyncio
import logging
import time
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from threading import Lock
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from sloplane.core.endpoints import GATE_PATH
from sloplane.core.serialize import wire_json
from sloplane.evaluator.http import schemas
from sloplane.evaluator.http.auth import Principal, Scope
from sloplane.evaluator.http.common import (
    AUTH_RESPONSES,
    OrjsonResponse,
    method_not_allowed,
    requires,
    scope_refusal,
)
from sloplane.evaluator.http.contract import GateService
from sloplane.evaluator.http.guard import MAX_BODY_BYTES, DirectRoute, Receive, RouteGuard, Send, answer_json
from sloplane.evaluator.http.metrics import DeclaredNames, EvaluatorMetrics
from sloplane.evaluator.model import BreakGlass, GateReason, GateRequest, GateResult, Outcome
from sloplane.evaluator.storage.decisions import DecisionLogError

logger = logging.getLogger(__name__)


def _error_answer(code: str, message: str, values: dict[str, Any]) -> dict[str, Any]:
    """An `error` answer in the shape of `GateResult.to_dict()`, for a request that became no decision."""
    reason = GateReason(code=code, message=message, values=values).to_dict()
    return {**GateResult(decisions=()).to_dict(), "reasons": [reason]}


def _invalid_request(error: ValidationError) -> dict[str, Any]:
    problems = [
        {"field": ".".join(str(part) for part in problem["loc"]) or "body", "message": problem["msg"]}
        for problem in error.errors(include_url=False, include_input=False)
    ]
    text = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
    return _error_answer("invalid-request", f"the gate request is invalid: {text}", {"errors": problems})


def _parse(body: bytes | None, principal: Principal, guard: RouteGuard) -> GateRequest | dict[str, Any]:
    """The request to decide, or the `error` answer saying why the body is not one.

    A limited token is refused (HTTPException 403) for a subject outside its reach: both the SLO and
    the service when the body names both, so neither can smuggle in the other. A break-glass override
    takes the `admin` scope and the token's name as the identity: the record must say who let the
    release through, and that cannot be something the body claims.
    """
    if body is None:
        message = f"the gate request is invalid: body: larger than {MAX_BODY_BYTES} bytes"
        return _error_answer("invalid-request", message, {"errors": [{"field": "body", "message": "too large"}]})
    try:
        parsed = schemas.GateRequest.model_validate_json(body or b"null")
    except ValidationError as error:
        return _invalid_request(error)
    if parsed.slo is not None:
        guard.slo(principal, parsed.slo)
    if parsed.service is not None:
        guard.service(principal, parsed.service)
    fields = parsed.model_dump(exclude={"breakGlass", "changeType"})
    override = None
    if parsed.breakGlass is not None:
        if not principal.allows(Scope.ADMIN):
            message = f"break-glass needs the admin scope; token '{principal.name}' does not have it"
            logger.warning("refused a break-glass request from token %s", principal.name)
            return _error_answer("break-glass-refused", message, {"token": principal.name})
        override = BreakGlass(parsed.breakGlass.reason, principal.name)
    return GateRequest(**fields, requested_by=principal.name, break_glass=override, change_type=parsed.changeType)


class _Names:
    """The declared names (`DeclaredNames`) from `service.slos()`, read at the first decision.

    Read again when a decision names an SLO not seen, at most every `REFRESH_SECONDS`: a caller
    asking about invented names must not make every request list the fleet.
    """

    REFRESH_SECONDS = 30.0

    def __init__(self, service: GateService) -> None:
        self._service = service
        self._names: DeclaredNames | None = None
        self._read_at = -self.REFRESH_SECONDS
        self._lock = Lock()

    def for_slo(self, slo: str) -> DeclaredNames:
        with self._lock:
            stale = time.monotonic() - self._read_at >= self.REFRESH_SECONDS
            if self._names is None or (slo not in self._names and stale):
                self._refresh()
            return self._names or DeclaredNames([])

    def _refresh(self) -> None:
        self._read_at = time.monotonic()
        try:
            self._names = DeclaredNames(self._service.slos())
        except Exception:  # a label is not worth failing an answer for; unknown names count unlabelled
            logger.exception("could not list SLOs to label the decisions counter")


class _Gate:
    """Answers gate requests: parse, decide, count; raises nothing but a limited token's 403."""

    def __init__(self, service: GateService, metrics: EvaluatorMetrics, guard: RouteGuard) -> None:
        self._service = service
        self._metrics = metrics
        self._guard = guard
        self._names = _Names(service)

    def answer(self, body: bytes | None, principal: Principal) -> dict[str, Any]:
        """The answer to one request; raises only the 403 of a limited token asking outside its reach."""
        started = time.perf_counter()
        request = _parse(body, principal, self._guard)
        answer = request if isinstance(request, dict) else self._decide(request)
        self._count(request, answer)
        self._metrics.observe_decision_seconds(time.perf_counter() - started)
        return answer

    def _decide(self, request: GateRequest) -> dict[str, Any]:
        try:
            return self._service.gate(request).to_dict()
        except DecisionLogError as exc:  # a full disk, a broken file: known, said in one line, not a traceback
            logger.error("decision not recorded, so not given: %s", exc)
            message = f"the decision could not be recorded, so it is not given: {exc}"
            return _error_answer("not-recorded", message, {})
        except Exception as exc:
            logger.exception("the evaluator failed on a gate request for %s", request.slo or request.service)
            message = f"the evaluator failed: {type(exc).__name__}: {exc}"
            return _error_answer("internal-error", message, {"exception": type(exc).__name__})

    def _count(self, request: GateRequest | dict[str, Any], answer: dict[str, Any]) -> None:
        """Count the answer's decisions; a fault in counting is logged and never changes the answer."""
        try:
            self._count_decisions(request, answer)
        except Exception:
            logger.exception("could not count a gate answer in the metrics")

    def _count_decisions(self, request: GateRequest | dict[str, Any], answer: dict[str, Any]) -> None:
        """One count per decision; a request that became no decision counts once, as `error`, unlabelled.

        Unlabelled because its names come from the caller, unchecked: they must not mint series.
        """
        if not answer["decisions"]:
            self._metrics.record_decision(slo="", service="", stage="", decision=Outcome.ERROR)
            return
        asked_service = request.service if isinstance(request, GateRequest) else None
        for decision in answer["decisions"]:
            slo = str(decision["slo"])
            self._metrics.record_decision(
                slo=slo,
                service=decision.get("service") or asked_service,
                stage=decision["stage"],
                decision=decision["decision"],
                names=self._names.for_slo(slo),
            )


class _DirectGate:
    """The gate's POST as `RequestGuard` answers it directly (`guard.DirectRoute`), past FastAPI.

    The same answers as the FastAPI route below, at a fraction of the CPU: the principal comes from the
    guard (one token check, not two), the scope check is `requires`'s, the body is read here, and the
    decision runs on a plain thread pool (`THREADS`) rather than anyio's, whose hand-off costs several
    times more. Decisions block — on Prometheus for a cold gate, on the decision log's commit for all —
    so they never run on the event loop.
    """

    THREADS = 40
    """As many gates decided at once as anyio's default pool allowed the FastAPI route."""

    def __init__(self, gate: _Gate, guard: RouteGuard) -> None:
        self._gate = gate
        self._guard = guard
        self._executor: ThreadPoolExecutor | None = None

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Receive, send: Send, principal: Principal
    ) -> None:
        if not principal.allows(Scope.GATE):
            raise scope_refusal(self._guard, principal, Scope.GATE)
        try:
            body = await _read_stream(scope, receive)
        except ClientDisconnect:  # gone before its request was whole: nothing to decide, no one to answer
            return
        closing = {"connection": "close"} if body is None else None  # what is left unread must not be parsed
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.THREADS, thread_name_prefix="sloplane-gate")
        answer = await asyncio.get_running_loop().run_in_executor(self._executor, self._gate.answer, body, principal)
        await answer_json(send, 200, wire_json(answer), closing)


async def _read_stream(scope: MutableMapping[str, Any], receive: Receive) -> bytes | None:
    """The body from ASGI messages, or None once it grows past `MAX_BODY_BYTES` (or declares that it will: then
    unread); ClientDisconnect when the client leaves mid-body. Both gate routes read with it."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away mid-body: a part is not a request
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def add_gate_routes(
    app: FastAPI, service: GateService, metrics: EvaluatorMetrics, guard: RouteGuard
) -> dict[tuple[str, str], DirectRoute]:
    """`POST` and `GET` `/v1/gates/evaluate` (scope `gate`), and a 405 naming both for any other method.

    Returns the routes `RequestGuard` should answer directly (`direct`): the POST. Without the guard
    answering it, the FastAPI route gives the same answers.
    """
    gate = _Gate(service, metrics, guard)
    requires_gate = requires(guard, Scope.GATE)

    @app.post(
        GATE_PATH,
        tags=["gates"],
        summary="Decide whether a release may proceed",
        description=(
            "Decides on one SLO, or on every SLO of a service (the most severe outcome wins), and records "
            "each decision. Scope `gate`; a limited token only for its services' or teams' SLOs. Always 200 "
            "for an authorised caller: an invalid body or an evaluator fault is `decision: error` with a reason."
        ),
        response_model=None,
        responses={
            200: schemas.answer(GateResult, "The decision, with its reasons."),
            **AUTH_RESPONSES,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GateRequest"}}},
            }
        },
    )
    async def evaluate(request: Request, principal: Annotated[Principal, Depends(requires_gate)]) -> Response:
        """The body is read raw and validated here, after authentication, so that no body is ever a 422."""
        try:
            body = await _read_stream(request.scope, request.receive)  # one reader for both routes
        except ClientDisconnect:  # as the direct route: nothing decided, nothing answered, nothing logged
            return Response(status_code=499)
        closing = {"Connection": "close"} if body is None else None  # what is left unread must not be parsed
        return OrjsonResponse(await run_in_threadpool(gate.answer, body, principal), headers=closing)

    @app.get(
        GATE_PATH,
        tags=["gates"],
        summary="Decide whether a release may proceed (for pollers)",
        description=(
            "The same decision as the POST, from query parameters, and recorded the same way: for callers that "
            "can only poll a URL with GET (Spinnaker's webhook stage with `statusUrlResolution: getMethod`). "
            "Scope `gate`. Always 200 for an authorised caller; break-glass needs the POST."
        ),
        response_model=None,
        responses={
            200: schemas.answer(GateResult, "The decision, with its reasons."),
            **AUTH_RESPONSES,
        },
    )
    async def evaluate_by_query(  # noqa: PLR0917 (FastAPI passes query parameters by name)
        principal: Annotated[Principal, Depends(requires_gate)],
        slo: Annotated[str | None, Query(description="The SLO to decide on.")] = None,
        service: Annotated[str | None, Query(description="Or every SLO of this service.")] = None,
        stage: Annotated[str | None, Query(description="The stage, e.g. `canary`.")] = None,
        revision: Annotated[str | None, Query(description="The release being gated.")] = None,
        pipeline: Annotated[str | None, Query(description="The pipeline run asking.")] = None,
        rollout: Annotated[str | None, Query(description="The rollout asking.")] = None,
    ) -> Response:
        """Validated by the same model as the POST body, so both answer invalid requests alike."""
        fields = {"slo": slo, "service": service, "stage": stage, "revision": revision, "pipeline": pipeline}
        fields["rollout"] = rollout
        body = wire_json({key: value for key, value in fields.items() if value is not None})
        return OrjsonResponse(await run_in_threadpool(gate.answer, body, principal))

    method_not_allowed(app, GATE_PATH, "GET, POST")
    return {("POST", GATE_PATH): _DirectGate(gate, guard)}
