"""The SLA report: per SLO, over a month or a quarter of its zone, whether the objective in force was met, from
the rollups alone (Prometheus may have forgotten the month), with the evidence a regulator asks for.

What each number is, so that it can be checked by hand from the rows (`tests/test_report_sla.py` does):
- events and bad events: the rows' counted events (excluded spans taken out), summed over the period's hours;
  the SLI is 1 − bad ÷ events, of the production subject (the unstaged SLO, or its production stage);
- the objective in force: the one the period's first row was rolled up with (rows keep theirs: a target
  tightened mid-month applies from the next period, as contracts read); a change inside the period is
  listed in `objectiveChanges`;
- budget used: bad events ÷ (events × (1 − objective)); bad minutes: (1 − SLI) × the minutes of the hours
  with data, the downtime it amounts to; allowed bad minutes: (1 − objective) × the same minutes;
- excluded: the events and minutes inside excluded spans, and each span as the declaration states it (kind,
  name, reason; an emergency change's ticket and approver);
- deployment share: of the bad events, those in hours that overlap a release the decision log recorded
  (from `analysisWindow` before its first gate to its last), to the hour;
- evidence: the hourly queries the rows were read with, every policy version in force, the decision log's
  range over the period (count, first and last `seq`: what `sloplane decisions verify` covers), the rows
  read, and a SHA-256 of the report's canonical JSON (without the hash itself).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from math import fsum
from typing import Any, Protocol

from sloplane.core.serialize import canonical_json
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.evaluator.deciding.deployments import deployment_windows
from sloplane.evaluator.history.hours import local_hours, zone
from sloplane.evaluator.history.periods import Period, PeriodError, aligned
from sloplane.evaluator.history.rollup import hourly_queries
from sloplane.evaluator.measuring.periods import exclusions
from sloplane.evaluator.model import ReleaseSpan, Rollup
from sloplane.semantics.subjects import Fleet, production_subject

Span = tuple[datetime, datetime]
BATCH = 200
"""SLOs whose rows a report reads at a time (`sla_report`'s `read`): about 150,000 rows a month."""


class DecisionRange(Protocol):
    """What the report reads of the decision log (both stores have it)."""

    def span(self, since: datetime, until: datetime) -> tuple[int, int | None, int | None]: ...

    def releases(self, service: str, since: datetime) -> list[ReleaseSpan]: ...


@dataclass(frozen=True)
class SlaInputs:
    """What one report is made of: the fleet, the rows, the period of each SLO, the log (optional), when."""

    fleet: Fleet
    rows: Sequence[Rollup]
    periods: dict[str, Period]
    """SLO name → its period (the same label cut in its zone, or in `--tz`)."""
    generated_at: datetime
    log: DecisionRange | None = None


def slo_zone(declaration: Declaration) -> str:
    """The zone an SLO's hours and periods are cut in: its calendar window's, else UTC."""
    return declaration.spec.window.time_zone or "UTC"


def reported(fleet: Fleet) -> list[Declaration]:
    """The SLOs a report covers: every one not archived, by name."""
    return [fleet[name] for name in sorted(fleet) if fleet[name].spec.lifecycle is not Lifecycle.ARCHIVED]


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _exclusion_entries(declaration: Declaration, stage: str | None, period: Period) -> list[dict[str, Any]]:
    spec = declaration.spec
    approvers = {change.ticket or "emergency-change": change for change in spec.exclusions.emergency_changes}
    entries = []
    for found in exclusions(spec, stage, period.start, period.end):
        entry: dict[str, Any] = {
            "category": found.kind,
            "name": found.name,
            "start": found.start.isoformat(),
            "end": found.end.isoformat(),
            "reason": found.reason,
            "approver": None,
            "ticket": None,
        }
        change = approvers.get(found.name) if found.kind == "emergencyChange" else None
        if change is not None:
            entry["reason"], entry["approver"], entry["ticket"] = change.reason, change.approver, change.ticket
        entries.append(entry)
    return entries


def _deployment_hours(log: DecisionRange | None, declaration: Declaration, period: Period) -> list[Span] | None:
    if log is None:
        return None
    lead = declaration.spec.effective_gate.analysis_window
    releases = log.releases(declaration.spec.service, period.start - lead)
    return [(w.start, w.end) for w in deployment_windows(releases, declaration.spec.service, lead)]


def _overlaps(row: Rollup, spans: Iterable[Span]) -> bool:
    return any(start < row.end and end > row.start for start, end in spans)


def check_aligned(slo: str, period: Period, rows: Sequence[Rollup]) -> None:
    """PeriodError when the period's bounds fall inside the rows' hours (a zone cutting a :30 zone's hours)."""
    if rows and not aligned(period, rows[0].start):
        raise PeriodError(
            f"{slo}'s rollups are cut at {rows[0].start.minute:02d} past the UTC hour "
            f"({rows[0].time_zone}); {period.time_zone} cuts its periods elsewhere: report it in its own zone"
        )


def counted(rows: Sequence[Rollup]) -> tuple[list[Rollup], float, float]:
    """The rows with data, and their bad and total events with excluded spans taken out."""
    with_data = [row for row in rows if row.total_events is not None]
    bad = fsum(row.counted_bad_events or 0.0 for row in with_data)
    return with_data, bad, fsum(row.counted_total_events or 0.0 for row in with_data)


def by_subject(rows: Iterable[Rollup]) -> dict[tuple[str, str | None], list[Rollup]]:
    """The rows of each subject, in the order given (the stores give them by start): read once, so that a
    report over thousands of SLOs does not scan every row for each of them."""
    grouped: dict[tuple[str, str | None], list[Rollup]] = {}
    for row in rows:
        grouped.setdefault((row.slo, row.stage), []).append(row)
    return grouped


def in_days(rows: Sequence[Rollup], starts: Sequence[datetime]) -> list[list[Rollup]]:
    """The rows with data that start in each day (days given by their sorted starts; the last runs to the
    period's end, which the caller has already cut at)."""
    days: list[list[Rollup]] = [[] for _ in starts]
    for row in rows:
        index = bisect_right(starts, row.start) - 1
        if index >= 0 and row.total_events is not None:
            days[index].append(row)
    return days


def _daily(rows: Sequence[Rollup], period: Period) -> list[dict[str, Any]]:
    days = []
    calendar = period.days()
    for (day, _, _), inside in zip(calendar, in_days(rows, [start for _, start, _ in calendar]), strict=True):
        bad = fsum(row.counted_bad_events or 0.0 for row in inside)
        total = fsum(row.counted_total_events or 0.0 for row in inside)
        ratio = _ratio(bad, total)
        sli = None if ratio is None else 1 - ratio
        days.append({"day": day.isoformat(), "events": total, "badEvents": bad, "sli": sli})
    return days


def sla_line(inputs: SlaInputs, declaration: Declaration, own: Sequence[Rollup] | None = None) -> dict[str, Any]:
    """One SLO's line of the report (see the module's docstring for what each number is); `own`: the rows of
    its production subject, when the caller has grouped them (`by_subject`), else found in `inputs.rows`."""
    period = inputs.periods[declaration.name]
    subject = production_subject(declaration)
    if own is None:
        own = [row for row in inputs.rows if row.slo == declaration.name and row.stage == subject.stage]
    rows = [row for row in own if period.start <= row.start < period.end]
    check_aligned(declaration.name, period, rows)
    with_data, bad, events = counted(rows)
    objective = rows[0].objective if rows else subject.objective
    changes = [(row.start, row.objective) for previous, row in pairwise(rows) if row.objective != previous.objective]
    allowance = (100 - objective) / 100
    ratio = _ratio(bad, events)
    sli = None if ratio is None else 1 - ratio
    minutes = fsum((row.end - row.start).total_seconds() for row in with_data) / 60
    deployments = _deployment_hours(inputs.log, declaration, period)
    deployment_bad = None
    if deployments is not None:
        deployment_bad = fsum(row.counted_bad_events or 0.0 for row in with_data if _overlaps(row, deployments))
    expected = len(local_hours(zone(period.time_zone), period.start, period.end))
    spec = declaration.spec
    return {
        "slo": declaration.name,
        "service": spec.service,
        "team": spec.owners.team,
        "tier": spec.tier.value,
        "stage": subject.stage,
        "sli": spec.sli.kind,
        "period": period.to_dict(),
        "objective": objective,
        "objectiveChanges": [{"from": start.isoformat(), "objective": value} for start, value in changes],
        "met": None if sli is None else sli * 100 >= objective,
        "achieved": sli,
        "events": events,
        "badEvents": bad,
        "budgetUsed": _ratio(bad, events * allowance),
        "badMinutes": None if sli is None else (1 - sli) * minutes,
        "allowedBadMinutes": allowance * minutes,
        "excludedEvents": fsum(row.excluded_total_events for row in with_data),
        "excludedBadEvents": fsum(row.excluded_bad_events for row in with_data),
        "excludedMinutes": fsum(row.excluded_minutes for row in rows),
        "exclusions": _exclusion_entries(declaration, subject.stage, period),
        "deploymentBadEvents": deployment_bad,
        "deploymentShare": None if deployment_bad is None else _ratio(deployment_bad, bad),
        "hours": {"expected": expected, "rolledUp": len(rows), "withData": len(with_data)},
        "daily": _daily(rows, period),
        "policyVersions": sorted({row.policy_version for row in rows}),
        # the queries the rows were read with: Datadog's when the rollup read Datadog (`source`)
        "queries": hourly_queries(
            declaration, subject, inputs.fleet, datadog=any(row.source == "datadog" for row in rows)
        ),
    }


def sla_report(
    inputs: SlaInputs, label: str, read: Callable[[list[str]], Sequence[Rollup]] | None = None
) -> dict[str, Any]:
    """The whole report: one line per SLO not archived, the evidence, and the content hash.

    `read` (the SLOs' names → their rows) makes the report read its rows `BATCH` SLOs at a time instead of
    taking `inputs.rows`: a month of 2,000 SLOs is 1.4 million rows, 1.6 GB held at once.
    """
    declarations = reported(inputs.fleet)
    size = BATCH if read is not None else max(len(declarations), 1)
    lines = []
    for offset in range(0, len(declarations), size):
        batch = declarations[offset : offset + size]
        grouped = by_subject(read([d.name for d in batch]) if read is not None else inputs.rows)
        lines += [sla_line(inputs, d, grouped.get((d.name, production_subject(d).stage), [])) for d in batch]
    starts = [period.start for period in inputs.periods.values()]
    ends = [period.end for period in inputs.periods.values()]
    log_range: dict[str, Any] | None = None
    if inputs.log is not None and starts:
        count, first, last = inputs.log.span(min(starts), max(ends))
        log_range = {"decisions": count, "firstSeq": first, "lastSeq": last}
    report: dict[str, Any] = {
        "kind": "sla",
        "period": label,
        "generatedAt": inputs.generated_at.isoformat(),
        "slos": lines,
        "summary": {
            "slos": len(lines),
            "met": sum(1 for line in lines if line["met"] is True),
            "missed": sum(1 for line in lines if line["met"] is False),
            "noData": sum(1 for line in lines if line["met"] is None),
        },
        "evidence": {
            "rollupRows": sum(line["hours"]["rolledUp"] for line in lines),
            "policyVersions": sorted({version for line in lines for version in line["policyVersions"]}),
            "decisionLog": log_range,
            "method": "events per hour of each SLO's zone (sloplane rollup), excluded spans taken out",
        },
    }
    report["evidence"]["contentHash"] = "sha256:" + hashlib.sha256(canonical_json(report).encode()).hexdigest()
    return report
