"""Spinnaker: a webhook stage that waits on the evaluator's gate, and a Kayenta canary config from the SLI.

Two ways to gate a Spinnaker pipeline, for two questions. The webhook stage asks the evaluator
"may this release proceed?", so freezes, incidents, budgets and canary attribution all count, and
the decision is recorded with the pipeline's execution id. The Kayenta canary config hands the same
SLI to Spinnaker's own canary analysis, for teams that already judge canaries with Kayenta: it
compares canary with baseline only, so it complements the gate rather than replacing it.

Both are pure: JSON-ready dicts, with Spinnaker's expressions (`${...}`, SpEL) left for Orca to fill.

**The webhook stage.** It POSTs the gate request and, when the gate is blocking, polls the same
URL with GET (`statusUrlResolution: getMethod`; the evaluator answers GET from query parameters
exactly as it answers the POST body, so the URL carries the request too). Orca reads `$.decision`
from each answer and compares it case-insensitively with the status lists: `pass` succeeds the
stage, `fail` ends it TERMINAL, and `inconclusive` and `error` match neither, so Orca keeps
polling (every 15 s after the first minute) until the stage timeout, the gate schedule's, fails it
closed. Monitoring starts after the schedule's initial delay (`waitBeforeMonitor`): the new version
needs traffic before it can be judged. Async gates POST once, which records the deployment, and
move on.

**The token.** Pipeline JSON is stored in Front50 and readable by everyone who can read the
application, so no token should be written into it. The Authorization header is therefore a
reference, by default the kork secret `encrypted:k8s!n:<secret>!k:<key>` naming the same
Kubernetes Secret the Argo gates mount (`PipelineOptions.token_secret`). Orca decrypts `encrypted:`
references in its own configuration, so the dependable installation is `preconfigured_webhook`: an
entry for `webhook.preconfigured` in `orca-local.yml` that holds the header, and pipelines add a
stage of that type with only the SLO's parameters. An installation that injects secrets into
pipelines some other way sets `SpinnakerOptions.authorization` to its expression.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from sloplane.declaration.model import Declaration, Spec
from sloplane.declaration.policy import DEFAULT_GATE, GateMode, Stage, TargetSystem
from sloplane.declaration.sli import CompositeMethod
from sloplane.render.gates import gate_schedule
from sloplane.render.options import BundleOptions
from sloplane.render.pipelines import PipelineOptions
from sloplane.render.registry import Document, Renderer
from sloplane.semantics.indicators import prometheus_queries
from sloplane.semantics.subjects import FleetLike

SUCCESS_STATUSES = "pass"
TERMINAL_STATUSES = "fail"
"""`inconclusive` and `error` are in neither list on purpose: Orca keeps polling on any other value."""
STATUS_JSON_PATH = "$.decision"
FAIL_FAST_STATUS_CODES = (400, 401, 403, 404)
"""A wrong token, scope or URL will not fix itself: fail at once rather than retry until the timeout."""
RETRY_STATUS_CODES = (429, 502, 503, 504)
"""An evaluator restarting or shedding load: poll again (Orca already retries other 5xx)."""
PRECONFIGURED_TYPE = "sloplaneGate"

JUDGE = "NetflixACAJudge-v1.0"
SCOPE = "${scope}"
"""Kayenta fills this with the control scope, then the experiment scope, in each metric's query."""
PROMQL_PREFIX = "PromQL:"
"""Kayenta's Prometheus provider runs a `customInlineTemplate` starting with this as a whole PromQL query."""
RATIO_METRIC = "sloplane_error_ratio"


@dataclass(frozen=True)
class SpinnakerOptions:
    """Where the webhook stage sits in a pipeline and which expressions fill the gate request.

    `revision` defaults to the commit of a git trigger (`trigger['hash']`) and falls back to the
    execution id; Jenkins-triggered pipelines use `${trigger.buildInfo.scm[0].sha1}`, Docker ones
    `${trigger['tag']}`.
    """

    ref_id: str = "sloplane-gate"
    requisite_stage_ref_ids: tuple[str, ...] = ()
    revision: str = "${trigger['hash'] ?: execution.id}"
    pipeline: str = "${execution.id}"
    authorization: str | None = None
    """The Authorization header; None: `Bearer` and a kork secret reference to the gate token."""


