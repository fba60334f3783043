"""Report periods — a month, a quarter, a week — as UTC spans cut at midnight in a time zone.

Why in the zone and not in UTC: an SLA month in Europe/Berlin starts at 23:00 UTC the day before (22:00 in
summer), and a regulator reads the month the contract names. Rollup rows are whole hours of the SLO's zone
(`hours`), so any zone whose offsets differ from the rows' by whole hours cuts them exactly; one that would
cut a row in two (a half-hour zone against whole-hour rows) is refused by `aligned` rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sloplane.core.instants import FIRST_YEAR, LAST_YEAR
from sloplane.evaluator.history.hours import hour_alignment, zone

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_WEEK = re.compile(r"^(\d{4})-W(0[1-9]|[1-4]\d|5[0-3])$")


class PeriodError(ValueError):
    """A period that is not one (`2025-13`, `2025-Q5`), said in one line."""


@dataclass(frozen=True)
class Period:
    """A report's period: its label (`2025-10`, `2025-Q4`, `2025-W44`), its zone, and its UTC bounds [start, end)."""

    label: str
    time_zone: str
    start: datetime
    end: datetime

    def days(self) -> list[tuple[date, datetime, datetime]]:
        """Each local day of the period with its UTC bounds (23 or 25 hours long across a clock change)."""
        zone_info = zone(self.time_zone)
        found: list[tuple[date, datetime, datetime]] = []
        day = self.start.astimezone(zone_info).date()
        while True:
            start = _midnight(day, zone_info)
            if start >= self.end:
                return found
            end = _midnight(day + timedelta(days=1), zone_info)
            found.append((day, start, end))
            day += timedelta(days=1)

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60

    def to_dict(self) -> dict[str, str]:
        bounds = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        return {"label": self.label, "timeZone": self.time_zone, **bounds}


def _midnight(day: date, zone_info: tzinfo) -> datetime:
    """Local midnight of `day` in UTC; where midnight does not exist (a clock change at 00:00), the first
    instant of the day."""
    local = datetime.combine(day, time(0), tzinfo=zone_info)
    utc = local.astimezone(UTC)
    if utc.astimezone(zone_info).date() != day:  # midnight skipped: the day starts at the end of the gap
        utc += timedelta(hours=1)
    return utc


def _year(text: str, year: int) -> int:
    """The year, when one sloplane measures in (`core.instants`: its period arithmetic stays inside datetime's)."""
    if not FIRST_YEAR < year < LAST_YEAR:
        raise PeriodError(
            f"'{text}' is not a period sloplane reports on: give a year after {FIRST_YEAR} and before {LAST_YEAR}"
        )
    return year


def month(text: str, time_zone: str) -> Period:
    """`YYYY-MM` in the zone."""
    found = _MONTH.match(text)
    if found is None:
        raise PeriodError(f"'{text}' is not a month: give YYYY-MM, e.g. 2025-10")
    year, number = _year(text, int(found[1])), int(found[2])
    following = date(year + number // 12, number % 12 + 1, 1)
    zone_info = zone(time_zone)
    return Period(text, time_zone, _midnight(date(year, number, 1), zone_info), _midnight(following, zone_info))


def quarter(text: str, time_zone: str) -> Period:
    """`YYYY-Qn` in the zone."""
    found = _QUARTER.match(text)
    if found is None:
        raise PeriodError(f"'{text}' is not a quarter: give YYYY-Qn, e.g. 2025-Q4")
    year, number = _year(text, int(found[1])), int(found[2])
    first = date(year, 3 * number - 2, 1)
    following = date(year + 1, 1, 1) if number == 4 else date(year, 3 * number + 1, 1)
    zone_info = zone(time_zone)
    return Period(text, time_zone, _midnight(first, zone_info), _midnight(following, zone_info))


def week(text: str, time_zone: str) -> Period:
    """ISO week `YYYY-Www` (Monday to Monday) in the zone."""
    found = _WEEK.match(text)
    if found is None:
        raise PeriodError(f"'{text}' is not an ISO week: give YYYY-Www, e.g. 2025-W44")
    year = _year(text, int(found[1]))
    try:
        monday = date.fromisocalendar(year, int(found[2]), 1)
    except ValueError:
        raise PeriodError(f"'{text}' is not a week of {found[1]}") from None
    zone_info = zone(time_zone)
    return Period(text, time_zone, _midnight(monday, zone_info), _midnight(monday + timedelta(days=7), zone_info))


def day_periods(at: datetime, count: int, time_zone: str) -> list[Period]:
    """The `count` days of the zone up to and including the one holding `at` (today, still running), oldest first."""
    zone_info = zone(time_zone)
    today = at.astimezone(zone_info).date()
    found: list[Period] = []
    for back in range(count - 1, -1, -1):
        day = today - timedelta(days=back)
        start, end = _midnight(day, zone_info), _midnight(day + timedelta(days=1), zone_info)
        found.append(Period(day.isoformat(), time_zone, start, end))
    return found


def aligned(period: Period, row_start: datetime) -> bool:
    """Whether the period's bounds fall on the rows' hour boundaries (same minute within the UTC hour)."""
    return hour_alignment(period.start) == hour_alignment(row_start) == hour_alignment(period.end)
