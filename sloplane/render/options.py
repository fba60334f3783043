"""Deployment choices every renderer may read: not part of a declaration, but of where it is deployed.

Kept apart from the renderers so that each target module, the registry and the bundle can share them
without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sloplane.render.pipelines import PipelineOptions

DEFAULT_ANALYSIS_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
"""The Prometheus Operator's service for a Prometheus named `prometheus` in `monitoring`."""


@dataclass(frozen=True)
class RenderOptions:
    """Choices that are not part of a declaration but of where it is deployed."""

    grafana_url: str = ""
    """Base URL of Grafana for dashboard links in alerts (empty: links relative to Grafana)."""


@dataclass(frozen=True)
class KubernetesOptions:
    """Where and how the objects are picked up in a cluster."""

    namespace: str = "monitoring"
    rule_labels: Mapping[str, str] = field(default_factory=lambda: {"release": "prometheus"})
    """Labels the Prometheus Operator's ruleSelector matches."""
    dashboard_label: tuple[str, str] = ("grafana_dashboard", "1")
    """The label the Grafana sidecar watches for dashboard ConfigMaps."""


@dataclass(frozen=True)
class BundleOptions:
    """Deployment choices for everything rendered."""

    render: RenderOptions = field(default_factory=RenderOptions)
    kubernetes: KubernetesOptions = field(default_factory=KubernetesOptions)
    pipelines: PipelineOptions = field(default_factory=PipelineOptions)
    analysis_prometheus_url: str = DEFAULT_ANALYSIS_PROMETHEUS
    """Prometheus as Argo Rollouts' analysis reaches it (the `prometheus` provider)."""
