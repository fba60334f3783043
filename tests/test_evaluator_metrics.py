"""The evaluator's metrics: a registry of its own, and the decisions counter other SLOs read."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from sloplane.core.names import SLOPLANE_DECISIONS_METRIC
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.model import Outcome


def _samples(metrics: EvaluatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text, _ = metrics.render()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_decisions_are_counted_under_the_name_and_labels_release_slos_read() -> None:
    metrics = EvaluatorMetrics()
    metrics.record_decision(slo="checkout-availability", service="checkout", stage="canary", decision=Outcome.PASS)
    metrics.record_decision(slo="checkout-availability", service="checkout", stage="canary", decision="pass")
    metrics.record_decision(slo="search-latency", service=None, stage=None, decision=Outcome.FAIL)
    samples = _samples(metrics)
    labels = (("decision", "pass"), ("service", "checkout"), ("slo", "checkout-availability"), ("stage", "canary"))
    assert samples[(SLOPLANE_DECISIONS_METRIC, labels)] == 2.0
    unstaged = (("decision", "fail"), ("service", ""), ("slo", "search-latency"), ("stage", ""))
    assert samples[(SLOPLANE_DECISIONS_METRIC, unstaged)] == 1.0


def test_cache_series_exist_before_the_first_lookup() -> None:
    metrics = EvaluatorMetrics()
    samples = _samples(metrics)
    assert samples[("sloplane_cache_requests_total", (("result", "hit"),))] == 0.0
    assert samples[("sloplane_cache_requests_total", (("result", "miss"),))] == 0.0
    metrics.record_cache(hit=False)
    assert _samples(metrics)[("sloplane_cache_requests_total", (("result", "miss"),))] == 1.0


def test_backend_timer_records_errors_and_reraises() -> None:
    metrics = EvaluatorMetrics()
    with metrics.time_backend_request("prometheus"):
        pass
    with pytest.raises(TimeoutError), metrics.time_backend_request("prometheus"):
        raise TimeoutError
    metrics.observe_backend_request(backend="datadog", outcome="timeout", seconds=30.0)
    samples = _samples(metrics)
    count = "sloplane_backend_request_seconds_count"
    assert samples[(count, (("backend", "prometheus"), ("outcome", "ok")))] == 1.0
    assert samples[(count, (("backend", "prometheus"), ("outcome", "error")))] == 1.0
    assert samples[("sloplane_backend_request_seconds_sum", (("backend", "datadog"), ("outcome", "timeout")))] == 30.0


def test_decision_latency_histogram() -> None:
    metrics = EvaluatorMetrics()
    metrics.observe_decision_seconds(0.2)
    samples = _samples(metrics)
    assert samples[("sloplane_decision_seconds_count", ())] == 1.0
    assert samples[("sloplane_decision_seconds_bucket", (("le", "0.25"),))] == 1.0
    assert samples[("sloplane_decision_seconds_bucket", (("le", "0.1"),))] == 0.0


def test_two_evaluators_count_separately_and_leave_the_global_registry_alone() -> None:
    first, second = EvaluatorMetrics(), EvaluatorMetrics()
    first.record_decision(slo="a", service="s", stage=None, decision="pass")
    assert not any(key[0] == SLOPLANE_DECISIONS_METRIC for key in _samples(second))
    assert REGISTRY.get_sample_value(SLOPLANE_DECISIONS_METRIC, {"slo": "a"}) is None


def test_render_gives_prometheus_text_and_its_content_type() -> None:
    text, content_type = EvaluatorMetrics().render()
    assert content_type.startswith("text/plain")
    assert b"# TYPE sloplane_gate_decisions_total counter" in text


def test_scraped_sources_are_read_at_scrape_time_and_a_broken_one_is_left_out() -> None:
    metrics = EvaluatorMetrics()
    counts = {"pending": 2, "dead": 1}
    metrics.watch_notifications(lambda: counts)

    def broken() -> int:
        raise OSError("disk I/O error")

    metrics.watch_controls(broken, lambda: 0)
    text = metrics.render()[0].decode()
    assert 'sloplane_notifications{state="pending"} 2.0' in text
    assert 'sloplane_notifications{state="dead"} 1.0' in text
    assert 'sloplane_notifications{state="held"} 0.0' in text
    assert "sloplane_freezes_active" not in text and "sloplane_major_incidents_open" not in text
    counts["dead"] = 3
    assert 'sloplane_notifications{state="dead"} 3.0' in metrics.render()[0].decode()
