"""Rendered Argo Rollouts analysis run against a real Prometheus and a real `sloplane serve`.

Nothing here runs Argo itself: the test does what the controller would do with a template (run each
prometheus metric's query, or send the web metric's request with the args filled in) and then
applies the conditions with a Python reading of the small condition grammar the renderer
documents. Healthy traffic must land on success, an outage on failure, and an SLI with no data on
neither (inconclusive, never a pass). The history ends at an aligned "now", so the evaluator, which
decides at the present, sees the same data as the instant queries at `END`.
"""

from __future__ import annotations

import copy
import json
import math
import operator
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
import yaml

from sloplane.declaration.model import Declaration
from sloplane.evaluator.http.auth import new_token
from sloplane.render.argo_rollouts import analysis_templates
from sloplane.render.pipelines import PipelineOptions
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, aligned_now, free_port, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.conftest import ROOT
from tests.servers import wait_until_up

END = aligned_now()
START = END - timedelta(hours=3)
BASE = 0.0005
"""Healthy error ratio: half the 99.9% budget (burn rate 0.5)."""
OUTAGE = timedelta(minutes=30)
GATE = {"rollbackOn": "ticket", "maxBurnRate": 6, "minEvents": 100, "minBudgetRemaining": 10}
"""Every kind of metric: all four window pairs, the analysis-window burn, budget left, minimum events."""
TOKEN_SECRET = ("sloplane-gate-token", "token")
SUCCESS, FAILURE, INCONCLUSIVE = "Successful", "Failed", "Inconclusive"


def _slo(name: str, *, staged: bool = False, provider: str = "prometheus") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service": name,
        "owners": {"team": "sre"},
        "objective": 99.9,
        "window": "1d",
        "sli": {"http": {"metric": "http_requests_total", "selector": {"job": name}}},
        "gate": {**GATE, "analysis": {"provider": provider}},
    }
    if staged:
        spec["stages"] = [
            {"name": "canary", "selector": {"stage": "canary"}},
            {"name": "production", "selector": {"stage": "stable"}},
        ]
    meta = {"apiVersion": "sloplane.dev/v1alpha1", "kind": "ServiceLevelObjective", "metadata": {"name": name}}
    return {**meta, "spec": spec}


DOCUMENTS = [
    _slo("healthy"),
    _slo("outage"),
    _slo("silent"),
    _slo("calm", staged=True),
    _slo("storm", staged=True),
    _slo("recovered"),
]
"""`silent` has no series at all; `storm`'s canary is down while its stable stage is healthy;
`recovered` was down for 20 minutes and has been healthy for the last 10."""


def _traffic(job: str, tail: list[Segment], stage: str | None = None, rate: float = 600.0) -> HttpTraffic:
    before = END - START - sum((segment.duration for segment in tail), timedelta())
    labels = {"job": job} if stage is None else {"job": job, "stage": stage}
    return http_traffic([Segment(before, rate, BASE), *tail], start=START, labels=labels)


TRAFFIC = [
    _traffic("healthy", []),
    _traffic("outage", [Segment(OUTAGE, 600.0, 1.0)]),
    _traffic("recovered", [Segment(timedelta(minutes=20), 600.0, 1.0), Segment(timedelta(minutes=10), 600.0, BASE)]),
    _traffic("calm", [], "stable"),
    _traffic("calm", [], "canary", rate=60.0),
    _traffic("storm", [], "stable"),
    _traffic("storm", [Segment(OUTAGE, 60.0, 1.0)], "canary", rate=60.0),
]


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(Declaration.model_validate(document) for document in DOCUMENTS)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), TRAFFIC) as sandbox:
        yield sandbox


# Argo's side, read in Python: conditions, args, jsonPath

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_NUMERIC = re.compile(r"len\(result\) > 0 && result\[0\] (<=|<|>=|>) (\S+)")
_EQUALS = re.compile(r'result == "([a-z]+)"')


def holds(condition: str, result: Any) -> bool:
    """A condition of the renderer's grammar applied to a result, as Argo's expr would (NaN compares false)."""
    if match := _NUMERIC.fullmatch(condition):
        return len(result) > 0 and _COMPARE[match[1]](result[0], float(match[2]))
    if match := _EQUALS.fullmatch(condition):
        return bool(result == match[1])
    raise AssertionError(f"condition outside the documented grammar: {condition!r}")


