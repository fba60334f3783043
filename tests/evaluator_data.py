"""Hand-made decisions for the decision log and API tests, built from the evaluator's model classes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sloplane.evaluator.model import (
    Decision,
    Exclusion,
    GateRequest,
    Measurement,
    Outcome,
    Reason,
    WindowMeasurement,
)
from sloplane.interop import load_paths
from sloplane.semantics.subjects import Fleet

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def make_measurement(slo: str, stage: str | None, at: datetime) -> Measurement:
    """A healthy-looking measurement with every kind of field filled in (windows, exclusions, queries)."""
    return Measurement(
        slo=slo,
        stage=stage,
        objective=99.9,
        at=at,
        period_start=at - timedelta(days=30),
        windows=(
            WindowMeasurement(timedelta(minutes=5), 0.0002, 0.2, 1200.0, 0.24),
            WindowMeasurement(timedelta(hours=1), 0.0001, 0.1, 14400.0, 1.44),
        ),
        period_error_ratio=0.0003,
        period_events=1.0e7,
        period_bad_events=3000.0,
        budget_remaining=0.7,
        time_to_exhaustion=timedelta(days=12),
        exclusions=(Exclusion("maintenance", "sunday", at - timedelta(days=2), at - timedelta(days=2, hours=-1)),),
        source="recording-rules",
        queries=('sloplane:error_ratio:rate5m{slo="checkout-availability"}',),
    )


def make_decision(
    number: int,
    *,
    slo: str = "checkout-availability",
    stage: str | None = "canary",
    outcome: Outcome = Outcome.PASS,
    revision: str | None = "v1",
    decided_at: datetime | None = None,
    requested_by: str | None = "ci",
) -> Decision:
    """Decision `d-<number>`, decided `number` minutes after T0 unless told otherwise."""
    when = decided_at or T0 + timedelta(minutes=number)
    request = GateRequest(slo=slo, stage=stage, revision=revision, pipeline="build-7", requested_by=requested_by)
    return Decision(
        id=f"d-{number:06d}",
        decided_at=when,
        request=request,
        slo=slo,
        stage=stage,
        outcome=outcome,
        reasons=(Reason("budget", "70% of the error budget remains", {"budgetRemaining": 0.7}),),
        measurement=make_measurement(slo, stage, when),
        policy={"minBudgetRemaining": 0.0, "maxBurnRate": 14.4},
        policy_version="sha256:abc",
    )


def load_fleet(folder: Path, text: str) -> Fleet:
    """Declarations from YAML text (written to `folder/fleet.yaml`), which must load without errors."""
    (folder / "fleet.yaml").write_text(text)
    result = load_paths([folder])
    assert result.errors == [], [d.render() for d in result.errors]
    return Fleet(result.declarations)
