"""The Prometheus sandbox: synthetic history is exact, promtool and Prometheus 2.42 serve it as computed.

Hand numbers come from `expected_counts` (the segments), written out as literals where a reader can
check them in their head; server numbers come from plain `requests` against `/api/v1/query`, using
the very queries sloplane derives for each SLI kind. Two servers per run: one over a fixed past day
(with a backfilled recording rule), one over history that ends now (killed and restarted).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from sloplane.declaration.sli import SLI
from sloplane.sandbox import (
    HttpTraffic,
    PrometheusSandbox,
    SandboxError,
    Segment,
    Series,
    Timeline,
    Traffic,
    aligned_now,
    expected_counts,
    http_traffic,
    incident_day,
    latency_traffic,
    probe_traffic,
    rollout_traffic,
    write_openmetrics,
    write_openmetrics_blocks,
)
from sloplane.semantics.indicators import prometheus_queries
from sloplane.semantics.promql import WindowedQueries

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
START = datetime(2024, 3, 1, tzinfo=UTC)
"""Years in the past on purpose: retention must count from the newest block, not from now."""

# A healthy hour, a 30-minute 2% incident, a healthy half hour; 600 requests per one-minute step.
REQUESTS = [Segment(HOUR, 600, 0.001), Segment(30 * MINUTE, 600, 0.02), Segment(30 * MINUTE, 600, 0.001)]
PROBES = [Segment(HOUR, 1, 0.05), Segment(30 * MINUTE, 1, 0.2), Segment(30 * MINUTE, 1, 0.0)]
ROLLOUTS = [Segment(HOUR, 0.5, 0.1), Segment(30 * MINUTE, 0.5, 0.5), Segment(30 * MINUTE, 0.5, 0.1)]
INSTANTS = [10, 60, 65, 80, 90, 100, 120]
"""Minutes after START, all on samples: early (windows reach before the history), edges, inside, after."""

HTTP = http_traffic(REQUESTS, start=START, labels={"job": "checkout"})
LATENCY = latency_traffic(REQUESTS, start=START, threshold=timedelta(milliseconds=300), labels={"job": "checkout"})
LATENCY_1S = latency_traffic(REQUESTS, start=START, metric="slow_seconds", threshold=timedelta(seconds=1))
PROBE = probe_traffic(PROBES, start=START, labels={"instance": "https://shop.example"})
ROLLOUT = rollout_traffic(ROLLOUTS, start=START, labels={"rollout": "checkout"})

RULES = """\
groups:
  - name: test
    rules:
      - record: test:errors:increase5m
        expr: sum(increase(http_requests_total{code="500"}[5m]))