def verdict(metric: dict[str, Any], result: Any) -> str:
    """Argo's measurement phase: failed, successful, or neither (inconclusive)."""
    failed, succeeded = holds(metric["failureCondition"], result), holds(metric["successCondition"], result)
    assert not (failed and succeeded), f"{metric['name']}: both conditions hold for {result!r}"
    return FAILURE if failed else SUCCESS if succeeded else INCONCLUSIVE


def instant_query(url: str, query: str) -> list[float]:
    """What Argo's prometheus provider hands the conditions: the vector's values (a scalar as one)."""
    response = requests.post(f"{url}/api/v1/query", data={"query": query, "time": END.timestamp()}, timeout=60)
    body = response.json()
    assert body["status"] == "success", (query, body)
    data = body["data"]
    if data["resultType"] == "scalar":
        return [float(data["result"][1])]
    return [float(item["value"][1]) for item in data["result"]]


def resolve_args(
    template: dict[str, Any], supplied: dict[str, str], secrets: dict[tuple[str, str], str]
) -> dict[str, str]:
    """Template args as an AnalysisRun resolves them: supplied by the Rollout, or read from a Secret."""
    values = {}
    for arg in template["spec"]["args"]:
        secret = arg.get("valueFrom", {}).get("secretKeyRef")
        values[arg["name"]] = secrets[(secret["name"], secret["key"])] if secret else supplied[arg["name"]]
    return values


def substitute(value: Any, args: dict[str, str]) -> Any:
    """`{{args.name}}` replaced everywhere in a JSON-like value."""
    if isinstance(value, str):
        return re.sub(r"\{\{args\.([a-z-]+)\}\}", lambda match: args[match[1]], value)
    if isinstance(value, dict):
        return {key: substitute(item, args) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, args) for item in value]
    return value


def json_path(path: str, body: dict[str, Any]) -> Any:
    """The one jsonPath form the renderer emits: `{$.field}`."""
    match = re.fullmatch(r"\{\$\.([a-zA-Z]+)\}", path)
    assert match, f"jsonPath outside what the renderer documents: {path!r}"
    return body[match[1]]


# the prometheus provider


def _template(fleet: Fleet, slo: str, stage: str | None = None) -> dict[str, Any]:
    name = slo if stage is None else f"{slo}-{stage}"
    templates = analysis_templates(fleet[slo], fleet, PipelineOptions())
    return next(template for template in templates if template["metadata"]["name"] == name)


def _verdicts(prometheus: PrometheusSandbox, template: dict[str, Any]) -> dict[str, str]:
    verdicts = {}
    for metric in template["spec"]["metrics"]:
        result = instant_query(prometheus.url, metric["provider"]["prometheus"]["query"])
        assert all(not math.isnan(value) for value in result), (metric["name"], result)
        verdicts[metric["name"]] = verdict(metric, result)
    return verdicts


METRIC_NAMES = {
    "burn-rate-5m-5m",
    "burn-rate-12m-5m",
    "burn-rate-48m-5m",
    "burn-rate-2h24m-12m",
    "burn-rate-analysis-window",
    "budget-remaining",
}
"""A 1d period scales the workbook windows (1h/5m -> 5m/5m, the floor); the metrics named after them."""


@pytest.mark.parametrize(
    ("slo", "stage", "expected"),
    [
        ("healthy", None, SUCCESS),
        ("outage", None, FAILURE),
        ("silent", None, INCONCLUSIVE),
        ("calm", "canary", SUCCESS),
        ("calm", "production", SUCCESS),
        ("storm", "canary", FAILURE),
        ("storm", "production", SUCCESS),
    ],
)
def test_prometheus_metrics_land_on_the_scenario_verdict(
    prometheus: PrometheusSandbox, fleet: Fleet, slo: str, stage: str | None, expected: str
) -> None:
    verdicts = _verdicts(prometheus, _template(fleet, slo, stage))
    assert verdicts == dict.fromkeys(METRIC_NAMES, expected)


def test_a_window_pair_fails_only_while_both_of_its_windows_burn(prometheus: PrometheusSandbox, fleet: Fleet) -> None:
    """Ten clean minutes after an outage: pairs whose short window is clean pass, as their alerts are quiet.

    Only 2h24m/12m still fires (its 12m short window holds two outage minutes); the 10m analysis
    window is clean; the budget, 20 outage minutes in a 3h history, is spent.
    """
    verdicts = _verdicts(prometheus, _template(fleet, "recovered"))
    assert verdicts == {
        "burn-rate-5m-5m": SUCCESS,
        "burn-rate-12m-5m": SUCCESS,
        "burn-rate-48m-5m": SUCCESS,
        "burn-rate-2h24m-12m": FAILURE,
        "burn-rate-analysis-window": SUCCESS,
        "budget-remaining": FAILURE,
    }


