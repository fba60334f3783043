"""Argo Rollouts analysis with the datadog provider: CRD-valid, guarded both ways, run against the local Datadog API.

Nothing here runs Argo itself: the tests do what Argo's datadog provider (v2) does with a metric —
a scalar request with the metric's queries (`aggregator` as given), its formula, `from = now -
interval` and `to = now` in milliseconds, the keys and address from the `datadog` Secret — read the
first number column as Argo does (nulls skipped; nothing left is nil), and apply the conditions with
a Python reading of the renderer's condition grammar.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from sloplane.declaration import Severity
from sloplane.declaration.model import Declaration
from sloplane.interop import load_paths
from sloplane.render.argo_rollouts import analysis_templates, rollout_steps
from sloplane.render.argo_rollouts_datadog import SECRET_KEYS, SECRET_NAME
from sloplane.render.pipelines import PipelineOptions
from sloplane.semantics.datadog import datadog_queries
from tests.conftest import minimal
from tests.datadog_api import DatadogAPI
from tests.kube import crd_errors, rollout_around

OPTIONS = PipelineOptions(namespace="shop")
TEMPLATE_CRD = "argo-rollouts.analysis-template-crd.yaml"
CLUSTER_TEMPLATE_CRD = "argo-rollouts.cluster-analysis-template-crd.yaml"
ROLLOUT_CRD = "argo-rollouts.rollout-crd.yaml"
NOW = 1_800_000_000
"""The instant Argo measures at: a whole minute, so windows take whole one-minute buckets."""
assert NOW % 60 == 0
DAY = 86_400
GATE = {"rollbackOn": "ticket", "maxBurnRate": 6, "minEvents": 100, "minBudgetRemaining": 10}
"""Every kind of metric: each window of all four pairs, the analysis-window burn, events, budget left."""
SECRET = {"api-key": "dd-api-secret", "app-key": "dd-app-secret"}
SUCCESS, FAILURE, INCONCLUSIVE = "Successful", "Failed", "Inconclusive"


def _declaration(
    name: str, spec_extra: dict[str, Any] | None = None, *, gate: dict[str, Any] | None = None
) -> Declaration:
    spec: dict[str, Any] = {
        "service": name,
        "owners": {"team": "sre"},
        "objective": 99.9,
        "window": "30d",
        "sli": {"http": {"metric": "http_requests_total", "selector": {"service": name}}},
        "gate": {**(GATE if gate is None else gate), "analysis": {"provider": "datadog"}},
    }
    spec |= spec_extra or {}
    data = {"apiVersion": "sloplane.dev/v1alpha1", "kind": "ServiceLevelObjective", "metadata": {"name": name}}
    return Declaration.model_validate({**data, "spec": spec})


def _metrics(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {metric["name"]: metric for metric in template["spec"]["metrics"]}


# Argo's side, read in Python: the condition grammar, the v2 request, the v2 answer

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_SCALAR = re.compile(r"result != nil && result (<=|<|>=|>) (-?[0-9.]+)")


def holds(condition: str, result: float | None) -> bool:
    """A datadog condition of the renderer's grammar as Argo's expr reads it: nil short-circuits, NaN compares false."""
    match = _SCALAR.fullmatch(condition)
    assert match, f"condition outside the documented grammar: {condition!r}"
    return result is not None and _COMPARE[match[1]](result, float(match[2]))


def verdict(metric: dict[str, Any], result: float | None) -> str:
    """Argo's measurement phase: failed, successful, or neither (inconclusive)."""
    failed, succeeded = holds(metric["failureCondition"], result), holds(metric["successCondition"], result)
    assert not (failed and succeeded), f"{metric['name']}: both conditions hold for {result!r}"
    return FAILURE if failed else SUCCESS if succeeded else INCONCLUSIVE


