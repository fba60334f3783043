"""Governance findings on the quarterly review's agenda (issue 18): what `govern stale`, `govern debt` and the
support feedback found, as of the quarter's end, each an agenda item with its rule.

Why here and not in the review's own sources (`history.quarterly_agenda`): those read the report's own lines; these
read the debt register, the decision log and the support feedback, and governance sits above the history layer. The
review takes them as further sources (`ReportSources.agenda`, `quarterly_report(agenda_sources=...)`), after its
own: budgets, misses, reviews and break-glass first, then what governance asks of the owners.

Items (the review's item shape: `kind`, `team`, `slo`, `title`, `facts`):
- `stale-<rule>` for `govern stale`'s findings as of the quarter's end (or `at`, if earlier), except the rules the
  review already lists from its own lines (`review-overdue`, `no-data`): never-burns, chronically-missed,
  usage-drift, budget-too-small, unused, ownership-gap, blind-spot (over the quarter's support feedback instead of
  the 90 days before `at`);
- `debt-overdue`, `debt-expired`, `missed-without-debt` from the register (`governance.debt`).
`facts` carry the finding's rule, action and inputs. Within a source the findings' own order (tier first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sloplane.declaration.debt import ReliabilityDebt
from sloplane.evaluator.governance.debt import debt_report, open_debt_lookup
from sloplane.evaluator.governance.feedback_blind_spots import blind_spots
from sloplane.evaluator.governance.stale import stale_report
from sloplane.evaluator.governance.stale_unused import GateLog
from sloplane.evaluator.history.periods import quarter
from sloplane.evaluator.history.quarterly_agenda import AgendaItem, AgendaSource
from sloplane.evaluator.history.report_kinds import AgendaExtras, RowReader
from sloplane.evaluator.storage.feedback import FeedbackReport
from sloplane.semantics.subjects import Fleet

REVIEW_LISTS_ALREADY = frozenset({"review-overdue", "no-data"})
"""`govern stale` rules whose findings the review's own sources already put on the agenda."""

FeedbackReader = Callable[[datetime, datetime], Sequence[FeedbackReport]]
"""(since, until) → the support feedback reports whose problem started then (`FeedbackStore.reports`)."""


def _team(finding: Mapping[str, Any], fleet: Fleet, debts: Mapping[str, ReliabilityDebt]) -> str | None:
    """The team an item is for: the finding's, its SLO's, or the team of the first SLO its debt item names."""
    slo = finding.get("slo")
    if finding.get("team"):
        return str(finding["team"])
    if isinstance(slo, str) and slo in fleet:
        return fleet[slo].spec.owners.team
    debt = debts.get(str(finding.get("debt")))
    named = [name for name in (debt.spec.slos if debt is not None else []) if name in fleet]
    return fleet[named[0]].spec.owners.team if named else None


def _items(
    findings: Sequence[Mapping[str, Any]], prefix: str, fleet: Fleet, debts: Mapping[str, ReliabilityDebt]
) -> list[AgendaItem]:
    found = []
    for finding in findings:
        slo = finding.get("slo")
        team = _team(finding, fleet, debts)
        facts = {"rule": finding["rule"], "action": finding["action"], "inputs": finding["inputs"]}
        if finding.get("debt") is not None:
            facts["debt"] = finding["debt"]
        kind = f"{prefix}{finding['rule']}"
        found.append({"kind": kind, "team": team, "slo": slo, "title": finding["message"], "facts": facts})
    return found


def governance_agenda(
    rows: RowReader, *, debts: Sequence[ReliabilityDebt] = (), feedback: FeedbackReader | None = None
) -> AgendaExtras:
    """The review's further agenda sources for a quarter (label) as of `at`, over the fleet and log the review
    covers (a limited token's: its own SLOs and decisions): stale findings, then the register's.

    `debts`: the register's items (those naming an SLO of the fleet are read); `feedback`: the support feedback
    reports (those of the fleet's services are read; blind spots not checked without it). Without a log, `unused`
    is not checked."""

    def sources(label: str, at: datetime, fleet: Fleet, log: GateLog | None) -> list[AgendaSource]:
        period = quarter(label, "UTC")
        as_of = min(period.end, at)
        own = [debt for debt in debts if any(slo in fleet for slo in debt.spec.slos)]
        spots = None
        if feedback is not None:
            services = {fleet[name].spec.service for name in fleet}
            reports = [report for report in feedback(period.start, period.end) if report.service in services]
            spots = blind_spots(reports, fleet, period.start, period.end)
        stale = stale_report(fleet, rows, as_of, log=log, open_debt=open_debt_lookup(own), blind_spots=spots)
        register = debt_report(fleet, own, rows, as_of)
        listed = [finding for finding in stale["findings"] if finding["rule"] not in REVIEW_LISTS_ALREADY]
        by_name = {debt.name: debt for debt in own}
        stale_items = _items(listed, "stale-", fleet, by_name)
        debt_items = _items(register["findings"], "", fleet, by_name)
        return [lambda _report: stale_items, lambda _report: debt_items]

    return sources
