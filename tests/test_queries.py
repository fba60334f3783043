"""Queries derived from the portable SLI kinds: exact text, and PromQL that parses."""

import re
from datetime import timedelta
from typing import Any

import promql_parser
import pytest

from sloplane.declaration.sli import SLI, Backend
from sloplane.semantics.datadog import datadog_metric_name, datadog_queries
from sloplane.semantics.indicators import prometheus_queries
from sloplane.semantics.promql import WindowedQueries, expand_selector, quote, regex_literal

MINUTE = timedelta(minutes=1)


def _sli(data: dict[str, Any]) -> SLI:
    return SLI.model_validate(data)


def _parses(queries: WindowedQueries) -> None:
    filled = queries.at(timedelta(minutes=5))
    for query in (filled.error_ratio, filled.errors, filled.total):
        if query is not None:
            promql_parser.parse(query)


def test_http_shorthand_derives_promql_with_stage_labels() -> None:
    sli = _sli(
        {
            "http": {
                "metric": "http_requests_total",
                "selector": {"job": "checkout"},
                "errors": {"codes": ["5xx", "429"]},
            }
        }
    )
    queries = prometheus_queries(sli, {"track": "canary"}, MINUTE)
    assert queries is not None
    assert queries.errors == (
        'sum(increase(http_requests_total{job="checkout",track="canary",code=~"5..|429"}[{{window}}]))'
    )
    assert queries.total == 'sum(increase(http_requests_total{job="checkout",track="canary"}[{{window}}]))'
    assert queries.error_ratio == f"({queries.errors}) / ({queries.total})"
    _parses(queries)


def test_http_shorthand_derives_datadog_too() -> None:
    sli = _sli(
        {
            "http": {
                "metric": "http_requests_total",
                "selector": {"service": "checkout"},
                "errors": {"codes": ["5xx", "429"]},
            }
        }
    )
    queries = datadog_queries(sli, {"env": "prod"})
    assert queries is not None
    assert queries.total == "sum:http_requests.count{env:prod,service:checkout}.as_count()"
    assert queries.errors == (
        "sum:http_requests.count{env:prod AND service:checkout AND (code:5* OR code:429)}.as_count()"
    )
    single = datadog_queries(_sli({"http": {"metric": "m_total"}}), {})
    assert single is not None and single.errors == "sum:m.count{code:5*}.as_count()"
    assert single.total == "sum:m.count{*}.as_count()"
    assert datadog_metric_name("grpc_calls_total") == "grpc_calls.count"


def test_latency_uses_the_bucket_at_the_threshold() -> None:
    sli = _sli(
        {
            "latency": {
                "metric": "http_request_duration_seconds",
                "selector": {"job": "search"},
                "threshold": "300ms",
            }
        }
    )
    queries = prometheus_queries(sli, {}, MINUTE)
    assert queries is not None and queries.errors is not None
    assert 'http_request_duration_seconds_bucket{job="search",le="0.3"}' in queries.errors
    assert queries.total == 'sum(increase(http_request_duration_seconds_count{job="search"}[{{window}}]))'
    _parses(queries)
    whole = prometheus_queries(_sli({"latency": {"metric": "h", "threshold": "1s"}}), {}, MINUTE)
    assert whole is not None and whole.errors is not None and 'le=~"1(\\\\.0)?"' in whole.errors
    _parses(whole)


def test_probe_counts_probe_samples_as_events() -> None:
    sli = _sli({"probe": {"selector": {"job": "blackbox"}}})
    queries = prometheus_queries(sli, {}, MINUTE)
    assert queries is not None
    assert queries.total == 'sum(count_over_time(probe_success{job="blackbox"}[{{window}}]))'
    assert queries.errors == f'{queries.total} - sum(sum_over_time(probe_success{{job="blackbox"}}[{{{{window}}}}]))'
    _parses(queries)


def test_ratio_with_good_becomes_errors_by_subtraction_and_expands_the_selector() -> None:
    sli = _sli(
        {
            "ratio": {
                "good": {"prometheus": 'sum(rate(ok{a="1",{{selector}}}[{{window}}]))'},
                "total": {"prometheus": "sum(rate(all{ {{selector}} }[{{.window}}]))"},
            }
        }
    )
    queries = prometheus_queries(sli, {"track": "canary"}, MINUTE)
    assert queries is not None
    assert queries.errors == (
        '(sum(rate(all{ track="canary" }[{{window}}]))) - (sum(rate(ok{a="1",track="canary"}[{{window}}])))'
    )
    _parses(queries)
    unstaged = prometheus_queries(sli, {}, MINUTE)
    assert unstaged is not None
    _parses(unstaged)


def test_threshold_counts_bad_samples_in_a_subquery() -> None:
    sli = _sli(
        {
            "threshold": {
                "query": {"prometheus": "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))"},
                "op": "lte",
                "value": 0.5,
            }
        }
    )
    queries = prometheus_queries(sli, {}, timedelta(seconds=30))
    assert queries is not None and queries.errors is None
    assert queries.error_ratio.endswith("> bool 0.5)[{{window}}:30s]))")
    _parses(queries)


@pytest.mark.parametrize(
    ("source", "measure", "bad", "every"),
    [
        ("argoRollouts", "successRate", "RolloutAborted", "RolloutCompleted|RolloutAborted"),
        ("argoRollouts", "rollbackRate", "RolloutAborted", "RolloutUpdated"),
        ("sloplane", "successRate", "fail", "pass|fail"),
    ],
)
def test_deployment_slis(source: str, measure: str, bad: str, every: str) -> None:
    sli = _sli({"deployment": {"measure": measure, "source": source, "selector": {"rollout": "checkout"}}})
    queries = prometheus_queries(sli, {}, MINUTE)
    assert queries is not None and queries.errors is not None and queries.total is not None
    assert f'=~"{bad}"' in queries.errors and f'=~"{every}"' in queries.total
    _parses(queries)


def test_composites_have_no_query_of_their_own() -> None:
    sli = _sli({"composite": {"components": ["a", "b"]}})
    assert prometheus_queries(sli, {}, MINUTE) is None
    assert datadog_queries(sli, {}) is None


def test_selector_expansion_per_backend() -> None:
    assert expand_selector("m{{{selector}}}", {"b": "2", "a": "1"}, Backend.PROMETHEUS) == 'm{a="1",b="2"}'
    assert expand_selector("m{ {{selector}} }", {"a": 'x"y'}, Backend.PROMETHEUS) == 'm{ a="x\\"y" }'
    assert expand_selector("m{{{selector}}}", {"a": "1"}, Backend.DATADOG) == "m{a:1}"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("svc-0005", "svc-0005"),  # a hyphen is no metacharacter outside a class: left as it is
        ("api.v2", r"api\.v2"),
        ("a|b", r"a\|b"),
        (r"back\slash", r"back\\slash"),
        ("[x](y){1}^$*+?", r"\[x\]\(y\)\{1\}\^\$\*\+\?"),
        ("a b#&~:/_", "a b#&~:/_"),  # what Python's re.escape escapes and RE2 reads literally anyway
    ],
)
def test_a_regex_literal_escapes_exactly_re2s_metacharacters(value: str, written: str) -> None:
    """Escaping more than RE2 needs (re.escape's `\\-`) costs Prometheus its literal-matcher fast path."""
    assert regex_literal(value) == written
    assert re.fullmatch(written, value) is not None  # Python's re reads these escapes as RE2 does
    assert re.fullmatch(written, value + "x") is None
    promql_parser.parse(f"up{{job=~{quote(written)}}}")
