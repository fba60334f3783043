"""Support feedback, classified (issue 18): did monitoring see the problem a customer reported, or was it a blind spot?

A report names a service and a time range. It was *missed by monitoring* when, over that range, nothing saw it:
- **burn**: every SLO of the service (not archived; its production subject: the unstaged SLO or its production
  stage) stayed below burn rate 1× in every hour. An hour's burn rate is its counted bad events ÷ (counted events
  × (1 − objective)), the objective the one the row was rolled up with and excluded spans taken out, as the SLA
  report and the quarterly review count (`history.sla.counted`). The hours are the SLO's own (its zone's, as its
  rows are cut) that overlap the range — a whole hour counts for a report that covers part of it;
- **gate**: no live gate decision of the service, decided in the range, failed on a deployment-related breach
  (`history.retro_detection.failed_on_breach`, a break-glass that overrode one included); replays (a request with
  `at`) are not what happened then;
- **alert**: with a Prometheus (`backend`), no page- or ticket-tier burn-rate alert of the service's SLOs would have
  fired in the range (the on-call report's replay, `history.oncall`); without one the classification says
  "alerts not replayed" and judges on burn and gates alone.

Otherwise it was *seen*, and `seenBy` names what saw it (each SLO's first hour at or above 1× and its peak, each
failed gate, each replayed page or ticket). A missed report is a blind spot of one of these kinds:
- `measured-fine`: every hour of every rolled-up SLO had counted events and burned below 1× — the SLIs measure
  something other than what the customer felt: add or change an SLI;
- `no-data`: some hours had no row, or a row without data or without a single counted event, or the service has
  no SLO that is rolled up (ratio-only SLIs, composites) — the measurement itself has a gap: review it;
- `no-slo`: the service has no SLO at all (one may have been archived since the report was received).
A report whose hours all fell in excluded spans (maintenance, exclusion windows) is `excluded`: the owners had
declared that time out, which is no blind spot.

When to classify: at receipt (`POST /v1/feedback`), and again once its hours are rolled up. `serve`'s rollup job
writes an hour `job.SETTLE` after it ends, every `--rollup-interval` (an hour by default), so an hour with no row
that ended less than `lag` (`ROLLUP_LAG`: an hour and `SETTLE`) before `at` is *pending*, not missing; a report
with pending hours and nothing that saw it yet is `pending`, with `settlesAt` saying from when a classification is
final. `reclassify_due` classifies the pending reports that have settled again: call it after each rollup round.

The classification (JSON; stored with the report):

    {"verdict": "seen|missed|pending|excluded", "blindSpot": "measured-fine|no-data|no-slo" | null,
     "message": one sentence, "classifiedAt", "settlesAt", "settled": bool,
     "seenBy": [{"kind": "burn", "slo", "stage", "from", "hours", "peakBurnRate"}
                | {"kind": "gate", "decisionId", "slo", "stage", "decidedAt"}
                | {"kind": "alert", "tier", "slo", "stage", "alertname", "start", "end"}],
     "slos": [{"slo", "stage", "rolledUp", "why", "hours": {"expected", "withData", "noData", "excluded",
               "pending"}, "maxBurnRate", "noDataHours": [ISO start, …]}],
     "gates": {"read": bool, "decisions", "failedOnBreach", "truncated"},
     "alerts": {"replayed": bool, "why": null | "alerts not replayed: …", "pages", "tickets"}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.evaluator.contracts import DecisionQuery
from sloplane.evaluator.history.hours import local_hours, zone
from sloplane.evaluator.history.job import SETTLE
from sloplane.evaluator.history.oncall import OncallError, OncallOptions, ReplayError, oncall_report
from sloplane.evaluator.history.retro_detection import failed_on_breach
from sloplane.evaluator.history.rollup import targets
from sloplane.evaluator.measuring.backends.base import MetricsBackend
from sloplane.evaluator.model import Rollup
from sloplane.evaluator.storage.feedback import FeedbackReport, FeedbackStore
from sloplane.semantics.subjects import Fleet, production_subject

RowReader = Callable[[datetime, datetime, list[str]], Sequence[Rollup]]
"""(since, until, SLO names) → the rows whose hour starts in [since, until): a rollup store's `read`."""

ROLLUP_LAG = timedelta(hours=1) + SETTLE
"""How long after an hour ends its row may still be missing without being "no data": `serve` rolls up every hour
(`--rollup-interval`), an hour `SETTLE` after it ended."""
GATE_LIMIT = 10_000
"""Decisions read for one report: a month of a busy service's gates; beyond it `gates.truncated` says so."""
BURN = 1.0
"""Burn rate at or above which an hour saw the problem: the budget spent faster than it lasts."""
RECLASSIFY_HORIZON = timedelta(days=62)
"""How far back `reclassify_due` looks for unsettled reports: the longest report (31 days) received a month late."""
_ROW_REACH = timedelta(hours=2)
"""How far before a range a row overlapping it can start (the longest row: 90 minutes, a :30 zone's DST hour)."""
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Sources:
    """Where a classification reads: the fleet, the rollups, the decision log (optional), Prometheus (optional)."""

    fleet: Fleet
    rows: RowReader
    log: DecisionQuery | None = None
    backend: MetricsBackend | None = None
    lag: timedelta = ROLLUP_LAG


