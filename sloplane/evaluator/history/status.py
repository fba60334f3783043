"""The status page: one component per service, in Statuspage's states, with 90 daily bars and the uptime.

How a state is derived, so that a status page never says what the alerts do not (`sloplane explain` prints
the same windows and factors):
- under maintenance: an excluded span (a maintenance window, an exclusion window, an emergency change) covers
  the instant;
- major outage: a page-tier burn-rate alert would be firing and its short window has at least half the
  events failing (`MAJOR_ERROR_RATIO`);
- partial outage: a page-tier alert would be firing;
- degraded performance: a ticket-tier alert would be firing, or the SLO has no data (a page that cannot see
  must not say "operational");
- operational: none of those.
A service takes its SLOs' worst state (their production subjects); the page indicator is Statuspage's for
the worst component: none, minor (degraded), major (partial outage), critical (major outage).

The 90 daily bars are each day's bad events ÷ the events the objective allows, from hourly rollups (the
store's, or read from Prometheus for the page); the uptime is the event SLI over those days. `status.json`
has the shape of Statuspage's `/api/v2/summary.json`, so tools that read Statuspage read this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from math import fsum
from typing import Any

from sloplane.core.budget import Tier
from sloplane.declaration.model import Declaration
from sloplane.evaluator.deciding.context import firing_alerts
from sloplane.evaluator.history.periods import Period, day_periods
from sloplane.evaluator.history.sla import by_subject, in_days, reported, slo_zone
from sloplane.evaluator.model import Incident, Measurement, Rollup
from sloplane.semantics.subjects import Fleet, production_subject

DAYS = 90
MAJOR_ERROR_RATIO = 0.5
SEVERITY = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")
"""Statuspage's component states, least severe first: what `worst` ranks a service's SLOs by."""
INDICATOR = {
    "operational": ("none", "All Systems Operational"),
    "under_maintenance": ("none", "Service Under Maintenance"),
    "degraded_performance": ("minor", "Minor Service Outage"),
    "partial_outage": ("major", "Partial System Outage"),
    "major_outage": ("critical", "Major Service Outage"),
}


@dataclass(frozen=True)
class SloState:
    """One SLO's state now, and why (the alert, the exclusion, the missing data)."""

    slo: str
    state: str
    why: str


def slo_state(declaration: Declaration, measurement: Measurement | None, at: datetime) -> SloState:
    """The state of an SLO's production subject at `at` (see the module's docstring)."""
    name = declaration.name
    # a composite has its period's ratio and no events of its own: that is data too
    if (
        measurement is None
        or measurement.error is not None
        or (measurement.period_events is None and measurement.period_error_ratio is None)
    ):
        reason = "no data" if measurement is None or measurement.error is None else f"no data: {measurement.error}"
        return SloState(name, "degraded_performance", reason)
    for exclusion in measurement.exclusions:
        if exclusion.start <= at < exclusion.end:
            return SloState(name, "under_maintenance", f"{exclusion.kind} {exclusion.name}: {exclusion.reason}".strip())
    pages = firing_alerts(declaration, measurement, Tier.PAGE)
    if pages:
        alert = next(a for a in declaration.spec.burn_rate_alerts() if f"{a.tier.value} {a.name}" == pages[0][0])
        short = measurement.window(alert.short_window)
        ratio = None if short is None else short.error_ratio
        if ratio is not None and ratio >= MAJOR_ERROR_RATIO:
            return SloState(name, "major_outage", f"{pages[0][0]} firing, {ratio:.0%} of requests failing")
        return SloState(name, "partial_outage", f"{pages[0][0]} firing at {pages[0][1]:.1f}× the budget rate")
    tickets = firing_alerts(declaration, measurement, Tier.TICKET)
    if tickets:
        return SloState(name, "degraded_performance", f"{tickets[0][0]} firing at {tickets[0][1]:.1f}× the budget rate")
    return SloState(name, "operational", "within its burn-rate thresholds")


def worst(states: Iterable[str]) -> str:
    return max(states, key=SEVERITY.index, default="operational")


def _day_bars(
    declarations: Sequence[Declaration], grouped: dict[tuple[str, str | None], list[Rollup]], days: Sequence[Period]
) -> list[dict[str, Any]]:
    """Per day: bad and total events of the service's SLOs, and bad ÷ allowed (each SLO's allowance)."""
    starts = [day.start for day in days]
    buckets: list[list[Rollup]] = [[] for _ in days]
    for declaration in declarations:
        rows = [
            row
            for row in grouped.get((declaration.name, production_subject(declaration).stage), [])
            if row.start < days[-1].end
        ]
        for index, inside in enumerate(in_days(rows, starts)):
            buckets[index] += inside
    bars = []
    for day, inside in zip(days, buckets, strict=True):
        bad = fsum(row.counted_bad_events or 0.0 for row in inside)
        total = fsum(row.counted_total_events or 0.0 for row in inside)
        allowed = fsum((row.counted_total_events or 0.0) * (100 - row.objective) / 100 for row in inside)
        bars.append(
            {
                "day": day.label,
                "events": total if inside else None,
                "badEvents": bad if inside else None,
                "consumed": (bad / allowed if allowed > 0 else 0.0) if inside else None,
            }
        )
    return bars


