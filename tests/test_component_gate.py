"""`DeploymentGate` under the SDK's mocks: AnalysisTemplates per SLO and stage, one AppProject patch per stack."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
import yaml

from sloplane.components import ServiceLevelObjective, SloFleet
from sloplane.components.gate import DeploymentGate
from sloplane.declaration.model import Declaration
from tests.conftest import EXAMPLES, minimal
from tests.kube import crd_errors
from tests.pulumi_mocks import Recorder, datadog_provider

GATE = "sloplane:index:DeploymentGate"
TEMPLATE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
PATCH = "kubernetes:argoproj.io/v1alpha1:AppProjectPatch"
FRIDAYS = {"name": "friday", "schedule": "0 15 * * 5", "duration": "65h", "timeZone": "Europe/Berlin"}


def _declaration(gate: dict[str, Any] | None, name: str = "checkout-availability") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(minimal(name))
    data["spec"]["stages"] = [
        {"name": "canary", "selector": {"track": "canary"}},
        {"name": "production", "selector": {"track": "stable"}},
    ]
    if gate is not None:
        data["spec"]["gate"] = gate
    return data


def _object(inputs: dict[str, Any]) -> dict[str, Any]:
    return {key: inputs[key] for key in ("apiVersion", "kind", "metadata", "spec")}


def _gate_urns(gate: DeploymentGate | None) -> list[pulumi.Output[str]]:
    if gate is None:
        return []
    urns = [gate.urn, *(template.urn for template in gate.templates)]
    return urns + ([gate.app_project.urn] if gate.app_project is not None else [])


def _settle(component: ServiceLevelObjective | SloFleet) -> pulumi.Output[Any]:
    """Resolves once the component and every gate resource under it are registered."""
    if isinstance(component, SloFleet):
        gates = [slo.gate for slo in component.slos.values()] + [component.sync_windows]
    else:
        gates = [component.gate]
    return pulumi.Output.all(component.urn, *(urn for gate in gates for urn in _gate_urns(gate)))


@pulumi.runtime.test
def test_an_slo_with_a_gate_gets_templates_per_stage_and_patches_the_project(mocks: Recorder) -> Any:
    gate = {"maxBurnRate": 6, "freezes": [FRIDAYS]}
    slo = ServiceLevelObjective(
        "checkout", {"declaration": _declaration(gate), "deployment_gate": {"app_project": "shop"}}
    )

    def check(_: Any) -> None:
        assert slo.gate is not None
        templates = mocks.of_type(TEMPLATE)
        assert sorted(inputs["metadata"]["name"] for inputs in templates.values()) == [
            "checkout-availability-canary",
            "checkout-availability-production",
        ]
        for inputs in templates.values():
            assert crd_errors(_object(inputs), "argo-rollouts.analysis-template-crd.yaml") == []
        (patch,) = mocks.of_type(PATCH).values()
        assert patch["metadata"]["name"] == "shop" and patch["metadata"]["namespace"] == "argocd"
        assert patch["metadata"]["annotations"]["pulumi.com/patchFieldManager"].startswith("sloplane-")
        assert set(patch["spec"]) == {"syncWindows"}, "only the sync windows are ours to set"
        (window,) = patch["spec"]["syncWindows"]
        assert (window["kind"], window["schedule"], window["timeZone"]) == ("deny", "0 15 * * 5", "Europe/Berlin")
        project = {"apiVersion": patch["apiVersion"], "kind": "AppProject", "metadata": patch["metadata"]}
        assert crd_errors({**project, "spec": patch["spec"]}, "argo-cd.appproject-crd.yaml") == []

    return _settle(slo).apply(check)


@pulumi.runtime.test
def test_an_slo_without_a_gate_gets_no_deployment_gate(mocks: Recorder) -> Any:
    slo = ServiceLevelObjective("checkout", {"declaration": _declaration(None)})

    def check(_: Any) -> None:
        assert slo.gate is None
        assert not any(typ in (GATE, TEMPLATE, PATCH) for typ, _, _ in mocks.registered)

    return _settle(slo).apply(check)


@pulumi.runtime.test
def test_without_the_argo_target_there_is_no_analysis(mocks: Recorder) -> Any:
    data = _declaration({"maxBurnRate": 6})
    data["spec"]["targets"] = ["prometheus", "grafana"]
    slo = ServiceLevelObjective("checkout", {"declaration": data})

    def check(_: Any) -> None:
        assert slo.gate is None and mocks.of_type(TEMPLATE) == {}

    return _settle(slo).apply(check)


@pulumi.runtime.test
def test_a_fleet_patches_the_project_once_for_all_its_slos(mocks: Recorder) -> Any:
    fleet = SloFleet(
        "slos", {"path": str(EXAMPLES), "namespace": "observability", "datadog_provider": datadog_provider()}
    )

    def check(_: Any) -> None:
        patches = mocks.of_type(PATCH)
        assert list(patches) == ["slos-freezes-sync-windows"], "one patch: the list is replaced as a whole"
        windows = next(iter(patches.values()))["spec"]["syncWindows"]
        assert {w["schedule"] for w in windows} == {"0 0 27 11 *"}  # checkout-availability's black-friday
        gates = [name for typ, name, _ in mocks.registered if typ == GATE]
        assert "slos-checkout-availability-gate" in gates and "slos-freezes" in gates
        for inputs in mocks.of_type(TEMPLATE).values():
            assert crd_errors(_object(inputs), "argo-rollouts.analysis-template-crd.yaml") == []
            assert inputs["metadata"]["labels"]["sloplane.dev/slo"] == "checkout-availability"

    return _settle(fleet).apply(check)


def test_the_gate_refuses_what_is_not_a_declaration_with_a_message() -> None:
    with pytest.raises(pulumi.RunError, match="invalid declaration"):
        DeploymentGate("g", {"declarations": [{"not": "a declaration"}]})


@pulumi.runtime.test
def test_the_gate_takes_declarations_by_path_as_other_languages_pass_them(mocks: Recorder) -> Any:
    """From another language a declaration arrives as a path (or mapping), never as a loaded model."""
    gate = DeploymentGate("g", {"declarations": [str(EXAMPLES)], "namespace": "shop"})  # a folder, as a fleet

    def check(_: Any) -> None:
        templates = mocks.of_type("kubernetes:argoproj.io/v1alpha1:AnalysisTemplate")
        assert templates and all(t["metadata"]["namespace"] == "shop" for t in templates.values())

    return pulumi.Output.all(*_gate_urns(gate)).apply(check)


@pulumi.runtime.test
def test_settings_that_shape_objects_must_be_plain(mocks: Recorder) -> Any:
    declaration = Declaration.model_validate(_declaration({"maxBurnRate": 6}))
    project = pulumi.Output.from_input("shop")
    with pytest.raises(pulumi.RunError, match=r"'app_project' \(appProject\) must be a plain value"):
        DeploymentGate("g", {"declarations": [declaration], "app_project": project})

    def check(_: Any) -> None:
        assert mocks.registered == [], "nothing is registered when the settings are refused"

    return project.apply(check)
