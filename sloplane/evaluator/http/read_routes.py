"""The reading endpoints: SLOs with their measurements and burn split, the decision log, and operations.

SLOs and decisions need scope `read`; `/healthz`, `/readyz` and `/metrics` need no token (probes and
Prometheus call them). A token limited to services or teams lists only its SLOs and their decisions,
and is refused (403) one it may not see.

No `from __future__ import annotations`: FastAPI must resolve the closures' `Depends(...)` annotations.
"""

import heapq
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import Response

from sloplane.core.instants import Instant
from sloplane.core.text import excerpt
from sloplane.evaluator.deciding.deployments import BurnReport, BurnSplitError
from sloplane.evaluator.http import schemas
from sloplane.evaluator.http.auth import Principal, Scope
from sloplane.evaluator.http.common import AUTH_RESPONSES, OrjsonResponse, requires
from sloplane.evaluator.http.contract import GateService
from sloplane.evaluator.http.guard import RouteGuard
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.measuring.backends.base import BackendError
from sloplane.evaluator.model import Decision, Outcome
from sloplane.evaluator.storage.chain_audit import ChainAudit

logger = logging.getLogger(__name__)


def add_read_routes(app: FastAPI, service: GateService, guard: RouteGuard) -> None:
    """`/v1/slos`, `/v1/slos/{name}`, `/v1/slos/{name}/burn` and `/v1/decisions` (scope `read`)."""
    reader = requires(guard, Scope.READ)

    @app.get(
        "/v1/slos",
        tags=["slos"],
        summary="List the SLOs",
        description="Every SLO the evaluator knows (a limited token: those of its services and teams), "
        "summarised. Scope `read`.",
        response_model=None,
        responses={200: {"model": list[schemas.SloSummary], "description": "The SLOs."}, **AUTH_RESPONSES},
    )
    def list_slos(principal: Annotated[Principal, Depends(reader)]) -> Response:
        return OrjsonResponse([slo for slo in service.slos() if guard.sees_slo(principal, str(slo["name"]))])

    @app.get(
        "/v1/slos/{name}",
        tags=["slos"],
        summary="One SLO and its current measurements",
        description="The SLO's declaration summary and its measurements now, or as at `at`. Scope `read`.",
        response_model=None,
        responses={
            200: {"model": schemas.SloDetail, "description": "The SLO."},
            404: {"model": schemas.Problem, "description": "No SLO of that name."},
            **AUTH_RESPONSES,
        },
    )
    def get_slo(
        name: str,
        principal: Annotated[Principal, Depends(reader)],
        at: Annotated[Instant | None, Query(description="Measure as at this RFC 3339 instant.")] = None,
    ) -> Response:
        guard.slo(principal, name)
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
        response_model=None,
        responses={
            200: schemas.answer(BurnReport, "The split."),
            404: {"model": schemas.Problem, "description": "No SLO of that name."},
            409: {"model": schemas.Problem, "description": "The SLO cannot be split (no event counts, no data)."},
            503: {"model": schemas.Problem, "description": "The metrics backend could not be read."},
            **AUTH_RESPONSES,
        },
    )
    def get_burn(
        name: str,
        principal: Annotated[Principal, Depends(reader)],
        at: Annotated[Instant | None, Query(description="As at this RFC 3339 instant.")] = None,
    ) -> Response:
        guard.slo(principal, name)
        try:
            split = service.deployment_burn(name, at)
        except KeyError:
            raise HTTPException(404, f"no SLO named {excerpt(name)!r}") from None
        except BurnSplitError as error:
            raise HTTPException(409, str(error)) from None
        except BackendError as error:
            raise HTTPException(503, f"the metrics backend could not be read: {error}") from None
        return OrjsonResponse(split.to_dict())

    _decision_routes(app, service, guard, reader)


def _decision_routes(app: FastAPI, service: GateService, guard: RouteGuard, reader: Any) -> None:
    @app.get(
        "/v1/decisions",
        tags=["decisions"],
        summary="Query the decision log",
        description="Recorded decisions matching every filter given, newest first (a limited token: those of "
        "its services' and teams' SLOs). Scope `read`.",
        response_model=None,
        responses={200: schemas.answer(Decision, "The decisions.", many=True), **AUTH_RESPONSES},
    )
    def list_decisions(
        *,
        principal: Annotated[Principal, Depends(reader)],
        slo: Annotated[str | None, Query(description="Only this SLO.")] = None,
        stage: Annotated[str | None, Query(description="Only this stage.")] = None,
        outcome: Annotated[Outcome | None, Query(description="Only this outcome.")] = None,
        revision: Annotated[str | None, Query(description="Only this revision.")] = None,
        since: Annotated[Instant | None, Query(description="Decided at or after (RFC 3339).")] = None,
        until: Annotated[Instant | None, Query(description="Decided at or before (RFC 3339).")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    ) -> Response:
        if slo is not None:
            guard.slo(principal, slo)
        filters: dict[str, Any] = {"stage": stage, "outcome": outcome, "revision": revision}
        filters.update(since=since, until=until, limit=limit)
        if slo is not None or not principal.limited:
            return OrjsonResponse(service.log.query(slo=slo, **filters))
        return OrjsonResponse(_reachable_decisions(service, guard, principal, filters))


def _reachable_decisions(
    service: GateService, guard: RouteGuard, principal: Principal, filters: dict[str, Any]
) -> list[dict[str, Any]]:
    """The newest decisions a limited token may see: one query per service it names (every decision of
    the service, errors about it included) and per SLO of its teams elsewhere, merged newest first.

    Filtering one query's page instead would answer fewer than `limit` while more exist.
    """
    owners = guard.owners()
    services = sorted(principal.services)
    elsewhere = [
        name for name in owners.slos_of_teams(principal.teams) if owners.service_of(name) not in principal.services
    ]
    pages: list[Iterable[dict[str, Any]]] = [service.log.query(service=name, **filters) for name in services]
    pages += [service.log.query(slo=name, **filters) for name in elsewhere]
    merged = heapq.merge(*pages, key=_decided_at, reverse=True)
    seen: set[str] = set()
    found: list[dict[str, Any]] = []
    for record in merged:
        if len(found) >= filters["limit"]:
            break
        if record.get("id") not in seen:
            seen.add(str(record.get("id")))
            found.append(record)
    return found


def _decided_at(record: dict[str, Any]) -> datetime:
    """When a recorded decision was made: the order the log answers in (an unreadable one sorts last)."""
    try:
        return datetime.fromisoformat(str(record["decidedAt"]))
    except (KeyError, ValueError):
        return datetime.min.replace(tzinfo=UTC)


def add_operation_routes(
    app: FastAPI, service: GateService, metrics: EvaluatorMetrics, chain: ChainAudit | None = None
) -> None:
    """`/healthz`, `/readyz` and `/metrics`; with `chain`, `/readyz` says what verifying the log's hash chain found."""

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
            "not answer (gates then decide by their policy); 503 with the reason otherwise. `decisionChain`: "
            "what verifying the decision log's hash chain on start found (`verifying` until done); a broken "
            "chain is an audit finding and leaves the evaluator ready."
        ),
        response_model=None,
        responses={
            200: {"model": schemas.Health},
            503: {"model": schemas.Health, "description": "Not ready, and why."},
        },
    )
    def readyz() -> Response:
        ready, reason = _readiness(service)
        answer: dict[str, Any] = {"status": "ready" if ready else "not ready", "reason": reason or None}
        if chain is not None:
            answer["decisionChain"] = chain.state().to_dict()
        return OrjsonResponse(answer, status_code=200 if ready else 503)

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
