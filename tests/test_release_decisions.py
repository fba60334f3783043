"""Release-aware steps on hand-made contexts: freezes, canary attribution, background, dependencies, break-glass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sloplane.core.budget import burn_rate_alerts
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import Attribution
from sloplane.evaluator.deciding.attribution import Comparison, StageIntervals, baseline_stage, compare
from sloplane.evaluator.deciding.pipeline import DecisionPipeline, GateContext, Related
from sloplane.evaluator.model import BreakGlass, GateRequest, Measurement, Outcome, WindowMeasurement
from sloplane.semantics.subjects import production_subject, subjects

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday
BUDGET = 0.001
TEN_MINUTES = timedelta(minutes=10)


def _declaration(name: str = "shop", gate: dict[str, Any] | None = None, staged: bool = True) -> Declaration:
    spec: dict[str, Any] = {
        "service": name,
        "owners": {"team": "sre"},
        "objective": 99.9,
        "sli": {"http": {"metric": "http_requests_total", "selector": {"job": name}}},
    }
    if staged:
        spec["stages"] = [
            {"name": "canary", "selector": {"stage": "canary"}},
            {"name": "production", "selector": {"stage": "stable"}},
        ]
    if gate is not None:
        spec["gate"] = gate
    data = {"apiVersion": "sloplane.dev/v1alpha1", "kind": "ServiceLevelObjective", "metadata": {"name": name}}
    return Declaration.model_validate({**data, "spec": spec})


def _measurement(ratio: float, *, stage: str | None = "canary", slo: str = "shop", period: float = 0.0) -> Measurement:
    windows = {TEN_MINUTES}
    for alert in burn_rate_alerts(timedelta(days=30)):
        windows |= {alert.long_window, alert.short_window}
    return Measurement(
        slo=slo,
        stage=stage,
        objective=99.9,
        at=AT,
        period_start=AT - timedelta(days=30),
        windows=tuple(WindowMeasurement(w, ratio, ratio / BUDGET, 10_000.0, ratio * 10_000) for w in sorted(windows)),
        period_error_ratio=period,
        period_events=1e7,
        period_bad_events=period * 1e7,
        budget_remaining=1 - period / BUDGET,
    )


def _intervals(stage: str, ratios: list[float], events: float = 100.0) -> StageIntervals:
    return StageIntervals(stage, tuple(r * events for r in ratios), tuple(events for _ in ratios))


def _comparison(canary: list[float], baseline: list[float], events: float = 100.0) -> Comparison:
    return compare(
        _intervals("canary", canary, events),
        _intervals("production", baseline, events),
        budget=BUDGET,
        policy=Attribution(),
        window=TEN_MINUTES,
        step=timedelta(minutes=1),
    )


@dataclass(frozen=True)
class _Freeze:
    id: str = "frz-1"
    service: str | None = None
    reason: str = "payments migration"
    created_by: str = "alice"
    until: datetime | None = None


@dataclass(frozen=True)
class _Incident:
    id: str = "inc-1"
    title: str = "checkout down"
    severity: str = "major"


def _decide(
    declaration: Declaration,
    measurement: Measurement,
    *,
    stage: str | None = "canary",
    related: tuple[tuple[str, Declaration, Measurement], ...] = (),
    request: GateRequest | None = None,
    **fields: Any,
) -> tuple[Outcome, GateContext]:
    subject = next(s for s in subjects(declaration) if s.stage == stage)
    links = []
    for role, other, other_measurement in related:
        other_subject = next(s for s in subjects(other) if s.stage == other_measurement.stage)
        links.append(Related(role, other, other_subject, other_measurement))
    request = request or GateRequest(slo=declaration.name, stage=stage, revision="r1")
    context = GateContext(declaration, subject, request, measurement, related=links, **fields)
    return DecisionPipeline().decide(context), context


def _codes(context: GateContext) -> list[str]:
    return [reason.code for reason in context.reasons]


# -- freezes ---------------------------------------------------------------------------------------


def test_a_manual_freeze_fails_a_healthy_gate_and_says_who_and_why() -> None:
    outcome, context = _decide(_declaration(), _measurement(0.0), freezes=[_Freeze(service="shop")])
    assert outcome is Outcome.FAIL and _codes(context) == ["frozen"]
    assert "alice" in context.reasons[0].message and "payments migration" in context.reasons[0].message
    assert context.reasons[0].values == {"kind": "manual", "freeze": "frz-1", "by": "alice"}


def test_a_major_incident_freezes_every_gate_unless_the_policy_says_otherwise() -> None:
    outcome, context = _decide(_declaration(), _measurement(0.0), incidents=[_Incident()])
    assert outcome is Outcome.FAIL and context.reasons[0].values["kind"] == "incident"
    relaxed = _declaration(gate={"freezeOnMajorIncident": False})
    outcome, context = _decide(relaxed, _measurement(0.0), incidents=[_Incident()])
    assert outcome is Outcome.PASS and "frozen" not in _codes(context)


def test_scheduled_freezes_apply_inside_their_window_and_stage_only() -> None:
    friday = {"name": "friday-afternoon", "schedule": "0 12 * * 5", "duration": "6h", "timeZone": "UTC"}
    declaration = _declaration(gate={"freezes": [friday]})
    outcome, context = _decide(declaration, _measurement(0.0))  # Friday 12:00: the window has just begun
    assert outcome is Outcome.FAIL and context.reasons[0].values["window"] == "friday-afternoon"
    later = _measurement(0.0).__class__(**{**_measurement(0.0).__dict__, "at": AT + timedelta(hours=6)})
    assert _decide(declaration, later)[0] is Outcome.PASS  # 18:00: over
    only_production = _declaration(gate={"freezes": [{**friday, "stages": ["production"]}]})
    assert _decide(only_production, _measurement(0.0))[0] is Outcome.PASS  # the canary is not frozen


def test_a_spent_budget_of_another_slo_of_the_service_freezes_its_releases() -> None:
    sibling = _declaration("shop-latency", staged=False)
    spent = _measurement(0.0, stage=None, slo="shop-latency", period=0.0012)
    outcome, context = _decide(_declaration(), _measurement(0.0), related=(("sibling", sibling, spent),))
    assert outcome is Outcome.FAIL and context.reasons[0].values["slo"] == "shop-latency"
    relaxed = _declaration(gate={"freezeOnBudgetExhausted": False})
    assert _decide(relaxed, _measurement(0.0), related=(("sibling", sibling, spent),))[0] is Outcome.PASS


def test_unreadable_controls_fail_closed_with_the_error() -> None:
    outcome, context = _decide(_declaration(), _measurement(0.0), controls_error="disk I/O error")
    assert outcome is Outcome.FAIL and "disk I/O error" in context.reasons[0].message


# -- canary attribution ----------------------------------------------------------------------------


def test_a_canary_clearly_worse_than_stable_fails_with_its_p_value() -> None:
    comparison = _comparison([0.05] * 10, [0.0005, 0.0, 0.001, 0.0, 0.0005, 0.0, 0.001, 0.0, 0.0, 0.0005])
    assert comparison.verdict == "worse" and comparison.p_value is not None and comparison.p_value < 1e-3
    assert comparison.effect == pytest.approx((0.05 - 0.00035) / BUDGET)
    baseline = ("baseline", _declaration(), _measurement(0.0003, stage="production"))
    outcome, context = _decide(_declaration(), _measurement(0.05), related=(baseline,), comparison=comparison)
    assert outcome is Outcome.FAIL and "canary-worse" in _codes(context)
    worse = next(r for r in context.reasons if r.code == "canary-worse")
    assert worse.values["p_value"] == comparison.p_value and "p = " in worse.message


def test_significant_but_negligible_differences_do_not_fail() -> None:
    comparison = _comparison([0.0004] * 10, [0.0001] * 9 + [0.0002])  # +0.3x burn: below minEffect 1.0
    assert comparison.p_value is not None and comparison.p_value < 0.01
    assert comparison.verdict == "comparable"


@given(
    st.lists(st.floats(0, 0.01), min_size=5, max_size=30),
    st.lists(st.floats(0, 0.01), min_size=5, max_size=30),
    st.floats(1, 1e5),
)
def test_noise_smaller_than_the_minimum_effect_never_fails_a_release(
    canary: list[float], baseline: list[float], events: float
) -> None:
    comparison = _comparison(canary, baseline, events)
    effect = (sum(canary) / len(canary) - sum(baseline) / len(baseline)) / BUDGET
    if effect < Attribution().min_effect * (1 - 1e-9):
        assert comparison.verdict != "worse"
    if comparison.verdict == "worse":
        assert comparison.p_value is not None and comparison.p_value < Attribution().alpha


def test_little_canary_traffic_is_inconclusive_never_pass() -> None:
    comparison = _comparison([0.0] * 10, [0.0] * 10, events=5.0)  # 50 canary events < 100
    assert comparison.verdict == "low-traffic"
    baseline = ("baseline", _declaration(), _measurement(0.0, stage="production"))
    outcome, context = _decide(_declaration(), _measurement(0.0), related=(baseline,), comparison=comparison)
    assert outcome is Outcome.INCONCLUSIVE and "canary-low-traffic" in _codes(context)


# -- background and dependencies -------------------------------------------------------------------


def test_a_breach_the_baseline_shares_is_background_not_a_rollback() -> None:
    comparison = _comparison([1.0] * 10, [1.0] * 10)
    assert comparison.verdict == "comparable"
    baseline = ("baseline", _declaration(), _measurement(1.0, stage="production"))
    outcome, context = _decide(_declaration(), _measurement(1.0), related=(baseline,), comparison=comparison)
    assert outcome is Outcome.INCONCLUSIVE
    assert "alert-active" in _codes(context) and _codes(context)[-1] == "background"


def test_a_canary_worse_than_a_breaching_baseline_still_fails() -> None:
    comparison = _comparison([1.0] * 10, [0.05] * 10)
    baseline = ("baseline", _declaration(), _measurement(0.05, stage="production"))
    outcome, context = _decide(_declaration(), _measurement(1.0), related=(baseline,), comparison=comparison)
    assert outcome is Outcome.FAIL and "background" not in _codes(context)


def test_a_burning_dependency_makes_a_breach_inconclusive_and_is_named() -> None:
    payments = _declaration("payments", staged=False)
    frontend = _declaration("frontend", gate={"dependencies": ["payments"]}, staged=False)
    burning = ("dependency", payments, _measurement(1.0, stage=None, slo="payments"))
    outcome, context = _decide(frontend, _measurement(0.5, stage=None, slo="frontend"), stage=None, related=(burning,))
    assert outcome is Outcome.INCONCLUSIVE and _codes(context)[-1] == "dependency"
    assert context.reasons[-1].values["dependency"] == "payments" and "payments" in context.reasons[-1].message
    calm = ("dependency", payments, _measurement(0.0, stage=None, slo="payments"))
    assert (
        _decide(frontend, _measurement(0.5, stage=None, slo="frontend"), stage=None, related=(calm,))[0] is Outcome.FAIL
    )


def test_a_freeze_is_not_explained_away_by_a_dependency() -> None:
    payments = _declaration("payments", staged=False)
    frontend = _declaration("frontend", gate={"dependencies": ["payments"]}, staged=False)
    burning = ("dependency", payments, _measurement(1.0, stage=None, slo="payments"))
    outcome, _ = _decide(
        frontend, _measurement(0.5, stage=None, slo="frontend"), stage=None, related=(burning,), incidents=[_Incident()]
    )
    assert outcome is Outcome.FAIL


# -- break-glass -----------------------------------------------------------------------------------


def test_break_glass_passes_a_failing_gate_and_records_who_why_and_what_it_overrode() -> None:
    request = GateRequest(slo="shop", stage="canary", break_glass=BreakGlass("hotfix for INC-42", "bob"))
    outcome, context = _decide(_declaration(), _measurement(0.0), request=request, freezes=[_Freeze()])
    assert outcome is Outcome.PASS
    assert _codes(context) == ["frozen", "break-glass"]
    assert context.reasons[-1].values == {"identity": "bob", "reason": "hotfix for INC-42", "overridden": "fail"}
    assert request.to_dict()["breakGlass"] == {"reason": "hotfix for INC-42", "identity": "bob"}


def test_break_glass_on_a_passing_gate_is_noted_but_changes_nothing() -> None:
    request = GateRequest(slo="shop", stage="canary", break_glass=BreakGlass("just in case", "bob"))
    outcome, context = _decide(_declaration(), _measurement(0.0), request=request)
    assert outcome is Outcome.PASS and _codes(context)[-1] == "break-glass-unused"


def test_the_baseline_is_the_production_stage_or_the_declared_one() -> None:
    declaration = _declaration()
    assert production_subject(declaration).stage == "production"
    chosen = baseline_stage(declaration, "canary")
    assert chosen is not None and chosen.name == "production"
    assert baseline_stage(declaration, "production") is None  # production is not compared with itself
    assert baseline_stage(_declaration(staged=False), None) is None
    assert baseline_stage(_declaration(gate={"attribution": {"enabled": False}}), "canary") is None