def go_seconds(duration: str) -> int:
    """Seconds of a Go duration as the renderer prints them (`24h`, `1h30m`, `5m`)."""
    parts = re.findall(r"(\d+)(h|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(int(number) * {"h": 3600, "m": 60, "s": 1}[unit] for number, unit in parts)


def measure(metric: dict[str, Any], secret: dict[str, str], now: int = NOW) -> float | None:
    """One measurement of a datadog metric as Argo's provider takes it (v2, ungrouped)."""
    datadog = metric["provider"]["datadog"]
    assert datadog["secretRef"] == {"name": SECRET_NAME}
    interval = go_seconds(datadog["interval"])
    queries = [
        {"aggregator": datadog["aggregator"], "data_source": "metrics", "name": name, "query": query}
        for name, query in datadog["queries"].items()
    ]
    body = {
        "data": {
            "type": "scalar_request",
            "attributes": {
                "from": (now - interval) * 1000,
                "to": now * 1000,
                "queries": queries,
                "formulas": [{"formula": datadog["formula"]}],
            },
        }
    }
    headers = {"DD-API-KEY": secret["api-key"], "DD-APPLICATION-KEY": secret["app-key"]}
    response = requests.post(f"{secret['address']}/api/v2/query/scalar", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, (metric["name"], response.text)
    columns = response.json()["data"]["attributes"]["columns"]
    assert not any(column["type"] == "group" for column in columns)
    number = next(column for column in columns if column.get("type", "number") == "number")
    values = [value for value in number["values"] if value is not None]
    return float(values[0]) if values else None


# the rendered objects


def test_templates_are_crd_valid_and_every_condition_is_ours() -> None:
    staged = {
        "stages": [
            {"name": "canary", "objective": 99.5, "selector": {"track": "canary"}},
            {"name": "production", "selector": {"track": "stable"}},
        ]
    }
    declarations = [
        _declaration("shop"),
        _declaration("staged", staged),
        _declaration("cluster", gate={"analysis": {"clusterScoped": True}}),
        _declaration("async", gate={"mode": "async", "minEvents": 0}),
    ]
    for declaration in declarations:
        for template in analysis_templates(declaration, {}, OPTIONS):
            crd = CLUSTER_TEMPLATE_CRD if template["kind"] == "ClusterAnalysisTemplate" else TEMPLATE_CRD
            assert crd_errors(template, crd) == [], template["metadata"]["name"]
            for metric in template["spec"]["metrics"]:
                datadog = metric["provider"]["datadog"]
                assert (datadog["apiVersion"], datadog["aggregator"]) == ("v2", "sum")
                assert datadog["queries"] and datadog["formula"]
                assert all(query.endswith(".as_count()") for query in datadog["queries"].values())
                assert _SCALAR.fullmatch(metric["successCondition"]) and _SCALAR.fullmatch(metric["failureCondition"])
        assert crd_errors(rollout_around(rollout_steps(declaration, OPTIONS)), ROLLOUT_CRD) == []


def test_one_metric_per_window_of_the_gating_pairs_at_the_lowest_factor() -> None:
    """The window pair cannot be one Datadog metric: each window fails on its own (see the module docstring)."""
    (template,) = analysis_templates(_declaration("shop"), {}, OPTIONS)
    metrics = _metrics(template)
    assert list(metrics) == [
        "burn-rate-1h",
        "burn-rate-5m",
        "burn-rate-6h",
        "burn-rate-30m",
        "burn-rate-1d",
        "burn-rate-2h",
        "burn-rate-3d",
        "burn-rate-analysis-window",
        "events-analysis-window",
        "budget-remaining",
    ]
    # 6h is the page pair's long window (6x) and the ticket pair's short one (1x): the lower factor fails first
    assert metrics["burn-rate-6h"]["failureCondition"] == "result != nil && result > 1"
    assert metrics["burn-rate-5m"]["failureCondition"] == "result != nil && result > 14.4"
    windows = {name: metric["provider"]["datadog"]["interval"] for name, metric in metrics.items()}
    assert (windows["burn-rate-1d"], windows["burn-rate-analysis-window"], windows["budget-remaining"]) == (
        "24h",
        "10m",
        "720h",
    )
    assert metrics["burn-rate-1h"]["provider"]["datadog"]["queries"] == {
        "errors": "sum:http_requests.count{service:shop,code:5*}.as_count()",
        "total": "sum:http_requests.count{service:shop}.as_count()",
    }
    assert metrics["burn-rate-1h"]["provider"]["datadog"]["formula"] == "(errors / total) / 0.001"
    assert metrics["budget-remaining"]["provider"]["datadog"]["formula"] == "1 - (errors / total) / 0.001"


def test_the_default_policy_gates_on_the_page_windows_and_the_budget() -> None:
    (template,) = analysis_templates(_declaration("shop", gate={}), {}, OPTIONS)
    metrics = _metrics(template)
    assert list(metrics) == ["burn-rate-1h", "burn-rate-5m", "burn-rate-6h", "burn-rate-30m", "budget-remaining"]
    budget = metrics["budget-remaining"]
    assert (budget["successCondition"], budget["failureCondition"]) == (
        "result != nil && result > 0",
        "result != nil && result <= 0",
    )


def test_a_stage_reads_its_own_tags_and_objective() -> None:
    stages = [
        {"name": "canary", "objective": 99.5, "selector": {"track": "canary"}},
        {"name": "production", "selector": {"track": "stable"}},
    ]
    canary, production = analysis_templates(_declaration("shop", {"stages": stages}), {}, OPTIONS)
    canary_dd = canary["spec"]["metrics"][0]["provider"]["datadog"]
    assert all("track:canary" in query for query in canary_dd["queries"].values())
    assert canary_dd["formula"].endswith("/ 0.005")
    production_dd = production["spec"]["metrics"][0]["provider"]["datadog"]
    assert all("track:stable" in query and "canary" not in query for query in production_dd["queries"].values())


def test_tiny_budgets_print_in_fixed_point_for_the_formula() -> None:
    (template,) = analysis_templates(_declaration("shop", {"objective": 99.999}), {}, OPTIONS)
    assert template["spec"]["metrics"][0]["provider"]["datadog"]["formula"] == "(errors / total) / 0.00001"


def test_a_good_events_sli_counts_bad_events_as_total_minus_good() -> None:
    sli = {
        "ratio": {
            "good": {"datadog": "sum:requests.count{service:shop,code:2*}.as_count()"},
            "total": {"datadog": "sum:requests.count{service:shop}.as_count()"},
        }
    }
    (template,) = analysis_templates(_declaration("shop", {"sli": sli}), {}, OPTIONS)
    datadog = template["spec"]["metrics"][0]["provider"]["datadog"]
    assert set(datadog["queries"]) == {"good", "total"}
    assert datadog["formula"] == "((total - good) / total) / 0.001"


# conditions, both ways


@pytest.mark.parametrize("provider_gate", [GATE, {}, {"minBudgetRemaining": 0}])
def test_conditions_split_every_value_and_leave_no_data_inconclusive(provider_gate: dict[str, Any]) -> None:
    (template,) = analysis_templates(_declaration("shop", gate=provider_gate), {}, OPTIONS)
    for metric in template["spec"]["metrics"]:
        match = _SCALAR.fullmatch(metric["successCondition"])
        assert match, metric["successCondition"]
        limit = float(match[2])
        assert verdict(metric, None) == INCONCLUSIVE, metric["name"]
        assert verdict(metric, math.nan) == INCONCLUSIVE, metric["name"]
        below, at, above = verdict(metric, limit - 1e-6), verdict(metric, limit), verdict(metric, limit + 1e-6)
        if metric["name"].startswith("burn-rate"):
            assert (below, at, above) == (SUCCESS, SUCCESS, FAILURE), metric["name"]
        elif metric["name"] == "events-analysis-window":
            assert (below, at, above) == (INCONCLUSIVE, SUCCESS, SUCCESS)
            assert verdict(metric, 0.0) == INCONCLUSIVE
        else:
            assert below == FAILURE and above == SUCCESS, metric["name"]
            assert at == (FAILURE if limit <= 0 else SUCCESS), metric["name"]


# against the local Datadog API

PER_MINUTE = 1000.0
HEALTHY = 0.0005
"""Half the 99.9% budget: burn 0.5 on every window."""


def _history(
    api: DatadogAPI, service: str, *, days: int = 31, total: float = PER_MINUTE, ratio: float = HEALTHY
) -> None:
    """A month of steady traffic up to NOW, one point a minute, `ratio` of it 5xx."""
    start = NOW - days * DAY
    minutes = range(start, NOW, 60)
    api.add_series(
        "http_requests.count", {"service": service, "code": "200"}, [(t, total * (1 - ratio)) for t in minutes]
    )
    api.add_series("http_requests.count", {"service": service, "code": "500"}, [(t, total * ratio) for t in minutes])


def _errors(api: DatadogAPI, service: str, minutes: int, ratio: float, total: float = PER_MINUTE) -> None:
    """The last `minutes` before NOW turn `ratio` of the traffic into 5xx (on top of the history)."""
    points = [(t, total * ratio) for t in range(NOW - minutes * 60, NOW, 60)]
    api.add_series("http_requests.count", {"service": service, "code": "500"}, points)
    api.add_series("http_requests.count", {"service": service, "code": "200"}, [(t, -total * ratio) for t, _ in points])


@pytest.fixture(scope="module")
def secret() -> Iterator[dict[str, str]]:
    """The local API filled with every scenario, and the `datadog` Secret pointing at it."""
    api = DatadogAPI(api_key=SECRET["api-key"], app_key=SECRET["app-key"])
    _history(api, "healthy")
    _history(api, "outage")
    _errors(api, "outage", minutes=30, ratio=1.0)
    _history(api, "burst")
    _errors(api, "burst", minutes=5, ratio=0.02)
    _history(api, "spent")
    _errors(api, "spent", minutes=3 * 24 * 60 + 60, ratio=0.01)
    quiet = [(t, 5.0) for t in range(NOW - 31 * DAY, NOW, 600)]
    api.add_series("http_requests.count", {"service": "quiet", "code": "200"}, quiet)
    api.add_series("http_requests.count", {"service": "quiet", "code": "500"}, [(t, 0.0) for t, _ in quiet])
    api.add_series(
        "http_requests.count", {"service": "flawless", "code": "200"}, [(NOW - 60 * m, 100.0) for m in range(1, 200)]
    )
    with api as url:
        yield {**SECRET, "address": url}


def _verdicts(declaration: Declaration, secret: dict[str, str]) -> dict[str, str]:
    (template,) = analysis_templates(declaration, {}, OPTIONS)
    return {metric["name"]: verdict(metric, measure(metric, secret)) for metric in template["spec"]["metrics"]}


def _run(verdicts: dict[str, str]) -> str:
    """The AnalysisRun's phase: any failed metric fails it, any inconclusive one (and no failure) pauses it."""
    if FAILURE in verdicts.values():
        return FAILURE
    return INCONCLUSIVE if INCONCLUSIVE in verdicts.values() else SUCCESS


def test_the_secret_has_the_keys_argo_reads(secret: dict[str, str]) -> None:
    assert set(secret) == set(SECRET_KEYS)


def test_healthy_traffic_passes_every_metric(secret: dict[str, str]) -> None:
    verdicts = _verdicts(_declaration("healthy"), secret)
    assert set(verdicts.values()) == {SUCCESS}, verdicts
    (template,) = analysis_templates(_declaration("healthy"), {}, OPTIONS)
    burn = measure(_metrics(template)["burn-rate-1h"], secret)
    assert burn == pytest.approx(0.5, rel=1e-9)
    left = measure(_metrics(template)["budget-remaining"], secret)
    assert left == pytest.approx(0.5, rel=1e-9)


def test_an_outage_fails_the_run(secret: dict[str, str]) -> None:
    verdicts = _verdicts(_declaration("outage"), secret)
    assert _run(verdicts) == FAILURE
    assert verdicts["burn-rate-1h"] == verdicts["burn-rate-5m"] == verdicts["burn-rate-analysis-window"] == FAILURE
    assert verdicts["events-analysis-window"] == SUCCESS


def test_a_spent_budget_fails_while_the_short_windows_pass(secret: dict[str, str]) -> None:
    """1% errors for three days: burn 10 — above the 1d/3d factors, below the page pairs'."""
    verdicts = _verdicts(_declaration("spent"), secret)
    assert (verdicts["burn-rate-1h"], verdicts["burn-rate-5m"]) == (SUCCESS, SUCCESS)
    assert (verdicts["burn-rate-1d"], verdicts["burn-rate-3d"]) == (FAILURE, FAILURE)
    assert verdicts["budget-remaining"] == FAILURE
    assert _run(verdicts) == FAILURE


def test_a_burst_in_the_short_window_alone_fails_where_the_page_alert_would_not(secret: dict[str, str]) -> None:
    """The documented strictness: 2% errors for 5m burns 20 there, but only ~2 over the hour."""
    (template,) = analysis_templates(_declaration("burst"), {}, OPTIONS)
    metrics = _metrics(template)
    long, short = measure(metrics["burn-rate-1h"], secret), measure(metrics["burn-rate-5m"], secret)
    assert long is not None and short is not None
    assert long < 14.4 < short  # the 1h/5m alert (both above 14.4) does not fire...
    assert verdict(metrics["burn-rate-5m"], short) == FAILURE  # ...and the gate fails anyway


def test_no_data_is_inconclusive_never_a_pass(secret: dict[str, str]) -> None:
    verdicts = _verdicts(_declaration("silent"), secret)
    assert set(verdicts.values()) == {INCONCLUSIVE}, verdicts


def test_too_little_traffic_is_inconclusive(secret: dict[str, str]) -> None:
    verdicts = _verdicts(_declaration("quiet"), secret)
    assert verdicts["events-analysis-window"] == INCONCLUSIVE
    assert _run(verdicts) == INCONCLUSIVE


def test_an_errors_series_that_never_existed_is_inconclusive_not_a_pass(secret: dict[str, str]) -> None:
    """The documented gap: Datadog answers an errors query without points with no data."""
    verdicts = _verdicts(_declaration("flawless", gate={}), secret)
    assert set(verdicts.values()) == {INCONCLUSIVE}, verdicts
    good = {
        "ratio": {
            "good": {"datadog": "sum:http_requests.count{service:flawless,code:2*}.as_count()"},
            "total": {"datadog": "sum:http_requests.count{service:flawless}.as_count()"},
        }
    }
    assert set(_verdicts(_declaration("flawless", {"sli": good}, gate={}), secret).values()) == {SUCCESS}


# the declaration checks


def _with_datadog_gate(text: str, sli: str | None = None, extra: str = "") -> str:
    if sli is not None:
        text = text.replace("    http: {metric: http_requests_total, selector: {job: checkout}}\n", sli)
    return text + extra + "  gate:\n    analysis:\n      provider: datadog\n"


def test_an_sli_without_datadog_event_counts_is_an_error_at_the_provider(write: Any) -> None:
    sli = "    latency: {metric: rpc_duration_seconds, threshold: 250ms}\n"
    text = _with_datadog_gate(minimal(), sli)
    line = text.splitlines().index("      provider: datadog") + 1
    result = load_paths([write("a.yaml", text)])
    (finding,) = result.errors
    assert (finding.position.line, finding.field) == (line, "spec.gate.analysis.provider")
    assert "latency SLI has none" in finding.message and "datadog` good" in finding.message


def test_an_http_sli_with_the_datadog_provider_is_clean(write: Any) -> None:
    result = load_paths([write("a.yaml", _with_datadog_gate(minimal()))])
    assert result.diagnostics == []


def test_a_timeslice_budget_is_an_error_at_the_provider(write: Any) -> None:
    extra = "  budgetingMethod: timeslices\n  timeslice: {window: 1m, target: 95}\n"
    result = load_paths([write("a.yaml", _with_datadog_gate(minimal(), extra=extra))])
    (finding,) = result.errors
    assert finding.field == "spec.gate.analysis.provider" and "time slices" in finding.message


def test_a_stage_counted_toward_production_is_a_warning_at_its_line(write: Any) -> None:
    extra = (
        "  stages:\n"
        "    - name: canary\n"
        "      selector: {track: canary}\n"
        "      countsTowardProduction: true\n"
        "    - {name: production, selector: {track: stable}}\n"
    )
    text = _with_datadog_gate(minimal(), extra=extra)
    line = text.splitlines().index("      countsTowardProduction: true") + 1
    (finding,) = load_paths([write("a.yaml", text)]).diagnostics
    assert (finding.severity, finding.position.line) == (Severity.WARNING, line)
    assert finding.code == "lint/datadog-analysis-stages"


@pytest.mark.parametrize(
    "sli",
    [
        {"http": {"metric": "http_requests_total"}},
        {"ratio": {"errors": {"datadog": "sum:e{*}.as_count()"}, "total": {"datadog": "sum:t{*}.as_count()"}}},
        {"ratio": {"errors": {"prometheus": "sum(e)"}, "total": {"prometheus": "sum(t)", "datadog": "sum:t{*}"}}},
        {"latency": {"metric": "rpc_duration_seconds", "threshold": "250ms"}},
        {"latency": {"metric": "rpc", "threshold": "1s", "datadog": {"good": "sum:g{*}", "total": "sum:t{*}"}}},
        {"probe": {}},
        {"raw": {"errorRatio": {"datadog": "sum:e{*}"}}},
        {"threshold": {"query": {"datadog": "avg:q{*}"}, "op": "lt", "value": 1.0}},
        {"deployment": {"measure": "successRate"}},
    ],
    ids=lambda sli: next(iter(sli)),
)
def test_the_check_and_the_renderer_agree_on_which_slis_have_datadog_counts(sli: dict[str, Any], write: Any) -> None:
    declaration = _declaration("shop", {"sli": sli})
    renders = datadog_queries(declaration.spec.sli, {}) is not None
    errors = load_paths([write("a.yaml", _declaration_yaml(sli))]).errors
    refused = any(error.field == "spec.gate.analysis.provider" for error in errors)
    assert refused != renders, errors


def _declaration_yaml(sli: dict[str, Any]) -> str:
    """The declaration as a file, so the checks run with positions (JSON is YAML)."""
    return (
        "apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {name: shop}\nspec:\n"
        "  service: shop\n  owners: {team: sre}\n  objective: 99.9\n  targets: [argoRollouts]\n"
        f"  sli: {json.dumps(sli)}\n  gate: {{analysis: {{provider: datadog}}}}\n"
    )


@pytest.mark.parametrize(("provider", "refused"), [("datadog", False), ("web", False), ("prometheus", True)])
def test_the_argo_target_needs_the_backend_its_analysis_provider_reads(
    provider: str, refused: bool, write: Any
) -> None:
    """A Datadog-only SLI may target Argo Rollouts when the analysis reads Datadog (or asks the evaluator)."""
    sli = {"ratio": {"errors": {"datadog": "sum:e{*}.as_count()"}, "total": {"datadog": "sum:t{*}.as_count()"}}}
    text = _declaration_yaml(sli).replace("provider: datadog", f"provider: {provider}")
    errors = load_paths([write("a.yaml", text)]).errors
    assert any(error.code == "target-backend" for error in errors) == refused, [e.render() for e in errors]
