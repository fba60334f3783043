"""What a declaration means in minutes: budgets, thresholds, detection and reset times.

`sloplane explain` prints this so that an objective is negotiated in terms people feel ("a full
outage pages after 52 seconds; 1% errors never page, they ticket after 3.6 hours") rather than in
nines. Pure data; the CLI formats it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sloplane.core.budget import BurnRateAlert, budget_duration, error_budget
from sloplane.declaration.datadog_limits import MonitorWindows, monitor_windows, timeframe_period
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import TargetSystem

EXPLAINED_ERROR_RATIOS = (1.0, 0.10, 0.01)
"""Error ratios whose detection times are shown: a full outage, a bad and a mild degradation."""


@dataclass(frozen=True)
class AlertExplanation:
    """One burn-rate alert of one objective, in numbers."""

    tier: str
    windows: str
    enabled: bool
    factor: float
    error_ratio_threshold: float
    can_fire: bool
    bad_time_allowed: timedelta
    budget_share: float
    detection: dict[float, timedelta | None]
    reset_after_full_outage: timedelta | None
    datadog: MonitorWindows | None = None
    """The Datadog monitor's windows and factor, for SLOs that target Datadog (moved when out of its range)."""


@dataclass(frozen=True)
class ObjectiveExplanation:
    """An SLO (or one of its stages) with its objective, budget and alerts."""

    slo: str
    stage: str | None
    objective: float
    window: str
    period: timedelta
    error_budget: float
    budget_time: timedelta
    alerts: tuple[AlertExplanation, ...]


def _alert(
    alert: BurnRateAlert, objective: float, enabled: bool, datadog_period: timedelta | None = None
) -> AlertExplanation:
    return AlertExplanation(
        tier=alert.tier.value,
        windows=alert.name,
        enabled=enabled,
        factor=alert.factor,
        error_ratio_threshold=alert.error_ratio_threshold(objective),
        can_fire=alert.can_fire(objective),
        bad_time_allowed=alert.bad_time_allowed(objective),
        budget_share=alert.budget_share,
        detection={ratio: alert.detection_time(ratio, objective) for ratio in EXPLAINED_ERROR_RATIOS},
        reset_after_full_outage=alert.reset_time(1.0, objective),
        datadog=monitor_windows(alert, datadog_period) if datadog_period is not None else None,
    )


def explain(declaration: Declaration) -> list[ObjectiveExplanation]:
    """The SLO's objective, then each stage whose objective differs."""
    spec = declaration.spec
    period = spec.window.period
    tiers = set(spec.alerting.enabled_tiers())
    alerts = spec.burn_rate_alerts()
    datadog_period = timeframe_period(spec) if TargetSystem.DATADOG in spec.targets else None
    objectives: list[tuple[str | None, float]] = [(None, spec.objective)]
    objectives += [(stage.name, stage.objective) for stage in spec.stages if stage.objective is not None]
    return [
        ObjectiveExplanation(
            slo=declaration.name,
            stage=stage,
            objective=objective,
            window=spec.window.describe(),
            period=period,
            error_budget=error_budget(objective),
            budget_time=budget_duration(objective, period),
            alerts=tuple(_alert(alert, objective, alert.tier in tiers, datadog_period) for alert in alerts),
        )
        for stage, objective in objectives
    ]
