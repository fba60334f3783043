"""A Terraform (and OpenTofu) module in JSON syntax: the objects the Pulumi components register, for
teams whose infrastructure is Terraform.

Nothing lets Terraform run a Pulumi component, so the module is generated: `sloplane render --format
terraform` writes `terraform/` (one file per SLO, `fleet.tf.json` for the overviews, `evaluator.tf.json`)
for a root module to call (`module "slos" { source = "./gen/terraform" }`).
It is built from exactly what the components register — each renderer's Pulumi children, plus the Argo
objects `DeploymentGate` registers — so Terraform, Pulumi and the files never disagree:

- Kubernetes objects (PrometheusRule, Probe, dashboard ConfigMap, AnalysisTemplates, Argo CD hook Jobs)
  as `kubernetes_manifest`, each the dict `sloplane render` writes — or, with `kubernetes: files`, as
  YAML under `gitops/` for Argo CD or Flux, so that planning needs no cluster;
- dashboards as ConfigMaps for the Grafana sidecar or, with `dashboards: grafana`, as `grafana_dashboard`;
  either way their JSON is a file under `files/` read with `file()` (large, and not a template);
- Datadog objects as `datadog_service_level_objective`, `datadog_monitor`, `datadog_slo_correction`,
  `datadog_downtime_schedule` and `datadog_dashboard_json`: pulumi-datadog is bridged from the Terraform
  provider, so the components' inputs are the provider's attributes (a repeated block Pulumi names in
  the plural, `recurrences`, is `recurrence` here), and an SLO id is
  `${datadog_service_level_objective.<name>[0].id}`;
- the evaluator's objects, as `SloEvaluator` creates them, behind `var.create_evaluator`, with its
  tokens and receivers files as `sensitive` variables; in volume or (`evaluator_storage`) postgres mode,
  the database URL and a chain key `sensitive` variables without a default;
- the Argo CD freezes as the output `argocd_sync_windows`: an AppProject belongs to whoever owns it
  (`kubernetes_manifest` owns whole objects, and would delete it with the module), so its owner adds
  them to its `syncWindows`.

Literal text is escaped as template text before references are spliced in (`terraform_hcl`). What a
caller changes without regenerating is a variable, each with the generated value as default
(`terraform_variables`): a plan with the defaults holds exactly what `sloplane render` writes.
`versions.tf.json` requires only the providers the module uses, and has no `provider` blocks (the
caller brings credentials).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import TargetSystem
from sloplane.render import argo_cd, argo_rollouts
from sloplane.render.argo_rollouts import gated
from sloplane.render.bundle import active
from sloplane.render.datadog_pulumi import with_slo_ids
from sloplane.render.evaluator import database_ports, evaluator_objects
from sloplane.render.evaluator_settings import RECEIVERS_FILE, TOKENS_FILE, EvaluatorSettings, StorageSettings
from sloplane.render.options import BundleOptions
from sloplane.render.registry import Child, Document
from sloplane.render.targets import RENDERERS, renderers_of
from sloplane.render.terraform_hcl import (
    VARIABLE_SENTINEL,
    Reference,
    escaped,
    file_reference,
    hcl_value,
    resource_name,
    with_variables,
)
from sloplane.render.terraform_variables import merged_labels, switch, variables
from sloplane.semantics.subjects import Fleet, FleetLike

FOLDER = "terraform"
GITOPS_FOLDER = "gitops"
PROVIDERS: dict[str, dict[str, str]] = {
    "kubernetes": {"source": "hashicorp/kubernetes", "version": ">= 2.38, < 3"},
    "datadog": {"source": "DataDog/datadog", "version": ">= 3.82, < 4"},
    "grafana": {"source": "grafana/grafana", "version": ">= 3.0, < 4"},
}
"""The providers a module may need (it requires only those it uses), pinned to the versions whose schemas
the tests validate against."""
DATADOG_RESOURCES = {
    "ServiceLevelObjective": "datadog_service_level_objective",
    "Monitor": "datadog_monitor",
    "SloCorrection": "datadog_slo_correction",
    "DowntimeSchedule": "datadog_downtime_schedule",
    "DashboardJson": "datadog_dashboard_json",
}
BLOCK_NAMES = {"recurrences": "recurrence", "queries": "query", "formulas": "formula"}
"""Repeated blocks Pulumi names in the plural, and their Terraform names."""
SELECTED_BY_RULE_LABELS = ("PrometheusRule", "Probe")
"""Objects the Prometheus Operator finds by the rule labels (ruleSelector, probeSelector)."""
FOLDER_ANNOTATION = "grafana_folder"
"""The annotation the Grafana Helm chart's dashboard sidecar reads for a folder (`folderAnnotation`)."""

