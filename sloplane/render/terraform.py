"""A Terraform (and OpenTofu) module in JSON syntax: the objects the Pulumi components register, for
teams whose infrastructure is Terraform.

Nothing lets Terraform run a Pulumi component, so the module is generated: `sloplane render --format
terraform` writes `terraform/` (one file per SLO, `fleet.tf.json` for the overviews) for a root module
to call (`module "slos" { source = "./gen/terraform" }`).
It is built from exactly what the components register — each renderer's Pulumi children, plus the Argo
objects `DeploymentGate` registers — so Terraform, Pulumi and the files never disagree:

- Kubernetes objects (PrometheusRule, Probe, dashboard ConfigMap, AnalysisTemplates, Argo CD hook Jobs)
  as `kubernetes_manifest`, each the dict `sloplane render` writes;
- Datadog objects as `datadog_service_level_objective`, `datadog_monitor`, `datadog_slo_correction`,
  `datadog_downtime_schedule` and `datadog_dashboard_json`: pulumi-datadog is bridged from the Terraform
  provider, so the components' inputs are the provider's attributes (a repeated block Pulumi names in
  the plural, `recurrences`, is `recurrence` here), and an SLO id is
  `${datadog_service_level_objective.<name>[0].id}`.

Every string of the module is a Terraform template, so literal text is escaped first (`${` → `$${`,
`%{` → `%%{`: Grafana's `${datasource}` included, keys too) and only then are the real interpolations
spliced in. `versions.tf.json` pins the providers and has no `provider` blocks (the caller brings
credentials); `variables.tf.json` switches each family of objects on or off (every variable has a
default, so `terraform plan` works on the folder as it is); `outputs.tf.json` has the Datadog SLO ids.

The namespace the objects were rendered in is `var.namespace` (its default), so one generated module
serves any namespace, and `var.rule_labels` adds the labels a Prometheus Operator's ruleSelector wants;
the evaluator's objects (`evaluator.tf.json`) are there behind
`var.create_evaluator`, with its image and Prometheus as variables and its token and receivers files as
`sensitive` variables. Not yet in the module (issue 15 continues): a
Grafana-provider variant of the dashboards, labels as variables (fixed at generation time, from the same
options as the files), the AppProject sync windows, and dashboard JSON normalised as Datadog returns it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import TargetSystem
from sloplane.render import argo_cd, argo_rollouts
from sloplane.render.bundle import active
from sloplane.render.datadog_pulumi import with_slo_ids
from sloplane.render.evaluator import evaluator_objects
from sloplane.render.evaluator_settings import RECEIVERS_FILE, TOKENS_FILE, EvaluatorSettings
from sloplane.render.options import BundleOptions
from sloplane.render.pipelines import PipelineOptions
from sloplane.render.registry import Child, Document
from sloplane.render.targets import RENDERERS, renderers_of
from sloplane.semantics.subjects import Fleet, FleetLike

FOLDER = "terraform"
PROVIDERS: dict[str, dict[str, str]] = {
    "kubernetes": {"source": "hashicorp/kubernetes", "version": ">= 2.38, < 3"},
    "datadog": {"source": "DataDog/datadog", "version": ">= 3.82, < 4"},
}
"""The providers the module needs, pinned to the versions whose schemas the tests validate against."""
DATADOG_RESOURCES = {
    "ServiceLevelObjective": "datadog_service_level_objective",
    "Monitor": "datadog_monitor",
    "SloCorrection": "datadog_slo_correction",
    "DowntimeSchedule": "datadog_downtime_schedule",
    "DashboardJson": "datadog_dashboard_json",
}
BLOCK_NAMES = {"recurrences": "recurrence", "queries": "query", "formulas": "formula"}
"""Repeated blocks Pulumi names in the plural, and their Terraform names."""
SWITCHES = {
    "kubernetes_manifest": "create_kubernetes_objects",
    "datadog": "create_datadog_objects",
}
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def escaped(value: Any) -> Any:
    """Literal text made safe as Terraform template text, keys included (see the module docstring)."""
    if isinstance(value, str):
        return value.replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, Mapping):
        return {escaped(key): escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escaped(item) for item in value]
    return value


def hcl_map(values: Mapping[str, str]) -> str:
    """A map of strings as an HCL object expression (JSON string literals are HCL string literals)."""
    return "{" + ", ".join(f"{json.dumps(key)} = {json.dumps(value)}" for key, value in values.items()) + "}"


def resource_name(text: str) -> str:
    """A Terraform identifier from a child's name (letters, digits, `_` and `-`; never a leading digit)."""
    name = _NAME.sub("_", text)
    return name if name[:1].isalpha() or name[:1] == "_" else f"_{name}"


