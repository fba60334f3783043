"""`DeploymentGate`: the Argo Rollouts analysis of declarations, and their freezes as Argo CD sync windows.

Thin, like the other components: `sloplane.render.argo_rollouts` builds the AnalysisTemplates and
`sloplane.render.argo_cd` the AppProject's sync windows, the same dicts `sloplane render` writes.
The AppProject belongs to whoever runs Argo CD; the gate only patches its `syncWindows` (server-side
apply through `CustomResourcePatch`), never takes the project over. Because that list is replaced
as a whole, one stack patches it once: a standalone `ServiceLevelObjective` with its own freezes,
or `SloFleet` with every declaration's, never each SLO of a fleet.
"""

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource, CustomResourcePatch

from sloplane.components.evaluator import resolve_declarations
from sloplane.components.plain import require_plain
from sloplane.declaration.policy import TargetSystem
from sloplane.render import argo_cd, argo_rollouts
from sloplane.render.pipelines import PipelineOptions
from sloplane.semantics.subjects import FleetLike

TOKEN = "sloplane:index:DeploymentGate"
DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
OPTION_ARGS = (
    "evaluator_url",
    "token_secret",
    "token_key",
    "image",
    "namespace",
    "argocd_namespace",
    "app_project",
    "incident_webhook_url",
)


class DeploymentGateSettings(TypedDict):
    """Where the gates find Prometheus, the evaluator and the AppProject (the SLO components' `deployment_gate`).

    (Not named `…Args`: the SDKs of other languages append `Args` to input types themselves.)"""

    prometheus_url: NotRequired[str]
    """Prometheus as the analysis pods reach it (for the `prometheus` provider)."""
    evaluator_url: NotRequired[str]
    """The evaluator as analysis pods and hook Jobs reach it (the `web` provider, `sloplane gate --wait`)."""
    token_secret: NotRequired[str]
    """The Kubernetes Secret holding a gate-scoped evaluator token (default `sloplane-gate-token`)."""
    token_key: NotRequired[str]
    """The key of the token in that Secret (default `token`)."""
    image: NotRequired[str]
    """The image hook Jobs run `sloplane gate` from."""
    namespace: NotRequired[str]
    """Namespace of the AnalysisTemplates (default: the application's own)."""
    argocd_namespace: NotRequired[str]
    """Namespace of Argo CD's AppProjects (default `argocd`)."""
    app_project: NotRequired[str]
    """The AppProject whose syncWindows carry the declared freezes (default `default`)."""
    applications: NotRequired[Sequence[str]]
    """Applications the freeze windows cover (default all, `*`)."""
    incident_webhook_url: NotRequired[str]
    """Where the SyncFail hook reports a failed sync as an incident."""
    analysis_templates: NotRequired[bool]
    """Register the AnalysisTemplates (default true)."""
    sync_windows: NotRequired[bool]
    """Patch the AppProject's syncWindows with the declared freezes (default true, when any is declared)."""


class DeploymentGateArgs(DeploymentGateSettings):
    """The gate's settings and the declarations it gates."""

    declarations: Sequence[str]
    """Paths of declaration files or folders (Python programs may also pass loaded models or mappings)."""


def pipeline_options(args: Mapping[str, Any]) -> PipelineOptions:
    """The renderers' options from component args (plain: `require_plain` refused Outputs before)."""
    chosen: dict[str, Any] = {}
    for key in OPTION_ARGS:
        value = args.get(key)
        if value is not None:
            chosen[key] = str(value)
    if args.get("applications") is not None:
        chosen["applications"] = tuple(str(a) for a in args["applications"])
    return PipelineOptions(**chosen)


class DeploymentGate(pulumi.ComponentResource):
    """AnalysisTemplates per SLO and stage, and the AppProject sync-window patch."""

    template_names: pulumi.Output[list[str]]
    """The AnalysisTemplates' Kubernetes names."""

    def __init__(
        self,
        name: str,
        args: DeploymentGateArgs,
        opts: pulumi.ResourceOptions | None = None,
        fleet: FleetLike | None = None,
    ) -> None:
        require_plain("DeploymentGate", args)
        declarations = resolve_declarations(args["declarations"], "DeploymentGate")
        options = pipeline_options(args)
        prometheus = str(args.get("prometheus_url") or DEFAULT_PROMETHEUS)
        fleet = fleet if fleet is not None else {d.name: d for d in declarations}
        # the objects `sloplane render` writes for these declarations: templates where they target Argo
        # Rollouts, the sync-window patch from those that target Argo CD
        templates = [
            template
            for declaration in declarations
            if TargetSystem.ARGO_ROLLOUTS in declaration.spec.targets
            for template in argo_rollouts.analysis_templates(declaration, fleet, options, prometheus_url=prometheus)
        ]
        patch = argo_cd.sync_windows([d for d in declarations if TargetSystem.ARGO_CD in d.spec.targets], options)
        super().__init__(TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.templates: list[CustomResource] = []
        if args.get("analysis_templates", True):
            for template in templates:
                resource_name = f"{name}-{template['metadata']['name']}"
                self.templates.append(
                    CustomResource(
                        resource_name,
                        api_version=template["apiVersion"],
                        kind=template["kind"],
                        metadata=template["metadata"],
                        spec=template["spec"],
                        opts=child,
                    )
                )
        self.app_project: CustomResourcePatch | None = None
        if args.get("sync_windows", True) and patch["spec"]["syncWindows"]:
            self.app_project = _app_project_patch(f"{name}-sync-windows", patch, name, child)
        names = [str(template["metadata"]["name"]) for template in templates] if self.templates else []
        self.template_names = pulumi.Output.all(*(t.id for t in self.templates)).apply(lambda _: names)
        self.register_outputs({"template_names": self.template_names})


def _app_project_patch(
    resource_name: str, patch: Mapping[str, Any], manager: str, opts: pulumi.ResourceOptions
) -> CustomResourcePatch:
    """Server-side apply of `spec.syncWindows` only, under a field manager of our own."""
    metadata = patch["metadata"]
    return CustomResourcePatch(
        resource_name,
        api_version=patch["apiVersion"],
        kind=patch["kind"],
        metadata={
            "name": metadata["name"],
            "namespace": metadata.get("namespace"),
            "annotations": {"pulumi.com/patchFieldManager": f"sloplane-{manager}"},
        },
        spec={"syncWindows": patch["spec"]["syncWindows"]},
        opts=opts,
    )
