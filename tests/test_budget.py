"""The burn-rate arithmetic, pinned to the SRE Workbook's numbers for 99.9% over 30 days."""

from datetime import timedelta

import pytest

from sloplane.core.budget import (
    WORKBOOK_WINDOWS,
    DeclaredAlert,
    Tier,
    alert_windows,
    budget_duration,
    budget_remaining,
    burn_rate,
    burn_rate_alerts,
    declared_burn_rate_alerts,
    error_budget,
    scale_window,
    time_to_exhaustion,
)

THIRTY_DAYS = timedelta(days=30)


def _alert(period: timedelta, long_window: timedelta):  # type: ignore[no-untyped-def]
    return next(a for a in burn_rate_alerts(period) if a.long_window == long_window)


def _minutes(value: timedelta | None) -> float:
    assert value is not None
    return value.total_seconds() / 60


def test_workbook_table_for_thirty_days() -> None:
    alerts = burn_rate_alerts(THIRTY_DAYS)
    assert [(a.tier, a.name, a.factor, a.budget_share) for a in alerts] == [
        (Tier.PAGE, "1h/5m", 14.4, 0.02),
        (Tier.PAGE, "6h/30m", 6.0, 0.05),
        (Tier.TICKET, "1d/2h", 3.0, 0.10),
        (Tier.TICKET, "3d/6h", 1.0, 0.10),
    ]


def test_error_budget_is_exact_in_decimal() -> None:
    assert error_budget(99.9) == 0.001
    assert error_budget(99.95) == 0.0005
    assert error_budget(95) == 0.05


def test_full_outage_pages_fast() -> None:
    fast = _alert(THIRTY_DAYS, timedelta(hours=1))
    slow = _alert(THIRTY_DAYS, timedelta(hours=6))
    assert _minutes(fast.detection_time(1.0, 99.9)) == pytest.approx(0.864)
    assert _minutes(slow.detection_time(1.0, 99.9)) == pytest.approx(2.16)


def test_two_percent_errors_page_at_43_minutes() -> None:
    fast = _alert(THIRTY_DAYS, timedelta(hours=1))
    assert _minutes(fast.detection_time(0.02, 99.9)) == pytest.approx(43.2)


def test_one_percent_errors_skip_the_fast_page_and_trip_the_slow_one_at_3_6_hours() -> None:
    fast = _alert(THIRTY_DAYS, timedelta(hours=1))
    slow = _alert(THIRTY_DAYS, timedelta(hours=6))
    assert fast.detection_time(0.01, 99.9) is None
    assert _minutes(slow.detection_time(0.01, 99.9)) / 60 == pytest.approx(3.6)


def test_a_tenth_of_a_percent_never_alerts() -> None:
    assert all(a.detection_time(0.001, 99.9) is None for a in burn_rate_alerts(THIRTY_DAYS))


def test_budget_spent_at_detection_is_the_rows_share() -> None:
    for alert in burn_rate_alerts(THIRTY_DAYS):
        for error_ratio in (1.0, 0.5, 0.1):
            detected = alert.detection_time(error_ratio, 99.9)
            if detected is None:
                continue
            spent = error_ratio * detected / (error_budget(99.9) * THIRTY_DAYS)
            assert spent == pytest.approx(alert.budget_share)


def test_reset_after_full_outage_is_just_under_the_short_window() -> None:
    fast = _alert(THIRTY_DAYS, timedelta(hours=1))
    assert _minutes(fast.reset_time(1.0, 99.9)) == pytest.approx(5 * (1 - 0.0144))
    assert _minutes(fast.reset_time(1.0, 99.9)) < 6


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (timedelta(days=28), ["56m/5m", "5h36m/28m", "22h24m/1h52m", "2d19h12m/5h36m"]),
        (timedelta(days=7), ["14m/5m", "1h24m/7m", "5h36m/28m", "16h48m/1h24m"]),
        (timedelta(days=90), ["3h/15m", "18h/1h30m", "3d/6h", "9d/18h"]),
    ],
)
def test_windows_scale_with_the_period_and_keep_the_workbook_factors(period: timedelta, expected: list[str]) -> None:
    alerts = burn_rate_alerts(period)
    assert [a.name for a in alerts] == expected
    assert [a.factor for a in alerts] == [14.4, 6.0, 3.0, 1.0]


def test_scaled_windows_are_whole_minutes_and_never_under_five() -> None:
    assert scale_window(timedelta(minutes=5), timedelta(days=1)) == timedelta(minutes=5)
    for row in WORKBOOK_WINDOWS:
        for days in range(1, 400, 7):
            for window in (row.short, row.long):
                scaled = scale_window(window, timedelta(days=days))
                assert scaled >= timedelta(minutes=5)
                assert scaled.total_seconds() % 60 == 0


def test_recording_windows_for_thirty_days() -> None:
    windows = [int(w.total_seconds() // 60) for w in alert_windows(burn_rate_alerts(THIRTY_DAYS))]
    assert windows == [5, 30, 60, 120, 360, 1440, 4320]
    assert len(alert_windows(burn_rate_alerts(THIRTY_DAYS), [Tier.PAGE])) == 4


def test_declared_alerts_keep_their_windows_and_derive_their_budget_share() -> None:
    declared = (DeclaredAlert(Tier.PAGE, timedelta(hours=2), timedelta(minutes=10), 10.0, timedelta(minutes=5)),)
    (alert,) = declared_burn_rate_alerts(timedelta(days=28), declared)
    assert (alert.long_window, alert.short_window, alert.factor) == (timedelta(hours=2), timedelta(minutes=10), 10.0)
    assert alert.budget_share == pytest.approx(10 * 2 / (28 * 24))
    # 99.9%: threshold 1%; a 10% error ratio crosses it after 2h x 0.1 = 12m, then `for` holds it 5m more.
    assert alert.detection_time(0.1, 99.9) == timedelta(minutes=17)


def test_burn_rate_budget_remaining_and_exhaustion() -> None:
    assert burn_rate(0.01, 99.9) == pytest.approx(10)
    assert budget_remaining(0.0005, 99.9) == pytest.approx(0.5)
    assert budget_remaining(0.002, 99.9) == pytest.approx(-1.0)
    assert time_to_exhaustion(0.5, 2.0, THIRTY_DAYS) == timedelta(days=7.5)
    assert time_to_exhaustion(0.5, 0.0, THIRTY_DAYS) is None
    assert time_to_exhaustion(-0.1, 5.0, THIRTY_DAYS) == timedelta(0)
    assert _minutes(budget_duration(99.9, THIRTY_DAYS)) == pytest.approx(43.2)


def test_low_objective_makes_the_fast_page_unreachable() -> None:
    fast = _alert(THIRTY_DAYS, timedelta(hours=1))
    assert not fast.can_fire(90)
    assert fast.detection_time(1.0, 90) is None
    assert fast.can_fire(95)
