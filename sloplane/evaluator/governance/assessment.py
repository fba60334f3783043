"""Impact assessments for risky changes (`sloplane assess`, issue 18): for a service, a risk level and a change
window, what the change could cost and who must agree, with a verdict — each reason and condition naming the rule
and the inputs that produced it. The facts come from `assessment_rules.py`; the verdict's rules are here.

Inputs, each reported beside what it produced:
- the SLOs affected (`assessment_rules.affected`): the service's own, then every SLO whose dependencies or
  composite components reach one of them, transitively (`risk.parts`, the walk `govern risk` does, upwards);
- per SLO (its production subject): the budget left now, as the gate measures it (`Evaluator.evaluate(at)`; none
  without a measurement, on a backend error, or without a period figure); what a total outage of `outage` would
  spend: outage ÷ (period × (1 − objective)) — `core.budget.budget_duration`, the budget as minutes of total
  outage, with the nominal period of a calendar window — the share left after it, and whether it would exhaust
  the budget (share ≥ budget left; an already spent budget is exhausted by any outage). The outage is assumed to
  reach every affected SLO in full (the worst case: a consumer fails with its dependency);
- how fast each burn-rate alert would fire on that total outage: `explain`'s `detection[1.0]`, the numbers
  `sloplane explain` prints, for the production subject's objective; the first page and first ticket (enabled
  alerts only);
- what the window overlaps: recorded freezes of the service or of every service, its SLOs' scheduled freezes
  (`gate.freezes`), incidents concerning it, and each affected SLO's excluded time (maintenance, one-off
  windows, emergency changes: `measuring.periods.exclusions`, as the budget takes them out);
- change failure rate: `delivery.delivery_report` for the service over its default window (90 days) to `at`;
  fewer than `MIN_DEPLOYMENTS` deployments is said (`sufficient` false) and judges nothing;
- canary and rollback (`assessment_rules.safeguards`), approvers (`assessment_rules.APPROVERS`).

Outage by default (`DEFAULT_OUTAGE`): low 5m, medium 15m, high 30m, critical 60m.

Verdict: `defer` when any reason below holds, else `proceed-with-conditions` when any condition holds, else
`proceed`. Reasons to defer (`DEFER_RULES`):
- `freeze`: a recorded freeze or a scheduled freeze overlaps the window (the gate would refuse the release);
- `major-incident`: a major incident concerning the service is open during the window;
- `budget-exhausted`: an SLO of the service has spent its budget and its gate freezes on that
  (`freezeOnBudgetExhausted`, the default: the gate would refuse the release);
- `outage-exhausts-critical`: the outage would exhaust the budget of an affected SLO of tier critical.
Conditions (`CONDITION_RULES`), each a thing to do before or during the change:
- `outage-exhausts`: the outage would exhaust an affected SLO's budget (not critical): limit the exposure;
- `no-data`: an SLO of the service has no budget figure: its cost cannot be judged; watch it by hand;
- `slow-detection`: no enabled page alert of an SLO of the service would fire within the outage: watch by hand;
- `maintenance`: an affected SLO's excluded time overlaps the window: the change's cost would not be counted;
- `minor-incident`: a minor incident concerning the service is open during the window: coordinate;
- `change-failure-rate`: the change failure rate is above `CFR_HIGH` (15%, exact fractions) with enough
  deployments: add review and a larger canary;
- `no-canary`, `no-rollback` (risk medium or above): no SLO of the service gives a canary, or an automated
  rollback (`safeguards`' rules);
- `approver-missing`: a role the table requires is named by no SLO of the service's highest tier.

The JSON (the dict returned):

    {"kind": "assessment", "service", "risk", "at", "window": {"start", "end"},
     "outage": {"minutes", "defaulted"},
     "slos": [{"slo", "service", "tier", "stage", "relation", "via", "objective", "periodMinutes", "budgetMinutes",
               "budgetRemaining", "outageShare", "remainingAfter", "exhausts", "why",
               "detection": [{"tier", "windows", "enabled", "seconds"}], "firstPageSeconds", "firstTicketSeconds",
               "maintenance": [{"kind", "name", "start", "end", "reason"}]}],      own first, then consumers
     "overlaps": {"freezes": [{"id", "service", "reason", "by", "start", "end"}],
                  "scheduledFreezes": [{"slo", "name", "start", "end"}],
                  "incidents": [{"id", "title", "severity", "services", "start", "end"}]},
     "delivery": {"since", "span", "deployments", "failed", "changeFailureRate", "sufficient",
                  "minimumDeployments", "above"} or null (no decision log),
     "safeguards": {"canary", "rollback", "slos": [{"slo", "stagesBeforeProduction", "mode", "argoRollouts",
                    "analysisProvider", "dryRun", "canary", "rollback"}]},
     "approvers": {"tier", "risk", "roles", "people": [{"role", "name", "contact", "slo"}], "missing"},
     "verdict": "proceed" | "proceed-with-conditions" | "defer",
     "reasons": [{"rule", "message", "inputs"}], "conditions": [{"rule", "message", "inputs"}],
     "rules": {"defaultOutageMinutes", "changeFailureRateAbove", "minimumDeployments", "approvers"}}

Shares and rates are fractions (0.25, not 25); `budgetRemaining`, `outageShare`, `remainingAfter` null without
data. `sloplane assess --record` keeps this dict in the assessments store (`storage.assessments`), whose
`coverage` answers the gate's `requireAssessment`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from sloplane.core.budget import budget_duration
from sloplane.core.durations import format_duration
from sloplane.declaration.model import Criticality, Lifecycle
from sloplane.evaluator.governance.assessment_rules import (
    APPROVERS,
    DEFAULT_OUTAGE,
    RISKS,
    ROLE_NAMES,
    Affected,
    ControlsHistory,
    affected,
    approvers,
    declared_freezes,
    detection,
    first_detection,
    incidents,
    maintenance,
    recorded_freezes,
    safeguards,
)
from sloplane.evaluator.governance.delivery import DeliveryLog, RowReader, delivery_report
from sloplane.evaluator.governance.delivery_advice import CFR_HIGH, MIN_DEPLOYMENTS
from sloplane.evaluator.history.report_kinds import ReportOptionError
from sloplane.evaluator.model import Measurement
from sloplane.semantics.subjects import Fleet, production_subject

DEFER_RULES = ("freeze", "major-incident", "budget-exhausted", "outage-exhausts-critical")
CONDITION_RULES = (
    "outage-exhausts",
    "no-data",
    "slow-detection",
    "maintenance",
    "minor-incident",
    "change-failure-rate",
    "no-canary",
    "no-rollback",
    "approver-missing",
)
SAFEGUARDED_FROM = "medium"
"""From this risk on, a missing canary or rollback is a condition."""
MINUTE = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=31)
"""The longest change window assessed: a change is hours or days, and every scheduled freeze's occurrences in the
window are listed (a five-minute schedule over a year was 38 MB and 475 MB at peak)."""


def _finding(rule: str, message: str, **inputs: Any) -> dict[str, Any]:
    return {"rule": rule, "message": message, "inputs": inputs}


def _slo_entry(
    item: Affected,
    measurements: dict[tuple[str, str | None], Measurement],
    outage: timedelta,
    window: tuple[datetime, datetime],
) -> dict[str, Any]:
    declaration = item.declaration
    subject = production_subject(declaration)
    period = declaration.spec.window.period
    budget = budget_duration(subject.objective, period)
    share = outage / budget
    measurement = measurements.get((declaration.name, subject.stage))
    remaining = None if measurement is None or measurement.error is not None else measurement.budget_remaining
    if remaining is None:
        why = "no data" if measurement is None or measurement.error is None else f"no data: {measurement.error}"
    else:
        verb = "would exhaust" if share >= remaining else "would leave"
        why = (
            f"{format_duration(outage)} of total outage is {share:.1%} of the budget ({budget / MINUTE:.1f} min); "
            f"{remaining:.1%} is left: it {verb} {'it' if share >= remaining else f'{remaining - share:.1%}'}"
        )
    alerts = detection(declaration)
    return {
        "slo": declaration.name,
        "service": declaration.spec.service,
        "tier": declaration.spec.tier.value,
        "stage": subject.stage,
        "relation": item.relation,
        "via": item.via,
        "objective": subject.objective,
        "periodMinutes": period / MINUTE,
        "budgetMinutes": budget / MINUTE,
        "budgetRemaining": remaining,
        "outageShare": share,
        "remainingAfter": None if remaining is None else remaining - share,
        "exhausts": remaining is not None and share >= remaining,
        "why": why,
        "detection": alerts,
        "firstPageSeconds": first_detection(alerts, "page"),
        "firstTicketSeconds": first_detection(alerts, "ticket"),
        "maintenance": maintenance(declaration, *window),
    }


def _delivery(
    fleet: Fleet, log: DeliveryLog | None, rows: RowReader, service: str, at: datetime
) -> dict[str, Any] | None:
    if log is None:
        return None
    report = delivery_report(fleet, log, rows, at, service=service)
    (section,) = report["services"]
    deployments, failed = section["deployments"], section["failed"]
    sufficient = deployments >= MIN_DEPLOYMENTS
    return {
        "since": report["since"],
        "span": report["span"],
        "deployments": deployments,
        "failed": failed,
        "changeFailureRate": section["changeFailureRate"],
        "sufficient": sufficient,
        "minimumDeployments": MIN_DEPLOYMENTS,
        "above": sufficient and Fraction(failed, deployments) > CFR_HIGH,
    }


def _defer_reasons(
    slos: list[dict[str, Any]], overlaps: dict[str, Any], own: dict[str, Affected]
) -> list[dict[str, Any]]:
    reasons = []
    for freeze in overlaps["freezes"]:
        scope = f"service {freeze['service']}" if freeze["service"] else "every service"
        reasons.append(
            _finding("freeze", f"freeze {freeze['id']} of {scope} overlaps the window: {freeze['reason']}", **freeze)
        )
    for freeze in overlaps["scheduledFreezes"]:
        message = (
            f"scheduled freeze '{freeze['name']}' of {freeze['slo']} is in force {freeze['start']} to {freeze['end']}"
        )
        reasons.append(_finding("freeze", message, **freeze))
    for incident in overlaps["incidents"]:
        if incident["severity"] == "major":
            message = f"major incident {incident['id']} ({incident['title']}) is open during the window"
            reasons.append(_finding("major-incident", message, **incident))
    for slo in slos:
        name = slo["slo"]
        remaining = slo["budgetRemaining"]
        spent = name in own and remaining is not None and remaining <= 0
        if spent and own[name].declaration.spec.effective_gate.freeze_on_budget_exhausted:
            message = f"{name} has spent its budget ({remaining:.1%} left): the gate freezes the service's releases"
            reasons.append(_finding("budget-exhausted", message, slo=name, budgetRemaining=remaining))
    for slo in slos:
        if slo["exhausts"] and slo["tier"] == Criticality.CRITICAL.value:
            message = f"critical SLO {slo['slo']} ({slo['relation']}): {slo['why']}"
            reasons.append(_finding("outage-exhausts-critical", message, **_budget_inputs(slo)))
    return reasons


def _budget_inputs(slo: dict[str, Any]) -> dict[str, Any]:
    keys = ("slo", "tier", "relation", "via", "budgetMinutes", "budgetRemaining", "outageShare")
    return {key: slo[key] for key in keys}


def _conditions(
    risk: str,
    outage: timedelta,
    *,
    slos: list[dict[str, Any]],
    overlaps: dict[str, Any],
    delivery: dict[str, Any] | None,
    guards: dict[str, Any],
    approval: dict[str, Any],
) -> list[dict[str, Any]]:
    found = []
    for slo in slos:
        if slo["exhausts"] and slo["tier"] != Criticality.CRITICAL.value:
            message = f"limit the exposure of {slo['slo']} ({slo['relation']}) — a canary, a short window: {slo['why']}"
            found.append(_finding("outage-exhausts", message, **_budget_inputs(slo)))
    own = [slo for slo in slos if slo["relation"] == "own"]
    for slo in own:
        if slo["budgetRemaining"] is None:
            message = f"{slo['slo']} has no budget figure ({slo['why']}): its cost cannot be judged; watch it by hand"
            found.append(_finding("no-data", message, slo=slo["slo"], why=slo["why"]))
    for slo in own:
        page = slo["firstPageSeconds"]
        if page is None or page > outage.total_seconds():
            when = "never" if page is None else f"after {format_duration(timedelta(seconds=round(page)))}"
            message = (
                f"a total outage of {slo['slo']} would page {when}, not within the {format_duration(outage)} assumed: "
                "watch the change by hand"
            )
            found.append(
                _finding(
                    "slow-detection",
                    message,
                    slo=slo["slo"],
                    firstPageSeconds=page,
                    outageSeconds=outage.total_seconds(),
                )
            )
    for slo in slos:
        for excluded in slo["maintenance"]:
            message = (
                f"{excluded['kind']} '{excluded['name']}' of {slo['slo']} ({excluded['start']} to {excluded['end']}) "
                "overlaps the window: what the change breaks then is not counted against the budget; watch by hand"
            )
            found.append(_finding("maintenance", message, slo=slo["slo"], **excluded))
    for incident in overlaps["incidents"]:
        if incident["severity"] != "major":
            message = f"minor incident {incident['id']} ({incident['title']}) is open during the window: coordinate"
            found.append(_finding("minor-incident", message, **incident))
    if delivery is not None and delivery["above"]:
        message = (
            f"change failure rate {delivery['changeFailureRate']:.1%} ({delivery['failed']} of "
            f"{delivery['deployments']} deployments) is above {float(CFR_HIGH):.0%}: "
            "a second reviewer and a larger canary"
        )
        found.append(_finding("change-failure-rate", message, **delivery))
    guarded = RISKS.index(risk) >= RISKS.index(SAFEGUARDED_FROM)
    if guarded and not guards["canary"]:
        message = "no canary: declare a stage before production with a blocking gate, or roll out in steps by hand"
        found.append(_finding("no-canary", message, slos=guards["slos"]))
    if guarded and not guards["rollback"]:
        message = "no automated rollback (Argo Rollouts analysis, not a dry run): have the rollback ready by hand"
        found.append(_finding("no-rollback", message, slos=guards["slos"]))
    for role in approval["missing"]:
        message = f"no {ROLE_NAMES[role]} is named for {approval['tier']} SLOs: name one and get their approval"
        found.append(_finding("approver-missing", message, role=role, tier=approval["tier"], risk=risk))
    return found


def check_options(
    fleet: Fleet, service: str, risk: str, window: tuple[datetime, datetime], outage: timedelta | None
) -> None:
    """ReportOptionError naming the option: a service with no SLO (archived ones do not count), an unknown risk, an
    empty window, an outage that is not positive."""
    if not any(d.spec.service == service and d.spec.lifecycle is not Lifecycle.ARCHIVED for d in fleet.values()):
        raise ReportOptionError("service", f"no SLO of service '{service}' in the declarations read")
    if risk not in RISKS:
        raise ReportOptionError("risk", f"give one of {', '.join(RISKS)}, not {risk!r}")
    if window[1] <= window[0]:
        raise ReportOptionError("window", f"ends ({window[1].isoformat()}) before it starts ({window[0].isoformat()})")
    if window[1] - window[0] > MAX_WINDOW:
        raise ReportOptionError("window", f"a change window is at most {MAX_WINDOW.days} days long")
    if outage is not None and outage <= timedelta(0):
        raise ReportOptionError("outage", f"must be a positive duration, not {outage}")


def assessment_report(
    fleet: Fleet,
    service: str,
    risk: str,
    window: tuple[datetime, datetime],
    at: datetime,
    *,
    measurements: Sequence[Measurement],
    controls: ControlsHistory,
    log: DeliveryLog | None,
    rows: RowReader,
    outage: timedelta | None = None,
) -> dict[str, Any]:
    """The impact assessment of a change to `service` at `risk` during `window` (start, end), as known at `at`.

    `measurements` are `Evaluator.evaluate(at)`'s; `controls` the release controls (either store); `log` and
    `rows` the decision log and rollup reader for the change failure rate (`log` None: not known). `outage`
    defaults by risk (`DEFAULT_OUTAGE`). Raises `ReportOptionError` naming a bad option (`check_options`).
    See the module's docstring for the rules and the JSON.
    """
    check_options(fleet, service, risk, window, outage)
    at = at.astimezone(UTC)
    span = (window[0].astimezone(UTC), window[1].astimezone(UTC))
    length = outage if outage is not None else DEFAULT_OUTAGE[risk]
    by_key = {(m.slo, m.stage): m for m in measurements}
    reached = affected(fleet, service)
    own = {item.declaration.name: item for item in reached if item.relation == "own"}
    slos = [_slo_entry(item, by_key, length, span) for item in reached]
    declarations = [item.declaration for item in own.values()]
    overlaps = {
        "freezes": recorded_freezes(controls, service, span),
        "scheduledFreezes": declared_freezes(declarations, span),
        "incidents": incidents(controls, service, span),
    }
    delivery = _delivery(fleet, log, rows, service, at)
    guards = safeguards(declarations)
    approval = approvers(declarations, risk)
    reasons = _defer_reasons(slos, overlaps, own)
    conditions = _conditions(
        risk, length, slos=slos, overlaps=overlaps, delivery=delivery, guards=guards, approval=approval
    )
    verdict = "defer" if reasons else "proceed-with-conditions" if conditions else "proceed"
    return {
        "kind": "assessment",
        "service": service,
        "risk": risk,
        "at": at.isoformat(),
        "window": {"start": span[0].isoformat(), "end": span[1].isoformat()},
        "outage": {"minutes": length / MINUTE, "defaulted": outage is None},
        "slos": slos,
        "overlaps": overlaps,
        "delivery": delivery,
        "safeguards": guards,
        "approvers": approval,
        "verdict": verdict,
        "reasons": reasons,
        "conditions": conditions,
        "rules": {
            "defaultOutageMinutes": {name: value / MINUTE for name, value in DEFAULT_OUTAGE.items()},
            "changeFailureRateAbove": float(CFR_HIGH),
            "minimumDeployments": MIN_DEPLOYMENTS,
            "approvers": {
                tier: {r: list(roles) for r, roles in by_risk.items()} for tier, by_risk in APPROVERS.items()
            },
        },
    }
