"""The deployment-frequency advice of `sloplane govern delivery` (issue 18): each item a named rule with the
inputs it fired on, so that a team can check it by hand and argue with the threshold rather than with a score.

The rules, in the order they are given (`delivery.py`'s docstring says where every input comes from):
- `insufficient-data`: fewer than `MIN_DEPLOYMENTS` deployments in the window. A rate over a handful of
  releases says nothing (one failure in five is "20%"), so this is the only advice then.
- `smaller-batches`: at least `HEAVY_REPEATS` deployments each used at least `HEAVY_SHARE` of an SLO's budget
  (the Workbook's single-incident threshold for a postmortem, repeated: a pattern, not bad luck), or the change
  failure rate is above `CFR_HIGH`. The advice is what DORA's research and the Workbook agree on: smaller batches
  shipped more often, larger canaries (more traffic, longer analysis), an extra stage before production. Never
  "deploy less" on its own: fewer, larger releases fail more and take longer to restore.
- `budget-exhausted`: an SLO of the service has spent its whole budget over its current compliance period
  (from the rollups). The policy is the Workbook's: until it recovers, only fix, reliability and security
  changes ship. The gate enforces it for requests that declare their `changeType` (`gate.reliabilityChanges`:
  those pass as a recorded policy exception when the budget is all that fails them); the advice says how.
- `deploy-more-often`: stable with budget to spare — change failure rate at most `CFR_STABLE`, every SLO of the
  service below `SPARE_BUDGET` of its budget in the current period, fewer than `HEAVY_REPEATS` budget-heavy
  deployments. Unspent budget is room to ship faster (the Workbook's "release faster"). Not given when any SLO's
  budget is unknown (no rows in its current period): spare budget must be measured, not assumed.

Rates are compared as exact fractions (3 failures in 20 is 15%, not above it), so a threshold never moves with
floating point.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MIN_DEPLOYMENTS = 10
HEAVY_SHARE = 0.2
"""A deployment using this share of a budget or more is budget-heavy (retro's postmortem threshold)."""
HEAVY_REPEATS = 2
CFR_HIGH = Fraction(15, 100)
"""Above this change failure rate: smaller batches."""
CFR_STABLE = Fraction(5, 100)
"""At most this change failure rate (with budget to spare): deploy more often."""
SPARE_BUDGET = 0.5
"""Every SLO below this share of its current period's budget: budget to spare."""


@dataclass(frozen=True)
class SloBudget:
    """One SLO's budget over its current compliance period, from the rollups; `used` None when no rows."""

    slo: str
    period_start: str
    period_end: str
    used: float | None

    @property
    def exhausted(self) -> bool:
        return self.used is not None and self.used >= 1.0


@dataclass(frozen=True)
class DeliveryFigures:
    """What the rules read of one service."""

    deployments: int
    failed: int
    heavy: int
    """Deployments that used at least `HEAVY_SHARE` of a budget."""
    budgets: tuple[SloBudget, ...]

    @property
    def failure_rate(self) -> Fraction | None:
        return Fraction(self.failed, self.deployments) if self.deployments else None


def _rate(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def _insufficient(figures: DeliveryFigures) -> dict[str, Any]:
    return {
        "rule": "insufficient-data",
        "message": (
            f"{figures.deployments} deployment(s) in the window, fewer than {MIN_DEPLOYMENTS}: too few to judge "
            "delivery by; no other advice is given"
        ),
        "inputs": {"deployments": figures.deployments, "minimum": MIN_DEPLOYMENTS},
    }


def _smaller_batches(figures: DeliveryFigures) -> dict[str, Any] | None:
    rate = figures.failure_rate
    heavy = figures.heavy >= HEAVY_REPEATS
    failing = rate is not None and rate > CFR_HIGH
    if not heavy and not failing:
        return None
    because = []
    if heavy:
        because.append(f"{figures.heavy} deployments each used at least {HEAVY_SHARE:.0%} of a budget")
    if failing:
        because.append(f"the change failure rate is {float(rate or 0):.1%}, above {float(CFR_HIGH):.0%}")
    return {
        "rule": "smaller-batches",
        "message": (
            "; ".join(because) + ": ship smaller batches more often, give canaries more traffic and a longer "
            "analysis, and add a stage before production (deploying less often makes each release larger and "
            "riskier: not advised on its own)"
        ),
        "inputs": {
            "budgetHeavyDeployments": figures.heavy,
            "heavyShare": HEAVY_SHARE,
            "heavyRepeats": HEAVY_REPEATS,
            "changeFailureRate": _rate(rate),
            "changeFailureRateAbove": float(CFR_HIGH),
            "deployments": figures.deployments,
            "failed": figures.failed,
        },
    }


def _exhausted(figures: DeliveryFigures) -> dict[str, Any] | None:
    spent = [budget for budget in figures.budgets if budget.exhausted]
    if not spent:
        return None
    names = ", ".join(budget.slo for budget in spent)
    return {
        "rule": "budget-exhausted",
        "message": (
            f"the error budget of {names} is spent for the current period: by policy only fix, reliability and "
            "security changes ship until it recovers (the gate lets them through when the pipeline declares its "
            "changeType: fix, reliability or security)"
        ),
        "inputs": {
            "slos": [
                {"slo": b.slo, "periodStart": b.period_start, "periodEnd": b.period_end, "budgetUsed": b.used}
                for b in spent
            ],
            "exhaustedAt": 1.0,
            "enforced": False,
        },
    }


def _deploy_more(figures: DeliveryFigures) -> dict[str, Any] | None:
    rate = figures.failure_rate
    used = [budget.used for budget in figures.budgets]
    if rate is None or rate > CFR_STABLE or figures.heavy >= HEAVY_REPEATS or not used:
        return None
    known = [value for value in used if value is not None]
    if len(known) < len(used) or max(known) >= SPARE_BUDGET:
        return None
    return {
        "rule": "deploy-more-often",
        "message": (
            f"stable with budget to spare (change failure rate {float(rate):.1%}, at most {max(known):.0%} of any "
            "budget used this period): deploy more often, in smaller changes"
        ),
        "inputs": {
            "changeFailureRate": float(rate),
            "changeFailureRateAtMost": float(CFR_STABLE),
            "budgetUsed": max(known),
            "budgetUsedBelow": SPARE_BUDGET,
            "budgetHeavyDeployments": figures.heavy,
        },
    }


def advice(figures: DeliveryFigures) -> list[dict[str, Any]]:
    """The advice for one service (see the module's docstring): each {rule, message, inputs}."""
    if figures.deployments < MIN_DEPLOYMENTS:
        return [_insufficient(figures)]
    found = (_smaller_batches(figures), _exhausted(figures), _deploy_more(figures))
    return [item for item in found if item is not None]
