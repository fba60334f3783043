"""Spinnaker renderings: the webhook gate stage replayed as Orca would run it, and the Kayenta config.

Orca is not here, so the replay does what its webhook tasks do with the rendered stage: fill the
expressions, send `method` to `url` with `customHeaders` and `payload`, then (getMethod) GET the same
URL, read `statusJsonPath` and map the value through the status lists case-insensitively, anything
unlisted meaning "keep polling" (orca-webhook's MonitorWebhookTask). It runs against a real
`sloplane serve` on a real Prometheus (the fleet and history of tests/test_ci_gates.py). The
Kayenta config's PromQL is run against the same Prometheus with each scope filled in.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonpath_ng
import pytest
import requests

from sloplane.interop import load_declarations
from sloplane.render.gates import gate_schedule
from sloplane.render.pipelines import PipelineOptions
from sloplane.render.spinnaker import (
    JUDGE,
    PRECONFIGURED_TYPE,
    PROMQL_PREFIX,
    SLO_PARAMETER,
    STAGE_PARAMETER,
    CanaryOptions,
    SpinnakerOptions,
    canary_config,
    canary_scope,
    canary_stage,
    preconfigured_webhook,
    webhook_stage,
)
from sloplane.semantics.subjects import Fleet
from tests.conftest import EXAMPLES
from tests.evaluator_data import load_fleet
from tests.test_ci_gates import FLEET, Served, declaration, serve

REVISION = "c0ffee"
EXECUTION = "01HSPINNAKEREXECUTION"
SPEL = {"${trigger['hash'] ?: execution.id}": REVISION, "${execution.id}": EXECUTION}
"""The expressions the stage uses, and what Orca would make of them for one git-triggered run."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("spinnaker"))


@pytest.fixture(scope="module")
def example_fleet() -> Fleet:
    return Fleet(load_declarations([EXAMPLES]))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), FLEET)


def fill(value: Any, expressions: Mapping[str, str] = SPEL) -> Any:
    """Orca's expression evaluation, for the expressions the stage uses; any other one is an error."""
    if isinstance(value, dict):
        return {key: fill(item, expressions) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, expressions) for item in value]
    if isinstance(value, str):
        for expression, result in expressions.items():
            value = value.replace(expression, result)
        assert "${" not in value, f"an expression Orca would evaluate but the test does not know: {value}"
    return value


def orca_status(stage: Mapping[str, Any], body: Any) -> str:
    """MonitorWebhookTask's verdict on one status answer: SUCCEEDED, TERMINAL, CANCELED or RUNNING."""
    (match,) = jsonpath_ng.parse(stage["statusJsonPath"]).find(body)
    statuses: dict[str, str] = {}
    for key, status in (
        ("successStatuses", "SUCCEEDED"),
        ("canceledStatuses", "CANCELED"),
        ("terminalStatuses", "TERMINAL"),
    ):
        statuses.update({name.strip().upper(): status for name in stage.get(key, "").split(",") if name.strip()})
    return statuses.get(str(match.value).upper(), "RUNNING")


def replay(stage: Mapping[str, Any]) -> tuple[int, str]:
    """The create call's HTTP status, then the monitor's verdict on one poll of the status URL."""
    filled = fill(stage)
    body = {"json": filled["payload"]} if "payload" in filled else {}
    created = requests.request(filled["method"], filled["url"], headers=filled["customHeaders"], timeout=30, **body)
    assert created.status_code not in filled["failFastStatusCodes"], created.text
    assert filled["statusUrlResolution"] == "getMethod"
    polled = requests.get(filled["url"], headers=filled["customHeaders"], timeout=30)
    assert polled.status_code == 200, polled.text
    return created.status_code, orca_status(filled, polled.json())


def stage_for(fleet: Fleet, served: Served, slo: str, stage: str | None = None) -> dict[str, Any]:
    options = PipelineOptions(evaluator_url=served.url)
    return webhook_stage(fleet[slo], options, stage, SpinnakerOptions(authorization=f"Bearer {served.token}"))


# --- the webhook stage -----------------------------------------------------------------------------