DashboardsAs = Literal["configmap", "grafana"]
KubernetesAs = Literal["manifest", "files"]
EvaluatorStorage = Literal["volume", "postgres"]


@dataclass(frozen=True)
class TerraformOptions:
    """How the module holds what is not Datadog's (each choice changes which providers the module needs) and
    how its evaluator stores: every choice is made at generation time."""

    dashboards: DashboardsAs = "configmap"
    """`configmap`: ConfigMaps the Grafana sidecar loads; `grafana`: `grafana_dashboard` resources (the
    Grafana provider), in `var.grafana_folder`."""
    kubernetes: KubernetesAs = "manifest"
    """`manifest`: `kubernetes_manifest` resources (the cluster and its CRDs must exist at plan time);
    `files`: no `kubernetes_manifest` at all — the Kubernetes objects are written as YAML under `gitops/`
    for Argo CD or Flux to apply, and the module holds Datadog (and Grafana) only."""
    evaluator_storage: EvaluatorStorage = "volume"
    """The evaluator's storage mode, as `SloEvaluator`'s `storage.mode`: `volume` (a PVC) or `postgres` (no PVC;
    the URL from the sensitive `var.evaluator_database_url` into the `<name>-database` Secret). A generation-time
    choice: it decides which objects exist, and a sensitive value cannot decide a `count`."""
    evaluator_chain_key: bool = False
    """The decision log's hash chain is an HMAC keyed by the sensitive `var.evaluator_chain_key` (the
    `<name>-chain-key` Secret, `SLOPLANE_CHAIN_KEY`). A generation-time choice for the same reason."""


