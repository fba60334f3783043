"""The service catalog's endpoints (Backstage and approval workflows): `/v1/catalog/services`, one service, and
its readiness — scope `read`, a limited token only for its services, answers cached for the evaluation
interval with an ETag (a catalog page polled by every visitor answers 304 until something changes).

No `from __future__ import annotations`: FastAPI must resolve the closures' `Depends(...)` annotations.
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response

from sloplane.core.serialize import wire_json
from sloplane.core.text import excerpt
from sloplane.evaluator.history.catalog import CACHE_SECONDS, Catalog
from sloplane.evaluator.http.auth import Principal, Scope
from sloplane.evaluator.http.common import AUTH_RESPONSES, requires, tagged
from sloplane.evaluator.http.guard import RouteGuard
from sloplane.evaluator.http.schemas import Problem

CATALOG_PATH = "/v1/catalog/services"
_OBJECT: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
_LIST: dict[str, Any] = {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}
_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "Unchanged since the ETag in If-None-Match."}}
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No SLO names this service."}}


def _cached(request: Request, body: Any) -> Response:
    """The answer with its ETag and max-age, or 304 when the caller holds it already."""
    headers = {"Cache-Control": f"private, max-age={int(CACHE_SECONDS)}"}
    return tagged(request, wire_json(body), "application/json", headers)


def add_catalog_routes(app: FastAPI, catalog: Catalog, guard: RouteGuard) -> None:
    """The three catalog endpoints (scope `read`)."""
    reader = requires(guard, Scope.READ)

    @app.get(
        CATALOG_PATH,
        tags=["catalog"],
        summary="List the services",
        description="Every service with an SLO (a limited token: its own), with its state, teams, SLO count, "
        "least budget left and whether it is frozen. Cached for the evaluation interval. Scope `read`.",
        response_model=None,
        responses={200: {"description": "The services.", "content": _LIST}, **_NOT_MODIFIED, **AUTH_RESPONSES},
    )
    def list_services(request: Request, principal: Annotated[Principal, Depends(reader)]) -> Response:
        return _cached(request, catalog.summaries(lambda service: guard.sees_services(principal, [service])))

    @app.get(
        CATALOG_PATH + "/{service}",
        tags=["catalog"],
        summary="One service, for its catalog page",
        description="Its SLOs (objective, state and why, budget left, burn rate per window, owners, links), "
        "active freezes and open major incidents. Cached for the evaluation interval. Scope `read`.",
        response_model=None,
        responses={
            200: {"description": "The service.", "content": _OBJECT},
            **_NOT_MODIFIED,
            **_UNKNOWN,
            **AUTH_RESPONSES,
        },
    )
    def get_service(service: str, request: Request, principal: Annotated[Principal, Depends(reader)]) -> Response:
        guard.service(principal, service, acting=False)
        try:
            return _cached(request, catalog.detail(service))
        except KeyError:
            raise HTTPException(404, f"no SLO names service {excerpt(service)!r}") from None

    @app.get(
        CATALOG_PATH + "/{service}/readiness",
        tags=["catalog"],
        summary="Would a release of the service pass now? (not recorded)",
        description="What the gate would answer for the service (and stage) now, with its reasons, cached for "
        "the evaluation interval and never recorded: for approval UIs, not pipelines. Scope `read`.",
        response_model=None,
        responses={
            200: {"description": "The would-be decision.", "content": _OBJECT},
            **_NOT_MODIFIED,
            **_UNKNOWN,
            **AUTH_RESPONSES,
        },
    )
    def get_readiness(
        service: str,
        request: Request,
        principal: Annotated[Principal, Depends(reader)],
        stage: Annotated[str | None, Query(max_length=253, description="The stage (default: production).")] = None,
    ) -> Response:
        guard.service(principal, service, acting=False)
        try:
            return _cached(request, catalog.readiness(service, stage))
        except KeyError:
            raise HTTPException(404, f"no SLO names service {excerpt(service)!r}") from None
