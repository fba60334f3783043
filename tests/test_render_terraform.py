"""The Terraform module (`sloplane render --format terraform`): the objects the components register and the
files hold, as Terraform JSON, with every literal escaped as template text and real references spliced in.

(Real Terraform core validates and plans these modules in tests/test_terraform_module.py.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from sloplane.interop import load_paths
from sloplane.render.argo_rollouts import gated
from sloplane.render.bundle import fleet_files
from sloplane.render.datadog import datadog_requests
from sloplane.render.options import KubernetesOptions
from sloplane.render.terraform import PROVIDERS, TerraformOptions, escaped, module_documents
from sloplane.semantics.subjects import Fleet
from tests.conftest import EXAMPLES, run_cli

REFERENCE = re.compile(r"(?<!\$)\$\{([^}]*)\}")
MERGED_LABELS = re.compile(r"\$\{merge\(\{(.*)\}, var\.rule_labels\)\}")


def unescaped(value: Any, namespace: str = "monitoring") -> Any:
    """What Terraform makes of escaped literal text (`$${` is `${`, `%%{` is `%{`), with `var.namespace` at
    its default."""
    if isinstance(value, str):
        if value == "${var.namespace}":
            return namespace
        merged = MERGED_LABELS.fullmatch(value)
        if merged:  # `merge({...}, var.rule_labels)` with the variable at its default
            literal = json.loads("{" + re.sub(r'" = "', '": "', merged.group(1)) + "}")
            return {**literal, **KubernetesOptions().rule_labels}
        return value.replace("$${", "${").replace("%%{", "%{")
    if isinstance(value, dict):
        return {unescaped(key, namespace): unescaped(item, namespace) for key, item in value.items()}
    if isinstance(value, list):
        return [unescaped(item, namespace) for item in value]
    return value


def _module(terraform: TerraformOptions | None = None) -> dict[str, Any]:
    declarations = load_paths([EXAMPLES]).declarations
    return {path: data for path, (_, data) in module_documents(declarations, None, terraform).items()}


def rendered_kubernetes_objects() -> list[dict[str, Any]]:
    """What `sloplane render` writes for the cluster, as the components register it: PrometheusRules,
    Probes and the AnalysisTemplates of declared gates (the hook Jobs are the application's manifests, the
    AppProject's windows an output)."""
    declarations = load_paths([EXAMPLES]).declarations
    gates = {d.name for d in gated(declarations)}
    rendered: list[dict[str, Any]] = []
    for name, text in fleet_files(declarations).items():
        if name.startswith("kubernetes/") or (name.startswith("argo/") and name.endswith(".analysistemplate.yaml")):
            documents = [d for d in yaml.safe_load_all(text) if "kind" in d]
            rendered += [
                d
                for d in documents
                if d["kind"] != "AnalysisTemplate" or d["metadata"]["labels"]["sloplane.dev/slo"] in gates
            ]
    return rendered


def _resources(module: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for data in module.values():
        if not isinstance(data, dict):
            continue  # files/ texts and gitops/ documents
        for kind, named in data.get("resource", {}).items():
            for name, body in named.items():
                found[f"{kind}.{name}"] = body
    return found


def _manifests() -> list[dict[str, Any]]:
    """Every kubernetes_manifest's manifest, as written in the module (escaped)."""
    resources = _resources(_module())
    return [body["manifest"] for key, body in resources.items() if key.startswith("kubernetes_manifest.")]


def test_the_module_pins_its_providers_and_leaves_credentials_to_the_caller() -> None:
    module = _module()
    versions = module["terraform/versions.tf.json"]
    assert versions["terraform"]["required_providers"] == {name: PROVIDERS[name] for name in ("datadog", "kubernetes")}
    grafana = _module(TerraformOptions(dashboards="grafana"))["terraform/versions.tf.json"]
    assert set(grafana["terraform"]["required_providers"]) == {"datadog", "grafana", "kubernetes"}
    files = _module(TerraformOptions(kubernetes="files"))["terraform/versions.tf.json"]
    assert set(files["terraform"]["required_providers"]) == {"datadog"}, "no cluster needed to plan"
    assert all("provider" not in data for data in module.values()), "no provider blocks: the caller's"
    variables = module["terraform/variables.tf.json"]["variable"]
    assert variables and all("default" in variable for variable in variables.values())
    assert sorted(path for path in module if path.startswith("terraform/slo-")) == sorted(
        f"terraform/slo-{d.name}.tf.json" for d in load_paths([EXAMPLES]).declarations
    )


def test_every_kubernetes_manifest_is_an_object_render_writes() -> None:
    """PrometheusRules, Probes and AnalysisTemplates are the documents of the rendered files;
    dashboards are ConfigMaps whose JSON is the module's `files/`, the Grafana files (their metadata is
    an expression over the variables: real Terraform plans it in test_terraform_module)."""
    module = _module()
    manifests = [body["manifest"] for key, body in _resources(module).items() if key.startswith("kubernetes_manifest.")]
    plain = [unescaped(m) for m in manifests if m["kind"] != "ConfigMap" or "sloplane-evaluator" in json.dumps(m)]
    for document in rendered_kubernetes_objects():
        assert document in plain, (document["kind"], document["metadata"]["name"])
    kinds = {manifest["kind"] for manifest in manifests}
    assert {"PrometheusRule", "Probe", "ConfigMap", "AnalysisTemplate"} <= kinds and "Job" not in kinds
    files = fleet_files(load_paths([EXAMPLES]).declarations)
    grafana = {Path(name).name: text for name, text in files.items() if name.startswith("grafana/")}
    grafana["sloplane-overview.json"] = grafana.pop("overview.json")
    dashboards = [m for m in manifests if m["kind"] == "ConfigMap" and "sloplane-evaluator" not in json.dumps(m)]
    for dashboard in dashboards:
        assert "var.dashboard_labels" in dashboard["metadata"] and "var.grafana_folder" in dashboard["metadata"]
        for key, value in dashboard["data"].items():
            assert value == f'${{file("${{path.module}}/files/{key}")}}'
            read = module[f"terraform/files/{key}"]
            assert read == grafana[key], key


def test_literal_template_syntax_is_escaped_and_survives_terraform_unchanged() -> None:
    """Grafana's `${datasource}` and any `%{` in a body are text to Terraform, not interpolations; the
    dashboards' JSON is read with `file()`, which is not a template, so it stays as Grafana wrote it."""
    module = _module()
    manifests = _manifests()
    files = fleet_files(load_paths([EXAMPLES]).declarations)
    grafana = [text for name, text in files.items() if name.startswith("grafana/")]
    assert any("${" in text for text in grafana), "the examples' dashboards use Grafana variables"
    read = [text for path, text in module.items() if path.startswith("terraform/files/")]
    assert sorted(read) == sorted(grafana)
    evaluator_variables = {
        "var.evaluator_image",
        "var.evaluator_prometheus_url",
        "var.evaluator_prometheus_port",
        "var.evaluator_tokens",
        "var.evaluator_receivers",
    }
    for manifest in manifests:  # a manifest refers to nothing but the module's variables
        labels = manifest["metadata"].get("labels") if isinstance(manifest["metadata"], dict) else None
        checked = manifest
        if manifest["kind"] in ("PrometheusRule", "Probe"):
            assert isinstance(labels, str) and MERGED_LABELS.fullmatch(labels), labels
            assert '"release"' not in labels, "the rule labels are the variable's, not literal"
            checked = {**manifest, "metadata": {**manifest["metadata"], "labels": {}}}
        elif manifest["kind"] == "ConfigMap" and isinstance(manifest["metadata"], str):
            checked = {key: value for key, value in manifest.items() if key not in ("metadata", "data")}
        assert set(REFERENCE.findall(json.dumps(checked))) <= {"var.namespace", *evaluator_variables}
    assert all(m["metadata"]["namespace"] == "${var.namespace}" for m in manifests if m["kind"] == "PrometheusRule")
    assert escaped({"${a}": "%{b} ${c}"}) == {"$${a}": "%%{b} $${c}"}
    assert unescaped(escaped({"k": "${x} %{y} $${z}"})) == {"k": "${x} %{y} $${z}"}


def test_datadog_objects_are_the_datadog_files_with_the_slo_id_as_a_reference() -> None:
    declarations = load_paths([EXAMPLES]).declarations
    payments = Fleet(declarations)["payments-availability"]
    requests = datadog_requests(payments)
    resources = _resources(_module())
    slo_key = "datadog_service_level_objective.payments-availability-datadog-slo"
    slo = resources[slo_key]
    (body,) = [r["body"] for r in requests if r["path"] == "/api/v1/slo"]
    assert slo["name"] == body["name"] and slo["query"] == body["query"] and slo["tags"] == body["tags"]
    assert slo["count"] == "${var.create_datadog_objects ? 1 : 0}"
    monitors = {k: v for k, v in resources.items() if k.startswith("datadog_monitor.")}
    queries = sorted(r["body"]["query"] for r in requests if r["path"] == "/api/v1/monitor")
    reference = "${datadog_service_level_objective.payments-availability-datadog-slo[0].id}"
    assert sorted(m["query"].replace(reference, "{{slo:payments-availability}}") for m in monitors.values()) == queries
    for monitor in monitors.values():
        assert monitor["monitor_thresholds"]["critical"] == monitor["query"].rsplit("> ", 1)[1]
    dashboard = resources["datadog_dashboard_json.payments-availability-datadog-dashboard"]
    assert reference in dashboard["dashboard"] and json.loads(dashboard["dashboard"].replace(reference, "id"))
    outputs = _module()["terraform/outputs.tf.json"]["output"]["datadog_slo_ids"]["value"]
    assert outputs == {"payments-availability": f"${{one({slo_key}[*].id)}}"}


def test_render_writes_the_module_into_its_own_folder(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    result = run_cli("render", EXAMPLES, "--format", "terraform", "--out", out)
    assert result.code == 0, result.stderr
    written = sorted(str(p.relative_to(out)) for p in (out / "terraform").rglob("*") if p.is_file())
    assert written == sorted(_module())
    assert run_cli("render", EXAMPLES, "--format", "terraform", "--out", out, "--check").code == 0
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert "warning: checkout-availability: its freezes are the module's output argocd_sync_windows" in result.stderr
    assert any("targets alertmanager, but the Terraform module does not hold" in line for line in warned)
    assert any("rollout-steps.yaml" in line for line in warned)
    refused = run_cli("render", EXAMPLES, "--format", "hcl", "--out", out)
    assert refused.code == 2 and "files or terraform" in refused.stderr
    refused = run_cli("render", EXAMPLES, "--format", "terraform", "--dashboards", "json", "--out", out)
    assert refused.code == 2 and "configmap or grafana" in refused.stderr
    ignored = run_cli("render", EXAMPLES, "--kubernetes", "files", "--out", out)
    assert ignored.code == 2 and "only applies with --format terraform" in ignored.stderr


def test_render_switches_to_gitops_files_and_back_without_leftovers(tmp_path: Path) -> None:
    """`--kubernetes files` writes gitops/ beside the module and says the evaluator is not in it; going
    back to `manifest` removes gitops/ (both folders are the command's own)."""
    out = tmp_path / "gen"
    result = run_cli("render", EXAMPLES, "--format", "terraform", "--kubernetes", "files", "--out", out)
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in (out / "gitops").iterdir()) == sorted(
        f"{Path(path).name}" for path in _module(TerraformOptions(kubernetes="files")) if path.startswith("gitops/")
    )
    assert "the evaluator is not in a module with --kubernetes files" in result.stderr
    assert run_cli("render", EXAMPLES, "--format", "terraform", "--out", out).code == 0
    assert not (out / "gitops").exists() or not list((out / "gitops").iterdir())


def test_the_grafana_variant_has_grafana_dashboards_in_a_folder_variable() -> None:
    module = _module(TerraformOptions(dashboards="grafana"))
    resources = _resources(module)
    dashboards = {key: body for key, body in resources.items() if key.startswith("grafana_dashboard.")}
    assert dashboards and not [
        key
        for key, body in resources.items()
        if key.startswith("kubernetes_manifest.")
        and body["manifest"]["kind"] == "ConfigMap"
        and "sloplane-evaluator" not in json.dumps(body)
    ]
    for body in dashboards.values():
        assert body["count"] == "${var.create_grafana_dashboards ? 1 : 0}"
        assert body["folder"] == '${var.grafana_folder == "" ? null : var.grafana_folder}'
        path = re.fullmatch(r'\$\{file\("\$\{path\.module\}/(files/[^"]+)"\)\}', body["config_json"])
        assert path and f"terraform/{path.group(1)}" in module
    uids = module["terraform/outputs.tf.json"]["output"]["grafana_dashboard_uids"]["value"]
    files = fleet_files(load_paths([EXAMPLES]).declarations)
    assert sorted(uids.values()) == sorted(json.loads(t)["uid"] for n, t in files.items() if n.startswith("grafana/"))
    assert "grafana_folder" in module["terraform/variables.tf.json"]["variable"]
    assert "dashboard_labels" not in module["terraform/variables.tf.json"]["variable"]


def test_the_gitops_variant_writes_the_kubernetes_objects_as_files_and_no_manifests() -> None:
    """Planning needs no cluster: the module holds Datadog only, the objects are YAML for Argo CD or Flux."""
    module = _module(TerraformOptions(kubernetes="files"))
    assert not [key for key in _resources(module) if key.startswith("kubernetes_manifest.")]
    objects = [o for path, data in module.items() if path.startswith("gitops/") for o in data]
    rendered = rendered_kubernetes_objects()
    for document in rendered:
        assert document in objects, (document["kind"], document["metadata"]["name"])
    assert {o["kind"] for o in objects} - {d["kind"] for d in rendered} == {"ConfigMap"}  # the dashboards
    variables = module["terraform/variables.tf.json"]["variable"]
    assert set(variables) == {"create_datadog_objects"}
    names = module["terraform/outputs.tf.json"]["output"]["kubernetes_objects"]["value"]
    assert sorted(n for found in names.values() for n in found) == sorted(
        f"{o['kind']}/{o['metadata']['name']}" for o in objects
    )


def test_the_freezes_are_an_output_for_the_appproject_owner() -> None:
    """The module does not own the AppProject: its windows are an output equal to the rendered patch."""
    files = fleet_files(load_paths([EXAMPLES]).declarations)
    patch = yaml.safe_load(files["argo/appproject-syncwindows.yaml"])
    output = _module()["terraform/outputs.tf.json"]["output"]["argocd_sync_windows"]["value"]
    assert patch["spec"]["syncWindows"], "the examples declare freezes"
    assert unescaped(output) == {
        "app_project": patch["metadata"]["name"],
        "namespace": patch["metadata"]["namespace"],
        "sync_windows": patch["spec"]["syncWindows"],
    }


def _evaluator_objects(module: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    resources = module["terraform/evaluator.tf.json"]["resource"]["kubernetes_manifest"]
    return {(r["manifest"]["kind"], r["manifest"]["metadata"]["name"]): r["manifest"] for r in resources.values()}


def test_the_postgres_variant_has_the_url_in_a_secret_from_a_sensitive_variable_and_no_volume() -> None:
    """As `SloEvaluator` with `storage: {mode: postgres, url}`: the URL is a Terraform reference the renderer
    takes as opaque (like a secret Output), the database port a variable, and nothing is kept on a volume."""
    module = _module(TerraformOptions(evaluator_storage="postgres"))
    objects = _evaluator_objects(module)
    assert "PersistentVolumeClaim" not in {kind for kind, _ in objects}
    assert ("Secret", "sloplane-evaluator-chain-key") not in objects
    assert objects["Secret", "sloplane-evaluator-database"]["stringData"] == {"url": "${var.evaluator_database_url}"}
    (container,) = objects["Deployment", "sloplane-evaluator"]["spec"]["template"]["spec"]["containers"]
    assert {
        "name": "SLOPLANE_DB",
        "valueFrom": {"secretKeyRef": {"name": "sloplane-evaluator-database", "key": "url"}},
    } in (container["env"])
    assert "--db" not in container["args"] and "--controls" not in container["args"]
    assert "state" not in {mount["name"] for mount in container["volumeMounts"]}
    ports = [
        p["port"] for rule in objects["NetworkPolicy", "sloplane-evaluator"]["spec"]["egress"] for p in rule["ports"]
    ]
    assert ports.count("${var.evaluator_database_port}") == 1 and 5432 not in ports
    variables = module["terraform/variables.tf.json"]["variable"]
    url = variables["evaluator_database_url"]
    assert (url["type"], url["sensitive"], "default" in url) == ("string", True, False)
    (validation,) = url["validation"]
    assert "var.evaluator_database_url" not in validation["error_message"]  # never the value: it may hold a password
    assert variables["evaluator_database_port"]["default"] == 5432
    assert "evaluator_chain_key" not in variables
    volume = _module()["terraform/variables.tf.json"]["variable"]
    assert not {"evaluator_database_url", "evaluator_database_port", "evaluator_chain_key"} & set(volume)


def test_the_chain_key_is_a_generation_time_choice_with_a_sensitive_variable() -> None:
    module = _module(TerraformOptions(evaluator_chain_key=True))
    objects = _evaluator_objects(module)
    assert objects["Secret", "sloplane-evaluator-chain-key"]["stringData"] == {
        "chain-key": "${var.evaluator_chain_key}"
    }
    assert ("PersistentVolumeClaim", "sloplane-evaluator-state") in objects  # volume mode still
    (container,) = objects["Deployment", "sloplane-evaluator"]["spec"]["template"]["spec"]["containers"]
    assert {
        "name": "SLOPLANE_CHAIN_KEY",
        "valueFrom": {"secretKeyRef": {"name": "sloplane-evaluator-chain-key", "key": "chain-key"}},
    } in container["env"]
    key = module["terraform/variables.tf.json"]["variable"]["evaluator_chain_key"]
    assert (key["sensitive"], "default" in key) == (True, False)


def test_the_evaluator_storage_flags_are_for_the_terraform_module_only(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    for flags in (["--evaluator-storage", "postgres"], ["--evaluator-chain-key"]):
        ignored = run_cli("render", EXAMPLES, *flags, "--out", out)
        message = re.sub(r"[\s│]+", " ", ignored.stderr)  # as rich wraps it in its box
        assert ignored.code == 2 and f"{flags[0]}: only applies with --format terraform" in message, message
    assert not out.exists()
    refused = run_cli("render", EXAMPLES, "--format", "terraform", "--evaluator-storage", "s3", "--out", out)
    assert refused.code == 2 and "volume or postgres" in refused.stderr
    flags = ("--evaluator-storage", "postgres", "--evaluator-chain-key")
    result = run_cli("render", EXAMPLES, "--format", "terraform", *flags, "--out", out)
    assert result.code == 0, result.stderr
    variables = json.loads((out / "terraform" / "variables.tf.json").read_text())["variable"]
    assert {"evaluator_database_url", "evaluator_database_port", "evaluator_chain_key"} <= set(variables)
    assert run_cli("render", EXAMPLES, "--format", "terraform", *flags, "--out", out, "--check").code == 0


def test_the_evaluator_knows_archived_slos_as_sloevaluator_does_and_nothing_else_renders_them() -> None:
    """An archived SLO renders no rules, monitors or gates, but the evaluator is handed it, as `SloFleet`
    hands it: the evaluator leaves it out of its evaluations itself and still knows it when a gate names it."""
    from sloplane.declaration.model import Lifecycle  # noqa: PLC0415 - this test alone archives a declaration

    declarations = load_paths([EXAMPLES]).declarations
    archived = declarations[0]
    archived = archived.model_copy(update={"spec": archived.spec.model_copy(update={"lifecycle": Lifecycle.ARCHIVED})})
    fleet = [archived, *declarations[1:]]
    module = {path: data for path, (_, data) in module_documents(fleet).items()}
    assert f"terraform/slo-{archived.name}.tf.json" not in module
    resources = _resources(module)
    (config,) = [
        body["manifest"]
        for key, body in resources.items()
        if key.startswith("kubernetes_manifest.evaluator-configmap-")
    ]
    assert f"{archived.name}.yaml" in config["data"]
