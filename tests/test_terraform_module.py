"""The generated Terraform module under real Terraform core (offline, tests/terraform_harness.py): the
examples' module validates, and its plan holds exactly the objects `sloplane render` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloplane.interop import load_paths
from sloplane.render.bundle import fleet_files, serialize
from sloplane.render.datadog import datadog_requests
from sloplane.render.terraform import PROVIDERS, TerraformOptions, module_documents
from sloplane.semantics.subjects import Fleet
from tests.conftest import EXAMPLES, ROOT
from tests.terraform_harness import TerraformError, TerraformHarness, planned_resources
from tests.test_components_datadog import STAGED as STAGED_DATADOG
from tests.test_render_datadog import FULL as FULL_DATADOG
from tests.test_render_terraform import rendered_kubernetes_objects

GOLDEN = ROOT / "tests" / "golden" / "declarations"
ROOT_MODULE = {
    "terraform": {"required_providers": PROVIDERS},
    "provider": {
        "kubernetes": {"config_path": "~/.kube/config"},
        "datadog": {"api_key": "not-a-key", "app_key": "not-a-key"},
    },
    "variable": {"namespace": {"type": "string", "default": "monitoring"}},
    "module": {"slos": {"source": "./gen/terraform", "namespace": "${var.namespace}"}},
    "output": {"datadog_slo_ids": {"value": "${module.slos.datadog_slo_ids}"}},
}


@pytest.fixture(scope="module")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> TerraformHarness:
    return TerraformHarness(tmp_path_factory.mktemp("terraform"))


def write_root_module(folder: Path, files: dict[str, str]) -> Path:
    """A root module calling the generated one, as a team's repository holds it."""
    for name, text in files.items():
        target = folder / "gen" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (folder / "main.tf.json").write_text(json.dumps(ROOT_MODULE, indent=2))
    return folder


def _examples_module() -> dict[str, str]:
    return serialize(module_documents(load_paths([EXAMPLES]).declarations))


def test_the_examples_module_validates_with_real_terraform(terraform: TerraformHarness, tmp_path: Path) -> None:
    assert terraform.validate(write_root_module(tmp_path, _examples_module())) == []


def test_the_plan_holds_exactly_the_rendered_objects(terraform: TerraformHarness, tmp_path: Path) -> None:
    shown = terraform.plan(write_root_module(tmp_path, _examples_module()))
    planned = planned_resources(shown)
    manifests = [values["manifest"] for address, values in planned.items() if ".kubernetes_manifest." in address]
    declarations = load_paths([EXAMPLES]).declarations
    rendered = rendered_kubernetes_objects()
    for document in rendered:  # what Terraform will send is what render writes (escapes undone by Terraform)
        assert document in manifests, (document["kind"], document["metadata"]["name"])
    dashboards = [m for m in manifests if m["kind"] == "ConfigMap"]
    grafana = [text for name, text in fleet_files(declarations).items() if name.startswith("grafana/")]
    assert sorted(value for m in dashboards for value in m["data"].values()) == sorted(grafana)
    payments = Fleet(declarations)["payments-availability"]
    (slo_body,) = [r["body"] for r in datadog_requests(payments) if r["path"] == "/api/v1/slo"]
    (slo,) = [v for a, v in planned.items() if ".datadog_service_level_objective." in a]
    # `tags` is a set and `query` a block (a list of one) in the provider's schema
    assert (slo["name"], slo["query"], sorted(slo["tags"])) == (
        slo_body["name"],
        [slo_body["query"]],
        sorted(slo_body["tags"]),
    )
    monitors = {v["name"]: v for a, v in planned.items() if ".datadog_monitor." in a}
    bodies = [r["body"] for r in datadog_requests(payments) if r["path"] == "/api/v1/monitor"]
    assert len(monitors) == len(bodies) == 4
    for body in bodies:  # the query waits for the SLO's id (unknown until apply): the parity test compares it
        monitor = monitors[body["name"]]
        options = {key: value for key, value in body["options"].items() if key != "thresholds"}
        assert (monitor["type"], monitor["message"], monitor["priority"], sorted(monitor["tags"])) == (
            body["type"],
            body["message"],
            str(body["priority"]),
            sorted(body["tags"]),
        )
        assert [float(monitor["monitor_thresholds"][0]["critical"])] == [body["options"]["thresholds"]["critical"]]
        assert {key: monitor[key] for key in options} == options


def test_a_broken_module_fails_with_terraforms_own_message(terraform: TerraformHarness, tmp_path: Path) -> None:
    """A reference to an SLO that is not there is what a structural check of the JSON would miss."""
    files = _examples_module()
    name = "terraform/slo-payments-availability.tf.json"
    files[name] = files[name].replace("payments-availability-datadog-slo[0].id", "missing-slo[0].id", 1)
    with pytest.raises(TerraformError) as raised:
        terraform.validate(write_root_module(tmp_path, files))
    assert "Reference to undeclared resource" in raised.value.messages


