"""The rules of `govern stale`, one function each: an SLO's facts in, a finding (or why it could not be checked, or
nothing) out. What each rule means and why its threshold is what it is: `stale.py`'s docstring.

Apart from the builder so that each rule reads whole and is tested on its own facts; the numbers of a period are
the quarterly review's (`quarterly_slo.period_numbers`), so a period this calls missed is one the SLA report calls
missed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sloplane.declaration.model import Criticality, Declaration

REVIEW_OVERDUE = "review-overdue"
NEVER_BURNS = "never-burns"
CHRONICALLY_MISSED = "chronically-missed"
USAGE_DRIFT = "usage-drift"
BUDGET_TOO_SMALL = "budget-too-small"
NO_DATA = "no-data"
UNUSED = "unused"
OWNERSHIP_GAP = "ownership-gap"
RULES = (
    REVIEW_OVERDUE,
    NEVER_BURNS,
    CHRONICALLY_MISSED,
    USAGE_DRIFT,
    BUDGET_TOO_SMALL,
    NO_DATA,
    UNUSED,
    OWNERSHIP_GAP,
)
"""Every rule, in the order an SLO's findings are listed."""

TIGHTEN, LOOSEN, RELEASE_FASTER, OPEN_DEBT, REVIEW, ASSIGN_OWNERS = (
    "tighten",
    "loosen",
    "release-faster",
    "open-debt",
    "review",
    "assign-owners",
)
ACTIONS = (TIGHTEN, LOOSEN, RELEASE_FASTER, OPEN_DEBT, REVIEW, ASSIGN_OWNERS)
"""The Workbook's actions a finding names."""

NEVER_BURNS_BELOW = 0.10
"""Budget used below which a period counts as not burning (strictly below: 10.0% burns)."""
MISSED_AT_LEAST = 2
"""Missed periods, of the last `PERIODS`, that make an SLO chronically missed."""
DRIFT_RANGE = (0.5, 2.0)
"""Events per hour now ÷ at the last review inside this range (bounds included) are no drift."""
MIN_ALLOWED_BAD_EVENTS = 20.0
"""Bad events a period's budget must allow (events × (1 − objective)) to be measured: below, one bad event is
more than 5% of the budget, and the budget swings on noise."""
OWNED_TIERS = (Criticality.CRITICAL, Criticality.HIGH)
"""Tiers that must name dev, ops and product owners and a rationale."""

DEBT_REGISTER_MISSING = "the debt register (ReliabilityDebt) is not available yet: no open debt is known"


@dataclass(frozen=True)
class Finding:
    """One rule that fired: the action it calls for, in words, with the inputs it was decided on."""

    rule: str
    action: str
    message: str
    inputs: dict[str, Any]


@dataclass(frozen=True)
class NotChecked:
    """A rule that could not be judged for an SLO, and why (no rows, never reviewed …)."""

    rule: str
    reason: str


Outcome = Finding | NotChecked | None


@dataclass(frozen=True)
class SloFacts:
    """What the period rules read of one SLO: its last complete periods' numbers (oldest first, each
    `period_numbers`' dict) and the objective changes in their rows, the numbers of the period that held the last
    review (None: never reviewed, or not over yet: `baseline_note` says which), the declared production objective."""

    declaration: Declaration
    periods: Sequence[dict[str, Any]]
    changes: Sequence[dict[str, Any]]
    declared_objective: float
    baseline: dict[str, Any] | None = None
    baseline_note: str | None = None

    @property
    def last(self) -> dict[str, Any]:
        return self.periods[-1]


def _percent(share: float) -> str:
    return f"{share:.1%}"


