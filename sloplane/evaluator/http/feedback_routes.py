"""Support feedback's HTTP API: `POST /v1/feedback` records a problem a customer reported, classified at once
(`governance.feedback`: seen by monitoring, or missed — a blind spot), and `GET /v1/feedback` lists them.

Scope `feedback` (support staff get only it; `admin` implies it, `gate` and `read` do not): the router takes the
scope it guards with, so that the app decides it in one place. Who reported is the token's name, never a name
from the body, as for freezes.

A token limited to services or teams reports only on services it sees (`limits`: one it names, or one with an
SLO of its teams) and lists only their reports; a service no declaration names is a 422 naming `service` — for a
limited token the guard's 403 comes first, so it is never told which services exist.

Bad input is a 422 in the shape FastAPI's own validation answers (`guard.validation_failed`): `detail` lists
`{"loc": ["body", field], "msg", "type"}`, for what pydantic checks (types, lengths) and what the store checks
(a range backwards or over 31 days, an end after receipt, control characters). A store, the rollups or the
decision log that cannot be read is a 503, as for the gates.

Handlers are plain functions (FastAPI runs them in its thread pool): SQLite blocks. No
`from __future__ import annotations`: FastAPI must resolve the closures' `Depends(...)` annotations.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sloplane.core.instants import Instant
from sloplane.core.text import PRINTABLE_NOT_BLANK, excerpt
from sloplane.evaluator.governance.feedback import Sources, classify
from sloplane.evaluator.http import schemas
from sloplane.evaluator.http.auth import Principal, Scope
from sloplane.evaluator.http.common import (
    AUTH_RESPONSES,
    OrjsonResponse,
    invalid_field,
    method_not_allowed,
    requires,
)
from sloplane.evaluator.http.guard import RouteGuard
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.feedback import (
    IMPACT_LENGTH,
    NAME_LENGTH,
    TICKET_LENGTH,
    VERDICTS,
    FeedbackError,
    FeedbackStore,
    UnknownFeedbackError,
    checked_report,
)
from sloplane.evaluator.storage.rollups import RollupError

FEEDBACK_PATH = "/v1/feedback"
WAIT_SECONDS = 2.0
"""How long a report waits for the one classification a replica runs at a time before it is told to come back."""


@contextmanager
def _released(lock: threading.Semaphore) -> Iterator[None]:
    try:
        yield
    finally:
        lock.release()


class FeedbackRequest(BaseModel):
    """A problem a customer reported: which service, when, what they could not do, and the support ticket."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=NAME_LENGTH, pattern=PRINTABLE_NOT_BLANK)
    start: Instant = Field(description="When the problem started (RFC 3339).")
    end: Instant = Field(description="When it ended; for a problem still going on, now. At most 31 days after start.")
    impact: str = Field(
        min_length=1, max_length=IMPACT_LENGTH, description="What the customer could not do (several lines allowed)."
    )
    ticket: str = Field(
        min_length=1, max_length=TICKET_LENGTH, pattern=PRINTABLE_NOT_BLANK, description="Ticket id or URL."
    )


class FeedbackAnswer(BaseModel):
    """A stored report with its classification (`governance.feedback` documents the classification)."""

    id: str
    service: str
    start: datetime
    end: datetime
    impact: str
    ticket: str
    reportedBy: str  # noqa: N815 - the JSON's name
    receivedAt: datetime  # noqa: N815 - the JSON's name
    verdict: str
    classification: dict[str, Any]


_UNREADABLE = {
    "model": schemas.Problem,
    "description": "The feedback, the rollups or the decision log cannot be read, or another report is being "
    "classified (`Retry-After`).",
}


@contextmanager
def _answering() -> Iterator[None]:
    """Refusals naming a field as 422, an unknown id as 404, stores that cannot be read as 503."""
    try:
        yield
    except UnknownFeedbackError as error:
        raise HTTPException(404, str(error)) from None
    except FeedbackError as error:
        if error.field is not None:
            raise invalid_field(error.field, str(error)) from None
        raise HTTPException(503, str(error)) from None
    except (RollupError, DecisionLogError) as error:
        raise HTTPException(503, str(error)) from None


def _declared(sources: Sources, service: str) -> bool:
    return any(sources.fleet[name].spec.service == service for name in sources.fleet)


