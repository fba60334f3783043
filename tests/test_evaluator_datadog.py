"""The evaluator reading Datadog: the scenarios of tests/evaluator_scenarios.py served by the local Datadog
API, numbers equal to hand computation and to a real Prometheus holding the same history (1e-9).

The history is loaded into both as tests/datadog_history.py describes (Datadog files a minute's events
under the bucket the minute starts; a Prometheus sample counts the minute ending at it), and the Datadog
evaluator runs with no late-data delay so both read the same instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sloplane.core.budget import error_budget
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts, RateLimits
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import GateRequest, Measurement, Outcome
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.sandbox import PrometheusSandbox, Traffic, expected_counts
from sloplane.semantics.subjects import Fleet
from tests.conftest import run_cli
from tests.datadog_api import SCALAR, DatadogAPI, Fault, RateLimit
from tests.datadog_history import load_traffic
from tests.evaluator_data import load_fleet
from tests.evaluator_scenarios import END, FLEET, START, TRAFFIC

SCENARIOS = ("healthy", "outage", "slow", "quiet", "maintained")
MIXED_FLEET = FLEET.replace(
    "metadata: {name: healthy}\nspec:\n", "metadata: {name: healthy}\nspec:\n  targets: [prometheus, datadog]\n"
)
"""The same fleet, but `healthy` provisions Datadog too, so an evaluator with both backends reads it from
Datadog and `slow` from Prometheus: the composite `journey` combines one part from each."""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), FLEET)


@pytest.fixture(scope="module")
def api() -> Iterator[DatadogAPI]:
    server = DatadogAPI()
    for traffic in TRAFFIC.values():
        load_traffic(server, traffic)
    with server:
        yield server


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), list(TRAFFIC.values())) as sandbox:
        yield sandbox


def _counts(api: DatadogAPI) -> DatadogCounts:
    return DatadogCounts(api.url, "api-key", "app-key", limits=RateLimits())


@pytest.fixture
def evaluator(fleet: Fleet, api: DatadogAPI, tmp_path: Path) -> Evaluator:
    """Reads Datadog only: every SLI of the fleet is read there."""
    return Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "decisions.db"), datadog=_counts(api))


def _exact(traffic: Traffic, window: timedelta) -> tuple[float, float, float]:
    bad, total = expected_counts(traffic, END, window)
    return bad, total, bad / total


def _close(actual: float | None, expected: float) -> None:
    assert actual is not None
    assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


def _measure(evaluator: Evaluator, name: str) -> Measurement:
    (measurement,) = evaluator.evaluate(END, [name])
    return measurement


def _gate(evaluator: Evaluator, name: str) -> tuple[Outcome, list[str]]:
    (decision,) = evaluator.gate(GateRequest(slo=name, at=END, revision="abc123")).decisions
    return decision.outcome, [reason.code for reason in decision.reasons]


def test_healthy_numbers_from_datadog_match_a_hand_computation_and_pass(evaluator: Evaluator) -> None:
    measurement = _measure(evaluator, "healthy")
    assert measurement.source == "datadog" and measurement.error is None and measurement.stale_seconds is None
    assert all(query.startswith("datadog: sum:http_requests.count{job:healthy") for query in measurement.queries)
    for window in measurement.windows:
        bad, total, ratio = _exact(TRAFFIC["healthy"], window.window)
        _close(window.error_ratio, ratio)
        _close(window.events, total)
        _close(window.bad_events, bad)
        _close(window.burn_rate, ratio / error_budget(99.9))
    bad, total, ratio = _exact(TRAFFIC["healthy"], timedelta(days=7))
    _close(measurement.period_error_ratio, ratio)
    _close(measurement.period_events, total)
    _close(measurement.period_bad_events, bad)
    _close(measurement.budget_remaining, 1 - ratio / 0.001)
    assert _gate(evaluator, "healthy") == (Outcome.PASS, ["budget", "alerts"])


def test_a_full_outage_in_datadog_fails_on_both_pages_and_the_budget(evaluator: Evaluator) -> None:
    fast = _measure(evaluator, "outage").window(timedelta(minutes=14))
    assert fast is not None
    _close(fast.error_ratio, 1.0)
    outcome, codes = _gate(evaluator, "outage")
    assert outcome is Outcome.FAIL and codes.count("alert-active") == 2 and "budget-exhausted" in codes


def test_a_slow_burn_in_datadog_fails_on_the_slow_page_only(evaluator: Evaluator) -> None:
    window = _measure(evaluator, "slow").window(timedelta(hours=5, minutes=36))
    assert window is not None
    _close(window.burn_rate, 8.0)
    outcome, _ = _gate(evaluator, "slow")
    reasons = evaluator.log.query(slo="slow", limit=1)[0]["reasons"]
    assert outcome is Outcome.FAIL
    assert [r["values"]["alert"] for r in reasons if r["code"] == "alert-active"] == ["page 1h24m/7m"]


def test_low_traffic_in_datadog_is_inconclusive(evaluator: Evaluator) -> None:
    assert _gate(evaluator, "quiet") == (Outcome.INCONCLUSIVE, ["low-traffic"])
    decision = evaluator.log.query(slo="quiet", limit=1)[0]
    assert decision["reasons"][0]["values"]["events"] == pytest.approx(20.0)


def test_maintenance_windows_are_taken_out_of_the_datadog_budget(evaluator: Evaluator) -> None:
    measurement = _measure(evaluator, "maintained")
    spans = [(e.start, e.end) for e in measurement.exclusions]
    assert len(spans) == 7
    traffic = TRAFFIC["maintained"]
    bad, total = expected_counts(traffic, END, timedelta(days=7))
    for start, end in spans:
        excluded_bad, excluded_total = expected_counts(traffic, end, end - start)
        bad, total = bad - excluded_bad, total - excluded_total
    _close(measurement.period_error_ratio, bad / total)
    _close(measurement.period_events, total)
    assert _gate(evaluator, "maintained")[0] is Outcome.PASS


def _numbers(measurement: Measurement) -> list[float | None]:
    numbers: list[float | None] = [
        measurement.period_error_ratio,
        measurement.period_events,
        measurement.period_bad_events,
        measurement.budget_remaining,
    ]
    for window in measurement.windows:
        numbers += [window.error_ratio, window.events, window.bad_events, window.burn_rate]
    return numbers


@pytest.mark.parametrize("hours_before_end", [0, 5, 30])
def test_datadog_and_prometheus_agree_on_the_same_history(
    fleet: Fleet, api: DatadogAPI, prometheus: PrometheusSandbox, tmp_path: Path, hours_before_end: int
) -> None:
    at = END - timedelta(hours=hours_before_end)
    from_prometheus = Evaluator(fleet, PrometheusBackend(prometheus.url), SqliteDecisionLog(tmp_path / "p.db"))
    from_datadog = Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "d.db"), datadog=_counts(api))
    for name in SCENARIOS:
        (read_p,) = from_prometheus.evaluate(at, [name])
        (read_d,) = from_datadog.evaluate(at, [name])
        assert (read_p.source, read_d.source) == ("raw", "datadog")
        assert [w.window for w in read_p.windows] == [w.window for w in read_d.windows]
        for p, d in zip(_numbers(read_p), _numbers(read_d), strict=True):
            assert (p is None) == (d is None), name
            if p is not None:
                _close(d, p)
        (gate_p,) = from_prometheus.gate(GateRequest(slo=name, at=at)).decisions
        (gate_d,) = from_datadog.gate(GateRequest(slo=name, at=at)).decisions
        assert gate_p.outcome is gate_d.outcome, name
        assert [r.code for r in gate_p.reasons] == [r.code for r in gate_d.reasons], name


def test_a_composite_combines_a_part_read_from_datadog_with_one_read_from_prometheus(
    api: DatadogAPI, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    fleet = load_fleet(tmp_path, MIXED_FLEET)
    both = Evaluator(
        fleet, PrometheusBackend(prometheus.url), SqliteDecisionLog(tmp_path / "m.db"), datadog=_counts(api)
    )
    journey, healthy, slow = both.evaluate(END, ["journey", "healthy", "slow"])
    assert (healthy.source, slow.source, journey.source) == ("datadog", "raw", "composite")
    for window in journey.windows:
        expected = (_exact(TRAFFIC["healthy"], window.window)[2] + 3 * _exact(TRAFFIC["slow"], window.window)[2]) / 4
        _close(window.error_ratio, expected)
    period = (_exact(TRAFFIC["healthy"], timedelta(days=7))[2] + 3 * _exact(TRAFFIC["slow"], timedelta(days=7))[2]) / 4
    _close(journey.period_error_ratio, period)


def test_requests_grow_with_intervals_not_with_slos(fleet: Fleet, api: DatadogAPI, tmp_path: Path) -> None:
    def requests_for(names: list[str]) -> int:
        counts = _counts(api)
        Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "r.db"), datadog=counts).evaluate(END, names)
        return counts.requests_sent

    measurer = Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "w.db")).measurer
    intervals = {*measurer.windows_of(fleet["healthy"]), timedelta(days=7), measurer.staleness}
    one = requests_for(["healthy"])
    assert one == len(intervals) == 9  # each window, the period and the freshness bound (= the analysis window)
    api.clear_log()
    assert requests_for(["healthy", "outage", "slow", "quiet"]) == one  # regrouped: still one request per interval
    sent = [q["query"] for r in api.requests(SCALAR) for q in r.body["data"]["attributes"]["queries"]]
    assert set(sent) == {
        "sum:http_requests.count{*} by {job}.as_count()",
        "sum:http_requests.count{code:5*} by {job}.as_count()",
    }
    assert requests_for(list(SCENARIOS)) == one + 7  # the maintained SLO's seven excluded spans


def test_a_decision_says_it_waited_for_the_rate_limit_and_nothing_was_sent_meanwhile(
    fleet: Fleet, tmp_path: Path
) -> None:
    server = DatadogAPI(limits={SCALAR: RateLimit("query_scalar_public", 4, 2)})
    load_traffic(server, TRAFFIC["healthy"])
    with server:
        evaluator = Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "w.db"), datadog=_counts(server))
        (decision,) = evaluator.gate(GateRequest(slo="healthy", at=END)).decisions
        assert decision.outcome is Outcome.PASS
        waits = [r for r in decision.reasons if r.code == "rate-limit-wait"]
        # nine requests under four per 2 s: two waits of at most one period (plus jitter) each
        assert len(waits) == 1 and 0 < waits[0].values["waited_seconds"] <= 2 * (2 + 0.25)
        assert server.sent_during_backoff() == []
        assert all(request.status == 200 for request in server.requests(SCALAR))


def test_a_rate_limit_too_long_to_wait_for_is_decided_by_policy(fleet: Fleet, tmp_path: Path) -> None:
    server = DatadogAPI(limits={SCALAR: RateLimit("query_scalar_public", 2, 3600)})
    load_traffic(server, TRAFFIC["healthy"])
    with server:
        evaluator = Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "l.db"), datadog=_counts(server))
        (decision,) = evaluator.gate(GateRequest(slo="healthy", at=END)).decisions
    assert decision.outcome is Outcome.FAIL  # the default policy fails closed
    (reason,) = decision.reasons
    assert reason.code == "backend-error" and "rate limit" in reason.message and "failing closed" in reason.message
    assert len(server.requests(SCALAR)) == 2  # the third request was never sent


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault.server_error(502), "HTTP 502"),
        (Fault.errors_list(["bad query"]), "bad query"),
        (Fault.errors_string("no such metric"), "no such metric"),
        (Fault.truncated(), "bad-response"),
        (Fault.forbidden(), "403"),
    ],
)
def test_datadog_faults_get_a_decision_by_policy(
    fleet: Fleet, api: DatadogAPI, tmp_path: Path, fault: Fault, words: str
) -> None:
    api.fail(SCALAR, fault, times=None)
    try:
        evaluator = Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "f.db"), datadog=_counts(api))
        (decision,) = evaluator.gate(GateRequest(slo="healthy", at=END)).decisions
    finally:
        api.clear_faults()
    assert decision.outcome is Outcome.FAIL and decision.reasons[0].code == "backend-error"
    assert words in decision.reasons[0].message


def test_an_sli_read_from_prometheus_only_fails_by_policy_on_a_datadog_only_evaluator(
    api: DatadogAPI, tmp_path: Path
) -> None:
    text = FLEET.split("---\n")[0].replace(
        "sli: {http: {metric: http_requests_total, selector: {job: healthy}}}",
        "sli: {ratio: {errors: {prometheus: 'sum(increase(e[{{window}}]))'}, "
        "total: {prometheus: 'sum(increase(t[{{window}}]))'}}}",
    )
    fleet = load_fleet(tmp_path, text)
    evaluator = Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "o.db"), datadog=_counts(api))
    (decision,) = evaluator.gate(GateRequest(slo="healthy", at=END)).decisions
    assert decision.outcome is Outcome.FAIL and "no Prometheus is configured" in decision.reasons[0].message


def test_the_cli_gates_and_evaluates_against_datadog(
    api: DatadogAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fleet.yaml").write_text(FLEET)
    common = ["--datadog", api.url, "--datadog-delay", "0s", "--at", END.isoformat()]
    monkeypatch.delenv("DD_API_KEY", raising=False)
    refused = run_cli("gate", tmp_path / "fleet.yaml", "--slo", "outage", *common, "--db", tmp_path / "g.db")
    assert refused.code == 2 and "DD_API_KEY" in refused.stderr and "Traceback" not in refused.stderr
    monkeypatch.setenv("DD_API_KEY", "api-key")
    monkeypatch.setenv("DD_APP_KEY", "app-key")
    gate = run_cli("gate", tmp_path / "fleet.yaml", "--slo", "outage", *common, "--db", tmp_path / "g.db")
    assert gate.code == Outcome.FAIL.exit_code and "fail" in gate.stdout, gate
    evaluated = run_cli("evaluate", tmp_path / "fleet.yaml", *common, "--format", "json")
    assert evaluated.code == 0, evaluated.stderr
    assert '"source": "datadog"' in evaluated.stdout
    site = run_cli("evaluate", tmp_path / "fleet.yaml", "--datadog", "datadoghq.nowhere")
    assert site.code == 2 and "not a Datadog site" in site.stderr


def test_history_starts_where_the_scenarios_say() -> None:
    """The loader files every step's events inside the history (a guard on the alignment it relies on)."""
    server = DatadogAPI()
    load_traffic(server, TRAFFIC["healthy"])
    buckets = [b for series in server.store._series.values() for b in series]
    assert min(buckets) == START.timestamp() and max(buckets) == END.timestamp() - 60


def test_a_datadog_only_evaluator_is_as_healthy_as_its_datadog_keys(fleet: Fleet, tmp_path: Path) -> None:
    server = DatadogAPI(api_key="right", app_key="right")
    with server:
        good = DatadogCounts(server.url, "right", "right", limits=RateLimits())
        bad = DatadogCounts(server.url, "wrong", "right", limits=RateLimits())
        assert Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "h.db"), datadog=good).backend.healthy()[0]
        healthy, reason = Evaluator(fleet, None, SqliteDecisionLog(tmp_path / "u.db"), datadog=bad).backend.healthy()
    assert not healthy and "validate" in reason
