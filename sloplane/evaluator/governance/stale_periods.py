"""The compliance periods `govern stale` judges an SLO over: its last complete ones, and the one that held its last
review.

Why the SLO's own period (`spec.window`) and not a fixed month: the budget an owner is asked to keep is the one of
that period, and "used less than 10% of its budget" only means something against the budget it has.
- Calendar windows (week, month, quarter in the window's zone): the periods `history.periods` cuts (ISO week,
  month, quarter at local midnight), so that these and an SLA report of the same month agree to the row. The last
  complete ones are those before the period holding `at` (still running: its budget is not yet spent).
- Rolling windows: consecutive windows of the window's length ending at `at` floored to the whole UTC hour (rows
  of a rolling SLO are UTC hours; a bound inside an hour would cut rows in two). Each window's start is floored
  to the hour too, for a length that is not whole hours (`36h30m`).
- The period that held `review.last`: the calendar period holding that date, or the rolling window that ended
  at midnight UTC starting that day — the last whole window the reviewers could have looked at.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sloplane.declaration.model import CalendarUnit, Window
from sloplane.evaluator.history.hours import zone
from sloplane.evaluator.history.periods import Period, month, quarter, week
from sloplane.evaluator.measuring.periods import period_start

PERIODS = 3
"""How many complete periods the rules look back over (the issue's "last 3 periods")."""


def _hour(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _rolling(window: Window, end: datetime) -> Period:
    """The rolling window ending at `end` (an hour), its start floored to the hour (`period_start` reaches back)."""
    start = _hour(period_start(window, end))
    return Period(f"{start:%Y-%m-%dT%H:%MZ}/{end:%Y-%m-%dT%H:%MZ}", "UTC", start, end)


def _calendar(unit: CalendarUnit, time_zone: str, day: date, back: int) -> Period:
    """The calendar period `back` periods before the one holding `day` (a local date), cut in the zone."""
    if unit is CalendarUnit.MONTH:
        index = day.year * 12 + day.month - 1 - back
        return month(f"{index // 12:04d}-{index % 12 + 1:02d}", time_zone)
    if unit is CalendarUnit.QUARTER:
        index = day.year * 4 + (day.month - 1) // 3 - back
        return quarter(f"{index // 4:04d}-Q{index % 4 + 1}", time_zone)
    iso = (day - timedelta(days=day.weekday() + 7 * back)).isocalendar()
    return week(f"{iso.year:04d}-W{iso.week:02d}", time_zone)


def window_zone(window: Window) -> str:
    """The zone a window's periods are cut in: its own for a calendar window, else UTC."""
    return window.time_zone or "UTC"


def last_periods(window: Window, at: datetime, count: int = PERIODS) -> list[Period]:
    """The `count` complete periods before `at`, oldest first (see the module's docstring)."""
    if window.rolling is None:
        assert window.calendar is not None
        today = at.astimezone(zone(window_zone(window))).date()
        return [_calendar(window.calendar, window_zone(window), today, back) for back in range(count, 0, -1)]
    end = _hour(at)
    found: list[Period] = []
    for _ in range(count):
        period = _rolling(window, end)
        found.insert(0, period)
        end = period.start
    return found


def period_holding(window: Window, day: date) -> Period:
    """The period that held `day` (a review's date; see the module's docstring)."""
    if window.rolling is None:
        assert window.calendar is not None
        return _calendar(window.calendar, window_zone(window), day, 0)
    return _rolling(window, datetime.combine(day, time(0), tzinfo=UTC))
