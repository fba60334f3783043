"""Error budgets and multiwindow, multi-burn-rate alerting: the one place this arithmetic lives.

Renderers (Prometheus rules, Datadog monitors, Argo analysis), the evaluator and `sloplane explain`
all ask this module, so an alert threshold, a gate decision and an explanation can never disagree.

The window table is the Google SRE Workbook's (chapter 5, "Alerting on SLOs") for a 30-day period.
Each row spends a fixed *share* of the period's budget before it fires; the burn-rate factor follows
from it: factor = share x period / long window (2% of a 30d budget in 1h -> 14.4). For other periods
every window is scaled by period / 30d and rounded to the whole minute (never under five minutes),
so the factors stay those of the Workbook and the alert keeps its meaning (a 7d SLO pages on 2% of
its budget in 14 minutes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from sloplane.core.durations import format_duration


class Tier(StrEnum):
    """How loud an alert is: a page wakes someone, a ticket waits for working hours."""

    PAGE = "page"
    TICKET = "ticket"


@dataclass(frozen=True)
class WindowPair:
    """One row of the alert table: a long window for significance, a short one for fast reset."""

    tier: Tier
    long: timedelta
    short: timedelta
    budget_share: float


WORKBOOK_PERIOD = timedelta(days=30)
WORKBOOK_WINDOWS: tuple[WindowPair, ...] = (
    WindowPair(Tier.PAGE, timedelta(hours=1), timedelta(minutes=5), 0.02),
    WindowPair(Tier.PAGE, timedelta(hours=6), timedelta(minutes=30), 0.05),
    WindowPair(Tier.TICKET, timedelta(days=1), timedelta(hours=2), 0.10),
    WindowPair(Tier.TICKET, timedelta(days=3), timedelta(hours=6), 0.10),
)
WINDOW_GRANULARITY = timedelta(minutes=1)
"""Scaled windows are rounded to whole minutes."""
MIN_WINDOW = timedelta(minutes=5)
"""No window is shorter: rate() over fewer than a handful of scrapes is noise, or empty."""

_FLOAT_DIGITS = 12
"""Factors and budgets are rounded to this many decimals so that 0.02 x 720 prints as 14.4."""


def error_budget(objective_percent: float) -> float:
    """The allowed error ratio: 99.9 -> 0.001, computed in decimal so it prints as people write it."""
    return float((Decimal(100) - Decimal(repr(objective_percent))) / Decimal(100))


def burn_rate(error_ratio: float, objective_percent: float) -> float:
    """How many times faster than sustainable the budget is spent: 1.0 empties it in one period."""
    return error_ratio / error_budget(objective_percent)


def budget_remaining(period_error_ratio: float, objective_percent: float) -> float:
    """Share of the period's budget left (1.0 untouched, 0.0 spent, negative when overspent)."""
    return 1.0 - period_error_ratio / error_budget(objective_percent)


def time_to_exhaustion(remaining: float, current_burn_rate: float, period: timedelta) -> timedelta | None:
    """How long until the budget is gone at the current burn; None when it is not being spent."""
    if remaining <= 0:
        return timedelta(0)
    if current_burn_rate <= 0:
        return None
    return period * (remaining / current_burn_rate)


def budget_duration(objective_percent: float, period: timedelta) -> timedelta:
    """The budget as time of total outage the period allows (99.9% of 30d -> 43.2 minutes)."""
    return period * error_budget(objective_percent)


def scale_window(window: timedelta, period: timedelta) -> timedelta:
    """A Workbook window scaled to another period, in whole minutes, never under MIN_WINDOW."""
    scaled = window * (period / WORKBOOK_PERIOD)
    return max(MIN_WINDOW, WINDOW_GRANULARITY * round(scaled / WINDOW_GRANULARITY))


