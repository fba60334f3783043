"""The quarterly review: the fleet's health by team and tier, a roll-up score with its inputs, each SLO's trend
over the quarter and against the one before, review status, break-glass per team, and the meeting's agenda.

From the rollups (Prometheus has long forgotten the quarter) and the decision log. How each part is decided:
- The quarter is cut in each SLO's zone (its calendar window's, else UTC), or in `time_zone` (`--tz`), as the
  SLA report cuts it (`periods.quarter`); it counts the hours that start before `at`, so a quarter still
  running is reported so far (`complete` false). Per SLO: its production subject's numbers over the quarter,
  each month and the quarter before, computed as the SLA report computes them (`quarterly_slo.py`).
- State: `no-data` without counted events; `exhausted` at 100% of the quarter's error budget used; `at-risk`
  from 75% used (`AT_RISK`), or when any month of the quarter missed its objective (a month's SLA was broken
  even if the quarter recovered); else `healthy`.
- Grid: teams (`owners.team`) × tiers (`tier`, critical to low), each cell the number of SLOs in each state.
- Score: the tier-weighted share of SLOs with data that met their objective over the quarter,
  Σ weight × met ÷ Σ weight, weights critical 8, high 4, medium 2, low 1 (`TIER_WEIGHTS`: each tier counts twice
  the one below, so one critical miss outweighs several low ones, as Grafana SLO's weighted impact and Nobl9's
  weighted roll-up let an owner say); SLOs without data are left out and shown as the coverage beside it.
  The fleet's and each team's, always with numerator, denominator and the counts per tier.
- Trends: each month's SLI and budget used; the change against the quarter before (SLI in percentage points,
  budget used as a difference of shares) where that quarter has rows.
- Review: the declaration's `review` on `at`'s date in the SLO's zone: `overdue` (next before today), `due` (next
  by the end of the quarter after the reported one: the horizon the meeting plans), `never-reviewed` (no
  `last`), `unscheduled` (no `next`), `scheduled`.
- Break-glass: per team from the decision log (`quarterly_breakglass.py`).
- Agenda: ordered items with their facts (`quarterly_agenda.py`); extra sources are passed in `agenda`.

The JSON (the dict returned):

    {"kind": "quarterly", "quarter": "2025-Q4", "previousQuarter": "2025-Q3", "timeZone": null | "Europe/Berlin",
     "generatedAt": ISO, "complete": bool,
     "thresholds": {"atRisk": 0.75, "exhausted": 1.0},
     "slos": [{"slo", "service", "team", "tier", "stage", "period": {label, timeZone, start, end},
               "state": "healthy|at-risk|exhausted|no-data", "objective", "events", "badEvents", "sli",
               "budgetUsed", "met", "hours": {"expected", "withData"}, "objectiveChanges": [{"from", "objective"}],
               "missedMonths": [label], "months": [PERIOD × 3], "previous": PERIOD | null,
               "change": {"sliPoints", "budgetUsed"} | null,
               "review": {"last", "next", "status", "daysOverdue"}}],   by team, tier, name
        PERIOD: {"label", "start", "end", "objective", "events", "badEvents", "sli", "budgetUsed", "met", "hours"}
     "grid": {"tiers": [tier], "states": [state],
              "teams": [{"team", "cells": [{"tier", "counts": {state: n}, "slos": [name]}], "counts": {state: n},
                         "score": SCORE}],
              "totals": {"cells": [{"tier", "counts"}], "counts": {state: n}}},
     "score": SCORE + {"formula", "weights": {tier: w}, "tiers": [{"tier", "weight", "slos", "withData", "met"}]},
        SCORE: {"value": share | null, "numerator", "denominator", "coverage": share of SLOs with data | null}
     "reviews": {"horizon": date, "counts": {status: n}},
     "breakGlass": {"since", "until", "decisionsRead", "teams": [{"team", "decisions", "overrides", "releases",
                    "slos", "identities", "reasons"}]} | null (no log given),
     "agenda": [{"position", "kind", "team", "slo", "title", "facts"}],
     "summary": {"slos", state: n …},
     "contentHash": "sha256:…"}   (of the canonical JSON without it)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sloplane.core.serialize import canonical_json
from sloplane.declaration.model import Criticality
from sloplane.evaluator.history.periods import Period, quarter
from sloplane.evaluator.history.quarterly_agenda import AGENDA, TIER_RANK, AgendaSource, agenda
from sloplane.evaluator.history.quarterly_breakglass import DecisionReader, break_glass
from sloplane.evaluator.history.quarterly_slo import (
    AT_RISK,
    EXHAUSTED,
    REVIEW_STATUSES,
    STATES,
    previous_numbers,
    previous_quarter,
    review_horizon,
    slo_line,
)
from sloplane.evaluator.history.sla import BATCH, by_subject, reported, slo_zone
from sloplane.evaluator.model import Rollup
from sloplane.semantics.subjects import Fleet, production_subject

Reader = Callable[[list[str], datetime, datetime], Sequence[Rollup]]
"""The named SLOs' rows whose hour starts in [since, until) (a rollup store's `read`)."""

TIER_WEIGHTS = {
    Criticality.CRITICAL.value: 8,
    Criticality.HIGH.value: 4,
    Criticality.MEDIUM.value: 2,
    Criticality.LOW.value: 1,
}
TIERS = [tier.value for tier in Criticality]
FORMULA = "Σ weight(tier) × met ÷ Σ weight(tier), over the SLOs with data; met: the quarter's SLI ≥ its objective"


def _counts(lines: Sequence[dict[str, Any]]) -> dict[str, int]:
    return {state: sum(1 for line in lines if line["state"] == state) for state in STATES}


def _score(lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    with_data = [line for line in lines if line["met"] is not None]
    numerator = sum(TIER_WEIGHTS[line["tier"]] for line in with_data if line["met"])
    denominator = sum(TIER_WEIGHTS[line["tier"]] for line in with_data)
    return {
        "value": numerator / denominator if denominator else None,
        "numerator": numerator,
        "denominator": denominator,
        "coverage": len(with_data) / len(lines) if lines else None,
    }


def fleet_score(lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The roll-up score with everything it is made of (see the module's docstring)."""
    tiers = [
        {
            "tier": tier,
            "weight": TIER_WEIGHTS[tier],
            "slos": sum(1 for line in lines if line["tier"] == tier),
            "withData": sum(1 for line in lines if line["tier"] == tier and line["met"] is not None),
            "met": sum(1 for line in lines if line["tier"] == tier and line["met"] is True),
        }
        for tier in TIERS
    ]
    return {**_score(lines), "formula": FORMULA, "weights": dict(TIER_WEIGHTS), "tiers": tiers}


