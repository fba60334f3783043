"""Blind spots: per service, the customer reports of a span that monitoring missed (`feedback.py` classifies them),
for `govern stale` (rule `blind-spot`) and the quarterly review's agenda.

Pure: reports and the fleet in, findings out; the caller reads the reports (`store.reports(since=, until=)`:
those whose problem started in the span, so consecutive spans count each report once).

The rule: a service with at least one report *missed by monitoring* started in [since, until) is a finding.
- action `add-sli` when any of them was missed while its SLIs measured and said all was well (`measured-fine`),
  or the service has no SLO (`no-slo`): what customers felt is not what the SLOs measure;
- action `review` when every one fell in hours without data (`no-data`): the measurement has a gap to mend
  before any SLI could see such a problem.
Reports still `pending` (their hours not rolled up yet) are counted apart, never as missed; `seen` and `excluded`
ones are counted, for the ratio of reports monitoring missed.

A finding (the shape of `govern stale`'s, per service: `slo` is null):

    {"slo": null, "service", "team": the owning team (teams joined by ", " when several; null without SLOs),
     "tier": the service's most critical SLO's tier | null, "rule": "blind-spot", "action": "add-sli|review",
     "message", "inputs": {"since", "until", "slos": [names], "reports", "missed", "seen", "pending",
                           "excluded", "blindSpots": {"measured-fine", "no-data", "no-slo"},
                           "missedReports": [{"id", "start", "end", "ticket", "blindSpot", "receivedAt"}]}}

Ordered by tier (critical first; services without SLOs last), then most missed reports, then service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sloplane.evaluator.governance.feedback import service_slos
from sloplane.evaluator.history.quarterly_agenda import TIER_RANK, AgendaItem
from sloplane.evaluator.storage.feedback import FeedbackReport
from sloplane.semantics.subjects import Fleet

STALE_SPAN = timedelta(days=90)
"""The span `govern stale` counts reports over, up to its `at`: a quarter, as the review it feeds."""
RULE = "blind-spot"
ADD_SLI, REVIEW = "add-sli", "review"
BLIND_SPOTS = ("measured-fine", "no-data", "no-slo")
OTHER_VERDICTS = ("seen", "pending", "excluded")
_NO_TIER = len(TIER_RANK)


def _as_dict(report: FeedbackReport | Mapping[str, Any]) -> Mapping[str, Any]:
    return report.to_dict() if isinstance(report, FeedbackReport) else report


def _in_span(report: Mapping[str, Any], since: datetime, until: datetime) -> bool:
    return since <= datetime.fromisoformat(report["start"]) < until


def _times(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"


def blind_spots(
    reports: Iterable[FeedbackReport | Mapping[str, Any]], fleet: Fleet, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Per service, the reports started in [since, until) that monitoring missed (see the module)."""
    by_service: dict[str, list[Mapping[str, Any]]] = {}
    for report in map(_as_dict, reports):
        if _in_span(report, since, until):
            by_service.setdefault(report["service"], []).append(report)
    findings = []
    for service, found in sorted(by_service.items()):
        missed = [report for report in found if report["verdict"] == "missed"]
        if not missed:
            continue
        slos = service_slos(fleet, service)
        teams = sorted({slo.spec.owners.team for slo in slos})
        tiers = sorted((slo.spec.tier.value for slo in slos), key=TIER_RANK.__getitem__)
        kinds = dict.fromkeys(BLIND_SPOTS, 0)
        for report in missed:
            kind = report["classification"].get("blindSpot")
            if kind in kinds:
                kinds[kind] += 1
        action = ADD_SLI if kinds["measured-fine"] or kinds["no-slo"] else REVIEW
        findings.append(
            {
                "slo": None,
                "service": service,
                "team": ", ".join(teams) if teams else None,
                "tier": tiers[0] if tiers else None,
                "rule": RULE,
                "action": action,
                "message": _message(service, len(found), kinds, action),
                "inputs": {
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                    "slos": [slo.name for slo in slos],
                    "reports": len(found),
                    "missed": len(missed),
                    **{verdict: sum(1 for r in found if r["verdict"] == verdict) for verdict in OTHER_VERDICTS},
                    "blindSpots": kinds,
                    "missedReports": [
                        {
                            "id": report["id"],
                            "start": report["start"],
                            "end": report["end"],
                            "ticket": report["ticket"],
                            "blindSpot": report["classification"].get("blindSpot"),
                            "receivedAt": report["receivedAt"],
                        }
                        for report in missed
                    ],
                },
            }
        )
    return sorted(findings, key=_order)


def _order(finding: Mapping[str, Any]) -> tuple[int, int, str]:
    tier = finding["tier"]
    return (_NO_TIER if tier is None else TIER_RANK[tier], -finding["inputs"]["missed"], finding["service"])


def _message(service: str, reported: int, kinds: Mapping[str, int], action: str) -> str:
    missed = sum(kinds.values())
    parts = []
    if kinds["measured-fine"]:
        parts.append(f"{kinds['measured-fine']} while every SLO measured under 1x burn")
    if kinds["no-data"]:
        parts.append(f"{kinds['no-data']} in hours without data")
    if kinds["no-slo"]:
        parts.append(f"{kinds['no-slo']} with no SLO for the service")
    advice = (
        "add an SLI that measures what these customers saw"
        if action == ADD_SLI
        else "review the measurement: its data has gaps"
    )
    return (
        f"{service}: {missed} of {_times(reported, 'customer report')} missed by monitoring "
        f"({'; '.join(parts)}): {advice}"
    )


def agenda_source(findings: Sequence[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], list[AgendaItem]]:
    """The quarterly review's agenda source for these findings (`quarterly_report(..., agenda=(*AGENDA, source))`):
    one `blind-spot` item per service, owned by its team."""

    def blind_spot_items(report: Mapping[str, Any]) -> list[AgendaItem]:
        del report  # the findings were worked out from the feedback store, not from the report's lines
        return [
            {
                "kind": RULE,
                "team": finding["team"],
                "slo": None,
                "title": finding["message"],
                "facts": {
                    "service": finding["service"],
                    "tier": finding["tier"],
                    "action": finding["action"],
                    "missed": finding["inputs"]["missed"],
                    "reports": finding["inputs"]["reports"],
                    "blindSpots": finding["inputs"]["blindSpots"],
                    "tickets": [missed["ticket"] for missed in finding["inputs"]["missedReports"]],
                },
            }
            for finding in findings
        ]

    return blind_spot_items
