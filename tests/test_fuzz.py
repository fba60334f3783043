"""Generated and mutated declarations: each yields a model or clean, positioned errors - never a crash."""

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sloplane.declaration.writer import dump_yaml
from sloplane.interop import load_paths
from sloplane.interop.openslo.exporter import export_openslo
from tests.strategies import declarations, mutated

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load_text(text: str) -> Any:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "slo.yaml"
        path.write_text(text, encoding="utf-8")
        return load_paths([path])


@FUZZ
@given(declarations())
def test_generated_declarations_are_valid(data: dict[str, Any]) -> None:
    result = _load_text(yaml.safe_dump(data, sort_keys=False))
    assert result.errors == [], [d.render() for d in result.errors]
    assert len(result.slos) == 1


@FUZZ
@given(mutated())
def test_mutated_declarations_give_a_model_or_positioned_errors(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    result = _load_text(text)
    lines = len(text.splitlines())
    assert bool(result.slos) != bool(result.errors)
    for diagnostic in result.diagnostics:
        assert 1 <= diagnostic.position.line <= max(lines, 1)
        assert diagnostic.message
        assert diagnostic.render().count(":") >= 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(declarations(), min_size=1, max_size=4, unique_by=lambda d: d["metadata"]["name"]))
def test_generated_declarations_survive_the_openslo_round_trip(fleet: list[dict[str, Any]]) -> None:
    original = _load_text(yaml.safe_dump_all(fleet, sort_keys=False))
    assert original.errors == []
    exported = export_openslo(original.declarations)
    back = _load_text(dump_yaml(d for documents in exported.values() for d in documents))
    assert back.errors == [], [d.render() for d in back.errors]
    assert {s.name: s.declaration for s in back.slos} == {s.name: s.declaration for s in original.slos}
