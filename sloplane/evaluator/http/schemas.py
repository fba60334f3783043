"""The evaluator API's JSON shapes, as pydantic models: what OpenAPI publishes.

The request model validates gate requests. The response models mirror the `to_dict()` forms of
`sloplane.evaluator.model` and only document them: handlers return those dicts as they are, so a
field added to the model reaches clients (and the decision log) without a change here, and a
response can never fail validation on its way out (the gate endpoint must always answer).
Response models therefore allow extra fields; the API's tests check that answers conform.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from sloplane.evaluator.model import Outcome

_NAME = 253
"""RFC 1123 names, as SLO, service and stage names are."""
_TEXT = 1024


class BreakGlassRequest(BaseModel):
    """Let this release through whatever the gate finds; needs the `admin` scope, recorded with the token's name."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=_TEXT, description="Why, for the audit trail (an incident, a fix).")


class GateRequest(BaseModel):
    """A gate request: an SLO, or every SLO of a service, at a stage, for a release."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["slo"], "properties": {"slo": {"type": "string"}}},
                {"required": ["service"], "properties": {"service": {"type": "string"}}},
            ]
        },
    )

    slo: str | None = Field(None, min_length=1, max_length=_NAME, description="The SLO to decide on.")
    service: str | None = Field(
        None, min_length=1, max_length=_NAME, description="Decide on every SLO of this service (worst outcome wins)."
    )
    stage: str | None = Field(None, min_length=1, max_length=_NAME, description="The stage, e.g. `canary`.")
    revision: str | None = Field(None, max_length=_TEXT, description="The release being gated (image tag, commit).")
    pipeline: str | None = Field(None, max_length=_TEXT, description="The pipeline run asking, for the audit trail.")
    rollout: str | None = Field(None, max_length=_TEXT, description="The rollout asking (Argo Rollouts name).")
    at: AwareDatetime | None = Field(
        None, description="Decide as at this RFC 3339 instant (back-testing); now when absent."
    )
    breakGlass: BreakGlassRequest | None = Field(  # noqa: N815 (the wire name)
        None, description="Override a failing gate (scope `admin`); the override and its reason are recorded."
    )

    @model_validator(mode="after")
    def _subject(self) -> GateRequest:
        if self.slo is None and self.service is None:
            raise ValueError("give `slo` or `service`: what the gate should decide on")
        return self


class _Shape(BaseModel):
    """A documented answer shape: camelCase on the wire, extra fields allowed (the model may grow)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class Reason(_Shape):
    """One finding behind a decision, with the numbers it rests on."""

    code: str = Field(description="Stable, machine-readable code, e.g. `budget` or `invalid-request`.")
    message: str = Field(description="The finding in words.")
    values: dict[str, Any] = Field(default_factory=dict, description="The numbers behind it.")


class GateReason(Reason):
    """A reason of a gate answer, with the SLO and stage it is about."""

    slo: str | None = None
    stage: str | None = None


class RecordedRequest(_Shape):
    """The request a decision answered, as recorded."""

    slo: str | None = None
    service: str | None = None
    stage: str | None = None
    revision: str | None = None
    pipeline: str | None = None
    rollout: str | None = None
    at: datetime | None = None
    requested_by: str | None = Field(None, description="The name of the token that asked.")
    break_glass: dict[str, str] | None = Field(None, description="`reason` and `identity` of a break-glass override.")


class WindowMeasurement(_Shape):
    """The SLI over one window ending at the evaluation instant."""

    window: float | None = Field(description="Window length in seconds.")
    error_ratio: float | None = None
    burn_rate: float | None = None
    events: float | None = None
    bad_events: float | None = None


class Exclusion(_Shape):
    """Time taken out of the budget."""

    kind: str
    name: str
    start: datetime | None = None
    end: datetime | None = None
    reason: str = ""


class Measurement(_Shape):
    """One SLO (or stage) at one instant: windows, period, budget, and where the numbers came from."""

    slo: str
    stage: str | None = None
    objective: float
    at: datetime | None = None
    period_start: datetime | None = None
    windows: list[WindowMeasurement] = Field(default_factory=list)
    period_error_ratio: float | None = None
    period_events: float | None = None
    period_bad_events: float | None = None
    budget_remaining: float | None = None
    time_to_exhaustion: float | None = Field(None, description="Seconds until the budget is spent at this burn.")
    exclusions: list[Exclusion] = Field(default_factory=list)
    source: str = Field("raw", description="`recording-rules`, `raw` or `composite`.")
    queries: list[str] = Field(default_factory=list)
    error: str | None = Field(None, description="Why the backend could not be read.")
    stale_seconds: float | None = None


class Decision(_Shape):
    """One decision, as recorded in the decision log."""

    id: str
    decision: Outcome = Field(description="The outcome.")
    slo: str
    stage: str | None = None
    decided_at: datetime | None = None
    evaluated_at: datetime | None = None
    reasons: list[Reason] = Field(default_factory=list)
    request: RecordedRequest
    measurement: Measurement | None = None
    policy: dict[str, Any] = Field(default_factory=dict, description="The gate policy applied.")
    policy_version: str = Field(description="A hash of the declaration the decision was made under.")


class GateAnswer(_Shape):
    """The gate's answer: `decision` is what Argo Rollouts' web provider reads (`{$.decision}`)."""

    decision: Outcome = Field(description="The most severe outcome of the decisions (error when there are none).")
    reasons: list[GateReason] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list, description="One decision per SLO covered.")


class SloSummary(_Shape):
    """An SLO the evaluator knows (the evaluator adds service, team, stages, objective, ...)."""

    name: str


class SloDetail(_Shape):
    """An SLO's declaration summary and its current measurements."""

    name: str


class Problem(BaseModel):
    """An error answer: why the request was refused."""

    detail: str


class Health(BaseModel):
    """The process is up (or, for /readyz, can serve decisions)."""

    status: str
    reason: str | None = None


class DeploymentBurn(_Shape):
    """One revision's deployment window and the budget burned inside it."""

    service: str
    revision: str
    pipeline: str | None = None
    start: datetime
    end: datetime
    outcome: str = Field(description="The last decision about this revision; `fail` means it was stopped.")
    rolled_back: bool
    decisions: int
    bad_events: float
    events: float
    budget_consumed: float | None = Field(description="Fraction of the period's whole budget.")


class BurnReport(_Shape):
    """An SLO's production budget over its period: burned during deployments, and in the background."""

    slo: str
    stage: str | None = None
    period_start: datetime
    at: datetime
    events: float
    bad_events: float
    allowed_bad_events: float
    budget_consumed: float | None
    deployment_budget_consumed: float | None
    background_budget_consumed: float | None
    deployment_bad_events: float
    background_bad_events: float
    deployments: list[DeploymentBurn]