def status_page(
    fleet: Fleet,
    measurements: Sequence[Measurement],
    rows: Sequence[Rollup],
    at: datetime,
    *,
    name: str = "sloplane",
    incidents: Sequence[Incident] = (),
    read: Callable[[list[str]], Sequence[Rollup]] | None = None,
    include: Callable[[Declaration], bool] | None = None,
) -> dict[str, Any]:
    """The page as data: Statuspage's summary shape (`page`, `status`, `components`, `incidents`,
    `scheduled_maintenances`) with sloplane's own keys under `sloplane` (bars, uptime, why).

    `read` (SLO names → their rows) reads each service's rows when its bars are drawn, instead of taking
    `rows`: 90 days of 2,000 SLOs are 4.3 million rows, more than a page should hold at once. `include` keeps
    only some SLOs (the public page: those marked `statusPage.public`); a service with none left is not shown.
    """
    by_slo = {m.slo: m for m in measurements if m.slo in fleet and m.stage == production_subject(fleet[m.slo]).stage}
    services: dict[str, list[Declaration]] = {}
    for declaration in reported(fleet):
        if include is not None and not include(declaration):
            continue
        services.setdefault(declaration.spec.service, []).append(declaration)
    days = day_periods(at, DAYS, "UTC")
    grouped = by_subject(rows) if read is None else {}
    components: list[dict[str, Any]] = []
    for position, (service, declarations) in enumerate(sorted(services.items()), start=1):
        states = [slo_state(d, by_slo.get(d.name), at) for d in declarations]
        state = worst(s.state for s in states)
        own = grouped if read is None else by_subject(read([d.name for d in declarations]))
        bars = _day_bars(declarations, own, days)
        bad = fsum(bar["badEvents"] or 0.0 for bar in bars)
        total = fsum(bar["events"] or 0.0 for bar in bars)
        components.append(
            {
                "id": service,
                "name": service,
                "status": state,
                "created_at": days[0].start.isoformat(),
                "updated_at": at.isoformat(),
                "position": position,
                "description": "; ".join(f"{s.slo}: {s.why}" for s in states),
                "showcase": True,
                "start_date": days[0].label,
                "group_id": None,
                "page_id": name,
                "group": False,
                "only_show_if_degraded": False,
                "sloplane": {
                    "slos": [{"slo": s.slo, "state": s.state, "why": s.why} for s in states],
                    "uptime": None if total <= 0 else 1 - bad / total,
                    "days": bars,
                    "zones": sorted({slo_zone(d) for d in declarations}),
                },
            }
        )
    return {
        "page": {"id": name, "name": name, "url": "", "time_zone": "Etc/UTC", "updated_at": at.isoformat()},
        "status": page_indicator(components),
        "components": components,
        "incidents": [_incident(incident, at) for incident in incidents],
        "scheduled_maintenances": [],
    }


def page_indicator(components: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Statuspage's `status`: the indicator and description of the worst component's state."""
    indicator, description = INDICATOR[worst(str(component["status"]) for component in components)]
    return {"indicator": indicator, "description": description}


def narrowed(page: dict[str, Any], keep: Callable[[str], bool]) -> dict[str, Any]:
    """The page with only the components (services) `keep` admits, the indicator worked out again from those,
    and only the incidents touching them (an incident naming no service touches every one)."""
    components = [component for component in page["components"] if keep(str(component["id"]))]
    shown = {str(component["id"]) for component in components}
    incidents = []
    for incident in page["incidents"]:
        touched = [c for c in incident["components"] if c["id"] in shown]
        if touched or not incident["components"]:
            incidents.append({**incident, "components": touched or incident["components"]})
    return {**page, "status": page_indicator(components), "components": components, "incidents": incidents}


def _incident(incident: Incident, at: datetime) -> dict[str, Any]:
    """An open incident in Statuspage's incident shape (impact: a major one stops releases)."""
    return {
        "id": incident.id,
        "name": incident.title,
        "status": "investigating",
        "impact": "major" if incident.severity == "major" else "minor",
        "created_at": incident.opened_at.isoformat(),
        "updated_at": at.isoformat(),
        "shortlink": "",
        "components": [{"id": service, "name": service} for service in incident.services],
    }
