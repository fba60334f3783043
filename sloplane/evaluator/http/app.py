"""The evaluator's HTTP API, assembled: the gate, reading and controls routes behind the request guard.

Routes live in their own modules (`gate_routes`, `read_routes`, `controls_routes`) and share
`common`; the app adds the guard (`guard.RequestGuard`: token before body, one body limit), the
OpenAPI document's extras, and nothing else.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from sloplane import __version__
from sloplane.core.endpoints import GATE_PATH
from sloplane.evaluator.contracts import ReleaseControlsStore
from sloplane.evaluator.governance.feedback import Sources
from sloplane.evaluator.history.catalog import Catalog
from sloplane.evaluator.history.status_board import StatusBoard
from sloplane.evaluator.http import schemas
from sloplane.evaluator.http.assessment_routes import Assessor, assessment_router
from sloplane.evaluator.http.auth import Scope, TokenStore
from sloplane.evaluator.http.catalog_routes import add_catalog_routes
from sloplane.evaluator.http.common import OrjsonResponse
from sloplane.evaluator.http.contract import GateService
from sloplane.evaluator.http.controls_routes import controls_router
from sloplane.evaluator.http.feedback_routes import feedback_router
from sloplane.evaluator.http.gate_routes import add_gate_routes
from sloplane.evaluator.http.guard import MAX_BODY_BYTES, RequestGuard, RouteGuard, validation_failed
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.http.read_routes import add_operation_routes, add_read_routes
from sloplane.evaluator.http.report_routes import ReportDesk, add_report_routes
from sloplane.evaluator.http.status_routes import add_status_routes
from sloplane.evaluator.storage.chain_audit import ChainAudit
from sloplane.evaluator.storage.feedback import FeedbackStore

DESCRIPTION = """\
Decides whether a deployment may proceed against its service-level objectives, and keeps every
decision in an append-only log.

**Authentication.** Every `/v1` endpoint takes `Authorization: Bearer <token>`. Tokens carry
scopes: `read` (SLOs, decisions), `gate` (ask for decisions and assess changes; implies `read`), `admin`
(everything) and `feedback` (report customers' problems; support staff hold only it). A missing or unknown token
is answered 401, a token without the scope 403.

**Tokens limited to services or teams** act on, and see, only the SLOs of their services or owned by
their teams: anything else (another team's SLO, gate, decisions, a freeze or incident of its
services, and any freeze or incident of every service) is 403 with a `detail` saying what was
refused and why; lists leave out what the token may not see.

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
    {"name": "catalog", "description": "Per service, for service catalogs and approval workflows (cached)."},
    {"name": "reports", "description": "The reports `sloplane report` writes (read scope; a limited token: its SLOs)."},
    {"name": "status", "description": "The status page (`/status`, `/status.json`): read scope, or public."},
    {"name": "assessments", "description": "Impact assessments of risky changes, named on gate requests."},
    {"name": "feedback", "description": "Problems customers reported, and whether monitoring saw them."},
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics (no authentication)."},
]


def create_app(
    service: GateService,
    tokens: TokenStore,
    metrics: EvaluatorMetrics,
    controls: ReleaseControlsStore | None = None,
    chain: ChainAudit | None = None,
    *,
    direct_gate: bool = True,
    catalog: Catalog | None = None,
    status: tuple[StatusBoard, bool] | None = None,
    reports: ReportDesk | None = None,
    assessor: Assessor | None = None,
    feedback: tuple[FeedbackStore, Sources] | None = None,
) -> FastAPI:
    """The evaluator's ASGI application around a gate service, its tokens and its metrics.

    With `controls`, also the freezes and incidents endpoints (`controls_api`); with `chain`, `/readyz`
    says what verifying the decision log's hash chain found; with `catalog`, the service-catalog endpoints; with
    `status` (the board, and whether it is public), `/status` and `/status.json`; with `reports`, `/v1/reports/…`;
    with `assessor`, `/v1/assessments`; with `feedback` (the store and what classifies), `/v1/feedback`.
    `direct_gate=False` leaves the gate's POST to its FastAPI route instead of the guard's direct one
    (`RequestGuard`): tests run both, which must answer alike.
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
    app.add_exception_handler(RequestValidationError, validation_failed)
    guard = RouteGuard(tokens, service.slos, metrics)
    direct_routes = add_gate_routes(app, service, metrics, guard)
    direct = direct_routes if direct_gate else {}
    app.add_middleware(RequestGuard, tokens=tokens, own_body=frozenset({GATE_PATH}), metrics=metrics, direct=direct)
    add_read_routes(app, service, guard)
    if catalog is not None:
        add_catalog_routes(app, catalog, guard)
    if status is not None:
        add_status_routes(app, status[0], guard, public=status[1])
    if reports is not None:
        add_report_routes(app, reports, guard)
    add_operation_routes(app, service, metrics, chain)
    if controls is not None:
        app.include_router(controls_router(controls, guard))
    if assessor is not None:
        app.include_router(assessment_router(assessor, guard))
    if feedback is not None:
        app.include_router(feedback_router(feedback[0], feedback[1], guard, scope=Scope.FEEDBACK))
    _publish_components(app)
    return app


def _publish_components(app: FastAPI) -> None:
    """Add to the document the schemas FastAPI does not generate: the answers and the gate request.

    The answers are the model's shapes, derived from its dataclasses (`schemas.answer_components`);
    the gate request, because the endpoint reads its body raw (see `evaluate`).
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            request = schemas.GateRequest.model_json_schema(ref_template=schemas.REF_TEMPLATE)
            nested = request.pop("$defs", {})  # nested models (breakGlass) become components too
            for name, schema in {**schemas.answer_components(), **nested, "GateRequest": request}.items():
                _add_component(components, name, schema)
            _publish_body_limit(document)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _add_component(components: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    """One more component; one of the same name must be the same schema (`Outcome`, which a query names too)."""
    if components.setdefault(name, schema) != schema:
        raise RuntimeError(f"two different schemas would be published as {name!r}")


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
