"""`sloplane govern delivery`: DORA's delivery figures from the decision log, per service and fleet-wide, with the
deployment-frequency advice of `delivery_advice` (issue 18). Every figure can be counted by hand from the log and
the rollup rows (`tests/test_govern_delivery.py` does).

Definitions (DORA's, as its State of DevOps reports word them: deployment frequency — how often a team
successfully releases to production; change failure rate — the share of deployments to production that cause a
failure needing remediation (a rollback, a hotfix); failed deployment recovery time, "time to restore" before
the 2023 report renamed it — how long recovering from a failed deployment takes. Sources read: the Dynatrace
and GitLab summaries of the four keys, gitlab-org/gitlab#428595 on the 2023 rename, and practitioners' notes that
a canary failing without users' harm is not a change failure), made precise on what the evaluator records:
- the window: `since` (90 days) back from `at`. Decisions are read per service (`DecisionLog.query(service=)`)
  from `LOOKBACK` before the window, so that a release first gated in production before it is not counted again
  and the retro's background sees the releases before it; replays (a request with `at`: back-testing) are left
  out, as `DecisionLog.releases` leaves them out, and counted in `notes`; decisions about SLOs not in the
  declarations read are left out (which stage is production is unknown).
- a deployment: a release of a service — its revision, else its pipeline run, as `DecisionLog.releases` groups
  them — with at least one live decision on an SLO's production subject (`semantics.subjects.production_subject`:
  the production stage, or the unstaged SLO), the first of them inside the window. Retries (the same revision
  gated again, in another pipeline run) are the same deployment; decisions of other stages are canaries, not
  deployments. Its instant is its first production decision.
- failed: a production decision of the deployment failed on a breach `notify.classify` calls deployment-related
  (the log's records turned back into decisions by `history.retro_records.as_decision`), including a fail a
  break-glass overrode — the gate saw the breach; overriding it shipped the failure (the retro's detection rule,
  `retro_detection`). These are the retro's *rollbacks*; a canary stopping a release is the canary working, and
  a fail for any other reason (frozen, no data) is not the change failing. Change failure rate: failed ÷
  deployments.
- time to restore: from a failed deployment's first failing production decision to the service's next live
  production decision about the same SLO that passed on its own (outcome pass without a `break-glass` reason),
  whichever release it was about (a fix forward or the rollback's re-gate); the same SLO, as a service-wide gate
  records one decision per SLO and another SLO passing says nothing of this breach. Median (the middle one, or the
  mean of the middle two) and p90 (nearest rank: the ⌈0.9 n⌉-th smallest) over the failed deployments restored by
  `at`, in seconds; the others are `unrestored`.
- deploy days per week: distinct days with at least one deployment ÷ the window's weeks (`since` ÷ 7 days). Days
  are cut in the service's zone — its SLOs' calendar zone when they all name the same one, else UTC — because a
  team's working day is the unit of "how often we ship"; the fleet's days are UTC days.
- budget share per deployment: `history.retro.slo_burn`, the retro's own computation — bad events of the rollup
  rows overlapping the deployment window (one analysis window before the release's first gate, canary gates
  included, to its last, as `deciding.deployments` places it) ÷ the allowed bad events of the SLO's compliance
  period holding the window's end. Per SLO of the service; the deployment's share is the largest.
- budget now (`budget-exhausted`, `deploy-more-often`): each SLO's production rows in its compliance period
  holding `at` (`retro.compliance_period`), up to `at`: bad ÷ (events × (1 − objective)) of the counted events
  (`history.sla.counted`), the objective the period's first row was rolled up with — the SLA report's "budget
  used", and the gate's budget remaining seen from the other side. None without rows.

The JSON (the dict `delivery_report` returns): `kind` "delivery"; `at`; `since` (the window's start); `span`
(the window, e.g. "90d"); `weeks`; `services`: each {service, zone, deployments, failed, changeFailureRate,
timeToRestore {median, p90, samples, unrestored}, deployDays, deployDaysPerWeek, budgetShares: [{release,
firstProductionGate, failed, slo, budgetShare, badEvents, allowedBadEvents}] (one per deployment, its largest),
failures: [{release, slo, decisionId, failedAt, restoredAt, restoreSeconds}], budget: [{slo, stage,
periodStart, periodEnd, events, badEvents, budgetUsed, exhausted}], budgetHeavyDeployments, advice: [{rule,
message, inputs}]}; `fleet` {services, deployments, failed, changeFailureRate, timeToRestore, deployDays,
deployDaysPerWeek, budgetHeavyDeployments, advice {rule: services}}; `thresholds`; `notes`. Rates are fractions
(0.15, not 15), shares fractions of a budget, durations seconds.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sloplane.core.budget import error_budget
from sloplane.core.durations import format_duration
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import DEFAULT_GATE
from sloplane.evaluator.deciding.deployments import DeploymentWindow, deployment_windows
from sloplane.evaluator.governance.delivery_advice import (
    CFR_HIGH,
    CFR_STABLE,
    HEAVY_REPEATS,
    HEAVY_SHARE,
    MIN_DEPLOYMENTS,
    SPARE_BUDGET,
    DeliveryFigures,
    SloBudget,
    advice,
)
from sloplane.evaluator.history.report_kinds import ReportOptionError
from sloplane.evaluator.history.retro import BACKGROUND_DAYS, compliance_period, slo_burn
from sloplane.evaluator.history.retro_detection import failed_on_breach
from sloplane.evaluator.history.retro_records import instant
from sloplane.evaluator.history.sla import counted, reported, slo_zone
from sloplane.evaluator.model import ReleaseSpan, Rollup
from sloplane.semantics.subjects import Fleet, production_subject

DEFAULT_SINCE = timedelta(days=90)
LOOKBACK = timedelta(days=BACKGROUND_DAYS + 1)
"""Decisions read before the window: releases begun before it, and the background's releases (retro)."""
DECISION_LIMIT = 100_000
"""Decisions read per service; reaching it is said in `notes`."""
WEEK, DAY, HOUR = timedelta(days=7), timedelta(days=1), timedelta(hours=1)

