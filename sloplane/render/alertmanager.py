"""An Alertmanager configuration for every declaration: routes, inhibition and maintenance muting.

The burn-rate alerts (`sloplane.render.prometheus`) all share one name and carry `slo`, `service`,
`stage` (when staged), `severity` (page or ticket), `team`, the window pair, and `during_deployment`
when the SLO declares a deployment signal. This module turns the declarations into the routing that
reads those labels:

    route (receiver: the default, group_by: alertname, slo, stage, severity)
    └── team="payments"                          receiver: the default
        └── slo="checkout-availability"          receiver: routing.background (else the default)
            ├── during_deployment="true"         receiver: routing.deployment
            │   └── stage="canary"               (only for stage-scoped windows, see below)
            └── stage="canary"

Teams and SLOs come in name order, so the same declarations always give the same configuration.
Every non-root route says `continue: false`: an alert is delivered once, by its SLO's route.

Maintenance windows (`exclusions.maintenance`, cron + duration + time zone) and one-off windows
(`exclusions.windows`) become top-level `time_intervals` named `<slo>-<window>`, and the SLO's routes
list them in `mute_time_intervals`. Alertmanager does not inherit mute intervals from a parent
route (each route's own list replaces its parent's), so every route that can be the final match
names them itself. A window scoped to stages mutes only alerts of those stages: such an SLO gets one
route per scoped stage (matcher `stage="..."`, same receiver as its parent) naming the SLO-wide
windows plus that stage's, under both the deployment route and the SLO route; alerts of other
stages fall through to the parent, which names the SLO-wide windows only.

What is not muted, on purpose:

- Emergency changes (`exclusions.emergencyChanges`): they are recorded after the fact, for the
  budget and for audits. By then the alerts have fired; muting a past interval does nothing, and
  during an emergency the alerts are what the responders need.
- Gate freezes (`gate.freezes`): a freeze stops releases, not incidents.

Inhibition: one rule for all SLOs. A firing page silences the ticket of the same SLO and stage
(`equal: [slo, stage]`), since both describe the same burn and the page is the louder of the two.

Receivers are stubs (`{name: ...}`), one for the default and one per receiver a declaration names,
so that the configuration passes `amtool check-config` on its own. The operator merges the real
integrations (PagerDuty, Slack, ...) into these entries by name; sloplane knows no credentials.

SLOs that are archived, that do not list `alertmanager` in `targets`, or that enable no alert tier
get no route: their alerts do not exist, or are routed by whoever renders them.

Converting a cron schedule (see `cron_time_intervals`): `sloplane.core.schedules` works out the
wall-clock time a window covers as slots (times of day x weekdays x days of the month x months),
with the same arithmetic the evaluator uses to take maintenance out of the budget; its notes say how
windows past midnight, month ends, `L` and `MON#2` are handled. Each slot becomes one entry of the
time interval, located in the window's time zone: Alertmanager matches wall-clock time in a
location, which is how cron fires, so a schedule keeps its meaning across daylight-saving changes.
Random (`R`) cron fields have no fixed time to mute and are refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sloplane.core import names
from sloplane.core.budget import Tier
from sloplane.core.schedules import FULL_DAY, Slot, UnsupportedScheduleError, cron_slots, window_slots
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.policy import OneOffWindow, RecurringWindow, TargetSystem
from sloplane.render.options import BundleOptions
from sloplane.render.registry import Document, Renderer
from sloplane.semantics.alerts import AlertIdentity, alert_identity
from sloplane.semantics.subjects import Fleet, FleetLike

# `UnsupportedScheduleError` is defined in `sloplane.core.schedules`; named here as what `cron_time_intervals` raises.
__all__ = [
    "DEFAULT_RECEIVER",
    "DEPLOYMENT_LABEL",
    "GROUP_BY",
    "MONTHS",
    "WEEKDAYS",
    "Muting",
    "UnsupportedScheduleError",
    "alertmanager_config",
    "cron_time_intervals",
    "inhibit_rules",
    "matcher",
    "render_slot",
    "slo_route",
    "window_time_intervals",
]

DEFAULT_RECEIVER = "sloplane-default"
GROUP_BY = ("alertname", "slo", "stage", "severity")
DEPLOYMENT_LABEL = "during_deployment"

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
"""Indexed as cron numbers them (0 = Sunday); Alertmanager ranges cannot wrap past Saturday."""
MONTHS = (
    "",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
"""Indexed 1-12; spelled out here because `calendar.month_name` follows the process locale."""


# ---------------------------------------------------------------------------------------------
# Slots (`sloplane.core.schedules`) as Alertmanager time intervals
# ---------------------------------------------------------------------------------------------


def _runs(values: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted integers: 1 2 3 5 -> (1, 3), (5, 5)."""
    runs: list[tuple[int, int]] = []
    for value in sorted(values):
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _ranges(values: Iterable[int], label: Sequence[str] | None = None) -> list[str]:
    """`27:30`, `monday:friday`; single values alone. Labels name the values when given."""

    def text(value: int) -> str:
        return label[value] if label is not None else str(value)

    return [text(start) if start == end else f"{text(start)}:{text(end)}" for start, end in _runs(values)]


