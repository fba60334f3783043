"""OpenSLO import (v1, v2alpha) and export, and the round trip for every example."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloplane.declaration.model import BudgetingMethod, CalendarUnit, Declaration
from sloplane.declaration.writer import dump_yaml
from sloplane.interop import load_paths
from sloplane.interop.openslo.exporter import export_openslo, shorthand
from tests.conftest import EXAMPLES, run_cli

DATA = Path(__file__).parent / "data" / "openslo"


def _load(*names: str) -> dict[str, Declaration]:
    result = load_paths([DATA / name for name in names])
    assert result.errors == [], [d.render() for d in result.errors]
    return {slo.name: slo.declaration for slo in result.slos}


def test_v1_with_references_across_documents() -> None:
    slo = _load("v1-refs.yaml")["web-availability"]
    assert slo.spec.service == "web" and slo.spec.owners.team == "storefront"
    assert slo.metadata.labels == {"team": "storefront", "region": "eu,us"}
    assert slo.metadata.annotations == {"sloplane.dev/display-name": "Web availability"}
    assert slo.spec.objective == 99.9 and slo.spec.window.period.days == 28
    ratio = slo.spec.sli.ratio
    assert ratio is not None and ratio.good is not None
    assert ratio.good.prometheus == 'sum(increase(http_requests_total{job="web",code!~"5.."}[{{window}}]))'
    assert ratio.total.prometheus == 'sum(increase(http_requests_total{job="web"}[{{window}}]))'
    assert (slo.spec.alerting.page, slo.spec.alerting.ticket) == (True, False)


def test_v1_inline_objectives_calendar_and_timeslices() -> None:
    slos = _load("v1-inline.yaml")
    assert sorted(slos) == ["api-latency-relaxed", "api-latency-strict"]
    strict, relaxed = slos["api-latency-strict"].spec, slos["api-latency-relaxed"].spec
    assert strict.objective == 99 and relaxed.objective == 95
    assert strict.window.calendar is CalendarUnit.MONTH and strict.window.time_zone == "Europe/Berlin"
    assert strict.budgeting_method is BudgetingMethod.TIMESLICES
    assert strict.timeslice is not None and strict.timeslice.target == 95
    assert relaxed.timeslice is not None and relaxed.timeslice.window.total_seconds() == 300
    assert strict.sli.ratio is not None and strict.sli.ratio.total.prometheus == (
        "sum(increase(api_duration_seconds_count[{{window}}]))"
    )


def test_threshold_and_raw_metrics() -> None:
    slos = _load("v1-threshold-raw.yaml")
    threshold = slos["queue-age"].spec.sli.threshold
    assert threshold is not None and threshold.op.value == "lte" and threshold.value == 300
    assert threshold.query.prometheus == "max(queue_oldest_message_age_seconds)"
    raw = slos["dd-success"].spec.sli.raw
    assert raw is not None and raw.error_ratio.datadog == "1 - (avg:ingest.success_ratio{env:prod})"
    assert slos["dd-success"].spec.window.period.days == 30


def test_v2alpha_names_and_data_sources() -> None:
    result = load_paths([DATA / "v2alpha.yaml"])
    slo = result.slos[0].declaration
    assert slo.spec.service == "web" and slo.spec.window.period.days == 7
    ratio = slo.spec.sli.ratio
    assert ratio is not None and ratio.errors is not None
    assert ratio.errors.prometheus == 'sum(increase(http_requests_total{component="web",code=~"5.."}[{{window}}]))'
    # an aggregated counter cannot take a range selector: wrapped in a subquery, with a warning
    assert ratio.total.prometheus == 'sum(increase((sum(http_requests_total{component="web"}))[{{window}}:]))'
    (subquery,) = [d for d in result.warnings if "subquery" in d.message]
    assert subquery.position.line == 28
    # where the data source lives is the evaluator's --prometheus, not the file's: said at each use, not ignored
    connections = [d.position.line for d in result.warnings if "connectionDetails are not used" in d.message]
    assert connections == [25, 29] and len(result.warnings) == 3


def test_composites_refer_to_standalone_slos_and_create_the_rest() -> None:
    slos = _load("composite.yaml")
    assert sorted(slos) == ["journey", "journey-browse", "payments"]
    composite = slos["journey"].spec.sli.composite
    assert composite is not None
    assert [(c.slo, c.weight) for c in composite.components] == [("journey-browse", 1.0), ("payments", 3.0)]
    assert slos["journey"].spec.objective == pytest.approx((99 + 3 * 99.9) / 4)
    assert slos["journey-browse"].spec.objective == 99


def test_errors_point_into_the_openslo_document(write: Any) -> None:
    path = write(
        "bad.yaml",
        """\
        apiVersion: openslo/v1
        kind: SLO
        metadata: {name: broken}
        spec:
          service: web
          indicatorRef: missing-sli
          budgetingMethod: Occurrences
          objectives:
            - target: 0.99
              tagret: 0.9
        """,
    )
    messages = [(d.position.line, d.message) for d in load_paths([path]).errors]
    assert (10, "unknown key 'tagret' (did you mean 'target'?)") in messages
    path.write_text(path.read_text().replace("      tagret: 0.9\n", ""))
    (error,) = load_paths([path]).errors
    assert error.position.line == 6 and "unknown SLI 'missing-sli'" in error.message


def test_every_example_survives_export_and_import(tmp_path: Path) -> None:
    original = load_paths([EXAMPLES])
    exported = export_openslo(original.declarations)
    (tmp_path / "exported.yaml").write_text(dump_yaml(d for docs in exported.values() for d in docs))
    back = load_paths([tmp_path])
    assert back.diagnostics == []
    assert {s.name: s.declaration for s in back.slos} == {s.name: s.declaration for s in original.slos}


def test_export_writes_openslo_natively_and_annotates_only_the_rest() -> None:
    slos = {s.name: s.declaration for s in load_paths([EXAMPLES]).slos}
    (slo,) = export_openslo([slos["payments-availability"]])["payments-availability"]
    sli = slo["spec"]["indicator"]  # inline, as most OpenSLO files write it
    assert slo["apiVersion"] == "openslo/v1" and sli["metadata"] == {"name": "payments-availability"}
    assert slo["spec"]["objectives"] == [{"target": 0.9995}]
    assert sli["spec"]["ratioMetric"]["bad"]["metricSource"]["type"] == "Prometheus"
    assert [p["spec"]["conditions"][0]["spec"]["condition"]["threshold"] for p in slo["spec"]["alertPolicies"]] == [
        14.4,
        6.0,
        3.0,
        1.0,
    ]
    # both backends' queries cannot fit one OpenSLO metric source: the SLI travels as an annotation
    assert set(slo["metadata"]["annotations"]) == {
        "sloplane.dev/owners",
        "sloplane.dev/sli",
        "sloplane.dev/targets",
        "sloplane.dev/tier",
    }


@pytest.mark.parametrize(("days", "text"), [(30, "30d"), (0.25, "6h"), (84 / 1440, "84m")])
def test_shorthand(days: float, text: str) -> None:
    assert shorthand(timedelta(days=days)) == text


# --- OpenSLO as real files write it ------------------------------------------------------------------

SEQUENCE = """\
- apiVersion: openslo/v1
  kind: Service
  metadata: {name: checkout}
  spec: {description: The checkout service}
