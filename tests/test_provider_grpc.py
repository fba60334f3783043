"""The sloplane plugin driven over gRPC as the Pulumi engine drives it, without the CLI (`tests/pulumi_engine.py`).

The plugin runs as `python provider/ <engine address>` in its own process; every `Construct` carries
camelCase inputs in a protobuf Struct, as another language's SDK sends them, and the fake monitor records
each child the components register. The children must be exactly what `sloplane render` writes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2, provider_pb2

from sloplane.interop import load_declarations
from sloplane.provider.host import plugin_version
from sloplane.render.bundle import fleet_files
from sloplane.render.options import BundleOptions, KubernetesOptions
from sloplane.render.pipelines import PipelineOptions
from tests.conftest import EXAMPLES, ROOT
from tests.pulumi_engine import (
    CALL_LIMIT,
    STACK_URN,
    UNKNOWN,
    Engine,
    OutputValue,
    Plugin,
    Registration,
    ResourceRef,
    deployment,
    from_struct,
    input_errors,
    plain,
    running_plugin,
    secret_paths,
    serving,
)

PLUGIN_DIR = ROOT / "provider"
SLO = "sloplane:index:ServiceLevelObjective"
FLEET = "sloplane:index:SloFleet"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
PROBE = "kubernetes:monitoring.coreos.com/v1:Probe"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
SLO_URN = f"urn:pulumi:stack::project::{SLO}::search"
LABELS = {"release": "kps", "team": "discovery"}


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[Engine, str]]:
    """One engine for the module's plugin (the plugin is told its address when it starts)."""
    served = Engine()
    with serving(served) as address:
        yield served, address


