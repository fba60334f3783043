"""Datadog objects of an SLO as the API's request bodies: the SLO, its burn-rate and budget monitors,
corrections, downtimes and a dashboard (`datadog/<slo>.json`), and an overview (`datadog/overview.json`).

One file per SLO holds a list of requests, each `{"ref", "method", "path", "body"}`, in the order
they must be sent: the SLO first (one per stage of a staged SLO, its stage tags in the queries), then
what refers to it. A body that needs the id Datadog gives an SLO says `{{slo:<ref>}}` where the id goes
(`burn_rate("{{slo:checkout-availability}}")`, a correction's `slo_id`): whoever sends the requests
substitutes the id the SLO's request answered with. Nothing here calls Datadog.

How a declaration maps (what cannot be exact is a lint at its line, `declaration.datadog_limits`):
- the SLO: `type: metric` with good/total counts (`numerator` = total minus bad when the SLI counts bad
  events), or `time_slice` for threshold SLIs; the timeframe 7d/30d/90d (nearest when not exact); the
  target; a warning threshold halfway between the target and 100 when three decimals can say it;
  tags `service`, `team`, `tier`, `slo`, `stage`;
- one `slo alert` monitor per burn-rate alert that can fire, windows clamped into Datadog's 1h–48h
  keeping the budget share (`datadog_limits.monitor_windows`), priority 1 for a page and 3 for a
  ticket, the declared alert name first in its name, the declared alert labels (the tier's last) as
  tags, the message naming the runbook, the owners, the declared annotations and the receiver handle;
- an `error_budget` monitor when the gate refuses deployments below some budget remaining;
- maintenance (RRULE), one-off windows and emergency changes as corrections that take the time out of
  the budget, and downtimes that mute the SLO's monitors meanwhile (a correction does not mute).

The Pulumi components register the same requests as pulumi-datadog resources (`datadog_pulumi`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sloplane.core.budget import Tier
from sloplane.core.durations import format_duration
from sloplane.core.schedules import cron_recurrences
from sloplane.declaration.datadog_limits import (
    MonitorWindows,
    monitor_windows,
    page_priority,
    target_text,
    time_slice_seconds,
    timeframe,
    timeframe_period,
)
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.policy import RecurringWindow, TargetSystem
from sloplane.render import datadog_pulumi
from sloplane.render.datadog_dashboards import dashboard_request, overview_request
from sloplane.render.options import BundleOptions
from sloplane.render.registry import Child, Document, Renderer
from sloplane.semantics.datadog import datadog_queries
from sloplane.semantics.subjects import Fleet, FleetLike, Subject, subjects

FOLDER = "datadog"
RECURRENCE_ANCHOR = date(2024, 1, 1)
"""Recurring corrections and downtimes start at their first occurrence on or after this date: fixed,
so rendering is deterministic; the rule repeats from there."""

Request = dict[str, Any]
MONITOR_DEFAULTS: dict[str, bool] = {
    "notify_no_data": False,
    "notify_audit": False,
    "include_tags": True,
    "require_full_window": True,
}
"""Monitor options set explicitly, at the values the Terraform provider would send and the API echoes:
a default that changes upstream (provider or API) then shows as a change in review, not as drift.
`on_missing_data`, `no_data_timeframe`, `new_group_delay` and `evaluation_delay` stay unset: not for
SLO monitors, or the API fills them in itself."""


def slo_ref(subject: Subject) -> str:
    """The name a request's answer is known by: the SLO, or `<slo>/<stage>`."""
    return subject.key


def slo_placeholder(subject: Subject) -> str:
    """Where the id Datadog gives the SLO goes: `{{slo:checkout-availability/canary}}`."""
    return "{{slo:" + slo_ref(subject) + "}}"


def _tags(declaration: Declaration, subject: Subject) -> list[str]:
    spec = declaration.spec
    tags = [f"service:{spec.service}", f"team:{spec.owners.team}", f"tier:{spec.tier.value}", f"slo:{subject.slo}"]
    if subject.stage is not None:
        tags.append(f"stage:{subject.stage}")
    return tags


def _warning(target: float) -> float | None:
    """Halfway between the target and 100, when Datadog's three decimals can say it above the target."""
    warning = round(target + (100 - target) / 2, 3)
    return warning if target < warning < 100 else None