RowReader = Callable[[datetime, datetime, list[str]], Sequence[Rollup]]
"""(since, until, SLO names) → their rollup rows whose hour starts in [since, until): `ReportSources.rows`."""
Record = dict[str, Any]


class DeliveryLog(Protocol):
    """What the report reads of the decision log (both stores have it)."""

    def query(
        self,
        *,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...


def passed_on_its_own(record: Record) -> bool:
    """A pass the gate gave, not one a break-glass forced."""
    return record["decision"] == "pass" and not any(r["code"] == "break-glass" for r in record["reasons"])


def _release(record: Record) -> str | None:
    request = record["request"]
    value = request.get("revision") or request.get("pipeline")
    return str(value) if value else None


@dataclass
class Deployment:
    """One release of a service that reached production: all its live decisions, and the production ones."""

    release: str
    records: list[Record] = field(default_factory=list)
    production: list[Record] = field(default_factory=list)

    @property
    def first_production(self) -> datetime:
        return instant(self.production[0]["decidedAt"])

    @property
    def failure(self) -> Record | None:
        return next((record for record in self.production if failed_on_breach(record)), None)


def nearest_rank(values: Sequence[float], fraction: float) -> float | None:
    """The ⌈fraction × n⌉-th smallest value (nearest rank), None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def restore_figures(samples: Sequence[float], unrestored: int) -> dict[str, Any]:
    return {
        "median": median(samples) if samples else None,
        "p90": nearest_rank(samples, 0.9),
        "samples": len(samples),
        "unrestored": unrestored,
    }


def _zone(declarations: Sequence[Declaration]) -> str:
    zones = {slo_zone(d) for d in declarations}
    return zones.pop() if len(zones) == 1 else "UTC"


def _rate(failed: int, deployments: int) -> float | None:
    return failed / deployments if deployments else None


@dataclass(frozen=True)
class _Window:
    start: datetime
    at: datetime
    weeks: float


class _Service:
    """One service's report section, built from its decisions and rows."""

    def __init__(self, fleet: Fleet, service: str, window: _Window, notes: list[str]) -> None:
        self.service = service
        self.window = window
        self.notes = notes
        self.declarations = [d for d in reported(fleet) if d.spec.service == service]
        self.production = {d.name: production_subject(d).stage for d in self.declarations}
        self.lead = max(
            (d.spec.effective_gate.analysis_window for d in self.declarations), default=DEFAULT_GATE.analysis_window
        )

    def live_records(self, log: DeliveryLog) -> list[Record]:
        found = log.query(
            service=self.service, since=self.window.start - LOOKBACK, until=self.window.at, limit=DECISION_LIMIT
        )
        if len(found) >= DECISION_LIMIT:
            self.notes.append(f"{self.service}: only the newest {DECISION_LIMIT} decisions were read")
        replays = sum(1 for record in found if record["request"].get("at") is not None)
        if replays:
            self.notes.append(f"{self.service}: {replays} replayed decision(s) (a request with `at`) left out")
        live = [r for r in found if r["request"].get("at") is None and r["slo"] in self.production]
        return sorted(live, key=lambda record: (instant(record["decidedAt"]), record["id"]))

    def is_production(self, record: Record) -> bool:
        return record.get("stage") == self.production[record["slo"]]

    def releases(self, records: list[Record]) -> dict[str, Deployment]:
        grouped: dict[str, Deployment] = {}
        for record in records:
            release = _release(record)
            if release is None:
                continue
            group = grouped.setdefault(release, Deployment(release))
            group.records.append(record)
            if self.is_production(record):
                group.production.append(record)
        return grouped

    def deployment_window(self, deployment: Deployment) -> DeploymentWindow:
        first, last = deployment.records[0], deployment.records[-1]
        span = ReleaseSpan(
            deployment.release,
            instant(first["decidedAt"]),
            instant(last["decidedAt"]),
            len(deployment.records),
            last["request"].get("pipeline"),
            last["decision"],
        )
        (window,) = deployment_windows([span], self.service, self.lead)
        return window

    def restore(self, failure: Record, production: list[Record]) -> Record | None:
        failed_at = instant(failure["decidedAt"])
        return next(
            (
                record
                for record in production
                if record["slo"] == failure["slo"]
                and instant(record["decidedAt"]) > failed_at
                and passed_on_its_own(record)
            ),
            None,
        )


def _subject_rows(rows: Sequence[Rollup], declaration: Declaration) -> list[Rollup]:
    stage = production_subject(declaration).stage
    return [row for row in rows if row.slo == declaration.name and row.stage == stage]


def _between(rows: list[Rollup], starts: list[datetime], since: datetime, until: datetime) -> list[Rollup]:
    """Rows starting in [since, until) of rows sorted by start (`starts` their starts)."""
    return rows[bisect_left(starts, since) : bisect_left(starts, until)]


def _budget_now(declaration: Declaration, rows: list[Rollup], at: datetime) -> tuple[SloBudget, dict[str, Any]]:
    start, end = compliance_period(declaration, at)
    with_data, bad, total = counted([row for row in rows if start <= row.start < min(end, at)])
    objective = with_data[0].objective if with_data else production_subject(declaration).objective
    allowed = total * error_budget(objective)
    used = bad / allowed if allowed > 0 else None
    budget = SloBudget(declaration.name, start.isoformat(), end.isoformat(), used)
    return budget, {
        "slo": declaration.name,
        "stage": production_subject(declaration).stage,
        "periodStart": start.isoformat(),
        "periodEnd": end.isoformat(),
        "events": total,
        "badEvents": bad,
        "budgetUsed": used,
        "exhausted": budget.exhausted,
    }


def _share_entry(
    part: _Service,
    deployment: Deployment,
    rows: dict[str, tuple[list[Rollup], list[datetime]]],
    spans: list[tuple[datetime, datetime]],
) -> dict[str, Any]:
    """The deployment's largest budget share over the service's SLOs (retro's `slo_burn`)."""
    window = part.deployment_window(deployment)
    at = part.window.at
    best: dict[str, Any] | None = None
    for declaration in part.declarations:
        own, starts = rows[declaration.name]
        period_start, period_end = compliance_period(declaration, window.end)
        since = min(period_start, window.start - BACKGROUND_DAYS * DAY) - HOUR
        burn = slo_burn(declaration, _between(own, starts, since, min(period_end, at)), window, spans, at)
        share = burn["budgetShare"]
        if share is not None and (best is None or share > best["budgetShare"]):
            best = {
                "slo": declaration.name,
                "budgetShare": share,
                "badEvents": burn["deployment"]["badEvents"],
                "allowedBadEvents": burn["period"]["allowedBadEvents"],
            }
    return {
        "release": deployment.release,
        "firstProductionGate": deployment.first_production.isoformat(),
        "failed": deployment.failure is not None,
        **(best or {"slo": None, "budgetShare": None, "badEvents": None, "allowedBadEvents": None}),
    }


def _section(part: _Service, log: DeliveryLog, read: RowReader) -> tuple[dict[str, Any], set[str]]:
    """The service's section, and the UTC days it deployed on (for the fleet's figure)."""
    window = part.window
    records = part.live_records(log)
    releases = part.releases(records)
    deployments = sorted(
        (d for d in releases.values() if d.production and window.start <= d.first_production <= window.at),
        key=lambda d: (d.first_production, d.release),
    )
    production = [record for record in records if part.is_production(record)]
    spans = [(w.start, w.end) for w in (part.deployment_window(d) for d in releases.values())]
    earliest = [compliance_period(d, window.at)[0] for d in part.declarations]
    for deployment in deployments:
        end = part.deployment_window(deployment).end
        earliest += [compliance_period(d, end)[0] for d in part.declarations]
    earliest.append(window.start - LOOKBACK)
    read_rows = read(min(earliest) - HOUR, window.at, [d.name for d in part.declarations])
    rows: dict[str, tuple[list[Rollup], list[datetime]]] = {}
    for declaration in part.declarations:
        own = sorted(_subject_rows(read_rows, declaration), key=lambda row: row.start)
        rows[declaration.name] = (own, [row.start for row in own])
    shares = [_share_entry(part, d, rows, spans) for d in deployments]
    failures = []
    for deployment in deployments:
        failure = deployment.failure
        if failure is None:
            continue
        restored = part.restore(failure, production)
        seconds = None if restored is None else (instant(restored["decidedAt"]) - instant(failure["decidedAt"]))
        failures.append(
            {
                "release": deployment.release,
                "slo": failure["slo"],
                "decisionId": failure["id"],
                "failedAt": instant(failure["decidedAt"]).isoformat(),
                "restoredAt": None if restored is None else instant(restored["decidedAt"]).isoformat(),
                "restoreSeconds": None if seconds is None else seconds.total_seconds(),
            }
        )
    zone = ZoneInfo(_zone(part.declarations))
    days = {d.first_production.astimezone(zone).date() for d in deployments}
    budgets = [_budget_now(d, rows[d.name][0], window.at) for d in part.declarations]
    heavy = sum(1 for entry in shares if entry["budgetShare"] is not None and entry["budgetShare"] >= HEAVY_SHARE)
    failed = len(failures)
    figures = DeliveryFigures(len(deployments), failed, heavy, tuple(budget for budget, _ in budgets))
    samples = [f["restoreSeconds"] for f in failures if f["restoreSeconds"] is not None]
    section = {
        "service": part.service,
        "zone": str(zone),
        "deployments": len(deployments),
        "failed": failed,
        "changeFailureRate": _rate(failed, len(deployments)),
        "timeToRestore": restore_figures(samples, failed - len(samples)),
        "deployDays": len(days),
        "deployDaysPerWeek": len(days) / window.weeks,
        "budgetShares": shares,
        "failures": failures,
        "budget": [entry for _, entry in budgets],
        "budgetHeavyDeployments": heavy,
        "advice": advice(figures),
    }
    return section, {d.first_production.astimezone(UTC).date().isoformat() for d in deployments}


def _fleet(sections: list[dict[str, Any]], days: set[str], window: _Window) -> dict[str, Any]:
    deployments = sum(s["deployments"] for s in sections)
    failed = sum(s["failed"] for s in sections)
    samples = [f["restoreSeconds"] for s in sections for f in s["failures"] if f["restoreSeconds"] is not None]
    rules: dict[str, int] = {}
    for section in sections:
        for item in section["advice"]:
            rules[item["rule"]] = rules.get(item["rule"], 0) + 1
    return {
        "services": len(sections),
        "deployments": deployments,
        "failed": failed,
        "changeFailureRate": _rate(failed, deployments),
        "timeToRestore": restore_figures(samples, failed - len(samples)),
        "deployDays": len(days),
        "deployDaysPerWeek": len(days) / window.weeks,
        "budgetHeavyDeployments": sum(s["budgetHeavyDeployments"] for s in sections),
        "advice": dict(sorted(rules.items())),
    }


THRESHOLDS = {
    "minimumDeployments": MIN_DEPLOYMENTS,
    "heavyShare": HEAVY_SHARE,
    "heavyRepeats": HEAVY_REPEATS,
    "changeFailureRateAbove": float(CFR_HIGH),
    "stableChangeFailureRateAtMost": float(CFR_STABLE),
    "spareBudgetBelow": SPARE_BUDGET,
}


def check_service(fleet: Fleet, service: str | None) -> list[str]:
    """The services reported on: every one the fleet declares, or `service` alone (ReportOptionError when no SLO
    of it is declared)."""
    services = sorted({d.spec.service for d in reported(fleet)})
    if service is None:
        return services
    if service not in services:
        raise ReportOptionError("service", f"no SLO of service '{service}' in the declarations read")
    return [service]


def delivery_report(
    fleet: Fleet,
    log: DeliveryLog,
    read: RowReader,
    at: datetime,
    *,
    since: timedelta = DEFAULT_SINCE,
    service: str | None = None,
) -> dict[str, Any]:
    """The delivery figures and advice of every service of `fleet` (or `service` alone) over `since` up to `at`.

    Raises `ReportOptionError` naming `since` (not positive) or `service` (no SLO of that service declared).
    """
    if since <= timedelta(0):
        raise ReportOptionError("since", f"must be a positive duration, not {since}")
    services = check_service(fleet, service)
    at = at.astimezone(UTC)
    window = _Window(at - since, at, since / WEEK)
    notes: list[str] = []
    built = [_section(_Service(fleet, name, window, notes), log, read) for name in services]
    sections = [section for section, _ in built]
    days = {day for _, found in built for day in found}
    return {
        "kind": "delivery",
        "at": at.isoformat(),
        "since": window.start.isoformat(),
        "span": format_duration(since),
        "weeks": window.weeks,
        "services": sections,
        "fleet": _fleet(sections, days, window),
        "thresholds": THRESHOLDS,
        "notes": notes,
    }
