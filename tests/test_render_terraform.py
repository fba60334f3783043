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
from sloplane.render.bundle import fleet_files
from sloplane.render.datadog import datadog_requests
from sloplane.render.terraform import PROVIDERS, escaped, module_documents
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
        if merged:  # `merge({...}, var.rule_labels)` with the variable at its default, {}
            return json.loads("{" + re.sub(r'" = "', '": "', merged.group(1)) + "}")
        return value.replace("$${", "${").replace("%%{", "%{")
    if isinstance(value, dict):
        return {unescaped(key, namespace): unescaped(item, namespace) for key, item in value.items()}
    if isinstance(value, list):
        return [unescaped(item, namespace) for item in value]
    return value


def _module() -> dict[str, Any]:
    declarations = load_paths([EXAMPLES]).declarations
    return {path: data for path, (_, data) in module_documents(declarations).items()}


def _resources(module: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for data in module.values():
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
    assert versions["terraform"]["required_providers"] == PROVIDERS
    assert all("provider" not in data for data in module.values()), "no provider blocks: the caller's"
    variables = module["terraform/variables.tf.json"]["variable"]
    assert variables and all("default" in variable for variable in variables.values())
    assert sorted(path for path in module if path.startswith("terraform/slo-")) == sorted(
        f"terraform/slo-{d.name}.tf.json" for d in load_paths([EXAMPLES]).declarations
    )


def test_every_kubernetes_manifest_is_an_object_render_writes() -> None:
    """PrometheusRules, Probes, AnalysisTemplates and hook Jobs are the documents of the rendered files."""
    declarations = load_paths([EXAMPLES]).declarations
    rendered: list[dict[str, Any]] = []
    for name, text in fleet_files(declarations).items():
        if name.startswith(("kubernetes/", "argo/")) and name.endswith(".yaml") and "rollout-steps" not in name:
            rendered += [document for document in yaml.safe_load_all(text) if "kind" in document]
    manifests = [
        unescaped(body["manifest"])
        for key, body in _resources(_module()).items()
        if key.startswith("kubernetes_manifest.")
    ]
    for document in rendered:
        if document["kind"] == "AppProject":
            continue  # the sync windows are a patch of someone else's object (not in the module yet)
        assert document in manifests, (document["kind"], document["metadata"]["name"])
    kinds = {manifest["kind"] for manifest in manifests}
    assert {"PrometheusRule", "Probe", "ConfigMap", "AnalysisTemplate", "Job"} <= kinds


def test_literal_template_syntax_is_escaped_and_survives_terraform_unchanged() -> None:
    """Grafana's `${datasource}` and any `%{` in a body are text to Terraform, not interpolations."""
    manifests = _manifests()
    files = fleet_files(load_paths([EXAMPLES]).declarations)
    grafana = [text for name, text in files.items() if name.startswith("grafana/")]
    assert any("${" in text for text in grafana), "the examples' dashboards use Grafana variables"
    dashboards = [
        value
        for m in manifests
        if m["kind"] == "ConfigMap" and "sloplane-evaluator" not in m["metadata"]["name"]
        for value in m["data"].values()
    ]
    assert sorted(unescaped(value) for value in dashboards) == sorted(grafana)
    assert all("$${" in value for value in dashboards if "${" in unescaped(value))
    evaluator_variables = {
        "var.evaluator_image",
        "var.evaluator_prometheus_url",
        "var.evaluator_tokens",
        "var.evaluator_receivers",
    }
    for manifest in manifests:  # a manifest refers to nothing but the module's variables
        labels = manifest["metadata"].get("labels")
        checked = manifest
        if manifest["kind"] == "PrometheusRule":
            assert isinstance(labels, str) and MERGED_LABELS.fullmatch(labels), labels
            checked = {**manifest, "metadata": {**manifest["metadata"], "labels": {}}}
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
    written = sorted(p.name for p in (out / "terraform").iterdir())
    assert written == sorted(Path(p).name for p in _module())
    assert run_cli("render", EXAMPLES, "--format", "terraform", "--out", out, "--check").code == 0
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert "warning: checkout-availability: its freezes are not in the Terraform module" in result.stderr
    assert any("targets alertmanager, but the Terraform module does not hold" in line for line in warned)
    assert any("rollout-steps.yaml" in line for line in warned)
    refused = run_cli("render", EXAMPLES, "--format", "hcl", "--out", out)
    assert refused.code == 2 and "files or terraform" in refused.stderr