def _sli_body(declaration: Declaration, subject: Subject) -> dict[str, Any]:
    """`query` (good/total counts) for a metric SLO, or `sli_specification` for a threshold SLI."""
    sli = declaration.spec.sli
    if sli.threshold is not None and sli.threshold.query.datadog is not None:
        comparators = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
        return {
            "type": "time_slice",
            "sli_specification": {
                "time_slice": {
                    "comparator": comparators[sli.threshold.op.value],
                    "threshold": sli.threshold.value,
                    "query": {
                        "formulas": [{"formula": "query1"}],
                        "queries": [{"data_source": "metrics", "name": "query1", "query": sli.threshold.query.datadog}],
                    },
                    "query_interval_seconds": time_slice_seconds(declaration.spec),
                }
            },
        }
    stage = declaration.spec.stage(subject.stage) if subject.stage is not None else None
    queries = datadog_queries(sli, dict(stage.selector) if stage is not None else {})
    if queries is None:
        raise ValueError(f"{declaration.name}: no Datadog event counts (the declaration checks refuse this)")
    numerator = queries.good if queries.good is not None else f"{queries.total} - {queries.errors}"
    return {"type": "metric", "query": {"numerator": numerator, "denominator": queries.total}}


def slo_request(declaration: Declaration, subject: Subject) -> Request:
    """The SLO of one subject as `POST /api/v1/slo` takes it."""
    spec = declaration.spec
    target = target_text(subject.objective)
    if target is None:
        raise ValueError(f"{declaration.name}: target {subject.objective:g} has more than three decimals")
    threshold: dict[str, Any] = {"timeframe": timeframe(spec), "target": float(target)}
    warning = _warning(float(target))
    if warning is not None:
        threshold["warning"] = warning
    name = declaration.name if subject.stage is None else f"{declaration.name} [{subject.stage}]"
    body: dict[str, Any] = {"name": name, **_sli_body(declaration, subject)}
    body["thresholds"] = [threshold]
    body["tags"] = _tags(declaration, subject)
    body["description"] = spec.description or f"{spec.service}: {spec.window.describe()} objective by sloplane"
    return {"ref": slo_ref(subject), "method": "POST", "path": "/api/v1/slo", "body": body}


def _message(declaration: Declaration, what: str, tier: Tier | None = None) -> str:
    """What a notification says: the burn, where to look, who owns it, the declared annotations (the SLO's,
    then the tier's) and the handle it goes to."""
    spec = declaration.spec
    lines = [f"{what} on SLO {declaration.name} ({spec.service})."]
    if spec.alerting.runbook:
        lines.append(f"Runbook: {spec.alerting.runbook}")
    lines.append(f"Owners: team {spec.owners.team}")
    annotations = {**spec.alerting.annotations, **(spec.alerting.tier_alert(tier).annotations if tier else {})}
    lines.extend(f"{key}: {value}" for key, value in annotations.items())
    handle = spec.alerting.routing.background or spec.alerting.routing.deployment
    if handle:
        lines.append(handle if handle.startswith("@") else f"@{handle}")
    return "\n".join(lines)


def _number_text(value: float) -> str:
    """A number as the query prints it, exactly (`14.4`, `1.5`, `0.333333333333`): the monitor's
    `critical` threshold is this same number, and Datadog refuses the two when they differ."""
    return format(Decimal(repr(value)).normalize(), "f")


def _burn_monitor(declaration: Declaration, subject: Subject, windows: MonitorWindows) -> Request:
    alert = windows.alert
    factor = _number_text(windows.factor)
    long_text, short_text = format_duration(windows.long_window), format_duration(windows.short_window)
    query = (
        f'burn_rate("{slo_placeholder(subject)}").over("{timeframe(declaration.spec)}")'
        f'.long_window("{long_text}").short_window("{short_text}") > {factor}'
    )
    moved = f" (sloplane's {alert.name} at {alert.factor:g}, within Datadog's 1h-48h)" if windows.moved else ""
    what = f"Burn rate above {factor} over {long_text}/{short_text}{moved}"
    tier = alert.tier.value
    alerting = declaration.spec.alerting
    named = alerting.alert_name(alert.tier, "")
    labels = {"severity": tier, **alerting.labels, **alerting.tier_alert(alert.tier).labels}
    body = {
        "name": (f"{named} " if named else "")
        + f"[{tier}] {slo_ref(subject)}: burn rate above {factor} over {long_text}/{short_text}",
        "type": "slo alert",
        "query": query,
        "message": _message(declaration, what, alert.tier),
        "tags": [*_tags(declaration, subject), *(f"{key}:{value}" for key, value in labels.items())],
        "priority": page_priority(alert.tier),
        "options": {"thresholds": {"critical": float(factor)}, **MONITOR_DEFAULTS},
    }
    ref = f"{slo_ref(subject)}/{tier}-{long_text}"
    return {"ref": ref, "method": "POST", "path": "/api/v1/monitor", "body": body}


