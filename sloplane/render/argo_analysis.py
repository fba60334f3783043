"""What every Argo Rollouts analysis provider shares: the condition grammar and which alerts gate.

A module of its own so that `argo_rollouts` (templates, steps, the prometheus and web providers) and
`argo_rollouts_datadog` (the datadog provider, which `argo_rollouts` wires in) both import it
without importing each other.

The conditions follow the tiny grammar `argo_rollouts` documents: a guard per provider (`Guard`),
then one comparison with a number, so an empty answer (or NaN) satisfies neither condition and no
data is inconclusive, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sloplane.core.budget import Tier


class ArgoRenderError(ValueError):
    """The declaration asks for an analysis this renderer cannot express."""


class Guard(Enum):
    """How a provider's result is tested for "no data" before it is compared."""

    VECTOR = "len(result) > 0 && result[0]"
    """Argo's prometheus provider hands the conditions the query's values as a list."""
    SCALAR = "result != nil && result"
    """Argo's datadog provider (v2, ungrouped) hands them one float, or nil for an empty answer."""


def number(value: float) -> str:
    """Shortest exact text for a number, as PromQL and Go's expr both read it: 14.4, 6, 0.1."""
    rounded = round(value, 12)
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


@dataclass(frozen=True)
class Threshold:
    """A metric's verdict as a comparison of its single value: success on one side, failure on the other.

    `fail_above` True: burn rates (fail when above `limit`, pass at or below it). False: budget left
    (fail when below `limit`; with `inclusive` also at it, as an exhausted budget of exactly 0 fails).
    """

    limit: float
    fail_above: bool
    inclusive: bool = False

    def conditions(self, guard: Guard = Guard.VECTOR) -> tuple[str, str]:
        """(successCondition, failureCondition), both false on an empty result or NaN."""
        value = number(self.limit)
        if self.fail_above:
            success, failure = "<=", ">"
        elif self.inclusive:
            success, failure = ">", "<="
        else:
            success, failure = ">=", "<"
        return f"{guard.value} {success} {value}", f"{guard.value} {failure} {value}"


def gating_tiers(rollback_on: Tier) -> tuple[Tier, ...]:
    """The rollback tier and every louder one (Tier lists the loudest first): their alerts fail a gate."""
    ordered = tuple(Tier)
    return ordered[: ordered.index(rollback_on) + 1]
