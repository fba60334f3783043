"""Argo Rollouts analysis with the `datadog` provider: burn rates and budget left from Datadog event counts.

Each metric is one request to Datadog's `POST /api/v2/query/scalar`, as Argo sends it
(`apiVersion: v2`): the SLI's event counts (`semantics.datadog.datadog_queries`, a stage's tags
merged into its filters as the Datadog renderer does) as `queries`, summed over the metric's
`interval` (`aggregator: sum`, the window `[now - interval, now]`), combined by one `formula` into
a burn rate or the share of budget left. Both conditions are guarded (`result != nil && ...`, see
the grammar in `argo_rollouts`), so an empty answer is Inconclusive, never a pass.

Credentials are not in the template: Argo reads them from the `datadog` Secret in the Argo Rollouts
controller's namespace, keys `api-key`, `app-key` and `address` (the API host,
`https://api.datadoghq.eu` for another site). The template names that Secret in `secretRef`, so
whoever reads it knows what to provision; without the name Argo would first try the controller's
`DD_*` environment.

The window pair, and where this differs from the evaluator and the alerts. Argo gives a Datadog
metric one `interval`, and its formula combines queries over that one window, so "the long AND the
short window burn above the factor" (what the alert fires on, and what the prometheus provider says
as the lower of the two burns) cannot be one metric. Each window of every gating pair (the rollback
tier and louder) is its own metric instead, `burn-rate-<window>`, failing above the pair's factor
(the lowest factor when two pairs share a window). Argo fails the run when any metric fails, so the
gate fails whenever the alert would fire, and also when only one window of a pair burns: a burst
the long window has not confirmed yet, or a burn that stopped but that the long window still
remembers (for up to the long window after recovery). That is stricter than the evaluator, never
laxer; the `web` provider asks the evaluator for its exact decision (and break-glass) instead.

Other differences, all on the strict side or shared with the prometheus provider:
- `minEvents` is a metric of its own (`events-analysis-window`, the analysis window's events): it
  succeeds at `minEvents` and never fails, so too little traffic makes the run Inconclusive, but
  the burn metrics can still fail on the little there is (the evaluator says inconclusive).
- `budget-remaining` reads the raw counts over one rolling period (a calendar window's nominal
  length, as the prometheus provider does); a timeslice budget cannot be computed from counts and
  the declaration checks refuse it, as they refuse an SLI without Datadog event counts.
- A production stage reads its own traffic only: stages marked `countsTowardProduction` are not
  added (a formula over an empty stage would be empty), a warning at the declaration's line.
- Datadog answers an errors query that has no point in the window with no data, so the burn of an
  SLI counting errors is Inconclusive until its error series exists (a fresh canary that never
  failed); an SLI declaring `good` events does not have this gap.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sloplane.core.budget import error_budget
from sloplane.core.durations import format_duration
from sloplane.core.durations import format_go_duration as go_duration
from sloplane.declaration.model import BudgetingMethod, Declaration
from sloplane.render.argo_analysis import ArgoRenderError, Guard, Threshold, gating_tiers
from sloplane.semantics.datadog import DatadogQueries, datadog_queries
from sloplane.semantics.subjects import Subject

SECRET_NAME = "datadog"
"""The Secret Argo's datadog provider reads by default; its keys are `SECRET_KEYS`."""
SECRET_KEYS = ("api-key", "app-key", "address")
API_VERSION = "v2"
AGGREGATOR = "sum"
"""Event counts add up over the window; Argo's default (`last`) would read one bucket."""
REQUEST_TIMEOUT = "30s"
"""A period-long budget query can take longer than Argo's default 10s."""
NEVER = Guard.SCALAR.value + " < 0"
"""The failure condition of the events metric: a count is never negative, so it never fails."""


def _formula_number(value: float) -> str:
    """A number as Datadog's formula parser reads it: fixed point, never `1e-05`."""
    return format(Decimal(repr(round(value, 12))).normalize(), "f")