def test_the_webhook_stage_has_the_fields_orca_reads(fleet: Fleet) -> None:
    stage = webhook_stage(fleet["healthy"])
    schedule = gate_schedule(fleet["healthy"])
    assert json.loads(json.dumps(stage)) == stage, "the stage is plain JSON"
    assert (stage["type"], stage["method"], stage["waitForCompletion"]) == ("webhook", "POST", True)
    assert stage["url"] == (
        PipelineOptions().gate_url + "?slo=healthy&revision=${trigger['hash'] ?: execution.id}&pipeline=${execution.id}"
    )
    assert stage["payload"] == {
        "slo": "healthy",
        "revision": "${trigger['hash'] ?: execution.id}",
        "pipeline": "${execution.id}",
    }
    assert stage["customHeaders"]["Authorization"] == "Bearer encrypted:k8s!n:sloplane-gate-token!k:token"
    assert (stage["statusUrlResolution"], stage["statusJsonPath"]) == ("getMethod", "$.decision")
    assert (stage["successStatuses"], stage["terminalStatuses"]) == ("pass", "fail")
    assert "canceledStatuses" not in stage, "inconclusive and error must keep the stage polling"
    assert stage["waitBeforeMonitor"] == schedule.initial_delay.total_seconds() == 600
    assert stage["overrideTimeout"] is True
    assert stage["stageTimeoutMs"] == schedule.timeout.total_seconds() * 1000 == 20 * 60 * 1000


def test_an_async_gate_posts_once_and_does_not_wait(fleet: Fleet) -> None:
    stage = webhook_stage(fleet["background"])
    assert stage["waitForCompletion"] is False
    assert not {"statusUrlResolution", "statusJsonPath", "successStatuses", "stageTimeoutMs"} & set(stage)


def test_a_stage_of_a_staged_slo_is_asked_by_name_and_pipeline_position_is_kept(fleet: Fleet) -> None:
    spinnaker = SpinnakerOptions(ref_id="gate-canary", requisite_stage_ref_ids=("deploy-canary",))
    stage = webhook_stage(fleet["shop"], stage="canary", spinnaker=spinnaker)
    assert "?slo=shop&stage=canary&" in stage["url"] and stage["payload"]["stage"] == "canary"
    assert (stage["refId"], stage["requisiteStageRefIds"]) == ("gate-canary", ["deploy-canary"])
    assert stage["name"] == "SLO gate: shop/canary"


@pytest.mark.parametrize(
    ("slo", "stage", "verdict"),
    [
        ("healthy", None, "SUCCEEDED"),
        ("outage", None, "TERMINAL"),
        ("quiet", None, "RUNNING"),
        ("shop", "canary", "TERMINAL"),
    ],
)
def test_the_replayed_webhook_stage_ends_as_the_gate_decides(
    fleet: Fleet, served: Served, slo: str, stage: str | None, verdict: str
) -> None:
    created, status = replay(stage_for(fleet, served, slo, stage))
    assert created == 200
    assert status == verdict
    recorded = served.decisions(slo, REVISION)
    assert len(recorded) == 2, "the POST and the poll are both recorded"
    assert {entry["request"]["pipeline"] for entry in recorded} == {EXECUTION}
    assert {entry["stage"] for entry in recorded} == {stage}


def test_a_wrong_token_fails_the_stage_at_once(fleet: Fleet, served: Served) -> None:
    stage = fill(webhook_stage(fleet["healthy"], PipelineOptions(evaluator_url=served.url)))
    answer = requests.post(stage["url"], json=stage["payload"], headers=stage["customHeaders"], timeout=30)
    assert answer.status_code in stage["failFastStatusCodes"]


def test_the_preconfigured_webhook_keeps_the_token_in_orca() -> None:
    entry = preconfigured_webhook(PipelineOptions(token_secret="gate", token_key="t"))
    assert entry["type"] == PRECONFIGURED_TYPE and entry["enabled"] is True
    assert entry["customHeaders"]["Authorization"] == ["Bearer encrypted:k8s!n:gate!k:t"]
    assert [parameter["name"] for parameter in entry["parameters"]] == ["slo", "stage"]
    assert (entry["statusUrlResolution"], entry["successStatuses"], entry["terminalStatuses"]) == (
        "getMethod",
        "pass",
        "fail",
    )


