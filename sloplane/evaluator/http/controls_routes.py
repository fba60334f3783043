"""The release controls' HTTP API: freezes and incidents, read by anyone with `read`, changed by `admin`.

Changing them is `admin` only: a freeze stops every pipeline of a service, so a pipeline's `gate`
token must not be able to lift one. Who froze, lifted, opened or resolved is the name of the
token that asked, never a name from the body, so the record says who really did it.

A token limited to services or teams changes only the freezes and incidents of its own services
(`limits`: a service it names, or one whose every SLO its teams own) and never one covering every
service; it lists only those of services it sees, and the global ones (which stop its releases too).

Handlers are plain functions (FastAPI runs them in its thread pool): SQLite blocks. No
`from __future__ import annotations`: FastAPI must resolve the closures' `Depends(admin)` annotations.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sloplane.core.instants import Instant
from sloplane.core.text import PRINTABLE_NOT_BLANK
from sloplane.evaluator.contracts import ReleaseControlsStore
from sloplane.evaluator.http import schemas
from sloplane.evaluator.http.auth import Principal, Scope
from sloplane.evaluator.http.common import AUTH_RESPONSES, OrjsonResponse, method_not_allowed, requires
from sloplane.evaluator.http.guard import RouteGuard
from sloplane.evaluator.http.schemas import NAME_LENGTH, TEXT_LENGTH
from sloplane.evaluator.model import Freeze, Incident, Severity
from sloplane.evaluator.storage.controls import AlreadyEndedError, ControlsError, UnknownControlError

_NOT_BLANK = PRINTABLE_NOT_BLANK
"""One line of text that is not only spaces and hides no control character (NUL, escapes)."""


class FreezeRequest(BaseModel):
    """Freeze releases of one service, or of every service when `service` is absent."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = Field(
        None, min_length=1, max_length=NAME_LENGTH, pattern=_NOT_BLANK, description="Absent: every service."
    )
    reason: str = Field(min_length=1, max_length=TEXT_LENGTH, pattern=_NOT_BLANK, description="Why, for the record.")
    until: Instant | None = Field(None, description="The freeze ends by itself at this RFC 3339 instant.")


class LiftRequest(BaseModel):
    """Why a freeze is lifted (or give `reason` as a query parameter)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=TEXT_LENGTH, pattern=_NOT_BLANK)


class IncidentRequest(BaseModel):
    """Open an incident; a major one stops the releases of its services (of all, when none named)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TEXT_LENGTH, pattern=_NOT_BLANK)
    severity: Severity = "major"
    services: list[Annotated[str, Field(min_length=1, max_length=NAME_LENGTH, pattern=_NOT_BLANK)]] = Field(
        default_factory=list, max_length=100, description="The services concerned; none: every service."
    )
    key: str | None = Field(
        None,
        min_length=1,
        max_length=TEXT_LENGTH,
        pattern=_NOT_BLANK,
        description="Deduplication: while an incident with this key is open, that incident is answered (200).",
    )


_NOT_FOUND = {"model": schemas.Problem, "description": "No such id."}
_ENDED = {"model": schemas.Problem, "description": "Already lifted or resolved."}
_REFUSED = {"model": schemas.Problem, "description": "The request cannot be carried out, and why."}

All = Annotated[bool, Query(alias="all", description="Include lifted freezes / resolved incidents.")]
At = Annotated[Instant | None, Query(description="In force at this RFC 3339 instant; now when absent.")]


@contextmanager
def _answering() -> Iterator[None]:
    """The store's refusals as HTTP answers in the `Problem` shape: 404 unknown, 409 ended, 400 otherwise."""
    try:
        yield
    except UnknownControlError as error:
        raise HTTPException(404, str(error)) from None
    except AlreadyEndedError as error:
        raise HTTPException(409, str(error)) from None
    except ControlsError as error:
        raise HTTPException(400, str(error)) from None


def controls_router(controls: ReleaseControlsStore, guard: RouteGuard) -> APIRouter:
    """The `/v1/freezes` and `/v1/incidents` endpoints over `controls`."""
    router = APIRouter()
    _freeze_routes(router, controls, guard)
    _incident_routes(router, controls, guard)
    for path in ("/v1/freezes", "/v1/incidents"):
        method_not_allowed(router, path, "GET, POST")
    return router


def _services(freeze: Freeze) -> list[str]:
    """What a freeze covers, as limits read it: its service, or none for every service."""
    return [] if freeze.service is None else [freeze.service]