"""


def _at(minutes: int) -> datetime:
    return START + minutes * MINUTE


def _query(url: str, expr: str, at: datetime | None = None) -> list[dict[str, Any]]:
    params = {"query": expr} if at is None else {"query": expr, "time": str(int(at.timestamp()))}
    body = requests.get(f"{url}/api/v1/query", params=params, timeout=30).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _value(url: str, expr: str, at: datetime | None = None) -> float:
    result = _query(url, expr, at)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def _assert_exact(actual: float, expected: float) -> None:
    """Equal to 1e-9, both absolutely and relative to the expected value."""
    difference = abs(actual - expected)
    assert difference <= 1e-9, (actual, expected)
    assert difference <= 1e-9 * abs(expected), (actual, expected)


def _queries(sli: dict[str, Any], window: timedelta) -> WindowedQueries:
    queries = prometheus_queries(SLI.model_validate(sli), {}, MINUTE)
    assert queries is not None
    return queries.at(window)


def _assert_counts(url: str, queries: WindowedQueries, traffic: Traffic, at: datetime, window: timedelta) -> None:
    bad, total = expected_counts(traffic, at, window)
    assert queries.errors is not None
    assert queries.total is not None
    _assert_exact(_value(url, queries.errors, at), bad)
    _assert_exact(_value(url, queries.total, at), total)
    _assert_exact(_value(url, queries.error_ratio, at), bad / total)


@pytest.fixture(scope="module")
def past(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    """Every traffic shape over a fixed past day, with one recording rule backfilled."""
    work = tmp_path_factory.mktemp("past")
    rules = work / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    with PrometheusSandbox(work / "sandbox", [HTTP, LATENCY, LATENCY_1S, PROBE, ROLLOUT], rule_files=[rules]) as box:
        yield box


@pytest.fixture(scope="module")
def now_traffic() -> HttpTraffic:
    return http_traffic(REQUESTS, end=aligned_now(), labels={"job": "now"})


@pytest.fixture(scope="module")
def recent(tmp_path_factory: pytest.TempPathFactory, now_traffic: HttpTraffic) -> Iterator[PrometheusSandbox]:
    """History that ends at the current minute, so a query without a time parameter reads it."""
    with PrometheusSandbox(tmp_path_factory.mktemp("recent"), [now_traffic]) as box:
        yield box


# --- hand numbers, without a server ---------------------------------------------------------------


def test_expected_counts_are_the_numbers_a_reader_computes() -> None:
    assert expected_counts(HTTP, _at(80), 10 * MINUTE) == (120.0, 6000.0)  # 10 steps x 600 x 2%
    assert expected_counts(HTTP, _at(65), 10 * MINUTE) == pytest.approx((5 * 0.6 + 5 * 12, 6000.0), abs=1e-12)
    assert expected_counts(HTTP, _at(10), HOUR) == pytest.approx((6.0, 6000.0), abs=1e-12)  # the history so far
    assert expected_counts(HTTP, _at(120), 2 * HOUR) == pytest.approx((36 + 360 + 18, 72000.0), abs=1e-9)
    assert expected_counts(HTTP, _at(0), HOUR) == (0.0, 0.0)


def test_probe_failures_are_spread_evenly_and_counted_in_closed_windows() -> None:
    quarter = probe_traffic([Segment(8 * MINUTE, 1, 0.25)], start=START)
    assert [value for _, value in quarter.series()[0].samples] == [1, 1, 1, 0, 1, 1, 1, 0]
    awkward = probe_traffic([Segment(100 * MINUTE, 1, 0.29)], start=START)  # 0.29 * 100 is 28.999... in floats
    assert expected_counts(awkward, START + 100 * MINUTE, 100 * MINUTE) == (29.0, 100.0)
    assert expected_counts(PROBE, _at(20), 10 * MINUTE) == (1.0, 11.0)  # samples 10..20: the 20th fails
    assert expected_counts(PROBE, _at(10), 10 * MINUTE) == (0.0, 10.0)  # no sample at START
    # Samples 60..90: the healthy hour fails every 20th probe (60 is one), then 6 of the incident's 30 fail.
    assert expected_counts(PROBE, _at(90), 30 * MINUTE) == (7.0, 31.0)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Timeline(START + 30 * timedelta(seconds=1), (REQUESTS[0],)), "not aligned"),
        (lambda: Timeline(START, (Segment(90 * timedelta(seconds=1), 1, 0),)), "not a multiple"),
        (lambda: Timeline(datetime(2024, 3, 1), (REQUESTS[0],)), "time zone"),
        (lambda: Segment(HOUR, 1, 1.5), "error_ratio"),
        (lambda: Timeline.build(REQUESTS, start=START, end=START), "exactly one"),
        (lambda: expected_counts(HTTP, _at(10) + timedelta(seconds=1), MINUTE), "not on a sample"),
        (lambda: expected_counts(HTTP, _at(121), MINUTE), "outside the history"),
        (lambda: expected_counts(HTTP, _at(10), 90 * timedelta(seconds=1)), "not a multiple"),
        (lambda: probe_traffic(REQUESTS, start=START), "once per step"),
    ],
)
def test_inexact_descriptions_are_refused(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_history_can_end_at_a_given_instant() -> None:
    end = aligned_now()
    traffic = http_traffic(incident_day(), end=end)
    assert traffic.timeline.end == end
    assert traffic.timeline.start == end - timedelta(days=1)
    assert expected_counts(traffic, end - 9 * HOUR - 45 * MINUTE, 10 * MINUTE) == (120.0, 6000.0)  # 14:05..14:15


# --- OpenMetrics ----------------------------------------------------------------------------------


def test_openmetrics_families_follow_the_rules(tmp_path: Path) -> None:
    series = [
        Series("http_requests_total", {"code": "500", "path": 'a"b\\c'}, "counter", [(60, 0), (120, 0.5)]),
        Series("lat_bucket", {"le": "0.3"}, "counter", [(60, 1)]),
        Series("lat_count", {}, "counter", [(60, 2)]),
        Series("up", {}, "gauge", [(60, 1)]),
        Series("weird", {}, "counter", [(60, 1.25)]),
    ]
    text = write_openmetrics(series, tmp_path / "x.om").read_text(encoding="utf-8")
    assert text == (
        "# TYPE http_requests counter\n"
        'http_requests_total{code="500",path="a\\"b\\\\c"} 0 60\n'
        'http_requests_total{code="500",path="a\\"b\\\\c"} 0.5 120\n'
        "# TYPE lat histogram\n"
        'lat_bucket{le="0.3"} 1 60\n'
        "lat_count 2 60\n"
        "# TYPE up gauge\n"
        "up 1 60\n"
        "# TYPE weird unknown\n"
        "weird 1.25 60\n"
        "# EOF\n"
    )


def test_series_promtool_would_silently_damage_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="increase strictly"):
        Series("x_total", {}, "counter", [(120, 1), (60, 2)])
    twice = [Series("x_total", {"a": "1"}, "counter", [(60, 1)]), Series("x_total", {"a": "1"}, "counter", [(120, 1)])]
    with pytest.raises(ValueError, match="given twice"):
        write_openmetrics(twice, tmp_path / "x.om")


def test_openmetrics_is_split_into_one_file_per_2h_block(tmp_path: Path) -> None:
    """promtool re-reads its whole input for every block it writes; one file per block keeps it linear."""
    counter = Series("x_total", {}, "counter", [(7199, 1), (7200, 2), (14399, 3), (14400, 4), (30000, 5)])
    gauge = Series("g", {}, "gauge", [(100, 1), (30000, 0)])
    files = write_openmetrics_blocks([counter, gauge], tmp_path)
    assert [path.name for path in files] == ["series-0.om", "series-7200.om", "series-14400.om", "series-28800.om"]
    assert files[0].read_text(encoding="utf-8") == "# TYPE x counter\nx_total 1 7199\n# TYPE g gauge\ng 1 100\n# EOF\n"
    assert files[1].read_text(encoding="utf-8") == "# TYPE x counter\nx_total 2 7200\nx_total 3 14399\n# EOF\n"
    assert "x_total 5 30000\n# TYPE g gauge\ng 0 30000\n" in files[3].read_text(encoding="utf-8")


def test_promtool_stores_counters_under_their_sample_names(tmp_path: Path) -> None:
    """Family `http_requests`, samples `http_requests_total`: the series is `http_requests_total`."""
    path = write_openmetrics(HTTP.series(), tmp_path / "http.om")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", path, tmp_path / "d"], check=True)
    (tmp_path / "d" / "wal").mkdir()
    dump = subprocess.run(
        ["promtool", "tsdb", "dump", tmp_path / "d"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    names = {line.split(",")[0] for line in dump}
    assert names == {'{__name__="http_requests_total"'}
    assert len(dump) == 2 * (HTTP.timeline.steps + 1)


# --- against a real server ------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", INSTANTS)
def test_http_counts_match_the_hand_numbers(past: PrometheusSandbox, minutes: int) -> None:
    at = _at(minutes)
    bad_10m, total_10m = expected_counts(HTTP, at, 10 * MINUTE)
    _assert_exact(_value(past.url, 'sum(increase(http_requests_total{code="500"}[10m]))', at), bad_10m)
    _assert_exact(_value(past.url, "sum(increase(http_requests_total[1h]))", at), expected_counts(HTTP, at, HOUR)[1])
    ratio = 'sum(increase(http_requests_total{code="500"}[10m])) / sum(increase(http_requests_total[10m]))'
    _assert_exact(_value(past.url, ratio, at), bad_10m / total_10m)
    http = {"http": {"metric": "http_requests_total", "selector": {"job": "checkout"}}}
    _assert_counts(past.url, _queries(http, 10 * MINUTE), HTTP, at, 10 * MINUTE)


@pytest.mark.parametrize("minutes", INSTANTS)
def test_latency_counts_match_the_hand_numbers(past: PrometheusSandbox, minutes: int) -> None:
    latency = {"latency": {"metric": "http_request_duration_seconds", "threshold": "300ms"}}
    _assert_counts(past.url, _queries(latency, 10 * MINUTE), LATENCY, _at(minutes), 10 * MINUTE)
    whole_second = {"latency": {"metric": "slow_seconds", "threshold": "1s"}}  # le="1", matched by le=~"1(\.0)?"
    _assert_counts(past.url, _queries(whole_second, HOUR), LATENCY_1S, _at(minutes), HOUR)


@pytest.mark.parametrize("minutes", INSTANTS)
def test_probe_counts_match_the_hand_numbers(past: PrometheusSandbox, minutes: int) -> None:
    probe = {"probe": {"selector": {"instance": "https://shop.example"}}}
    for window in (10 * MINUTE, 30 * MINUTE):
        _assert_counts(past.url, _queries(probe, window), PROBE, _at(minutes), window)


@pytest.mark.parametrize("measure", ["successRate", "rollbackRate"])
@pytest.mark.parametrize("minutes", INSTANTS)
def test_rollout_counts_match_the_hand_numbers(past: PrometheusSandbox, minutes: int, measure: str) -> None:
    deployment = {"deployment": {"measure": measure, "selector": {"rollout": "checkout"}}}
    _assert_counts(past.url, _queries(deployment, HOUR), ROLLOUT, _at(minutes), HOUR)


def test_backfilled_rule_holds_the_expected_value(past: PrometheusSandbox) -> None:
    """Rule samples sit at a group-specific offset within each interval, never after the data ends."""
    at = _at(80)  # every 5m window ending in the minute before lies inside the incident
    _assert_exact(_value(past.url, "test:errors:increase5m", at), expected_counts(HTTP, at, 5 * MINUTE)[0])
    evaluated = _value(past.url, "timestamp(test:errors:increase5m)", at)
    assert at.timestamp() - 60 < evaluated <= at.timestamp()
    assert _value(past.url, "timestamp(test:errors:increase5m)", _at(124)) <= _at(120).timestamp()


def test_sandbox_reports_its_data_and_queries(past: PrometheusSandbox) -> None:
    assert past.time_range() == (START, _at(120))
    assert past.value("sum(probe_success)", _at(120)) == 1.0
    assert {labels["reason"] for labels, _ in past.query("rollout_events_total", _at(120))} == {
        "RolloutAborted",
        "RolloutCompleted",
        "RolloutUpdated",
    }
    with pytest.raises(SandboxError, match="parse error"):
        past.query("sum(", _at(120))


def test_history_ending_now_is_read_without_a_time(recent: PrometheusSandbox, now_traffic: HttpTraffic) -> None:
    end = now_traffic.timeline.end
    bad, total = expected_counts(now_traffic, end, 2 * HOUR)
    _assert_exact(_value(recent.url, 'http_requests_total{code="500"}'), bad)
    _assert_exact(_value(recent.url, "sum(increase(http_requests_total[2h]))", end), total)


def test_kill_refuses_connections_and_restart_brings_the_data_back(
    recent: PrometheusSandbox, now_traffic: HttpTraffic
) -> None:
    end = now_traffic.timeline.end
    query = 'sum(increase(http_requests_total{code="500"}[30m]))'
    before = _value(recent.url, query, end)
    recent.kill()
    assert not recent.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{recent.url}/api/v1/query", params={"query": "up"}, timeout=5)
    recent.restart()
    assert recent.running
    _assert_exact(_value(recent.url, query, end), before)
    _assert_exact(before, expected_counts(now_traffic, end, 30 * MINUTE)[0])


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    box = PrometheusSandbox(tmp_path, [HTTP], extra_args=["--no-such-flag"])
    with pytest.raises(SandboxError, match="unknown long flag"):
        box.start()
    assert not box.running
    assert box.pid is None


def test_a_server_that_never_gets_ready_is_killed_and_reported(tmp_path: Path) -> None:
    stuck = tmp_path / "stuck-prometheus"
    stuck.write_text("#!/bin/sh\necho listening, eventually\nexec sleep 30\n", encoding="utf-8")
    stuck.chmod(0o755)
    box = PrometheusSandbox(tmp_path / "work", [HTTP], prometheus=str(stuck), ready_timeout=0.5)
    with pytest.raises(SandboxError, match=r"(?s)not ready within 0\.5s.*listening, eventually"):
        box.start()
    assert not box.running