@dataclass(frozen=True)
class CanaryOptions:
    """How the SLI becomes Kayenta metrics: which label tells canary from baseline, and the thresholds.

    `scope_label` None: the one label whose value differs between the canary stage's selector and
    its baseline's (the attribution baseline, else production). Unstaged SLOs have no selectors to
    compare, so they get a config only when it is given (e.g. `version`, `pod_template_hash`): a
    guessed label their metrics lack would fail every canary for want of data.
    """

    scope_label: str | None = None
    canary_stage: str | None = None
    """The stage under test; None: the first stage that is not production."""
    window: timedelta = timedelta(minutes=5)
    """The rate window of each sample: Kayenta reads the ratio once per step over the analysis."""
    pass_score: float = 95.0
    marginal_score: float = 75.0
    applications: tuple[str, ...] = field(default_factory=tuple)
    """Spinnaker applications that may use the config; empty: the SLO's service."""


def _authorization(options: PipelineOptions, spinnaker: SpinnakerOptions) -> str:
    if spinnaker.authorization is not None:
        return spinnaker.authorization
    return f"Bearer encrypted:k8s!n:{options.token_secret}!k:{options.token_key}"


def gate_request(declaration: Declaration, stage: str | None, spinnaker: SpinnakerOptions) -> dict[str, str]:
    """The gate request's fields, with Spinnaker expressions for the release and the run."""
    request = {"slo": declaration.name}
    if stage is not None:
        request["stage"] = stage
    request["revision"] = spinnaker.revision
    request["pipeline"] = spinnaker.pipeline
    return request


def gate_query_url(options: PipelineOptions, request: Mapping[str, str]) -> str:
    """The gate URL with the request as query parameters, so a GET of it asks the same question.

    Names are quoted; expressions are left as they are, since Orca evaluates them before the call
    (so their values must be URL-safe: commit hashes and execution ids are).
    """
    parts = [f"{key}={value if value.startswith('${') else quote(value, safe='')}" for key, value in request.items()]
    return options.gate_url + "?" + "&".join(parts)


def _monitoring(declaration: Declaration) -> dict[str, Any]:
    """The polling half of a blocking gate: statuses, the initial delay and the timeout."""
    schedule = gate_schedule(declaration)
    return {
        "statusUrlResolution": "getMethod",
        "statusJsonPath": STATUS_JSON_PATH,
        "successStatuses": SUCCESS_STATUSES,
        "terminalStatuses": TERMINAL_STATUSES,
        "retryStatusCodes": list(RETRY_STATUS_CODES),
        "waitBeforeMonitor": int(schedule.initial_delay.total_seconds()),
        "overrideTimeout": True,
        "stageTimeoutMs": int(schedule.timeout.total_seconds() * 1000),
    }


def _blocking(declaration: Declaration) -> bool:
    return declaration.spec.effective_gate.mode is GateMode.BLOCKING


def webhook_stage(
    declaration: Declaration,
    options: PipelineOptions | None = None,
    stage: str | None = None,
    spinnaker: SpinnakerOptions | None = None,
) -> dict[str, Any]:
    """A `webhook` pipeline stage asking the evaluator's gate about this SLO (a stage of it, if given).

    Blocking gates wait for `pass` (see the module's description); async ones record and go on.
    """
    options = options or PipelineOptions()
    spinnaker = spinnaker or SpinnakerOptions()
    request = gate_request(declaration, stage, spinnaker)
    label = declaration.name if stage is None else f"{declaration.name}/{stage}"
    blocking = _blocking(declaration)
    result: dict[str, Any] = {
        "type": "webhook",
        "name": f"SLO gate: {label}",
        "refId": spinnaker.ref_id,
        "requisiteStageRefIds": list(spinnaker.requisite_stage_ref_ids),
        "method": "POST",
        "url": gate_query_url(options, request),
        "customHeaders": {"Authorization": _authorization(options, spinnaker), "Content-Type": "application/json"},
        "payload": request,
        "failFastStatusCodes": list(FAIL_FAST_STATUS_CODES),
        "waitForCompletion": blocking,
        "failPipeline": True,
        "continuePipeline": False,
    }
    if blocking:
        result.update(_monitoring(declaration))
    return result


