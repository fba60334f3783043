from datetime import timedelta

import pytest

from sloplane.core.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        ("28d", timedelta(days=28)),
        ("1w", timedelta(days=7)),
        ("1y", timedelta(days=365)),
        ("250ms", timedelta(milliseconds=250)),
        ("1d12h", timedelta(hours=36)),
    ],
)
def test_parses_prometheus_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m5", "30days", "1.5h", "5m1h", "0s", "-5m", "5 m"])
def test_rejects_what_prometheus_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=28), "28d"),
        (timedelta(days=7), "7d"),
        (timedelta(minutes=84), "1h24m"),
        (timedelta(milliseconds=300), "300ms"),
    ],
)
def test_formats_with_days_as_largest_unit(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value