def health_grid(lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Teams × tiers, the number of SLOs in each state per cell, each team's score, and the totals."""
    teams = []
    for team in sorted({line["team"] for line in lines}):
        own = [line for line in lines if line["team"] == team]
        cells = []
        for tier in TIERS:
            inside = [line for line in own if line["tier"] == tier]
            cells.append({"tier": tier, "counts": _counts(inside), "slos": [line["slo"] for line in inside]})
        teams.append({"team": team, "cells": cells, "counts": _counts(own), "score": _score(own)})
    totals = [{"tier": tier, "counts": _counts([line for line in lines if line["tier"] == tier])} for tier in TIERS]
    return {
        "tiers": TIERS,
        "states": list(STATES),
        "teams": teams,
        "totals": {"cells": totals, "counts": _counts(lines)},
    }


def _lines(fleet: Fleet, periods: dict[str, Period], at: datetime, read: Reader) -> list[dict[str, Any]]:
    """Every SLO's line, its rows read `BATCH` SLOs at a time (the quarter before, then the quarter)."""
    declarations = reported(fleet)
    lines = []
    for offset in range(0, len(declarations), BATCH):
        batch = declarations[offset : offset + BATCH]
        names = [d.name for d in batch]
        now = [periods[name] for name in names]
        before = [quarter(previous_quarter(period.label), period.time_zone) for period in now]
        keys = [(declaration.name, production_subject(declaration).stage) for declaration in batch]
        earlier = _read(read, names, before, at)
        previous = [
            previous_numbers(declaration, periods[declaration.name], earlier.get(key, []), at)
            for declaration, key in zip(batch, keys, strict=True)
        ]
        del earlier  # the quarter before's rows go before the quarter's own arrive: one quarter held at a time
        current = _read(read, names, now, at)
        for declaration, key, numbers in zip(batch, keys, previous, strict=True):
            lines.append(slo_line(declaration, periods[declaration.name], current.get(key, []), numbers, at))
    lines.sort(key=lambda line: (line["team"], TIER_RANK[line["tier"]], line["slo"]))
    return lines


def _read(
    read: Reader, names: list[str], periods: list[Period], at: datetime
) -> dict[tuple[str, str | None], list[Rollup]]:
    since = min(period.start for period in periods)
    until = min(max(period.end for period in periods), at)
    return by_subject(read(names, since, until)) if since < until else {}


def quarterly_report(
    fleet: Fleet,
    label: str,
    at: datetime,
    read: Reader,
    *,
    time_zone: str | None = None,
    log: DecisionReader | None = None,
    agenda_sources: Sequence[AgendaSource] = AGENDA,
) -> dict[str, Any]:
    """The review of quarter `label` (`YYYY-Qn`) as of `at` (see the module's docstring for its shape).

    Raises `PeriodError` for a label that is no quarter, or a `time_zone` that would cut an SLO's rows in two.
    """
    quarter(label, "UTC")  # refuse a label that is no quarter even when no SLO is reported
    periods = {d.name: quarter(label, time_zone or slo_zone(d)) for d in reported(fleet)}
    lines = _lines(fleet, periods, at, read)
    teams = {name: fleet[name].spec.owners.team for name in fleet}
    report: dict[str, Any] = {
        "kind": "quarterly",
        "quarter": label,
        "previousQuarter": previous_quarter(label),
        "timeZone": time_zone,
        "generatedAt": at.isoformat(),
        "complete": all(period.end <= at for period in periods.values()),
        "thresholds": {"atRisk": AT_RISK, "exhausted": EXHAUSTED},
        "slos": lines,
        "grid": health_grid(lines),
        "score": fleet_score(lines),
        "reviews": {
            "horizon": review_horizon(label).isoformat(),
            "counts": {
                status: sum(1 for line in lines if line["review"]["status"] == status) for status in REVIEW_STATUSES
            },
        },
        "breakGlass": None if log is None or not periods else break_glass(log, teams, periods, at),
    }
    report["agenda"] = agenda(report, agenda_sources)
    report["summary"] = {"slos": len(lines), **_counts(lines)}
    report["contentHash"] = "sha256:" + hashlib.sha256(canonical_json(report).encode()).hexdigest()
    return report
