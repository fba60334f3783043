"""One SLO's line of the quarterly review (`quarterly.py`): its quarter, each month of it, the quarter before, its
state and its review status, from its production subject's rollups.

Apart from the builder so that each can be read whole; the numbers are the SLA report's (`sla.py`), so that the
review and an SLA report of the same quarter or month never disagree on met or missed:
- events and bad events are the rows' counted events (excluded spans taken out) of the hours that start inside
  the period and before the report's `at`;
- the objective of a period (the quarter, each month, the quarter before) is the one its first row was rolled
  up with; a change inside the quarter is listed in `objectiveChanges`;
- SLI = 1 − bad ÷ events; budget used = bad ÷ (events × (1 − objective)); met = SLI ≥ objective.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from sloplane.declaration.model import Declaration, Review
from sloplane.evaluator.history.hours import local_hours, zone
from sloplane.evaluator.history.periods import Period, month, quarter
from sloplane.evaluator.history.sla import check_aligned, counted
from sloplane.evaluator.model import Rollup
from sloplane.semantics.subjects import production_subject

AT_RISK = 0.75
"""A quarter that used this share of its error budget (or missed its objective in any month) is at risk: one more
bad week spends the rest. The SRE Workbook's policy acts at exhaustion; a review wants the SLOs just short of it."""
EXHAUSTED = 1.0
"""Budget used at which the quarter's budget is spent."""

HEALTHY, AT_RISK_STATE, EXHAUSTED_STATE, NO_DATA = "healthy", "at-risk", "exhausted", "no-data"
STATES = (HEALTHY, AT_RISK_STATE, EXHAUSTED_STATE, NO_DATA)
"""The grid's states, in the order its cells list them."""

OVERDUE, DUE, NEVER, UNSCHEDULED, SCHEDULED = "overdue", "due", "never-reviewed", "unscheduled", "scheduled"
REVIEW_STATUSES = (OVERDUE, DUE, NEVER, UNSCHEDULED, SCHEDULED)
"""Review classes, most pressing first (the first that applies is the SLO's)."""


def quarter_months(period: Period) -> list[Period]:
    """The three months of a quarter, cut in the quarter's zone."""
    year, number = int(period.label[:4]), int(period.label[-1])
    return [month(f"{year}-{3 * number - 2 + index:02d}", period.time_zone) for index in range(3)]


def previous_quarter(label: str) -> str:
    """`2025-Q4` → `2025-Q3`; `2026-Q1` → `2025-Q4`."""
    year, number = int(label[:4]), int(label[-1])
    return f"{year - 1}-Q4" if number == 1 else f"{year}-Q{number - 1}"


def following_quarter(label: str) -> str:
    year, number = int(label[:4]), int(label[-1])
    return f"{year + 1}-Q1" if number == 4 else f"{year}-Q{number + 1}"


def review_horizon(label: str) -> date:
    """The last day of the quarter after `label`: a review due by then is on this meeting's agenda to schedule."""
    following = quarter(following_quarter(label), "UTC")
    return (following.end - timedelta(days=1)).date()


@dataclass(frozen=True)
class Window:
    """The part of a period a report can count: its hours that start before `at`."""

    period: Period
    at: datetime

    @functools.cached_property
    def end(self) -> datetime:
        """Worked out once: `holds` asks it for every row of every SLO (12 million times for 2,000 SLOs)."""
        return min(self.period.end, self.at)

    def holds(self, row: Rollup) -> bool:
        return self.period.start <= row.start < self.end


def period_numbers(rows: Sequence[Rollup], window: Window, objective: float) -> dict[str, Any]:
    """A period's numbers from the rows inside it (`objective`: the declaration's, when no row says one)."""
    inside = [row for row in rows if window.holds(row)]
    if inside:
        check_aligned(inside[0].slo, window.period, inside)
    with_data, bad, events = counted(inside)
    in_force = inside[0].objective if inside else objective
    sli = None if events <= 0 else 1 - bad / events
    expected = 0
    if window.end > window.period.start:
        expected = len(local_hours(zone(window.period.time_zone), window.period.start, window.end))
    return {
        "label": window.period.label,
        "start": window.period.start.isoformat(),
        "end": window.period.end.isoformat(),
        "objective": in_force,
        "events": events,
        "badEvents": bad,
        "sli": sli,
        "budgetUsed": None if events <= 0 else bad / (events * (100 - in_force) / 100),
        "met": None if sli is None else sli * 100 >= in_force,
        "hours": {"expected": expected, "withData": len(with_data)},
    }


