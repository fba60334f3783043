"""The Pulumi components under the SDK's mocks: what they register, with which inputs, under which parent."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
import yaml

from sloplane.components import ServiceLevelObjective, SloFleet
from sloplane.interop import load_paths
from sloplane.render.prometheus import rule_file
from sloplane.semantics.subjects import Fleet
from tests.conftest import EXAMPLES, minimal
from tests.pulumi_mocks import Recorder, datadog_provider, recording_mocks

SLO = "sloplane:index:ServiceLevelObjective"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
PROBE = "kubernetes:monitoring.coreos.com/v1:Probe"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def _fleet_args() -> Any:
    return {
        "path": str(EXAMPLES),
        "namespace": "observability",
        "rule_labels": {"release": "kps"},
        "datadog_provider": datadog_provider(),  # payments targets Datadog
    }


@pulumi.runtime.test
def test_fleet_registers_one_component_per_slo_and_its_children(mocks: Recorder) -> Any:
    fleet = SloFleet("examples", _fleet_args())

    def check(outputs: list[Any]) -> None:
        rule_names, dashboard_names = outputs
        types = [t for t, _, _ in mocks.registered]
        assert types.count("sloplane:index:SloFleet") == 1
        assert types.count(SLO) == 6
        assert (types.count(RULE), types.count(PROBE), types.count(CONFIG_MAP)) == (6, 1, 7)
        assert rule_names == [
            "sloplane-admin-console-probe",
            "sloplane-checkout-availability",
            "sloplane-checkout-deploy-success",
            "sloplane-payments-availability",
            "sloplane-purchase-journey",
            "sloplane-search-latency",
        ]
        assert dashboard_names == [f"sloplane-dashboard-{name.removeprefix('sloplane-')}" for name in rule_names]

    return pulumi.Output.all(fleet.rule_names, fleet.dashboard_names, *_every_urn(fleet)).apply(
        lambda values: check(values[:2])
    )


@pulumi.runtime.test
def test_children_carry_the_rendered_objects_with_explicit_names(mocks: Recorder) -> Any:
    fleet_component = SloFleet("examples", _fleet_args())
    declarations = load_paths([EXAMPLES]).declarations
    fleet = Fleet(declarations)

    def check(_: Any) -> None:
        rules = mocks.of_type(RULE)
        checkout = rules["examples-checkout-availability-rules"]
        assert checkout["metadata"]["name"] == "sloplane-checkout-availability"
        assert checkout["metadata"]["namespace"] == "observability"
        assert checkout["metadata"]["labels"]["release"] == "kps"
        assert checkout["spec"]["groups"] == rule_file(fleet["checkout-availability"], fleet)["groups"]
        config_maps = mocks.of_type(CONFIG_MAP)
        dashboard = config_maps["examples-search-latency-dashboard"]
        assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(dashboard["data"]["search-latency.json"])["uid"] == "slo-search-latency"
        overview = config_maps["examples-overview"]
        assert json.loads(overview["data"]["sloplane-overview.json"])["uid"] == "sloplane-overview"
        probe = mocks.of_type(PROBE)["examples-admin-console-probe-probe"]
        assert probe["spec"]["prober"] == {"url": "blackbox-exporter:9115"}

    return pulumi.Output.all(*_every_urn(fleet_component)).apply(check)


@pulumi.runtime.test
def test_children_are_parented_to_their_slo_and_fleet(mocks: Recorder) -> Any:
    outer = SloFleet("outer", {"path": str(EXAMPLES / "admin-probe.yaml")})
    component = ServiceLevelObjective(
        "search",
        {"declaration": str(EXAMPLES / "search-latency.yaml"), "create": ["prometheusRule"]},
        pulumi.ResourceOptions(parent=outer),
    )

    def check(values: list[Any]) -> None:
        urn, rule_name, dashboard_name, *_ = values
        assert "sloplane:index:SloFleet$sloplane:index:ServiceLevelObjective::search" in urn
        assert rule_name == "sloplane-search-latency" and dashboard_name is None
        types = sorted(name for t, name, _ in mocks.registered if t == RULE)
        assert types == ["outer-admin-console-probe-rules", "search-rules"]

    assert component.rule is not None
    return pulumi.Output.all(
        component.urn, component.rule_name, component.dashboard_name, component.rule.urn, *_every_urn(outer)
    ).apply(check)


@pulumi.runtime.test
def test_a_declaration_can_be_given_inline(mocks: Recorder) -> Any:
    component = ServiceLevelObjective("inline", {"declaration": yaml.safe_load(minimal("inline-slo"))})

    def check(name: str | None) -> None:
        assert name == "sloplane-inline-slo"
        (rule,) = mocks.of_type(RULE).values()
        assert rule["metadata"]["namespace"] == "monitoring"

    assert component.rule is not None
    return pulumi.Output.all(component.rule_name, component.rule.urn).apply(lambda values: check(values[0]))


@pulumi.runtime.test
def test_bad_declarations_fail_with_a_message_not_a_stack_trace(mocks: Recorder) -> None:
    with pytest.raises(pulumi.RunError, match=r"objective 100 must be strictly between 0 and 100"):
        ServiceLevelObjective("bad", {"declaration": {**_inline(), "spec": {**_inline()["spec"], "objective": 100}}})
    with pytest.raises(pulumi.RunError, match=r"composite component refers to unknown SLO 'search-latency'"):
        ServiceLevelObjective("journey", {"declaration": str(EXAMPLES / "checkout-journey.yaml")})


def _every_urn(fleet: SloFleet) -> list[pulumi.Output[str]]:
    """URNs of the fleet and all its children: they resolve once everything is registered."""
    children = [fleet.overview, *fleet.slos.values()]
    for slo in fleet.slos.values():
        children += [r for r in (slo.rule, slo.probe, slo.dashboard) if r is not None]
    return [fleet.urn, *(child.urn for child in children)]


def _inline() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(minimal())
    return data


def _registrations() -> list[tuple[str, str, str]]:
    session = recording_mocks()
    recorder = next(session)

    @pulumi.runtime.test
    def run() -> Any:
        return pulumi.Output.all(*_every_urn(SloFleet("examples", _fleet_args())))

    run()
    next(session, None)
    return sorted((t, n, json.dumps(inputs, sort_keys=True)) for t, n, inputs in recorder.registered)


def test_registrations_are_deterministic() -> None:
    assert _registrations() == _registrations()


def test_an_unknown_child_in_create_is_refused_naming_the_children() -> None:
    with pytest.raises(pulumi.RunError, match=r"create: unknown \['nope'\]; the children are prometheusRule"):
        ServiceLevelObjective("s", {"declaration": str(EXAMPLES / "search-latency.yaml"), "create": ["nope"]})


def test_a_bad_dashboard_label_names_the_property_as_python_and_the_schema_spell_it() -> None:
    with pytest.raises(pulumi.RunError, match=r"'dashboard_label' \(dashboardLabel\) must be a \(key, value\) pair"):
        ServiceLevelObjective(
            "s", {"declaration": str(EXAMPLES / "search-latency.yaml"), "dashboard_label": ["a", "b", "c"]}
        )
