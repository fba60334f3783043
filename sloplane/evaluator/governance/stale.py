"""Stale and outdated SLOs (`sloplane govern stale`, issue 18): the objectives the Workbook's review loop should look
at, each finding with the rule that produced it, its inputs, and the action it calls for — nothing behind a score.

Every SLO not archived is judged (deprecated ones too: they still render and gate). The numbers of a period are
the SLA report's and the quarterly review's (`quarterly_slo.period_numbers`: the production subject's counted
events, excluded spans taken out, the objective in force the one its first row was rolled up with), over the SLO's
own compliance period (`stale_periods.py`: the last 3 complete calendar weeks, months or quarters of its zone, or
3 consecutive rolling windows ending at `at` floored to the hour). The rules, in the order an SLO's are listed:

- `review-overdue` → review: `review.next` is before today (`at`'s date in the SLO's zone), or the SLO was never
  reviewed, or `review.last` is more than the tier's cadence ago (critical 30 days, high 90, medium 180, low 365;
  `cadence`). A review exactly a cadence ago is due today, not overdue.
- `never-burns` → tighten: less than 10% of the error budget used in each of the last 3 periods (10.0% burns). The
  objective promises less than the service delivers: users will come to rely on the better level, and the budget
  that could pay for faster releases is left unspent. Not checked when a period has no counted events.
- `chronically-missed` → open-debt: the objective missed in 2 or more of the last 3 periods, with no open
  reliability debt (`open_debt`) and no change of the objective (between rows of those periods, or a declared
  objective that differs from the one the last period was rolled up with: the owners have already acted). Either
  the work goes on the debt register with a plan, or the objective is loosened to what users accept. The register
  is the `ReliabilityDebt` items read with the declarations (`governance.debt.open_debt_lookup`, which the command
  passes); a caller that gives none (`no_debt_known`) gets findings that say the register was not read. Not
  checked when periods without data could make up the two misses.
- `usage-drift` → review: events per hour with data in the last period ÷ the same in the period that held
  `review.last`, outside [0.5, 2] (bounds included). Per hour, not per period, so that a 31-day month against a
  28-day one, or a review period whose rollups began late, is not drift. Not checked (said in `notChecked`) when
  the SLO was never reviewed, the review's period is not over, or either period has no counted events.
- `budget-too-small` → review: the last period's events × (1 − objective) < 20: the budget allows fewer than 20
  bad events, so each is over 5% of it and the budget swings on noise (lengthen the window, add synthetic traffic,
  or group the SLO with its siblings).
- `no-data` → review: no counted events in the last period (no rows with data, or rows that counted none).
- `unused` → review: no live gate decision about the SLO in the 90 days up to `at` while another SLO of its
  service was gated (`stale_unused.py`; replays are not use). Without a decision log: not checked.
- `ownership-gap` → assign-owners: a critical or high SLO without dev, ops and product contacts, or without a
  rationale.
- `blind-spot` → add-sli or review, per service (`slo` null): customers reported problems in the 90 days up to
  `at` that monitoring missed (`feedback_blind_spots`, given the reports by the caller: `blind_spots`). Without
  the support feedback store: not checked.

Rows are read through `rows` (since, until, SLO names → rows whose hour starts in [since, until)), `STALE_BATCH` SLOs
at a time, SLOs sharing a span in one read: one span for their last three periods, one for their review's period.

The JSON (the dict returned):

    {"kind": "stale", "at": ISO, "cadence": {tier: days},
     "thresholds": {"periods": 3, "neverBurnsBelow": 0.1, "missedAtLeast": 2, "drift": [0.5, 2.0],
                    "minAllowedBadEvents": 20.0, "unusedDays": 90, "blindSpotDays": 90},
     "findings": [{"slo", "service", "team", "tier", "rule", "action", "message", "inputs": {...}}],
                   by tier (critical first), SLO, rule (`RULES` order); `inputs` per rule:
        review-overdue: {"last", "next", "today", "cadenceDays", "daysSinceLast", "daysPastNext",
                         "reason": "past-next|never-reviewed|cadence"}
        never-burns: {"threshold", "periods": [PERIOD × 3]}
        chronically-missed: {"missed", "atLeast", "openDebt", "debtRegister": "read|unavailable",
                             "objectiveChanges": [], "declaredObjective", "periods": [PERIOD × 3]}
        usage-drift: {"ratio", "range", "eventsPerHour", "reviewEventsPerHour", "period": PERIOD,
                      "reviewPeriod": PERIOD}
        budget-too-small: {"allowedBadEvents", "minimum", "period": PERIOD}
        no-data: {"period": PERIOD}
        unused: {"since", "until", "days", "service", "gatedSiblings": [{"slo", "lastGate"}]}
        ownership-gap: {"missing": ["dev"|"ops"|"product"|"rationale"], "team"}
        blind-spot: `feedback_blind_spots`' inputs (a finding per service, `slo` null; services without SLOs last)
        PERIOD: {"label", "start", "end", "objective", "events", "badEvents", "budgetUsed", "met",
                 "hours": {"expected", "withData"}}
     "notChecked": [{"slo": name | null, "tier": tier | null, "rule", "reason"}],   ordered as the findings
     "decisionLog": {"since", "until", "decisions", "firstSeq", "lastSeq"} | null,   the span `unused` read
     "summary": {rule: count}}   every rule, zeros included
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from sloplane.core.durations import DurationError, parse_duration
from sloplane.core.text import excerpt
from sloplane.declaration.model import Criticality, Declaration
from sloplane.evaluator.governance import stale_rules as rules
from sloplane.evaluator.governance.feedback_blind_spots import RULE as BLIND_SPOT
from sloplane.evaluator.governance.feedback_blind_spots import STALE_SPAN as BLIND_SPOT_SPAN
from sloplane.evaluator.governance.stale_periods import PERIODS, last_periods, period_holding
from sloplane.evaluator.governance.stale_unused import UNUSED_DAYS, GateLog, unused
from sloplane.evaluator.history.hours import zone
from sloplane.evaluator.history.periods import Period, PeriodError
from sloplane.evaluator.history.quarterly_agenda import TIER_RANK
from sloplane.evaluator.history.quarterly_slo import Window, period_numbers
from sloplane.evaluator.history.report_kinds import RowReader
from sloplane.evaluator.history.sla import BATCH, by_subject, reported, slo_zone
from sloplane.evaluator.model import Rollup
from sloplane.semantics.subjects import Fleet, production_subject

STALE_BATCH = BATCH // 4
"""SLOs read at a time: a quarter of the SLA report's, as each reads three periods and its review's, not one
(about 110,000 rows for monthly SLOs; `bench.govern`: 742 MB at peak with the SLA report's batch, 262 MB with
this one, 6% slower)."""
DEFAULT_CADENCE = {"critical": 30, "high": 90, "medium": 180, "low": 365}
"""Days between reviews per tier: the stricter the tier, the more often its objective is looked at."""
PERIOD_RULES = (rules.NEVER_BURNS, rules.CHRONICALLY_MISSED, rules.USAGE_DRIFT, rules.BUDGET_TOO_SMALL, rules.NO_DATA)


class StaleOptionError(ValueError):
    """An option the report cannot take, with its name (`cadence`: each caller spells it)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def no_debt_known(slo: str) -> bool:
    """No register was read: no SLO is known to have open debt (findings say the register was unavailable)."""
    return False