def _budget_monitor(declaration: Declaration, subject: Subject) -> Request | None:
    """The gate's minimum budget remaining as a monitor on the budget consumed, when there is one."""
    remaining = declaration.spec.effective_gate.min_budget_remaining
    if remaining <= 0:
        return None
    consumed = round(100 - remaining, 3)
    body = {
        "name": f"{slo_ref(subject)}: error budget below {remaining:g}% (deployments refused)",
        "type": "slo alert",
        "query": f'error_budget("{slo_placeholder(subject)}").over("{timeframe(declaration.spec)}") > {consumed:g}',
        "message": _message(declaration, f"More than {consumed:g}% of the error budget consumed"),
        "tags": [*_tags(declaration, subject), "severity:ticket"],
        "priority": 3,
        "options": {"thresholds": {"critical": consumed}, **MONITOR_DEFAULTS},
    }
    return {"ref": f"{slo_ref(subject)}/budget", "method": "POST", "path": "/api/v1/monitor", "body": body}


def monitor_requests(declaration: Declaration, subject: Subject) -> list[Request]:
    """Burn-rate monitors of every enabled tier that can fire, then the budget monitor."""
    spec = declaration.spec
    tiers = set(spec.alerting.enabled_tiers())
    period = timeframe_period(spec)
    requests: list[Request] = []
    for alert in spec.burn_rate_alerts():
        if alert.tier not in tiers or not alert.can_fire(subject.objective):
            continue
        monitor = _burn_monitor(declaration, subject, monitor_windows(alert, period))
        # two tiers clamped into Datadog's 48h at the same budget share are one monitor, not two
        if all(request["body"]["query"] != monitor["body"]["query"] for request in requests):
            requests.append(monitor)
    budget = _budget_monitor(declaration, subject)
    return [*requests, *([budget] if budget is not None else [])]


def _epoch(instant: datetime) -> int:
    return int(instant.astimezone(UTC).timestamp())


def _correction(subject: Subject, category: str, description: str, **timing: Any) -> Request:
    attributes = {"slo_id": slo_placeholder(subject), "category": category, "description": description, **timing}
    body = {"data": {"type": "correction", "attributes": attributes}}
    return {"ref": None, "method": "POST", "path": "/api/v1/slo/correction", "body": body}


def _downtime(subject: Subject, message: str, schedule: dict[str, Any]) -> Request:
    """Mutes the subject's monitors (found by their tags) while an exclusion lasts."""
    tags = [f"slo:{subject.slo}", *([f"stage:{subject.stage}"] if subject.stage else [])]
    attributes = {"scope": "*", "monitor_identifier": {"monitor_tags": tags}, "message": message, "schedule": schedule}
    body = {"data": {"type": "downtime", "attributes": attributes}}
    return {"ref": None, "method": "POST", "path": "/api/v2/downtime", "body": body}


def _applies(stages: Sequence[str], subject: Subject) -> bool:
    return not stages or subject.stage is None or subject.stage in stages


def _maintenance(window: RecurringWindow, subject: Subject) -> list[Request]:
    """A recurring window: a correction and a downtime per recurrence of its cron schedule."""
    zone = ZoneInfo(window.time_zone)
    description = f"maintenance {window.name} ({window.schedule}, {format_duration(window.duration)})"
    requests: list[Request] = []
    for recurrence in cron_recurrences(window.schedule):
        start = recurrence.first_start(RECURRENCE_ANCHOR)
        timing = {
            "start": _epoch(start.replace(tzinfo=zone)),
            "duration": int(window.duration.total_seconds()),
            "rrule": recurrence.rule,
            "timezone": window.time_zone,
        }
        requests.append(_correction(subject, "Scheduled Maintenance", description, **timing))
        recurring = {
            "rrule": recurrence.rule,
            "duration": _downtime_duration(window.duration),
            "start": start.isoformat(timespec="minutes"),
        }
        requests.append(_downtime(subject, description, {"timezone": window.time_zone, "recurrences": [recurring]}))
    return requests


