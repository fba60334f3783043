"""`changeType` on gate requests: while the budget is spent, fix, reliability and security changes pass when the budget
is all that fails them — the error budget policy's exception, recorded as one (issue 18; curriculum module 6).

The pipeline on hand-made measurements (as `test_decide.py`), then the wire: `/v1/gates/evaluate` takes the field,
refuses an unknown one by name, and the decision log keeps it.
"""

from __future__ import annotations

from typing import Any

import pytest

from sloplane.declaration.policy import ChangeType
from sloplane.evaluator.deciding.pipeline import DecisionPipeline, GateContext, Related
from sloplane.evaluator.model import GateRequest, Outcome
from sloplane.semantics.subjects import subjects
from tests.test_decide import _declaration, _measurement

SPENT = 0.0015
"""Period error ratio 0.15% against a 0.1% budget: 50% over, the budget is spent."""
QUIET = 0.0001
"""0.1x burn in every window: no alert, no burn-rate failure."""


def _decide(
    change: ChangeType | None, ratio: float = QUIET, period: float = SPENT, gate: dict[str, Any] | None = None
) -> tuple[Outcome, dict[str, Any]]:
    declaration = _declaration(gate)
    request = GateRequest(slo="checkout-availability", change_type=change)
    context = GateContext(declaration, subjects(declaration)[0], request, _measurement(ratio, period=period))
    outcome = DecisionPipeline().decide(context)
    return outcome, {reason.code: reason for reason in context.reasons}


@pytest.mark.parametrize("change", [ChangeType.FIX, ChangeType.RELIABILITY, ChangeType.SECURITY])
def test_a_reliability_change_passes_a_spent_budget_as_a_recorded_exception(change: ChangeType) -> None:
    outcome, reasons = _decide(change)
    assert outcome is Outcome.PASS
    assert "budget-exhausted" in reasons  # the spent budget stays in the record
    exception = reasons["policy-exception"]
    assert exception.values == {
        "change_type": change.value,
        "allowed": ["fix", "reliability", "security"],
        "overridden": "fail",
    }


@pytest.mark.parametrize("change", [ChangeType.FEATURE, None])
def test_a_feature_or_an_undeclared_change_fails_and_is_told_what_would_pass(change: ChangeType | None) -> None:
    outcome, reasons = _decide(change)
    assert outcome is Outcome.FAIL and "policy-exception" not in reasons
    told = reasons["changes-restricted"]
    assert "only fix, reliability, security changes pass" in told.message
    assert told.values["change_type"] == (None if change is None else "feature")


def test_a_burn_happening_now_stops_even_a_fix() -> None:
    outcome, reasons = _decide(ChangeType.FIX, ratio=0.02)  # 20x: page alerts active
    assert outcome is Outcome.FAIL
    assert "alert-active" in reasons and "policy-exception" not in reasons and "changes-restricted" not in reasons


def test_a_low_budget_under_the_policys_minimum_is_the_budget_too() -> None:
    outcome, reasons = _decide(ChangeType.SECURITY, period=0.0008, gate={"minBudgetRemaining": 25})  # 20% left
    assert outcome is Outcome.PASS and "budget-low" in reasons and "policy-exception" in reasons


def test_the_policy_chooses_which_types_pass() -> None:
    assert _decide(ChangeType.FIX, gate={"reliabilityChanges": ["security"]})[0] is Outcome.FAIL
    assert _decide(ChangeType.SECURITY, gate={"reliabilityChanges": ["security"]})[0] is Outcome.PASS
    outcome, reasons = _decide(ChangeType.SECURITY, gate={"reliabilityChanges": []})
    assert outcome is Outcome.FAIL
    assert "no change passes (the policy's reliabilityChanges is [])" in reasons["changes-restricted"].message


def test_a_healthy_budget_needs_no_exception() -> None:
    outcome, reasons = _decide(ChangeType.FEATURE, period=0.0002)
    assert outcome is Outcome.PASS and "policy-exception" not in reasons and "changes-restricted" not in reasons


def test_the_request_writes_the_type_under_its_wire_name() -> None:
    assert GateRequest(slo="x", change_type=ChangeType.FIX).to_dict()["changeType"] == "fix"
    assert GateRequest(slo="x").to_dict()["changeType"] is None


def _decide_beside_a_spent_sibling(
    change: ChangeType | None, ratio: float | None = QUIET, gate: dict[str, Any] | None = None, period: Any = 0.0002
) -> tuple[Outcome, dict[str, Any]]:
    """The SLO itself has budget to spare (0.02% of 0.1% spent); a sibling of its service has spent its own, which
    freezes the service's releases (`freezeOnBudgetExhausted`, the default)."""
    declaration = _declaration(gate)
    subject = subjects(declaration)[0]
    sibling = Related("sibling", declaration, subject, _measurement(QUIET, period=SPENT))
    request = GateRequest(slo="checkout-availability", change_type=change)
    own = _measurement(ratio, period=period)
    context = GateContext(declaration, subject, request, own, related=[sibling])
    outcome = DecisionPipeline().decide(context)
    return outcome, {reason.code: reason for reason in context.reasons}


def test_a_fix_passes_a_siblings_budget_freeze_only_after_every_check() -> None:
    outcome, reasons = _decide_beside_a_spent_sibling(ChangeType.FIX)
    assert outcome is Outcome.PASS and reasons["frozen"].values["kind"] == "budget"
    assert "policy-exception" in reasons and {"budget", "alerts"} <= set(reasons)  # the checks ran


def test_a_siblings_budget_freeze_never_lets_a_burning_fix_through() -> None:
    outcome, reasons = _decide_beside_a_spent_sibling(ChangeType.FIX, ratio=0.02)  # 20x: page alerts active
    assert outcome is Outcome.FAIL and "alert-active" in reasons and "policy-exception" not in reasons


def test_a_siblings_budget_freeze_never_skips_the_assessment_or_the_data() -> None:
    outcome, reasons = _decide_beside_a_spent_sibling(ChangeType.FIX, gate={"requireAssessment": "high"})
    assert outcome is Outcome.FAIL and "assessment-missing" in reasons and "policy-exception" not in reasons
    outcome, reasons = _decide_beside_a_spent_sibling(ChangeType.SECURITY, ratio=None, period=None)
    assert outcome is Outcome.INCONCLUSIVE and "no-data" in reasons and "policy-exception" not in reasons


def test_a_feature_stays_frozen_by_a_siblings_spent_budget_and_is_told_why() -> None:
    outcome, reasons = _decide_beside_a_spent_sibling(ChangeType.FEATURE)
    assert outcome is Outcome.FAIL and "changes-restricted" in reasons and "budget" not in reasons  # guards ended