SLO_PARAMETER = "${parameterValues['slo']}"
STAGE_PARAMETER = (
    "${parameterValues['stage'] == null || parameterValues['stage'] == '' ? '' : '&stage=' + parameterValues['stage']}"
)
"""The stage is optional (unstaged SLOs have none), and the evaluator refuses an empty one: leave it out."""


def preconfigured_webhook(
    options: PipelineOptions | None = None, spinnaker: SpinnakerOptions | None = None
) -> dict[str, Any]:
    """An `orca-local.yml` `webhook.preconfigured` entry: a "sloplane gate" stage holding the token.

    Orca decrypts the `encrypted:` reference in its configuration, so the token never enters a
    pipeline. Pipelines add a stage of type `sloplaneGate` with `parameterValues` `slo` and,
    optionally, `stage`; the release and the run come from the same expressions as
    `webhook_stage`'s. Every call is a GET with the request in the URL (the evaluator records it
    as it would a POST), so an unset stage can be left out of the URL rather than sent empty.
    The default policy's initial delay and timeout apply; an SLO with its own schedule uses
    `webhook_stage`, or sets `waitBeforeMonitor` and `stageTimeoutMs` on the pipeline stage.
    """
    options = options or PipelineOptions()
    spinnaker = spinnaker or SpinnakerOptions()
    url = (
        f"{options.gate_url}?slo={SLO_PARAMETER}{STAGE_PARAMETER}"
        f"&revision={spinnaker.revision}&pipeline={spinnaker.pipeline}"
    )
    return {
        "label": "sloplane gate",
        "type": PRECONFIGURED_TYPE,
        "enabled": True,
        "description": "Ask the sloplane evaluator whether this release may proceed; waits for pass or fail.",
        "method": "GET",
        "url": url,
        "customHeaders": {"Authorization": [f"Bearer encrypted:k8s!n:{options.token_secret}!k:{options.token_key}"]},
        "failFastStatusCodes": list(FAIL_FAST_STATUS_CODES),
        "waitForCompletion": True,
        "statusUrlResolution": "getMethod",
        "statusJsonPath": STATUS_JSON_PATH,
        "successStatuses": SUCCESS_STATUSES,
        "terminalStatuses": TERMINAL_STATUSES,
        "retryStatusCodes": list(RETRY_STATUS_CODES),
        "waitBeforeMonitor": int(DEFAULT_GATE.analysis_window.total_seconds()),  # a blocking gate's default delay
        "parameters": [
            {"name": "slo", "label": "SLO", "type": "string", "description": "The SLO to gate on."},
            {"name": "stage", "label": "Stage", "type": "string", "description": "Its stage, e.g. canary (optional)."},
        ],
    }


# --- Kayenta -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanaryScope:
    """How canary and baseline traffic differ: one label, its two values, and the labels they share."""

    label: str
    control: str | None
    experiment: str | None
    common: dict[str, str]

    @property
    def selector(self) -> dict[str, str]:
        """The selector a metric's query uses: the shared labels, and the scope label left to Kayenta."""
        return {**self.common, self.label: SCOPE}


def _canary_and_baseline(spec: Spec, options: CanaryOptions) -> tuple[Stage, Stage] | None:
    if len(spec.stages) < 2:  # a canary needs a baseline
        return None
    production = spec.production_stage
    canary = spec.stage(options.canary_stage) if options.canary_stage else None
    canary = canary or next(stage for stage in spec.stages if stage is not production)
    baseline_name = spec.effective_gate.attribution.baseline
    baseline = (spec.stage(baseline_name) if baseline_name else None) or production
    assert baseline is not None
    return canary, baseline


