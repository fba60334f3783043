"""Everything `sloplane render` writes, as file paths and text, computed in memory first.

Nothing is written until every file of the fleet has rendered, so an error leaves the output
folder as it was. Which files an SLO gets follows its `targets`; archived SLOs get none. Large
fleets render in forked worker processes (each SLO's files depend only on the fleet), and the
output is the same bytes either way.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sloplane.core.serialize import to_json, to_yaml, to_yaml_documents
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.policy import Target
from sloplane.render import alertmanager, argo_cd, argo_rollouts, grafana, kubernetes, spinnaker
from sloplane.render.pipelines import PipelineOptions
from sloplane.render.prometheus import RenderOptions, rule_file
from sloplane.render.promtool import promtool_test_file
from sloplane.semantics.recording import recorded_windows
from sloplane.semantics.subjects import Fleet, FleetLike

MANAGED_FOLDERS = ("prometheus", "kubernetes", "alertmanager", "grafana", "argo", "spinnaker")
"""Folders under the output that sloplane owns: files there that it no longer renders are removed."""


DEFAULT_ANALYSIS_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"


@dataclass(frozen=True)
class BundleOptions:
    """Deployment choices for everything rendered."""

    render: RenderOptions = field(default_factory=RenderOptions)
    kubernetes: kubernetes.KubernetesOptions = field(default_factory=kubernetes.KubernetesOptions)
    pipelines: PipelineOptions = field(default_factory=PipelineOptions)
    analysis_prometheus_url: str = DEFAULT_ANALYSIS_PROMETHEUS
    """Prometheus as Argo Rollouts' analysis reaches it (the `prometheus` provider)."""


def active(declarations: Sequence[Declaration]) -> list[Declaration]:
    """Declarations that render: all but archived ones, in name order."""
    return sorted((d for d in declarations if d.spec.lifecycle is not Lifecycle.ARCHIVED), key=lambda d: d.name)


Document = tuple[str, Any]
"""A file's format ("yaml", "yaml-documents" or "json") and its data."""


def slo_documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    """The files of one SLO as data, by path relative to the output folder."""
    documents: dict[str, Document] = {}
    name = declaration.name
    targets = set(declaration.spec.targets)
    if Target.PROMETHEUS in targets:
        rules = rule_file(declaration, fleet, options.render)
        documents[f"prometheus/{name}.rules.yaml"] = ("yaml", rules)
        test = promtool_test_file(declaration, fleet, f"{name}.rules.yaml")
        if test is not None:
            documents[f"prometheus/{name}.test.yaml"] = ("yaml", test)
        objects = [kubernetes.prometheus_rule(declaration, rules, options.kubernetes)]
        probe = kubernetes.probe(declaration, options.kubernetes)
        if probe is not None:
            objects.append(probe)
        documents[f"kubernetes/{name}.prometheusrule.yaml"] = ("yaml-documents", objects)
    if Target.GRAFANA in targets:
        documents[f"grafana/{name}.json"] = ("json", grafana.dashboard_model(declaration, fleet, options.render))
    documents.update(_pipeline_documents(declaration, fleet, options))
    return documents


def _pipeline_documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    """Argo Rollouts analysis and steps, Argo CD hook Jobs, Spinnaker stage and canary config: per target."""
    documents: dict[str, Document] = {}
    name, targets, pipelines = declaration.name, set(declaration.spec.targets), options.pipelines
    if Target.ARGO_ROLLOUTS in targets:
        templates = argo_rollouts.analysis_templates(
            declaration, fleet, pipelines, prometheus_url=options.analysis_prometheus_url
        )
        documents[f"argo/{name}.analysistemplate.yaml"] = ("yaml-documents", templates)
        documents[f"argo/{name}.rollout-steps.yaml"] = ("yaml", argo_rollouts.rollout_steps(declaration, pipelines))
    if Target.ARGO_CD in targets:
        documents[f"argo/{name}.postsync-job.yaml"] = ("yaml", argo_cd.postsync_job(declaration, pipelines))
        documents[f"argo/{name}.syncfail-job.yaml"] = ("yaml", argo_cd.syncfail_job(declaration, pipelines))
    if Target.SPINNAKER in targets:
        documents[f"spinnaker/{name}.webhook-stage.json"] = ("json", spinnaker.webhook_stage(declaration, pipelines))
        canary = spinnaker.canary_config(declaration, fleet, pipelines)
        if canary is not None:  # None: Kayenta cannot judge this SLI (no PromQL form, or no scope label)
            documents[f"spinnaker/{name}.canary-config.json"] = ("json", canary)
    return documents


