"""Pyrra's `spec.alerting` and its burn-rate table as our `alerting`.

Pyrra derives four multiwindow alerts from the SLO's window alone, by scaling a table written for
28 days (every duration divided by the same share of the window, then rounded to the minute):

| 28d row | long | short | for | factor | severity |
|---|---|---|---|---|---|
| 1 | window/672 (1h) | window/8064 (5m) | window/20160 (2m) | 14 | critical |
| 2 | window/112 (6h) | window/1344 (30m) | window/2688 (15m) | 7 | critical |
| 3 | window/28 (1d) | window/336 (2h) | window/672 (1h) | 2 | warning |
| 4 | window/7 (4d) | window/112 (6h) | window/224 (3h) | 1 | warning |

An alert fires when both windows' error ratios exceed `factor x (1 - target)` for `for`. Our
default table (the SRE Workbook's, scaled from 30 days, with factors such as 14.4 and no `for`) is
a different one, so an imported SLO writes Pyrra's rows out in `alerting.windows`, and the migrated
alerts fire when Pyrra's did. Critical rows are our page tier, warning rows our ticket tier; the
tiers keep Pyrra's severity labels (`critical`, `warning`, or `severities` as given) and Pyrra's
alert name (`ErrorBudgetBurn` unless `name` says otherwise), so Alertmanager routes keep matching.

`disabled: true` or `burnrates: false` switch both tiers off. Pyrra's absent alerts
(`SLOMetricAbsent`, on unless `absent: false`) have no equivalent here and are reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sloplane.core.budget import Tier, burn_rate_alerts
from sloplane.core.durations import format_duration
from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.policy import MIN_ALERT_WINDOW

DEFAULT_ALERT_NAME = "ErrorBudgetBurn"
DEFAULT_ABSENT_NAME = "SLOMetricAbsent"
_KEYS = ("disabled", "burnrates", "absent", "name", "absentName", "severities")
_SEVERITY_KEYS = ("fastBurn", "mediumBurn", "slowBurn", "longTermBurn", "absent")


@dataclass(frozen=True)
class PyrraWindow:
    """One row of Pyrra's table as divisors of the SLO window, with its factor and default severity."""

    long: int
    short: int
    pending: int
    factor: float
    severity_key: str
    default_severity: str

    @property
    def tier(self) -> Tier:
        """Pyrra's critical rows page, its warning rows make tickets."""
        return Tier.PAGE if self.default_severity == "critical" else Tier.TICKET


PYRRA_WINDOWS: tuple[PyrraWindow, ...] = (
    PyrraWindow(28 * 24, 28 * 24 * 12, 28 * 24 * 30, 14, "fastBurn", "critical"),
    PyrraWindow(28 * 4, 28 * 24 * 2, 28 * 24 * 4, 7, "mediumBurn", "critical"),
    PyrraWindow(28, 28 * 12, 28 * 24, 2, "slowBurn", "warning"),
    PyrraWindow(7, 28 * 4, 28 * 8, 1, "longTermBurn", "warning"),
)
"""Divisors as Pyrra computes them (integer arithmetic: 60/2 is 30 minutes, 24/6 is 4 quarters)."""

_MINUTE_NS = 60 * 10**9


