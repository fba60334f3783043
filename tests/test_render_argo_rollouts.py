"""Argo Rollouts analysis rendered from gate policies: valid against the CRDs, with the policy's numbers."""

from __future__ import annotations

import copy
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sloplane.core.budget import burn_rate_alerts
from sloplane.declaration.model import Declaration
from sloplane.interop import load_paths
from sloplane.render.argo_analysis import ArgoRenderError
from sloplane.render.argo_rollouts import (
    DEFAULT_PROMETHEUS_URL,
    analysis_templates,
    go_duration,
    rollout_steps,
    template_name,
)
from sloplane.render.gates import gate_schedule
from sloplane.render.pipelines import PipelineOptions
from sloplane.semantics.datadog import datadog_queries
from sloplane.semantics.subjects import Fleet, subjects
from tests.kube import crd_errors, rollout_around
from tests.strategies import declarations

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_CRD = "argo-rollouts.analysis-template-crd.yaml"
CLUSTER_TEMPLATE_CRD = "argo-rollouts.cluster-analysis-template-crd.yaml"
ROLLOUT_CRD = "argo-rollouts.rollout-crd.yaml"
OPTIONS = PipelineOptions(namespace="shop")
CONDITION = re.compile(
    r"len\(result\) > 0 && result\[0\] (<=|<|>=|>) (-?[0-9.e+-]+)"
    r"|result != nil && result (<=|<|>=|>) (-?[0-9.e+-]+)"
    r'|result == "(pass|fail)"'
)
"""The whole condition grammar the renderer documents; anything else is a rendering bug."""


def _declaration(spec_extra: dict[str, Any] | None = None, *, staged: bool = False, name: str = "shop") -> Declaration:
    spec: dict[str, Any] = {
        "service": name,
        "owners": {"team": "sre"},
        "objective": 99.9,
        "sli": {"http": {"metric": "http_requests_total", "selector": {"job": name}}},
    }
    if staged:
        spec["stages"] = _stages()
    spec |= spec_extra or {}
    data = {"apiVersion": "sloplane.dev/v1alpha1", "kind": "ServiceLevelObjective", "metadata": {"name": name}}
    return Declaration.model_validate({**data, "spec": spec})


def _crd(template: dict[str, Any]) -> str:
    return CLUSTER_TEMPLATE_CRD if template["kind"] == "ClusterAnalysisTemplate" else TEMPLATE_CRD


def _check_valid(declaration: Declaration, fleet: Fleet | dict[str, Declaration]) -> list[dict[str, Any]]:
    """Every template and the Rollout snippet are schema-valid, every query parses, every condition is ours."""
    templates = analysis_templates(declaration, fleet, OPTIONS)
    assert len(templates) == len(subjects(declaration))
    for template in templates:
        assert crd_errors(template, _crd(template)) == [], template["metadata"]["name"]
        for metric in template["spec"]["metrics"]:
            assert CONDITION.fullmatch(metric["successCondition"]), metric["successCondition"]
            assert CONDITION.fullmatch(metric["failureCondition"]), metric["failureCondition"]
            prometheus = metric["provider"].get("prometheus")
            if prometheus is not None:
                promql_parser.parse(prometheus["query"])
    assert crd_errors(rollout_around(rollout_steps(declaration, OPTIONS)), ROLLOUT_CRD) == []
    return templates


def test_every_example_renders_valid_templates_and_steps() -> None:
    result = load_paths([ROOT / "examples" / "slos"])
    assert result.errors == []
    fleet = Fleet(result.declarations)
    rendered = {d.name: _check_valid(d, fleet) for d in result.declarations}
    assert [t["metadata"]["name"] for t in rendered["checkout-availability"]] == [
        "checkout-availability-canary",
        "checkout-availability-production",
    ]


ANALYSIS = st.fixed_dictionaries(
    {},
    optional={
        "provider": st.sampled_from(["prometheus", "web", "datadog"]),
        "interval": st.sampled_from(["30s", "1m", "2m", "5m"]),
        "count": st.integers(1, 30),
        "initialDelay": st.sampled_from(["1m", "10m", "1h", "1d"]),
        "failureLimit": st.integers(0, 5),
        "inconclusiveLimit": st.integers(0, 5),
        "consecutiveErrorLimit": st.integers(0, 5),
        "dryRun": st.booleans(),
        "clusterScoped": st.booleans(),
    },
)


