"""Cron schedule arithmetic (`sloplane.core.schedules`): windows in absolute time, and as wall-clock slots.

Daylight-saving cases use Europe/Berlin in 2024: clocks went forward on March 31 (02:00 CET ->
03:00 CEST) and back on October 27 (03:00 CEST -> 02:00 CET).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from sloplane.core.schedules import (
    FULL_DAY,
    CronDays,
    Slot,
    UnsupportedScheduleError,
    cron_recurrences,
    cron_slots,
    day_segments,
    merge_slots,
    merge_spans,
    occurrence_at,
    occurrences,
    parse_cron,
    window_slots,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
BERLIN = "Europe/Berlin"


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _clock(hours: int, minutes: int = 0) -> int:
    return hours * 60 + minutes


# --- occurrences: spans in absolute time ---------------------------------------------------------


def test_a_window_spanning_the_spring_change_is_an_hour_shorter_in_absolute_time() -> None:
    spans = list(occurrences("0 1 * * *", 3 * HOUR, BERLIN, _utc(2024, 3, 30, 12), _utc(2024, 4, 1, 12)))
    assert spans == [
        (_utc(2024, 3, 31, 0), _utc(2024, 3, 31, 2)),  # 01:00 CET to 04:00 CEST: two hours
        (_utc(2024, 3, 31, 23), _utc(2024, 4, 1, 2)),  # 01:00 to 04:00 CEST: three
    ]


def test_a_window_spanning_the_autumn_change_is_an_hour_longer_in_absolute_time() -> None:
    spans = list(occurrences("0 1 * * *", 3 * HOUR, BERLIN, _utc(2024, 10, 26, 12), _utc(2024, 10, 28, 12)))
    assert spans == [
        (_utc(2024, 10, 26, 23), _utc(2024, 10, 27, 3)),  # 01:00 CEST to 04:00 CET: four hours
        (_utc(2024, 10, 28, 0), _utc(2024, 10, 28, 3)),
    ]


def test_a_start_time_skipped_by_the_spring_change_opens_at_the_first_time_after_the_gap() -> None:
    spans = list(occurrences("0 2 * * *", HOUR, BERLIN, _utc(2024, 3, 30, 12), _utc(2024, 4, 1, 12)))
    assert spans[0] == (_utc(2024, 3, 31, 1), _utc(2024, 3, 31, 2))  # 03:00-04:00 CEST
    assert spans[1] == (_utc(2024, 4, 1, 0), _utc(2024, 4, 1, 1))  # 02:00-03:00 CEST


def test_a_start_time_in_the_repeated_autumn_hour_opens_twice() -> None:
    spans = list(occurrences("30 2 * * *", HOUR, BERLIN, _utc(2024, 10, 26, 12), _utc(2024, 10, 28)))
    assert spans == [
        (_utc(2024, 10, 27, 0, 30), _utc(2024, 10, 27, 2, 30)),  # 02:30 CEST + 1h on the clock: 03:30 CET
        (_utc(2024, 10, 27, 1, 30), _utc(2024, 10, 27, 2, 30)),  # 02:30 CET
    ]


def test_a_window_already_open_at_the_start_is_found_unclipped() -> None:
    spans = list(occurrences("0 22 * * FRI", 4 * HOUR, "UTC", _utc(2024, 6, 8, 1), _utc(2024, 6, 8, 2)))
    assert spans == [(_utc(2024, 6, 7, 22), _utc(2024, 6, 8, 2))]


def test_a_window_opening_at_the_end_is_not_listed() -> None:
    assert list(occurrences("0 3 * * *", HOUR, "UTC", _utc(2024, 6, 1, 12), _utc(2024, 6, 2, 3))) == []


# --- occurrence_at: is a window open at an instant, and since when -------------------------------


def test_the_opening_is_given_on_the_zones_clock() -> None:
    opened = occurrence_at("0 22 * * FRI", 4 * HOUR, BERLIN, _utc(2024, 6, 7, 23))  # Saturday 01:00 CEST
    assert opened is not None
    assert opened.isoformat() == "2024-06-07T22:00:00+02:00"


def test_a_window_is_open_from_its_first_instant_until_before_its_last() -> None:
    assert occurrence_at("0 22 * * FRI", 4 * HOUR, BERLIN, _utc(2024, 6, 7, 20)) is not None  # 22:00 CEST
    assert occurrence_at("0 22 * * FRI", 4 * HOUR, BERLIN, _utc(2024, 6, 7, 19, 59)) is None
    assert occurrence_at("0 22 * * FRI", 4 * HOUR, BERLIN, _utc(2024, 6, 8, 0)) is None  # Saturday 02:00 CEST
    assert occurrence_at("0 22 * * FRI", 4 * HOUR, BERLIN, _utc(2024, 6, 14, 12)) is None  # the next Friday noon


def test_a_window_open_at_the_spring_change_closes_on_the_clock() -> None:
    assert occurrence_at("0 1 * * *", 3 * HOUR, BERLIN, _utc(2024, 3, 31, 1, 59)) == datetime.fromisoformat(
        "2024-03-31T01:00:00+01:00"
    )
    assert occurrence_at("0 1 * * *", 3 * HOUR, BERLIN, _utc(2024, 3, 31, 2)) is None  # 04:00 CEST


@pytest.mark.parametrize(
    ("schedule", "duration", "start"),
    [
        ("15 1 * * *", 2 * HOUR, _utc(2024, 3, 30, 12)),  # spring: a window across the skipped hour
        ("30 2 * * *", HOUR, _utc(2024, 10, 26, 12)),  # autumn: a window in the repeated hour
        ("0 1 * * *", 3 * HOUR, _utc(2024, 10, 26, 12)),  # autumn: a window across the repeated hour
    ],
    ids=["spring", "autumn-inside", "autumn-across"],
)
def test_the_gate_and_the_budget_agree_on_when_a_window_is_open_across_a_clock_change(
    schedule: str, duration: timedelta, start: datetime
) -> None:
    """Freezes ask `occurrence_at`, budget exclusions `occurrences`: one answer at every minute."""
    end = start + 2 * DAY
    spans = list(occurrences(schedule, duration, BERLIN, start, end))
    instant = start
    while instant < end:
        in_span = any(opens <= instant < closes for opens, closes in spans)
        assert (occurrence_at(schedule, duration, BERLIN, instant) is not None) is in_span, instant
        instant += timedelta(minutes=5)


def test_the_second_pass_of_the_repeated_hour_is_inside_a_window_that_opened_in_the_first() -> None:
    """02:30 CEST + 1h closes at 03:30 CET: 02:10 CET (01:10 UTC), the hour's second pass, is inside."""
    opened = occurrence_at("30 2 * * *", HOUR, BERLIN, _utc(2024, 10, 27, 1, 10))
    assert opened is not None and opened.isoformat() == "2024-10-27T02:30:00+02:00"


