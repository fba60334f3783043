"""`SloFleet`: every declaration in a folder, one `ServiceLevelObjective` each, plus the overview.

Composites and dependencies resolve across the whole folder, exactly as with `sloplane render`.
Each SLO's children follow its `targets`: no PrometheusRule without `prometheus`, no dashboard
without `grafana`; archived SLOs are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi

from sloplane.components.evaluator import EvaluatorArgs, SloEvaluator, evaluator_for
from sloplane.components.gate import DeploymentGate, DeploymentGateArgs, gated
from sloplane.components.slo import (
    ServiceLevelObjective,
    ServiceLevelObjectiveArgs,
    config_map,
    kubernetes_options,
    run_error,
)
from sloplane.core.serialize import to_json
from sloplane.declaration import DeclarationError
from sloplane.declaration.policy import Target
from sloplane.interop import load_declarations
from sloplane.render import grafana, kubernetes
from sloplane.render.bundle import active
from sloplane.render.prometheus import RenderOptions
from sloplane.semantics.subjects import Fleet

TOKEN = "sloplane:index:SloFleet"


class SloFleetArgs(TypedDict):
    """Inputs of the fleet component."""

    path: pulumi.Input[str]
    """A folder (or file) of declarations, sloplane or OpenSLO."""
    namespace: NotRequired[pulumi.Input[str]]
    rule_labels: NotRequired[pulumi.Input[Mapping[str, str]]]
    dashboard_label: NotRequired[pulumi.Input[Sequence[str]]]
    grafana_url: NotRequired[pulumi.Input[str]]
    evaluator: NotRequired[EvaluatorArgs]
    """When given, one `SloEvaluator` child serves every declaration of the folder."""
    deployment_gate: NotRequired[Mapping[str, Any]]
    """Settings of each SLO's `DeploymentGate` and of the fleet's AppProject sync-window patch."""


def _children_for(targets: Sequence[Target]) -> list[str]:
    create = []
    if Target.PROMETHEUS in targets:
        create += ["prometheusRule", "probe"]
    if Target.GRAFANA in targets:
        create.append("dashboard")
    return create


class SloFleet(pulumi.ComponentResource):
    """A folder of declarations in a stack."""

    rule_names: pulumi.Output[list[str]]
    dashboard_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: SloFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        try:
            declarations = load_declarations([str(args["path"])])
        except DeclarationError as error:
            raise run_error(str(error)) from None
        super().__init__(TOKEN, name, None, opts)
        fleet = Fleet(declarations)
        shared: dict[str, Any] = {key: value for key, value in args.items() if key not in ("path", "evaluator")}
        self.slos: dict[str, ServiceLevelObjective] = {}
        for declaration in active(declarations):
            create = _children_for(declaration.spec.targets)
            if not create and not gated([declaration]):
                continue
            slo_args: ServiceLevelObjectiveArgs = {"declaration": declaration.name, **shared, "create": create}  # type: ignore[typeddict-item]
            self.slos[declaration.name] = ServiceLevelObjective(
                declaration.name, slo_args, pulumi.ResourceOptions(parent=self), fleet=fleet, declaration=declaration
            )
        k8s = kubernetes_options(shared)
        charted = [d for d in active(declarations) if Target.GRAFANA in d.spec.targets]
        render = RenderOptions(grafana_url=str(shared.get("grafana_url") or ""))
        overview = kubernetes.dashboard_config_map(
            kubernetes.dashboard_config_map_name(None),
            "sloplane-overview.json",
            to_json(grafana.overview(charted, fleet, render)),
            k8s,
        )
        self.overview = config_map(f"{name}-overview", overview, pulumi.ResourceOptions(parent=self))
        self.evaluator: SloEvaluator | None = evaluator_for(name, args, declarations, self)
        self.sync_windows: DeploymentGate | None = None
        synced = [d for d in gated(active(declarations)) if Target.ARGO_CD in d.spec.targets]
        if synced:
            settings = {**dict(args.get("deployment_gate") or {}), "analysis_templates": False}
            gate_args: DeploymentGateArgs = {**settings, "declarations": synced}  # type: ignore[typeddict-item]
            self.sync_windows = DeploymentGate(f"{name}-freezes", gate_args, pulumi.ResourceOptions(parent=self), fleet)
        rules = [slo.rule_name for slo in self.slos.values()]
        dashboards = [slo.dashboard_name for slo in self.slos.values()]
        self.rule_names = pulumi.Output.all(*rules).apply(lambda found: [n for n in found if n])
        self.dashboard_names = pulumi.Output.all(*dashboards).apply(lambda found: [n for n in found if n])
        self.register_outputs({"rule_names": self.rule_names, "dashboard_names": self.dashboard_names})