def _days_of_month(days: frozenset[int]) -> list[str]:
    """Positive days first, then days counted from the month's end (a range cannot mix the two)."""
    return _ranges(day for day in days if day > 0) + _ranges(day for day in days if day < 0)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def render_slot(slot: Slot, location: str) -> dict[str, Any]:
    """One `time_intervals` entry; fields that constrain nothing are left out."""
    entry: dict[str, Any] = {}
    if slot.times != FULL_DAY:
        entry["times"] = [{"start_time": _clock(start), "end_time": _clock(end)} for start, end in slot.times]
    if slot.weekdays is not None:
        entry["weekdays"] = _ranges(slot.weekdays, WEEKDAYS)
    if slot.days_of_month is not None:
        entry["days_of_month"] = _days_of_month(slot.days_of_month)
    if slot.months is not None:
        entry["months"] = _ranges(slot.months, MONTHS)
    if slot.years is not None:
        entry["years"] = _ranges(slot.years)
    entry["location"] = location
    return entry


def cron_time_intervals(schedule: str, duration: timedelta, time_zone: str = "UTC") -> list[dict[str, Any]]:
    """Alertmanager `time_intervals` entries covering a window that opens on a cron schedule.

    `0 3 * * SUN` + 1h in Europe/Berlin -> `[{times: [03:00-04:00], weekdays: [sunday], location:
    Europe/Berlin}]`. See `sloplane.core.schedules` for midnight, long windows and month ends.
    """
    return [render_slot(slot, time_zone) for slot in cron_slots(schedule, duration)]