- apiVersion: openslo/v1
  kind: SLO
  metadata:
    name: checkout-availability
    labels: {owner: [payments, finance], region: [eu, us], tier: [gold]}
  spec:
    service: checkout
    budgetingMethod: Occurrences
    objectives: [{target: 0.999}]
    alertPolicies:
    indicator:
      metadata: {name: checkout-requests}
      spec:
        ratioMetric:
          counter: true
          good: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total{code!~"5.."}'}}}
          total: {metricSource: {type: Prometheus, spec: {query: http_requests_total}}}
"""


def test_a_sequence_of_objects_null_policies_and_multi_valued_labels(write: Any) -> None:
    """How the Go SDK writes files: a list of objects; `alertPolicies:` with no value is optional."""
    result = load_paths([write("sequence.yaml", SEQUENCE)])
    assert result.errors == [], [d.render() for d in result.errors]
    (slo,) = result.declarations
    assert slo.spec.owners.team == "payments"  # the usual owner label, its first value
    assert slo.metadata.labels["tier"] == "gold" and slo.metadata.labels["region"] == "eu,us"
    warnings = {(d.position.line, d.message.split(":")[0]) for d in result.warnings}
    assert (9, "several owners") in warnings
    assert any(line == 9 and "label 'region' has 2 values" in message for line, message in warnings)


def test_a_file_of_referenced_objects_alone_is_valid_and_declares_nothing(write: Any) -> None:
    path = write("service.yaml", SEQUENCE.split("- apiVersion: openslo/v1\n  kind: SLO", maxsplit=1)[0])
    result = load_paths([path])
    assert result.diagnostics == [] and result.declarations == []


def test_names_are_rfc1123_and_every_problem_is_reported(write: Any) -> None:
    path = write(
        "bad.yaml",
        """\
        apiVersion: openslo/v1
        kind: Service
        metadata: {name: example service}
        spec: {}
        ---
        apiVersion: openslo/v1
        kind: SLO
        metadata: {name: Checkout}
        spec:
          service: checkout
          budgetingMethod: Occurrences
          objectives: [{target: 1.5}]
        """,
    )
    messages = sorted((d.position.line, d.message) for d in load_paths([path]).errors)
    rule = "is not an RFC 1123 name (at most 63 lowercase letters, digits and '-')"
    assert messages[:2] == [(3, f"'example service' {rule}"), (8, f"'Checkout' {rule}")]
    assert any(line == 12 and "less than 1" in message for line, message in messages)


def test_op_on_a_ratio_objective_is_refused_at_its_line(write: Any) -> None:
    text = POLICIES.replace("objectives: [{target: 0.995}]", "objectives: [{target: 0.995, op: gt}]")
    (error,) = load_paths([write("op.yaml", text)]).errors
    assert error.position.line == 8 and "'op' applies to a thresholdMetric" in error.message


POLICIES = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: orders-availability, labels: {squad: orders}}
spec:
  service: orders
  budgetingMethod: Occurrences
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{target: 0.995}]
  indicator:
    metadata: {name: orders-requests}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: 'orders_total{outcome="error"}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: orders_total}}}
  alertPolicies:
    - kind: AlertPolicy
      metadata: {name: orders-fast}
      spec:
        conditions:
          - kind: AlertCondition
            metadata: {name: orders-fast-burn}
            spec:
              severity: critical
              condition: {kind: burnrate, op: gte, threshold: 10, lookbackWindow: 2h, alertAfter: 5m}
        notificationTargets:
          - targetRef: orders-pager
    - alertPolicyRef: orders-slow
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {name: orders-slow}
spec:
  conditions:
    - conditionRef: orders-slow-burn
---
apiVersion: openslo/v1
kind: AlertCondition
metadata: {name: orders-slow-burn}
spec:
  severity: warning
  condition: {kind: burnrate, op: gt, threshold: 1.5, lookbackWindow: 1d}
"""


