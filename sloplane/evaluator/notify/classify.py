"""Which decisions are incidents, and the facts about one that every notification carries.

A gate that fails on a breach (budget spent or low, burn rate, an active alert, a worse canary)
while a release is in flight is *deployment-related*: the release is the likely cause and its
owners must act now. The same breach without a release, or a breach the decision attributed to
the environment or a dependency (`background`/`dependency` reasons, outcome inconclusive), is
*background*: someone must look, but rolling back will not help. Fails for any other reason
(backend down, stale data, a freeze) are not incidents of the service and notify nobody here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sloplane.core.durations import format_duration
from sloplane.evaluator.model import Decision, Outcome

BREACH_CODES = frozenset({"budget-exhausted", "budget-low", "burn-rate", "alert-active", "canary-worse"})
EXTERNAL_CODES = frozenset({"background", "dependency"})
FROZEN_CODE = "frozen"
"""A fail caused by a deployment freeze is the freeze working, not an incident."""


class IncidentClass(StrEnum):
    """PagerDuty's `class`: whether a release is implicated."""

    DEPLOYMENT = "deployment"
    BACKGROUND = "background"


def classify(decision: Decision) -> IncidentClass | None:
    """The incident class of a decision, or None when it notifies nobody."""
    codes = {reason.code for reason in decision.reasons}
    if codes & EXTERNAL_CODES:
        return IncidentClass.BACKGROUND
    if decision.outcome is not Outcome.FAIL or FROZEN_CODE in codes or not codes & BREACH_CODES:
        return None
    request = decision.request
    if request.revision or request.pipeline or request.rollout:
        return IncidentClass.DEPLOYMENT
    return IncidentClass.BACKGROUND


@dataclass(frozen=True)
class Incident:
    """One service's breach as notifications describe it; JSON round-trips through the outbox."""

    kind: IncidentClass
    service: str
    slo: str
    stage: str | None
    revision: str | None
    pipeline: str | None
    rollout: str | None
    decision_id: str
    outcome: str
    decided_at: str
    burn_rates: dict[str, float | None]
    budget_remaining: float | None
    reasons: list[dict[str, Any]]
    runbook: str | None = None

    @property
    def release(self) -> str | None:
        """What identifies the release in dedup keys: the revision, else the pipeline, else the rollout."""
        return self.revision or self.pipeline or self.rollout

    @property
    def dedup_key(self) -> str:
        """`sloplane/<service>/<revision|pipeline|rollout>` or `sloplane/<service>/background`."""
        if self.kind is IncidentClass.DEPLOYMENT and self.release:
            return f"sloplane/{self.service}/{self.release}"
        return f"sloplane/{self.service}/background"

    @property
    def group(self) -> str | None:
        """The war-room key failures are grouped by: `revision/<rev>` or `pipeline/<id>`; None if ungroupable."""
        if self.kind is not IncidentClass.DEPLOYMENT:
            return None
        if self.revision:
            return f"revision/{self.revision}"
        if self.pipeline:
            return f"pipeline/{self.pipeline}"
        return None

    def breaches(self) -> list[dict[str, Any]]:
        """The reasons that make this an incident (the rest are context)."""
        return [r for r in self.reasons if r["code"] in BREACH_CODES | EXTERNAL_CODES]

    def details(self) -> dict[str, Any]:
        """The per-service facts, as `custom_details` and webhook bodies show them."""
        return {
            "service": self.service,
            "slo": self.slo,
            "stage": self.stage,
            "revision": self.revision,
            "pipeline": self.pipeline,
            "rollout": self.rollout,
            "decisionId": self.decision_id,
            "outcome": self.outcome,
            "decidedAt": self.decided_at,
            "burnRates": dict(self.burn_rates),
            "budgetRemaining": self.budget_remaining,
            "reasons": [dict(reason) for reason in self.reasons],
        }

    def to_json(self) -> dict[str, Any]:
        """Everything, for the outbox."""
        return {**self.details(), "kind": self.kind.value, "runbook": self.runbook}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Incident:
        """The inverse of `to_json`."""
        return cls(
            kind=IncidentClass(data["kind"]),
            service=data["service"],
            slo=data["slo"],
            stage=data["stage"],
            revision=data["revision"],
            pipeline=data["pipeline"],
            rollout=data["rollout"],
            decision_id=data["decisionId"],
            outcome=data["outcome"],
            decided_at=data["decidedAt"],
            burn_rates=data["burnRates"],
            budget_remaining=data["budgetRemaining"],
            reasons=data["reasons"],
            runbook=data["runbook"],
        )


def incident(decision: Decision, kind: IncidentClass, *, runbook: str | None = None) -> Incident:
    """The facts of a decision classified as an incident."""
    measurement = decision.measurement
    burn_rates: dict[str, float | None] = {}
    if measurement is not None:
        burn_rates = {
            format_duration(w.window): w.burn_rate for w in sorted(measurement.windows, key=lambda w: w.window)
        }
    request = decision.request
    return Incident(
        kind=kind,
        service=decision.service or request.service or decision.slo,
        slo=decision.slo,
        stage=decision.stage,
        revision=request.revision,
        pipeline=request.pipeline,
        rollout=request.rollout,
        decision_id=decision.id,
        outcome=decision.outcome.value,
        decided_at=decision.decided_at.isoformat(),
        burn_rates=burn_rates,
        budget_remaining=measurement.budget_remaining if measurement is not None else None,
        reasons=[reason.to_dict() for reason in decision.reasons],
        runbook=runbook,
    )
