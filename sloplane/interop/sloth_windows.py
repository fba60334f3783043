"""Sloth's SLO period and alert windows, as the period and `alerting.windows` of our declarations.

Sloth's specs carry no period: `sloth generate --default-slo-period` (30d unless told) picks it for
every SLO, and with it a table of four window pairs (an `AlertWindows` document; built in for 30d
and 28d, both the SRE Workbook's 1h/5m, 6h/30m, 1d/2h, 3d/6h). Sloth keeps those windows whatever
the period and derives each factor as budget% x period / long window (13.44 for 1h of a 28d period).
sloplane instead scales the windows with the period and keeps the factors (`core.budget`), so for
any period but 30d the two alert at different times. To fire when Sloth's alerts fire, the import
writes Sloth's table out as `alerting.windows` whenever it differs from the one sloplane derives.

The period is therefore read from an `AlertWindows` document given with the specs (Sloth's own file:
`internal/alert/windows/google-28d.yaml` for `--default-slo-period 28d`, or a custom one from
`--slo-period-windows-path`); without one the import assumes Sloth's default, 30d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sloplane.core.budget import Tier, burn_rate_alerts
from sloplane.core.durations import DurationError, format_duration, parse_duration
from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.translation import ImportProblemError

ALERT_WINDOWS_KIND = "AlertWindows"
DEFAULT_PERIOD = timedelta(days=30)


@dataclass(frozen=True)
class SlothWindow:
    """One of Sloth's four alerts: its tier, windows and the share of the period's budget it spends."""

    tier: Tier
    long: timedelta
    short: timedelta
    budget_percent: float

    def factor(self, period: timedelta) -> float:
        """Sloth's burn-rate factor: the budget share spent in the long window, as a speed."""
        return round(self.budget_percent / 100 * (period / self.long), 12)


def _workbook() -> tuple[SlothWindow, ...]:
    hour = timedelta(hours=1)
    return (
        SlothWindow(Tier.PAGE, hour, timedelta(minutes=5), 2),
        SlothWindow(Tier.PAGE, 6 * hour, timedelta(minutes=30), 5),
        SlothWindow(Tier.TICKET, 24 * hour, 2 * hour, 10),
        SlothWindow(Tier.TICKET, 72 * hour, 6 * hour, 10),
    )


@dataclass(frozen=True)
class Windows:
    """The period Sloth ran with and its window table."""

    period: timedelta
    table: tuple[SlothWindow, ...]

    def declared(self) -> list[dict[str, Any]]:
        """Our `alerting.windows` for Sloth's table, or [] when sloplane's own table is the same."""
        ours = burn_rate_alerts(self.period)
        same = len(ours) == len(self.table) and all(
            (a.tier, a.long_window, a.short_window) == (s.tier, s.long, s.short)
            and math.isclose(a.factor, s.factor(self.period), rel_tol=1e-9)
            for a, s in zip(ours, self.table, strict=True)
        )
        if same:
            return []
        return [
            {
                "tier": window.tier.value,
                "long": format_duration(window.long),
                "short": format_duration(window.short),
                "factor": window.factor(self.period),
            }
            for window in self.table
        ]


DEFAULT_WINDOWS = Windows(DEFAULT_PERIOD, _workbook())


def _duration(spec: dict[str, Any], key: str, loc: Loc) -> timedelta:
    value = spec.get(key)
    try:
        return parse_duration(str(value)) if value is not None else parse_duration("")
    except DurationError:
        raise ImportProblemError((*loc, key), f"'{key}' must be a duration such as 5m, 1h or 30d") from None


def _window(spec: Any, tier: Tier, speed: str, loc: Loc) -> SlothWindow:
    if not isinstance(spec, dict):
        raise ImportProblemError(loc, f"'{tier.value}.{speed}' needs errorBudgetPercent, shortWindow and longWindow")
    percent = spec.get("errorBudgetPercent")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent <= 100:
        raise ImportProblemError((*loc, "errorBudgetPercent"), "errorBudgetPercent must be a number in (0, 100]")
    long, short = _duration(spec, "longWindow", loc), _duration(spec, "shortWindow", loc)
    if short > long:
        raise ImportProblemError((*loc, "shortWindow"), "shortWindow must not be longer than longWindow")
    return SlothWindow(tier, long, short, float(percent))


def read_alert_windows(document: YamlDocument) -> Windows:
    """An `AlertWindows` document as the period and table it declares."""
    spec = document.data.get("spec")
    if not isinstance(spec, dict):
        raise ImportProblemError(("spec",), "an AlertWindows document needs a 'spec' with sloPeriod, page and ticket")
    period = _duration(spec, "sloPeriod", ("spec",))
    table: list[SlothWindow] = []
    for tier in (Tier.PAGE, Tier.TICKET):
        speeds = spec.get(tier.value)
        if not isinstance(speeds, dict):
            raise ImportProblemError(("spec", tier.value), f"'{tier.value}' needs 'quick' and 'slow' windows")
        for speed in ("quick", "slow"):
            table.append(_window(speeds.get(speed), tier, speed, ("spec", tier.value, speed)))
    return Windows(period, tuple(table))
