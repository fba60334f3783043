"""A cron schedule, a duration and a time zone: when such windows open, and the wall-clock time they cover.

Maintenance windows (`exclusions.maintenance`) and release freezes (`gate.freezes`) are declared
this way, and three parts of sloplane ask about them. Each asks here, so that they agree:

- the evaluator's budget: which spans of a period a schedule takes out (`occurrences`);
- the release gate: whether a freeze is in force at an instant, and since when (`occurrence_at`);
- the Alertmanager renderer: the wall-clock time a window covers, as calendar patterns it can write
  as `time_intervals` (`cron_slots`), and one-off windows the same way (`window_slots`).

Argo CD's sync windows take schedule, duration and time zone as written (Argo CD evaluates the
cron itself), so nothing is computed for them. Everything here takes plain values (cron text, a
`timedelta`, a time-zone name, datetimes): the bottom layer knows no declaration.

**Wall-clock time.** Cron fires on the wall clock of its time zone, and the duration is applied
on the wall clock as well, by all three consumers: a window that spans a daylight-saving change is
an hour longer or shorter in absolute time (Europe/Berlin, 01:00 + 3h on the last Sunday of March
ends at 04:00 CEST, two hours later). On the day a start time does not exist croniter fires at the
first wall-clock time after the gap; a start time in an hour that repeats fires twice.

**Slots.** Alertmanager matches wall-clock time in a location, which is how cron fires, so a
schedule keeps its meaning across daylight-saving changes. A slot is one entry of a time interval:
times of day x weekdays x days of the month x months x years. Each start time of day (every minute
x hour combination) gives one time range; a window that runs past midnight continues on the
following day(s), full days in between, with the day fields shifted by one per day:

- weekdays shift exactly (Friday 22:30 + 4h: Friday 22:30-24:00 and Saturday 00:00-02:30);
- days of the month and months shift through a calendar of a leap year, so every day a schedule
  can name exists: the 31st of January + 1 day is the 1st of February, the 30th of April + 1 day the
  1st of May. The approximation is February: a window crossing the end of February 28 is continued
  on February 29, which in common years does not exist, so that part (on March 1) is not muted.
  It errs towards alerting, never towards silencing an unplanned hour;
- the last day of a month (`L`) and the nth weekday (`MON#2`) become negative or ranged days of the
  month (`-1`, `8:14`), which shift exactly;
- when both the day of month and the day of week are restricted, cron fires on either, so each
  gives its own slots (slots of a window are alternatives).

Slots that differ in one field only are merged (Saturday and Sunday, days 27 to 30), so the output
stays short. Random (`R`) and hashed (`H`) cron fields have no fixed time to cover and are refused.
"""

from __future__ import annotations

import calendar
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from croniter import croniter

Point = TypeVar("Point", int, datetime)
"""What a span runs between: minutes of a day, or instants."""

