"""Impact assessments over HTTP: `POST /v1/assessments` assesses a risky change and records it, `GET
/v1/assessments/{id}` reads one back — what a pipeline or a change-approval tool calls before a release that the
gate's `requireAssessment` will ask about (`governance.assessment` builds it, `storage.assessments` keeps it).

Scope `gate` to assess (the pipelines that will name the assessment on their gate request hold it), `read` to read
one. A token limited to services or teams assesses and reads only its own services' (`limits`). The assessment is
made at the request's instant: the measurements are the evaluator's now (cached for the evaluation interval), the
change failure rate and overlaps from the same log, rollups and controls the reports read.

Bad input is a 422 naming the field (`service`, `risk`, `window`, `outage`) in FastAPI's own shape; a store that
cannot be read is a 503. One assessment is built at a time per replica (it reads 90 days of the service's
decisions): a request that cannot start within `WAIT_SECONDS` is a 503 with `Retry-After`, as for reports.

Handlers are plain functions (FastAPI runs them in its thread pool): SQLite blocks. No
`from __future__ import annotations`: FastAPI must resolve the closures' `Depends(...)` annotations.
"""

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sloplane.core.durations import DurationError, parse_duration
from sloplane.core.instants import Instant
from sloplane.core.text import excerpt
from sloplane.declaration.policy import RiskLevel
from sloplane.evaluator.governance.assessment import assessment_report
from sloplane.evaluator.governance.assessment_rules import ControlsHistory
from sloplane.evaluator.governance.delivery import DeliveryLog
from sloplane.evaluator.history.report_kinds import ReportOptionError, RowReader
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
from sloplane.evaluator.model import Measurement
from sloplane.evaluator.storage.assessments import AssessmentError, AssessmentStore, UnknownAssessmentError
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

ASSESSMENTS_PATH = "/v1/assessments"
DEFAULT_WINDOW = timedelta(hours=1)
"""A change without a window is assessed for the hour from now, as `sloplane assess` does."""
WAIT_SECONDS = 2.0
BUSY_OR_UNREADABLE = "A store cannot be read, or another assessment is being built (`Retry-After`)."


class Window(BaseModel):
    """When the change happens: [start, end)."""

    model_config = ConfigDict(extra="forbid")

    start: Instant
    end: Instant

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.end <= self.start:
            raise ValueError(f"ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})")
        return self


class AssessmentRequest(BaseModel):
    """A change to assess: the service, its risk, when, and how long an outage to price."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=schemas.NAME_LENGTH)
    risk: RiskLevel
    window: Window | None = Field(None, description="When the change happens; default the hour from now.")
    outage: str | None = Field(
        None, max_length=32, description="The outage to price, e.g. `30m`; default by risk (low 5m … critical 60m)."
    )


@contextmanager
def _answering() -> Iterator[None]:
    """An option the builder refuses as 422 naming it, an unknown id as 404, stores that cannot be read as 503."""
    try:
        yield
    except ReportOptionError as error:
        raise invalid_field(error.option, str(error)) from None
    except UnknownAssessmentError as error:
        raise HTTPException(404, str(error)) from None
    except (AssessmentError, RollupError, DecisionLogError, ControlsError) as error:
        raise HTTPException(503, str(error)) from None


@dataclass(frozen=True)
class AssessmentSources:
    """What an assessment reads: the fleet, the rollups, the decision log and the release controls the reports
    read, and the evaluator's measurements at an instant."""

    fleet: Fleet
    rows: RowReader
    log: DeliveryLog
    controls: ControlsHistory
    measure: Callable[[datetime], Sequence[Measurement]]


class Assessor:
    """Assessments built from `sources` and kept in `store`, one built at a time."""

    def __init__(
        self,
        store: AssessmentStore,
        sources: AssessmentSources,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.sources = sources
        self.clock = clock
        self._one_at_a_time = threading.Semaphore(1)

    def assess(self, body: AssessmentRequest) -> dict[str, Any]:
        """Build, record and read back the assessment (`store.get`: its id and recording instant first)."""
        if not self._one_at_a_time.acquire(timeout=WAIT_SECONDS):
            raise HTTPException(503, "an assessment is being built: ask again shortly", headers={"Retry-After": "2"})
        try:
            at = self.clock().astimezone(UTC)
            window = (at, at + DEFAULT_WINDOW) if body.window is None else (body.window.start, body.window.end)
            outage = None if body.outage is None else _outage(body.outage)
            sources = self.sources
            report = assessment_report(
                sources.fleet,
                body.service,
                body.risk.value,
                window,
                at,
                measurements=sources.measure(at),
                controls=sources.controls,
                log=sources.log,
                rows=sources.rows,
                outage=outage,
            )
            return self.store.get(self.store.record(report, at=at))
        finally:
            self._one_at_a_time.release()


def _outage(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except DurationError as error:
        raise invalid_field("outage", str(error)) from None


def assessment_router(assessor: Assessor, guard: RouteGuard) -> APIRouter:
    """`POST /v1/assessments` and `GET /v1/assessments/{id}`."""
    router = APIRouter()
    gate, reader = requires(guard, Scope.GATE), requires(guard, Scope.READ)

    @router.post(
        ASSESSMENTS_PATH,
        tags=["assessments"],
        summary="Assess a risky change",
        description="The impact assessment of a change to a service at a risk level during a window: the SLOs "
        "affected (consumers through dependencies and composites), budget left and what the outage would cost, "
        "detection per alert tier, overlaps with freezes, maintenance and incidents, change failure rate, canary "
        "and rollback, the approvers the tier requires, and the verdict (proceed, proceed-with-conditions, defer) "
        "with each reason — recorded; its `id` goes on the gate request (`assessment`). Scope `gate`.",
        status_code=201,
        response_model=None,
        responses={
            201: {"description": "The recorded assessment (`id`, `recordedAt`, then the assessment)."},
            400: {"model": schemas.Problem, "description": "The body is not JSON."},
            503: {"model": schemas.Problem, "description": BUSY_OR_UNREADABLE},
            **AUTH_RESPONSES,
        },
    )
    def assess(body: AssessmentRequest, principal: Annotated[Principal, Depends(gate)]) -> Response:
        guard.service(principal, body.service, acting=False)
        with _answering():
            recorded = assessor.assess(body)
        return OrjsonResponse(recorded, status_code=201)

    @router.get(
        ASSESSMENTS_PATH + "/{assessment_id}",
        tags=["assessments"],
        summary="One recorded assessment",
        description="The assessment with this id, as recorded. Scope `read`.",
        response_model=None,
        responses={
            200: {"description": "The assessment."},
            404: {"model": schemas.Problem, "description": "No such assessment (or not one the token sees)."},
            **AUTH_RESPONSES,
        },
    )
    def get_assessment(assessment_id: str, principal: Annotated[Principal, Depends(reader)]) -> Response:
        not_found = HTTPException(404, f"no assessment {excerpt(assessment_id)!r}")  # one answer: no store named
        try:
            with _answering():
                found = assessor.store.get(assessment_id)
        except HTTPException as error:
            raise not_found if error.status_code == 404 else error from None
        if not guard.sees_services(principal, [str(found.get("service"))]):
            raise not_found
        return OrjsonResponse(found)

    method_not_allowed(router, ASSESSMENTS_PATH, "POST")
    return router
