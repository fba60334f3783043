"""Kubernetes objects for the Prometheus Operator and the Grafana sidecar, as plain dicts.

The same dicts are written as files by `sloplane render` and registered by the Pulumi components,
so both paths deploy byte-identical objects. Names are explicit and derived from the SLO name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sloplane.core import names
from sloplane.core.durations import format_duration
from sloplane.declaration.model import Declaration
from sloplane.render.options import KubernetesOptions

MANAGED_BY = {"app.kubernetes.io/managed-by": "sloplane"}
DEFAULT_PROBE_INTERVAL = "30s"
USER_ID = 10001
"""The sloplane image's non-root user (see the Dockerfile)."""


def locked_down_pod() -> dict[str, Any]:
    """The pod securityContext every sloplane pod runs with: the image's user, files owned by it."""
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "fsGroup": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def locked_down_container() -> dict[str, Any]:
    """The container securityContext every sloplane pod runs with: non-root, read-only, no privileges."""
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _metadata(name: str, options: KubernetesOptions, labels: Mapping[str, str], slo: str | None) -> dict[str, Any]:
    all_labels = {**MANAGED_BY, **labels}
    if slo is not None:
        all_labels["sloplane.dev/slo"] = slo
    return {"name": name, "namespace": options.namespace, "labels": all_labels}


def prometheus_rule(
    declaration: Declaration, rule_file: Mapping[str, Any], options: KubernetesOptions
) -> dict[str, Any]:
    """A `monitoring.coreos.com/v1` PrometheusRule holding an SLO's rule groups."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(names.prometheus_rule(declaration.name), options, options.rule_labels, declaration.name),
        "spec": rule_file,
    }


def probe(declaration: Declaration, options: KubernetesOptions) -> dict[str, Any] | None:
    """A Prometheus Operator `Probe` producing a probe SLI's synthetic traffic; None for other SLIs.

    The probe's job name and static labels are the SLI's selector, so the series it produces are
    exactly the ones the SLI reads (the operator sets `instance` to the target itself).
    """
    sli = declaration.spec.sli.probe
    if sli is None or sli.target is None:
        return None
    selector = dict(sli.selector)
    job = selector.pop("job", names.prometheus_rule(declaration.name))
    selector.pop("instance", None)
    static: dict[str, Any] = {"static": [sli.target]}
    if selector:
        static["labels"] = selector
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Probe",
        "metadata": _metadata(names.prometheus_rule(declaration.name), options, options.rule_labels, declaration.name),
        "spec": {
            "jobName": job,
            "interval": format_duration(sli.interval) if sli.interval else DEFAULT_PROBE_INTERVAL,
            "module": sli.module,
            "prober": {"url": sli.prober},
            "targets": {"staticConfig": static},
        },
    }


def dashboard_config_map(
    name: str, file_name: str, dashboard_json: str, options: KubernetesOptions, slo: str | None = None
) -> dict[str, Any]:
    """A ConfigMap the Grafana sidecar loads as a dashboard (found by its label)."""
    key, value = options.dashboard_label
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(name, options, {key: value}, slo),
        "data": {file_name: dashboard_json},
    }


def dashboard_config_map_name(slo: str | None) -> str:
    """`sloplane-dashboard-<slo>`, or `sloplane-dashboard-overview`."""
    return f"{names.PREFIX}-dashboard-{slo or 'overview'}"
