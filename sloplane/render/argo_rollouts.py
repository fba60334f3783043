"""Argo Rollouts analysis from a declaration's gate policy: AnalysisTemplates and the canary steps using them.

One template per subject (per stage of a staged SLO), so a canary step asks about the canary's own
traffic and objective. The schedule (interval, count, delay, limits, dry run) comes from
`gate_schedule`, shared with the Spinnaker and CI gates, so every pipeline waits and gives up alike.

Three providers:

* `prometheus`: burn-rate queries straight against Prometheus, no evaluator needed. One metric per
  window pair of the rollback tier and louder (its value is the lower of the pair's two burn rates,
  so it fails exactly when that alert would fire), one for the burn over the analysis window when
  `maxBurnRate` is set, and one for the budget left (always: an exhausted budget fails the default
  policy too). A stage's metrics read that stage's own traffic, not the counted canary events a
  production budget adds up.
* `datadog`: the same questions asked of Datadog's event counts (`argo_rollouts_datadog`, which
  says where a Datadog metric cannot say exactly what the alert does, and how it errs on the strict
  side).
* `web`: one metric asking the evaluator's gate API, which adds everything Prometheus alone cannot
  say (freezes, incidents, canary attribution, dependencies, break-glass).

Conditions use a deliberately tiny grammar, so that tests (and people) can check them without a Go
expression engine (`argo_analysis.Threshold` writes the numeric ones). Every condition is one of

    len(result) > 0 && result[0] <OP> <NUMBER>      prometheus; OP one of <=, <, >=, >
    result != nil && result <OP> <NUMBER>           datadog (one scalar; nil when Datadog had no data)
    result == "<WORD>"                              web

An empty query result satisfies neither the success nor the failure condition, and so does NaN (Go
compares NaN false both ways): no data is inconclusive, never a pass. The PromQL queries drop NaN
(`>= 0` on ratios), so a service without traffic yields an empty result; a Datadog formula over an
empty query (or dividing by zero) is empty too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sloplane.core import names
from sloplane.core.budget import error_budget
from sloplane.core.durations import format_duration
from sloplane.core.durations import format_go_duration as go_duration
from sloplane.core.names import kubernetes_name
from sloplane.declaration.model import BudgetingMethod, Declaration
from sloplane.declaration.policy import AnalysisProvider, GateMode, TargetSystem
from sloplane.render.argo_analysis import ArgoRenderError, Threshold, gating_tiers, number
from sloplane.render.argo_rollouts_datadog import datadog_metrics
from sloplane.render.gates import GateSchedule, gate_schedule
from sloplane.render.options import DEFAULT_ANALYSIS_PROMETHEUS, BundleOptions
from sloplane.render.pipelines import PipelineOptions
from sloplane.render.registry import Document, Renderer
from sloplane.semantics.promql import WindowedQueries, promql_matchers
from sloplane.semantics.recording import subject_reads
from sloplane.semantics.subjects import FleetLike, Subject, subjects

API_VERSION = "argoproj.io/v1alpha1"
DEFAULT_PROMETHEUS_URL = DEFAULT_ANALYSIS_PROMETHEUS
MANAGED_BY = {"app.kubernetes.io/managed-by": "sloplane"}
SLO_LABEL = "sloplane.dev/slo"
PROMETHEUS_TIMEOUT_SECONDS = 30
WEB_TIMEOUT_SECONDS = 30
"""The evaluator answers from a few queries; a slower answer is an error (counted against the limit)."""
REVISION_ARG = "revision"
ROLLOUT_ARG = "rollout"
TOKEN_ARG = "token"
CANARY_WEIGHTS = (10, 25, 50, 75, 90)
"""Traffic on the new version while each stage's analysis runs, first stage first."""
ASYNC_WEIGHTS = (20, 50, 80)