def exclusion_requests(declaration: Declaration, subject: Subject) -> list[Request]:
    """Corrections (budget) and downtimes (monitors) for the exclusions that apply to the subject."""
    exclusions = declaration.spec.exclusions
    requests: list[Request] = []
    for window in exclusions.maintenance:
        if _applies(window.stages, subject):
            requests.extend(_maintenance(window, subject))
    for one_off in exclusions.windows:
        if not _applies(one_off.stages, subject):
            continue
        description = f"{one_off.name}: {one_off.reason}"
        timing = {"start": _epoch(one_off.start), "end": _epoch(one_off.end), "timezone": "UTC"}
        requests.append(_correction(subject, "Scheduled Maintenance", description, **timing))
        requests.append(_downtime(subject, description, _one_time(one_off.start, one_off.end)))
    for change in exclusions.emergency_changes:
        approval = f"approved by {change.approver}" + (f", {change.ticket}" if change.ticket else "")
        timing = {"start": _epoch(change.start), "end": _epoch(change.end), "timezone": "UTC"}
        requests.append(_correction(subject, "Other", f"emergency change: {change.reason} ({approval})", **timing))
    return requests


def _one_time(start: datetime, end: datetime) -> dict[str, str]:
    """A one-time downtime schedule: ISO 8601 in UTC with a zero offset, as the API requires."""
    return {key: value.astimezone(UTC).isoformat(timespec="seconds") for key, value in (("start", start), ("end", end))}


def _downtime_duration(duration: timedelta) -> str:
    """`2h`, `90m`: the one unit Datadog's recurring downtimes take."""
    minutes = int(duration.total_seconds() // 60)
    for unit, size in (("w", 10080), ("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def datadog_requests(declaration: Declaration) -> list[Request]:
    """Every request of one SLO, in the order to send them (each SLO before what refers to it), its dashboard last."""
    requests: list[Request] = []
    for subject in subjects(declaration):
        requests.append(slo_request(declaration, subject))
        requests.extend(monitor_requests(declaration, subject))
        requests.extend(exclusion_requests(declaration, subject))
    placeholders = {subject.key: slo_placeholder(subject) for subject in subjects(declaration)}
    requests.append(dashboard_request(declaration, placeholders))
    return requests


def _documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    del fleet, options  # a Datadog SLO stands alone: no fleet-wide objects yet
    if declaration.spec.lifecycle is Lifecycle.ARCHIVED:
        return {}
    return {f"{FOLDER}/{declaration.name}.json": ("json", {"requests": datadog_requests(declaration)})}


def _fleet_documents(declarations: Sequence[Declaration], fleet: Fleet, options: BundleOptions) -> dict[str, Document]:
    del fleet, options  # the overview lists SLOs by their tags: nothing else is needed
    alive = [declaration for declaration in declarations if declaration.spec.lifecycle is not Lifecycle.ARCHIVED]
    if not alive:
        return {}
    return {f"{FOLDER}/overview.json": ("json", {"requests": [overview_request(alive)]})}


def _children(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> list[Child]:
    """The Pulumi children: the same requests the file holds, as pulumi-datadog resources."""
    del fleet, options  # as for the files
    return datadog_pulumi.slo_children(declaration, datadog_requests(declaration))


def _fleet_children(declarations: Sequence[Declaration], fleet: Fleet, options: BundleOptions) -> list[Child]:
    del fleet, options  # as for the overview file
    return datadog_pulumi.overview_children(declarations)


RENDERER = Renderer(
    target=TargetSystem.DATADOG,
    folders=(FOLDER,),
    slo_documents=_documents,
    fleet_documents=_fleet_documents,
    child_keys=datadog_pulumi.CHILD_KEYS,
    slo_children=_children,
    fleet_children=_fleet_children,
)