def test_alert_policies_become_the_slos_own_burn_rate_alerts(write: Any) -> None:
    """A burn-rate condition is an alert: threshold the factor, lookbackWindow the long window, alertAfter
    its `for:`, severity the tier; the first notification target the receiver. Owner from `squad`."""
    result = load_paths([write("orders.yaml", POLICIES)])
    assert result.errors == [], [d.render() for d in result.errors]
    (slo,) = result.declarations
    alerting = slo.spec.alerting
    assert slo.spec.owners.team == "orders"
    assert (alerting.page, alerting.ticket) == (True, True)
    alerts = [(a.tier.value, a.long_window, a.short_window, a.factor, a.pending) for a in slo.spec.burn_rate_alerts()]
    assert alerts == [
        ("page", timedelta(hours=2), timedelta(minutes=10), 10.0, timedelta(minutes=5)),
        ("ticket", timedelta(days=1), timedelta(hours=2), 1.5, timedelta(0)),
    ]
    assert (alerting.routing.deployment, alerting.routing.background) == ("orders-pager", "orders-pager")


def test_export_writes_counters_as_counters_and_windowed_queries_as_sloth_reads_them(write: Any) -> None:
    """A counter goes out as `counter: true` and its selector (no sloplane placeholder in it); a query that
    is already an aggregate over the window keeps it as `{{.window}}` with `counter: false`."""
    imported = load_paths([write("orders.yaml", POLICIES)]).declarations
    sli = export_openslo(imported)["orders-availability"][0]["spec"]["indicator"]
    ratio = sli["spec"]["ratioMetric"]
    assert ratio["counter"] is True
    assert ratio["bad"]["metricSource"]["spec"]["query"] == 'orders_total{outcome="error"}'
    assert ratio["total"]["metricSource"]["spec"]["query"] == "orders_total"
    examples = {s.name: s.declaration for s in load_paths([EXAMPLES]).slos}
    exported = export_openslo([examples["search-latency"]])["search-latency"]
    queries = [d["spec"]["indicator"]["spec"]["ratioMetric"] for d in exported]
    for ratio in queries:
        texts = [part["metricSource"]["spec"]["query"] for key, part in ratio.items() if key != "counter"]
        assert ratio["counter"] is False and all("{{window}}" not in text for text in texts)
        assert any("{{.window}}" in text for text in texts)


