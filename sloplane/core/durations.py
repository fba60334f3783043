"""Prometheus-style durations (`5m`, `1h30m`, `30d`), parsed once and printed canonically.

Every system sloplane talks to (Prometheus, Alertmanager, Argo, OpenSLO) writes durations in this
shape, so the declaration uses it too and renderers print it back the same way. Formatting uses
days as the largest unit on purpose: `28d` reads better in a rule name than Prometheus' own `4w`.
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta

_UNIT_SECONDS: dict[str, float] = {
    "y": 365 * 86400,
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
    "ms": 0.001,
}
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNITS_IN_ORDER = ("y", "w", "d", "h", "m", "s", "ms")
_FORMAT_UNITS = (("d", 86400_000), ("h", 3600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


_MAX_TEXT = 100
"""A duration is a few characters; a longer text is refused before the pattern sees it."""
_MAX_SECONDS = 1000 * 365 * 86400
"""Past a thousand years a duration means nothing here, and date arithmetic would overflow."""


class DurationError(ValueError):
    """A text that is not a Prometheus duration; the message says what would be."""


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m`-style text; units y, w, d, h, m, s, ms, largest first, each at most once."""
    stripped = text.strip()
    shown = text if len(text) <= 40 else f"{text[:30]}...({len(text):,} characters)"
    match = _DURATION.match(stripped) if len(stripped) <= _MAX_TEXT else None
    if not stripped or match is None:
        raise DurationError(
            f"'{shown}' is not a duration: use a number and a unit, largest unit first, "
            "e.g. 30s, 5m, 1h30m, 28d (units: y, w, d, h, m, s, ms)"
        )
    seconds = sum(
        int(amount) * _UNIT_SECONDS[unit]
        for amount, unit in zip(match.groups(), _UNITS_IN_ORDER, strict=True)
        if amount is not None
    )
    if seconds <= 0:
        raise DurationError(f"'{shown}' is zero: a duration must be positive")
    if seconds > _MAX_SECONDS:
        raise DurationError(f"'{shown}' is longer than any duration sloplane can count with (at most 1000y)")
    return timedelta(seconds=seconds)


@functools.lru_cache(maxsize=4096)
def format_duration(value: timedelta) -> str:
    """Print a duration the way Prometheus parses it, days as the largest unit: 90m -> 1h30m."""
    return _format(value, _FORMAT_UNITS)


def format_go_duration(value: timedelta) -> str:
    """Print a duration the way Go's `time.ParseDuration` reads it (Argo Rollouts, Argo CD): no days, 1d -> 24h."""
    return _format(value, _FORMAT_UNITS[1:])


def _format(value: timedelta, units: tuple[tuple[str, int], ...]) -> str:
    remaining = round(value.total_seconds() * 1000)
    if remaining <= 0:
        raise DurationError(f"cannot print a non-positive duration ({value})")
    parts: list[str] = []
    for unit, size in units:
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def minutes(value: timedelta) -> float:
    """A duration in minutes, the unit people read error budgets in."""
    return value.total_seconds() / 60


def human_duration(value: timedelta | None) -> str:
    """'0.864 min', '43.2 min', '3.6 h', '2.5 d', or 'never' - three significant digits."""
    if value is None:
        return "never"
    minutes = value.total_seconds() / 60
    if minutes < 60:
        return f"{minutes:.3g} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.3g} h"
    return f"{minutes / 1440:.3g} d"