def fleet_documents(
    declarations: Sequence[Declaration],
    options: BundleOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Document]:
    """Every file for a fleet as data: per-SLO files, the Alertmanager configuration and the overview."""
    options = options or BundleOptions()
    fleet = Fleet(declarations)
    rendered = active(declarations)
    documents: dict[str, Document] = {}
    for declaration in rendered:
        documents.update(slo_documents(declaration, fleet, options))
        if progress is not None:
            progress(declaration.name)
    documents.update(_fleet_wide_documents(rendered, fleet, options))
    return dict(sorted(documents.items()))


def _fleet_wide_documents(rendered: list[Declaration], fleet: Fleet, options: BundleOptions) -> dict[str, Document]:
    """The Alertmanager configuration and the overview dashboard, over every rendered SLO."""
    routed = [d for d in rendered if Target.ALERTMANAGER in d.spec.targets]
    charted = [d for d in rendered if Target.GRAFANA in d.spec.targets]
    synced = [d for d in rendered if Target.ARGO_CD in d.spec.targets]
    documents: dict[str, Document] = {
        "alertmanager/alertmanager.yaml": ("yaml", alertmanager.alertmanager_config(routed)),
        "grafana/overview.json": ("json", grafana.overview(charted, fleet, options.render)),
    }
    if synced:
        windows = argo_cd.sync_windows(synced, options.pipelines)
        documents["argo/appproject-syncwindows.yaml"] = ("yaml", windows)
    return documents


def serialize(documents: dict[str, Document]) -> dict[str, str]:
    """File text for each document (rule files first, so PrometheusRules can reuse their text)."""
    texts: dict[str, str] = {}
    written: dict[int, str] = {}
    for path, (kind, data) in documents.items():
        if kind == "yaml":
            texts[path] = written[id(data)] = to_yaml(data)
    for path, (kind, data) in documents.items():
        if kind == "yaml-documents":
            texts[path] = to_yaml_documents(data, written)
        elif kind == "json":
            texts[path] = to_json(data)
    return dict(sorted(texts.items()))


PARALLEL_FROM = 200
"""Fleets this large render in worker processes, one per core (rendering is per SLO, independent)."""

_worker_state: tuple[Fleet, BundleOptions] | None = None
"""The fleet a forked worker renders from (set before forking, so it is inherited, not pickled)."""


def _render_chunk(names: list[str]) -> dict[str, str]:
    assert _worker_state is not None
    fleet, options = _worker_state
    documents: dict[str, Document] = {}
    for name in names:
        documents.update(slo_documents(fleet[name], fleet, options))
    return serialize(documents)


def _workers(count: int) -> int:
    if count < PARALLEL_FROM or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(os.cpu_count() or 1, 8)


def fleet_files(
    declarations: Sequence[Declaration],
    options: BundleOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Every file for a fleet, as text by path; large fleets render on every core."""
    global _worker_state  # noqa: PLW0603 - handed to forked workers by inheritance
    options = options or BundleOptions()
    rendered = active(declarations)
    workers = _workers(len(rendered))
    if workers == 1:
        return serialize(fleet_documents(declarations, options, progress))
    fleet = Fleet(declarations)
    recorded_windows(fleet)  # computed once here, inherited by every worker
    names = [declaration.name for declaration in rendered]
    chunks = [names[start : start + 50] for start in range(0, len(names), 50)]
    texts: dict[str, str] = {}
    _worker_state = (fleet, options)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for chunk, files in zip(chunks, pool.map(_render_chunk, chunks), strict=True):
                texts.update(files)
                if progress is not None:
                    for name in chunk:
                        progress(name)
    finally:
        _worker_state = None
    texts.update(serialize(_fleet_wide_documents(rendered, fleet, options)))
    return dict(sorted(texts.items()))