@dataclass(frozen=True)
class BurnRateAlert:
    """A window pair made concrete for one period: both windows above threshold -> the alert fires."""

    tier: Tier
    long_window: timedelta
    short_window: timedelta
    budget_share: float
    factor: float
    period: timedelta
    pending: timedelta = timedelta(0)
    """How long both windows must stay above the threshold before the alert fires (Prometheus `for:`)."""

    @property
    def name(self) -> str:
        """`1h/5m`: how operators refer to the pair in runbooks and dashboards."""
        return f"{format_duration(self.long_window)}/{format_duration(self.short_window)}"

    def error_ratio_threshold(self, objective_percent: float) -> float:
        """Error ratio above which both windows must sit for the alert to fire."""
        return round(self.factor * error_budget(objective_percent), _FLOAT_DIGITS)

    def can_fire(self, objective_percent: float) -> bool:
        """False when the threshold is an error ratio of 100% or more, which no service can exceed."""
        return self.error_ratio_threshold(objective_percent) < 1.0

    def detection_time(self, error_ratio: float, objective_percent: float) -> timedelta | None:
        """Time from onset of a constant error ratio (after a clean history) until the alert fires.

        The long window's ratio grows as error_ratio x t / long; it passes the threshold at
        t = threshold x long / error_ratio. The short window passes earlier, so the long one decides.
        Alerts compare with `>`, so an error ratio equal to the threshold never fires.
        """
        threshold = self.error_ratio_threshold(objective_percent)
        if error_ratio <= threshold:
            return None
        return self.long_window * (threshold / error_ratio) + self.pending

    def reset_time(self, error_ratio: float, objective_percent: float) -> timedelta | None:
        """Time from the end of a long incident until the alert stops firing.

        The short window's ratio falls as error_ratio x (short - t) / short and drops under the
        threshold at t = short x (1 - threshold / error_ratio); that is why each pair has one.
        """
        threshold = self.error_ratio_threshold(objective_percent)
        if error_ratio <= threshold:
            return None
        return self.short_window * (1 - threshold / error_ratio)

    def bad_time_allowed(self, objective_percent: float) -> timedelta:
        """Total-outage time within the long window that trips this alert (the window's budget)."""
        return self.long_window * self.error_ratio_threshold(objective_percent)


@functools.lru_cache(maxsize=256)
def burn_rate_alerts(period: timedelta, table: tuple[WindowPair, ...] = WORKBOOK_WINDOWS) -> tuple[BurnRateAlert, ...]:
    """The alert table for a period: windows scaled, factors derived from each row's budget share.

    Cached: every renderer asks for it per SLO, and a fleet has only a handful of distinct periods.
    """
    alerts = []
    for row in table:
        long_window = scale_window(row.long, period)
        short_window = scale_window(row.short, period)
        factor = round(row.budget_share * (period / long_window), _FLOAT_DIGITS)
        alerts.append(BurnRateAlert(row.tier, long_window, short_window, row.budget_share, factor, period))
    return tuple(alerts)


@dataclass(frozen=True)
class DeclaredAlert:
    """A burn-rate alert a declaration writes out: windows and factor as given, never scaled."""

    tier: Tier
    long: timedelta
    short: timedelta
    factor: float
    pending: timedelta = timedelta(0)


@functools.lru_cache(maxsize=256)
def declared_burn_rate_alerts(period: timedelta, declared: tuple[DeclaredAlert, ...]) -> tuple[BurnRateAlert, ...]:
    """Alerts as declared; each one's budget share follows from its factor: factor x long / period."""
    return tuple(
        BurnRateAlert(
            row.tier,
            row.long,
            row.short,
            round(row.factor * (row.long / period), _FLOAT_DIGITS),
            row.factor,
            period,
            row.pending,
        )
        for row in declared
    )


def alert_windows(alerts: Iterable[BurnRateAlert], tiers: Iterable[Tier] = tuple(Tier)) -> tuple[timedelta, ...]:
    """Every distinct window the alerts of the given tiers read, shortest first (for recording rules)."""
    wanted = set(tiers)
    windows = {window for alert in alerts if alert.tier in wanted for window in (alert.long_window, alert.short_window)}
    return tuple(sorted(windows))
