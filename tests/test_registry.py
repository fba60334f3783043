"""The renderer registry: every target renders or is refused by name, and every consumer follows the registry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from sloplane.components import ServiceLevelObjective, slo
from sloplane.declaration.policy import TargetSystem
from sloplane.interop import load_paths
from sloplane.render import datadog
from sloplane.render.bundle import fleet_files
from sloplane.render.targets import MANAGED_FOLDERS, RENDERERS, rendered_targets
from tests.conftest import minimal
from tests.pulumi_mocks import Recorder

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def test_every_target_has_one_renderer() -> None:
    targets = [renderer.target for renderer in RENDERERS]
    assert len(targets) == len(set(targets))
    assert set(TargetSystem) == rendered_targets()


def test_the_owned_folders_are_the_registry_folders_and_every_file_lands_in_one(tmp_path: Path) -> None:
    assert set(MANAGED_FOLDERS) == {folder for renderer in RENDERERS for folder in renderer.folders}
    path = tmp_path / "slo.yaml"
    every = ", ".join(target.value for target in TargetSystem)
    path.write_text(minimal() + f"  targets: [{every}]\n", encoding="utf-8")
    files = fleet_files(load_paths([path]).declarations)
    assert {name.split("/")[0] for name in files} == set(MANAGED_FOLDERS)


def test_a_target_without_a_renderer_is_an_error_at_its_line(tmp_path: Path) -> None:
    """A target the caller cannot render is refused at its line, never rendered as nothing."""
    path = tmp_path / "slo.yaml"
    path.write_text(minimal() + "  targets: [prometheus, datadog]\n", encoding="utf-8")
    result = load_paths([path], renderable=rendered_targets() - {TargetSystem.DATADOG})
    (error,) = result.errors
    assert error.position.line == 11 and "target 'datadog' has no renderer" in error.message
    assert load_paths([path]).errors == [], "without `renderable`, a library caller still gets the declaration"


@pulumi.runtime.test
def test_the_pulumi_components_refuse_a_target_whose_children_are_not_built(
    mocks: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renderer that writes files but has no Pulumi children yet says so (`children_pending`): a component
    refuses a declaration naming it instead of registering nothing for it, and registers nothing at all."""
    pending = replace(datadog.RENDERER, children_pending="its children are not built yet")
    monkeypatch.setattr(slo, "renderers_of", lambda declaration: [pending])
    declaration = yaml.safe_load(minimal() + "  targets: [prometheus, datadog]\n")
    with pytest.raises(pulumi.RunError, match="targets datadog: its children are not built yet"):
        ServiceLevelObjective("checkout", {"declaration": declaration})
    assert mocks.registered == []


@pulumi.runtime.test
def test_the_pulumi_components_refuse_datadog_children_without_an_explicit_provider(mocks: Recorder) -> None:
    """Datadog's children are built (tests/test_components_datadog.py); never through a default provider."""
    declaration = yaml.safe_load(minimal() + "  targets: [prometheus, datadog]\n")
    with pytest.raises(pulumi.RunError, match="targets datadog: pass datadog_provider"):
        ServiceLevelObjective("checkout", {"declaration": declaration})
    assert mocks.registered == []


def test_a_target_left_out_renders_nothing_for_it(tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(minimal() + "  targets: [prometheus]\n", encoding="utf-8")
    files = fleet_files(load_paths([path]).declarations)
    assert not any(name.startswith(("grafana/checkout", "argo/", "spinnaker/")) for name in files), sorted(files)
    assert "prometheus/checkout-availability.rules.yaml" in files


@pulumi.runtime.test
def test_a_component_registers_the_children_of_its_targets_only(mocks: Recorder) -> Any:
    """No dashboard without `grafana`: the component asks the registry, as `sloplane render` does."""
    declaration = yaml.safe_load(minimal("rules-only") + "  targets: [prometheus]\n")
    component = ServiceLevelObjective("rules-only", {"declaration": declaration})

    def check(values: list[Any]) -> None:
        rule_name, dashboard_name = values
        assert rule_name == "sloplane-rules-only" and dashboard_name is None
        assert [name for kind, name, _ in mocks.registered if kind == CONFIG_MAP] == []
        assert [name for kind, name, _ in mocks.registered if kind == RULE] == ["rules-only-rules"]

    return pulumi.Output.all(component.rule_name, component.dashboard_name).apply(check)
