"""From a measurement and a gate policy to pass, fail, inconclusive or error, with reasons.

A decision runs through three kinds of steps, in order:

- guards: conditions under which nothing else can be judged (the backend failed, the data is
  stale, there is none, there is too little traffic). The first guard that speaks decides.
- checks: the policy's tests (budget left, burn rate during analysis, an active alert of the
  rollback tier, the canary against its baseline). All run, so every failing test is among the
  reasons; any fail fails, else any inconclusive (too little canary traffic) is inconclusive.
- adjusters: steps that may revise the outcome in context (the baseline breaching too makes a
  breach background, a dependency burning makes it external, break-glass lets a release through).

Release-aware reasoning (freezes, canary attribution, dependencies, break-glass) lives in
`release.py` as further guards, checks and adjusters rather than as special cases. Every step adds the numbers it looked
at to the reasons, whether it passes or not, so a decision explains itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sloplane.core.durations import format_duration
from sloplane.declaration.policy import BackendErrorPolicy, NoDataOutcome
from sloplane.evaluator.deciding.context import Adjuster, GateContext, Related, Step, firing_alerts
from sloplane.evaluator.deciding.release import ADJUSTERS, assessment_required, canary_attribution, frozen
from sloplane.evaluator.model import Outcome

__all__ = ["DecisionPipeline", "GateContext", "Related"]


def backend_fault(context: GateContext) -> Outcome | None:
    """The backend could not be read: fail closed or open, as the policy says."""
    error = context.measurement.error
    if error is None:
        return None
    return _by_fault_policy(context, "backend-error", f"the metrics backend could not be read ({error})", error=error)


def stale_data(context: GateContext) -> Outcome | None:
    """The newest sample is older than the staleness bound: the pipeline feeding the SLI is broken."""
    stale = context.measurement.stale_seconds
    if stale is None:
        return None
    message = f"no samples in the last {stale:g} s: the SLI's data is stale"
    return _by_fault_policy(context, "stale-data", message, staleness_seconds=stale)


def rate_limit_wait(context: GateContext, outcome: Outcome) -> Outcome:
    """Say (last, never changing the outcome) that the numbers waited for Datadog's rate limit, so a
    slow gate explains itself."""
    waited = context.measurement.rate_limit_wait_seconds
    if waited:
        context.note(
            "rate-limit-wait", f"waited {waited:.1f} s for Datadog's rate limit before reading", waited_seconds=waited
        )
    return outcome


def _by_fault_policy(context: GateContext, code: str, message: str, **values: Any) -> Outcome:
    if context.policy.on_backend_error is BackendErrorPolicy.FAIL_OPEN:
        context.note(code, f"{message}; failing open by policy", policy="failOpen", **values)
        return Outcome.PASS
    context.note(code, f"{message}; failing closed by policy", policy="failClosed", **values)
    return Outcome.FAIL


def no_data(context: GateContext) -> Outcome | None:
    """No value for any window or the period: the policy says what that means."""
    if context.measurement.has_data:
        return None
    outcome = {
        NoDataOutcome.INCONCLUSIVE: Outcome.INCONCLUSIVE,
        NoDataOutcome.PASS: Outcome.PASS,
        NoDataOutcome.FAIL: Outcome.FAIL,
    }[context.policy.on_no_data]
    context.note(
        "no-data", f"the SLI has no data; {outcome.value} by policy (onNoData)", policy=context.policy.on_no_data.value
    )
    return outcome


def low_traffic(context: GateContext) -> Outcome | None:
    """Too few events in the analysis window for the ratio to mean anything: inconclusive."""
    policy = context.policy
    window = context.measurement.window(policy.analysis_window)
    events = window.events if window is not None else None
    if policy.min_events <= 0:
        return None
    analysis = format_duration(policy.analysis_window)
    if events is None:
        context.note("no-event-counts", f"this SLI has no event counts; minEvents {policy.min_events} not applied")
        return None
    if events < policy.min_events:
        context.note(
            "low-traffic",
            f"only {events:g} events in the last {analysis} (at least {policy.min_events} needed): inconclusive",
            events=events,
            min_events=policy.min_events,
            window=analysis,
        )
        return Outcome.INCONCLUSIVE
    context.note("traffic", f"{events:g} events in the last {analysis}", events=events, window=analysis)
    return None


def budget_left(context: GateContext) -> Outcome | None:
    """Fail when the budget is spent, or below the policy's minimum to deploy."""
    measurement = context.measurement
    remaining = measurement.budget_remaining
    if remaining is None:
        return None
    minimum = context.policy.min_budget_remaining
    values = {"budget_remaining": remaining, "min_budget_remaining_percent": minimum}
    if remaining <= 0:
        context.note("budget-exhausted", f"the error budget is exhausted ({remaining:.1%} left)", **values)
        return Outcome.FAIL
    if remaining * 100 < minimum:
        context.note(
            "budget-low", f"{remaining:.1%} of the error budget left, the policy needs {minimum:g}% to deploy", **values
        )
        return Outcome.FAIL
    context.note("budget", f"{remaining:.1%} of the error budget left (minimum {minimum:g}%)", **values)
    return None