def _go_scaled(window: timedelta, divisor: int) -> timedelta:
    """`(window / divisor).Round(time.Minute)` as Go computes it: integer nanoseconds, halves away from zero."""
    nanoseconds = (window // timedelta(microseconds=1)) * 1000 // divisor
    remainder = nanoseconds % _MINUTE_NS
    rounded = nanoseconds - remainder if remainder + remainder < _MINUTE_NS else nanoseconds + _MINUTE_NS - remainder
    return timedelta(microseconds=rounded // 1000)


@dataclass(frozen=True)
class ScaledWindow:
    """A Pyrra row for one SLO window: the durations Pyrra's rules use."""

    row: PyrraWindow
    long: timedelta
    short: timedelta
    pending: timedelta


def pyrra_windows(window: timedelta) -> tuple[ScaledWindow, ...]:
    """Pyrra's four alerts for an SLO window (28d: 1h/5m, 6h/30m, 1d/2h, 4d/6h)."""
    return tuple(
        ScaledWindow(row, _go_scaled(window, row.long), _go_scaled(window, row.short), _go_scaled(window, row.pending))
        for row in PYRRA_WINDOWS
    )


@dataclass
class AlertingResult:
    """Our `alerting` for Pyrra's, where its parts came from, and what could not be kept."""

    data: dict[str, Any] = field(default_factory=dict)
    mapping: list[tuple[Loc, Loc]] = field(default_factory=list)
    warnings: list[tuple[Loc, str]] = field(default_factory=list)
    errors: list[tuple[Loc, str]] = field(default_factory=list)


def _flag(alerting: dict[str, Any], key: str, default: bool, loc: Loc, result: AlertingResult) -> bool:
    value = alerting.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        result.errors.append(((*loc, key), f"alerting.{key} must be true or false, got {value!r}"))
        return default
    return value


def _text(mapping: dict[str, Any], key: str, loc: Loc, result: AlertingResult) -> str | None:
    value = mapping.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        result.errors.append(((*loc, key), f"{key} must be a string, got {value!r}"))
        return None
    return value


def _row(scaled: ScaledWindow, loc: Loc, result: AlertingResult) -> dict[str, Any]:
    """One of our `alerting.windows`, clamped to our one-minute floor where Pyrra's rounds to nothing."""
    long, short = max(scaled.long, MIN_ALERT_WINDOW), max(scaled.short, MIN_ALERT_WINDOW)
    if (long, short) != (scaled.long, scaled.short):
        result.warnings.append(
            (
                loc,
                f"Pyrra's {format_duration(scaled.long) if scaled.long else '0s'}/"
                f"{format_duration(scaled.short) if scaled.short else '0s'} alert windows for this short SLO window "
                f"are under a minute; imported as {format_duration(long)}/{format_duration(short)}",
            )
        )
    row: dict[str, Any] = {
        "tier": scaled.row.tier.value,
        "long": format_duration(long),
        "short": format_duration(short),
        "factor": scaled.row.factor,
    }
    if scaled.pending > timedelta(0):
        row["for"] = format_duration(scaled.pending)
    return row


def _same_as_ours(rows: list[dict[str, Any]], window: timedelta) -> bool:
    """Whether Pyrra's rows are exactly what our default table gives for this window (then none are written)."""
    ours = [
        {"tier": a.tier.value, "long": format_duration(a.long_window), "short": format_duration(a.short_window)}
        | {"factor": a.factor}
        for a in burn_rate_alerts(window)
    ]
    return ours == rows


def _severities(severities: dict[str, Any], loc: Loc, result: AlertingResult) -> dict[Tier, tuple[str, str | None]]:
    """Each tier's severity label (from its first row) and the key it was written at, if written."""
    chosen: dict[Tier, tuple[str, str | None]] = {}
    for row in PYRRA_WINDOWS:
        written = _text(severities, row.severity_key, loc, result)
        severity = written or row.default_severity
        if row.tier not in chosen:
            chosen[row.tier] = (severity, row.severity_key if written else None)
        elif chosen[row.tier][0] != severity:
            kept = chosen[row.tier][0]
            result.warnings.append(
                (
                    (*loc, row.severity_key),
                    f"severity '{severity}' is not kept: sloplane labels all {row.tier.value}-tier alerts alike, "
                    f"with '{kept}'",
                )
            )
    return chosen


def _tier_alerts(severities: dict[Tier, tuple[str, str | None]], loc: Loc, result: AlertingResult) -> None:
    for tier, (severity, key) in severities.items():
        ours = "pageAlert" if tier is Tier.PAGE else "ticketAlert"
        result.data[ours] = {"labels": {"severity": severity}}
        result.mapping.append((("spec", "alerting", ours), (*loc, "severities", key) if key else loc))


def _absent(alerting: dict[str, Any], loc: Loc, spec_loc: Loc, result: AlertingResult) -> None:
    if not _flag(alerting, "absent", True, loc, result):
        return
    name = _text(alerting, "absentName", loc, result) or DEFAULT_ABSENT_NAME
    where = (*loc, "absent") if "absent" in alerting else (loc if alerting else spec_loc)
    result.warnings.append(
        (
            where,
            f"Pyrra's absent alert {name} (on unless 'absent: false') is not generated: sloplane has no alert for "
            "a missing metric; keep an absent() alert of your own if you rely on it",
        )
    )


def alerting_of(raw: Any, window: timedelta | None, loc: Loc, spec_loc: Loc) -> AlertingResult:
    """Our `alerting` for Pyrra's `spec.alerting` (at `loc`) and the SLO window, when it parsed."""
    result = AlertingResult()
    if raw is not None and not isinstance(raw, dict):
        result.errors.append((loc, "alerting must be a mapping"))
        return result
    alerting: dict[str, Any] = raw or {}
    result.warnings += [
        ((*loc, key), f"unknown key '{key}' is ignored (Pyrra knows: {', '.join(_KEYS)})")
        for key in alerting
        if key not in _KEYS
    ]
    _absent(alerting, loc, spec_loc, result)
    disabled = _flag(alerting, "disabled", False, loc, result)
    burnrates = _flag(alerting, "burnrates", True, loc, result)
    severities = alerting.get("severities") or {}
    if not isinstance(severities, dict):
        result.errors.append(((*loc, "severities"), "severities must be a mapping of " + ", ".join(_SEVERITY_KEYS)))
        severities = {}
    result.warnings += [
        ((*loc, "severities", key), f"unknown severity '{key}' is ignored (Pyrra knows: {', '.join(_SEVERITY_KEYS)})")
        for key in severities
        if key not in _SEVERITY_KEYS
    ]
    result.data["name"] = _text(alerting, "name", loc, result) or DEFAULT_ALERT_NAME
    result.mapping.append((("spec", "alerting", "name"), (*loc, "name") if "name" in alerting else loc))
    if disabled or burnrates is False:
        switch = "disabled" if disabled else "burnrates"
        result.data |= {"page": False, "ticket": False}
        result.mapping.append((("spec", "alerting"), (*loc, switch)))
        return result
    _tier_alerts(_severities(severities, (*loc, "severities"), result), loc, result)
    if window is not None and window > timedelta(0):
        rows = [_row(scaled, (*spec_loc, "window"), result) for scaled in pyrra_windows(window)]
        if not _same_as_ours(rows, window):
            result.data["windows"] = rows
            result.mapping.append((("spec", "alerting", "windows"), (*spec_loc, "window")))
    result.mapping.append((("spec", "alerting"), loc if alerting else spec_loc))
    return result