@dataclass
class _SloHours:
    """One SLO's hours over a report's range, sorted into what they say."""

    declaration: Declaration
    stage: str | None
    why: str | None
    """Why it is not rolled up (None: it is)."""
    expected: int = 0
    with_data: int = 0
    excluded: int = 0
    pending: int = 0
    no_data: list[datetime] = field(default_factory=list)
    burns: list[tuple[datetime, float]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "slo": self.declaration.name,
            "stage": self.stage,
            "rolledUp": self.why is None,
            "why": self.why,
            "hours": {
                "expected": self.expected,
                "withData": self.with_data,
                "noData": len(self.no_data),
                "excluded": self.excluded,
                "pending": self.pending,
            },
            "maxBurnRate": max((burn for _, burn in self.burns), default=None),
            "noDataHours": [start.isoformat() for start in self.no_data],
        }

    def seen(self) -> dict[str, Any] | None:
        hot = [(start, burn) for start, burn in self.burns if burn >= BURN]
        if not hot:
            return None
        return {
            "kind": "burn",
            "slo": self.declaration.name,
            "stage": self.stage,
            "from": hot[0][0].isoformat(),
            "hours": len(hot),
            "peakBurnRate": max(burn for _, burn in hot),
        }


def service_slos(fleet: Fleet, service: str) -> list[Declaration]:
    """The service's SLOs that measure now (archived ones do not), by name."""
    found = [fleet[name] for name in sorted(fleet) if fleet[name].spec.service == service]
    return [declaration for declaration in found if declaration.spec.lifecycle is not Lifecycle.ARCHIVED]


def _not_rolled_up(fleet: Fleet) -> dict[str, str]:
    """Subject key → why it has no rows (ratio-only SLI, composite), worked out once per fleet."""

    def compute() -> dict[str, str]:
        return targets(fleet, _EPOCH, _EPOCH, datadog=True, from_datadog=True)[1]

    return fleet.memo("feedback.not-rolled-up", compute)


def _burn(row: Rollup) -> float | None:
    """The hour's burn rate, or None when it counted no event."""
    events, bad = row.counted_total_events, row.counted_bad_events
    if not events or bad is None:
        return None
    budget = events * (100 - row.objective) / 100
    return bad / budget if budget > 0 else (0.0 if bad == 0 else float("inf"))


def _hours(
    sources: Sources, declaration: Declaration, rows: Sequence[Rollup], span: tuple[datetime, datetime], at: datetime
) -> _SloHours:
    subject = production_subject(declaration)
    slo = _SloHours(declaration, subject.stage, _not_rolled_up(sources.fleet).get(subject.key))
    if slo.why is not None:
        return slo
    start, end = span
    by_start = {row.start: row for row in rows if row.slo == declaration.name and row.stage == subject.stage}
    zone_info = zone(declaration.spec.window.time_zone)
    for hour_start, hour_end in local_hours(zone_info, start - _ROW_REACH, end + _ROW_REACH):
        if not (hour_start < end and hour_end > start):
            continue
        slo.expected += 1
        row = by_start.get(hour_start)
        burn = None if row is None else _burn(row)
        if burn is not None:
            slo.with_data += 1
            slo.burns.append((hour_start, burn))
        elif row is not None and row.total_events is not None and row.excluded_total_events > 0:
            slo.excluded += 1
        elif row is None and hour_end > at - sources.lag:
            slo.pending += 1
        else:
            slo.no_data.append(hour_start)
    return slo


def _gates(log: DecisionQuery | None, service: str, start: datetime, end: datetime) -> tuple[dict[str, Any], list[Any]]:
    if log is None:
        return {"read": False, "decisions": 0, "failedOnBreach": 0, "truncated": False}, []
    records = log.query(service=service, since=start, until=end, limit=GATE_LIMIT)
    live = [record for record in records if record["request"].get("at") is None]
    failed = sorted((record for record in live if failed_on_breach(record)), key=lambda r: r["decidedAt"])
    seen = [
        {
            "kind": "gate",
            "decisionId": record["id"],
            "slo": record["slo"],
            "stage": record.get("stage"),
            "decidedAt": record["decidedAt"],
        }
        for record in failed
    ]
    summary = {
        "read": True,
        "decisions": len(live),
        "failedOnBreach": len(failed),
        "truncated": len(records) >= GATE_LIMIT,
    }
    return summary, seen