def burn_during_analysis(context: GateContext) -> Outcome | None:
    """Fail when the burn rate over the analysis window exceeds the policy's maximum."""
    policy = context.policy
    window = context.measurement.window(policy.analysis_window)
    if policy.max_burn_rate is None or window is None or window.burn_rate is None:
        return None
    analysis = format_duration(policy.analysis_window)
    values = {"burn_rate": window.burn_rate, "max_burn_rate": policy.max_burn_rate, "window": analysis}
    if window.burn_rate > policy.max_burn_rate:
        burning = f"burning the budget at {window.burn_rate:.2f}x over the last {analysis}"
        context.note("burn-rate", f"{burning} (maximum {policy.max_burn_rate:g}x)", **values)
        return Outcome.FAIL
    context.note("burn-rate-ok", f"burn rate {window.burn_rate:.2f}x over the last {analysis}", **values)
    return None


def active_alerts(context: GateContext) -> list[tuple[str, float]]:
    """Burn-rate alerts that would be firing now, loud enough to roll back: (name, burn rate)."""
    return firing_alerts(context.declaration, context.measurement, context.policy.rollback_on)


def rollback_tier(context: GateContext) -> Outcome | None:
    """Fail while a burn-rate alert of the rollback tier (or louder) is active."""
    firing = active_alerts(context)
    tier = context.policy.rollback_on.value
    if not firing:
        context.note("alerts", f"no {tier}-tier (or louder) burn-rate alert active", rollback_on=tier)
        return None
    for name, burn in firing:
        context.note(
            "alert-active", f"{name} burn-rate alert active ({burn:.1f}x): roll back", alert=name, burn_rate=burn
        )
    return Outcome.FAIL


GUARDS: tuple[Step, ...] = (frozen, assessment_required, backend_fault, stale_data, no_data, low_traffic)
CHECKS: tuple[Step, ...] = (budget_left, burn_during_analysis, rollback_tier, canary_attribution)


@dataclass(frozen=True)
class DecisionPipeline:
    """Guards, then checks, then adjusters; see the module docstring."""

    guards: Sequence[Step] = GUARDS
    checks: Sequence[Step] = CHECKS
    adjusters: Sequence[Adjuster] = (*ADJUSTERS, rate_limit_wait)

    def decide(self, context: GateContext) -> Outcome:
        """The outcome; reasons accumulate on the context."""
        outcome: Outcome | None = None
        for guard in self.guards:
            outcome = guard(context)
            if outcome is not None:
                break
        if outcome is None:
            results = [check(context) for check in self.checks]
            outcome = next((o for o in (Outcome.FAIL, Outcome.INCONCLUSIVE) if o in results), Outcome.PASS)
        for adjust in self.adjusters:
            outcome = adjust(context, outcome)
        return outcome