def window_time_intervals(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Alertmanager `time_intervals` entries for a one-off window, in UTC (its datetimes are aware)."""
    return [render_slot(slot, "UTC") for slot in window_slots(start, end)]


# ---------------------------------------------------------------------------------------------
# Routes, inhibition, receivers
# ---------------------------------------------------------------------------------------------


def matcher(label: str, value: str) -> str:
    """`label="value"`, the value quoted and escaped as Alertmanager's matcher syntax expects."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{label}="{escaped}"'


@dataclass(frozen=True)
class Muting:
    """The time intervals muting one SLO: everywhere, and per stage for stage-scoped windows."""

    everywhere: tuple[str, ...] = ()
    by_stage: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class _Interval:
    """A window as a named time interval, with the stages it is scoped to (none: all)."""

    name: str
    stages: tuple[str, ...]
    entries: list[dict[str, Any]]


def _window_intervals(declaration: Declaration) -> list[tuple[str, list[str], list[dict[str, Any]]]]:
    """(window name, stages, entries) of every maintenance and one-off window, in declaration order."""
    exclusions = declaration.spec.exclusions
    found: list[tuple[str, list[str], list[dict[str, Any]]]] = []
    for recurring in exclusions.maintenance:
        found.append((recurring.name, list(recurring.stages), _recurring_entries(recurring)))
    for one_off in exclusions.windows:
        found.append((one_off.name, list(one_off.stages), _one_off_entries(one_off)))
    return found


def _recurring_entries(window: RecurringWindow) -> list[dict[str, Any]]:
    return cron_time_intervals(window.schedule, window.duration, window.time_zone)


def _one_off_entries(window: OneOffWindow) -> list[dict[str, Any]]:
    return window_time_intervals(window.start, window.end)


def _unique(name: str, taken: set[str]) -> str:
    """The name, or with `-2`, `-3`... when another window already has it (names must be unique)."""
    candidate, counter = name, 1
    while candidate in taken:
        counter += 1
        candidate = f"{name}-{counter}"
    taken.add(candidate)
    return candidate


def _slo_intervals(declaration: Declaration, taken: set[str]) -> list[_Interval]:
    """An SLO's windows as named time intervals; windows that never occur are left out."""
    return [
        _Interval(_unique(f"{declaration.name}-{window}", taken), tuple(stages), entries)
        for window, stages, entries in _window_intervals(declaration)
        if entries
    ]


def _muting(declaration: Declaration, intervals: Sequence[_Interval]) -> Muting:
    """Which intervals mute which alerts: stage-scoped ones only alerts of their stages."""
    everywhere = tuple(interval.name for interval in intervals if not interval.stages)
    scoped = {stage for interval in intervals for stage in interval.stages}
    declared = [stage.name for stage in declaration.spec.stages]
    order = [stage for stage in declared if stage in scoped] + sorted(scoped - set(declared))
    by_stage = tuple(
        (stage, everywhere + tuple(interval.name for interval in intervals if stage in interval.stages))
        for stage in order
    )
    return Muting(everywhere, by_stage)


def _route(matchers: list[str], receiver: str, mutes: Sequence[str] = (), routes: Sequence[Any] = ()) -> dict[str, Any]:
    route: dict[str, Any] = {"matchers": matchers, "receiver": receiver, "continue": False}
    if mutes:
        route["mute_time_intervals"] = list(mutes)
    if routes:
        route["routes"] = list(routes)
    return route


def _stage_routes(receiver: str, muting: Muting) -> list[dict[str, Any]]:
    """One route per stage with scoped windows; it exists only to name that stage's mute intervals."""
    return [_route([matcher("stage", stage)], receiver, mutes) for stage, mutes in muting.by_stage]


def slo_route(declaration: Declaration, muting: Muting, fallback: str = DEFAULT_RECEIVER) -> dict[str, Any]:
    """An SLO's route: deployment breaches first (when declared), the background receiver for the rest."""
    routing = declaration.spec.alerting.routing
    background = routing.background or fallback
    children: list[dict[str, Any]] = []
    if routing.deployment:
        children.append(
            _route(
                [matcher(DEPLOYMENT_LABEL, "true")],
                routing.deployment,
                muting.everywhere,
                _stage_routes(routing.deployment, muting),
            )
        )
    children += _stage_routes(background, muting)
    return _route([matcher("slo", declaration.name)], background, muting.everywhere, children)


def _routed(declaration: Declaration) -> bool:
    """Whether an SLO gets a route: alive, rendered for Alertmanager, and raising some alert."""
    spec = declaration.spec
    return (
        spec.lifecycle is not Lifecycle.ARCHIVED
        and TargetSystem.ALERTMANAGER in spec.targets
        and bool(spec.alerting.enabled_tiers())
    )


def inhibit_rules(declarations: Iterable[Declaration] = ()) -> list[dict[str, Any]]:
    """A page silences the ticket of the same SLO and stage: both describe the same burn.

    One rule per distinct (page alert, ticket alert) pair of names and severities: the default pair
    always, and those SLOs that name their tiers' alerts or give them their own severity.
    """
    default = (AlertIdentity(names.ALERT, Tier.PAGE.value), AlertIdentity(names.ALERT, Tier.TICKET.value))
    pairs = {default} | {
        (alert_identity(declaration, Tier.PAGE), alert_identity(declaration, Tier.TICKET))
        for declaration in declarations
    }
    return [
        {
            "source_matchers": [matcher("alertname", page.name), matcher("severity", page.severity)],
            "target_matchers": [matcher("alertname", ticket.name), matcher("severity", ticket.severity)],
            "equal": ["slo", "stage"],
        }
        for page, ticket in [default, *sorted(pairs - {default})]
    ]


def _receivers(declarations: Iterable[Declaration], default_receiver: str) -> list[dict[str, Any]]:
    """Placeholder receivers: the default and every one a declaration routes to, once each, sorted."""
    wanted = {default_receiver}
    for declaration in declarations:
        routing = declaration.spec.alerting.routing
        wanted.update(name for name in (routing.deployment, routing.background) if name)
    return [{"name": name} for name in sorted(wanted)]


def alertmanager_config(
    declarations: Sequence[Declaration], default_receiver: str = DEFAULT_RECEIVER
) -> dict[str, Any]:
    """A complete Alertmanager configuration for all declarations (see the module notes).

    Pure and deterministic: teams and SLOs in name order, intervals in SLO then declaration order.
    """
    routed = sorted((d for d in declarations if _routed(d)), key=lambda declaration: declaration.name)
    taken: set[str] = set()
    time_intervals: list[dict[str, Any]] = []
    by_team: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for declaration in routed:
        intervals = _slo_intervals(declaration, taken)
        time_intervals += [{"name": interval.name, "time_intervals": interval.entries} for interval in intervals]
        route = slo_route(declaration, _muting(declaration, intervals), default_receiver)
        by_team[declaration.spec.owners.team].append(route)
    team_routes = [
        _route([matcher("team", team)], default_receiver, routes=routes) for team, routes in sorted(by_team.items())
    ]
    return {
        "route": {"receiver": default_receiver, "group_by": list(GROUP_BY), "routes": team_routes},
        "inhibit_rules": inhibit_rules(routed),
        "receivers": _receivers(routed, default_receiver),
        "time_intervals": time_intervals,
    }


def _no_documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    return {}


def _config_documents(routed: Sequence[Declaration], fleet: Fleet, options: BundleOptions) -> dict[str, Document]:
    """One configuration for the fleet, written even when no SLO is routed (its default route stays)."""
    return {"alertmanager/alertmanager.yaml": ("yaml", alertmanager_config(routed))}


RENDERER = Renderer(
    TargetSystem.ALERTMANAGER,
    folders=("alertmanager",),
    slo_documents=_no_documents,
    fleet_documents=_config_documents,
)
