"""What the evaluator measures and decides, as plain immutable data.

A `Measurement` is everything known about one subject (an SLO, or one stage of it) at one instant;
a `Decision` is the answer to one gate request, with the reasons and numbers behind it. Both turn
into JSON for the API, the decision log and the CLI through `to_dict`, so every interface shows
the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, get_args


class Outcome(StrEnum):
    """The four answers a gate gives. Exit codes: pass 0, fail 1, error 2, inconclusive 3."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"

    @property
    def exit_code(self) -> int:
        """The process exit code `sloplane gate` uses for this outcome."""
        return {Outcome.PASS: 0, Outcome.FAIL: 1, Outcome.ERROR: 2, Outcome.INCONCLUSIVE: 3}[self]


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class BreakGlass:
    """A deliberate override: who let a release through against the gate, and why (kept in the log)."""

    reason: str
    identity: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"reason": self.reason, "identity": self.identity}


@dataclass(frozen=True)
class ReleaseSpan:
    """One release of a service as the decision log shows it: when it was first and last gated, live."""

    release: str
    """The revision, or the pipeline run when no revision was given."""
    first: datetime
    last: datetime
    decisions: int
    pipeline: str | None
    """The last decision's pipeline."""
    outcome: str
    """The last decision's outcome: `fail` means the release was stopped (rolled back)."""


@dataclass(frozen=True)
class GateRequest:
    """Who asks, about what: an SLO (or every SLO of a service), a stage, and the release."""

    slo: str | None = None
    service: str | None = None
    stage: str | None = None
    revision: str | None = None
    pipeline: str | None = None
    rollout: str | None = None
    at: datetime | None = None
    """Replay the decision at this instant (back-testing); None means now."""
    requested_by: str | None = None
    break_glass: BreakGlass | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "slo": self.slo,
            "service": self.service,
            "stage": self.stage,
            "revision": self.revision,
            "pipeline": self.pipeline,
            "rollout": self.rollout,
            "at": _time(self.at),
            "requestedBy": self.requested_by,
            "breakGlass": None if self.break_glass is None else self.break_glass.to_dict(),
        }


@dataclass(frozen=True)
class WindowMeasurement:
    """The SLI over one window ending at the evaluation instant."""

    window: timedelta
    error_ratio: float | None
    burn_rate: float | None
    events: float | None = None
    bad_events: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "window": _seconds(self.window),
            "errorRatio": self.error_ratio,
            "burnRate": self.burn_rate,
            "events": self.events,
            "badEvents": self.bad_events,
        }


@dataclass(frozen=True)
class Exclusion:
    """Time taken out of the budget: a maintenance window, a one-off window, an emergency change."""

    kind: str
    name: str
    start: datetime
    end: datetime
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "kind": self.kind,
            "name": self.name,
            "start": _time(self.start),
            "end": _time(self.end),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Measurement:
    """One subject at one instant: windows, the period, the budget, and how it was read."""

    slo: str
    stage: str | None
    objective: float
    at: datetime
    period_start: datetime
    windows: tuple[WindowMeasurement, ...] = ()
    period_error_ratio: float | None = None
    period_events: float | None = None
    period_bad_events: float | None = None
    budget_remaining: float | None = None
    time_to_exhaustion: timedelta | None = None
    exclusions: tuple[Exclusion, ...] = ()
    source: str = "raw"
    """`recording-rules`, `raw` or `composite`: where the numbers came from."""
    queries: tuple[str, ...] = ()
    error: str | None = None
    """Set when the backend could not be read (the numbers above are then None)."""
    stale_seconds: float | None = None
    """Age of the newest sample when it is older than the staleness bound."""

    def window(self, length: timedelta) -> WindowMeasurement | None:
        """The measurement over a window of that length, if taken."""
        return next((w for w in self.windows if w.window == length), None)

    @property
    def has_data(self) -> bool:
        """Whether any window or the period has a value."""
        return self.period_error_ratio is not None or any(w.error_ratio is not None for w in self.windows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "slo": self.slo,
            "stage": self.stage,
            "objective": self.objective,
            "at": _time(self.at),
            "periodStart": _time(self.period_start),
            "windows": [window.to_dict() for window in self.windows],
            "periodErrorRatio": self.period_error_ratio,
            "periodEvents": self.period_events,
            "periodBadEvents": self.period_bad_events,
            "budgetRemaining": self.budget_remaining,
            "timeToExhaustion": _seconds(self.time_to_exhaustion),
            "exclusions": [exclusion.to_dict() for exclusion in self.exclusions],
            "source": self.source,
            "queries": list(self.queries),
            "error": self.error,
            "staleSeconds": self.stale_seconds,
        }