@st.composite
def gated_declarations(draw: st.DrawFn) -> dict[str, Any]:
    """A generated declaration whose gate also draws an analysis section (provider, schedule, scope)."""
    data = copy.deepcopy(draw(declarations()))
    if draw(st.booleans()):
        gate = data["spec"].setdefault("gate", {})
        gate["analysis"] = draw(ANALYSIS)
        if draw(st.booleans()):
            gate["analysisWindow"] = draw(st.sampled_from(["5m", "10m", "30m", "1h"]))
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gated_declarations())
def test_generated_declarations_render_valid_templates(data: dict[str, Any]) -> None:
    declaration = Declaration.model_validate(data)
    if not _renderable(declaration):
        with pytest.raises(ArgoRenderError, match=r"Datadog|timeslice"):
            analysis_templates(declaration, {declaration.name: declaration}, OPTIONS)
        return
    templates = _check_valid(declaration, {declaration.name: declaration})
    schedule = gate_schedule(declaration)
    analysis = declaration.spec.effective_gate.analysis
    delay = go_duration(schedule.initial_delay) if schedule.initial_delay else None
    for template in templates:
        assert template["kind"] == ("ClusterAnalysisTemplate" if analysis.cluster_scoped else "AnalysisTemplate")
        assert ("dryRun" in template["spec"]) == analysis.dry_run
        for metric in template["spec"]["metrics"]:
            assert (metric["interval"], metric.get("count"), metric.get("initialDelay")) == (
                go_duration(schedule.interval),
                schedule.count,
                delay,
            )
            assert (metric["failureLimit"], metric["inconclusiveLimit"], metric["consecutiveErrorLimit"]) == (
                schedule.failure_limit,
                schedule.inconclusive_limit,
                schedule.consecutive_error_limit,
            )
            assert list(metric["provider"]) == [analysis.provider.value]


def _renderable(declaration: Declaration) -> bool:
    """What the declaration checks let through to the renderer: the datadog provider needs event counts."""
    spec = declaration.spec
    if spec.effective_gate.analysis.provider.value != "datadog":
        return True
    return datadog_queries(spec.sli, {}) is not None and spec.budgeting_method.value == "occurrences"


def test_schedule_numbers_come_from_the_policy() -> None:
    declaration = _declaration(
        {
            "gate": {
                "analysisWindow": "30m",
                "analysis": {
                    "interval": "2m",
                    "count": 7,
                    "initialDelay": "1d",
                    "failureLimit": 1,
                    "inconclusiveLimit": 3,
                    "consecutiveErrorLimit": 5,
                },
            }
        }
    )
    (template,) = analysis_templates(declaration, {}, OPTIONS)
    for metric in template["spec"]["metrics"]:
        assert {key: metric[key] for key in ("interval", "count", "initialDelay")} == {
            "interval": "2m",
            "count": 7,
            "initialDelay": "24h",
        }
        assert (metric["failureLimit"], metric["inconclusiveLimit"], metric["consecutiveErrorLimit"]) == (1, 3, 5)
    assert "dryRun" not in template["spec"]
    assert template["metadata"]["namespace"] == "shop"


def test_default_blocking_schedule_spans_the_analysis_window() -> None:
    (template,) = analysis_templates(_declaration(), {}, OPTIONS)
    metric = template["spec"]["metrics"][0]
    assert (metric["interval"], metric["count"], metric["initialDelay"]) == ("1m", 10, "10m")
    assert (metric["failureLimit"], metric["inconclusiveLimit"]) == (0, 2)


def test_async_mode_measures_until_the_rollout_ends_in_the_background() -> None:
    declaration = _declaration({"gate": {"mode": "async"}}, staged=True)
    for template in analysis_templates(declaration, {}, OPTIONS):
        metric = template["spec"]["metrics"][0]
        assert "count" not in metric and "initialDelay" not in metric
        assert (metric["interval"], metric["failureLimit"], metric["inconclusiveLimit"]) == ("5m", 1, 0)
    canary = rollout_steps(declaration, OPTIONS)["canary"]
    assert [t["templateName"] for t in canary["analysis"]["templates"]] == ["shop-canary", "shop-production"]
    assert not any("analysis" in step for step in canary["steps"])
    assert crd_errors(rollout_around({"canary": canary}), ROLLOUT_CRD) == []