def gated(declarations: Sequence[Declaration]) -> list[Declaration]:
    """Declarations with a declared gate and the Argo Rollouts target: the ones a DeploymentGate serves
    (and the Terraform module holds AnalysisTemplates for)."""
    return [d for d in declarations if d.spec.gate is not None and TargetSystem.ARGO_ROLLOUTS in d.spec.targets]


def template_name(subject: Subject) -> str:
    """`<slo>` or `<slo>-<stage>`, shortened with a hash when longer than a DNS label allows."""
    return kubernetes_name(subject.slo if subject.stage is None else f"{subject.slo}-{subject.stage}")


def _kind(declaration: Declaration) -> str:
    cluster_scoped = declaration.spec.effective_gate.analysis.cluster_scoped
    return "ClusterAnalysisTemplate" if cluster_scoped else "AnalysisTemplate"


def _metadata(declaration: Declaration, subject: Subject, options: PipelineOptions) -> dict[str, Any]:
    labels = {**MANAGED_BY, SLO_LABEL: declaration.name}
    if subject.stage is not None:
        labels["sloplane.dev/stage"] = subject.stage
    metadata: dict[str, Any] = {"name": template_name(subject), "labels": labels}
    if not declaration.spec.effective_gate.analysis.cluster_scoped and options.namespace is not None:
        metadata["namespace"] = options.namespace
    return metadata


def _schedule_fields(schedule: GateSchedule) -> dict[str, Any]:
    """The metric fields every provider shares: how often, how many, after what delay, which limits."""
    fields: dict[str, Any] = {"interval": go_duration(schedule.interval)}
    if schedule.count is not None:
        fields["count"] = schedule.count
    if schedule.initial_delay > timedelta(0):
        fields["initialDelay"] = go_duration(schedule.initial_delay)
    fields["failureLimit"] = schedule.failure_limit
    fields["inconclusiveLimit"] = schedule.inconclusive_limit
    fields["consecutiveErrorLimit"] = schedule.consecutive_error_limit
    return fields


# the prometheus provider


class _RatioSource:
    """Error-ratio PromQL of one subject for any window: its own raw traffic, or recorded series.

    `SubjectReads` decides which: composites read the ratios sloplane's rules record for them (every
    alert window is recorded); a window that is not recorded (the analysis window) is approximated by
    averaging the shortest recorded ratio over it. Other SLOs read their raw series, since a template
    cannot know whether the recording rules are deployed.
    """

    def __init__(self, declaration: Declaration, subject: Subject, fleet: FleetLike) -> None:
        self.reads = subject_reads(declaration, subject, fleet)
        self.labels = subject.labels
        self.raw: WindowedQueries | None = self.reads.indicator.queries

    def ratio(self, window: timedelta) -> str:
        """One series (no labels) with the error ratio over `window`; empty when there was no traffic."""
        if self.raw is not None and not self.reads.from_recorded(window, rules_deployed=False):
            return self.raw.at(window).single_series()[2]
        if window in self.reads.recorded:
            return f"sum({names.windowed(names.ERROR_RATIO, window)}{promql_matchers(self.labels)})"
        base = names.windowed(names.ERROR_RATIO, self.reads.recorded[0])
        return f"avg(avg_over_time({base}{promql_matchers(self.labels)}[{format_duration(window)}]))"

    def events(self, window: timedelta) -> str | None:
        """All events over `window` as one series, or None when the SLI counts none."""
        if self.raw is None:
            return None
        return self.raw.at(window).single_series()[1]


def _burn(ratio: str, budget: float) -> str:
    return f"({ratio}) / {number(budget)}"


def _windowed_label(query: str, window: timedelta) -> str:
    """Tag a series with its window, so `or` keeps both windows of a pair instead of the first."""
    return f'label_replace({query}, "window", "{format_duration(window)}", "", "")'


def _with_min_events(query: str, source: _RatioSource, window: timedelta, min_events: int) -> str:
    """Empty (inconclusive) while fewer than `minEvents` events fell in the analysis window."""
    events = source.events(window)
    if min_events <= 0 or events is None:
        return query
    return f"({query}) and on() ({events} >= {min_events})"