def _terraform_blocks(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {BLOCK_NAMES.get(key, key): _terraform_blocks(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_terraform_blocks(item) for item in value]
    return value


@dataclass
class _Module:
    """The module's resources as they are added, the SLO ids later resources refer to, and the files
    beside them (dashboard bodies, the GitOps objects)."""

    namespace: str
    """The namespace the objects were rendered in: there, `var.namespace` takes its place."""
    dashboard_label: str
    """The label key the Grafana sidecar watches: its value is `var.dashboard_labels`'."""
    rule_labels: Mapping[str, str]
    """The labels rules and probes were rendered with: `var.rule_labels` (its default) takes their place."""
    options: TerraformOptions
    file: str = "fleet"
    """The file resources are being added to: one per SLO, and `fleet`."""
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Resources by file, then by type and name."""
    texts: dict[str, str] = field(default_factory=dict)
    """Files of the module read with `file()` (dashboard JSON), by path under the module."""
    gitops: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """With `kubernetes: files`, the Kubernetes objects by file."""
    families: set[str] = field(default_factory=set)
    slo_ids: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _taken: set[tuple[str, str]] = field(default_factory=set)

    def add(self, kind: str, name: str, body: dict[str, Any], family: str) -> None:
        if (kind, name) in self._taken:
            raise ValueError(f"two Terraform resources would be {kind}.{name}")
        self._taken.add((kind, name))
        self.families.add(family)
        self.resources.setdefault(self.file, {}).setdefault(kind, {})[name] = {**switch(family), **body}

    def _named(self, obj: Mapping[str, Any]) -> None:
        """The object's name in the `kubernetes_objects` output (`Kind/name`, by file)."""
        self.outputs.setdefault("kubernetes_objects", {}).setdefault(self.file, []).append(
            escaped(f"{obj['kind']}/{obj['metadata']['name']}")
        )

    def manifest(self, name: str, obj: Mapping[str, Any], family: str = "kubernetes") -> None:
        if self.options.kubernetes == "files":
            if family == "kubernetes":
                self.gitops.setdefault(self.file, []).append(dict(obj))
                self._named(obj)
            return  # the evaluator's Secret has no place in Git: see `omissions`
        manifest = escaped(dict(obj))
        metadata = dict(manifest["metadata"])
        if obj["metadata"].get("namespace") == self.namespace:
            metadata["namespace"] = "${var.namespace}"
        if obj.get("kind") in SELECTED_BY_RULE_LABELS:  # the Prometheus Operator's selectors: the caller's labels
            labels = {k: v for k, v in obj["metadata"].get("labels", {}).items() if k not in self.rule_labels}
            metadata["labels"] = f"${{{merged_labels(labels, 'rule_labels')}}}"
        manifest["metadata"] = metadata
        if family == "kubernetes":
            self._named(obj)
        self.add("kubernetes_manifest", resource_name(name), {"manifest": with_variables(manifest)}, family)

    def dashboard(self, name: str, config_map: Mapping[str, Any]) -> None:
        """A dashboard ConfigMap: as it is (GitOps files), as a ConfigMap whose JSON is read from `files/`
        with its labels and folder from variables, or as `grafana_dashboard` resources."""
        bodies: dict[str, str] = dict(config_map["data"])
        if self.options.kubernetes == "files" and self.options.dashboards == "configmap":
            self.manifest(name, config_map)
            return
        for key, text in bodies.items():
            self.texts[f"files/{key}"] = text
        if self.options.dashboards == "grafana":
            for key, text in bodies.items():
                uid = json.loads(text).get("uid")
                folder = '${var.grafana_folder == "" ? null : var.grafana_folder}'
                body = {"config_json": file_reference(f"files/{key}"), "folder": folder}
                self.add("grafana_dashboard", resource_name(name), body, "grafana")
                self.outputs.setdefault("grafana_dashboard_uids", {})[self.file] = escaped(uid)
            return
        metadata = config_map["metadata"]
        labels = {k: v for k, v in metadata.get("labels", {}).items() if k != self.dashboard_label}
        fields = (
            f'"name" = {hcl_value(escaped(metadata["name"]))}, "namespace" = var.namespace, '
            f'"labels" = {merged_labels(labels, "dashboard_labels")}'
        )
        folder = (
            f'{{for key, value in {{"annotations" = {{"{FOLDER_ANNOTATION}" = var.grafana_folder}}}} : '
            'key => value if var.grafana_folder != ""}'
        )
        manifest = {
            **escaped({key: value for key, value in config_map.items() if key not in ("metadata", "data")}),
            "metadata": f"${{merge({{{fields}}}, {folder})}}",
            "data": {escaped(key): file_reference(f"files/{key}") for key in bodies},
        }
        self._named(config_map)
        self.add("kubernetes_manifest", resource_name(name), {"manifest": manifest}, "kubernetes")

    def datadog(self, name: str, child: Child) -> None:
        assert child.datadog is not None
        kind = DATADOG_RESOURCES[child.datadog.type]
        terraform_name = resource_name(name)
        ids = {ref: self.slo_ids[ref] for ref in child.datadog.slo_refs}
        inputs = escaped(
            {  # JSON text is the API's body, in the API's names: serialised with the literals escaped, then ids in
                key: json.dumps(value, sort_keys=True, separators=(",", ":"))
                if key in child.datadog.json_inputs
                else _terraform_blocks(value)
                for key, value in child.object.items()
            }
        )
        self.add(kind, terraform_name, with_slo_ids(inputs, ids), "datadog")
        if child.datadog.type == "ServiceLevelObjective" and child.datadog.ref is not None:
            self.slo_ids[child.datadog.ref] = f"${{{kind}.{terraform_name}[0].id}}"
            self.outputs.setdefault("datadog_slo_ids", {})[child.datadog.ref] = (
                f"${{one({kind}.{terraform_name}[*].id)}}"
            )


def _argo_objects(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> list[dict[str, Any]]:
    """The AnalysisTemplates `DeploymentGate` registers for one SLO: for a declared gate and the Argo
    Rollouts target, as `SloFleet` creates its gate.

    The Argo CD hook Jobs are not resources: they belong in the application's own manifests, where Argo
    CD runs them on each sync (created by Terraform they would run once, at apply): see `omissions`."""
    if not gated([declaration]):
        return []
    return argo_rollouts.analysis_templates(
        declaration, fleet, options.pipelines, prometheus_url=options.analysis_prometheus_url
    )


def _slo(module: _Module, declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> None:
    module.file = f"slo-{declaration.name}"
    children = [
        child for renderer in renderers_of(declaration) for child in renderer.slo_children(declaration, fleet, options)
    ]
    for child in children:
        _child(module, f"{declaration.name}-{child.suffix}", child)
    for obj in _argo_objects(declaration, fleet, options):
        module.manifest(f"{declaration.name}-{obj['kind'].lower()}-{obj['metadata']['name']}", obj)


def _child(module: _Module, name: str, child: Child) -> None:
    if child.kind == "datadog":
        module.datadog(name, child)
    elif child.kind == "config-map":
        module.dashboard(name, child.object)
    else:
        module.manifest(name, child.object)


DEFAULT_EVALUATOR_NAME = "sloplane-evaluator"
"""As `SloEvaluator` names its objects by default."""


def _evaluator(
    module: _Module, declarations: Sequence[Declaration], namespace: str, terraform: TerraformOptions
) -> None:
    """The evaluator's objects, as `SloEvaluator` creates them, behind `var.create_evaluator`.

    They are rendered with sentinels where the variables go (image, Prometheus, the Secret's files) and
    the sentinels are replaced by references after the literal text is escaped. The database URL and the
    chain key are `Reference`s, opaque to the renderer as a secret Output is; the database port is
    `POSTGRES_PORT` where the renderer cannot read the URL, and becomes `var.evaluator_database_port`."""
    postgres = terraform.evaluator_storage == "postgres"
    settings = EvaluatorSettings(
        name=DEFAULT_EVALUATOR_NAME,
        namespace=namespace,
        image=VARIABLE_SENTINEL.format("evaluator_image"),
        prometheus_url=VARIABLE_SENTINEL.format("evaluator_prometheus_url"),
        prometheus_port=PROMETHEUS_PORT_STANDIN,
        storage=StorageSettings(mode=terraform.evaluator_storage),
        keyed_chain=terraform.evaluator_chain_key,
    )
    secret_values: dict[str, object] = {
        TOKENS_FILE: VARIABLE_SENTINEL.format("evaluator_tokens"),
        RECEIVERS_FILE: VARIABLE_SENTINEL.format("evaluator_receivers"),
    }
    database_url = Reference("evaluator_database_url") if postgres else None
    chain_key = Reference("evaluator_chain_key") if terraform.evaluator_chain_key else None
    module.file = "evaluator"
    objects = evaluator_objects(settings, declarations, secret_values, database_url=database_url, chain_key=chain_key)
    for obj in objects:
        if obj["kind"] == "NetworkPolicy":
            _port_variable(obj, [PROMETHEUS_PORT_STANDIN], "evaluator_prometheus_port")
        if postgres and obj["kind"] == "NetworkPolicy":
            _port_variable(obj, database_ports(settings, database_url), "evaluator_database_port")
        module.manifest(f"evaluator-{obj['kind'].lower()}-{obj['metadata']['name']}", obj, family="evaluator")


PROMETHEUS_PORT_STANDIN = 9090
"""The Prometheus port the evaluator is rendered with, replaced by `var.evaluator_prometheus_port`: the URL is a
variable, so the renderer could not read its port (it took the scheme's, 80, and the policy shut Prometheus out)."""


def _port_variable(policy: dict[str, Any], ports: Sequence[int], variable: str) -> None:
    """The NetworkPolicy (rendered for this module alone, so changed in place) with the egress port the renderer
    assumed (the database's, Prometheus') as a sentinel for `var.<variable>`. The module's other egress ports are
    fixed (DNS, 443), so exactly one entry is that port: anything else is refused, not guessed."""
    found = [entry for rule in policy["spec"]["egress"] for entry in rule["ports"] if entry["port"] in ports]
    if len(ports) != 1 or len(found) != 1:
        raise ValueError(f"the evaluator's egress ports do not single out {variable}'s port {list(ports)}")
    found[0]["port"] = VARIABLE_SENTINEL.format(variable)


NOT_IN_MODULE = {
    TargetSystem.ALERTMANAGER: "its Alertmanager routes (alertmanager/alertmanager.yaml of `sloplane render`)",
    TargetSystem.SPINNAKER: "its Spinnaker stages (spinnaker/ of `sloplane render`: pipeline JSON, not infrastructure)",
}


def omissions(declarations: Sequence[Declaration], terraform: TerraformOptions | None = None) -> list[str]:
    """What the declarations ask for that the module does not hold, or holds only as an output, one line
    each, so that the command says so instead of dropping it in silence."""
    found: list[str] = []
    rendered = active(declarations)
    for declaration in rendered:
        for target, what in NOT_IN_MODULE.items():
            if target in declaration.spec.targets:
                found.append(
                    f"{declaration.name}: targets {target.value}, but the Terraform module does not hold {what}"
                )
        if TargetSystem.ARGO_CD in declaration.spec.targets and declaration.spec.effective_gate.freezes:
            found.append(
                f"{declaration.name}: its freezes are the module's output argocd_sync_windows, not resources: "
                "an AppProject belongs to whoever owns it, who adds them to its syncWindows"
            )
        if TargetSystem.ARGO_ROLLOUTS in declaration.spec.targets:
            found.append(
                f"{declaration.name}: the canary steps go into your Rollout, not the module: "
                f"argo/{declaration.name}.rollout-steps.yaml of `sloplane render`"
            )
            if not gated([declaration]):
                found.append(
                    f"{declaration.name}: declares no gate, so the module (like SloFleet) has no AnalysisTemplate "
                    "for it"
                )
        if TargetSystem.ARGO_CD in declaration.spec.targets:
            found.append(
                f"{declaration.name}: the Argo CD hook Jobs go into the application's manifests, not the module "
                f"(Argo CD runs them on each sync): argo/{declaration.name}.postsync-job.yaml and "
                f"argo/{declaration.name}.syncfail-job.yaml of `sloplane render`"
            )
    if rendered and terraform is not None and terraform.kubernetes == "files":
        found.append(
            "the evaluator is not in a module with --kubernetes files (its Secret does not belong in Git): "
            "deploy it with the SloEvaluator component or a module generated with --kubernetes manifest"
        )
    return found


def _sync_windows(declarations: Sequence[Declaration], options: BundleOptions) -> dict[str, Any]:
    """The freezes as an output for the AppProject's owner: `kubernetes_manifest` owns whole objects (it
    would delete the AppProject with the module) and an AppProject's `syncWindows` is one list."""
    patch = argo_cd.sync_windows([d for d in declarations if TargetSystem.ARGO_CD in d.spec.targets], options.pipelines)
    windows: dict[str, Any] = escaped(
        {
            "app_project": patch["metadata"]["name"],
            "namespace": patch["metadata"]["namespace"],
            "sync_windows": patch["spec"]["syncWindows"],
        }
    )
    return windows


OUTPUT_DESCRIPTIONS = {
    "datadog_slo_ids": "Each Datadog SLO's id, by SLO (and stage).",
    "kubernetes_objects": "The Kubernetes objects (Kind/name), by file of the module (slo-<name>, fleet).",
    "grafana_dashboard_uids": "Each Grafana dashboard's uid, by file of the module (slo-<name>, fleet).",
    "argocd_sync_windows": (
        "The Argo CD deny windows of the declared freezes, for the owner of the AppProject to add to its "
        "spec.syncWindows (the module does not own the AppProject)."
    ),
}


def _outputs(module: _Module, declarations: Sequence[Declaration], options: BundleOptions) -> dict[str, Any]:
    values: dict[str, Any] = {"datadog_slo_ids": {}, **module.outputs}
    values["argocd_sync_windows"] = _sync_windows(declarations, options)
    return {
        "output": {
            name: {"description": OUTPUT_DESCRIPTIONS[name], "value": dict(sorted(value.items()))}
            for name, value in sorted(values.items())
        }
    }


def module_documents(
    declarations: Sequence[Declaration],
    options: BundleOptions | None = None,
    terraform: TerraformOptions | None = None,
) -> dict[str, Document]:
    """The module's files as data, by path under the output folder (`terraform/…`, and `gitops/…` when
    the Kubernetes objects are files)."""
    options = options or BundleOptions()
    terraform = terraform or TerraformOptions()
    fleet = Fleet(declarations)
    kubernetes = options.kubernetes
    module = _Module(kubernetes.namespace, kubernetes.dashboard_label[0], kubernetes.rule_labels, terraform)
    rendered = active(declarations)
    for declaration in rendered:
        _slo(module, declaration, fleet, options)
    # Every declaration, archived ones too, as SloFleet hands them: the evaluator leaves archived SLOs out of its
    # evaluations itself, and still knows them when a gate names one.
    _evaluator(module, declarations, options.kubernetes.namespace, terraform)
    module.file = "fleet"
    for renderer in RENDERERS:  # fleet-wide objects (the overview dashboards), for the SLOs naming the target
        named = [d for d in rendered if renderer.target in d.spec.targets]
        for child in renderer.fleet_children(named, fleet, options):
            _child(module, f"fleet-{child.suffix}", child)
    if terraform.kubernetes == "manifest":
        module.families |= {"kubernetes", "evaluator"}
    providers = {"kubernetes": "kubernetes", "datadog": "datadog", "grafana": "grafana", "evaluator": "kubernetes"}
    required = {providers[family] for family in module.families}
    documents: dict[str, Document] = {
        f"{FOLDER}/versions.tf.json": (
            "json",
            {
                "terraform": {
                    "required_version": ">= 1.5",
                    "required_providers": {name: PROVIDERS[name] for name in sorted(required)},
                }
            },
        ),
        f"{FOLDER}/variables.tf.json": (
            "json",
            variables(
                module.families,
                options.kubernetes,
                configmap_dashboards=terraform.kubernetes == "manifest" and terraform.dashboards == "configmap",
                grafana_folder=terraform.kubernetes == "manifest" or terraform.dashboards == "grafana",
                evaluator_storage=terraform.evaluator_storage,
                evaluator_chain_key=terraform.evaluator_chain_key,
            ),
        ),
        f"{FOLDER}/outputs.tf.json": ("json", _outputs(module, rendered, options)),
    }
    for file, resources in module.resources.items():
        documents[f"{FOLDER}/{file}.tf.json"] = ("json", {"resource": resources})
    for path, text in module.texts.items():
        documents[f"{FOLDER}/{path}"] = ("text", text)
    for file, objects in module.gitops.items():
        documents[f"{GITOPS_FOLDER}/{file.removeprefix('slo-')}.yaml"] = ("yaml-documents", objects)
    return dict(sorted(documents.items()))