def test_blocking_steps_analyse_each_stage_after_shifting_traffic() -> None:
    steps = rollout_steps(_declaration(staged=True), OPTIONS)["canary"]["steps"]
    assert steps[0] == {"setWeight": 10}
    assert steps[1]["analysis"]["templates"] == [{"templateName": "shop-canary"}]
    assert steps[1]["analysis"]["args"] == [{"name": "revision", "valueFrom": {"podTemplateHashValue": "Latest"}}]
    assert steps[2] == {"setWeight": 25}
    assert steps[3]["analysis"]["templates"] == [{"templateName": "shop-production"}]


def test_dry_run_covers_every_metric() -> None:
    (template,) = analysis_templates(_declaration({"gate": {"analysis": {"dryRun": True}}}), {}, OPTIONS)
    assert template["spec"]["dryRun"] == [{"metricName": ".*"}]
    assert crd_errors(template, TEMPLATE_CRD) == []


def test_cluster_scoped_templates_have_no_namespace_and_steps_say_so() -> None:
    declaration = _declaration({"gate": {"analysis": {"clusterScoped": True}}}, staged=True)
    templates = analysis_templates(declaration, {}, OPTIONS)
    assert {t["kind"] for t in templates} == {"ClusterAnalysisTemplate"}
    assert all("namespace" not in t["metadata"] for t in templates)
    assert all(crd_errors(t, CLUSTER_TEMPLATE_CRD) == [] for t in templates)
    steps = rollout_steps(declaration, OPTIONS)["canary"]["steps"]
    assert steps[1]["analysis"]["templates"] == [{"templateName": "shop-canary", "clusterScope": True}]


def test_prometheus_metrics_follow_the_budget_math() -> None:
    declaration = _declaration({"gate": {"maxBurnRate": 6, "minBudgetRemaining": 25, "rollbackOn": "ticket"}})
    (template,) = analysis_templates(declaration, {}, OPTIONS, prometheus_url="http://prom:9090")
    metrics = {metric["name"]: metric for metric in template["spec"]["metrics"]}
    pairs = [f"burn-rate-{a.name.replace('/', '-')}" for a in burn_rate_alerts(timedelta(days=30))]
    assert list(metrics) == [*pairs, "burn-rate-analysis-window", "budget-remaining"]
    assert list(metrics)[:4] == ["burn-rate-1h-5m", "burn-rate-6h-30m", "burn-rate-1d-2h", "burn-rate-3d-6h"]
    assert metrics["burn-rate-1h-5m"]["failureCondition"] == "len(result) > 0 && result[0] > 14.4"
    assert metrics["burn-rate-3d-6h"]["successCondition"] == "len(result) > 0 && result[0] <= 1"
    assert metrics["burn-rate-analysis-window"]["failureCondition"] == "len(result) > 0 && result[0] > 6"
    assert metrics["budget-remaining"]["failureCondition"] == "len(result) > 0 && result[0] < 0.25"
    assert all(m["provider"]["prometheus"]["address"] == "http://prom:9090" for m in metrics.values())
    query = metrics["burn-rate-1h-5m"]["provider"]["prometheus"]["query"]
    assert '"window", "1h"' in query and '"window", "5m"' in query and "[1h]" in query and "[5m]" in query


def test_the_default_policy_fails_on_page_alerts_and_an_exhausted_budget_only() -> None:
    (template,) = analysis_templates(_declaration(), {}, OPTIONS)
    assert template["spec"]["metrics"][0]["provider"]["prometheus"]["address"] == DEFAULT_PROMETHEUS_URL
    names = [metric["name"] for metric in template["spec"]["metrics"]]
    assert names == ["burn-rate-1h-5m", "burn-rate-6h-30m", "budget-remaining"]
    budget = template["spec"]["metrics"][-1]
    assert (budget["successCondition"], budget["failureCondition"]) == (
        "len(result) > 0 && result[0] > 0",
        "len(result) > 0 && result[0] <= 0",
    )