def _alerts(
    sources: Sources, slos: Sequence[Declaration], start: datetime, end: datetime, at: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    summary: dict[str, Any] = {"replayed": False, "why": None, "pages": 0, "tickets": 0}
    until = min(end, at)
    if sources.backend is None:
        summary["why"] = "alerts not replayed: no Prometheus to replay them from"
        return summary, []
    if not slos or until <= start:
        summary["why"] = "alerts not replayed: nothing to replay"
        return summary, []
    try:
        replay = oncall_report(Fleet(slos), sources.backend, OncallOptions(since=start, until=until), at=at)
    except (ReplayError, OncallError) as error:
        summary["why"] = f"alerts not replayed: {error}"
        return summary, []
    fired = [
        {
            "kind": "alert",
            "tier": delivery["tier"],
            "slo": delivery["slo"],
            "stage": delivery["stage"],
            "alertname": delivery["alertname"],
            "start": delivery["start"],
            "end": delivery["end"],
        }
        for delivery in (*replay["pages"], *replay["tickets"])
    ]
    summary.update(replayed=True, pages=len(replay["pages"]), tickets=len(replay["tickets"]))
    return summary, sorted(fired, key=lambda alert: (alert["start"], alert["slo"], alert["tier"]))


def _verdict(slos: Sequence[_SloHours], seen_by: Sequence[dict[str, Any]]) -> tuple[str, str | None, str]:
    """(verdict, blind spot, message) from the SLOs' hours and what saw the problem."""
    if seen_by:
        kinds = sorted({entry["kind"] for entry in seen_by})
        return "seen", None, f"seen by monitoring: {', '.join(kinds)}"
    if not slos:
        return "missed", "no-slo", "missed by monitoring: the service has no SLO"
    measured = [slo for slo in slos if slo.why is None]
    if any(slo.pending for slo in measured):
        return "pending", None, "nothing saw it so far, but some hours are not rolled up yet: classify again later"
    if not measured:
        return "missed", "no-data", "missed by monitoring: none of the service's SLOs is rolled up (no event counts)"
    if any(slo.no_data for slo in measured):
        hours = sum(len(slo.no_data) for slo in measured)
        return "missed", "no-data", f"missed by monitoring: {hours} hour(s) of the service's SLOs had no data"
    if not any(slo.with_data for slo in measured):
        return "excluded", None, "every hour of the range lies in the SLOs' excluded spans"
    return "missed", "measured-fine", f"missed by monitoring: every SLO stayed below {BURN:g}x burn and nothing fired"


def classify(sources: Sources, service: str, start: datetime, end: datetime, *, at: datetime) -> dict[str, Any]:
    """The classification of a problem of `service` over [start, end), as known at `at` (see the module)."""
    slos = service_slos(sources.fleet, service)
    rows = sources.rows(start - _ROW_REACH, end, [slo.name for slo in slos]) if slos else []
    hours = [_hours(sources, declaration, rows, (start, end), at) for declaration in slos]
    gates, failed = _gates(sources.log if slos else None, service, start, end)
    alerts, fired = _alerts(sources, slos, start, end, at)
    seen_by = [entry for slo in hours if (entry := slo.seen()) is not None] + failed + fired
    verdict, blind_spot, message = _verdict(hours, seen_by)
    settles = end + sources.lag + timedelta(hours=1)  # the last overlapping hour ends at most an hour after `end`
    return {
        "verdict": verdict,
        "blindSpot": blind_spot,
        "message": message,
        "classifiedAt": at.isoformat(),
        "settlesAt": settles.isoformat(),
        "settled": at >= settles,
        "seenBy": seen_by,
        "slos": [slo.describe() for slo in hours],
        "gates": gates,
        "alerts": alerts,
    }


def classify_report(sources: Sources, report: FeedbackReport, *, at: datetime) -> dict[str, Any]:
    """`classify` of a stored report."""
    return classify(sources, report.service, report.start, report.end, at=at)


def reclassify_due(
    store: FeedbackStore, sources: Sources, *, at: datetime, horizon: timedelta = RECLASSIFY_HORIZON
) -> list[FeedbackReport]:
    """Classify again each report that started within `horizon` before `at` and is `pending`, or was classified
    before it settled and has settled now; the reports changed. Call after each rollup round (`serve`'s job)."""
    changed = []
    for report in store.reports(since=at - horizon):
        if report.classification.get("settled"):
            continue
        settles = datetime.fromisoformat(str(report.classification.get("settlesAt", at.isoformat())))
        if report.verdict != "pending" and settles > at:
            continue
        changed.append(store.reclassify(report.id, classify_report(sources, report, at=at), at=at))
    return changed
