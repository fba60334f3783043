"""The shipped examples: all valid, no lints, and each covers what the issue asks of it."""

from datetime import date
from pathlib import Path

from sloplane.declaration.policy import TargetSystem
from sloplane.declaration.sli import Backend
from sloplane.interop import load_paths
from tests.conftest import EXAMPLES, minimal


def _examples():  # type: ignore[no-untyped-def]
    result = load_paths([EXAMPLES], today=date(2026, 11, 26))
    assert result.diagnostics == []
    return {slo.name: slo.declaration for slo in result.slos}


def test_every_example_validates_without_warnings() -> None:
    assert len(_examples()) >= 6


def test_examples_cover_the_required_shapes() -> None:
    slos = _examples()
    checkout = slos["checkout-availability"]
    assert [stage.name for stage in checkout.spec.stages] == ["canary", "production"]
    assert checkout.spec.exclusions.maintenance and checkout.spec.gate is not None
    assert checkout.spec.gate.dependencies[0].slo == "payments-availability"
    assert slos["search-latency"].spec.sli.latency is not None
    assert slos["admin-console-probe"].spec.sli.probe is not None
    journey = slos["purchase-journey"].spec.sli.composite
    assert journey is not None and len({c.slo for c in journey.components}) == 3
    payments = slos["payments-availability"]
    assert payments.spec.sli.backends() == {Backend.PROMETHEUS, Backend.DATADOG}
    assert TargetSystem.DATADOG in payments.spec.targets  # one declaration provisions both
    assert slos["checkout-deploy-success"].spec.sli.deployment is not None


def test_a_minimal_declaration_is_about_ten_lines(tmp_path: Path) -> None:
    text = minimal()
    assert len(text.splitlines()) <= 11
    (tmp_path / "slo.yaml").write_text(text)
    result = load_paths([tmp_path])
    assert result.diagnostics == []
    spec = result.slos[0].declaration.spec
    assert spec.window.period.days == 30 and spec.effective_gate.min_budget_remaining == 0