def canary_scope(declaration: Declaration, options: CanaryOptions | None = None) -> CanaryScope:
    """The label Kayenta's scopes fill, from the options or from the stages' selectors.

    Raises ValueError when the options name none and the stages do not tell: an unstaged SLO, or
    stages that differ in several labels (filling one would mix the other's traffic into both).
    """
    options = options or CanaryOptions()
    pair = _canary_and_baseline(declaration.spec, options)
    if pair is None:
        if options.scope_label is None:
            raise ValueError(f"{declaration.name}: not staged, so give the label that tells canary from baseline")
        return CanaryScope(options.scope_label, None, None, {})
    canary, baseline = pair
    differing = sorted(
        key for key in {*canary.selector, *baseline.selector} if canary.selector.get(key) != baseline.selector.get(key)
    )
    label = options.scope_label or (differing[0] if len(differing) == 1 else None)
    if label is None:
        raise ValueError(
            f"{declaration.name}: stages {canary.name} and {baseline.name} differ in {differing or 'no label'}; "
            "give the scope label"
        )
    common = {
        key: value for key, value in canary.selector.items() if key != label and baseline.selector.get(key) == value
    }
    return CanaryScope(label, baseline.selector.get(label), canary.selector.get(label), common)


def _ratio_query(declaration: Declaration, scope: CanaryScope, window: timedelta) -> str | None:
    spec = declaration.spec
    queries = prometheus_queries(spec.sli, scope.selector, spec.interval)
    return None if queries is None else queries.at(window).single_series()[2]


@dataclass(frozen=True)
class _Part:
    """One canary metric to be: the SLO it measures, its query, its group weight and criticality."""

    slo: str
    query: str
    weight: float
    critical: bool


def _metric(part: _Part) -> dict[str, Any]:
    """One canary metric: the SLO's error ratio per scope; worse only when it goes up."""
    return {
        "name": f"{part.slo} error ratio",
        "query": {
            "type": "prometheus",
            "serviceType": "prometheus",
            "metricName": RATIO_METRIC,
            "customInlineTemplate": PROMQL_PREFIX + part.query,
        },
        "groups": [part.slo],
        "analysisConfigurations": {
            "canary": {
                "direction": "increase",
                "nanStrategy": "remove",
                "critical": part.critical,
                "mustHaveData": True,
            }
        },
        "scopeName": "default",
    }


def _weights(parts: list[_Part]) -> dict[str, float]:
    """Group weights scaled to total exactly 100 (Kayenta requires it); the last absorbs rounding."""
    raw: dict[str, float] = {}
    for part in parts:
        raw[part.slo] = raw.get(part.slo, 0.0) + part.weight
    total = sum(raw.values())
    names = list(raw)
    scaled = {name: round(100 * raw[name] / total, 2) for name in names[:-1]}
    scaled[names[-1]] = round(100.0 - sum(scaled.values()), 2)
    return scaled


def _part(declaration: Declaration, options: CanaryOptions, weight: float, critical: bool) -> _Part | None:
    if declaration.spec.sli.deployment is not None:
        return None  # rollout outcomes are counted per rollout, not per version serving traffic
    try:
        scope = canary_scope(declaration, options)
    except ValueError:
        return None
    query = _ratio_query(declaration, scope, options.window)
    return None if query is None else _Part(declaration.name, query, weight, critical)


def _parts(declaration: Declaration, fleet: FleetLike, options: CanaryOptions) -> list[_Part] | None:
    """The metrics to be: the SLO itself, or each component of a composite; None if any cannot be."""
    composite = declaration.spec.sli.composite
    if composite is None:
        single = _part(declaration, options, 1.0, True)
        return None if single is None else [single]
    worst = composite.method is CompositeMethod.WORST_OF
    parts = []
    for component in composite.components:
        target = fleet.get(component.slo)
        part = None if target is None else _part(target, options, 1.0 if worst else component.weight, worst)
        if part is None:
            return None
        parts.append(part)
    return parts


