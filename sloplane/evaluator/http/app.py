"""The evaluator's HTTP API: gate decisions, SLOs, the decision log, health and metrics.

The gate endpoint always answers 200 with a `decision` once the caller is authenticated: Argo
Rollouts' web provider (and most pipeline steps) read `{$.decision}` and treat any other status
as a failure of the analysis, so a malformed request or an evaluator fault must arrive as
`decision: error` with a reason (which the policy can tell apart from `fail`), never as a 4xx/5xx
that looks like an unhealthy release. Only authentication (401) and authorisation (403) fail
otherwise: a caller that may not ask must not get an answer it could mistake for one.
"""

import copy
import logging
import time
from collections.abc import Awaitable, Callable
from threading import Lock
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sloplane import __version__
from sloplane.core.endpoints import GATE_PATH
from sloplane.core.instants import Instant
from sloplane.core.text import excerpt
from sloplane.evaluator.deciding.deployments import BurnSplitError
from sloplane.evaluator.http import schemas
from sloplane.evaluator.http.auth import Principal, Scope, TokenStore
from sloplane.evaluator.http.contract import GateService
from sloplane.evaluator.http.guard import MAX_BODY_BYTES, RequestGuard, unauthorised, validation_failed
from sloplane.evaluator.http.metrics import DeclaredNames, EvaluatorMetrics
from sloplane.evaluator.measuring.backends.base import BackendError
from sloplane.evaluator.model import BreakGlass, GateRequest, GateResult, Outcome, Reason
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.decisions import DecisionLogError

logger = logging.getLogger(__name__)


DESCRIPTION = """\
Decides whether a deployment may proceed against its service-level objectives, and keeps every
decision in an append-only log.

**Authentication.** Every `/v1` endpoint takes `Authorization: Bearer <token>`. Tokens carry
scopes: `read` (SLOs, decisions), `gate` (ask for decisions; implies `read`) and `admin`
(everything). A missing or unknown token is answered 401, a token without the scope 403.

**The gate contract.** `POST /v1/gates/evaluate` answers 200 whenever the caller is authorised,
with `decision` one of `pass`, `fail`, `inconclusive`, `error`: an invalid request or an
evaluator fault is `error` with a reason saying what went wrong, so a pipeline fails only on a
real `fail` (or as its policy treats `error`).
"""

TAGS = [
    {"name": "gates", "description": "Ask whether a release may proceed."},
    {"name": "slos", "description": "The SLOs the evaluator knows and their current measurements."},
    {"name": "decisions", "description": "The decision log: every answer given, newest first."},
    {"name": "freezes", "description": "Release freezes: while one covers a service, its gates fail `frozen`."},
    {
        "name": "incidents",
        "description": "While a major one is open, gates of its services (all, if none named) fail `frozen`.",
    },
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics (no authentication)."},
]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="slp_<random>",
    description="A sloplane token (`sloplane token new`); its scopes decide which endpoints it may call.",
)

_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.Problem, "description": "No bearer token, or an unknown one."},
    403: {"model": schemas.Problem, "description": "The token lacks the scope this endpoint needs."},
}


class OrjsonResponse(JSONResponse):
    """JSON via orjson: NaN and infinities (a 0/0 ratio from a backend) become null instead of a 500."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS)


def requires(tokens: TokenStore, scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers whose token holds `scope` (401 without a known token, 403 without it).

    The scope is published in the operation's security requirement (`bearer: [scope]`: OpenAPI 3.1
    allows role names for schemes other than OAuth), so clients and tests read it from the document.
    """

    async def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer, scopes=[scope.value])],
    ) -> Principal:
        principal = None if credentials is None else tokens.verify(credentials.credentials)
        if principal is None:  # the guard refuses these first; kept so a route never depends on it
            presented = None if credentials is None else f"Bearer {credentials.credentials}"
            detail, challenge = unauthorised(presented)
            raise HTTPException(401, detail, headers={"WWW-Authenticate": challenge})
        if not principal.allows(scope):
            challenge = f'Bearer error="insufficient_scope", scope="{scope.value}"'
            detail = f"token {principal.name!r} lacks the {scope.value!r} scope"
            raise HTTPException(403, detail, headers={"WWW-Authenticate": challenge})
        return principal

    return authorised


_requires = requires
"""The former name, kept for callers in this tree."""


def _error_answer(code: str, message: str, values: dict[str, Any]) -> dict[str, Any]:
    """An `error` answer in the shape of `GateResult.to_dict()`, for a request that became no decision."""
    reason = {**Reason(code=code, message=message, values=values).to_dict(), "slo": None, "stage": None}
    return {**GateResult(decisions=()).to_dict(), "reasons": [reason]}


def _invalid_request(error: ValidationError) -> dict[str, Any]:
    problems = [
        {"field": ".".join(str(part) for part in problem["loc"]) or "body", "message": problem["msg"]}
        for problem in error.errors(include_url=False, include_input=False)
    ]
    text = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
    return _error_answer("invalid-request", f"the gate request is invalid: {text}", {"errors": problems})


