"""The decision pipeline on hand-made measurements: each guard and check, and their order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from sloplane.core.budget import burn_rate_alerts
from sloplane.declaration.model import Declaration
from sloplane.evaluator.deciding.pipeline import DecisionPipeline, GateContext
from sloplane.evaluator.model import GateRequest, Measurement, Outcome, WindowMeasurement
from sloplane.semantics.subjects import subjects
from tests.conftest import minimal

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BUDGET = 0.001


def _declaration(gate: dict[str, Any] | None = None) -> Declaration:
    data = yaml.safe_load(minimal())
    if gate is not None:
        data["spec"]["gate"] = gate
    return Declaration.model_validate(data)


def _measurement(
    ratio: float | None, period: float | None = 0.0, events: float | None = 1000.0, **extra: Any
) -> Measurement:
    windows = {timedelta(minutes=10)}
    for alert in burn_rate_alerts(timedelta(days=30)):
        windows |= {alert.long_window, alert.short_window}
    return Measurement(
        slo="checkout-availability",
        stage=None,
        objective=99.9,
        at=AT,
        period_start=AT - timedelta(days=30),
        windows=tuple(
            WindowMeasurement(w, ratio, None if ratio is None else ratio / BUDGET, events) for w in sorted(windows)
        ),
        period_error_ratio=period,
        budget_remaining=None if period is None else 1 - period / BUDGET,
        **extra,
    )


def _decide(measurement: Measurement, gate: dict[str, Any] | None = None) -> tuple[Outcome, list[str]]:
    declaration = _declaration(gate)
    context = GateContext(declaration, subjects(declaration)[0], GateRequest(slo="checkout-availability"), measurement)
    outcome = DecisionPipeline().decide(context)
    return outcome, [reason.code for reason in context.reasons]


def test_healthy_passes_with_its_numbers() -> None:
    outcome, codes = _decide(_measurement(0.0001, period=0.0002))
    assert outcome is Outcome.PASS
    assert codes == ["budget", "alerts"]


def test_default_policy_fails_on_a_page_burn_and_on_an_exhausted_budget() -> None:
    assert _decide(_measurement(0.02))[0] is Outcome.FAIL  # 20x: both page pairs active
    outcome, codes = _decide(_measurement(0.0001, period=0.0015))
    assert outcome is Outcome.FAIL and "budget-exhausted" in codes


def test_ticket_burn_passes_unless_the_policy_rolls_back_on_tickets() -> None:
    ticket_only = _measurement(0.004)  # 4x: above the ticket factors 3 and 1, below the pages
    assert _decide(ticket_only)[0] is Outcome.PASS
    assert _decide(ticket_only, {"rollbackOn": "ticket"})[0] is Outcome.FAIL


def test_min_budget_and_max_burn_rate() -> None:
    outcome, codes = _decide(_measurement(0.0001, period=0.0008), {"minBudgetRemaining": 25})
    assert outcome is Outcome.FAIL and codes[0] == "budget-low"
    outcome, codes = _decide(_measurement(0.003), {"maxBurnRate": 2})
    assert outcome is Outcome.FAIL and "burn-rate" in codes


def test_all_failing_checks_are_reasons() -> None:
    outcome, codes = _decide(_measurement(0.02, period=0.002), {"maxBurnRate": 2})
    assert outcome is Outcome.FAIL
    assert {"budget-exhausted", "burn-rate", "alert-active"} <= set(codes)


@pytest.mark.parametrize(
    ("policy", "expected"), [("inconclusive", Outcome.INCONCLUSIVE), ("pass", Outcome.PASS), ("fail", Outcome.FAIL)]
)
def test_no_data_follows_the_policy(policy: str, expected: Outcome) -> None:
    outcome, codes = _decide(_measurement(None, period=None), {"onNoData": policy})
    assert outcome is expected and codes == ["no-data"]


def test_low_traffic_is_inconclusive() -> None:
    outcome, codes = _decide(_measurement(0.5, events=20), {"minEvents": 100})
    assert outcome is Outcome.INCONCLUSIVE and codes == ["low-traffic"]


@pytest.mark.parametrize(("policy", "expected"), [("failClosed", Outcome.FAIL), ("failOpen", Outcome.PASS)])
def test_backend_errors_and_stale_data_follow_the_policy(policy: str, expected: Outcome) -> None:
    broken = _measurement(None, period=None, error="timeout: no answer")
    assert _decide(broken, {"onBackendError": policy}) == (expected, ["backend-error"])
    stale = _measurement(0.0001, stale_seconds=300.0)
    assert _decide(stale, {"onBackendError": policy}) == (expected, ["stale-data"])


def test_adjusters_see_and_revise_the_outcome() -> None:
    declaration = _declaration()
    context = GateContext(declaration, subjects(declaration)[0], GateRequest(slo="x"), _measurement(0.02))
    seen: list[Outcome] = []

    def external(ctx: GateContext, outcome: Outcome) -> Outcome:
        seen.append(outcome)
        ctx.note("dependency", "a dependency is down")
        return Outcome.INCONCLUSIVE

    assert DecisionPipeline(adjusters=(external,)).decide(context) is Outcome.INCONCLUSIVE
    assert seen == [Outcome.FAIL] and context.reasons[-1].code == "dependency"