@pytest.mark.parametrize(
    ("slo", "stage", "verdict"), [("healthy", "", "SUCCEEDED"), ("shop", "&stage=canary", "TERMINAL")]
)
def test_the_replayed_preconfigured_webhook_asks_with_or_without_a_stage(
    served: Served, slo: str, stage: str, verdict: str
) -> None:
    entry = preconfigured_webhook(PipelineOptions(evaluator_url=served.url))
    entry["customHeaders"] = {"Authorization": f"Bearer {served.token}"}
    revision = "preconfigured"
    expressions = {SLO_PARAMETER: slo, STAGE_PARAMETER: stage, "${trigger['hash'] ?: execution.id}": revision}
    filled = fill(entry, {**expressions, "${execution.id}": EXECUTION})
    created, status = replay(filled)
    assert (created, status) == (200, verdict)
    recorded = served.decisions(slo, revision)
    assert [entry["stage"] for entry in recorded] == [stage.removeprefix("&stage=") or None] * 2


# --- Kayenta -----------------------------------------------------------------------------------------


def test_the_canary_config_has_what_kayenta_requires(fleet: Fleet) -> None:
    config = canary_config(fleet["shop"], fleet)
    assert config is not None
    assert {"name", "description", "configVersion", "applications", "judge", "metrics", "classifier"} <= set(config)
    assert config["judge"] == {"name": JUDGE, "judgeConfigurations": {}}
    assert config["applications"] == ["shop"]
    (metric,) = config["metrics"]
    assert metric["scopeName"] == "default" and metric["groups"] == ["shop"]
    assert metric["query"]["type"] == "prometheus" and metric["query"]["metricName"]
    assert metric["query"]["customInlineTemplate"].startswith(PROMQL_PREFIX + "(")
    assert 'track="${scope}"' in metric["query"]["customInlineTemplate"]
    assert metric["analysisConfigurations"]["canary"] == {
        "direction": "increase",
        "nanStrategy": "remove",
        "critical": True,
        "mustHaveData": True,
    }
    assert config["classifier"] == {
        "groupWeights": {"shop": 100.0},
        "scoreThresholds": {"marginal": 75.0, "pass": 95.0},
    }


def range_mean(prometheus: str, query: str) -> float:
    """The mean of a range query over the last hour, as Kayenta fetches one scope (one series)."""
    now = requests.get(f"{prometheus}/api/v1/query", params={"query": "time()"}, timeout=10).json()["data"]["result"][1]
    params = {"query": query, "start": float(now) - 3000, "end": float(now), "step": 60}
    answer = requests.get(f"{prometheus}/api/v1/query_range", params=params, timeout=30).json()
    (series,) = answer["data"]["result"]
    values = [float(value) for _, value in series["values"]]
    return sum(values) / len(values)


def test_the_canary_metric_reads_each_scope_from_prometheus(fleet: Fleet, served: Served) -> None:
    config = canary_config(fleet["shop"], fleet)
    assert config is not None
    (metric,) = config["metrics"]
    template = metric["query"]["customInlineTemplate"].removeprefix(PROMQL_PREFIX)
    scope = canary_scope(fleet["shop"])
    assert (scope.control, scope.experiment) == ("stable", "canary")
    canary = range_mean(served.prometheus, template.replace("${scope}", scope.experiment))
    stable = range_mean(served.prometheus, template.replace("${scope}", scope.control))
    assert canary == pytest.approx(0.05, rel=1e-6)
    assert stable == pytest.approx(0.0005, rel=1e-6)


def test_the_canary_stage_runs_the_config_over_the_gate_schedule(fleet: Fleet) -> None:
    stage = canary_stage(fleet["shop"], "shop-sloplane")
    config = stage["canaryConfig"]
    assert stage["type"] == "kayentaCanary" and config["canaryConfigId"] == "shop-sloplane"
    assert config["scopes"] == [
        {"scopeName": "default", "controlScope": "stable", "experimentScope": "canary", "step": 60}
    ]
    assert (config["beginCanaryAnalysisAfterMins"], config["lifetimeDuration"]) == ("10", "PT10M")
    assert config["scoreThresholds"] == {"marginal": "75.0", "pass": "95.0"}


def test_an_unstaged_slo_gets_a_config_only_when_told_its_scope_label(fleet: Fleet) -> None:
    assert canary_config(fleet["healthy"], fleet) is None, "no stages to tell canary from baseline"
    with pytest.raises(ValueError, match="give the label that tells canary from baseline"):
        canary_scope(fleet["healthy"])
    config = canary_config(fleet["healthy"], fleet, canary=CanaryOptions(scope_label="pod_template_hash"))
    assert config is not None
    (metric,) = config["metrics"]
    assert '{job="healthy",pod_template_hash="${scope}"' in metric["query"]["customInlineTemplate"]