# --- merge_spans -----------------------------------------------------------------------------------


def test_overlapping_and_touching_spans_are_joined_in_order() -> None:
    assert merge_spans([(5, 7), (1, 3), (3, 4), (6, 9), (11, 12)]) == [(1, 4), (5, 9), (11, 12)]
    instants = [(_utc(2024, 1, 1, 2), _utc(2024, 1, 1, 3)), (_utc(2024, 1, 1, 1), _utc(2024, 1, 1, 2))]
    assert merge_spans(instants) == [(_utc(2024, 1, 1, 1), _utc(2024, 1, 1, 3))]
    assert merge_spans([]) == []


# --- cron schedules as slots -----------------------------------------------------------------------


def test_parse_cron_gives_start_minutes_and_days() -> None:
    starts, days = parse_cron("*/20 9-10 * * 1-5")
    assert starts == (_clock(9), _clock(9, 20), _clock(9, 40), _clock(10), _clock(10, 20), _clock(10, 40))
    assert days == CronDays(days_of_month=None, months=None, weekdays=(1, 2, 3, 4, 5))


def test_random_and_hashed_fields_are_refused() -> None:
    with pytest.raises(UnsupportedScheduleError, match="random"):
        parse_cron("R 3 * * *")
    with pytest.raises(UnsupportedScheduleError, match="hashed"):
        cron_slots("H 3 * * *", HOUR)


def test_a_window_longer_than_a_day_fills_the_days_in_between() -> None:
    assert day_segments([_clock(22)], timedelta(days=2)) == {
        0: ((_clock(22), _clock(24)),),
        1: FULL_DAY,
        2: ((0, _clock(22)),),
    }


def test_durations_are_rounded_up_to_whole_minutes() -> None:
    assert day_segments([0], timedelta(seconds=61)) == {0: ((0, 2),)}


def test_a_weekday_range_stays_one_slot() -> None:
    assert cron_slots("0 9 * * MON-FRI", 8 * HOUR) == [
        Slot(times=((_clock(9), _clock(17)),), weekdays=frozenset({1, 2, 3, 4, 5}))
    ]


def test_a_window_crossing_midnight_continues_on_the_next_weekday() -> None:
    assert cron_slots("30 22 * * FRI", 4 * HOUR) == [
        Slot(times=((_clock(22, 30), _clock(24)),), weekdays=frozenset({5})),
        Slot(times=((0, _clock(2, 30)),), weekdays=frozenset({6})),
    ]


def test_saturday_night_continues_on_sunday() -> None:
    assert cron_slots("0 23 * * SAT", 2 * HOUR) == [
        Slot(times=((0, _clock(1)),), weekdays=frozenset({0})),
        Slot(times=((_clock(23), _clock(24)),), weekdays=frozenset({6})),
    ]


def test_a_daily_window_crossing_midnight_merges_into_one_slot() -> None:
    assert cron_slots("0 23 * * *", 2 * HOUR) == [Slot(times=((0, _clock(1)), (_clock(23), _clock(24))))]