def _prometheus_metric(name: str, query: str, threshold: Threshold, prometheus_url: str) -> dict[str, Any]:
    success, failure = threshold.conditions()
    return {
        "name": name,
        "successCondition": success,
        "failureCondition": failure,
        "provider": {"prometheus": {"address": prometheus_url, "query": query, "timeout": PROMETHEUS_TIMEOUT_SECONDS}},
    }


def _alert_metrics(
    declaration: Declaration, subject: Subject, source: _RatioSource, prometheus_url: str
) -> list[dict[str, Any]]:
    """One metric per window pair of the rollback tier and louder: the lower of its two burn rates."""
    gate = declaration.spec.effective_gate
    budget = error_budget(subject.objective)
    tiers = gating_tiers(gate.rollback_on)
    metrics = []
    for alert in declaration.spec.burn_rate_alerts():
        if alert.tier not in tiers or not alert.can_fire(subject.objective):
            continue
        pair = " or ".join(
            _windowed_label(_burn(source.ratio(window), budget), window)
            for window in (alert.long_window, alert.short_window)
        )
        query = _with_min_events(f"min({pair})", source, gate.analysis_window, gate.min_events)
        name = f"burn-rate-{format_duration(alert.long_window)}-{format_duration(alert.short_window)}"
        metrics.append(_prometheus_metric(name, query, Threshold(alert.factor, fail_above=True), prometheus_url))
    return metrics


def _max_burn_metric(
    declaration: Declaration, subject: Subject, source: _RatioSource, prometheus_url: str
) -> list[dict[str, Any]]:
    gate = declaration.spec.effective_gate
    if gate.max_burn_rate is None:
        return []
    burn = _burn(source.ratio(gate.analysis_window), error_budget(subject.objective))
    query = _with_min_events(burn, source, gate.analysis_window, gate.min_events)
    threshold = Threshold(gate.max_burn_rate, fail_above=True)
    return [_prometheus_metric("burn-rate-analysis-window", query, threshold, prometheus_url)]


def _budget_metric(
    declaration: Declaration, subject: Subject, source: _RatioSource, prometheus_url: str
) -> dict[str, Any]:
    """Share of the period's budget left, failing when exhausted or under `minBudgetRemaining`.

    Event-counting SLIs budgeted by occurrences read their raw series over the whole period: the
    template works without sloplane's rules, at the price of a period-long `increase` per
    measurement (a few per rollout; cheap for a service's own series, heavier on very high
    cardinality). Timeslice budgets and composites read `sloplane:error_budget_remaining:ratio`,
    which only sloplane's recording rules can compute.
    """
    spec = declaration.spec
    gate = spec.effective_gate
    if source.raw is not None and spec.budgeting_method is BudgetingMethod.OCCURRENCES:
        query = f"1 - {_burn(source.ratio(spec.window.period), error_budget(subject.objective))}"
    else:
        query = f"sum({names.BUDGET_REMAINING}{promql_matchers(subject.labels)})"
    query = _with_min_events(query, source, gate.analysis_window, gate.min_events)
    minimum = gate.min_budget_remaining / 100
    threshold = Threshold(minimum, fail_above=False, inclusive=minimum <= 0)
    return _prometheus_metric("budget-remaining", query, threshold, prometheus_url)


def _prometheus_metrics(
    declaration: Declaration, subject: Subject, fleet: FleetLike, prometheus_url: str
) -> list[dict[str, Any]]:
    source = _RatioSource(declaration, subject, fleet)
    return [
        *_alert_metrics(declaration, subject, source, prometheus_url),
        *_max_burn_metric(declaration, subject, source, prometheus_url),
        _budget_metric(declaration, subject, source, prometheus_url),
    ]


# the web provider