@pytest.fixture(scope="module")
def plugin(engine: tuple[Engine, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugin]:
    """The plugin, started once: importing Pulumi and the components is most of a run's time."""
    with running_plugin(PLUGIN_DIR, engine[1], tmp_path_factory.mktemp("plugin")) as started:
        yield started


@pytest.fixture
def warnings(engine: tuple[Engine, str]) -> Callable[[], list[str]]:
    """Warnings and errors the plugin has logged to the engine since the test began (what a user would see)."""
    served = engine[0]
    start = len(served.logs)
    return lambda: [message for severity, message, _ in served.logs[start:] if severity >= engine_pb2.WARNING]


def rendered(path: Path, namespace: str, rule_labels: dict[str, str]) -> dict[str, Any]:
    """What `sloplane render` writes for the declarations at `path`, by file, as data (YAML files as lists
    of documents)."""
    options = BundleOptions(kubernetes=KubernetesOptions(namespace=namespace, rule_labels=rule_labels))
    files = fleet_files(load_declarations([path]), options)
    return {
        name: list(yaml.safe_load_all(text)) if name.endswith(".yaml") else json.loads(text)
        for name, text in files.items()
    }


def summary(registrations: list[Registration]) -> list[tuple[str, str, str, bool]]:
    """(type, name, parent URN, custom) of each registration, in name order (children register concurrently)."""
    return sorted(((r.type, r.name, r.parent, r.custom) for r in registrations), key=lambda row: row[1])


def check_config_map(child: Registration, files: dict[str, Any], slo: str, namespace: str) -> None:
    """A dashboard ConfigMap carries the rendered Grafana dashboard, labelled for the sidecar."""
    metadata = child.properties["metadata"]
    assert metadata["namespace"] == namespace
    assert metadata["labels"]["grafana_dashboard"] == "1"
    (key,) = child.properties["data"]
    assert json.loads(child.properties["data"][key]) == files[f"grafana/{slo}.json"]


@pytest.mark.parametrize("dry_run", [True, False], ids=["preview", "update"])
def test_a_service_level_objective_registers_what_render_writes(
    plugin: Plugin, warnings: Callable[[], list[str]], dry_run: bool
) -> None:
    declaration = EXAMPLES / "search-latency.yaml"
    inputs = {"declaration": str(declaration), "namespace": "observability", "ruleLabels": LABELS}
    with deployment(dry_run) as deployed:
        kubernetes = deployed.monitor.existing_provider("kubernetes", "cluster")
        response = plugin.construct(
            deployed.address, SLO, "search", inputs, dry_run=dry_run, providers={"kubernetes": kubernetes}
        )
    monitor = deployed.monitor
    assert response.urn == SLO_URN
    assert summary(monitor.registrations) == [
        (SLO, "search", STACK_URN, False),
        (CONFIG_MAP, "search-dashboard", SLO_URN, True),
        (RULE, "search-rules", SLO_URN, True),
    ]
    children = [r for r in monitor.registrations if r.custom]
    assert [r.provider for r in children] == [kubernetes] * 2, "the explicit kubernetes provider is passed down"
    assert monitor.invoked == ["pulumi:pulumi:getResource"], "the provider reference is read back by URN"
    assert [secret_paths(r.properties) for r in monitor.registrations] == [[], [], []]

    files = rendered(declaration, "observability", LABELS)
    (rule_document,) = files["kubernetes/search-latency.prometheusrule.yaml"]
    rule = monitor.of_type(RULE)["search-rules"]
    assert rule.properties == rule_document
    assert rule.properties["metadata"]["namespace"] == "observability"
    assert rule.properties["metadata"]["labels"] == {
        **LABELS,
        "app.kubernetes.io/managed-by": "sloplane",
        "sloplane.dev/slo": "search-latency",
    }
    dashboard = monitor.of_type(CONFIG_MAP)["search-dashboard"]
    assert dashboard.properties["metadata"]["name"] == "sloplane-dashboard-search-latency"
    check_config_map(dashboard, files, "search-latency", "observability")

    # A preview creates nothing, so the ids (and the names that wait for them) are unknown.
    names = {"ruleName": "sloplane-search-latency", "dashboardName": "sloplane-dashboard-search-latency"}
    expected = dict.fromkeys(names, UNKNOWN) if dry_run else names
    assert from_struct(response.state) == {**expected, "datadogSloIds": {}}
    assert monitor.outputs[SLO_URN] == {
        "rule_name": expected["ruleName"],
        "dashboard_name": expected["dashboardName"],
        "datadog_slo_ids": {},
    }
    assert warnings() == []


def test_a_fleet_registers_one_component_per_declaration_and_the_overview(
    plugin: Plugin, warnings: Callable[[], list[str]], tmp_path: Path
) -> None:
    folder = tmp_path / "slos"
    folder.mkdir()
    for name in ("search-latency.yaml", "admin-probe.yaml"):
        shutil.copy(EXAMPLES / name, folder / name)
    inputs = {"path": str(folder), "namespace": "observability", "ruleLabels": LABELS}
    with deployment(dry_run=False) as deployed:
        response = plugin.construct(deployed.address, FLEET, "team", inputs, dry_run=False)
    monitor = deployed.monitor
    fleet_urn = f"urn:pulumi:stack::project::{FLEET}::team"
    probe_urn, search_urn = (
        f"urn:pulumi:stack::project::{FLEET}${SLO}::team-{n}" for n in ("admin-console-probe", "search-latency")
    )
    assert response.urn == fleet_urn
    assert summary(monitor.registrations) == [
        (FLEET, "team", STACK_URN, False),
        (SLO, "team-admin-console-probe", fleet_urn, False),
        (CONFIG_MAP, "team-admin-console-probe-dashboard", probe_urn, True),
        (PROBE, "team-admin-console-probe-probe", probe_urn, True),
        (RULE, "team-admin-console-probe-rules", probe_urn, True),
        (CONFIG_MAP, "team-overview", fleet_urn, True),
        (SLO, "team-search-latency", fleet_urn, False),
        (CONFIG_MAP, "team-search-latency-dashboard", search_urn, True),
        (RULE, "team-search-latency-rules", search_urn, True),
    ]

    files = rendered(folder, "observability", LABELS)
    rules, probes, config_maps = monitor.of_type(RULE), monitor.of_type(PROBE), monitor.of_type(CONFIG_MAP)
    for slo in ("admin-console-probe", "search-latency"):
        documents = {d["kind"]: d for d in files[f"kubernetes/{slo}.prometheusrule.yaml"]}
        assert rules[f"team-{slo}-rules"].properties == documents["PrometheusRule"]
        check_config_map(config_maps[f"team-{slo}-dashboard"], files, slo, "observability")
    probe_documents = {d["kind"]: d for d in files["kubernetes/admin-console-probe.prometheusrule.yaml"]}
    assert probes["team-admin-console-probe-probe"].properties == probe_documents["Probe"]
    overview = config_maps["team-overview"].properties
    assert overview["metadata"]["namespace"] == "observability"
    assert json.loads(overview["data"]["sloplane-overview.json"]) == files["grafana/overview.json"]

    assert from_struct(response.state) == {
        "ruleNames": ["sloplane-admin-console-probe", "sloplane-search-latency"],
        "dashboardNames": ["sloplane-dashboard-admin-console-probe", "sloplane-dashboard-search-latency"],
    }
    assert all(r.provider == "" for r in monitor.registrations), "no provider given: the default one"
    assert warnings() == []


def test_plugin_info_and_schema_are_the_packages(plugin: Plugin) -> None:
    info = plugin.provider.GetPluginInfo(empty_pb2.Empty(), timeout=CALL_LIMIT)
    version = plugin_version(PLUGIN_DIR)
    assert info.version == version
    served = json.loads(plugin.provider.GetSchema(provider_pb2.GetSchemaRequest(), timeout=CALL_LIMIT).schema)
    checked_in = json.loads((PLUGIN_DIR / "schema.json").read_text())
    # The checked-in file carries the package's version; a release tag on the checkout overrides it.
    assert served == {**checked_in, "version": version}


def test_datadog_children_go_through_the_provider_passed_as_an_input(
    plugin: Plugin, warnings: Callable[[], list[str]]
) -> None:
    with deployment(dry_run=False) as deployed:
        reference = deployed.monitor.existing_provider("datadog", "dd")
        urn, provider_id = reference.rsplit("::", 1)
        inputs = {
            "declaration": str(EXAMPLES / "payments-datadog.yaml"),
            "datadogProvider": ResourceRef(urn, provider_id, "5.17.0"),
        }
        response = plugin.construct(
            deployed.address, SLO, "pay", inputs, dry_run=False, input_dependencies={"datadogProvider": [urn]}
        )
    monitor = deployed.monitor
    datadog = [r for r in monitor.registrations if r.type.startswith("datadog:")]
    assert sorted(r.type for r in datadog) == [
        "datadog:index/dashboardJson:DashboardJson",
        *["datadog:index/monitor:Monitor"] * 4,
        "datadog:index/serviceLevelObjective:ServiceLevelObjective",
    ]
    assert {r.provider for r in datadog} == {reference}
    assert {r.provider for r in monitor.registrations if r.type.startswith("kubernetes:")} == {""}
    slo_urn = next(r.urn for r in datadog if r.name == "pay-datadog-slo")
    monitors = [r for r in datadog if r.type == "datadog:index/monitor:Monitor"]
    assert all(r.property_dependencies["query"] == [slo_urn] for r in monitors), "monitors wait for the SLO id"
    assert from_struct(response.state)["datadogSloIds"] == {"payments-availability": "pay-datadog-slo-id"}
    assert warnings() == []


def test_secrets_reach_the_registered_children_marked_secret(plugin: Plugin, warnings: Callable[[], list[str]]) -> None:
    """`pulumi.secret(...)` in another language travels as a secret output value."""
    evaluator = {
        "image": "ghcr.io/example/sloplane:1.0.0",
        "prometheusUrl": "http://prometheus:9090",
        "tokens": OutputValue("ci: token", secret=True),
        "replicas": 2,
    }
    with deployment(dry_run=False) as deployed:
        inputs = {"declaration": str(EXAMPLES / "search-latency.yaml"), "evaluator": evaluator}
        plugin.construct(deployed.address, SLO, "search", inputs, dry_run=False)
    registrations = deployed.monitor.registrations
    secrets = {r.name: secret_paths(r.properties) for r in registrations if secret_paths(r.properties)}
    assert secrets == {"search-evaluator-secrets": ["stringData"]}
    (secret,) = (r for r in registrations if r.type == SECRET)
    assert plain(secret.properties)["stringData"]["tokens.yaml"] == "ci: token"
    (deployment_,) = (r for r in registrations if r.type == "kubernetes:apps/v1:Deployment")
    assert deployment_.properties["spec"]["replicas"] == 2
    assert "ci: token" not in json.dumps(plain([r.properties for r in registrations if r.type != SECRET]))
    assert warnings() == []


def test_an_output_for_an_input_that_shapes_objects_is_refused_before_anything_registers(plugin: Plugin) -> None:
    """Another language delivers `namespace: ns.metadata.name` as an output value with a dependency."""
    namespace_urn = "urn:pulumi:stack::project::kubernetes:core/v1:Namespace::observability"
    inputs = {
        "declaration": str(EXAMPLES / "search-latency.yaml"),
        "namespace": OutputValue("observability", dependencies=(namespace_urn,)),
    }
    with deployment(dry_run=True) as deployed, pytest.raises(grpc.RpcError) as raised:
        plugin.construct(deployed.address, SLO, "search", inputs, dry_run=True)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [path for path, _ in input_errors(raised.value)] == ["namespace"]
    assert deployed.monitor.registrations == []


@pytest.mark.parametrize(
    ("inputs", "property_path", "message"),
    [
        ({}, "declaration", "Missing required input 'declaration'"),
        ({"declaration": "/nonexistent/slo.yaml"}, None, "no such file or folder"),
        ({"declaration": str(EXAMPLES)}, None, "expected one declaration, found 6 (use SloFleet for folders)"),
    ],
    ids=["missing", "no-file", "a-folder"],
)
def test_a_users_mistake_is_one_input_error_without_a_stack_trace(
    plugin: Plugin, inputs: dict[str, Any], property_path: str | None, message: str
) -> None:
    with deployment(dry_run=True) as deployed, pytest.raises(grpc.RpcError) as raised:
        plugin.construct(deployed.address, SLO, "search", inputs, dry_run=True)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    shown = " ".join([error.details() or "", *(reason for _, reason in input_errors(error))])
    assert message in shown
    assert "Traceback" not in shown and 'File "' not in shown
    if property_path is not None:
        assert [path for path, _ in input_errors(error)] == [property_path]
    assert deployed.monitor.registrations == []


def test_two_fleets_holding_one_slo_register_apart_and_alias_the_former_names(plugin: Plugin, tmp_path: Path) -> None:
    """URNs carry the parent's type, not its name: each fleet's SLO components are named after the fleet,
    aliased to the SLO's name alone (what stacks registered before), so existing objects stay in place."""
    folder = tmp_path / "slos"
    folder.mkdir()
    shutil.copy(EXAMPLES / "search-latency.yaml", folder / "search-latency.yaml")
    with deployment(dry_run=False) as deployed:
        for fleet in ("blue", "green"):
            plugin.construct(deployed.address, FLEET, fleet, {"path": str(folder), "namespace": fleet}, dry_run=False)
    slos = {r.name: r for r in deployed.monitor.registrations if r.type == SLO}
    assert set(slos) == {"blue-search-latency", "green-search-latency"}
    assert slos["blue-search-latency"].aliases == ["search-latency"]
    rules = {r.name: r for r in deployed.monitor.registrations if r.type == RULE}
    assert rules["green-search-latency-rules"].aliases == ["search-latency-rules"]
    assert rules["green-search-latency-rules"].properties["metadata"]["namespace"] == "green"


@pytest.mark.parametrize("dry_run", [True, False], ids=["preview", "update"])
def test_a_deployment_gate_takes_declarations_by_path_and_registers_what_render_writes(
    plugin: Plugin, warnings: Callable[[], list[str]], dry_run: bool
) -> None:
    """From another language the gate's declarations are paths: its AnalysisTemplates are render's."""
    inputs = {"declarations": [str(EXAMPLES)], "namespace": "shop", "evaluatorUrl": "http://sloplane.gates:8080"}
    with deployment(dry_run=dry_run) as deployed:
        response = plugin.construct(deployed.address, "sloplane:index:DeploymentGate", "gates", inputs, dry_run=dry_run)
    templates = deployed.monitor.of_type("kubernetes:argoproj.io/v1alpha1:AnalysisTemplate")
    assert templates, "checkout-availability has a gate and the argoRollouts target"
    options = BundleOptions(pipelines=PipelineOptions(namespace="shop", evaluator_url="http://sloplane.gates:8080"))
    files = fleet_files(load_declarations([EXAMPLES]), options)
    expected = {
        document["metadata"]["name"]: document
        for name, text in files.items()
        if name.endswith(".analysistemplate.yaml")
        for document in yaml.safe_load_all(text)
    }
    assert {t.properties["metadata"]["name"]: t.properties for t in templates.values()} == expected
    names = from_struct(response.state)["templateNames"]
    assert names == UNKNOWN if dry_run else sorted(names) == sorted(expected)  # ids are unknown in a preview
    assert warnings() == []


def test_an_evaluator_takes_named_settings_types_and_keeps_its_keys_secret(plugin: Plugin) -> None:
    """`SloEvaluator` with the schema's named types (storage, ingressFrom) and a secret Datadog key."""
    inputs = {
        "declarations": [str(EXAMPLES / "search-latency.yaml")],
        "image": "ghcr.io/example/sloplane:1.0.0",
        "prometheusUrl": "http://prometheus:9090",
        "tokens": OutputValue("ci: token", secret=True),
        "namespace": "slo",
        "replicas": 3.0,
        "storage": {"mode": "volume", "size": "2Gi"},
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}],
        "datadogUrl": "datadoghq.eu",
        "datadogApiKey": OutputValue("dd-api-secret", secret=True),
        "datadogAppKey": OutputValue("dd-app-secret", secret=True),
    }
    with deployment(dry_run=False) as deployed:
        plugin.construct(deployed.address, "sloplane:index:SloEvaluator", "slo", inputs, dry_run=False)
    registrations = deployed.monitor.registrations
    (policy,) = (r for r in registrations if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    peers = [peer for rule in policy.properties["spec"]["ingress"] for peer in rule.get("from", [])]
    assert {"namespaceSelector": {"matchLabels": {"team": "shop"}}} in peers
    (claim,) = (r for r in registrations if r.type == "kubernetes:core/v1:PersistentVolumeClaim")
    assert claim.properties["spec"]["resources"]["requests"]["storage"] == "2Gi"
    (deployment_,) = (r for r in registrations if r.type == "kubernetes:apps/v1:Deployment")
    assert deployment_.properties["spec"]["replicas"] == 3
    assert "--datadog" in json.dumps(deployment_.properties["spec"]["template"]["spec"]["containers"])
    leaked = json.dumps(plain([r.properties for r in registrations if r.type != SECRET]))
    assert "dd-api-secret" not in leaked and "dd-app-secret" not in leaked and "ci: token" not in leaked
    secrets = {r.name: secret_paths(r.properties) for r in registrations if r.type == SECRET}
    assert all(paths == ["stringData"] for paths in secrets.values()) and len(secrets) == 2


def test_an_evaluator_in_postgres_mode_takes_a_secret_url_and_registers_no_volume(
    plugin: Plugin, warnings: Callable[[], list[str]]
) -> None:
    """From another language: `storage: {mode: postgres, url: pulumi.secret(...), port: 6432}` (the port a double)
    and a secret `chainKey`: the URL and the key only in their Secrets, marked secret, and no PVC."""
    url = "postgresql://evaluator:pg-s3cret-pass@db.internal:6432/sloplane"
    inputs = {
        "declarations": [str(EXAMPLES / "search-latency.yaml")],
        "image": "ghcr.io/example/sloplane:1.0.0",
        "prometheusUrl": "http://prometheus:9090",
        "tokens": OutputValue("ci: token", secret=True),
        "namespace": "slo",
        "storage": {"mode": "postgres", "url": OutputValue(url, secret=True), "port": 6432.0},
        "chainKey": OutputValue("chain-s3cret-key", secret=True),
    }
    with deployment(dry_run=False) as deployed:
        plugin.construct(deployed.address, "sloplane:index:SloEvaluator", "slo", inputs, dry_run=False)
    registrations = deployed.monitor.registrations
    assert not [r for r in registrations if r.type == "kubernetes:core/v1:PersistentVolumeClaim"]
    secrets = {r.name: r for r in registrations if r.type == SECRET}
    assert {name: secret_paths(r.properties) for name, r in secrets.items()} == {
        "slo-secrets": ["stringData"],
        "slo-database": ["stringData"],
        "slo-chain-key": ["stringData"],
    }
    assert plain(secrets["slo-database"].properties)["stringData"] == {"url": url}
    assert plain(secrets["slo-chain-key"].properties)["stringData"] == {"chain-key": "chain-s3cret-key"}
    (policy,) = (r for r in registrations if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    assert 6432 in {port["port"] for rule in policy.properties["spec"]["egress"] for port in rule["ports"]}
    (deployment_,) = (r for r in registrations if r.type == "kubernetes:apps/v1:Deployment")
    (container,) = deployment_.properties["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("valueFrom") for item in container["env"]}
    assert env["SLOPLANE_DB"] == {"secretKeyRef": {"name": "sloplane-evaluator-database", "key": "url"}}
    leaked = json.dumps(plain([r.properties for r in registrations if r.type != SECRET]))
    assert "pg-s3cret-pass" not in leaked and "db.internal" not in leaked and "chain-s3cret-key" not in leaked
    assert warnings() == []