def test_one_generated_module_serves_any_namespace(terraform: TerraformHarness, tmp_path: Path) -> None:
    folder = write_root_module(tmp_path, _examples_module())
    root = json.loads((folder / "main.tf.json").read_text())
    root["module"]["slos"]["rule_labels"] = {"release": "kube-prometheus-stack"}
    (folder / "main.tf.json").write_text(json.dumps(root))
    planned = planned_resources(terraform.plan(folder, {"namespace": "observability"}))
    rules = [v["manifest"] for a, v in planned.items() if ".kubernetes_manifest." in a]
    namespaced = [m for m in rules if m["kind"] in ("PrometheusRule", "Probe", "ConfigMap")]
    assert namespaced and all(m["metadata"]["namespace"] == "observability" for m in namespaced)
    rule_labels = [m["metadata"]["labels"] for m in rules if m["kind"] == "PrometheusRule"]
    assert rule_labels and all(
        labels["release"] == "kube-prometheus-stack" and labels["app.kubernetes.io/managed-by"] == "sloplane"
        for labels in rule_labels
    )


def test_the_evaluator_runs_when_asked_with_its_files_from_sensitive_variables(
    terraform: TerraformHarness, tmp_path: Path
) -> None:
    folder = write_root_module(tmp_path, _examples_module())
    root = json.loads((folder / "main.tf.json").read_text())
    root["module"]["slos"].update(
        {"create_evaluator": True, "evaluator_tokens": "tokens: [ci]\n", "evaluator_image": "registry/sloplane:9"}
    )
    (folder / "main.tf.json").write_text(json.dumps(root))
    planned = planned_resources(terraform.plan(folder))
    objects = [v["manifest"] for a, v in planned.items() if ".kubernetes_manifest.evaluator-" in a]
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "Secret", "ConfigMap", "NetworkPolicy", "PersistentVolumeClaim"} <= kinds
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert secret["stringData"]["tokens.yaml"] == "tokens: [ci]\n"
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry/sloplane:9"
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    egress = [port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]]
    assert 9090 in egress and 80 not in egress, "the default Prometheus URL's port, not the http scheme's"


def test_every_golden_fleet_validates_with_real_terraform(terraform: TerraformHarness, tmp_path: Path) -> None:
    """Every SLI kind, staged SLOs, calendar windows, time slices, exclusions: the module validates."""
    declarations = load_paths([GOLDEN]).declarations
    files = serialize(module_documents(declarations))
    assert terraform.validate(write_root_module(tmp_path, files)) == []


THRESHOLD = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: queue-latency}
spec:
  service: queue
  owners: {team: platform}
  objective: 99
  window: 7d
  targets: [datadog]
  sli:
    threshold:
      query: {datadog: 'avg:queue.latency{service:queue}'}
      op: lt
      value: 0.5
