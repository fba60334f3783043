"""The evaluator against a real Prometheus holding synthetic history: decisions and exact numbers.

One server, eight days of one-minute history for several services, each a scenario. Every number
the evaluator reports is compared with a hand computation from the same segments (1e-9).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from sloplane.core.budget import error_budget
from sloplane.core.serialize import to_yaml
from sloplane.evaluator.http.auth import TokenStore, new_token
from sloplane.evaluator.measuring import batching
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import GateRequest, Measurement, Outcome
from sloplane.evaluator.server import ServerConfig, build_app
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.render.prometheus import rule_file
from sloplane.sandbox import (
    PrometheusSandbox,
    Traffic,
    expected_counts,
    free_port,
)
from sloplane.semantics.subjects import Fleet
from tests.conftest import ROOT, run_cli
from tests.evaluator_data import load_fleet
from tests.evaluator_scenarios import BASE, END, FLEET, START, TRAFFIC
from tests.servers import served_app, wait_until_up


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), FLEET)


@pytest.fixture(scope="module")
def prometheus(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    work = tmp_path_factory.mktemp("prometheus")
    rules = work / "recorded.rules.yaml"
    rules.write_text(to_yaml(rule_file(fleet["recorded"], fleet)))
    with PrometheusSandbox(
        work,
        list(TRAFFIC.values()),
        rule_files=[rules],
        rule_range=(END - timedelta(hours=2), END + timedelta(minutes=1)),
    ) as sandbox:
        yield sandbox


@pytest.fixture
def evaluator(fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path) -> Evaluator:
    return Evaluator(fleet, PrometheusBackend(prometheus.url), SqliteDecisionLog(tmp_path / "decisions.db"))


def _exact(traffic: Traffic, window: timedelta, at: datetime = END) -> tuple[float, float, float]:
    bad, total = expected_counts(traffic, at, window)
    return bad, total, bad / total


def _assert_close(actual: float | None, expected: float) -> None:
    assert actual is not None
    assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


def _measure(evaluator: Evaluator, name: str, at: datetime = END) -> Measurement:
    (measurement,) = evaluator.evaluate(at, [name])
    return measurement


def _gate(evaluator: Evaluator, name: str, at: datetime = END) -> tuple[Outcome, list[str]]:
    result = evaluator.gate(GateRequest(slo=name, at=at, revision="abc123"))
    (decision,) = result.decisions
    return decision.outcome, [reason.code for reason in decision.reasons]


def test_healthy_numbers_match_a_hand_computation_and_pass(evaluator: Evaluator) -> None:
    measurement = _measure(evaluator, "healthy")
    assert measurement.source == "raw" and measurement.error is None and measurement.stale_seconds is None
    for window in measurement.windows:
        bad, total, ratio = _exact(TRAFFIC["healthy"], window.window)
        _assert_close(window.error_ratio, ratio)
        _assert_close(window.events, total)
        _assert_close(window.bad_events, bad)
        _assert_close(window.burn_rate, ratio / error_budget(99.9))
    bad, total, ratio = _exact(TRAFFIC["healthy"], timedelta(days=7))
    _assert_close(measurement.period_error_ratio, ratio)
    _assert_close(measurement.period_events, total)
    _assert_close(measurement.budget_remaining, 1 - ratio / 0.001)
    assert measurement.time_to_exhaustion == timedelta(days=7) * (0.5 / 0.5)
    assert _gate(evaluator, "healthy") == (Outcome.PASS, ["budget", "alerts"])


def test_a_full_outage_fails_on_the_fast_page(evaluator: Evaluator) -> None:
    measurement = _measure(evaluator, "outage")
    fast = measurement.window(timedelta(minutes=14))
    assert fast is not None
    _assert_close(fast.error_ratio, 1.0)
    slow_window = measurement.window(timedelta(hours=1, minutes=24))
    assert slow_window is not None
    _assert_close(slow_window.error_ratio, _exact(TRAFFIC["outage"], timedelta(hours=1, minutes=24))[2])
    outcome, codes = _gate(evaluator, "outage")
    assert outcome is Outcome.FAIL
    assert codes.count("alert-active") == 2  # both page pairs (the default policy rolls back on pages)
    assert "budget-exhausted" in codes


def test_a_slow_burn_fails_on_the_slow_page_only(evaluator: Evaluator) -> None:
    measurement = _measure(evaluator, "slow")
    slow_window = measurement.window(timedelta(hours=5, minutes=36))
    assert slow_window is not None
    _assert_close(slow_window.burn_rate, 8.0)
    outcome, codes = _gate(evaluator, "slow")
    result = evaluator.log.query(slo="slow", limit=1)[0]
    alerts = [r["values"]["alert"] for r in result["reasons"] if r["code"] == "alert-active"]
    assert outcome is Outcome.FAIL and alerts == ["page 1h24m/7m"]
    assert codes[-1] == "alert-active"


def test_low_traffic_is_inconclusive(evaluator: Evaluator) -> None:
    outcome, codes = _gate(evaluator, "quiet")
    assert outcome is Outcome.INCONCLUSIVE and codes == ["low-traffic"]
    decision = evaluator.log.query(slo="quiet", limit=1)[0]
    assert decision["reasons"][0]["values"]["events"] == pytest.approx(20.0)


def test_maintenance_windows_are_taken_out_of_the_budget(evaluator: Evaluator) -> None:
    measurement = _measure(evaluator, "maintained")
    windows = [(e.start, e.end) for e in measurement.exclusions]
    assert len(windows) == 7 and all(e.kind == "maintenance" for e in measurement.exclusions)
    assert windows[-1] == (START + timedelta(days=7, hours=3), START + timedelta(days=7, hours=4))
    traffic = TRAFFIC["maintained"]
    bad, total = expected_counts(traffic, END, timedelta(days=7))
    for start, end in windows:
        excluded_bad, excluded_total = expected_counts(traffic, end, end - start)
        bad, total = bad - excluded_bad, total - excluded_total
    _assert_close(measurement.period_error_ratio, bad / total)
    _assert_close(measurement.period_events, total)
    _assert_close(measurement.budget_remaining, 1 - (bad / total) / 0.001)
    assert _gate(evaluator, "maintained")[0] is Outcome.PASS  # the outage fell inside maintenance


def test_composites_are_computed_from_their_parts(evaluator: Evaluator) -> None:
    measurement = _measure(evaluator, "journey")
    assert measurement.source == "composite"
    for window in measurement.windows:
        healthy, slow = _exact(TRAFFIC["healthy"], window.window)[2], _exact(TRAFFIC["slow"], window.window)[2]
        _assert_close(window.error_ratio, (healthy + 3 * slow) / 4)
    expected_period = (
        _exact(TRAFFIC["healthy"], timedelta(days=7))[2] + 3 * _exact(TRAFFIC["slow"], timedelta(days=7))[2]
    ) / 4
    _assert_close(measurement.period_error_ratio, expected_period)


def test_recording_rules_are_read_when_they_exist(evaluator: Evaluator) -> None:
    measurement = _measure(evaluator, "recorded")
    assert measurement.source == "recording-rules"
    assert any("sloplane:error_ratio:rate5m" in query for query in measurement.queries)
    for window in measurement.windows:
        _assert_close(window.error_ratio, BASE)  # a constant ratio: the rules' evaluation offset cannot matter
    _assert_close(measurement.period_error_ratio, BASE)


def test_queries_grow_with_windows_not_with_slos(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def sent(names: list[str]) -> tuple[int, list[Measurement]]:
        evaluator = Evaluator(fleet, PrometheusBackend(prometheus.url), SqliteDecisionLog(tmp_path / "q.db"))
        measurements = evaluator.evaluate(END, names)
        return evaluator.measurer.queries_sent, measurements

    names = ["healthy", "outage", "slow", "quiet"]
    # which SLOs have rules; then every grouped read, short enough to be packed into one query
    assert sent(names[:1])[0] == sent(names)[0] == 1 + 1
    packed = sent(names)[1]
    monkeypatch.setattr(batching, "PACK_BELOW", 0)  # every grouped read alone, as for a large fleet
    one, _ = sent(names[:1])
    four, alone = sent(names)
    assert one == four  # same windows and period, four times the SLOs, the same number of queries
    # bad and all events (two grouped reads) for 8 distinct windows (7 alert windows of a 7d SLO and the
    # 10m analysis window) and the period; freshness
    assert one == 1 + 2 * (8 + 1) + 1
    assert alone == packed


def test_a_second_gate_in_the_same_interval_asks_nothing(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    evaluator = Evaluator(fleet, PrometheusBackend(prometheus.url), SqliteDecisionLog(tmp_path / "c.db"))
    first = _gate(evaluator, "healthy")
    asked = evaluator.measurer.queries_sent
    assert _gate(evaluator, "healthy") == first and evaluator.measurer.queries_sent == asked
    fresh = Evaluator(fleet, PrometheusBackend(prometheus.url), SqliteDecisionLog(tmp_path / "f.db"))
    assert evaluator.evaluate(END, ["healthy"]) == fresh.evaluate(END, ["healthy"])
    _gate(evaluator, "healthy", END - timedelta(minutes=1))  # another instant is measured afresh
    assert evaluator.measurer.queries_sent > asked
    assert evaluator.log.count() == 3


def test_stale_data_fails_closed(evaluator: Evaluator) -> None:
    later = END + timedelta(minutes=10)
    measurement = _measure(evaluator, "healthy", later)
    assert measurement.stale_seconds == 300
    assert _gate(evaluator, "healthy", later) == (Outcome.FAIL, ["stale-data"])


def test_a_killed_prometheus_is_a_decision_by_policy_and_is_recorded(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    log = SqliteDecisionLog(tmp_path / "decisions.db")
    evaluator = Evaluator(fleet, PrometheusBackend(prometheus.url, retries=0, timeout=2), log)
    assert _gate(evaluator, "healthy")[0] is Outcome.PASS
    prometheus.kill()
    try:
        outcome, codes = _gate(evaluator, "healthy", END - timedelta(minutes=1))
        assert (outcome, codes) == (Outcome.FAIL, ["backend-error"])
        recorded = log.query(slo="healthy", limit=1)[0]
        assert recorded["decision"] == "fail" and "unavailable" in recorded["measurement"]["error"]
    finally:
        prometheus.restart()
    assert _gate(evaluator, "healthy", END - timedelta(minutes=2))[0] is Outcome.PASS
    assert log.count() == 3


def test_the_cli_gates_with_exit_codes_and_replays_history(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    (tmp_path / "fleet.yaml").write_text(FLEET)
    db = tmp_path / "cli.db"
    at = END.isoformat()

    def gate(slo: str, when: str = at) -> int:
        return run_cli(
            "gate", tmp_path / "fleet.yaml", "--slo", slo, "--prometheus", prometheus.url, "--at", when, "--db", db
        ).code

    assert gate("healthy") == 0
    assert gate("outage") == 1
    assert gate("quiet") == 3
    assert gate("no-such-slo") == 2
    before_outage = (END - timedelta(hours=1)).isoformat()
    assert gate("outage", before_outage) == 0  # back-testing: an hour earlier the gate would have passed
    listed = run_cli("decisions", "--db", db, "--format", "json")
    assert listed.code == 0 and '"decision": "fail"' in listed.stdout
    evaluated = run_cli("evaluate", tmp_path / "fleet.yaml", "--prometheus", prometheus.url, "--at", at)
    assert evaluated.code == 0 and "journey" in evaluated.stdout and "recording-rules" in evaluated.stdout


def test_sloplane_serve_end_to_end(prometheus: PrometheusSandbox, tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(FLEET)
    token, entry = new_token("ci", ["gate"])
    (tmp_path / "tokens.yaml").write_text(yaml.safe_dump({"tokens": [entry.to_dict()]}))
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "sloplane",
        "serve",
        str(tmp_path / "fleet.yaml"),
        "--prometheus",
        prometheus.url,
        "--tokens",
        str(tmp_path / "tokens.yaml"),
        "--port",
        str(port),
        "--db",
        str(tmp_path / "served.db"),
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", server)
        body = {"slo": "outage", "at": END.isoformat(), "revision": "abc123"}
        assert requests.post(f"{url}/v1/gates/evaluate", json=body, timeout=10).status_code == 401
        answer = requests.post(
            f"{url}/v1/gates/evaluate", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert answer.status_code == 200 and answer.json()["decision"] == "fail"
        cli = run_cli(
            "gate",
            tmp_path / "fleet.yaml",
            "--slo",
            "healthy",
            "--evaluator",
            url,
            "--token",
            token,
            "--at",
            END.isoformat(),
            "--format",
            "json",
        )
        assert cli.code == 0 and '"decision": "pass"' in cli.stdout
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert 'sloplane_gate_decisions_total{decision="fail",service="outage",slo="outage",stage=""} 1.0' in metrics
        assert "sloplane_backend_request_seconds_count" in metrics
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert SqliteDecisionLog(tmp_path / "served.db").count() == 2


def test_a_thousand_concurrent_gates_against_prometheus_are_all_recorded(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    token, entry = new_token("ci", ["gate"])
    config = ServerConfig(prometheus.url, tmp_path / "concurrent.db", TokenStore([entry]))
    app, evaluator = build_app(fleet, config)
    names = ["healthy", "outage", "slow", "quiet"]
    expected = {"healthy": "pass", "outage": "fail", "slow": "fail", "quiet": "inconclusive"}

    def ask(numbers: range) -> list[tuple[str, str]]:
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {token}"
            found = []
            for number in numbers:
                slo = names[number % len(names)]
                body = {"slo": slo, "at": END.isoformat(), "revision": f"r{number}"}
                found.append((slo, http.post(f"{base}/v1/gates/evaluate", json=body, timeout=60).json()["decision"]))
            return found

    with served_app(app) as base, ThreadPoolExecutor(max_workers=32) as pool:
        answers = [a for chunk in pool.map(ask, [range(start, 1000, 32) for start in range(32)]) for a in chunk]
    assert len(answers) == 1000 and all(decision == expected[slo] for slo, decision in answers)
    assert evaluator.log.count() == 1000