def canary_config(
    declaration: Declaration,
    fleet: FleetLike,
    options: PipelineOptions | None = None,
    canary: CanaryOptions | None = None,
) -> dict[str, Any] | None:
    """A Kayenta canary config judging canary against baseline on this SLO's error ratio; None if it cannot.

    Each SLI becomes one metric (a composite: one per component, in groups weighted as the
    composite weighs them; worst-of components are all critical). The ratio is one series per
    scope, zero rather than absent when nothing failed, so a healthy canary has data; a canary
    without traffic has none and fails (`mustHaveData`), as sloplane never passes a canary it
    could not measure. None when Kayenta cannot judge it: an SLI without PromQL (Datadog only) or
    of deployment outcomes, a composite with such a component or one missing from the fleet, or
    no scope label (unstaged, or stages differing in several labels, and none given). `options`
    is taken for a signature uniform with the other pipeline renderers; Kayenta reads Prometheus,
    not the evaluator.
    """
    del options
    canary = canary or CanaryOptions()
    parts = _parts(declaration, fleet, canary)
    if parts is None:
        return None
    return {
        "name": f"{declaration.name}-sloplane",
        "description": f"Canary analysis on the error ratio of SLO {declaration.name} (rendered by sloplane).",
        "configVersion": "1",
        "applications": list(canary.applications or (declaration.spec.service,)),
        "judge": {"name": JUDGE, "judgeConfigurations": {}},
        "metrics": [_metric(part) for part in parts],
        "templates": {},
        "classifier": {
            "groupWeights": _weights(parts),
            "scoreThresholds": {"marginal": canary.marginal_score, "pass": canary.pass_score},
        },
    }


def _iso_duration(span: timedelta) -> str:
    """ISO 8601 duration in whole minutes, as Spinnaker's canary stage reads `lifetimeDuration`."""
    minutes = max(1, math.ceil(span.total_seconds() / 60))
    return f"PT{minutes}M"


def canary_stage(
    declaration: Declaration,
    config_id: str,
    options: CanaryOptions | None = None,
    metrics_account: str = "prometheus",
    storage_account: str = "kayenta",
) -> dict[str, Any]:
    """A `kayentaCanary` pipeline stage running `canary_config` (stored under `config_id`).

    Its scopes are the stages' values of the scope label, its length the gate schedule's, and its
    step the SLO's evaluation interval, so Kayenta judges over the same span the gate would.
    """
    options = options or CanaryOptions()
    scope = canary_scope(declaration, options)
    schedule = gate_schedule(declaration)
    return {
        "type": "kayentaCanary",
        "name": f"Canary analysis: {declaration.name}",
        "refId": f"{declaration.name}-canary",
        "requisiteStageRefIds": [],
        "analysisType": "realTime",
        "canaryConfig": {
            "canaryConfigId": config_id,
            "metricsAccountName": metrics_account,
            "storageAccountName": storage_account,
            "lifetimeDuration": _iso_duration(schedule.timeout - schedule.initial_delay),
            "beginCanaryAnalysisAfterMins": str(math.ceil(schedule.initial_delay.total_seconds() / 60)),
            "canaryAnalysisIntervalMins": str(max(1, math.ceil(schedule.interval.total_seconds() / 60))),
            "scopes": [
                {
                    "scopeName": "default",
                    "controlScope": scope.control or "baseline",
                    "experimentScope": scope.experiment or "canary",
                    "step": int(declaration.spec.interval.total_seconds()),
                }
            ],
            "scoreThresholds": {"marginal": str(options.marginal_score), "pass": str(options.pass_score)},
        },
    }


def _documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    """The webhook stage, and the Kayenta canary config where Kayenta can judge the SLI."""
    name, pipelines = declaration.name, options.pipelines
    documents: dict[str, Document] = {
        f"spinnaker/{name}.webhook-stage.json": ("json", webhook_stage(declaration, pipelines))
    }
    canary = canary_config(declaration, fleet, pipelines)
    if canary is not None:  # None: Kayenta cannot judge this SLI (no PromQL form, or no scope label)
        documents[f"spinnaker/{name}.canary-config.json"] = ("json", canary)
    return documents


RENDERER = Renderer(TargetSystem.SPINNAKER, folders=("spinnaker",), slo_documents=_documents)