def _freeze_routes(router: APIRouter, controls: ReleaseControlsStore, guard: RouteGuard) -> None:
    reader, admin = requires(guard, Scope.READ), requires(guard, Scope.ADMIN)

    @router.get(
        "/v1/freezes",
        tags=["freezes"],
        summary="List freezes",
        description="Freezes in force now (or at `at`), newest first; with `all=true` every freeze recorded. "
        "Scope `read`.",
        response_model=None,
        responses={200: schemas.answer(Freeze, "The freezes.", many=True), **AUTH_RESPONSES},
    )
    def list_freezes(
        principal: Annotated[Principal, Depends(reader)],
        include_all: All = False,
        at: At = None,
        service: Annotated[str | None, Query(description="Only freezes covering it (its own and global).")] = None,
    ) -> Response:
        if service is not None:
            guard.service(principal, service, acting=False)
        found = controls.freezes(at=at, active_only=not include_all, service=service)
        shown = [freeze for freeze in found if guard.sees_services(principal, _services(freeze))]
        return OrjsonResponse([freeze.to_dict() for freeze in shown])

    @router.post(
        "/v1/freezes",
        tags=["freezes"],
        summary="Freeze releases",
        description="Freeze one service's releases, or every service's. Recorded as created by the token's "
        "name. Scope `admin`.",
        status_code=201,
        response_model=None,
        responses={
            201: schemas.answer(Freeze, "The freeze."),
            400: _REFUSED,
            **AUTH_RESPONSES,
        },
    )
    def create_freeze(body: FreezeRequest, principal: Annotated[Principal, Depends(admin)]) -> Response:
        guard.services(principal, [] if body.service is None else [body.service], "freezing")
        with _answering():
            freeze = controls.freeze(body.service, body.reason, principal.name, until=body.until)
        return OrjsonResponse(freeze.to_dict(), status_code=201)

    @router.delete(
        "/v1/freezes/{freeze_id}",
        tags=["freezes"],
        summary="Lift a freeze",
        description="End a freeze now; it stays recorded with who lifted it and why (`reason` in the body or "
        "the query). Scope `admin`.",
        response_model=None,
        responses={
            200: schemas.answer(Freeze, "The lifted freeze."),
            400: _REFUSED,
            404: _NOT_FOUND,
            409: _ENDED,
            **AUTH_RESPONSES,
        },
    )
    def lift_freeze(
        freeze_id: str,
        principal: Annotated[Principal, Depends(admin)],
        body: Annotated[LiftRequest | None, Body()] = None,
        reason: Annotated[
            str | None, Query(max_length=TEXT_LENGTH, pattern=_NOT_BLANK, description="Why (or in the body).")
        ] = None,
    ) -> Response:
        why = body.reason if body is not None else reason
        if why is None:
            raise HTTPException(400, "give a reason for lifting the freeze, in the body or as ?reason=")
        if principal.limited:
            with _answering():
                guard.services(principal, _services(controls.get_freeze(freeze_id)), "lifting a freeze of")
        with _answering():
            freeze = controls.lift(freeze_id, principal.name, why)
        return OrjsonResponse(freeze.to_dict())


def _incident_routes(router: APIRouter, controls: ReleaseControlsStore, guard: RouteGuard) -> None:
    reader, admin = requires(guard, Scope.READ), requires(guard, Scope.ADMIN)

    @router.get(
        "/v1/incidents",
        tags=["incidents"],
        summary="List incidents",
        description="Incidents open now (or at `at`), newest first; with `all=true` every incident recorded. "
        "Scope `read`.",
        response_model=None,
        responses={200: schemas.answer(Incident, "The incidents.", many=True), **AUTH_RESPONSES},
    )
    def list_incidents(
        principal: Annotated[Principal, Depends(reader)], include_all: All = False, at: At = None
    ) -> Response:
        found = controls.incidents(at=at, open_only=not include_all)
        shown = [incident for incident in found if guard.sees_services(principal, incident.services)]
        return OrjsonResponse([incident.to_dict() for incident in shown])

    @router.post(
        "/v1/incidents",
        tags=["incidents"],
        summary="Open an incident",
        description="Open an incident, recorded as opened by the token's name. With a `key` that an open "
        "incident has, that incident is answered with 200 and nothing is recorded. Scope `admin`.",
        status_code=201,
        response_model=None,
        responses={
            201: schemas.answer(Incident, "The incident opened."),
            200: schemas.answer(Incident, "The open incident with this key."),
            400: _REFUSED,
            **AUTH_RESPONSES,
        },
    )
    def open_incident(body: IncidentRequest, principal: Annotated[Principal, Depends(admin)]) -> Response:
        guard.services(principal, body.services, "opening an incident for")
        with _answering():
            incident, new = controls.record_incident(
                body.title, body.severity, principal.name, services=body.services, key=body.key
            )
        if not new:  # the open incident with this key, perhaps another team's: answered only if it may see it
            guard.services(principal, incident.services, "answering with an open incident of")
        return OrjsonResponse(incident.to_dict(), status_code=201 if new else 200)

    @router.post(
        "/v1/incidents/{incident_id}/resolve",
        tags=["incidents"],
        summary="Resolve an incident",
        description="Close an incident now; it stays recorded with who resolved it. Scope `admin`.",
        response_model=None,
        responses={
            200: schemas.answer(Incident, "The resolved incident."),
            404: _NOT_FOUND,
            409: _ENDED,
            **AUTH_RESPONSES,
        },
    )
    def resolve_incident(incident_id: str, principal: Annotated[Principal, Depends(admin)]) -> Response:
        if principal.limited:
            with _answering():
                guard.services(principal, controls.get_incident(incident_id).services, "resolving an incident of")
        with _answering():
            incident = controls.resolve_incident(incident_id, principal.name)
        return OrjsonResponse(incident.to_dict())