def _with_variables(value: Any) -> Any:
    """Sentinels (`_SENTINEL`) replaced by references to the variables they stand for."""
    if isinstance(value, str):
        return re.sub(r"__sloplane_var_([a-z_]+)__", r"${var.\1}", value)
    if isinstance(value, Mapping):
        return {key: _with_variables(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_variables(item) for item in value]
    return value


def _switched(body: dict[str, Any], switch: str) -> dict[str, Any]:
    return {"count": f"${{var.{switch} ? 1 : 0}}", **body}


def _terraform_blocks(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {BLOCK_NAMES.get(key, key): _terraform_blocks(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_terraform_blocks(item) for item in value]
    return value


class _Module:
    """The resources of the module as they are added, and the SLO ids later resources refer to."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        """The namespace the objects were rendered in: there, `var.namespace` takes its place."""
        self.files: dict[str, dict[str, dict[str, Any]]] = {}
        """Resources by file (one per SLO, and `fleet`), then by type and name."""
        self.file = "fleet"
        self.slo_ids: dict[str, str] = {}
        self.outputs: dict[str, str] = {}
        self._taken: set[tuple[str, str]] = set()

    def add(self, kind: str, name: str, body: dict[str, Any]) -> None:
        if (kind, name) in self._taken:
            raise ValueError(f"two Terraform resources would be {kind}.{name}")
        self._taken.add((kind, name))
        self.files.setdefault(self.file, {}).setdefault(kind, {})[name] = body

    def manifest(self, name: str, obj: Mapping[str, Any], switch: str = SWITCHES["kubernetes_manifest"]) -> None:
        manifest = escaped(dict(obj))
        if obj.get("metadata", {}).get("namespace") == self.namespace:
            manifest["metadata"] = {**manifest["metadata"], "namespace": "${var.namespace}"}
        if obj.get("kind") == "PrometheusRule":  # the Prometheus Operator's ruleSelector may want more labels
            labels = manifest["metadata"].get("labels", {})
            manifest["metadata"] = {**manifest["metadata"], "labels": f"${{merge({hcl_map(labels)}, var.rule_labels)}}"}
        body = {"manifest": _with_variables(manifest)}
        self.add("kubernetes_manifest", resource_name(name), _switched(body, switch))

    def datadog(self, name: str, child: Child) -> None:
        assert child.datadog is not None
        kind = DATADOG_RESOURCES[child.datadog.type]
        terraform_name = resource_name(name)
        ids = {ref: self.slo_ids[ref] for ref in child.datadog.slo_refs}
        inputs = escaped(_terraform_blocks(dict(child.object)))
        for key in child.datadog.json_inputs:  # JSON text: serialised with the literals escaped, then ids in
            inputs[key] = json.dumps(inputs[key], sort_keys=True, separators=(",", ":"))
        self.add(kind, terraform_name, _switched(with_slo_ids(inputs, ids), SWITCHES["datadog"]))
        if child.datadog.type == "ServiceLevelObjective" and child.datadog.ref is not None:
            self.slo_ids[child.datadog.ref] = f"${{{kind}.{terraform_name}[0].id}}"
            self.outputs[child.datadog.ref] = f"${{one({kind}.{terraform_name}[*].id)}}"


def _argo_objects(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> list[dict[str, Any]]:
    """The Argo objects `DeploymentGate` and `render` have for one SLO: AnalysisTemplates, hook Jobs."""
    found: list[dict[str, Any]] = []
    if TargetSystem.ARGO_ROLLOUTS in declaration.spec.targets:
        found += argo_rollouts.analysis_templates(
            declaration, fleet, options.pipelines, prometheus_url=options.analysis_prometheus_url
        )
    if TargetSystem.ARGO_CD in declaration.spec.targets:
        found += [
            argo_cd.postsync_job(declaration, options.pipelines),
            argo_cd.syncfail_job(declaration, options.pipelines),
        ]
    return found


def _slo(module: _Module, declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> None:
    module.file = f"slo-{declaration.name}"
    children = [
        child for renderer in renderers_of(declaration) for child in renderer.slo_children(declaration, fleet, options)
    ]
    for child in children:
        name = f"{declaration.name}-{child.suffix}"
        if child.kind == "datadog":
            module.datadog(name, child)
        else:
            module.manifest(name, child.object)
    for obj in _argo_objects(declaration, fleet, options):
        module.manifest(f"{declaration.name}-{obj['kind'].lower()}-{obj['metadata']['name']}", obj)


EVALUATOR_VARIABLES: dict[str, dict[str, Any]] = {
    "create_evaluator": {
        "type": "bool",
        "default": False,
        "description": "Run sloplane's evaluator (Deployment, Service, Secret, volume, NetworkPolicy) for these SLOs.",
    },
    "evaluator_image": {
        "type": "string",
        "default": PipelineOptions().image,
        "description": "The evaluator's container image.",
    },
    "evaluator_prometheus_url": {
        "type": "string",
        "default": "http://prometheus-operated.monitoring.svc:9090",
        "description": "Prometheus as the evaluator's pods reach it.",
    },
    "evaluator_tokens": {
        "type": "string",
        "default": "tokens: []\n",
        "sensitive": True,
        "description": "The evaluator's token file (`sloplane token create` entries).",
    },
    "evaluator_receivers": {
        "type": "string",
        "default": "receivers: []\n",
        "sensitive": True,
        "description": "The evaluator's receivers file (PagerDuty routing keys, webhook URLs).",
    },
}
"""The evaluator's settings a caller changes without regenerating; its tokens and receivers are `sensitive`."""
_SENTINEL = "__sloplane_var_{}__"
DEFAULT_EVALUATOR_NAME = "sloplane-evaluator"
"""As `SloEvaluator` names its objects by default."""


def _evaluator(module: _Module, declarations: Sequence[Declaration], namespace: str) -> None:
    """The evaluator's objects, as `SloEvaluator` creates them, behind `var.create_evaluator`.

    They are rendered with sentinels where the variables go (image, Prometheus, the Secret's files) and
    the sentinels are replaced by references after the literal text is escaped."""
    settings = EvaluatorSettings(
        name=DEFAULT_EVALUATOR_NAME,
        namespace=namespace,
        image=_SENTINEL.format("evaluator_image"),
        prometheus_url=_SENTINEL.format("evaluator_prometheus_url"),
    )
    secret_values = {
        TOKENS_FILE: _SENTINEL.format("evaluator_tokens"),
        RECEIVERS_FILE: _SENTINEL.format("evaluator_receivers"),
    }
    module.file = "evaluator"
    for obj in evaluator_objects(settings, declarations, secret_values):
        name = f"evaluator-{obj['kind'].lower()}-{obj['metadata']['name']}"
        module.manifest(name, obj, switch="create_evaluator")


def _variables(namespace: str) -> dict[str, Any]:
    described = {
        SWITCHES["kubernetes_manifest"]: "Create the Kubernetes objects (rules, probes, dashboards, Argo objects).",
        SWITCHES["datadog"]: "Create the Datadog objects (SLOs, monitors, corrections, downtimes, dashboards).",
    }
    variables: dict[str, Any] = {
        name: {"type": "bool", "default": True, "description": description} for name, description in described.items()
    }
    variables.update(EVALUATOR_VARIABLES)
    variables["rule_labels"] = {
        "type": "map(string)",
        "default": {},
        "description": "Labels added to every PrometheusRule (the Prometheus Operator's ruleSelector).",
    }
    variables["namespace"] = {
        "type": "string",
        "default": escaped(namespace),
        "description": "Namespace of the rules, probes and dashboards (default: the one the module was generated for).",
    }
    return {"variable": variables}


NOT_IN_MODULE = {
    TargetSystem.ALERTMANAGER: "its Alertmanager routes (alertmanager/alertmanager.yaml of `sloplane render`)",
    TargetSystem.SPINNAKER: "its Spinnaker stages (spinnaker/ of `sloplane render`: pipeline JSON, not infrastructure)",
}


def omissions(declarations: Sequence[Declaration]) -> list[str]:
    """What the declarations ask for that the module does not hold, one line each, so that the command
    says so instead of dropping it in silence."""
    found: list[str] = []
    for declaration in active(declarations):
        for target, what in NOT_IN_MODULE.items():
            if target in declaration.spec.targets:
                found.append(
                    f"{declaration.name}: targets {target.value}, but the Terraform module does not hold {what}"
                )
        if TargetSystem.ARGO_CD in declaration.spec.targets and declaration.spec.effective_gate.freezes:
            found.append(
                f"{declaration.name}: its freezes are not in the Terraform module (an AppProject's syncWindows "
                "belong to whoever owns the AppProject): apply argo/appproject-syncwindows.yaml of `sloplane render`"
            )
        if TargetSystem.ARGO_ROLLOUTS in declaration.spec.targets:
            found.append(
                f"{declaration.name}: the canary steps go into your Rollout, not the module: "
                f"argo/{declaration.name}.rollout-steps.yaml of `sloplane render`"
            )
    return found


def module_documents(declarations: Sequence[Declaration], options: BundleOptions | None = None) -> dict[str, Document]:
    """The module's files as data, by path under the output folder (`terraform/…`)."""
    options = options or BundleOptions()
    fleet = Fleet(declarations)
    module = _Module(options.kubernetes.namespace)
    rendered = active(declarations)
    for declaration in rendered:
        _slo(module, declaration, fleet, options)
    _evaluator(module, rendered, options.kubernetes.namespace)
    module.file = "fleet"
    for renderer in RENDERERS:  # fleet-wide objects (the overview dashboards), for the SLOs naming the target
        named = [d for d in rendered if renderer.target in d.spec.targets]
        for child in renderer.fleet_children(named, fleet, options):
            if child.kind == "datadog":
                module.datadog(f"fleet-{child.suffix}", child)
            else:
                module.manifest(f"fleet-{child.suffix}", child.object)
    documents: dict[str, Document] = {
        f"{FOLDER}/versions.tf.json": (
            "json",
            {"terraform": {"required_version": ">= 1.5", "required_providers": PROVIDERS}},
        ),
        f"{FOLDER}/variables.tf.json": ("json", _variables(options.kubernetes.namespace)),
        f"{FOLDER}/outputs.tf.json": (
            "json",
            {
                "output": {
                    "datadog_slo_ids": {
                        "description": "Each Datadog SLO's id, by SLO (and stage).",
                        "value": dict(sorted(module.outputs.items())),
                    }
                }
            },
        ),
    }
    for file, resources in module.files.items():
        documents[f"{FOLDER}/{file}.tf.json"] = ("json", {"resource": resources})
    return dict(sorted(documents.items()))
