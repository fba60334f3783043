"""`sloplane experiment`'s budget part: for each day of the range, whether the SLO's compliance-period budget was
used up at that day's end, under the objective in force and under the experiment's (issue 18).

From the hourly rollups of the production subject (the unstaged SLO, or its production stage), with the numbers
the SLA and quarterly reports use (`history.sla.counted`): events and bad events with excluded spans taken out,
of the rows whose hour starts in the period and before the day's end. The period is the one the declaration
states: a rolling window back from the day's end, or the calendar period holding the day (`retro.
compliance_period`; days and calendar periods are both cut at the SLO's zone's midnight, so a day lies inside one
period). The objective in force is the one the period's first row was rolled up with (rows keep theirs), else the
declaration's; budget used = bad ÷ (events × (1 − objective)); exhausted at `quarterly_slo.EXHAUSTED` (all of it),
where the gate's budget check fails too (`budget remaining ≤ 0`). A day without counted events is neither.
The last day ends at `at` when `at` falls inside it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sloplane.core.budget import error_budget
from sloplane.declaration.model import Declaration
from sloplane.evaluator.history.hours import zone
from sloplane.evaluator.history.periods import day_periods
from sloplane.evaluator.history.quarterly_slo import EXHAUSTED
from sloplane.evaluator.history.retro import compliance_period
from sloplane.evaluator.history.sla import counted, slo_zone
from sloplane.evaluator.model import Rollup
from sloplane.semantics.subjects import production_subject

Span = tuple[datetime, datetime]


def day_spans(declaration: Declaration, since: datetime, at: datetime) -> list[tuple[str, datetime, datetime]]:
    """The SLO's zone's days overlapping [since, at): (day, start, the instant it is judged at: its end, or `at`)."""
    name = slo_zone(declaration)
    first, last = since.astimezone(zone(name)).date(), at.astimezone(zone(name)).date()
    days = day_periods(at, (last - first).days + 1, name)
    return [(day.label, day.start, min(day.end, at)) for day in days if day.end > since and day.start < at]


def judged_period(declaration: Declaration, day_start: datetime, end: datetime) -> Span:
    """The compliance period a day's end is judged in: the rolling window back from `end`, or the calendar period
    holding the day, up to `end`."""
    if declaration.spec.window.rolling is not None:
        return compliance_period(declaration, end)
    start, _ = compliance_period(declaration, day_start)
    return start, end


def _used(bad: float, events: float, objective: float) -> float | None:
    return bad / (events * error_budget(objective)) if events > 0 else None


def _exhausted(used: float | None) -> bool | None:
    return None if used is None else used >= EXHAUSTED


def exhausted_days(
    declaration: Declaration, rows: Sequence[Rollup], since: datetime, at: datetime, objective: float
) -> dict[str, Any]:
    """Each day's budget used under the objective in force and under `objective` (see the module's docstring);
    `rows`: the SLO's rows from the first day's period start to `at`, any subject (the production one is taken)."""
    subject = production_subject(declaration)
    own = sorted((row for row in rows if row.slo == declaration.name and row.stage == subject.stage), key=_start)
    starts = [row.start for row in own]
    days = []
    for label, day_start, end in day_spans(declaration, since, at):
        period_start, period_end = judged_period(declaration, day_start, end)
        inside = own[bisect_left(starts, period_start) : bisect_left(starts, period_end)]
        _, bad, events = counted(inside)
        in_force = inside[0].objective if inside else subject.objective
        used, new_used = _used(bad, events, in_force), _used(bad, events, objective)
        days.append(
            {
                "day": label,
                "end": end.isoformat(),
                "periodStart": period_start.isoformat(),
                "events": events,
                "badEvents": bad,
                "objective": in_force,
                "budgetUsed": used,
                "exhausted": _exhausted(used),
                "experimentBudgetUsed": new_used,
                "experimentExhausted": _exhausted(new_used),
            }
        )
    return {
        "timeZone": slo_zone(declaration),
        "stage": subject.stage,
        "window": declaration.spec.window.describe(),
        "exhausted": sum(1 for day in days if day["exhausted"]),
        "experimentExhausted": sum(1 for day in days if day["experimentExhausted"]),
        "changed": [day["day"] for day in days if day["exhausted"] != day["experimentExhausted"]],
        "noData": sum(1 for day in days if day["budgetUsed"] is None),
        "days": days,
    }


def first_period_start(declaration: Declaration, since: datetime, at: datetime) -> datetime:
    """Where the rows `exhausted_days` needs begin: the first day's period's start."""
    spans = day_spans(declaration, since, at)
    if not spans:
        return since
    _, day_start, end = spans[0]
    return judged_period(declaration, day_start, end)[0]


def _start(row: Rollup) -> datetime:
    return row.start