def parse_cadence(text: str | None) -> dict[str, int]:
    """`critical=30d,high=90d,…` → days per tier; tiers not named keep `DEFAULT_CADENCE`'s. Whole days only (reviews
    are dates)."""
    cadence = dict(DEFAULT_CADENCE)
    if text is None:
        return cadence
    tiers = [tier.value for tier in Criticality]
    named: set[str] = set()
    for entry in text.split(","):
        tier, equals, duration = (part.strip() for part in entry.partition("="))
        if not equals or not tier or not duration:
            raise StaleOptionError("cadence", f"'{excerpt(entry)}' is not TIER=DURATION, e.g. critical=30d")
        if tier not in tiers:
            raise StaleOptionError("cadence", f"'{excerpt(tier)}' is not a tier: give one of {', '.join(tiers)}")
        if tier in named:
            raise StaleOptionError("cadence", f"{tier} is given twice")
        try:
            length = parse_duration(duration)
        except DurationError as error:
            raise StaleOptionError("cadence", f"{tier}: {error}") from None
        if length % timedelta(days=1):
            raise StaleOptionError("cadence", f"{tier}: '{excerpt(duration)}' is not a whole number of days")
        named.add(tier)
        cadence[tier] = length.days
    return cadence


@dataclass(frozen=True)
class _Plan:
    """One SLO's periods: its last complete ones and the one that held its last review (or why there is none)."""

    declaration: Declaration
    periods: list[Period]
    baseline: Period | None
    baseline_note: str | None


