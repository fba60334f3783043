"""Imported counter SLIs count events: what other tools write as rates, sloplane reads as event counts.

OpenSLO `counter: true` selectors and already-windowed rate queries (Sloth's shape) were imported as
per-second rates, so every path that reads counts was off by the window's seconds (16.67 "events" in
an hour at 1,000 requests a minute). Here a real Prometheus holds eight days of exactly known traffic
at 1,000 requests a minute; the evaluator's window and period events, and the period events the
rendered recording rules record (backfilled by promtool), must equal the hand computation to 1e-9.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sloplane.core import names
from sloplane.core.serialize import to_yaml
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.interop import load_paths
from sloplane.render.argo_rollouts import analysis_templates
from sloplane.render.pipelines import PipelineOptions
from sloplane.render.prometheus import rule_file
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, expected_counts, http_traffic
from sloplane.semantics.subjects import Fleet

START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(days=8)
PER_MINUTE = 1000.0


def _openslo(name: str, bad: str, total: str, annotations: str = "{}") -> str:
    """One OpenSLO v1 SLO with a `counter: true` ratio over the two queries (items of a sequence document)."""
    return f"""\
- apiVersion: openslo/v1
  kind: SLO
  metadata: {{name: {name}, labels: {{team: shop}}, annotations: {annotations}}}
  spec:
    service: shop
    budgetingMethod: Occurrences
    timeWindow: [{{duration: 7d, isRolling: true}}]
    objectives: [{{target: 0.999}}]
    indicator:
      metadata: {{name: {name}-requests}}
      spec:
        ratioMetric:
          counter: true
          bad: {{metricSource: {{type: Prometheus, spec: {{query: '{bad}'}}}}}}
          total: {{metricSource: {{type: Prometheus, spec: {{query: '{total}'}}}}}}
"""


# A counter selector, and an already windowed rate (Sloth's shape): both must count events.
OPENSLO = _openslo(
    "counted",
    'http_requests_total{job="counted",code="500"}',
    'http_requests_total{job="counted"}',
    """{sloplane.dev/gate: '{"minEvents": 100}'}""",
) + _openslo(
    "windowed",
    'sum(rate(http_requests_total{job="windowed",code="500"}[{{.window}}]))',
    'sum(rate(http_requests_total{job="windowed"}[{{.window}}]))',
)

TRAFFIC: dict[str, HttpTraffic] = {
    name: http_traffic(
        [Segment(timedelta(days=7), PER_MINUTE, 0.0005), Segment(timedelta(days=1), PER_MINUTE, 0.01)],
        start=START,
        labels={"job": name},
    )
    for name in ("counted", "windowed")
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    path = tmp_path_factory.mktemp("openslo") / "imported.yaml"
    path.write_text(OPENSLO)
    result = load_paths([path])
    assert result.errors == [], [d.render() for d in result.errors]
    return Fleet(result.declarations)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    """The history alone: the evaluator reads the imported queries themselves."""
    with PrometheusSandbox(tmp_path_factory.mktemp("raw"), list(TRAFFIC.values())) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def recorded(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    """The history and the rendered recording rules, backfilled over the last half hour."""
    work = tmp_path_factory.mktemp("recorded")
    rules = []
    for name in TRAFFIC:
        rules.append(work / f"{name}.rules.yaml")
        rules[-1].write_text(to_yaml(rule_file(fleet[name], fleet)))
    with PrometheusSandbox(
        work, list(TRAFFIC.values()), rule_files=rules, rule_range=(END - timedelta(minutes=30), END)
    ) as sandbox:
        yield sandbox


def _close(actual: float | None, expected: float) -> None:
    assert actual is not None
    assert actual == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", sorted(TRAFFIC))
def test_the_evaluator_counts_events_of_an_imported_counter_sli(
    name: str, fleet: Fleet, raw: PrometheusSandbox, tmp_path: Path
) -> None:
    evaluator = Evaluator(fleet, PrometheusBackend(raw.url), SqliteDecisionLog(tmp_path / "log.db"))
    (measurement,) = evaluator.evaluate(END, [name])
    assert measurement.windows
    for window in measurement.windows:
        _close(window.events, window.window / timedelta(minutes=1) * PER_MINUTE)  # requests, not requests/s
        bad, total = expected_counts(TRAFFIC[name], END, window.window)
        _close(window.events, total)
        _close(window.bad_events, bad)
    bad, total = expected_counts(TRAFFIC[name], END, timedelta(days=7))
    _close(measurement.period_events, total)
    _close(measurement.period_error_ratio, bad / total)


@pytest.mark.parametrize("name", sorted(TRAFFIC))
def test_the_recorded_events_of_an_imported_counter_sli(name: str, recorded: PrometheusSandbox) -> None:
    """The 5m event counts the rules record (the period series sums them), backfilled by promtool.

    They are evaluated at the rule group's own offset, between the data's minute samples; over the
    last day's constant traffic `increase` still counts exactly five minutes of it.
    """
    events = recorded.value(f'{names.windowed(names.EVENTS, timedelta(minutes=5))}{{slo="{name}"}}', END)
    bad = recorded.value(f'{names.windowed(names.BAD_EVENTS, timedelta(minutes=5))}{{slo="{name}"}}', END)
    bad_expected, total_expected = expected_counts(TRAFFIC[name], END, timedelta(minutes=5))
    assert total_expected == 5 * PER_MINUTE
    _close(events, total_expected)
    _close(bad, bad_expected)


def test_the_argo_analysis_guards_on_the_events_of_an_imported_counter_sli(
    fleet: Fleet, raw: PrometheusSandbox
) -> None:
    """Argo's `minEvents` guard (and Spinnaker's and `explain`'s queries, printed from the same description)
    counts requests over the analysis window, not requests per second."""
    declaration = fleet["counted"]
    window = declaration.spec.effective_gate.analysis_window
    (template,) = analysis_templates(declaration, fleet, PipelineOptions())
    queries = [metric["provider"]["prometheus"]["query"] for metric in template["spec"]["metrics"]]
    guards = {found.group(1) for query in queries if (found := re.search(r"and on\(\) \((.+) >= 100\)$", query))}
    (events_query,) = guards
    _, total = expected_counts(TRAFFIC["counted"], END, window)
    assert total == window / timedelta(minutes=1) * PER_MINUTE
    _close(raw.value(events_query, END), total)