def _web_metric(
    declaration: Declaration, subject: Subject, options: PipelineOptions, interval: timedelta
) -> dict[str, Any]:
    """Ask the evaluator; only "pass" succeeds and only "fail" fails (inconclusive and error pause)."""
    body: dict[str, Any] = {"slo": declaration.name}
    if subject.stage is not None:
        body["stage"] = subject.stage
    body |= {
        "revision": f"{{{{args.{REVISION_ARG}}}}}",
        "rollout": f"{{{{args.{ROLLOUT_ARG}}}}}",
        "pipeline": "argo-rollouts",
    }
    return {
        "name": "sloplane-gate",
        "successCondition": 'result == "pass"',
        "failureCondition": 'result == "fail"',
        "provider": {
            "web": {
                "method": "POST",
                "url": options.gate_url,
                "headers": [
                    {"key": "Authorization", "value": f"Bearer {{{{args.{TOKEN_ARG}}}}}"},
                    {"key": "Content-Type", "value": "application/json"},
                ],
                "jsonBody": body,
                "jsonPath": "{$.decision}",
                "timeoutSeconds": min(WEB_TIMEOUT_SECONDS, max(1, math.floor(interval.total_seconds()))),
            }
        },
    }


def _args(provider: AnalysisProvider, options: PipelineOptions) -> list[dict[str, Any]]:
    """The revision always (the pod template hash, from the Rollout); the rollout and token for web."""
    args: list[dict[str, Any]] = [{"name": REVISION_ARG}]
    if provider is AnalysisProvider.WEB:
        args.append({"name": ROLLOUT_ARG})
        secret = {"name": options.token_secret, "key": options.token_key}
        args.append({"name": TOKEN_ARG, "valueFrom": {"secretKeyRef": secret}})
    return args


SHADOW_PREFIX = "shadow-"
"""The names of a shadow's dry-run metrics (`spec.shadow`): its metrics, prefixed."""


def _shadow_metrics(
    declaration: Declaration, subject: Subject, fleet: FleetLike, prometheus_url: str
) -> list[dict[str, Any]]:
    """The shadow's metrics (its objective and policy in place), for Argo to run in dry run: measured and shown
    beside the real ones, never failing the rollout. The web provider has none: the evaluator decides the shadow
    beside every real decision and records it there (`Decision.shadow`); a second web metric would gate twice."""
    shadowed = declaration.shadowed()
    if shadowed is None:
        return []
    provider = shadowed.spec.effective_gate.analysis.provider
    if AnalysisProvider.WEB in (provider, declaration.spec.effective_gate.analysis.provider):
        return []
    own = next(found for found in subjects(shadowed) if found.stage == subject.stage)
    if provider is AnalysisProvider.PROMETHEUS:
        metrics = _prometheus_metrics(shadowed, own, fleet, prometheus_url)
    else:
        metrics = datadog_metrics(shadowed, own)
    return [{**metric, "name": SHADOW_PREFIX + metric["name"]} for metric in metrics]


def analysis_template(
    declaration: Declaration,
    subject: Subject,
    fleet: FleetLike,
    options: PipelineOptions,
    *,
    prometheus_url: str = DEFAULT_PROMETHEUS_URL,
) -> dict[str, Any]:
    """The (Cluster)AnalysisTemplate of one subject, with its shadow's metrics in dry run."""
    analysis = declaration.spec.effective_gate.analysis
    schedule = gate_schedule(declaration)
    if analysis.provider is AnalysisProvider.PROMETHEUS:
        metrics = _prometheus_metrics(declaration, subject, fleet, prometheus_url)
    elif analysis.provider is AnalysisProvider.DATADOG:
        metrics = datadog_metrics(declaration, subject)
    else:
        metrics = [_web_metric(declaration, subject, options, schedule.interval)]
    shadow = _shadow_metrics(declaration, subject, fleet, prometheus_url)
    shared = _schedule_fields(schedule)
    spec: dict[str, Any] = {
        "args": _args(analysis.provider, options),
        "metrics": [{**metric, **shared} for metric in (*metrics, *shadow)],
    }
    if schedule.dry_run:
        spec["dryRun"] = [{"metricName": ".*"}]
    elif shadow:
        spec["dryRun"] = [{"metricName": f"{SHADOW_PREFIX}.*"}]
    return {
        "apiVersion": API_VERSION,
        "kind": _kind(declaration),
        "metadata": _metadata(declaration, subject, options),
        "spec": spec,
    }


