"""`SloFleet`: every declaration in a folder, one `ServiceLevelObjective` each, plus the overview.

Composites and dependencies resolve across the whole folder, exactly as with `sloplane render`.
Each SLO's children follow its `targets`: no PrometheusRule without `prometheus`, no dashboard
without `grafana`, no Datadog objects without `datadog` (those go through `datadog_provider`, which is
then required); archived SLOs are skipped.
"""

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_datadog

from sloplane.components.datadog import DatadogChildren, explicit_provider, missing_provider
from sloplane.components.evaluator import EvaluatorDeployment, SloEvaluator, evaluator_for
from sloplane.components.gate import DeploymentGate, DeploymentGateArgs, DeploymentGateSettings
from sloplane.components.plain import require_plain
from sloplane.components.renaming import aliased_from
from sloplane.components.slo import (
    ServiceLevelObjective,
    ServiceLevelObjectiveArgs,
    kubernetes_options,
    register_child,
    run_error,
)
from sloplane.declaration import DeclarationError
from sloplane.declaration.policy import TargetSystem
from sloplane.interop import load_declarations
from sloplane.render.argo_rollouts import gated
from sloplane.render.bundle import active
from sloplane.render.options import BundleOptions, RenderOptions
from sloplane.render.targets import RENDERERS, rendered_targets, renderers_of
from sloplane.semantics.subjects import Fleet

TOKEN = "sloplane:index:SloFleet"


class SloFleetArgs(TypedDict):
    """Inputs of the fleet component."""

    path: str
    """A folder (or file) of declarations, sloplane or OpenSLO."""
    namespace: NotRequired[str]
    """Namespace of the PrometheusRules, Probes and dashboard ConfigMaps (default `monitoring`)."""
    rule_labels: NotRequired[Mapping[str, str]]
    """Labels the Prometheus Operator's ruleSelector wants on PrometheusRules."""
    dashboard_label: NotRequired[Sequence[str]]
    """(key, value) of the label the Grafana sidecar watches, default (`grafana_dashboard`, `1`)."""
    grafana_url: NotRequired[str]
    """Grafana's URL, for links in alert annotations and dashboards."""
    datadog_provider: NotRequired[pulumi_datadog.Provider]
    """The provider of every Datadog object of the fleet (required when an SLO targets datadog, unless a
    datadog provider comes in the resource options)."""
    evaluator: NotRequired[EvaluatorDeployment]
    """When given, one `SloEvaluator` child serves every declaration of the folder."""
    deployment_gate: NotRequired[DeploymentGateSettings]
    """Settings of each SLO's `DeploymentGate` and of the fleet's AppProject sync-window patch."""


class SloFleet(pulumi.ComponentResource):
    """A folder of declarations in a stack."""

    rule_names: pulumi.Output[list[str]]
    """The PrometheusRules' Kubernetes names."""
    dashboard_names: pulumi.Output[list[str]]
    """The dashboard ConfigMaps' Kubernetes names."""

    def __init__(self, name: str, args: SloFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        require_plain("SloFleet", args, passed_through=("evaluator", "datadog_provider"))
        try:
            declarations = load_declarations([str(args["path"])], renderable=rendered_targets())
        except DeclarationError as error:
            raise run_error(str(error)) from None
        datadog_provider = explicit_provider(args, opts)
        if datadog_provider is None:
            on_datadog = [d.name for d in active(declarations) if TargetSystem.DATADOG in d.spec.targets]
            if on_datadog:
                raise missing_provider(", ".join(on_datadog))
        super().__init__(TOKEN, name, None, opts)
        fleet = Fleet(declarations)
        shared: dict[str, Any] = {key: value for key, value in args.items() if key not in ("path", "evaluator")}
        self.slos: dict[str, ServiceLevelObjective] = {}
        for declaration in active(declarations):
            create = [key for renderer in renderers_of(declaration) for key in renderer.child_keys]
            if not create and not gated([declaration]):
                continue
            slo_args: ServiceLevelObjectiveArgs = {"declaration": declaration.name, **shared, "create": create}  # type: ignore[typeddict-item]
            qualified = f"{name}-{declaration.name}"  # two fleets may hold one SLO: URNs carry no parent name
            below_fleet = pulumi.ResourceOptions(
                parent=self, transformations=[aliased_from(qualified, declaration.name)]
            )
            self.slos[declaration.name] = ServiceLevelObjective(
                qualified, slo_args, below_fleet, fleet=fleet, declaration=declaration
            )
        options = BundleOptions(
            render=RenderOptions(grafana_url=str(shared.get("grafana_url") or "")),
            kubernetes=kubernetes_options(shared),
        )
        rendered, below = active(declarations), pulumi.ResourceOptions(parent=self)
        datadog = DatadogChildren(datadog_provider) if datadog_provider is not None else None
        self.fleet_children: dict[str, pulumi.CustomResource] = {}
        for renderer in RENDERERS:  # fleet-wide objects (the overview dashboards), for the SLOs naming the target
            named = [d for d in rendered if renderer.target in d.spec.targets]
            for child in renderer.fleet_children(named, fleet, options):
                self.fleet_children[child.key] = register_child(f"{name}-{child.suffix}", child, below, datadog)
        self.overview = self.fleet_children.get("overview")
        self.evaluator: SloEvaluator | None = evaluator_for(name, args, declarations, self)
        self.sync_windows: DeploymentGate | None = None
        synced = [d for d in gated(active(declarations)) if TargetSystem.ARGO_CD in d.spec.targets]
        if synced:
            settings = {**dict(args.get("deployment_gate") or {}), "analysis_templates": False}
            gate_args: DeploymentGateArgs = {**settings, "declarations": synced}  # type: ignore[typeddict-item]
            self.sync_windows = DeploymentGate(f"{name}-freezes", gate_args, pulumi.ResourceOptions(parent=self), fleet)
        rules = [slo.rule_name for slo in self.slos.values()]
        dashboards = [slo.dashboard_name for slo in self.slos.values()]
        self.rule_names = pulumi.Output.all(*rules).apply(lambda found: [n for n in found if n])
        self.dashboard_names = pulumi.Output.all(*dashboards).apply(lambda found: [n for n in found if n])
        self.register_outputs({"rule_names": self.rule_names, "dashboard_names": self.dashboard_names})
