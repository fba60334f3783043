"""Defaults and derived properties of the declaration model."""

from datetime import timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sloplane.core.budget import Tier
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import DEFAULT_GATE, BackendErrorPolicy, NoDataOutcome
from tests.conftest import minimal


def _declaration(**spec: Any) -> Declaration:
    data = yaml.safe_load(minimal())
    data["spec"].update(spec)
    return Declaration.model_validate(data)


def test_defaults_are_the_documented_ones() -> None:
    spec = _declaration().spec
    assert spec.window.period == timedelta(days=30)
    assert spec.interval == timedelta(minutes=1)
    assert spec.alerting.enabled_tiers() == (Tier.PAGE, Tier.TICKET)
    assert spec.gate is None and spec.effective_gate == DEFAULT_GATE
    assert DEFAULT_GATE.rollback_on is Tier.PAGE
    assert DEFAULT_GATE.on_no_data is NoDataOutcome.INCONCLUSIVE
    assert DEFAULT_GATE.on_backend_error is BackendErrorPolicy.FAIL_CLOSED
    assert spec.error_budget == pytest.approx(0.001)


def test_production_stage_is_marked_named_or_last() -> None:
    marked = _declaration(stages=[{"name": "a", "production": True}, {"name": "production"}]).spec
    assert marked.production_stage is not None and marked.production_stage.name == "a"
    named = _declaration(stages=[{"name": "production"}, {"name": "shadow"}]).spec
    assert named.production_stage is not None and named.production_stage.name == "production"
    last = _declaration(stages=[{"name": "canary"}, {"name": "main"}]).spec
    assert last.production_stage is not None and last.production_stage.name == "main"
    assert _declaration().spec.production_stage is None


def test_stage_objective_falls_back_to_the_slo() -> None:
    spec = _declaration(stages=[{"name": "canary", "objective": 99}, {"name": "production"}]).spec
    assert spec.stage_objective(spec.stage("canary")) == 99
    assert spec.stage_objective(spec.stage("production")) == 99.9


@pytest.mark.parametrize(
    ("window", "days"),
    [
        ("28d", 28),
        ({"rolling": "7d"}, 7),
        ({"calendar": "month", "timeZone": "Europe/Berlin"}, 30),
        ({"calendar": "quarter"}, 90),
    ],
)
def test_windows(window: Any, days: int) -> None:
    assert _declaration(window=window).spec.window.period == timedelta(days=days)


@pytest.mark.parametrize(
    "spec",
    [
        {"objective": True},
        {"objective": "99.9"},
        {"window": {"rolling": "30d", "calendar": "month"}},
        {"window": {"rolling": "30d", "timeZone": "UTC"}},
        {"window": "12h"},
        {"budgetingMethod": "timeslices"},
        {"timeslice": {"target": 95}},
        {"targets": ["prometheus", "prometheus"]},
        {"review": {"last": "2026-05-01", "next": "2026-01-01"}},
    ],
)
def test_invalid_combinations_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _declaration(**spec)


def test_models_are_immutable_and_comparable() -> None:
    first, second = _declaration(), _declaration()
    assert first == second
    with pytest.raises(ValidationError):
        first.spec.objective = 99  # type: ignore[misc]