def _plan(declaration: Declaration, at: datetime) -> _Plan:
    window = declaration.spec.window
    periods = last_periods(window, at)
    last_review = declaration.spec.review.last
    if last_review is None:
        return _Plan(declaration, periods, None, "never reviewed: no usage to compare with")
    baseline = period_holding(window, last_review)
    if baseline.end > periods[-1].end:
        return _Plan(declaration, periods, None, f"{baseline.label}, the period of the last review, is not over")
    return _Plan(declaration, periods, baseline, None)


def _read(
    rows: RowReader, spans: Iterable[tuple[str, tuple[datetime, datetime]]]
) -> dict[tuple[str, str | None], list[Rollup]]:
    """The named SLOs' rows over each one's span, SLOs sharing a span read together, grouped by subject."""
    names_by_span: dict[tuple[datetime, datetime], list[str]] = {}
    for name, span in spans:
        names_by_span.setdefault(span, []).append(name)
    grouped: dict[tuple[str, str | None], list[Rollup]] = {}
    for (since, until), names in sorted(names_by_span.items()):
        for key, own in by_subject(rows(since, until, names)).items():
            grouped.setdefault(key, []).extend(own)
    return grouped


def _facts(
    plan: _Plan,
    own: Sequence[Rollup],
    before: Sequence[Rollup],
    at: datetime,
) -> rules.SloFacts:
    """The period rules' facts from the SLO's production rows of its last periods (`own`) and of its review's
    period (`before`)."""
    objective = production_subject(plan.declaration).objective
    periods = [period_numbers(own, Window(period, at), objective) for period in plan.periods]
    first, last = plan.periods[0].start, plan.periods[-1].end
    inside = [row for row in own if first <= row.start < last and row.start < at]
    changes = [
        {"from": row.start.isoformat(), "objective": row.objective, "before": previous.objective}
        for previous, row in pairwise(inside)
        if row.objective != previous.objective
    ]
    baseline = None
    if plan.baseline is not None:
        baseline = period_numbers(before, Window(plan.baseline, at), objective)
    return rules.SloFacts(plan.declaration, periods, changes, objective, baseline, plan.baseline_note)


def _outcomes(
    plan: _Plan,
    facts: rules.SloFacts | str,
    *,
    cadence: Mapping[str, int],
    at: datetime,
    debt: tuple[Callable[[str], bool], bool],
    unused_outcomes: Mapping[str, rules.Outcome],
) -> list[tuple[str, rules.Outcome]]:
    """Every rule's outcome for one SLO, in `RULES` order; `facts` a message when its periods could not be cut."""
    declaration = plan.declaration
    today = at.astimezone(zone(slo_zone(declaration))).date()
    found: list[tuple[str, rules.Outcome]] = [
        (rules.REVIEW_OVERDUE, rules.review_overdue(declaration, today, cadence[declaration.spec.tier.value]))
    ]
    if isinstance(facts, str):
        found += [(rule, rules.NotChecked(rule, facts)) for rule in PERIOD_RULES]
    else:
        found += [
            (rules.NEVER_BURNS, rules.never_burns(facts)),
            (rules.CHRONICALLY_MISSED, rules.chronically_missed(facts, *debt)),
            (rules.USAGE_DRIFT, rules.usage_drift(facts)),
            (rules.BUDGET_TOO_SMALL, rules.budget_too_small(facts)),
            (rules.NO_DATA, rules.no_data(facts)),
        ]
    found.append((rules.UNUSED, unused_outcomes.get(declaration.name)))
    found.append((rules.OWNERSHIP_GAP, rules.ownership_gap(declaration)))
    return found


def _entries(declaration: Declaration, outcomes: Iterable[tuple[str, rules.Outcome]]) -> tuple[list[Any], list[Any]]:
    spec = declaration.spec
    findings, skipped = [], []
    for rule, outcome in outcomes:
        if isinstance(outcome, rules.Finding):
            findings.append(
                {
                    "slo": declaration.name,
                    "service": spec.service,
                    "team": spec.owners.team,
                    "tier": spec.tier.value,
                    "rule": rule,
                    "action": outcome.action,
                    "message": outcome.message,
                    "inputs": outcome.inputs,
                }
            )
        elif isinstance(outcome, rules.NotChecked):
            skipped.append({"slo": declaration.name, "tier": spec.tier.value, "rule": rule, "reason": outcome.reason})
    return findings, skipped


