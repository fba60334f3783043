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

Converting a cron schedule (see `cron_time_intervals`): Alertmanager matches wall-clock time in a
location, which is how cron fires, so a schedule keeps its meaning across daylight-saving changes;
the duration is applied in wall-clock time as well (a window that spans a change is an hour longer
or shorter in absolute time). Each start time of day (every minute x hour combination) gives one
`times` range; a window that runs past midnight continues on the following day(s), full days in
between, with the day fields shifted by one per day:

- weekdays shift exactly (Friday 22:30 + 4h: Friday 22:30-24:00 and Saturday 00:00-02:30);
- days of the month and months shift through a calendar of a leap year, so every day a schedule
  can name exists: the 31st of January + 1 day is the 1st of February, the 30th of April + 1 day the
  1st of May. The approximation is February: a window crossing the end of February 28 is continued
  on February 29, which in common years does not exist, so that part (on March 1) is not muted.
  It errs towards alerting, never towards silencing an unplanned hour;
- the last day of a month (`L`) and the nth weekday (`MON#2`) become negative or ranged days of the
  month (`-1`, `8:14`), which shift exactly;
- when both the day of month and the day of week are restricted, cron fires on either, so each
  gives its own entries (entries of a time interval are alternatives).

Entries that differ in one field only are merged (Saturday and Sunday, days 27 to 30), so the output
stays short. Random (`R`) cron fields have no fixed time to mute and are refused.
"""

from __future__ import annotations

import calendar
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from croniter import croniter

from sloplane.core import names
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.policy import OneOffWindow, RecurringWindow, Target

DEFAULT_RECEIVER = "sloplane-default"
GROUP_BY = ("alertname", "slo", "stage", "severity")
DEPLOYMENT_LABEL = "during_deployment"

MINUTES_PER_DAY = 24 * 60
FULL_DAY = ((0, MINUTES_PER_DAY),)
"""`times` covering the whole day: written as no `times` at all."""
REFERENCE_YEAR = 2000
"""A leap year: every day a cron schedule can name exists in it (see the module notes on February)."""
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
ALL_WEEKDAYS = frozenset(range(7))
ALL_DAYS = frozenset(range(1, 32))
ALL_MONTHS = frozenset(range(1, 13))
LAST_WEEK = tuple(range(-7, 0))
"""Days of the month of the last weekday of a kind (`5L`): the last seven."""
_RANDOM_FIELD = re.compile(r"(?:^|,)[rh](?:$|[(/,])", re.IGNORECASE)


class UnsupportedScheduleError(ValueError):
    """A cron schedule whose firing times are not fixed (random or hashed fields)."""


@dataclass(frozen=True)
class Slot:
    """One entry of an Alertmanager time interval: the conjunction of its fields; None is "any"."""

    times: tuple[tuple[int, int], ...] = FULL_DAY
    """Half-open minute ranges within the day, sorted and merged."""
    weekdays: frozenset[int] | None = None
    days_of_month: frozenset[int] | None = None
    months: frozenset[int] | None = None
    years: frozenset[int] | None = None


def _slot(
    times: Iterable[tuple[int, int]] = FULL_DAY,
    weekdays: Iterable[int] | None = None,
    days_of_month: Iterable[int] | None = None,
    months: Iterable[int] | None = None,
    years: Iterable[int] | None = None,
) -> Slot:
    """A slot in normal form, so that equal meanings compare equal: full sets become None."""
    return Slot(
        times=_merge_ranges(times),
        weekdays=_unless_full(weekdays, ALL_WEEKDAYS),
        days_of_month=_unless_full(days_of_month, ALL_DAYS),
        months=_unless_full(months, ALL_MONTHS),
        years=None if years is None else frozenset(years),
    )


def _unless_full(values: Iterable[int] | None, full: frozenset[int]) -> frozenset[int] | None:
    """The values as a set, or None when they cover every possible value."""
    if values is None:
        return None
    chosen = frozenset(values)
    return None if chosen >= full else chosen


def _merge_ranges(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, with overlapping and touching ranges joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


_FULL_SETS: dict[str, frozenset[int] | None] = {
    "weekdays": ALL_WEEKDAYS,
    "days_of_month": ALL_DAYS,
    "months": ALL_MONTHS,
    "years": None,
}
"""What each set field means when complete (None: it never is)."""


def _union(first: Slot, second: Slot, field: str) -> Slot:
    """Two slots that differ in `field` only, as one: the union of that field ("any" absorbs)."""
    if field == "times":
        return replace(first, times=_merge_ranges((*first.times, *second.times)))
    mine: frozenset[int] | None = getattr(first, field)
    theirs: frozenset[int] | None = getattr(second, field)
    joined = None if mine is None or theirs is None else mine | theirs
    full = _FULL_SETS[field]
    value = None if joined is None or (full is not None and joined >= full) else joined
    changes: dict[str, Any] = {field: value}
    return replace(first, **changes)


_SLOT_FIELDS = tuple(field.name for field in fields(Slot))


def merge_slots(slots: Iterable[Slot]) -> list[Slot]:
    """Fewer entries, same times: slots equal but for one field are joined until none are.

    Each slot is a product of its fields, so two that differ in one field only are exactly the
    product with that field's union; the merge never widens what is muted.
    """
    merged = list(dict.fromkeys(slots))
    changed = True
    while changed:
        changed = False
        for field in _SLOT_FIELDS:
            groups: dict[tuple[object, ...], Slot] = {}
            for slot in merged:
                key = tuple(None if name == field else getattr(slot, name) for name in _SLOT_FIELDS)
                groups[key] = _union(groups[key], slot, field) if key in groups else slot
            changed = changed or len(groups) < len(merged)
            merged = list(groups.values())
    return sorted(merged, key=_slot_order)


def _slot_order(slot: Slot) -> tuple[tuple[int, ...], ...]:
    def key(values: frozenset[int] | None) -> tuple[int, ...]:
        return () if values is None else tuple(sorted(values, key=lambda day: (day < 0, day)))

    flat_times = tuple(minute for span in slot.times for minute in span)
    return (key(slot.years), key(slot.months), key(slot.days_of_month), key(slot.weekdays), flat_times)


# ---------------------------------------------------------------------------------------------
# Rendering slots as Alertmanager YAML values
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


# ---------------------------------------------------------------------------------------------
# Cron schedules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CronDays:
    """The days a cron schedule fires on; None is an unrestricted (`*`) field."""

    days_of_month: tuple[int, ...] | None
    """1-31, or -1 for the last day (`L`)."""
    months: tuple[int, ...] | None
    weekdays: tuple[int, ...] | None
    """0 = Sunday."""
    nth: tuple[tuple[int, tuple[int, ...]], ...] = ()
    """Weekday -> days of the month it is restricted to (`MON#2`: 8-14; `5L`: the last seven days)."""

    def weekday_days(self, weekday: int) -> tuple[int, ...] | None:
        """The days of the month a weekday is limited to by an nth-weekday field, if any."""
        return next((days for day, days in self.nth if day == weekday), None)


def _field(values: Sequence[int | str]) -> tuple[int, ...] | None:
    """An expanded cron field: None for `*`, the last day (`l`) as -1."""
    if list(values) == ["*"]:
        return None
    return tuple(sorted(-1 if value == "l" else int(value) for value in values))


def _nth_days(occurrences: Iterable[int | str]) -> tuple[int, ...]:
    """Days of the month of the nth weekday of a kind: the 2nd Monday falls on the 8th-14th."""
    days: set[int] = set()
    for occurrence in occurrences:
        if occurrence == "l":
            days.update(LAST_WEEK)
        else:
            nth = int(occurrence)
            days.update(range((nth - 1) * 7 + 1, min(nth * 7, 31) + 1))
    return tuple(sorted(days))


def parse_cron(schedule: str) -> tuple[tuple[int, ...], CronDays]:
    """Start times (minutes after midnight) and firing days of a five-field cron schedule."""
    if any(_RANDOM_FIELD.search(part) for part in schedule.split()):
        raise UnsupportedScheduleError(f"'{schedule}': random or hashed fields fire at no fixed time to mute")
    expanded, nth = croniter.expand(schedule)
    minutes_field, hours_field, days_field, months_field, weekdays_field = expanded
    minutes = _field(minutes_field) or tuple(range(60))
    hours = _field(hours_field) or tuple(range(24))
    starts = tuple(sorted(hour * 60 + minute for hour in hours for minute in minutes))
    days = CronDays(
        days_of_month=_field(days_field),
        months=_field(months_field),
        weekdays=_field(weekdays_field),
        nth=tuple((weekday, _nth_days(occurrences)) for weekday, occurrences in sorted(nth.items())),
    )
    return starts, days


def day_segments(starts: Iterable[int], duration: timedelta) -> dict[int, tuple[tuple[int, int], ...]]:
    """Minute ranges per day after the firing day (0: that day), for windows opening at `starts`.

    A window past midnight continues on the next day from 00:00; one longer than a day fills the
    days in between. Durations are counted in whole minutes, rounded up: Alertmanager's resolution.
    """
    length = max(1, math.ceil(duration / timedelta(minutes=1)))
    by_day: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for start in starts:
        end = start + length
        for day in range(end // MINUTES_PER_DAY + 1):
            offset = day * MINUTES_PER_DAY
            low, high = max(start, offset), min(end, offset + MINUTES_PER_DAY)
            if low < high:
                by_day[day].append((low - offset, high - offset))
    return {day: _merge_ranges(ranges) for day, ranges in sorted(by_day.items())}


def _shift_day(month: int, day: int, shift: int) -> tuple[int, int] | None:
    """(month, day) `shift` days later, in the reference leap year; None if the day does not exist.

    Days counted from the month's end (-1) stay so while they remain in the month, which is exact
    for every month length.
    """
    length = calendar.monthrange(REFERENCE_YEAR, month)[1]
    if day < 0 and day + shift < 0:
        return month, day + shift
    actual = length + 1 + day if day < 0 else day
    if not 1 <= actual <= length:
        return None
    later = date(REFERENCE_YEAR, month, actual) + timedelta(days=shift)
    return later.month, later.day


def _shifted_days(
    months: tuple[int, ...] | None, days: Iterable[int] | None, shift: int
) -> list[tuple[frozenset[int], frozenset[int] | None]]:
    """Months and days of the month `shift` days after the given ones, months with equal days grouped."""
    chosen_days = tuple(days) if days is not None else tuple(sorted(ALL_DAYS))
    by_month: dict[int, set[int]] = defaultdict(set)
    for month in months or sorted(ALL_MONTHS):
        for day in chosen_days:
            shifted = _shift_day(month, day, shift)
            if shifted is not None:
                by_month[shifted[0]].add(shifted[1])
    grouped: dict[frozenset[int] | None, set[int]] = defaultdict(set)
    for month, month_days in sorted(by_month.items()):
        whole_month = month_days >= set(range(1, calendar.monthrange(REFERENCE_YEAR, month)[1] + 1))
        grouped[None if whole_month else frozenset(month_days)].add(month)
    return [(frozenset(group_months), group_days) for group_days, group_months in grouped.items()]


def _weekday_slots(days: CronDays, shift: int, times: tuple[tuple[int, int], ...]) -> list[Slot]:
    """Slots of the day-of-week part, `shift` days after the firing day."""
    slots: list[Slot] = []
    for weekday in days.weekdays or ():
        later = (weekday + shift) % 7
        limited = days.weekday_days(weekday)
        if limited is None and days.months is None:
            slots.append(_slot(times, weekdays=[later]))
            continue
        for months, month_days in _shifted_days(days.months, limited, shift):
            slots.append(_slot(times, weekdays=[later], days_of_month=month_days, months=months))
    return slots


def _month_day_slots(days: CronDays, shift: int, times: tuple[tuple[int, int], ...]) -> list[Slot]:
    """Slots of the day-of-month part (every day when neither day field is restricted)."""
    if days.days_of_month is None and days.months is None:
        return [_slot(times)]
    return [
        _slot(times, days_of_month=month_days, months=months)
        for months, month_days in _shifted_days(days.months, days.days_of_month, shift)
    ]


def cron_slots(schedule: str, duration: timedelta) -> list[Slot]:
    """The time a window opening on a cron schedule covers, as merged slots (wall-clock time)."""
    starts, days = parse_cron(schedule)
    slots: list[Slot] = []
    for shift, times in day_segments(starts, duration).items():
        if days.weekdays is not None:
            slots += _weekday_slots(days, shift, times)
        # cron fires on either day field when both are restricted, and on every day when neither is
        if days.days_of_month is not None or days.weekdays is None:
            slots += _month_day_slots(days, shift, times)
    return merge_slots(slots)


def cron_time_intervals(schedule: str, duration: timedelta, time_zone: str = "UTC") -> list[dict[str, Any]]:
    """Alertmanager `time_intervals` entries covering a window that opens on a cron schedule.

    `0 3 * * SUN` + 1h in Europe/Berlin -> `[{times: [03:00-04:00], weekdays: [sunday], location:
    Europe/Berlin}]`. See the module notes for midnight, long windows and month ends.
    """
    return [render_slot(slot, time_zone) for slot in cron_slots(schedule, duration)]


def window_slots(start: datetime, end: datetime) -> list[Slot]:
    """A one-off window in UTC, one slot per calendar day (full days in between merged)."""
    first = _floor_minute(start.astimezone(UTC))
    last = _ceil_minute(end.astimezone(UTC))
    slots: list[Slot] = []
    day = first.date()
    while (midnight := datetime.combine(day, time.min, tzinfo=UTC)) < last:
        low = max(first, midnight) - midnight
        high = min(last, midnight + timedelta(days=1)) - midnight
        span = (low // timedelta(minutes=1), high // timedelta(minutes=1))
        slots.append(_slot([span], days_of_month=[day.day], months=[day.month], years=[day.year]))
        day += timedelta(days=1)
    return merge_slots(slots)


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _ceil_minute(moment: datetime) -> datetime:
    floor = _floor_minute(moment)
    return floor if floor == moment else floor + timedelta(minutes=1)


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
        and Target.ALERTMANAGER in spec.targets
        and bool(spec.alerting.enabled_tiers())
    )


def inhibit_rules() -> list[dict[str, Any]]:
    """A page silences the ticket of the same SLO and stage: both describe the same burn."""
    alert = matcher("alertname", names.ALERT)
    return [
        {
            "source_matchers": [alert, matcher("severity", "page")],
            "target_matchers": [alert, matcher("severity", "ticket")],
            "equal": ["slo", "stage"],
        }
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
        "inhibit_rules": inhibit_rules(),
        "receivers": _receivers(routed, default_receiver),
        "time_intervals": time_intervals,
    }