def feedback_router(feedback: FeedbackStore, sources: Sources, guard: RouteGuard, *, scope: Scope) -> APIRouter:
    """`POST` and `GET /v1/feedback` (and `GET /v1/feedback/{id}`) over `feedback`, classified from `sources`,
    for tokens holding `scope` (the app passes `Scope.FEEDBACK`)."""
    router = APIRouter()
    allowed = requires(guard, scope)
    one_at_a_time = threading.Semaphore(1)
    """A classification reads hours of rollups and decisions (and may replay alerts on Prometheus): one at a time
    per replica, so that reports never take the gates' worker threads; a request that cannot start soon is a 503."""

    @router.post(
        FEEDBACK_PATH,
        tags=["feedback"],
        summary="Report a customer's problem",
        description="Record a problem a customer reported, classified at once: seen by monitoring (and by what), "
        "or missed (a blind spot), or pending until its hours are rolled up. Recorded as reported by the token's "
        f"name. Scope `{scope.value}`.",
        status_code=201,
        response_model=None,
        responses={
            201: {"model": FeedbackAnswer, "description": "The report and its classification."},
            400: {"model": schemas.Problem, "description": "The body is not JSON."},
            503: _UNREADABLE,
            **AUTH_RESPONSES,
        },
    )
    def report_feedback(body: FeedbackRequest, principal: Annotated[Principal, Depends(allowed)]) -> Response:
        guard.service(principal, body.service, acting=False)
        if not _declared(sources, body.service):
            raise invalid_field("service", f"no SLO is declared for service {excerpt(body.service)!r}")
        at = datetime.now(UTC)
        if not one_at_a_time.acquire(timeout=WAIT_SECONDS):
            raise HTTPException(
                503, "a report is being classified: send it again shortly", headers={"Retry-After": "2"}
            )
        with _answering(), _released(one_at_a_time):
            report = checked_report(
                service=body.service,
                start=body.start,
                end=body.end,
                impact=body.impact,
                ticket=body.ticket,
                reported_by=principal.name,
                received_at=at,
            )
            classification = classify(sources, report.service, report.start, report.end, at=at)
            stored = feedback.add(report, classification)
        return OrjsonResponse(stored.to_dict(), status_code=201)

    @router.get(
        FEEDBACK_PATH,
        tags=["feedback"],
        summary="List customer reports",
        description="Reports whose problem started in [since, until), by start; only those of services the token "
        f"sees. Scope `{scope.value}`.",
        response_model=None,
        responses={200: {"model": list[FeedbackAnswer], "description": "The reports."}, **AUTH_RESPONSES},
    )
    def list_feedback(
        principal: Annotated[Principal, Depends(allowed)],
        service: Annotated[str | None, Query(max_length=NAME_LENGTH, description="Only this service's.")] = None,
        since: Annotated[Instant | None, Query(description="Started at or after this instant.")] = None,
        until: Annotated[Instant | None, Query(description="Started before this instant.")] = None,
        verdict: Annotated[str | None, Query(pattern=f"^({'|'.join(VERDICTS)})$")] = None,
    ) -> Response:
        if service is not None:
            guard.service(principal, service, acting=False)
        with _answering():
            found = feedback.reports(service=service, since=since, until=until, verdict=verdict)
        shown = [report for report in found if guard.sees_services(principal, [report.service])]
        return OrjsonResponse([report.to_dict() for report in shown])

    @router.get(
        FEEDBACK_PATH + "/{report_id}",
        tags=["feedback"],
        summary="One customer report",
        description=f"The report with this id and its latest classification. Scope `{scope.value}`.",
        response_model=None,
        responses={
            200: {"model": FeedbackAnswer, "description": "The report."},
            404: {"model": schemas.Problem, "description": "No such report (or not one the token sees)."},
            **AUTH_RESPONSES,
        },
    )
    def get_feedback(report_id: str, principal: Annotated[Principal, Depends(allowed)]) -> Response:
        not_found = HTTPException(404, f"no report {excerpt(report_id)!r}")  # one answer: no store named
        try:
            with _answering():
                report = feedback.get(report_id)
        except HTTPException as error:
            raise not_found if error.status_code == 404 else error from None
        if not guard.sees_services(principal, [report.service]):
            raise not_found
        return OrjsonResponse(report.to_dict())

    method_not_allowed(router, FEEDBACK_PATH, "GET, POST")
    return router