def analysis_templates(
    declaration: Declaration,
    fleet: FleetLike,
    options: PipelineOptions,
    *,
    prometheus_url: str = DEFAULT_PROMETHEUS_URL,
) -> list[dict[str, Any]]:
    """One template per subject (each stage of a staged SLO; the SLO itself when unstaged)."""
    return [
        analysis_template(declaration, subject, fleet, options, prometheus_url=prometheus_url)
        for subject in subjects(declaration)
    ]


# the Rollout side


def _analysis_args(declaration: Declaration) -> list[dict[str, Any]]:
    args: list[dict[str, Any]] = [{"name": REVISION_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}}]
    if declaration.spec.effective_gate.analysis.provider is AnalysisProvider.WEB:
        args.append({"name": ROLLOUT_ARG, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return args


def _template_ref(declaration: Declaration, subject: Subject) -> dict[str, Any]:
    reference: dict[str, Any] = {"templateName": template_name(subject)}
    if declaration.spec.effective_gate.analysis.cluster_scoped:
        reference["clusterScope"] = True
    return reference


def _weights(count: int, ladder: Sequence[int]) -> list[int]:
    if count > len(ladder):
        raise ArgoRenderError(f"{count} stages but only {len(ladder)} canary weights")
    return list(ladder[:count])


def rollout_steps(
    declaration: Declaration, options: PipelineOptions | None = None, *, weights: Sequence[int] | None = None
) -> dict[str, Any]:
    """The `strategy` snippet for the application's Rollout: `{"canary": {...}}`.

    Blocking: for each subject in declaration order, shift traffic (`weights`, default 10, 25, 50,
    ...) and run that subject's analysis as a step; the rollout waits for it and aborts on failure.
    Async: the analyses run in the background for the whole rollout while traffic ramps in pauses
    of one analysis window each; a failure still aborts, but nothing waits for a verdict.
    `options` is accepted for symmetry with the other pipeline renderers (nothing in the snippet
    depends on where the evaluator runs: the templates carry that).
    """
    del options
    gate = declaration.spec.effective_gate
    every = subjects(declaration)
    if gate.mode is GateMode.BLOCKING:
        ladder = _weights(len(every), weights or CANARY_WEIGHTS)
        steps: list[dict[str, Any]] = []
        for weight, subject in zip(ladder, every, strict=True):
            steps.append({"setWeight": weight})
            steps.append(
                {"analysis": {"templates": [_template_ref(declaration, subject)], "args": _analysis_args(declaration)}}
            )
        return {"canary": {"steps": steps}}
    pause = {"duration": go_duration(gate.analysis_window)}
    ramp = [step for weight in (weights or ASYNC_WEIGHTS) for step in ({"setWeight": weight}, {"pause": pause})]
    background = {
        "templates": [_template_ref(declaration, subject) for subject in every],
        "args": _analysis_args(declaration),
    }
    return {"canary": {"analysis": background, "steps": ramp}}


def _documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    """AnalysisTemplates (one per subject) and the rollout steps that use them."""
    name, pipelines = declaration.name, options.pipelines
    templates = analysis_templates(declaration, fleet, pipelines, prometheus_url=options.analysis_prometheus_url)
    return {
        f"argo/{name}.analysistemplate.yaml": ("yaml-documents", templates),
        f"argo/{name}.rollout-steps.yaml": ("yaml", rollout_steps(declaration, pipelines)),
    }


RENDERER = Renderer(TargetSystem.ARGO_ROLLOUTS, folders=("argo",), slo_documents=_documents)
"""No children of its own: the `DeploymentGate` component registers the AnalysisTemplates."""
