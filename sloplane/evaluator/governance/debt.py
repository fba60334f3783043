"""The reliability debt register read against the history (`sloplane govern debt`, issue 18): items overdue or
expired, SLOs that missed their objective with no open debt, and the open items ranked for sprint planning.

Rules, each a finding with its inputs (today is `at`'s date in UTC: items carry dates without a zone):
- `debt-overdue` → pay-debt: an open item (status open or in-progress) whose `remediation.due` is before today.
- `debt-expired` → review-debt: an open item whose `revisit` is before today. An exception accepted until then
  does not stand by default after it: the owners renew it, loosen the objective, or do the work.
- `missed-without-debt` → open-debt (a warning): an SLO whose last complete compliance period (`stale_periods`:
  calendar or rolling, as `govern stale` cuts them) missed its objective, while no open item names it. `--draft`
  writes a stub for each (`debt_stub`).

Ranking: open items by attributed bad events, most first — the bad events counted (`history.sla.counted`: excluded
spans taken out) on the production subject of each SLO the item names, in the rows from the item's `opened` date
(midnight UTC) up to `at`, at most `ATTRIBUTION_DAYS` back. "Attributed" is the register's claim: the item's cause
is what spent those events. It is the one figure that compares a latency debt with an availability one for a
sprint's worth of work; ties go to the earlier due date, then the name.

The JSON (the dict `debt_report` returns):

    {"kind": "debt", "at": ISO, "today": DATE, "attributionDays": 90,
     "items": [{"name", "slos", "kind", "owner": {"name", "contact"}, "status", "cause", "opened", "revisit",
                "due", "tracker", "overdue", "expired", "attributedBadEvents", "since", "rank"}],
               open items first by rank (1 = most bad events), then resolved ones by name (rank null)
     "findings": [{"rule", "action", "severity": "warning|error", "debt": name | null, "slo": name | null,
                   "message", "inputs": {...}}],
        debt-overdue: {"due", "today", "daysOverdue"}; debt-expired: {"revisit", "today", "daysExpired"};
        missed-without-debt: {"period": PERIOD (as govern stale's)}
     "summary": {rule: count}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sloplane.declaration.debt import DebtKind, ReliabilityDebt
from sloplane.declaration.model import Declaration
from sloplane.evaluator.governance.stale_periods import last_periods
from sloplane.evaluator.history.quarterly_slo import Window, period_numbers
from sloplane.evaluator.history.report_kinds import RowReader
from sloplane.evaluator.history.sla import by_subject, counted, reported
from sloplane.semantics.subjects import Fleet, production_subject

OVERDUE = "debt-overdue"
EXPIRED = "debt-expired"
MISSED_WITHOUT_DEBT = "missed-without-debt"
RULES = (OVERDUE, EXPIRED, MISSED_WITHOUT_DEBT)
ATTRIBUTION_DAYS = 90
"""How far back bad events are attributed to an item: its recent cost, not everything since a years-old opening."""


def open_debt_names(debts: Sequence[ReliabilityDebt]) -> dict[str, list[str]]:
    """SLO name → the open items naming it, by item name."""
    found: dict[str, list[str]] = {}
    for debt in sorted(debts, key=lambda item: item.name):
        if debt.spec.is_open:
            for slo in debt.spec.slos:
                found.setdefault(slo, []).append(debt.name)
    return found


def open_debt_lookup(debts: Sequence[ReliabilityDebt]) -> Callable[[str], bool]:
    """`govern stale`'s `open_debt` hook from the register: whether an SLO has an open item."""
    names = open_debt_names(debts)
    return lambda slo: slo in names


def _finding(rule: str, action: str, severity: str, message: str, inputs: dict[str, Any], **about: Any) -> Any:
    found = {"rule": rule, "action": action, "severity": severity, "debt": about.get("debt"), "slo": about.get("slo")}
    return found | {"message": message, "inputs": inputs}


def _item_findings(debt: ReliabilityDebt, today: date) -> list[dict[str, Any]]:
    spec = debt.spec
    found = []
    if spec.overdue(today):
        days = (today - spec.remediation.due).days
        message = f"{debt.name}: remediation was due {spec.remediation.due} ({days} days ago) and the item is open"
        inputs = {"due": spec.remediation.due.isoformat(), "today": today.isoformat(), "daysOverdue": days}
        found.append(_finding(OVERDUE, "pay-debt", "error", message, inputs, debt=debt.name))
    if spec.expired(today):
        days = (today - spec.revisit).days
        what = "the exception lapsed" if spec.kind is DebtKind.EXCEPTION else "it was due to be looked at again"
        message = f"{debt.name}: revisit date {spec.revisit} passed {days} days ago ({what}) and the item is open"
        inputs = {"revisit": spec.revisit.isoformat(), "today": today.isoformat(), "daysExpired": days}
        found.append(_finding(EXPIRED, "review-debt", "error", message, inputs, debt=debt.name))
    return found