def test_a_stage_reads_its_own_traffic_and_objective() -> None:
    declaration = _declaration(staged=True)
    canary, production = analysis_templates(declaration, {}, OPTIONS)
    canary_query = canary["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    assert 'stage="canary"' in canary_query and 'stage="stable"' not in canary_query
    assert "/ 0.005" in canary_query  # the canary's own 99.5 objective
    assert "/ 0.001" in production["spec"]["metrics"][0]["provider"]["prometheus"]["query"]


def test_production_counts_the_stages_that_count_toward_it_as_its_rules_and_the_evaluator_do() -> None:
    """A canary marked `countsTowardProduction` is part of production's budget: the gate reads it too."""
    stages = [{**stage, "countsTowardProduction": stage["name"] == "canary"} for stage in _stages()]
    declaration = _declaration({"stages": stages})
    _, production = analysis_templates(declaration, {}, OPTIONS)
    for metric in production["spec"]["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        assert 'stage="stable"' in query and 'stage="canary"' in query, query


def _stages() -> list[dict[str, Any]]:
    return [
        {"name": "canary", "objective": 99.5, "selector": {"stage": "canary"}},
        {"name": "production", "selector": {"stage": "stable"}},
    ]


def test_min_events_makes_too_little_traffic_inconclusive_in_the_query() -> None:
    (template,) = analysis_templates(_declaration({"gate": {"minEvents": 500}}), {}, OPTIONS)
    for metric in template["spec"]["metrics"]:
        assert metric["provider"]["prometheus"]["query"].endswith("[10m])) >= 500)")


def test_web_provider_calls_the_evaluator_with_the_token_secret() -> None:
    options = PipelineOptions(evaluator_url="http://evaluator:8080/", token_secret="gate", token_key="jwt")
    declaration = _declaration({"gate": {"analysis": {"provider": "web"}}}, staged=True)
    canary, _ = analysis_templates(declaration, {}, options)
    assert canary["spec"]["args"] == [
        {"name": "revision"},
        {"name": "rollout"},
        {"name": "token", "valueFrom": {"secretKeyRef": {"name": "gate", "key": "jwt"}}},
    ]
    (metric,) = canary["spec"]["metrics"]
    web = metric["provider"]["web"]
    assert web["method"] == "POST" and web["url"] == "http://evaluator:8080/v1/gates/evaluate"
    assert web["headers"] == [
        {"key": "Authorization", "value": "Bearer {{args.token}}"},
        {"key": "Content-Type", "value": "application/json"},
    ]
    assert web["jsonBody"] == {
        "slo": "shop",
        "stage": "canary",
        "revision": "{{args.revision}}",
        "rollout": "{{args.rollout}}",
        "pipeline": "argo-rollouts",
    }
    assert web["jsonPath"] == "{$.decision}"
    assert (metric["successCondition"], metric["failureCondition"]) == ('result == "pass"', 'result == "fail"')
    args = rollout_steps(declaration, options)["canary"]["steps"][1]["analysis"]["args"]
    assert {"name": "rollout", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in args


def test_long_names_are_shortened_to_a_dns_label() -> None:
    declaration = _declaration(name="a" * 60, staged=True)
    names = [template_name(subject) for subject in subjects(declaration)]
    assert all(len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) for name in names)
    assert len(set(names)) == 2


def test_composites_read_recorded_ratios() -> None:
    parts = [_declaration(name="api"), _declaration(name="web")]
    composite = _declaration(
        {"sli": {"composite": {"method": "worstOf", "components": [{"slo": "api"}, {"slo": "web"}]}}}, name="journey"
    )
    fleet = Fleet([*parts, composite])
    (template,) = _check_valid(composite, fleet)
    queries = [metric["provider"]["prometheus"]["query"] for metric in template["spec"]["metrics"]]
    assert 'sloplane:error_ratio:rate1h{service="journey",slo="journey"}' in queries[0]
    assert queries[-1] == 'sum(sloplane:error_budget_remaining:ratio{service="journey",slo="journey"})'


def test_the_datadog_provider_refuses_an_sli_without_datadog_event_counts() -> None:
    """The declaration checks report this at the provider's line; the renderer still never guesses."""
    raw = {"raw": {"errorRatio": {"prometheus": "sum(rate(errors[{{window}}]))", "datadog": "sum:errors{*}"}}}
    declaration = _declaration({"sli": raw, "gate": {"analysis": {"provider": "datadog"}}})
    with pytest.raises(ArgoRenderError, match="no Datadog event counts"):
        analysis_templates(declaration, {}, OPTIONS)