class _Counts:
    """One subject's Datadog event counts as `queries` and the error-ratio formula over them."""

    def __init__(self, declaration: Declaration, subject: Subject) -> None:
        spec = declaration.spec
        stage = spec.stage(subject.stage) if subject.stage is not None else None
        found = datadog_queries(spec.sli, dict(stage.selector) if stage is not None else {})
        if found is None:
            raise ArgoRenderError(
                f"{declaration.name}: the {spec.sli.kind} SLI has no Datadog event counts for the datadog "
                "analysis provider (the declaration checks refuse this)"
            )
        self.found: DatadogQueries = found
        self.budget = _formula_number(error_budget(subject.objective))

    @property
    def queries(self) -> dict[str, str]:
        """Bad (or good) and all events, named as the formulas use them."""
        if self.found.errors is not None:
            return {"errors": self.found.errors, "total": self.found.total}
        assert self.found.good is not None
        return {"good": self.found.good, "total": self.found.total}

    @property
    def error_ratio(self) -> str:
        """Bad over all events; empty when a query is (no traffic, or no bad-event series yet)."""
        if self.found.errors is not None:
            return "errors / total"
        return "(total - good) / total"

    def burn(self) -> str:
        """The error ratio in units of the budget: 1 spends it exactly over the period."""
        return f"({self.error_ratio}) / {self.budget}"

    def budget_left(self) -> str:
        """The share of the period's budget not yet spent (negative once overspent)."""
        return f"1 - ({self.error_ratio}) / {self.budget}"


def _metric(
    name: str, window: timedelta, queries: dict[str, str], formula: str, conditions: tuple[str, str]
) -> dict[str, Any]:
    success, failure = conditions
    return {
        "name": name,
        "successCondition": success,
        "failureCondition": failure,
        "provider": {
            "datadog": {
                "apiVersion": API_VERSION,
                "interval": go_duration(window),
                "queries": queries,
                "formula": formula,
                "aggregator": AGGREGATOR,
                "requestTimeout": REQUEST_TIMEOUT,
                "secretRef": {"name": SECRET_NAME},
            }
        },
    }


def _window_factors(declaration: Declaration, subject: Subject) -> dict[timedelta, float]:
    """Every window of the gating pairs with the lowest factor any of them has there, long window first."""
    gate = declaration.spec.effective_gate
    tiers = gating_tiers(gate.rollback_on)
    factors: dict[timedelta, float] = {}
    for alert in declaration.spec.burn_rate_alerts():
        if alert.tier not in tiers or not alert.can_fire(subject.objective):
            continue
        for window in (alert.long_window, alert.short_window):
            factors[window] = min(factors.get(window, alert.factor), alert.factor)
    return factors


def datadog_metrics(declaration: Declaration, subject: Subject) -> list[dict[str, Any]]:
    """The metrics of one subject: each gating window's burn, the analysis window's, events, budget left."""
    spec = declaration.spec
    gate = spec.effective_gate
    if spec.budgeting_method is BudgetingMethod.TIMESLICES:
        raise ArgoRenderError(f"{declaration.name}: a timeslice budget cannot be read from Datadog counts")
    counts = _Counts(declaration, subject)
    burn = counts.burn()
    metrics = [
        _metric(
            f"burn-rate-{format_duration(window)}",
            window,
            counts.queries,
            burn,
            Threshold(factor, fail_above=True).conditions(Guard.SCALAR),
        )
        for window, factor in _window_factors(declaration, subject).items()
    ]
    if gate.max_burn_rate is not None:
        threshold = Threshold(gate.max_burn_rate, fail_above=True)
        metrics.append(
            _metric(
                "burn-rate-analysis-window",
                gate.analysis_window,
                counts.queries,
                burn,
                threshold.conditions(Guard.SCALAR),
            )
        )
    if gate.min_events > 0:
        success = Threshold(float(gate.min_events), fail_above=False).conditions(Guard.SCALAR)[0]
        total = {"total": counts.found.total}
        metrics.append(_metric("events-analysis-window", gate.analysis_window, total, "total", (success, NEVER)))
    minimum = gate.min_budget_remaining / 100
    budget = Threshold(minimum, fail_above=False, inclusive=minimum <= 0)
    metrics.append(
        _metric(
            "budget-remaining",
            spec.window.period,
            counts.queries,
            counts.budget_left(),
            budget.conditions(Guard.SCALAR),
        )
    )
    return metrics
