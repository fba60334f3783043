"""Where pipeline gates find the evaluator and its credentials: shared by Argo, Spinnaker and CI renderers.

A declaration says what to gate on; these say how a cluster or a pipeline reaches the evaluator,
which is a fact of the installation, not of the SLO. Defaults match what the `SloEvaluator`
component deploys (`sloplane-evaluator` in `sloplane`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sloplane.core.endpoints import GATE_PATH, INCIDENTS_PATH


@dataclass(frozen=True)
class PipelineOptions:
    """The evaluator's address and token, the image that runs `sloplane gate`, and the Argo CD project."""

    evaluator_url: str = "http://sloplane-evaluator.sloplane.svc.cluster.local"
    token_secret: str = "sloplane-gate-token"
    """Kubernetes Secret holding a token with scope `gate` (created by the platform team)."""
    token_key: str = "token"
    image: str = "ghcr.io/sloplane/sloplane:0.1.0"
    """The evaluator image: hook Jobs run `sloplane gate --wait` from it."""
    namespace: str | None = None
    """Namespace of namespaced objects (AnalysisTemplates, hook Jobs); None: the application's own."""
    argocd_namespace: str = "argocd"
    app_project: str = "default"
    """The Argo CD AppProject whose syncWindows carry the declared freezes."""
    applications: tuple[str, ...] = ("*",)
    """Applications the freeze windows apply to."""
    incident_webhook_url: str | None = None
    """Where the SyncFail hook reports a failed sync; None: the evaluator's `/v1/incidents`."""

    @property
    def gate_url(self) -> str:
        """The evaluator's gate endpoint."""
        return self.evaluator_url.rstrip("/") + GATE_PATH

    @property
    def incident_url(self) -> str:
        """Where failed syncs are reported."""
        return self.incident_webhook_url or self.evaluator_url.rstrip("/") + INCIDENTS_PATH