def test_export_keeps_the_version_the_slos_were_written_in(tmp_path: Path) -> None:
    exported = run_cli("export", "openslo", DATA / "v2alpha.yaml", "--out", tmp_path / "out")
    assert exported.code == 0, exported.stderr
    documents = [d for path in sorted((tmp_path / "out").iterdir()) for d in yaml.safe_load_all(path.read_text())]
    assert {d["apiVersion"] for d in documents} == {"openslo.com/v2alpha"}
    assert all("metricSource" not in str(d) and "indicatorRef" not in str(d) for d in documents)
    back = load_paths([tmp_path / "out"])
    assert back.errors == [] and back.declarations == load_paths([DATA / "v2alpha.yaml"]).declarations
    refused = run_cli("export", "openslo", DATA / "v2alpha.yaml", "--version", "openslo/v3")
    assert refused.code != 0 and "--version" in refused.stderr and "Traceback" not in refused.stderr


def test_a_lone_objectives_display_name_names_the_slo_unless_the_slo_has_one(write: Any) -> None:
    named = POLICIES.replace("objectives: [{target: 0.995}]", "objectives: [{target: 0.995, displayName: Orders OK}]")
    (slo,) = load_paths([write("named.yaml", named)]).declarations
    assert slo.metadata.annotations == {"sloplane.dev/display-name": "Orders OK"}
    both = named.replace(
        "metadata: {name: orders-availability,", "metadata: {name: orders-availability, displayName: Orders,"
    )
    result = load_paths([write("both.yaml", both)])
    assert result.declarations[0].metadata.annotations == {"sloplane.dev/display-name": "Orders"}
    assert any("objective displayName 'Orders OK' is not kept" in d.message for d in result.warnings)


def test_alert_policy_switches_without_a_counterpart_are_warned_about(write: Any) -> None:
    text = POLICIES.replace(
        "      metadata: {name: orders-fast}\n      spec:\n",
        "      metadata: {name: orders-fast}\n      spec:\n"
        "        alertWhenNoData: true\n        alertWhenResolved: true\n",
    )
    messages = [d.message for d in load_paths([write("switches.yaml", text)]).warnings]
    assert any(m.startswith("alertWhenNoData is not imported") for m in messages)
    assert any(m.startswith("alertWhenResolved is not imported") for m in messages)