def state_of(numbers: dict[str, Any], months: Sequence[dict[str, Any]]) -> str:
    """no-data without counted events; exhausted at `EXHAUSTED` of the budget used; at risk from `AT_RISK`, or
    when any month missed its objective; else healthy."""
    used = numbers["budgetUsed"]
    if used is None:
        return NO_DATA
    if used >= EXHAUSTED:
        return EXHAUSTED_STATE
    if used >= AT_RISK or any(month["met"] is False for month in months):
        return AT_RISK_STATE
    return HEALTHY


def review_status(review: Review, today: date, horizon: date) -> dict[str, Any]:
    """The declaration's `review` against `today` (in the SLO's zone) and the horizon (`review_horizon`)."""
    due = review.next
    if due is not None and due < today:
        status = OVERDUE
    elif due is not None and due <= horizon:
        status = DUE
    elif review.last is None:
        status = NEVER
    elif due is None:
        status = UNSCHEDULED
    else:
        status = SCHEDULED
    return {
        "last": None if review.last is None else review.last.isoformat(),
        "next": None if due is None else due.isoformat(),
        "status": status,
        "daysOverdue": (today - due).days if status == OVERDUE and due is not None else None,
    }


def _change(current: dict[str, Any], before: dict[str, Any]) -> dict[str, Any] | None:
    """The quarter against the one before, where both have data: SLI in percentage points, budget used as a
    difference of shares (0.25: a quarter of the budget more than last time)."""
    if current["sli"] is None or before["sli"] is None:
        return None
    return {
        "sliPoints": (current["sli"] - before["sli"]) * 100,
        "budgetUsed": current["budgetUsed"] - before["budgetUsed"],
    }


def previous_numbers(
    declaration: Declaration, period: Period, before: Sequence[Rollup], at: datetime
) -> dict[str, Any]:
    """The numbers of the quarter before `period`, from `before`, its production subject's rows then. Apart from
    `slo_line` so that a batch's rows of the quarter before are let go before the quarter's own are read."""
    previous_period = quarter(previous_quarter(period.label), period.time_zone)
    return period_numbers(before, Window(previous_period, at), production_subject(declaration).objective)


def slo_line(
    declaration: Declaration,
    period: Period,
    rows: Sequence[Rollup],
    previous: dict[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """One SLO's line: `rows` its production subject's rows of the quarter, `previous` the quarter before's
    numbers (`previous_numbers`)."""
    spec = declaration.spec
    subject = production_subject(declaration)
    window = Window(period, at)
    numbers = period_numbers(rows, window, subject.objective)
    months = [
        period_numbers(rows, Window(month_period, at), subject.objective) for month_period in quarter_months(period)
    ]
    inside = [row for row in rows if window.holds(row)]
    changes = [(row.start, row.objective) for last, row in pairwise(inside) if row.objective != last.objective]
    today = at.astimezone(zone(period.time_zone)).date()
    return {
        "slo": declaration.name,
        "service": spec.service,
        "team": spec.owners.team,
        "tier": spec.tier.value,
        "stage": subject.stage,
        "period": period.to_dict(),
        "state": state_of(numbers, months),
        **{key: numbers[key] for key in ("objective", "events", "badEvents", "sli", "budgetUsed", "met", "hours")},
        "objectiveChanges": [{"from": start.isoformat(), "objective": value} for start, value in changes],
        "missedMonths": [month["label"] for month in months if month["met"] is False],
        "months": months,
        "previous": previous if previous["sli"] is not None else None,
        "change": _change(numbers, previous),
        "review": review_status(spec.review, today, review_horizon(period.label)),
    }