def test_too_few_events_is_inconclusive_not_a_pass(prometheus: PrometheusSandbox, fleet: Fleet) -> None:
    strict = copy.deepcopy(DOCUMENTS[0])
    strict["spec"]["gate"]["minEvents"] = 10**9
    declaration = Declaration.model_validate(strict)
    (template,) = analysis_templates(declaration, fleet, PipelineOptions())
    assert _verdicts(prometheus, template) == dict.fromkeys(METRIC_NAMES, INCONCLUSIVE)


# the web provider, against `sloplane serve`


@pytest.fixture(scope="module")
def evaluator(prometheus: PrometheusSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`sloplane serve` on the same fleet and Prometheus: (its URL, a gate-scope token)."""
    folder = tmp_path_factory.mktemp("serve")
    (folder / "fleet.yaml").write_text(yaml.safe_dump_all(DOCUMENTS, sort_keys=False))
    token, entry = new_token("argo", ["gate"])
    (folder / "tokens.yaml").write_text(yaml.safe_dump({"tokens": [entry.to_dict()]}))
    port = free_port()
    command = [sys.executable, "-m", "sloplane", "serve", str(folder / "fleet.yaml"), "--prometheus", prometheus.url]
    command += ["--tokens", str(folder / "tokens.yaml"), "--port", str(port), "--db", str(folder / "served.db")]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", server)
        yield url, token
    finally:
        server.terminate()
        server.wait(timeout=10)


def _web_template(url: str, slo: str, stage: str | None) -> dict[str, Any]:
    """The web-provider template of a scenario, pointed at the test's evaluator."""
    document = copy.deepcopy(next(d for d in DOCUMENTS if d["metadata"]["name"] == slo))
    document["spec"]["gate"]["analysis"]["provider"] = "web"
    declaration = Declaration.model_validate(document)
    options = PipelineOptions(evaluator_url=url, token_secret=TOKEN_SECRET[0], token_key=TOKEN_SECRET[1])
    templates = analysis_templates(declaration, {slo: declaration}, options)
    name = slo if stage is None else f"{slo}-{stage}"
    return next(template for template in templates if template["metadata"]["name"] == name)


def _measure_web(template: dict[str, Any], token: str) -> tuple[str, str]:
    """Send exactly the request the template describes; (the decision read by jsonPath, the verdict)."""
    args = resolve_args(template, {"revision": "5d8f7c9b6", "rollout": "shop"}, {TOKEN_SECRET: token})
    (metric,) = template["spec"]["metrics"]
    web = substitute(metric["provider"]["web"], args)
    headers = {header["key"]: header["value"] for header in web["headers"]}
    response = requests.request(
        web["method"], web["url"], headers=headers, data=json.dumps(web["jsonBody"]), timeout=web["timeoutSeconds"]
    )
    assert response.status_code == 200, response.text
    decision = json_path(web["jsonPath"], response.json())
    return decision, verdict(metric, decision)


@pytest.mark.parametrize(
    ("slo", "stage", "decision", "expected"),
    [
        ("healthy", None, "pass", SUCCESS),
        ("outage", None, "fail", FAILURE),
        ("silent", None, "inconclusive", INCONCLUSIVE),
        ("calm", "canary", "pass", SUCCESS),
        ("storm", "canary", "fail", FAILURE),
    ],
)
def test_web_metric_asks_the_evaluator(
    evaluator: tuple[str, str], slo: str, stage: str | None, decision: str, expected: str
) -> None:
    url, token = evaluator
    assert _measure_web(_web_template(url, slo, stage), token) == (decision, expected)


def test_web_metric_without_the_token_is_refused(evaluator: tuple[str, str]) -> None:
    url, _ = evaluator
    template = _web_template(url, "healthy", None)
    web = substitute(
        template["spec"]["metrics"][0]["provider"]["web"], {"revision": "r", "rollout": "x", "token": "bad"}
    )
    headers = {header["key"]: header["value"] for header in web["headers"]}
    assert requests.post(web["url"], headers=headers, data=json.dumps(web["jsonBody"]), timeout=30).status_code == 401