def _attributed(
    debts: Sequence[ReliabilityDebt], fleet: Fleet, rows: RowReader, at: datetime
) -> dict[str, tuple[float, datetime]]:
    """Each open item's attributed bad events and the instant they are counted from (see the module docstring)."""
    floor = at - timedelta(days=ATTRIBUTION_DAYS)
    found: dict[str, tuple[float, datetime]] = {}
    for debt in debts:
        if not debt.spec.is_open:
            continue
        since = max(floor, datetime.combine(debt.spec.opened, time(0), tzinfo=UTC))
        names = [slo for slo in debt.spec.slos if slo in fleet]
        grouped = by_subject(rows(since, at, names)) if names and since < at else {}
        bad = 0.0
        for name in names:
            subject = (name, production_subject(fleet[name]).stage)
            bad += counted([row for row in grouped.get(subject, []) if row.start < at])[1]
        found[debt.name] = (bad, since)
    return found


def _missed(declaration: Declaration, rows: RowReader, at: datetime) -> dict[str, Any] | None:
    """The SLO's last complete period's numbers when it missed its objective, else None."""
    (period,) = last_periods(declaration.spec.window, at, 1)
    subject = (declaration.name, production_subject(declaration).stage)
    own = by_subject(rows(period.start, period.end, [declaration.name])).get(subject, [])
    numbers = period_numbers(own, Window(period, at), production_subject(declaration).objective)
    return numbers if numbers["met"] is False else None


def missed_without_debt(
    fleet: Fleet, debts: Sequence[ReliabilityDebt], rows: RowReader, at: datetime
) -> list[tuple[Declaration, dict[str, Any]]]:
    """The SLOs (not archived) whose last complete period missed, with no open item naming them, and that period."""
    owed = open_debt_names(debts)
    found = []
    for declaration in reported(fleet):
        if declaration.name in owed:
            continue
        numbers = _missed(declaration, rows, at)
        if numbers is not None:
            found.append((declaration, numbers))
    return found


def _item(debt: ReliabilityDebt, today: date, attributed: tuple[float, datetime] | None) -> dict[str, Any]:
    spec = debt.spec
    return {
        "name": debt.name,
        "slos": list(spec.slos),
        "kind": spec.kind.value,
        "owner": {"name": spec.owner.name, "contact": spec.owner.contact},
        "status": spec.status.value,
        "cause": spec.cause,
        "opened": spec.opened.isoformat(),
        "revisit": spec.revisit.isoformat(),
        "due": spec.remediation.due.isoformat(),
        "tracker": spec.remediation.tracker,
        "overdue": spec.overdue(today),
        "expired": spec.expired(today),
        "attributedBadEvents": None if attributed is None else attributed[0],
        "since": None if attributed is None else attributed[1].isoformat(),
        "rank": None,
    }


def debt_report(fleet: Fleet, debts: Sequence[ReliabilityDebt], rows: RowReader, at: datetime) -> dict[str, Any]:
    """The register at `at`: items ranked, overdue and expired ones, SLOs missed without open debt (see above)."""
    today = at.astimezone(UTC).date()
    attributed = _attributed(debts, fleet, rows, at)
    items = [_item(debt, today, attributed.get(debt.name)) for debt in debts]
    ranked = sorted(
        (item for item in items if item["attributedBadEvents"] is not None),
        key=lambda item: (-item["attributedBadEvents"], item["due"], item["name"]),
    )
    for rank, item in enumerate(ranked, start=1):
        item["rank"] = rank
    resolved = sorted((item for item in items if item["rank"] is None), key=lambda item: item["name"])
    findings = [finding for debt in sorted(debts, key=lambda d: d.name) for finding in _item_findings(debt, today)]
    for declaration, numbers in missed_without_debt(fleet, debts, rows, at):
        message = (
            f"{declaration.name} missed its objective in {numbers['label']} (budget used "
            f"{numbers['budgetUsed']:.0%}) and no open reliability debt names it: open an item with a plan, or "
            "loosen the objective"
        )
        inputs = {"period": numbers}
        findings.append(_finding(MISSED_WITHOUT_DEBT, "open-debt", "warning", message, inputs, slo=declaration.name))
    return {
        "kind": "debt",
        "at": at.isoformat(),
        "today": today.isoformat(),
        "attributionDays": ATTRIBUTION_DAYS,
        "items": ranked + resolved,
        "findings": findings,
        "summary": {rule: sum(1 for finding in findings if finding["rule"] == rule) for rule in RULES},
    }


def ranked_rows(report: dict[str, Any]) -> list[list[Any]]:
    """The CSV for sprint planning: open items by rank, one row each, header first."""
    header = ["rank", "name", "slos", "kind", "owner", "status", "attributed_bad_events", "due", "overdue"]
    header += ["revisit", "expired", "tracker"]
    rows: list[list[Any]] = [header]
    for item in report["items"]:
        if item["rank"] is None:
            continue
        rows.append(
            [
                item["rank"],
                item["name"],
                " ".join(item["slos"]),
                item["kind"],
                item["owner"]["name"],
                item["status"],
                f"{item['attributedBadEvents']:.6g}",
                item["due"],
                str(item["overdue"]).lower(),
                item["revisit"],
                str(item["expired"]).lower(),
                item["tracker"],
            ]
        )
    return rows