"""


def test_datadog_corrections_downtimes_stages_and_time_slices_validate(
    terraform: TerraformHarness, tmp_path: Path
) -> None:
    """The Datadog shapes beyond the examples: recurring and one-off corrections and downtimes (FULL),
    one SLO per stage, and a time-slice SLO for a threshold SLI."""
    folder = tmp_path / "slos"
    folder.mkdir()
    (folder / "full.yaml").write_text(FULL_DATADOG)
    (folder / "staged.yaml").write_text(STAGED_DATADOG)
    (folder / "threshold.yaml").write_text(THRESHOLD)
    loaded = load_paths([folder])
    assert loaded.errors == [], [d.render() for d in loaded.errors]
    files = serialize(module_documents(loaded.declarations))
    kinds = {kind for text in files.values() for kind in json.loads(text).get("resource", {})}
    assert {"datadog_slo_correction", "datadog_downtime_schedule", "datadog_service_level_objective"} <= kinds
    assert terraform.validate(write_root_module(tmp_path / "module", files)) == []


def _with_root(folder: Path, module_arguments: dict[str, Any], outputs: dict[str, Any] | None = None) -> Path:
    """The root module calling the generated one with these arguments (and passing these outputs on)."""
    root = json.loads((folder / "main.tf.json").read_text())
    root["module"]["slos"].update(module_arguments)
    root["output"].update(outputs or {})
    (folder / "main.tf.json").write_text(json.dumps(root))
    return folder


def _grafana_files() -> dict[str, str]:
    """The Grafana JSON `sloplane render` writes, by the ConfigMap key the components use."""
    files = fleet_files(load_paths([EXAMPLES]).declarations)
    found = {Path(name).name: text for name, text in files.items() if name.startswith("grafana/")}
    found["sloplane-overview.json"] = found.pop("overview.json")
    return found


def test_dashboard_labels_and_folder_are_variables(terraform: TerraformHarness, tmp_path: Path) -> None:
    """The sidecar's label and the folder annotation come from the caller; with the defaults the
    ConfigMaps are exactly the rendered ones (no annotation at all, not an empty one)."""
    folder = _with_root(
        write_root_module(tmp_path, _examples_module()),
        {"dashboard_labels": {"grafana_dashboard": "yes", "team": "sre"}, "grafana_folder": "SLOs"},
    )
    planned = planned_resources(terraform.plan(folder))
    dashboards = [
        v["manifest"]
        for a, v in planned.items()
        if ".kubernetes_manifest." in a and v["manifest"]["kind"] == "ConfigMap" and "evaluator" not in a
    ]
    assert len(dashboards) == len(_grafana_files())
    for dashboard in dashboards:
        assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "yes"
        assert dashboard["metadata"]["labels"]["team"] == "sre"
        assert dashboard["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sloplane"
        assert dashboard["metadata"]["annotations"] == {"grafana_folder": "SLOs"}
    defaults = planned_resources(terraform.plan(write_root_module(tmp_path / "defaults", _examples_module())))
    configmaps = [
        v["manifest"]
        for a, v in defaults.items()
        if ".kubernetes_manifest." in a and v["manifest"]["kind"] == "ConfigMap" and "evaluator" not in a
    ]
    assert configmaps and all("annotations" not in m["metadata"] for m in configmaps)


def test_the_grafana_variant_plans_grafana_dashboards_with_the_rendered_json(
    terraform: TerraformHarness, tmp_path: Path
) -> None:
    declarations = load_paths([EXAMPLES]).declarations
    files = serialize(module_documents(declarations, None, TerraformOptions(dashboards="grafana")))
    root = write_root_module(tmp_path, files)
    planned = planned_resources(terraform.plan(_with_root(root, {"grafana_folder": "slo-folder-uid"})))
    dashboards = [v for a, v in planned.items() if ".grafana_dashboard." in a]
    assert sorted(d["config_json"] for d in dashboards) == sorted(_grafana_files().values())
    assert {d["folder"] for d in dashboards} == {"slo-folder-uid"}
    assert not [a for a, v in planned.items() if ".kubernetes_manifest." in a and v["manifest"]["kind"] == "ConfigMap"]
    unfiled = planned_resources(terraform.plan(write_root_module(tmp_path / "unfiled", files)))
    assert {v["folder"] for a, v in unfiled.items() if ".grafana_dashboard." in a} == {None}


def test_the_gitops_variant_plans_without_any_kubernetes_provider(terraform: TerraformHarness, tmp_path: Path) -> None:
    """With --kubernetes files the module needs no cluster: a root module with no Kubernetes provider at
    all validates and plans it (Datadog objects only)."""
    declarations = load_paths([EXAMPLES]).declarations
    files = serialize(module_documents(declarations, None, TerraformOptions(kubernetes="files")))
    module_files = {name: text for name, text in files.items() if name.startswith("terraform/")}
    folder = write_root_module(tmp_path, module_files)
    root = json.loads((folder / "main.tf.json").read_text())
    root["terraform"]["required_providers"] = {"datadog": PROVIDERS["datadog"]}
    root["provider"] = {"datadog": ROOT_MODULE["provider"]["datadog"]}
    root["module"]["slos"] = {"source": "./gen/terraform"}
    root.pop("variable")
    (folder / "main.tf.json").write_text(json.dumps(root))
    assert terraform.validate(folder) == []
    planned = planned_resources(terraform.plan(folder))
    assert planned and all(".datadog_" in address for address in planned)


def test_the_freezes_output_is_the_rendered_appproject_windows(terraform: TerraformHarness, tmp_path: Path) -> None:
    folder = _with_root(
        write_root_module(tmp_path, _examples_module()),
        {},
        {"sync_windows": {"value": "${module.slos.argocd_sync_windows}"}},
    )
    shown = terraform.plan(folder)
    planned = shown["planned_values"]["outputs"]["sync_windows"]["value"]
    patch = yaml.safe_load(fleet_files(load_paths([EXAMPLES]).declarations)["argo/appproject-syncwindows.yaml"])
    assert planned["sync_windows"] == patch["spec"]["syncWindows"] and planned["sync_windows"]
    assert (planned["app_project"], planned["namespace"]) == (patch["metadata"]["name"], patch["metadata"]["namespace"])


DATABASE_PASSWORD = "s3cret-Pa55word"
DATABASE_URL = f"postgresql://sloplane:{DATABASE_PASSWORD}@db.internal:6432/sloplane?sslmode=require"


def _postgres_module(tmp_path: Path, arguments: dict[str, Any]) -> Path:
    """The examples' module generated with `--evaluator-storage postgres --evaluator-chain-key`, called with
    these arguments (the URL passed on from a sensitive root variable, as a caller's secret would be)."""
    declarations = load_paths([EXAMPLES]).declarations
    terraform = TerraformOptions(evaluator_storage="postgres", evaluator_chain_key=True)
    folder = write_root_module(tmp_path, serialize(module_documents(declarations, None, terraform)))
    root = json.loads((folder / "main.tf.json").read_text())
    root["variable"].update({name: {"type": "string", "sensitive": True} for name in ("database_url", "chain_key")})
    root["module"]["slos"].update(
        {
            "evaluator_database_url": "${var.database_url}",
            "evaluator_chain_key": "${var.chain_key}",
            **arguments,
        }
    )
    (folder / "main.tf.json").write_text(json.dumps(root))
    return folder


def test_the_postgres_evaluator_reads_its_url_from_a_secret_and_shows_it_nowhere_else(
    terraform: TerraformHarness, tmp_path: Path
) -> None:
    folder = _postgres_module(tmp_path, {"create_evaluator": True, "evaluator_database_port": 6432})
    shown = terraform.plan(folder, {"database_url": DATABASE_URL, "chain_key": "chain-key-value"})
    planned = planned_resources(shown)
    evaluator = {a: v["manifest"] for a, v in planned.items() if ".kubernetes_manifest.evaluator-" in a}
    objects = {(o["kind"], o["metadata"]["name"]): o for o in evaluator.values()}
    assert "PersistentVolumeClaim" not in {kind for kind, _ in objects}
    assert objects["Secret", "sloplane-evaluator-database"]["stringData"] == {"url": DATABASE_URL}
    assert objects["Secret", "sloplane-evaluator-chain-key"]["stringData"] == {"chain-key": "chain-key-value"}
    pod = objects["Deployment", "sloplane-evaluator"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["SLOPLANE_DB"]["valueFrom"] == {"secretKeyRef": {"name": "sloplane-evaluator-database", "key": "url"}}
    assert env["SLOPLANE_CHAIN_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "sloplane-evaluator-chain-key", "key": "chain-key"}
    }
    assert "--db" not in container["args"] and "POD_NAME" not in env
    assert "state" not in {volume["name"] for volume in pod["volumes"]}
    egress = objects["NetworkPolicy", "sloplane-evaluator"]["spec"]["egress"]
    assert {"protocol": "TCP", "port": 6432} in [port for rule in egress for port in rule["ports"]]
    # The URL and the key are in their Secrets' planned values, which Terraform marks sensitive, and nowhere else.
    secrets = {
        "sloplane-evaluator-database": ("url", DATABASE_PASSWORD),
        "sloplane-evaluator-chain-key": ("chain-key", "chain-key-value"),
    }
    addresses = {a for a, o in evaluator.items() if o["metadata"]["name"] in secrets}
    for resource in _planned(shown):
        if resource["address"] in addresses:
            key, _ = secrets[resource["values"]["manifest"]["metadata"]["name"]]
            assert resource["sensitive_values"]["manifest"]["stringData"][key] is True
    for change in shown["resource_changes"]:
        if change["address"] in addresses:
            (key,) = change["change"]["after"]["manifest"]["stringData"]
            assert change["change"]["after_sensitive"]["manifest"]["stringData"][key] is True
    # (`show -json` also holds the root module's own variables, values included: the caller's, not the module's.)
    elsewhere = json.dumps(
        [
            [r for r in _planned(shown) if r["address"] not in addresses],
            [c for c in shown["resource_changes"] if c["address"] not in addresses],
            shown.get("configuration", {}),
            shown.get("output_changes", {}),
        ]
    )
    for _, value in secrets.values():
        assert value not in elsewhere


def _planned(shown: dict[str, Any]) -> list[dict[str, Any]]:
    """Every planned resource as `show -json` gives it (values and sensitive_values), through child modules."""
    found: list[dict[str, Any]] = []
    modules = [shown["planned_values"]["root_module"]]
    while modules:
        module = modules.pop()
        found += module.get("resources", [])
        modules += module.get("child_modules", [])
    return found


def test_the_database_url_is_refused_unless_postgres_without_being_shown(
    terraform: TerraformHarness, tmp_path: Path
) -> None:
    folder = _postgres_module(tmp_path, {"create_evaluator": True})
    url = f"mysql://sloplane:{DATABASE_PASSWORD}@db.internal/sloplane"
    with pytest.raises(TerraformError) as raised:
        terraform.plan(folder, {"database_url": url, "chain_key": "k"})
    assert "evaluator_database_url must be a PostgreSQL URL" in raised.value.messages
    assert DATABASE_PASSWORD not in f"{raised.value}\n{raised.value.messages}\n{raised.value.output}"
