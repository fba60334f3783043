"""`gate.requireAssessment`: a release at the policy's risk or above names an impact assessment that covers it, or
fails with the rule it broke; and `POST /v1/assessments` / `GET /v1/assessments/{id}` in the served app.

The evaluator reads a real Prometheus with backfilled history (a quiet service, `END` the last instant), its
assessments are real ones (`assessment_report` over the evaluator's own measurements) kept in a real SQLite store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from sloplane.declaration.policy import RiskLevel
from sloplane.evaluator.governance.assessment import assessment_report
from sloplane.evaluator.governance.experiment_decisions import decide_again
from sloplane.evaluator.http.auth import TokenStore, new_token
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Decision, GateRequest, Outcome
from sloplane.evaluator.server import ServerConfig, build_service
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.assessments import SqliteAssessments
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.sandbox import PrometheusSandbox, Segment, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.conftest import run_cli
from tests.evaluator_data import load_fleet
from tests.servers import served_app

END = datetime(2024, 5, 1, tzinfo=UTC)
START = END - timedelta(hours=26)


def _slo(name: str, gate: str) -> str:
    return (
        f"---\napiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: {name}}}\n"
        f"spec:\n  service: {name}\n  owners: {{team: {name}}}\n  objective: 99.9\n  window: 1d\n"
        f"  sli: {{http: {{metric: http_requests_total, selector: {{job: {name}}}}}}}\n  gate: {gate}\n"
    )


FLEET = _slo("checkout", "{requireAssessment: high}") + _slo(
    "search", "{requireAssessment: high, onBackendError: failOpen}"
)
TRAFFIC = [http_traffic([Segment(END - START, 100.0, 0.0002)], start=START, labels={"job": job}) for job in
           ("checkout", "search")]  # fmt: skip


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), TRAFFIC) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), FLEET)


@pytest.fixture
def gates(fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path) -> Iterator[tuple[Evaluator, Any]]:
    """The evaluator with its stores, and `assess(service, risk, window)` recording a real assessment at END."""
    db = tmp_path / "sloplane.db"
    store, log, controls = SqliteAssessments(db), SqliteDecisionLog(db), ReleaseControls(db)
    evaluator = Evaluator(fleet, PrometheusBackend(prometheus.url), log, controls=controls, assessments=store)

    def assess(service: str, risk: str, window: tuple[datetime, datetime]) -> str:
        report = assessment_report(fleet, service, risk, window, END, measurements=evaluator.evaluate(END),
                                   controls=controls, log=log, rows=lambda *_: [])  # fmt: skip
        return store.record(report, at=END)

    yield evaluator, assess
    for closing in (store, log, controls):
        closing.close()


def _gate(evaluator: Evaluator, slo: str, **fields: Any) -> Decision:
    (decision,) = evaluator.gate(GateRequest(slo=slo, at=END, revision="r1", **fields)).decisions
    return decision


def _codes(decision: Decision) -> list[str]:
    return [reason.code for reason in decision.reasons]


WINDOW = (END - timedelta(minutes=30), END + timedelta(minutes=30))


def test_a_release_without_an_assessment_fails_unless_it_declares_a_lower_risk(gates: tuple[Evaluator, Any]) -> None:
    evaluator, _ = gates
    missing = _gate(evaluator, "checkout")
    assert missing.outcome is Outcome.FAIL and _codes(missing)[0] == "assessment-missing"
    assert missing.reasons[0].values["risk"] == "undeclared"
    assert _gate(evaluator, "checkout", risk=RiskLevel.HIGH).outcome is Outcome.FAIL
    low = _gate(evaluator, "checkout", risk=RiskLevel.MEDIUM)
    assert low.outcome is Outcome.PASS and not any(code.startswith("assessment") for code in _codes(low))


def test_a_covering_assessment_lets_it_through_with_its_verdict(gates: tuple[Evaluator, Any]) -> None:
    evaluator, assess = gates
    lower = assess("checkout", "high", WINDOW)
    refused = _gate(evaluator, "checkout", risk=RiskLevel.CRITICAL, assessment=lower)
    assert refused.outcome is Outcome.FAIL and _codes(refused)[0] == "assessment-lower-risk"
    found = assess("checkout", "critical", WINDOW)
    decision = _gate(evaluator, "checkout", risk=RiskLevel.CRITICAL, assessment=found)
    assert decision.outcome is Outcome.PASS, _codes(decision)
    (reason,) = [reason for reason in decision.reasons if reason.code == "assessment"]
    assert reason.values["assessment"] == found
    assert reason.values["verdict"] == evaluator.assessments.get(found)["verdict"] != "defer"  # type: ignore[union-attr]
    (recorded,) = evaluator.log.query(slo="checkout", limit=1)
    assert recorded["request"]["assessment"] == found and recorded["request"]["risk"] == "critical"


@pytest.mark.parametrize(
    ("service", "window", "code"),
    [
        ("search", WINDOW, "assessment-other-service"),
        ("checkout", (END + timedelta(minutes=1), END + timedelta(hours=1)), "assessment-outside-window"),
        ("checkout", (END - timedelta(hours=1), END), "assessment-outside-window"),  # the end is not in it
    ],
)
def test_an_assessment_that_does_not_cover_the_release_fails_naming_why(
    gates: tuple[Evaluator, Any], service: str, window: tuple[datetime, datetime], code: str
) -> None:
    evaluator, assess = gates
    decision = _gate(evaluator, "checkout", assessment=assess(service, "high", window))
    assert decision.outcome is Outcome.FAIL and _codes(decision)[0] == code


def test_an_unknown_or_deferred_assessment_fails(gates: tuple[Evaluator, Any], prometheus: PrometheusSandbox) -> None:
    evaluator, _ = gates
    assert _codes(_gate(evaluator, "checkout", assessment="asm-000000000000"))[0] == "assessment-unknown"
    crafted = _gate(evaluator, "checkout", assessment="\x00' OR 1=1")  # no lookup: not an id the store makes
    assert _codes(crafted)[0] == "assessment-unknown" and crafted.outcome is Outcome.FAIL
    controls = evaluator.controls
    assert isinstance(controls, ReleaseControls)
    freeze = controls.freeze(
        "checkout", "peak season", "ops", until=END + timedelta(days=1), at=END - timedelta(hours=1)
    )
    report = assessment_report(evaluator.fleet, "checkout", "high", WINDOW, END, measurements=evaluator.evaluate(END),
                               controls=controls, log=evaluator.log, rows=lambda *_: [])  # fmt: skip
    assert report["verdict"] == "defer"  # the window overlaps the freeze
    store = evaluator.assessments
    assert isinstance(store, SqliteAssessments)
    recorded = store.record(report, at=END)
    controls.lift(freeze.id, "ops", "moved", at=END - timedelta(minutes=1))  # the gate would say `frozen` first
    deferred = _gate(evaluator, "checkout", assessment=recorded)
    assert "assessment-deferred" in _codes(deferred) and deferred.outcome is Outcome.FAIL


def test_an_unreadable_store_follows_the_backend_error_policy(gates: tuple[Evaluator, Any]) -> None:
    evaluator, _ = gates
    store = evaluator.assessments
    assert isinstance(store, SqliteAssessments)
    store.close()  # every read now fails
    closed = _gate(evaluator, "checkout", assessment="asm-000000000001")
    assert closed.outcome is Outcome.FAIL and _codes(closed)[0] == "assessment-unavailable"
    assert closed.reasons[0].values["policy"] == "failClosed"
    assert str(store.path) not in closed.reasons[0].message  # the store's location stays in the evaluator's log
    opened = _gate(evaluator, "search", assessment="asm-000000000001")  # failOpen: the measurements judge
    assert opened.outcome is Outcome.PASS and _codes(opened)[0] == "assessment-unavailable"


def test_the_served_app_assesses_records_and_gates_on_it(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    issued = {
        "pipeline": new_token("pipeline", ["gate"]),
        "search-pipeline": new_token("search-pipeline", ["gate"], services=["search"]),
        "reader": new_token("reader", ["read"]),
    }
    config = ServerConfig(prometheus.url, tmp_path / "sloplane.db", TokenStore(e for _, e in issued.values()),
                          rollup_interval=None)  # fmt: skip
    service = build_service(fleet, config)
    auth = {name: {"Authorization": f"Bearer {token}"} for name, (token, _) in issued.items()}
    try:
        with served_app(service.app) as url:
            body = {"service": "checkout", "risk": "high", "outage": "10m"}
            made = requests.post(f"{url}/v1/assessments", json=body, headers=auth["pipeline"], timeout=30)
            assert made.status_code == 201, made.text
            recorded = made.json()
            assert recorded["id"].startswith("asm-") and recorded["service"] == "checkout"
            assert recorded["risk"] == "high" and recorded["outage"] == {"minutes": 10, "defaulted": False}
            read = requests.get(f"{url}/v1/assessments/{recorded['id']}", headers=auth["reader"], timeout=10)
            assert read.status_code == 200 and read.json() == recorded
            other = requests.post(f"{url}/v1/assessments", json=body, headers=auth["search-pipeline"], timeout=10)
            assert other.status_code == 403
            hidden = requests.get(f"{url}/v1/assessments/{recorded['id']}", headers=auth["search-pipeline"], timeout=10)
            assert hidden.status_code == 404
            for field, change in (("risk", {"risk": "extreme"}), ("outage", {"outage": "soon"}),
                                  ("service", {"service": "nowhere"})):  # fmt: skip
                refused = requests.post(f"{url}/v1/assessments", json=body | change, headers=auth["pipeline"],
                                        timeout=10)  # fmt: skip
                assert refused.status_code == 422 and field in str(refused.json()["detail"][0]["loc"]), refused.text
            backwards = {"start": "2030-01-01T01:00:00Z", "end": "2030-01-01T00:00:00Z"}
            refused = requests.post(f"{url}/v1/assessments", json=body | {"window": backwards},
                                    headers=auth["pipeline"], timeout=10)  # fmt: skip
            assert refused.status_code == 422 and "window" in str(refused.json()["detail"][0]["loc"])
            gate = {"slo": "checkout", "revision": "r9", "risk": "high"}
            named = requests.post(f"{url}/v1/gates/evaluate", json=gate | {"assessment": recorded["id"]},
                                  headers=auth["pipeline"], timeout=30).json()  # fmt: skip
            codes = [reason["code"] for reason in named["decisions"][0]["reasons"]]
            assert "assessment" in codes and "assessment-missing" not in codes
            unnamed = requests.post(f"{url}/v1/gates/evaluate", json=gate, headers=auth["pipeline"], timeout=30).json()
            assert unnamed["decision"] == "fail" and unnamed["reasons"][0]["code"] == "assessment-missing"
            assert requests.get(f"{url}/v1/assessments", headers=auth["reader"], timeout=10).status_code == 405
            long = {"start": "2030-01-01T00:00:00Z", "end": "2030-03-01T00:00:00Z"}  # 59 days: over the 31 allowed
            refused = requests.post(f"{url}/v1/assessments", json=body | {"window": long}, headers=auth["pipeline"],
                                    timeout=10)  # fmt: skip
            assert refused.status_code == 422 and "at most 31 days" in refused.text
            unknown = requests.get(f"{url}/v1/assessments/asm-000000000000", headers=auth["reader"], timeout=10)
            assert unknown.status_code == 404 and unknown.json()["detail"] == "no assessment 'asm-000000000000'"
            crafted = requests.post(f"{url}/v1/gates/evaluate", json=gate | {"assessment": "\u0000"},
                                    headers=auth["pipeline"], timeout=30).json()  # fmt: skip
            assert crafted["decision"] == "error" and crafted["reasons"][0]["code"] == "invalid-request"
    finally:
        service.close()


def test_the_served_app_takes_support_feedback_under_its_own_scope(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    """`feedback` reaches `/v1/feedback` and nothing else; `read` and `gate` do not reach it; `admin` does."""
    issued = {name: new_token(name, [scope]) for name, scope in
              (("support", "feedback"), ("reader", "read"), ("pipeline", "gate"), ("root", "admin"))}  # fmt: skip
    config = ServerConfig(prometheus.url, tmp_path / "sloplane.db", TokenStore(e for _, e in issued.values()),
                          rollup_interval=None)  # fmt: skip
    service = build_service(fleet, config)
    auth = {name: {"Authorization": f"Bearer {token}"} for name, (token, _) in issued.items()}
    body = {"service": "checkout", "start": (END - timedelta(hours=3)).isoformat(),
            "end": (END - timedelta(hours=2)).isoformat(), "impact": "Checkout hung.", "ticket": "T-1"}  # fmt: skip
    try:
        with served_app(service.app) as url:
            made = requests.post(f"{url}/v1/feedback", json=body, headers=auth["support"], timeout=30)
            assert made.status_code == 201, made.text
            assert made.json()["reportedBy"] == "support" and made.json()["verdict"] in {"seen", "missed", "pending"}
            for caller in ("reader", "pipeline"):
                assert (
                    requests.post(f"{url}/v1/feedback", json=body, headers=auth[caller], timeout=10).status_code == 403
                )
            listed = requests.get(f"{url}/v1/feedback", headers=auth["root"], timeout=10)
            assert [report["id"] for report in listed.json()] == [made.json()["id"]]
            assert requests.get(f"{url}/v1/slos", headers=auth["support"], timeout=10).status_code == 403
    finally:
        service.close()


def test_the_gate_command_names_the_risk_and_the_assessment(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "slos"
    folder.mkdir()
    (folder / "fleet.yaml").write_text(FLEET)
    db = tmp_path / "sloplane.db"
    common = ["gate", str(folder), "--prometheus", prometheus.url, "--slo", "checkout", "--at", END.isoformat(),
              "--db", str(db), "--format", "json"]  # fmt: skip
    missing = run_cli(*common, "--risk", "high")
    assert missing.code == 1 and json.loads(missing.stdout)["reasons"][0]["code"] == "assessment-missing"
    assert run_cli(*common, "--risk", "low").code == 0
    with SqliteAssessments(db) as store, SqliteDecisionLog(db) as log, ReleaseControls(db) as controls:
        evaluator = Evaluator(fleet, PrometheusBackend(prometheus.url), log)
        report = assessment_report(fleet, "checkout", "high", WINDOW, END, measurements=evaluator.evaluate(END),
                                   controls=controls, log=log, rows=lambda *_: [])  # fmt: skip
        found = store.record(report, at=END)
    covered = run_cli(*common, "--risk", "high", "--assessment", found)
    assert covered.code == 0, covered.stdout
    assert run_cli(*common, "--risk", "extreme").code == 2


def test_experiments_replay_the_assessment_the_gate_found(gates: tuple[Evaluator, Any]) -> None:
    """`sloplane experiment` re-decides a recorded decision without reading the assessments again: a covered
    release stays covered, a missing assessment stays missing (so these decisions reproduce and can flip)."""
    evaluator, assess = gates
    covered = _gate(evaluator, "checkout", risk=RiskLevel.HIGH, assessment=assess("checkout", "high", WINDOW))
    missing = _gate(evaluator, "checkout", risk=RiskLevel.HIGH)
    records = {record["id"]: record for record in evaluator.log.query(slo="checkout", limit=10)}
    declaration = evaluator.fleet["checkout"]
    for decision in (covered, missing):
        outcome, reasons = decide_again(declaration, records[decision.id], 99.9, set())
        assert outcome is decision.outcome, [reason.code for reason in reasons]
        assert [r.code for r in reasons if r.code.startswith("assessment")] == [
            r.code for r in decision.reasons if r.code.startswith("assessment")
        ]