@dataclass(frozen=True)
class Reason:
    """One finding behind a decision, readable by people, with the numbers it rests on."""

    code: str
    message: str
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"code": self.code, "message": self.message, "values": dict(self.values)}


@dataclass(frozen=True)
class Decision:
    """The answer to a gate request, recorded in full in the decision log."""

    id: str
    decided_at: datetime
    request: GateRequest
    slo: str
    stage: str | None
    outcome: Outcome
    reasons: tuple[Reason, ...]
    measurement: Measurement | None
    policy: dict[str, Any]
    policy_version: str
    """A hash of the declaration the decision was made under."""
    service: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; `decision` is the outcome (what Argo's web provider reads)."""
        return {
            "id": self.id,
            "decision": self.outcome.value,
            "slo": self.slo,
            "service": self.service,
            "stage": self.stage,
            "decidedAt": _time(self.decided_at),
            "evaluatedAt": _time(self.measurement.at if self.measurement else self.request.at),
            "reasons": [reason.to_dict() for reason in self.reasons],
            "request": self.request.to_dict(),
            "measurement": self.measurement.to_dict() if self.measurement else None,
            "policy": self.policy,
            "policyVersion": self.policy_version,
        }


OUTCOME_SEVERITY = (Outcome.PASS, Outcome.INCONCLUSIVE, Outcome.ERROR, Outcome.FAIL)
"""Combining decisions (a request for a whole service): the most severe outcome wins."""


@dataclass(frozen=True)
class GateResult:
    """The answer to one request: one decision per SLO it covered, and the combined outcome."""

    decisions: tuple[Decision, ...]

    @property
    def outcome(self) -> Outcome:
        """The most severe of the decisions' outcomes (error when there are none)."""
        if not self.decisions:
            return Outcome.ERROR
        return max((d.outcome for d in self.decisions), key=OUTCOME_SEVERITY.index)

    def to_dict(self) -> dict[str, Any]:
        """`{"decision": ..., "reasons": [...], "decisions": [...]}`: the gate API's answer."""
        reasons = [
            {**reason.to_dict(), "slo": decision.slo, "stage": decision.stage}
            for decision in self.decisions
            for reason in decision.reasons
        ]
        return {
            "decision": self.outcome.value,
            "reasons": reasons,
            "decisions": [decision.to_dict() for decision in self.decisions],
        }


Severity = Literal["major", "minor"]
"""A major incident stops releases; a minor one is recorded and shown."""
SEVERITIES: tuple[str, ...] = get_args(Severity)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class Freeze:
    """No releases of `service` (of any service when None) from `created_at` until lifted or `until`."""

    id: str
    service: str | None
    reason: str
    created_by: str
    created_at: datetime
    until: datetime | None = None
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lift_reason: str | None = None

    def covers(self, service: str | None) -> bool:
        """Whether this freeze applies to `service`: a global freeze applies to every service."""
        return self.service is None or self.service == service

    def active_at(self, at: datetime) -> bool:
        """Whether the freeze is in force at `at`: created, and neither lifted nor expired yet."""
        ended = [end for end in (self.lifted_at, self.until) if end is not None]
        return self.created_at <= at and all(at < end for end in ended)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "reason": self.reason,
            "createdBy": self.created_by,
            "createdAt": _iso(self.created_at),
            "until": _iso(self.until),
            "liftedAt": _iso(self.lifted_at),
            "liftedBy": self.lifted_by,
            "liftReason": self.lift_reason,
        }


@dataclass(frozen=True)
class Incident:
    """Something is wrong in production; a major one stops releases of its services (all when none named)."""

    id: str
    title: str
    severity: Severity
    services: tuple[str, ...]
    opened_by: str
    opened_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    key: str | None = None
    source: str = "manual"

    def covers(self, service: str | None) -> bool:
        """Whether the incident concerns `service`: one naming no services concerns every service."""
        return not self.services or service in self.services

    def open_at(self, at: datetime) -> bool:
        """Whether the incident is open at `at`: opened, and not resolved yet."""
        return self.opened_at <= at and (self.resolved_at is None or at < self.resolved_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "services": list(self.services),
            "openedBy": self.opened_by,
            "openedAt": _iso(self.opened_at),
            "resolvedAt": _iso(self.resolved_at),
            "resolvedBy": self.resolved_by,
            "key": self.key,
            "source": self.source,
        }
