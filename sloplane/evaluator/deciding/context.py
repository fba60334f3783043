"""What a decision step may look at: the request, the measurements, and the release's surroundings.

Steps are pure functions of this context, so every decision can be replayed and tested without a
backend: the service gathers everything first (measurements of the gated subject, of the stage it
is compared with, of declared dependencies and of the service's other SLOs; active freezes and
open incidents; the canary comparison) and the steps only judge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sloplane.core.budget import Tier
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import GatePolicy
from sloplane.evaluator.deciding.attribution import Comparison
from sloplane.evaluator.model import Freeze, GateRequest, Incident, Measurement, Outcome, Reason
from sloplane.evaluator.storage.assessments import Coverage
from sloplane.semantics.subjects import Subject

TIER_LOUDNESS = (Tier.TICKET, Tier.PAGE)
"""Quietest first: a policy that rolls back on tickets also rolls back on pages."""


@dataclass(frozen=True)
class Related:
    """Another subject measured for this request, and why: baseline, dependency or sibling SLO."""

    role: str
    """`baseline` (the stage a canary is compared with), `dependency` or `sibling` (same service)."""
    declaration: Declaration
    subject: Subject
    measurement: Measurement


@dataclass
class GateContext:
    """Everything a step may look at, and the reasons gathered so far."""

    declaration: Declaration
    subject: Subject
    request: GateRequest
    measurement: Measurement
    measurements: Mapping[str, Measurement] = field(default_factory=dict)
    """Every subject measured for this request, by key."""
    related: Sequence[Related] = ()
    freezes: Sequence[Freeze] = ()
    """Manual freezes active at the evaluation instant that cover this service."""
    incidents: Sequence[Incident] = ()
    """Major incidents open at the evaluation instant."""
    controls_error: str | None = None
    """Why freezes and incidents could not be read, if they could not (the freeze guard fails closed)."""
    comparison: Comparison | None = None
    comparison_error: str | None = None
    """Why the canary could not be compared with its baseline (the backend failed), if it could not."""
    assessment: Coverage | None = None
    """Whether the request's impact assessment covers this release (read only when the policy requires one)."""
    assessment_error: str | None = None
    """Why the assessments could not be read, if they could not."""
    reasons: list[Reason] = field(default_factory=list)

    @property
    def policy(self) -> GatePolicy:
        """The declared gate policy, or the documented defaults."""
        return self.declaration.spec.effective_gate

    def note(self, code: str, message: str, **values: Any) -> None:
        """Add a reason."""
        self.reasons.append(Reason(code, message, values))

    def related_as(self, role: str) -> list[Related]:
        """The related subjects in one role."""
        return [related for related in self.related if related.role == role]

    def has_reason(self, *codes: str) -> bool:
        """Whether any reason so far has one of these codes."""
        return any(reason.code in codes for reason in self.reasons)


Step = Callable[[GateContext], Outcome | None]
Adjuster = Callable[[GateContext, Outcome], Outcome]


def firing_alerts(declaration: Declaration, measurement: Measurement, quietest: Tier) -> list[tuple[str, float]]:
    """Burn-rate alerts of `quietest` tier or louder that would be firing: (name, long-window burn rate)."""
    threshold = TIER_LOUDNESS.index(quietest)
    firing = []
    for alert in declaration.spec.burn_rate_alerts():
        if TIER_LOUDNESS.index(alert.tier) < threshold:
            continue
        long_window = measurement.window(alert.long_window)
        short_window = measurement.window(alert.short_window)
        if (
            long_window is None
            or short_window is None
            or long_window.burn_rate is None
            or short_window.burn_rate is None
        ):
            continue
        if long_window.burn_rate > alert.factor and short_window.burn_rate > alert.factor:
            firing.append((f"{alert.tier.value} {alert.name}", long_window.burn_rate))
    return firing