def _period_inputs(periods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    keys = ("label", "start", "end", "objective", "events", "badEvents", "budgetUsed", "met", "hours")
    return [{key: period[key] for key in keys} for period in periods]


def review_overdue(declaration: Declaration, today: date, cadence_days: int) -> Outcome:
    """Past `review.next`, never reviewed, or last reviewed more than the tier's cadence ago."""
    review = declaration.spec.review
    tier = declaration.spec.tier.value
    inputs: dict[str, Any] = {
        "last": None if review.last is None else review.last.isoformat(),
        "next": None if review.next is None else review.next.isoformat(),
        "today": today.isoformat(),
        "cadenceDays": cadence_days,
        "daysSinceLast": None if review.last is None else (today - review.last).days,
        "daysPastNext": None,
    }
    if review.next is not None and review.next < today:
        inputs["daysPastNext"] = (today - review.next).days
        inputs["reason"] = "past-next"
        late = inputs["daysPastNext"]
        message = f"the review due on {review.next} is {late} day{'s' if late != 1 else ''} overdue"
    elif review.last is None:
        inputs["reason"] = "never-reviewed"
        message = f"never reviewed: a {tier} SLO is reviewed every {cadence_days} days"
    elif inputs["daysSinceLast"] > cadence_days:
        inputs["reason"] = "cadence"
        message = (
            f"last reviewed {inputs['daysSinceLast']} days ago ({review.last}): a {tier} SLO is reviewed every "
            f"{cadence_days} days"
        )
    else:
        return None
    return Finding(REVIEW_OVERDUE, REVIEW, message + "; review the objective with its owners", inputs)


def never_burns(facts: SloFacts) -> Outcome:
    """Less than `NEVER_BURNS_BELOW` of the budget used in each of the last periods."""
    used = [period["budgetUsed"] for period in facts.periods]
    if any(share is None for share in used):
        with_data = sum(1 for share in used if share is not None)
        return NotChecked(NEVER_BURNS, f"only {with_data} of the last {len(used)} periods have counted events")
    if any(share >= NEVER_BURNS_BELOW for share in used):
        return None
    labels = ", ".join(period["label"] for period in facts.periods)
    shares = ", ".join(_percent(share) for share in used)
    message = (
        f"used {shares} of its error budget in {labels}, each under {_percent(NEVER_BURNS_BELOW)}: the objective "
        "promises less than the service delivers; tighten it to what users need (or spend the budget: release "
        "faster)"
    )
    inputs = {"threshold": NEVER_BURNS_BELOW, "periods": _period_inputs(facts.periods)}
    return Finding(NEVER_BURNS, TIGHTEN, message, inputs)


def chronically_missed(facts: SloFacts, open_debt: Callable[[str], bool], register_available: bool) -> Outcome:
    """Missed at least `MISSED_AT_LEAST` of the last periods, with no open debt and no objective change."""
    name = facts.declaration.name
    missed = [period for period in facts.periods if period["met"] is False]
    unknown = sum(1 for period in facts.periods if period["met"] is None)
    if len(missed) < MISSED_AT_LEAST:
        if len(missed) + unknown >= MISSED_AT_LEAST:
            return NotChecked(
                CHRONICALLY_MISSED,
                f"missed {len(missed)} of the last {len(facts.periods)} periods, {unknown} without data",
            )
        return None
    if facts.changes or facts.declared_objective != facts.last["objective"]:
        return None  # the objective was changed: the owners have acted on the misses
    if open_debt(name):
        return None  # the misses are a known, planned-for debt
    labels = ", ".join(period["label"] for period in missed)
    message = (
        f"missed its objective in {len(missed)} of the last {len(facts.periods)} periods ({labels}) with no open "
        "reliability debt and no change of objective: open debt with a remediation plan, or loosen the objective "
        "if users were content"
    )
    if not register_available:
        message += f" ({DEBT_REGISTER_MISSING})"
    inputs = {
        "missed": len(missed),
        "atLeast": MISSED_AT_LEAST,
        "openDebt": False,
        "debtRegister": "read" if register_available else "unavailable",
        "objectiveChanges": list(facts.changes),
        "declaredObjective": facts.declared_objective,
        "periods": _period_inputs(facts.periods),
    }
    return Finding(CHRONICALLY_MISSED, OPEN_DEBT, message, inputs)


def _per_hour(period: Mapping[str, Any]) -> float | None:
    hours = period["hours"]["withData"]
    return period["events"] / hours if hours and period["events"] > 0 else None


def usage_drift(facts: SloFacts) -> Outcome:
    """Events per hour with data in the last period ÷ in the period that held the last review, outside
    `DRIFT_RANGE`."""
    if facts.baseline is None:
        return NotChecked(USAGE_DRIFT, facts.baseline_note or "no period to compare with")
    now, then = _per_hour(facts.last), _per_hour(facts.baseline)
    if then is None:
        label = facts.baseline["label"]
        return NotChecked(USAGE_DRIFT, f"no counted events in {label}, the period of the last review")
    if now is None:
        return NotChecked(USAGE_DRIFT, f"no counted events in {facts.last['label']}, the last period")
    ratio = now / then
    low, high = DRIFT_RANGE
    if low <= ratio <= high:
        return None
    direction = "grown" if ratio > high else "shrunk"
    message = (
        f"traffic has {direction} {ratio:.2f}× since the last review ({facts.baseline['label']} → "
        f"{facts.last['label']}, events per hour): review whether the objective and alert thresholds still fit"
    )
    inputs = {
        "ratio": ratio,
        "range": list(DRIFT_RANGE),
        "eventsPerHour": now,
        "reviewEventsPerHour": then,
        "period": _period_inputs([facts.last])[0],
        "reviewPeriod": _period_inputs([facts.baseline])[0],
    }
    return Finding(USAGE_DRIFT, REVIEW, message, inputs)


def budget_too_small(facts: SloFacts) -> Outcome:
    """The last period's budget allows fewer than `MIN_ALLOWED_BAD_EVENTS` bad events (no data: `no_data`'s)."""
    last = facts.last
    if last["events"] <= 0:
        return None
    allowed = last["events"] * (100 - last["objective"]) / 100
    if allowed >= MIN_ALLOWED_BAD_EVENTS:
        return None
    message = (
        f"{last['events']:,.0f} events at {last['objective']}% allowed {allowed:.2f} bad events in {last['label']} "
        f"(fewer than {MIN_ALLOWED_BAD_EVENTS:.0f}): each bad event is a large share of the budget; lengthen the "
        "window, add synthetic traffic or group it with its siblings"
    )
    inputs = {"allowedBadEvents": allowed, "minimum": MIN_ALLOWED_BAD_EVENTS, "period": _period_inputs([last])[0]}
    return Finding(BUDGET_TOO_SMALL, REVIEW, message, inputs)


def no_data(facts: SloFacts) -> Outcome:
    """No counted events in the last period."""
    last = facts.last
    if last["events"] > 0:
        return None
    hours = last["hours"]
    why = "no hour was rolled up with data" if hours["withData"] == 0 else "its hours counted no events"
    message = (
        f"no counted events in {last['label']} ({why}): check the SLI's query and the rollup, or archive an SLO "
        "nobody calls"
    )
    return Finding(NO_DATA, REVIEW, message, {"period": _period_inputs([last])[0]})


def ownership_gap(declaration: Declaration) -> Outcome:
    """A critical or high SLO without dev, ops and product owners, or without a rationale."""
    spec = declaration.spec
    if spec.tier not in OWNED_TIERS:
        return None
    owners = spec.owners
    missing = [role for role in ("dev", "ops", "product") if getattr(owners, role) is None]
    if not spec.rationale.strip():
        missing.append("rationale")
    if not missing:
        return None
    message = (
        f"a {spec.tier.value} SLO without {', '.join(missing)}: name who answers for it, and write down why its "
        "objective is what it is"
    )
    return Finding(OWNERSHIP_GAP, ASSIGN_OWNERS, message, {"missing": missing, "team": owners.team})
