"""What Datadog can express of a declaration, and the lints for what it cannot (`targets: [datadog]`).

Datadog's SLOs know only rolling 7, 30 and 90 days, targets with at most three decimals, and
burn-rate monitors whose long window lies between 1h and 48h; it allows, per SLO over 90 days, 100
one-off and 2 daily, 3 weekly and 5 monthly recurring corrections. The Datadog renderer maps a
declaration through the functions here and the checks below say, at the declaration's own line,
where that mapping is not exact (a warning) or impossible (an error). One module, so the rendered
objects and the lints can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sloplane.core.budget import BurnRateAlert, Tier
from sloplane.core.schedules import UnsupportedScheduleError, cron_recurrences
from sloplane.declaration.diagnostics import Diagnostic, Loc, Severity
from sloplane.declaration.model import BudgetingMethod, Spec
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.policy import TargetSystem

TIMEFRAMES: dict[timedelta, str] = {timedelta(days=7): "7d", timedelta(days=30): "30d", timedelta(days=90): "90d"}
"""The only SLO timeframes Datadog accepts (its `custom` cannot be created)."""
MIN_LONG_WINDOW = timedelta(hours=1)
MAX_LONG_WINDOW = timedelta(hours=48)
"""A burn-rate monitor's long window must lie in [1h, 48h]; its short window must be shorter."""
SHORT_TO_LONG = 12
"""The Workbook's ratio of long to short window, kept when a window pair has to move."""
TARGET_DECIMALS = 3
CORRECTION_LIMITS = {"one-off": 100, "DAILY": 2, "WEEKLY": 3, "MONTHLY": 5}
"""Corrections Datadog keeps per SLO over 90 days, by kind."""


def timeframe(spec: Spec) -> str:
    """The Datadog timeframe for the SLO's window: exact for 7/30/90 days, else the nearest (see the lint)."""
    period = spec.window.period
    exact = TIMEFRAMES.get(period)
    if exact is not None:
        return exact
    return TIMEFRAMES[min(TIMEFRAMES, key=lambda choice: abs(choice - period))]


def timeframe_period(spec: Spec) -> timedelta:
    """The period Datadog measures the SLO over (the timeframe's length)."""
    return next(period for period, name in TIMEFRAMES.items() if name == timeframe(spec))


@dataclass(frozen=True)
class MonitorWindows:
    """One burn-rate alert as a Datadog monitor can say it: its windows and factor, and whether it moved."""

    alert: BurnRateAlert
    long_window: timedelta
    short_window: timedelta
    factor: float
    moved: bool


def monitor_windows(alert: BurnRateAlert, period: timedelta) -> MonitorWindows:
    """The alert's windows clamped into Datadog's [1h, 48h], spending the same share of the budget.

    A long window outside the range becomes the nearest bound, its short window a twelfth of it (the
    Workbook's ratio), and the factor whatever spends the same budget share over the new long window:
    the Workbook's 3d/6h ticket (10% of a 30d budget) becomes 48h/4h at 1.5. It fires on the same
    budget spend, a little later for slow burns and earlier for fast ones.
    """
    long_window = min(max(alert.long_window, MIN_LONG_WINDOW), MAX_LONG_WINDOW)
    if long_window == alert.long_window and alert.short_window < alert.long_window:
        return MonitorWindows(alert, alert.long_window, alert.short_window, alert.factor, moved=False)
    short_window = long_window / SHORT_TO_LONG
    factor = round(alert.budget_share * (period / long_window), 12)
    return MonitorWindows(alert, long_window, short_window, factor, moved=True)


TIME_SLICES = (timedelta(minutes=1), timedelta(minutes=5))
"""The only slices a Datadog time-slice SLO takes."""


def time_slice_seconds(spec: Spec) -> int:
    """A threshold SLI's slice for Datadog: the declared timeslice (else the interval), 60 or 300 seconds."""
    wanted = spec.timeslice.window if spec.timeslice is not None else spec.interval
    return int(min(TIME_SLICES, key=lambda choice: abs(choice - wanted)).total_seconds())


def target_text(percent: float) -> str | None:
    """The objective as Datadog takes it (at most three decimals), or None when it has more."""
    exact = Decimal(repr(percent))
    return None if exact != round(exact, TARGET_DECIMALS) else format(exact.normalize(), "f")


def _datadog(slo: LoadedSLO) -> bool:
    return TargetSystem.DATADOG in slo.declaration.spec.targets