MINUTES_PER_DAY = 24 * 60
FULL_DAY = ((0, MINUTES_PER_DAY),)
"""The times of a slot that covers the whole day."""
REFERENCE_YEAR = 2000
"""A leap year: every day a cron schedule can name exists in it (see the module notes on February)."""
ALL_WEEKDAYS = frozenset(range(7))
"""Numbered as cron numbers them: 0 = Sunday."""
ALL_DAYS = frozenset(range(1, 32))
ALL_MONTHS = frozenset(range(1, 13))
LAST_WEEK = tuple(range(-7, 0))
"""Days of the month of the last weekday of a kind (`5L`): the last seven."""
_RANDOM_FIELD = re.compile(r"(?:^|,)[rh](?:$|[(/,])", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Occurrences in absolute time
# ---------------------------------------------------------------------------------------------


CLOCK_CHANGE_MARGIN = timedelta(hours=3)
"""More than any clock change lengthens a window by (the largest in the tz database is 2 h)."""


def occurrences(
    schedule: str, duration: timedelta, time_zone: str, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """(opens, closes) in UTC of every window that may overlap [start, end), in time order.

    The search begins one duration and `CLOCK_CHANGE_MARGIN` before `start`, so a window already open
    at `start` is found even when a clock change made it longer than its duration in absolute time.
    Spans are not clipped, and one may end at or before `start`: callers clip to what they measure.
    """
    zone = ZoneInfo(time_zone)
    fired = croniter(schedule, (start - duration - CLOCK_CHANGE_MARGIN).astimezone(zone))
    while True:
        opens: datetime = fired.get_next(datetime)
        if opens >= end:
            return
        yield opens.astimezone(UTC), (opens + duration).astimezone(UTC)


def occurrence_at(schedule: str, duration: timedelta, time_zone: str, at: datetime) -> datetime | None:
    """When the window covering `at` opened, on the zone's clock; None when no window covers `at`.

    The windows are `occurrences`' and compared in UTC, so a freeze and a budget exclusion on the
    same schedule agree at every instant, the repeated hour of an autumn clock change included (on
    the zone's clock 02:10 comes twice that night; comparing wall-clock times would miss the second).
    `at` itself counts (a window opening at `at` is in force), its closing instant does not; of
    overlapping windows the latest to open is named.
    """
    covering = [
        opens for opens, closes in occurrences(schedule, duration, time_zone, at, at + _TICK) if opens <= at < closes
    ]
    return max(covering).astimezone(ZoneInfo(time_zone)) if covering else None


_TICK = timedelta(microseconds=1)


def merge_spans(spans: Iterable[tuple[Point, Point]]) -> list[tuple[Point, Point]]:
    """Overlapping or touching (start, end) spans joined, in order: each minute or instant counts once."""
    joined: list[tuple[Point, Point]] = []
    for start, end in sorted(spans):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


# ---------------------------------------------------------------------------------------------
# Slots: recurring wall-clock time as calendar patterns
# ---------------------------------------------------------------------------------------------


class UnsupportedScheduleError(ValueError):
    """A cron schedule whose firing times are not fixed (random or hashed fields)."""


@dataclass(frozen=True)
class Slot:
    """One pattern of wall-clock time: the conjunction of its fields; None is "any"."""

    times: tuple[tuple[int, int], ...] = FULL_DAY
    """Half-open minute ranges within the day, sorted and merged."""
    weekdays: frozenset[int] | None = None
    """0 = Sunday."""
    days_of_month: frozenset[int] | None = None
    """1-31, or counted from the month's end: -1 is the last day."""
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
        times=tuple(merge_spans(times)),
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
        return replace(first, times=tuple(merge_spans((*first.times, *second.times))))
    mine: frozenset[int] | None = getattr(first, field)
    theirs: frozenset[int] | None = getattr(second, field)
    joined = None if mine is None or theirs is None else mine | theirs
    full = _FULL_SETS[field]
    value = None if joined is None or (full is not None and joined >= full) else joined
    changes: dict[str, Any] = {field: value}
    return replace(first, **changes)


_SLOT_FIELDS = tuple(field.name for field in fields(Slot))


def merge_slots(slots: Iterable[Slot]) -> list[Slot]:
    """Fewer slots, same times: slots equal but for one field are joined until none are.

    Each slot is a product of its fields, so two that differ in one field only are exactly the
    product with that field's union; the merge never widens the time covered. The result is
    sorted (years, months, days, weekdays, times), so equal schedules give equal lists.
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
# Cron schedules as slots
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


def _nth_days(ordinals: Iterable[int | str]) -> tuple[int, ...]:
    """Days of the month of the nth weekday of a kind: the 2nd Monday falls on the 8th-14th."""
    days: set[int] = set()
    for ordinal in ordinals:
        if ordinal == "l":
            days.update(LAST_WEEK)
        else:
            nth = int(ordinal)
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
        nth=tuple((weekday, _nth_days(ordinals)) for weekday, ordinals in sorted(nth.items())),
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
    return {day: tuple(merge_spans(ranges)) for day, ranges in sorted(by_day.items())}


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
    """The wall-clock time a window opening on a cron schedule covers, as merged slots.

    The time zone is not needed: slots are wall-clock patterns, read in the schedule's own zone.
    """
    starts, days = parse_cron(schedule)
    slots: list[Slot] = []
    for shift, times in day_segments(starts, duration).items():
        if days.weekdays is not None:
            slots += _weekday_slots(days, shift, times)
        # cron fires on either day field when both are restricted, and on every day when neither is
        if days.days_of_month is not None or days.weekdays is None:
            slots += _month_day_slots(days, shift, times)
    return merge_slots(slots)


# ---------------------------------------------------------------------------------------------
# One-off windows as slots
# ---------------------------------------------------------------------------------------------


def window_slots(start: datetime, end: datetime) -> list[Slot]:
    """A one-off window in UTC, one slot per calendar day (full days in between merged).

    The window is widened to whole minutes (start rounded down, end up): Alertmanager's resolution.
    """
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


@dataclass(frozen=True)
class Recurrence:
    """A cron schedule's firing as an RFC 5545 recurrence: daily, weekly on one weekday, or monthly on one day.

    What systems that repeat by RRULE (Datadog corrections and downtimes) can take: a start time of day,
    a frequency, and the weekday or day of the month the first occurrence falls on (later ones follow
    from the frequency). The rule itself carries no BYDAY: the start date says it.
    """

    frequency: str
    """DAILY, WEEKLY or MONTHLY."""
    minute_of_day: int
    weekday: int | None = None
    """0 = Sunday (weekly)."""
    day_of_month: int | None = None
    """1-31 (monthly)."""

    @property
    def rule(self) -> str:
        """`FREQ=WEEKLY;INTERVAL=1` (no trailing `;`, which Datadog refuses)."""
        return f"FREQ={self.frequency};INTERVAL=1"

    def first_start(self, on_or_after: date) -> datetime:
        """The first occurrence (a naive local time) on or after a date: the DTSTART of the rule."""
        day = on_or_after
        for _ in range(370):
            matches = (
                self.frequency == "DAILY"
                or (self.frequency == "WEEKLY" and (day.isoweekday() % 7) == self.weekday)
                or (self.frequency == "MONTHLY" and day.day == self.day_of_month)
            )
            if matches:
                hours, minutes = divmod(self.minute_of_day, 60)
                return datetime(day.year, day.month, day.day, hours, minutes)
            day += timedelta(days=1)
        raise UnsupportedScheduleError(f"no day within a year matches {self}")  # pragma: no cover - days exist


def cron_recurrences(schedule: str) -> list[Recurrence]:
    """The recurrences a cron schedule fires on, or UnsupportedScheduleError when RRULEs cannot say it.

    Every start time and every weekday (or day of the month) is its own recurrence: `0 2 * * 1,4` is two
    weekly ones. Month restrictions, nth weekdays, the last day and both day fields at once are refused.
    """
    starts, days = parse_cron(schedule)
    if days.months is not None or days.nth:
        raise UnsupportedScheduleError(f"'{schedule}': months and nth weekdays have no simple RRULE here")
    if days.days_of_month is None and days.weekdays is None:
        return [Recurrence("DAILY", start) for start in starts]
    if days.days_of_month is None and days.weekdays is not None:
        weekdays = sorted({weekday % 7 for weekday in days.weekdays})
        return [Recurrence("WEEKLY", start, weekday=weekday) for weekday in weekdays for start in starts]
    if days.weekdays is None and days.days_of_month is not None and all(day > 0 for day in days.days_of_month):
        return [Recurrence("MONTHLY", start, day_of_month=day) for day in days.days_of_month for start in starts]
    raise UnsupportedScheduleError(f"'{schedule}': the last day, or days of the month and weekdays together")
