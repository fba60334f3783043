"""Backend faults reach every gate as a decision by policy, recorded with the error: never a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from sloplane.declaration.model import Declaration
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import GateRequest, Outcome
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.semantics.subjects import Fleet
from tests.conftest import minimal
from tests.fake_http import Reply, Script, serve

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EMPTY = b'{"status": "success", "data": {"resultType": "vector", "result": []}}'


def _fleet(policy: str) -> Fleet:
    data = yaml.safe_load(minimal())
    data["spec"]["gate"] = {"onBackendError": policy}
    return Fleet([Declaration.model_validate(data)])


def _decide(reply: Reply, tmp_path: Path, policy: str = "failClosed") -> tuple[Outcome, list[str], dict[str, object]]:
    log = SqliteDecisionLog(tmp_path / "log.db")
    with serve(Script([reply])) as url:
        evaluator = Evaluator(_fleet(policy), PrometheusBackend(url, timeout=0.5, retries=1, backoff=0.01), log)
        (decision,) = evaluator.gate(GateRequest(slo="checkout-availability", at=AT)).decisions
    (record,) = log.query()
    return decision.outcome, [r.code for r in decision.reasons], record


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply(500), "unavailable"),
        (Reply(body=b"<html>proxy error</html>"), "bad-response"),
        (Reply(body=EMPTY[:30]), "bad-response"),  # JSON cut off mid-answer
        (Reply(body=b'{"status": "success", "data": {"resultType": "vector", "result": [{"x": 1}]}}'), "bad-response"),
        (Reply(delay=1.0, body=EMPTY), "timeout"),
    ],
)
@pytest.mark.parametrize(("policy", "expected"), [("failClosed", Outcome.FAIL), ("failOpen", Outcome.PASS)])
def test_faults_are_decided_by_policy_and_recorded(
    reply: Reply, kind: str, policy: str, expected: Outcome, tmp_path: Path
) -> None:
    outcome, codes, record = _decide(reply, tmp_path, policy)
    assert outcome is expected and codes == ["backend-error"]
    assert kind in record["measurement"]["error"]  # type: ignore[index]
    assert record["decision"] == expected.value


def test_an_empty_answer_is_no_data(tmp_path: Path) -> None:
    outcome, codes, _ = _decide(Reply(body=EMPTY), tmp_path)
    assert (outcome, codes) == (Outcome.INCONCLUSIVE, ["no-data"])


def test_a_failed_measurement_is_not_cached(tmp_path: Path) -> None:
    log = SqliteDecisionLog(tmp_path / "log.db")
    with serve(Script([Reply(500), Reply(body=EMPTY)])) as url:
        evaluator = Evaluator(_fleet("failClosed"), PrometheusBackend(url, retries=0), log)
        failed = evaluator.gate(GateRequest(slo="checkout-availability", at=AT))
        recovered = evaluator.gate(GateRequest(slo="checkout-availability", at=AT))
    assert [r.code for r in failed.decisions[0].reasons] == ["backend-error"]
    assert [r.code for r in recovered.decisions[0].reasons] == ["no-data"]


def test_unknown_slos_and_stages_are_error_decisions_recorded_too(tmp_path: Path) -> None:
    log = SqliteDecisionLog(tmp_path / "log.db")
    with serve(Script([Reply(body=EMPTY)])) as url:
        evaluator = Evaluator(_fleet("failClosed"), PrometheusBackend(url), log)
        unknown = evaluator.gate(GateRequest(slo="checkout-availabilty", at=AT))
        stage = evaluator.gate(GateRequest(slo="checkout-availability", stage="canary", at=AT))
    assert unknown.outcome is Outcome.ERROR
    assert "did you mean 'checkout-availability'" in unknown.decisions[0].reasons[0].message
    assert stage.outcome is Outcome.INCONCLUSIVE  # an unstaged SLO gates every stage with its one objective
    assert log.count() == 2
