"""Prometheus rules and PrometheusRules: promtool accepts them, the CRD accepts them, tests pass."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloplane.core import names
from sloplane.core.serialize import to_yaml
from sloplane.declaration.model import Declaration
from sloplane.interop import load_paths
from sloplane.render.kubernetes import probe, prometheus_rule
from sloplane.render.options import KubernetesOptions, RenderOptions
from sloplane.render.prometheus import rule_file
from sloplane.render.promtool import promtool_test_file
from sloplane.semantics.recording import recorded_windows
from tests.conftest import EXAMPLES, minimal
from tests.kube import crd_errors


def _fleet(*paths: Path) -> dict[str, Declaration]:
    result = load_paths(list(paths))
    assert result.errors == []
    return {d.name: d for d in result.declarations}


@pytest.fixture(scope="module")
def examples() -> dict[str, Declaration]:
    return _fleet(EXAMPLES)


def _promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False, timeout=600
    )


def _records(rules: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            found.setdefault(rule.get("record") or rule["alert"], []).append(rule)
    return found


# promtool checks every example's rules and runs its generated tests in tests/test_golden.py, on the
# golden files that are byte for byte what `sloplane render` writes for the examples.


@pytest.mark.parametrize("period", ["30d", "28d", "7d"])
def test_hand_written_alert_timings(period: str, tmp_path: Path) -> None:
    source = Path(__file__).parent / "promtool"
    fleet = _fleet(source / f"slo-{period}.yaml")
    (declaration,) = fleet.values()
    (tmp_path / f"{declaration.name}.rules.yaml").write_text(to_yaml(rule_file(declaration, fleet)))
    test = tmp_path / f"alerts-{period}.test.yaml"
    test.write_text((source / test.name).read_text())
    result = _promtool("test", "rules", test.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_rules_and_probes_validate_against_the_crds(examples: dict[str, Declaration]) -> None:
    options = KubernetesOptions(namespace="observability", rule_labels={"release": "kps"})
    probes = 0
    for declaration in examples.values():
        rule = prometheus_rule(declaration, rule_file(declaration, examples), options)
        assert crd_errors(rule, "monitoring.coreos.com_prometheusrules.yaml") == []
        assert rule["metadata"]["name"] == f"sloplane-{declaration.name}"
        assert rule["metadata"]["labels"]["release"] == "kps"
        found = probe(declaration, options)
        if found is not None:
            probes += 1
            assert crd_errors(found, "monitoring.coreos.com_probes.yaml") == []
            assert found["spec"]["targets"]["staticConfig"]["static"] == ["https://admin.example.com/healthz"]
            assert found["spec"]["jobName"] == "blackbox"
    assert probes == 1


def test_crd_validation_catches_a_broken_object(examples: dict[str, Declaration]) -> None:
    declaration = examples["search-latency"]
    rule = prometheus_rule(declaration, rule_file(declaration, examples), KubernetesOptions())
    rule["spec"]["groups"][0]["rules"][0]["expr"] = {"not": "a string"}
    assert crd_errors(rule, "monitoring.coreos.com_prometheusrules.yaml")


def test_every_window_has_its_ratio_and_the_base_window_its_counts(examples: dict[str, Declaration]) -> None:
    declaration = examples["checkout-availability"]
    records = _records(rule_file(declaration, examples))
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        rules = records[f"{names.ERROR_RATIO}{window}"]
        assert [r["labels"]["stage"] for r in rules] == ["canary", "production"]
        assert all(r["labels"]["slo"] == "checkout-availability" for r in rules)
    assert {name for name in records if name.startswith((names.BAD_EVENTS, names.EVENTS))} == {
        "sloplane:bad_events:increase5m",
        "sloplane:events:increase5m",
    }
    one_hour = records["sloplane:error_ratio:rate1h"][1]["expr"]
    assert one_hour == (
        '((sum(increase(http_requests_total{job="checkout",track="stable",code=~"5.."}[1h])) or vector(0)) '
        '/ sum(increase(http_requests_total{job="checkout",track="stable"}[1h]))) >= 0'
    )
    period = records[names.ERROR_RATIO_PERIOD][0]["expr"]
    assert period.startswith("(sum_over_time(sloplane:bad_events:increase5m{")
    assert "[30d]) / sum_over_time(sloplane:events:increase5m{" in period


def test_alerts_one_per_window_pair_split_by_deployment_signal(examples: dict[str, Declaration]) -> None:
    declaration = examples["checkout-availability"]
    alerts = _records(rule_file(declaration, examples))[names.ALERT]
    assert len(alerts) == 2 * 4 * 2  # stages x window pairs x during_deployment
    production = [a for a in alerts if a["labels"]["stage"] == "production"]
    pairs = {(a["labels"]["long_window"], a["labels"]["short_window"], a["labels"]["severity"]) for a in production}
    assert pairs == {("1h", "5m", "page"), ("6h", "30m", "page"), ("1d", "2h", "ticket"), ("3d", "6h", "ticket")}
    fast = next(
        a for a in production if a["labels"]["long_window"] == "1h" and a["labels"]["during_deployment"] == "true"
    )
    assert fast["labels"]["team"] == "payments" and fast["labels"]["service"] == "checkout"
    assert "> 0.0144 and" in fast["expr"] and fast["expr"].endswith(
        'and on() ((sum(rollout_info{rollout="checkout",phase="Progressing"})) > 0)'
    )
    assert fast["annotations"]["runbook_url"] == "https://runbooks.example.com/checkout/availability"
    assert fast["annotations"]["dashboard"] == "/d/slo-checkout-availability/checkout-availability?var-stage=production"
    assert "43.2 min of full outage" in fast["annotations"]["description"]
    canary = next(a for a in alerts if a["labels"]["stage"] == "canary" and a["labels"]["long_window"] == "1h")
    assert "> 0.072 and" in canary["expr"]  # the canary's own 99.5% objective


def test_tiers_switch_off_and_unreachable_tiers_are_not_rendered(write: Any) -> None:
    text = minimal(objective=90) + "  alerting: {ticket: false}\n"
    fleet = _fleet(write("a.yaml", text))
    alerts = _records(rule_file(fleet["checkout-availability"], fleet))[names.ALERT]
    assert [a["labels"]["long_window"] for a in alerts] == ["6h"]  # 1h/5m needs 144% errors at 90%


def test_composites_read_their_parts_at_the_composites_windows(examples: dict[str, Declaration]) -> None:
    journey = examples["purchase-journey"]
    records = _records(rule_file(journey, examples))
    worst = records["sloplane:error_ratio:rate1h"][0]["expr"]
    assert worst.startswith('max(sloplane:error_ratio:rate1h{service="search",slo="search-latency"} or ')
    assert 'stage="production"' in worst
    # search-latency is a 28d SLO but records the 30d windows its composite reads
    windows = recorded_windows(examples)["search-latency"]
    assert timedelta(hours=1) in windows and timedelta(minutes=56) in windows
    search = _records(rule_file(examples["search-latency"], examples))
    assert "sloplane:error_ratio:rate1h" in search and "sloplane:error_ratio:rate56m" in search


def test_timeslices_average_one_sample_per_slice(examples: dict[str, Declaration]) -> None:
    records = _records(rule_file(examples["admin-console-probe"], examples))
    (slices,) = records["sloplane:bad_slices:slice5m"]
    assert slices["expr"].endswith("and on() (vector(time() % 300) < 60)"), slices["expr"]
    assert records[names.ERROR_RATIO_PERIOD][0]["expr"].startswith("avg_over_time(sloplane:bad_slices:slice5m{")


def test_archived_slos_render_nothing(write: Any) -> None:
    fleet = _fleet(write("a.yaml", minimal() + "  lifecycle: archived\n"))
    assert rule_file(fleet["checkout-availability"], fleet) == {"groups": []}


def test_dashboard_links_use_the_grafana_url(examples: dict[str, Declaration]) -> None:
    declaration = examples["search-latency"]
    rules = rule_file(declaration, examples, RenderOptions(grafana_url="https://grafana.example.com/"))
    alert = _records(rules)[names.ALERT][0]
    assert alert["annotations"]["dashboard"] == "https://grafana.example.com/d/slo-search-latency/search-latency"


def test_rule_files_are_deterministic(examples: dict[str, Declaration]) -> None:
    first = [to_yaml(rule_file(d, examples)) for d in examples.values()]
    second = [to_yaml(rule_file(d, examples)) for d in _fleet(EXAMPLES).values()]
    assert first == second
    assert "&id" not in "".join(first)  # no YAML anchors: every rule reads on its own
    assert yaml.safe_load(first[0])["groups"]


TIERED = (
    minimal("orders-availability")
    + """\
  window: 28d
  alerting:
    name: OrdersErrorBudgetBurn
    labels: {channel: "#orders"}
    pageAlert:
      name: OrdersPage
      labels: {severity: critical, routing_key: orders-oncall}
      annotations: {playbook: "https://runbooks.example.com/orders"}
    ticketAlert:
      labels: {severity: warning}
    windows:
      - {tier: page, long: 1h, short: 5m, factor: 13.44, for: 2m}
      - {tier: page, long: 6h, factor: 5.6}
      - {tier: ticket, long: 3d, short: 6h, factor: 1}