ORDERED_RULES = (*rules.RULES, BLIND_SPOT)
"""Every rule, in the order an SLO's (and a service's) findings are listed."""


def _order(entry: Mapping[str, Any]) -> tuple[int, bool, str, int, str]:
    """By tier (the rules not checked for every SLO first, services without SLOs last), a tier's SLOs before its
    services' blind spots, then SLO, rule and service."""
    tier, per_service = entry["tier"], entry["rule"] == BLIND_SPOT
    rank = TIER_RANK[tier] if tier is not None else (len(TIER_RANK) if per_service else -1)
    return (rank, per_service, entry["slo"] or "", ORDERED_RULES.index(entry["rule"]), entry.get("service") or "")


def stale_report(
    fleet: Fleet,
    rows: RowReader,
    at: datetime,
    *,
    log: GateLog | None = None,
    cadence: Mapping[str, int] | None = None,
    open_debt: Callable[[str], bool] = no_debt_known,
    blind_spots: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The stale-SLO findings of the fleet at `at` (see the module's docstring for the rules and the JSON).

    `rows`: a rollup store's read; `log`: the decision log (None: `unused` is not checked); `cadence`: days
    between reviews per tier (`parse_cadence`; default `DEFAULT_CADENCE`); `open_debt`: whether an SLO has open
    reliability debt (`governance.debt.open_debt_lookup`; default: no register read, none known); `blind_spots`:
    `feedback_blind_spots.blind_spots` over the reports of the `BLIND_SPOT_SPAN` up to `at` (None: no feedback
    store, the rule is not checked).
    """
    days = dict(DEFAULT_CADENCE) | dict(cadence or {})
    declarations = reported(fleet)
    debt = (open_debt, open_debt is not no_debt_known)
    findings: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    log_span: dict[str, Any] | None = None
    unused_outcomes: dict[str, rules.Outcome] = {}
    if log is None:
        skipped.append({"slo": None, "tier": None, "rule": rules.UNUSED, "reason": "no decision log was given"})
    else:
        since = at - timedelta(days=UNUSED_DAYS)
        count, first_seq, last_seq = log.span(since, at)
        log_span = {"since": since.isoformat(), "until": at.isoformat(), "decisions": count}
        log_span |= {"firstSeq": first_seq, "lastSeq": last_seq}
        unused_outcomes = unused(declarations, log, at)
    for offset in range(0, len(declarations), STALE_BATCH):
        plans = [_plan(declaration, at) for declaration in declarations[offset : offset + STALE_BATCH]]
        recent = _read(rows, ((p.declaration.name, (p.periods[0].start, p.periods[-1].end)) for p in plans))
        before = _read(rows, ((p.declaration.name, (p.baseline.start, p.baseline.end)) for p in plans if p.baseline))
        for plan in plans:
            key = (plan.declaration.name, production_subject(plan.declaration).stage)
            try:
                facts: rules.SloFacts | str = _facts(plan, recent.get(key, []), before.get(key, []), at)
            except PeriodError as error:  # rows cut elsewhere than the SLO's zone cuts its periods
                facts = str(error)
            found, not_checked = _entries(
                plan.declaration,
                _outcomes(plan, facts, cadence=days, at=at, debt=debt, unused_outcomes=unused_outcomes),
            )
            findings += found
            skipped += not_checked
    if blind_spots is None:
        skipped.append({"slo": None, "tier": None, "rule": BLIND_SPOT, "reason": "no support feedback store was read"})
    else:
        findings += [dict(finding) for finding in blind_spots]
    findings.sort(key=_order)
    skipped.sort(key=_order)
    return {
        "kind": "stale",
        "at": at.isoformat(),
        "cadence": {tier.value: days[tier.value] for tier in Criticality},
        "thresholds": {
            "periods": PERIODS,
            "neverBurnsBelow": rules.NEVER_BURNS_BELOW,
            "missedAtLeast": rules.MISSED_AT_LEAST,
            "drift": list(rules.DRIFT_RANGE),
            "minAllowedBadEvents": rules.MIN_ALLOWED_BAD_EVENTS,
            "unusedDays": UNUSED_DAYS,
            "blindSpotDays": BLIND_SPOT_SPAN.days,
        },
        "findings": findings,
        "notChecked": skipped,
        "decisionLog": log_span,
        "summary": {rule: sum(1 for finding in findings if finding["rule"] == rule) for rule in ORDERED_RULES},
    }
