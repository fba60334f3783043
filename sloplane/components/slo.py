"""`ServiceLevelObjective`: one declaration's PrometheusRule, Probe, dashboard ConfigMap, Datadog objects and
deployment gate.

Thin on purpose: it loads the declaration, asks the renderers for the same dicts that
`sloplane render` writes to files, and registers them as children. Kubernetes names are explicit
(derived from the SLO name) and Pulumi resource names are derived from the component's name, so
both are stable across runs. Should a child ever be renamed, it gets an alias to its old name.
Datadog children go through `components.datadog` (SLO ids as Outputs, an explicit provider).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

import pulumi
import pulumi_datadog
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.core.v1 import ConfigMap

from sloplane.components.datadog import DatadogChildren, check_slo_refs, explicit_provider, require_provider
from sloplane.components.evaluator import EvaluatorDeployment, SloEvaluator, evaluator_for
from sloplane.components.gate import DeploymentGate, DeploymentGateArgs, DeploymentGateSettings
from sloplane.components.plain import require_plain
from sloplane.core import names
from sloplane.declaration import DeclarationError
from sloplane.declaration.model import Declaration
from sloplane.interop import load_declarations
from sloplane.render import kubernetes
from sloplane.render.argo_rollouts import gated
from sloplane.render.options import BundleOptions, KubernetesOptions, RenderOptions
from sloplane.render.registry import Child
from sloplane.render.targets import RENDERERS, renderers_of
from sloplane.semantics.subjects import FleetLike

TOKEN = "sloplane:index:ServiceLevelObjective"
DEFAULT_CREATE = tuple(key for renderer in RENDERERS for key in renderer.child_keys)
"""Every child a target can have; a declaration gets those of the targets it names."""


class ServiceLevelObjectiveArgs(TypedDict):
    """Inputs of the component (a TypedDict: what Pulumi's component hosting expects)."""

    declaration: str
    """A path to a YAML file with one declaration (Python programs may also pass the declaration itself as a
    mapping). Plain, not an Input: it shapes every rendered object, which a preview must know."""
    namespace: NotRequired[str]
    """Namespace of the PrometheusRule, Probe and dashboard ConfigMap (default `monitoring`)."""
    rule_labels: NotRequired[Mapping[str, str]]
    """Labels the Prometheus Operator's ruleSelector wants on PrometheusRules."""
    dashboard_label: NotRequired[Sequence[str]]
    """(key, value) of the label the Grafana sidecar watches, default ("grafana_dashboard", "1")."""
    create: NotRequired[Sequence[str]]
    """Which children to create: prometheusRule, probe, dashboard, datadogSlo, datadogMonitors,
    datadogCorrections, datadogDowntimes, datadogDashboard (default: all that the targets have)."""
    grafana_url: NotRequired[str]
    """Grafana's URL, for links in alert annotations and dashboards."""
    datadog_provider: NotRequired[pulumi_datadog.Provider]
    """The provider every Datadog child is registered with (required with `targets: [datadog]`, unless a
    datadog provider comes in the resource options): never the default provider."""
    evaluator: NotRequired[EvaluatorDeployment]
    """When given, an `SloEvaluator` child serves this declaration (Kubernetes name sloplane-evaluator-<slo>)."""
    deployment_gate: NotRequired[DeploymentGateSettings]
    """Settings of the `DeploymentGate` child (prometheus_url, evaluator_url, token_secret, app_project, ...),
    created when the declaration has a `gate` and the argoRollouts target."""


def run_error(message: str) -> pulumi.RunError:
    """Pulumi prints a RunError's message without a stack trace."""
    return pulumi.RunError(message)


def resolve_declaration(value: str | Mapping[str, Any] | Declaration) -> Declaration:
    """A Declaration from a path, a mapping, or itself; errors as one readable message."""
    if isinstance(value, Declaration):
        return value
    if isinstance(value, str | Path):
        try:
            found = load_declarations([value], strict=False)
        except DeclarationError as error:
            raise run_error(str(error)) from None
        if len(found) != 1:
            raise run_error(f"{value}: expected one declaration, found {len(found)} (use SloFleet for folders)")
        return found[0]
    try:
        return Declaration.model_validate(dict(value))
    except ValueError as error:
        raise run_error(f"invalid declaration: {error}") from None


def kubernetes_options(args: Mapping[str, Any]) -> KubernetesOptions:
    """Options from component args, with the renderers' defaults for what is not given."""
    defaults = KubernetesOptions()
    label = tuple(args.get("dashboard_label") or defaults.dashboard_label)
    if len(label) != 2:
        raise run_error("'dashboard_label' (dashboardLabel) must be a (key, value) pair, e.g. [grafana_dashboard, '1']")
    return KubernetesOptions(
        namespace=str(args.get("namespace") or defaults.namespace),
        rule_labels=dict(args.get("rule_labels") or defaults.rule_labels),
        dashboard_label=(str(label[0]), str(label[1])),
    )


class ServiceLevelObjective(pulumi.ComponentResource):
    """The monitoring objects of one SLO, as children of one component."""

    rule_name: pulumi.Output[str | None]
    """The PrometheusRule's Kubernetes name (None when not created)."""
    dashboard_name: pulumi.Output[str | None]
    """The dashboard ConfigMap's Kubernetes name (None when not created)."""
    datadog_slo_ids: pulumi.Output[dict[str, str]]
    """Each Datadog SLO's id by `slo` or `slo/stage` (empty without the datadog target)."""

    def __init__(
        self,
        name: str,
        args: ServiceLevelObjectiveArgs,
        opts: pulumi.ResourceOptions | None = None,
        fleet: FleetLike | None = None,
        declaration: Declaration | None = None,
    ) -> None:
        """`fleet` and `declaration` are for SloFleet, which has already loaded and checked them.

        Everything is checked before anything is registered, so bad input leaves nothing behind.
        """
        in_fleet = fleet is not None
        require_plain("ServiceLevelObjective", args, passed_through=("evaluator", "datadog_provider"))
        if declaration is None:
            declaration = resolve_declaration(args["declaration"])
        fleet = fleet if fleet is not None else {declaration.name: declaration}
        for renderer in renderers_of(declaration):
            if renderer.children_pending is not None:
                raise run_error(f"{declaration.name}: targets {renderer.target.value}: {renderer.children_pending}")
        if declaration.spec.sli.composite is not None:
            missing = [c.slo for c in declaration.spec.sli.composite.components if c.slo not in fleet]
            if missing:
                raise run_error(f"{declaration.name}: composite parts {missing} are not in this stack (use SloFleet)")
        options = BundleOptions(
            render=RenderOptions(grafana_url=str(args.get("grafana_url") or "")), kubernetes=kubernetes_options(args)
        )
        create = set(args["create"] if args.get("create") is not None else DEFAULT_CREATE)
        unknown = sorted(create - set(DEFAULT_CREATE))
        if unknown:
            raise run_error(f"create: unknown {unknown}; the children are {', '.join(DEFAULT_CREATE)}")
        try:  # each named target's objects, as `sloplane render` writes them
            rendered = [
                child
                for renderer in renderers_of(declaration)
                for child in renderer.slo_children(declaration, fleet, options)
                if child.key in create
            ]
        except ValueError as error:
            raise run_error(f"{declaration.name}: {error}") from None
        provider = require_provider(declaration.name, rendered, explicit_provider(args, opts))
        check_slo_refs(declaration.name, rendered)
        super().__init__(TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        datadog = DatadogChildren(provider) if provider is not None else None
        self.children: dict[str, pulumi.CustomResource] = {}
        """Kubernetes children by their `create` key."""
        self.datadog: dict[str, pulumi.CustomResource] = {}
        """Datadog children by their name suffix (`datadog-slo`, `datadog-monitor-page-1h`, ...)."""
        for rendered_child in rendered:
            resource = register_child(f"{name}-{rendered_child.suffix}", rendered_child, child, datadog)
            if rendered_child.kind == "datadog":
                self.datadog[rendered_child.suffix] = resource
            else:
                self.children[rendered_child.key] = resource
        self.datadog_slo_ids = _ids(datadog)
        self.rule = cast(CustomResource | None, self.children.get("prometheusRule"))
        self.probe = cast(CustomResource | None, self.children.get("probe"))
        self.dashboard = cast(ConfigMap | None, self.children.get("dashboard"))
        self.rule_name = _name_of(self.rule, names.prometheus_rule(declaration.name))
        self.dashboard_name = _name_of(self.dashboard, kubernetes.dashboard_config_map_name(declaration.name))
        self.evaluator: SloEvaluator | None = evaluator_for(
            name, args, [declaration], self, default_name=f"{names.PREFIX}-evaluator-{declaration.name}"
        )
        self.gate: DeploymentGate | None = None
        if gated([declaration]):
            # In a fleet the fleet patches the AppProject once for all SLOs (the list is replaced whole).
            settings = {**dict(args.get("deployment_gate") or {}), "sync_windows": in_fleet is False}
            gate_args: DeploymentGateArgs = {**settings, "declarations": [declaration]}  # type: ignore[typeddict-item]
            self.gate = DeploymentGate(f"{name}-gate", gate_args, child, fleet=fleet)
        self.register_outputs(
            {
                "rule_name": self.rule_name,
                "dashboard_name": self.dashboard_name,
                "datadog_slo_ids": self.datadog_slo_ids,
            }
        )


def _ids(datadog: DatadogChildren | None) -> pulumi.Output[dict[str, str]]:
    """The Datadog SLO ids as one Output (an empty mapping without Datadog children)."""
    refs = list(datadog.slo_ids) if datadog is not None else []
    if datadog is None or not refs:
        return pulumi.Output.from_input({})
    return pulumi.Output.all(*datadog.slo_ids.values()).apply(lambda ids: dict(zip(refs, ids, strict=True)))


def _name_of(resource: CustomResource | ConfigMap | None, name: str) -> pulumi.Output[str | None]:
    """The object's Kubernetes name, resolving once it is registered (None when not created)."""
    if resource is None:
        return pulumi.Output.from_input(None)
    return resource.id.apply(lambda _: name)


def custom_resource(name: str, obj: Mapping[str, Any], opts: pulumi.ResourceOptions) -> CustomResource:
    """A rendered custom-resource dict registered as a Kubernetes CustomResource."""
    return CustomResource(
        name, api_version=obj["apiVersion"], kind=obj["kind"], metadata=obj["metadata"], spec=obj["spec"], opts=opts
    )


def register_child(
    name: str, child: Child, opts: pulumi.ResourceOptions, datadog: DatadogChildren | None = None
) -> pulumi.CustomResource:
    """A renderer's child registered as the Pulumi resource its kind calls for."""
    if child.kind == "datadog":
        if datadog is None:
            raise run_error(f"{name}: a Datadog child needs a Datadog provider")
        return datadog.register(name, child, opts)
    if child.kind == "config-map":
        return config_map(name, child.object, opts)
    return custom_resource(name, child.object, opts)


def config_map(name: str, obj: Mapping[str, Any], opts: pulumi.ResourceOptions) -> ConfigMap:
    """A rendered ConfigMap dict registered as a Kubernetes ConfigMap."""
    return ConfigMap(name, metadata=obj["metadata"], data=obj["data"], opts=opts)