"""
)


def test_declared_windows_names_labels_and_for_reach_the_rules_and_their_promtool_tests(tmp_path: Path) -> None:
    """A migration keeps its routing: per-tier names and labels, its own windows and `for:`; the generated
    promtool tests (which know about `for:`) pass on the rules."""
    (tmp_path / "slo.yaml").write_text(TIERED)
    fleet = _fleet(tmp_path / "slo.yaml")
    declaration = fleet["orders-availability"]
    rules = rule_file(declaration, fleet)
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert [(a["alert"], a["labels"]["long_window"], a["labels"]["short_window"], a.get("for")) for a in alerts] == [
        ("OrdersPage", "1h", "5m", "2m"),
        ("OrdersPage", "6h", "30m", None),
        ("OrdersErrorBudgetBurn", "3d", "6h", None),
    ]
    page, _, ticket = alerts
    assert page["labels"]["severity"] == "critical" and page["labels"]["routing_key"] == "orders-oncall"
    assert page["labels"]["channel"] == "#orders" and ticket["labels"]["severity"] == "warning"
    assert page["annotations"]["playbook"] == "https://runbooks.example.com/orders"
    # 13.44 x 0.1% budget: the page fires above an error ratio of 1.344% over both 1h and 5m.
    assert page["expr"].endswith("> 0.01344")
    (tmp_path / "slo.rules.yaml").write_text(to_yaml(rules))
    test = promtool_test_file(declaration, fleet, "slo.rules.yaml")
    assert test is not None
    (tmp_path / "slo.test.yaml").write_text(to_yaml(test))
    checked = _promtool("check", "rules", "slo.rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "slo.test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