async def _read_body(request: Request) -> bytes | None:
    """The body, or None once it grows past `MAX_BODY_BYTES` (or declares that it will: then unread)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes | None, principal: Principal) -> GateRequest | dict[str, Any]:
    """The request to decide, or the `error` answer saying why the body is not one.

    A break-glass override takes the `admin` scope and the token's name as the identity: the
    record must say who let the release through, and that cannot be something the body claims.
    """
    if body is None:
        message = f"the gate request is invalid: body: larger than {MAX_BODY_BYTES} bytes"
        return _error_answer("invalid-request", message, {"errors": [{"field": "body", "message": "too large"}]})
    try:
        parsed = schemas.GateRequest.model_validate_json(body or b"null")
    except ValidationError as error:
        return _invalid_request(error)
    fields = parsed.model_dump(exclude={"breakGlass"})
    override = None
    if parsed.breakGlass is not None:
        if not principal.allows(Scope.ADMIN):
            message = f"break-glass needs the admin scope; token '{principal.name}' does not have it"
            logger.warning("refused a break-glass request from token %s", principal.name)
            return _error_answer("break-glass-refused", message, {"token": principal.name})
        override = BreakGlass(parsed.breakGlass.reason, principal.name)
    return GateRequest(**fields, requested_by=principal.name, break_glass=override)


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
    """Answers gate requests: parse, decide, count; never raises."""

    def __init__(self, service: GateService, metrics: EvaluatorMetrics) -> None:
        self._service = service
        self._metrics = metrics
        self._names = _Names(service)

    def answer(self, body: bytes | None, principal: Principal) -> dict[str, Any]:
        started = time.perf_counter()
        request = _parse(body, principal)
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


def create_app(
    service: GateService, tokens: TokenStore, metrics: EvaluatorMetrics, controls: ReleaseControls | None = None
) -> FastAPI:
    """The evaluator's ASGI application around a gate service, its tokens and its metrics.

    With `controls`, also the freezes and incidents endpoints (`controls_api`).
    """
    app = FastAPI(
        title="sloplane evaluator",
        summary="May this deployment proceed? Gate decisions against service-level objectives.",
        description=DESCRIPTION,
        version=__version__,
        openapi_tags=TAGS,
        default_response_class=OrjsonResponse,
        redoc_url=None,
    )
    app.add_middleware(RequestGuard, tokens=tokens, own_body=frozenset({GATE_PATH}))
    app.add_exception_handler(RequestValidationError, validation_failed)
    _gate_routes(app, _Gate(service, metrics), tokens)
    _read_routes(app, service, tokens)
    _operation_routes(app, service, metrics)
    if controls is not None:
        from sloplane.evaluator.http.controls_routes import controls_router  # noqa: PLC0415 (it imports this module)

        app.include_router(controls_router(controls, tokens))
    _publish_request_schema(app)
    return app


def _gate_routes(app: FastAPI, gate: _Gate, tokens: TokenStore) -> None:
    requires_gate = _requires(tokens, Scope.GATE)

    @app.post(
        GATE_PATH,
        tags=["gates"],
        summary="Decide whether a release may proceed",
        description=(
            "Decides on one SLO, or on every SLO of a service (the most severe outcome wins), and records "
            "each decision. Scope `gate`. Always 200 for an authorised caller: an invalid body or an "
            "evaluator fault is `decision: error` with a reason."
        ),
        response_model=None,
        responses={
            200: {"model": schemas.GateAnswer, "description": "The decision, with its reasons."},
            **_AUTH_RESPONSES,
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
        body = await _read_body(request)
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
            200: {"model": schemas.GateAnswer, "description": "The decision, with its reasons."},
            **_AUTH_RESPONSES,
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
        body = orjson.dumps({key: value for key, value in fields.items() if value is not None})
        return OrjsonResponse(await run_in_threadpool(gate.answer, body, principal))

    method_not_allowed(app, GATE_PATH, "GET, POST")


def method_not_allowed(router: APIRouter | FastAPI, path: str, allowed: str) -> None:
    """405 naming every method of `path`: Starlette's own names only the first route's methods."""
    others = sorted({"PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "HEAD", "GET", "POST"} - set(allowed.split(", ")))

    @router.api_route(path, methods=others, include_in_schema=False)
    def not_allowed() -> Response:
        return OrjsonResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allowed})


def _read_routes(app: FastAPI, service: GateService, tokens: TokenStore) -> None:
    reader = [Depends(_requires(tokens, Scope.READ))]

    @app.get(
        "/v1/slos",
        tags=["slos"],
        summary="List the SLOs",
        description="Every SLO the evaluator knows, summarised. Scope `read`.",
        dependencies=reader,
        response_model=None,
        responses={200: {"model": list[schemas.SloSummary], "description": "The SLOs."}, **_AUTH_RESPONSES},
    )
    def list_slos() -> Response:
        return OrjsonResponse(service.slos())

    @app.get(
        "/v1/slos/{name}",
        tags=["slos"],
        summary="One SLO and its current measurements",
        description="The SLO's declaration summary and its measurements now, or as at `at`. Scope `read`.",
        dependencies=reader,
        response_model=None,
        responses={
            200: {"model": schemas.SloDetail, "description": "The SLO."},
            404: {"model": schemas.Problem, "description": "No SLO of that name."},
            **_AUTH_RESPONSES,
        },
    )
    def get_slo(
        name: str,
        at: Annotated[Instant | None, Query(description="Measure as at this RFC 3339 instant.")] = None,
    ) -> Response:
        found = service.slo(name, at)
        if found is None:
            raise HTTPException(404, f"no SLO named {excerpt(name)!r}")
        return OrjsonResponse(found)

    @app.get(
        "/v1/slos/{name}/burn",
        tags=["slos"],
        summary="Budget burned during deployments and in the background",
        description=(
            "The production budget over the SLO's period, split into deployment windows (from the decision "
            "log: one analysis window before a revision's first gate to its last) and the rest. Scope `read`."
        ),
        dependencies=reader,
        response_model=None,
        responses={
            200: {"model": schemas.BurnReport, "description": "The split."},
            404: {"model": schemas.Problem, "description": "No SLO of that name."},
            409: {"model": schemas.Problem, "description": "The SLO cannot be split (no event counts, no data)."},
            503: {"model": schemas.Problem, "description": "The metrics backend could not be read."},
            **_AUTH_RESPONSES,
        },
    )
    def get_burn(
        name: str,
        at: Annotated[Instant | None, Query(description="As at this RFC 3339 instant.")] = None,
    ) -> Response:
        try:
            split = service.deployment_burn(name, at)
        except KeyError:
            raise HTTPException(404, f"no SLO named {excerpt(name)!r}") from None
        except BurnSplitError as error:
            raise HTTPException(409, str(error)) from None
        except BackendError as error:
            raise HTTPException(503, f"the metrics backend could not be read: {error}") from None
        return OrjsonResponse(split.to_dict())

    _decision_routes(app, service, reader)


def _decision_routes(app: FastAPI, service: GateService, reader: list[Any]) -> None:
    @app.get(
        "/v1/decisions",
        tags=["decisions"],
        summary="Query the decision log",
        description="Recorded decisions matching every filter given, newest first. Scope `read`.",
        dependencies=reader,
        response_model=None,
        responses={200: {"model": list[schemas.Decision], "description": "The decisions."}, **_AUTH_RESPONSES},
    )
    def list_decisions(
        *,
        slo: Annotated[str | None, Query(description="Only this SLO.")] = None,
        stage: Annotated[str | None, Query(description="Only this stage.")] = None,
        outcome: Annotated[Outcome | None, Query(description="Only this outcome.")] = None,
        revision: Annotated[str | None, Query(description="Only this revision.")] = None,
        since: Annotated[Instant | None, Query(description="Decided at or after (RFC 3339).")] = None,
        until: Annotated[Instant | None, Query(description="Decided at or before (RFC 3339).")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    ) -> Response:
        found = service.log.query(
            slo=slo, stage=stage, outcome=outcome, revision=revision, since=since, until=until, limit=limit
        )
        return OrjsonResponse(found)


def _operation_routes(app: FastAPI, service: GateService, metrics: EvaluatorMetrics) -> None:
    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness",
        description="200 while the process serves requests.",
        response_model=schemas.Health,
        response_model_exclude_none=True,
    )
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness",
        description=(
            "200 while the decision log can be read, with reason `degraded: ...` when the metrics backend does "
            "not answer (gates then decide by their policy); 503 with the reason otherwise."
        ),
        response_model=None,
        responses={
            200: {"model": schemas.Health},
            503: {"model": schemas.Health, "description": "Not ready, and why."},
        },
    )
    def readyz() -> Response:
        ready, reason = _readiness(service)
        if ready:
            return OrjsonResponse({"status": "ready", "reason": reason or None})
        return OrjsonResponse({"status": "not ready", "reason": reason}, status_code=503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        description="The evaluator's metrics in Prometheus' text format, among them `sloplane_gate_decisions_total`.",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "The metrics."}},
    )
    def prometheus_metrics() -> Response:
        content, content_type = metrics.render()
        return Response(content=content, media_type=content_type)


def _readiness(service: GateService) -> tuple[bool, str]:
    try:
        return service.ready()
    except Exception as exc:
        logger.exception("the readiness check failed")
        return False, f"the readiness check failed: {type(exc).__name__}: {exc}"


def _publish_request_schema(app: FastAPI) -> None:
    """Add the gate request's schema to the document: the endpoint reads its body raw (see `evaluate`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            request = schemas.GateRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(request.pop("$defs", {}))  # nested models (breakGlass) become components too
            components["GateRequest"] = request
            _publish_body_limit(document)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _publish_body_limit(document: dict[str, Any]) -> None:
    """413 on every operation that takes a body, as `RequestGuard` answers it (the gate answers 200 by contract)."""
    too_large = {
        "description": f"The body is larger than {MAX_BODY_BYTES} bytes.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if path != GATE_PATH and isinstance(operation, dict) and "requestBody" in operation:
                operation.setdefault("responses", {})["413"] = too_large


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document (a copy the caller may change), e.g. for `sloplane` to print."""
    return copy.deepcopy(app.openapi())