def check_datadog(slo: LoadedSLO) -> Iterator[Diagnostic]:
    """Where a declaration that targets Datadog cannot be rendered exactly (warnings) or at all (errors)."""
    if not _datadog(slo):
        return
    spec = slo.declaration.spec
    if spec.window.period not in TIMEFRAMES or spec.window.calendar is not None:
        yield slo.diagnostic(
            ("spec", "window"),
            f"Datadog SLOs are rolling 7d, 30d or 90d only: the {spec.window.describe()} window is rendered "
            f"as {timeframe(spec)} rolling for Datadog (sloplane's evaluator keeps {spec.window.describe()})",
            severity=Severity.WARNING,
            code="lint/datadog-timeframe",
        )
    objectives: list[tuple[Loc, float]] = [(("spec", "objective"), spec.objective)]
    objectives += [
        (("spec", "stages", index, "objective"), stage.objective)
        for index, stage in enumerate(spec.stages)
        if stage.objective is not None
    ]
    for loc, objective in objectives:
        if target_text(objective) is None:
            yield slo.diagnostic(
                loc, f"Datadog targets have at most {TARGET_DECIMALS} decimals: {objective:g}", code="datadog-target"
            )
    if spec.sli.composite is not None:
        yield slo.diagnostic(("spec", "sli", "composite"), "Datadog has no composite SLOs", code="datadog-sli")
    yield from _not_rendered(slo)
    yield from _check_corrections(slo)


def _not_rendered(slo: LoadedSLO) -> Iterator[Diagnostic]:
    """What the declaration says that Datadog's objects cannot carry: a warning each, never a silent no-op."""
    spec = slo.declaration.spec

    def warning(loc: Loc, message: str) -> Diagnostic:
        return slo.diagnostic(loc, message, severity=Severity.WARNING, code="lint/datadog-not-rendered")

    if spec.budgeting_method is BudgetingMethod.TIMESLICES and spec.sli.threshold is None:
        yield warning(
            ("spec", "budgetingMethod"),
            "Datadog's SLO counts events: the timeslice budget is kept by sloplane's rules and evaluator only",
        )
    if spec.sli.threshold is not None and spec.timeslice is not None and spec.timeslice.window not in TIME_SLICES:
        yield warning(
            ("spec", "timeslice", "window"),
            f"Datadog time slices are 1m or 5m: rendered as {time_slice_seconds(spec) // 60}m for Datadog",
        )
    if spec.alerting.deployment_signal is not None:
        yield warning(
            ("spec", "alerting", "deploymentSignal"),
            "Datadog monitors do not tell burns during a rollout from others: one monitor per window pair",
        )
    routing = spec.alerting.routing
    if routing.deployment and routing.background and routing.deployment != routing.background:
        yield warning(
            ("spec", "alerting", "routing", "deployment"),
            f"Datadog monitors cannot route by cause: they notify '{routing.background}' (the background receiver)",
        )
    for index, stage in enumerate(spec.stages):
        if stage.counts_toward_production:
            yield warning(
                ("spec", "stages", index, "countsTowardProduction"),
                "the Datadog SLO of the production stage counts its own traffic only",
            )


def _check_corrections(slo: LoadedSLO) -> Iterator[Diagnostic]:
    """Recurring maintenance as RRULEs, and the per-SLO counts Datadog keeps."""
    exclusions = slo.declaration.spec.exclusions
    counts = {"one-off": len(exclusions.windows) + len(exclusions.emergency_changes)}
    for index, window in enumerate(exclusions.maintenance):
        loc = ("spec", "exclusions", "maintenance", index, "schedule")
        try:
            recurrences = cron_recurrences(window.schedule)
        except UnsupportedScheduleError as error:
            yield slo.diagnostic(loc, f"Datadog corrections repeat by RRULE: {error}", code="datadog-correction")
            continue
        for recurrence in recurrences:
            counts[recurrence.frequency] = counts.get(recurrence.frequency, 0) + 1
    for kind, count in counts.items():
        limit = CORRECTION_LIMITS[kind]
        if count > limit:
            yield slo.diagnostic(
                ("spec", "exclusions"),
                f"Datadog keeps at most {limit} {kind.lower()} corrections per SLO; these exclusions need {count}",
                code="datadog-correction",
            )


def page_priority(tier: Tier) -> int:
    """Datadog monitor priority (1 high … 5 low): a page is P1, a ticket P3."""
    return 1 if tier is Tier.PAGE else 3