DATADOG_ONLY = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: traced}
spec:
  service: traced
  owners: {team: sre}
  objective: 99.9
  targets: [datadog]
  sli:
    ratio:
      errors: {datadog: "sum:trace.errors{service:traced}.as_count()"}
      total: {datadog: "sum:trace.hits{service:traced}.as_count()"}
"""


def test_what_kayenta_cannot_judge_renders_no_config(tmp_path: Path) -> None:
    stages = textwrap.dedent(
        """\
        stages:
          - {name: canary, selector: {track: canary, pool: a}}
          - {name: production, selector: {track: stable, pool: b}}
        """
    )
    journey = COMPOSITE.format(method="weighted")
    text = "---\n".join(
        [declaration("healthy"), declaration("outage"), declaration("split", stages), DATADOG_ONLY, journey]
    )
    fleet = load_fleet(tmp_path, text)
    assert canary_config(fleet["traced"], fleet) is None, "no PromQL to give Kayenta"
    partial = {name: slo for name, slo in fleet.items() if name != "outage"}
    assert canary_config(fleet["journey"], partial) is None, "a composite judged on part of it would mislead"
    assert canary_config(fleet["split"], fleet) is None, "two labels differ: neither alone separates the scopes"
    assert canary_config(fleet["split"], fleet, canary=CanaryOptions(scope_label="track")) is not None


def test_every_example_renders_a_stage_and_a_config_or_none(example_fleet: Fleet) -> None:
    for name, slo in example_fleet.items():
        assert json.loads(json.dumps(webhook_stage(slo)))["payload"]["slo"] == name
        config = canary_config(slo, example_fleet)
        assert config is None or sum(config["classifier"]["groupWeights"].values()) == 100.0
    assert canary_config(example_fleet["checkout-availability"], example_fleet) is not None
    assert canary_config(example_fleet["checkout-deploy-success"], example_fleet) is None, "rollouts, not traffic"


COMPOSITE = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {{name: journey}}
spec:
  service: journey
  owners: {{team: sre}}
  objective: 99
  window: 1d
  sli: {{composite: {{method: {method}, components: [{{slo: healthy, weight: 1}}, {{slo: outage, weight: 3}}]}}}}
"""


@pytest.mark.parametrize(
    ("method", "weights", "critical"),
    [
        ("weighted", {"healthy": 25.0, "outage": 75.0}, [False, False]),
        ("worstOf", {"healthy": 50.0, "outage": 50.0}, [True, True]),
    ],
)
def test_a_composite_becomes_one_weighted_group_per_component(
    tmp_path: Path, method: str, weights: dict[str, float], critical: list[bool]
) -> None:
    text = "---\n".join([declaration("healthy"), declaration("outage"), COMPOSITE.format(method=method)])
    fleet = load_fleet(tmp_path, text)
    options = CanaryOptions(scope_label="version", window=timedelta(minutes=2))
    config = canary_config(fleet["journey"], fleet, canary=options)
    assert config is not None
    assert config["classifier"]["groupWeights"] == weights
    assert sum(config["classifier"]["groupWeights"].values()) == 100.0
    assert [metric["analysisConfigurations"]["canary"]["critical"] for metric in config["metrics"]] == critical
    assert all("[2m]" in metric["query"]["customInlineTemplate"] for metric in config["metrics"])


def test_stages_that_differ_in_several_labels_need_the_scope_label(tmp_path: Path) -> None:
    stages = textwrap.dedent(
        """\
        stages:
          - {name: canary, selector: {track: canary, pool: a}}
          - {name: production, selector: {track: stable, pool: b}}
        """
    )
    fleet = load_fleet(tmp_path, declaration("split", stages))
    with pytest.raises(ValueError, match=r"differ in \['pool', 'track'\]"):
        canary_scope(fleet["split"])
    scope = canary_scope(fleet["split"], CanaryOptions(scope_label="track"))
    assert (scope.label, scope.control, scope.experiment, scope.common) == ("track", "stable", "canary", {})
