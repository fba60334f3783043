"""The weekly budget report: SLOs by error budget left, with the last seven days beside the period, the time
to exhaustion at the week's pace, and the freezes in force — what a team's weekly review opens first.

From the rollups, like the SLA report, and with the same numbers (counted events: excluded spans taken out):
- the period is the SLO's compliance period holding `at` (`measuring.periods.period_start`: the rolling
  window back from `at`, or the calendar week, month or quarter in its zone), up to `at`;
- budget left: 1 − bad ÷ (events × (1 − objective)) over the period so far (negative once overspent);
- the week: the seven days before `at`; its budget used the same way, and its burn rate, the week's error
  ratio ÷ (1 − objective) (1: spending exactly at the rate the objective allows);
- time to exhaustion: the period's allowed bad events still unspent ÷ the week's bad events per hour, in
  hours; none when nothing failed this week, zero once the budget is spent.
Rows whose hour starts before `at` count, so `at` is best on a whole hour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from math import fsum
from typing import Any

from sloplane.core.serialize import canonical_json
from sloplane.declaration.model import Declaration
from sloplane.evaluator.contracts import ReleaseControlsView
from sloplane.evaluator.history.sla import BATCH, by_subject, reported
from sloplane.evaluator.measuring.periods import period_start
from sloplane.evaluator.model import Rollup
from sloplane.semantics.subjects import Fleet, production_subject

WEEK = timedelta(days=7)


def _sums(rows: Sequence[Rollup], since: datetime, until: datetime) -> tuple[float, float, float]:
    """Bad and total counted events of the rows starting in [since, until), and the hours they cover."""
    inside = [row for row in rows if since <= row.start < until and row.total_events is not None]
    bad = fsum(row.counted_bad_events or 0.0 for row in inside)
    total = fsum(row.counted_total_events or 0.0 for row in inside)
    hours = fsum((row.end - row.start).total_seconds() for row in inside) / 3600
    return bad, total, hours


def budget_line(
    declaration: Declaration, rows: Sequence[Rollup], at: datetime, freezes: list[dict[str, Any]]
) -> dict[str, Any]:
    """One SLO's line (see the module's docstring)."""
    spec = declaration.spec
    start = period_start(spec.window, at)
    objective = rows[-1].objective if rows else production_subject(declaration).objective
    allowance = (100 - objective) / 100
    bad, total, _ = _sums(rows, start, at)
    week_bad, week_total, week_hours = _sums(rows, at - WEEK, at)
    allowed = total * allowance
    left = None if allowed <= 0 else 1 - bad / allowed
    week_ratio = None if week_total <= 0 else week_bad / week_total
    pace = None if week_hours <= 0 else week_bad / week_hours
    spending = left is not None and pace is not None and pace > 0
    exhaustion = max(0.0, (allowed - bad) / pace) if spending and pace is not None else None
    return {
        "slo": declaration.name,
        "service": spec.service,
        "team": spec.owners.team,
        "tier": spec.tier.value,
        "objective": objective,
        "period": {"window": spec.window.describe(), "start": start.isoformat(), "end": at.isoformat()},
        "budgetRemaining": left,
        "events": total,
        "badEvents": bad,
        "week": {
            "events": week_total,
            "badEvents": week_bad,
            "budgetUsed": None if week_total <= 0 or allowance <= 0 else week_bad / (week_total * allowance),
            "burnRate": None if week_ratio is None or allowance <= 0 else week_ratio / allowance,
        },
        "hoursToExhaustion": exhaustion,
        "freezes": freezes,
    }


def budget_report(
    fleet: Fleet,
    at: datetime,
    read: Callable[[list[str]], Sequence[Rollup]],
    controls: ReleaseControlsView | None = None,
) -> dict[str, Any]:
    """Every SLO not archived, least budget left first (no data last), read `BATCH` SLOs at a time."""
    declarations = reported(fleet)
    lines = []
    for offset in range(0, len(declarations), BATCH):
        batch = declarations[offset : offset + BATCH]
        grouped = by_subject(read([d.name for d in batch]))
        for declaration in batch:
            service = declaration.spec.service
            freezes = [] if controls is None else [f.to_dict() for f in controls.active_freezes(service, at)]
            own = grouped.get((declaration.name, production_subject(declaration).stage), [])
            lines.append(budget_line(declaration, own, at, freezes))
    lines.sort(key=lambda line: (line["budgetRemaining"] is None, line["budgetRemaining"] or 0.0, line["slo"]))
    report: dict[str, Any] = {
        "kind": "budget",
        "at": at.isoformat(),
        "week": {"start": (at - WEEK).isoformat(), "end": at.isoformat()},
        "slos": lines,
        "summary": {
            "slos": len(lines),
            "exhausted": sum(
                1 for line in lines if line["budgetRemaining"] is not None and line["budgetRemaining"] <= 0
            ),
            "frozen": sum(1 for line in lines if line["freezes"]),
            "noData": sum(1 for line in lines if line["budgetRemaining"] is None),
        },
    }
    report["contentHash"] = "sha256:" + hashlib.sha256(canonical_json(report).encode()).hexdigest()
    return report


def _exhausted(line: dict[str, Any]) -> bool:
    left = line["budgetRemaining"]
    return left is not None and left <= 0


def earliest_start(fleet: Fleet, at: datetime) -> datetime:
    """How far back the report reads: the oldest period start of the fleet, or a week, whichever is earlier."""
    starts = [period_start(d.spec.window, at) for d in reported(fleet)]
    return min([*starts, at - WEEK])