def test_the_31st_continues_on_the_first_of_the_months_that_follow_one_with_31_days() -> None:
    assert cron_slots("0 22 31 * *", 4 * HOUR) == [
        Slot(times=((0, _clock(2)),), days_of_month=frozenset({1}), months=frozenset({1, 2, 4, 6, 8, 9, 11})),
        Slot(
            times=((_clock(22), _clock(24)),), days_of_month=frozenset({31}), months=frozenset({1, 3, 5, 7, 8, 10, 12})
        ),
    ]


def test_the_last_day_of_the_month_continues_on_the_first() -> None:
    assert cron_slots("0 22 L * *", 4 * HOUR) == [
        Slot(times=((_clock(22), _clock(24)),), days_of_month=frozenset({-1})),
        Slot(times=((0, _clock(2)),), days_of_month=frozenset({1})),
    ]


def test_february_28_continues_on_the_29th_of_the_leap_reference_year() -> None:
    assert cron_slots("0 22 28 2 *", 4 * HOUR) == [
        Slot(times=((_clock(22), _clock(24)),), days_of_month=frozenset({28}), months=frozenset({2})),
        Slot(times=((0, _clock(2)),), days_of_month=frozenset({29}), months=frozenset({2})),
    ]


def test_the_second_monday_is_a_monday_between_the_8th_and_the_14th() -> None:
    assert cron_slots("0 3 * * MON#2", HOUR) == [
        Slot(times=((_clock(3), _clock(4)),), weekdays=frozenset({1}), days_of_month=frozenset(range(8, 15)))
    ]


def test_both_day_fields_restricted_fire_on_either() -> None:
    assert cron_slots("0 3 1,15 * MON", HOUR) == [
        Slot(times=((_clock(3), _clock(4)),), weekdays=frozenset({1})),
        Slot(times=((_clock(3), _clock(4)),), days_of_month=frozenset({1, 15})),
    ]


def test_slots_differing_in_one_field_merge_and_a_full_set_becomes_any() -> None:
    saturday = Slot(times=((0, 60),), weekdays=frozenset({6}))
    sunday = Slot(times=((0, 60),), weekdays=frozenset({0}))
    assert merge_slots([saturday, sunday]) == [Slot(times=((0, 60),), weekdays=frozenset({0, 6}))]
    every_day = [Slot(times=((0, 60),), weekdays=frozenset({day})) for day in range(7)]
    assert merge_slots(every_day) == [Slot(times=((0, 60),))]
    other_times = Slot(times=((120, 180),), weekdays=frozenset({0}))
    assert merge_slots([sunday, other_times]) == [Slot(times=((0, 60), (120, 180)), weekdays=frozenset({0}))]


# --- one-off windows as slots ------------------------------------------------------------------------


def test_a_one_off_window_becomes_utc_days_widened_to_whole_minutes() -> None:
    start = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=2)))  # 21:30 UTC
    end = datetime(2026, 3, 2, 1, 0, 30, tzinfo=UTC)
    march, year = frozenset({3}), frozenset({2026})
    assert window_slots(start, end) == [
        Slot(times=((_clock(21, 30), _clock(24)),), days_of_month=frozenset({1}), months=march, years=year),
        Slot(times=((0, _clock(1, 1)),), days_of_month=frozenset({2}), months=march, years=year),
    ]


def test_full_days_of_a_one_off_window_merge() -> None:
    assert window_slots(_utc(2026, 3, 1), _utc(2026, 3, 4, 12)) == [
        Slot(days_of_month=frozenset({1, 2, 3}), months=frozenset({3}), years=frozenset({2026})),
        Slot(times=((0, _clock(12)),), days_of_month=frozenset({4}), months=frozenset({3}), years=frozenset({2026})),
    ]


def test_cron_schedules_as_rrule_recurrences() -> None:
    """Every start time and weekday (or day of the month) its own recurrence; what RRULEs cannot say is refused."""
    weekly = cron_recurrences("0 2 * * 1,4")
    assert [(r.rule, r.first_start(date(2024, 1, 1))) for r in weekly] == [
        ("FREQ=WEEKLY;INTERVAL=1", datetime(2024, 1, 1, 2, 0)),
        ("FREQ=WEEKLY;INTERVAL=1", datetime(2024, 1, 4, 2, 0)),
    ]
    monthly = cron_recurrences("15 1 1,15 * *")
    assert [r.first_start(date(2024, 1, 2)) for r in monthly] == [
        datetime(2024, 2, 1, 1, 15),
        datetime(2024, 1, 15, 1, 15),
    ]
    assert [r.frequency for r in cron_recurrences("0 3,15 * * *")] == ["DAILY", "DAILY"]
    for unsupported in ("0 1 L * *", "0 1 * 6 *", "0 1 1 * 1", "0 1 * * MON#2"):
        with pytest.raises(UnsupportedScheduleError):
            cron_recurrences(unsupported)
