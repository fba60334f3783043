"""The evaluator's HTTP API over a fake gate service and a real SQLite decision log.

The fake decides deterministically (revision `bad` fails, SLO `explode` raises, an unknown SLO is
an error) and records every decision in the real log, as the evaluator does.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection

from sloplane.evaluator.contracts import DecisionLog
from sloplane.evaluator.deciding.deployments import BurnSplit, BurnSplitError, DeploymentWindow
from sloplane.evaluator.http.app import GATE_PATH, MAX_BODY_BYTES, create_app, openapi_document
from sloplane.evaluator.http.auth import TokenStore, new_token
from sloplane.evaluator.http.contract import GateService
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.model import Decision, GateRequest, GateResult, Outcome, Reason
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from tests.evaluator_data import T0, make_measurement
from tests.servers import served_app

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 and warns on import when it finds httpx; the client works the same.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

SLOS = [
    {"name": "checkout-availability", "service": "checkout", "team": "payments", "stages": ["canary", "production"]},
    {"name": "checkout-latency", "service": "checkout", "team": "payments", "stages": []},
    {"name": "search-latency", "service": "search", "team": "search", "stages": []},
]


class FakeGateService:
    """Deterministic decisions, each appended to the real decision log."""

    def __init__(self, log: DecisionLog) -> None:
        self.log: DecisionLog = log
        self.not_ready: str | None = None
        self.ready_raises = False
        self.listing_raises = False
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def gate(self, request: GateRequest) -> GateResult:
        if request.slo == "explode":
            raise RuntimeError("backend exploded")
        names = [request.slo] if request.slo else [s["name"] for s in SLOS if s["service"] == request.service]
        decisions = tuple(self._decide(request, str(name)) for name in names)
        for decision in decisions:
            self.log.append(decision)
        return GateResult(decisions)

    def _decide(self, request: GateRequest, slo: str) -> Decision:
        with self._lock:
            number = next(self._numbers)
        known = any(summary["name"] == slo for summary in SLOS)
        outcome = Outcome.ERROR if not known else Outcome.FAIL if request.revision == "bad" else Outcome.PASS
        reason = Reason("budget", "70% of the error budget remains", {"budgetRemaining": 0.7})
        return Decision(
            id=f"fake-{number:06d}",
            decided_at=T0 + timedelta(seconds=number),
            request=request,
            slo=slo,
            stage=request.stage,
            outcome=outcome,
            reasons=(reason if known else Reason("unknown-slo", f"no SLO named {slo!r}"),),
            measurement=make_measurement(slo, request.stage, request.at or T0) if known else None,
            policy={"maxBurnRate": 14.4},
            policy_version="sha256:fake",
        )

    def slos(self) -> list[dict[str, Any]]:
        if self.listing_raises:
            raise OSError("declarations folder vanished")
        return [dict(summary) for summary in SLOS]

    def slo(self, name: str, at: datetime | None = None) -> dict[str, Any] | None:
        summary = next((dict(s) for s in SLOS if s["name"] == name), None)
        if summary is None:
            return None
        measurement = make_measurement(name, None, at or T0)
        return {**summary, "at": measurement.at.isoformat(), "measurements": [measurement.to_dict()]}

    def deployment_burn(self, name: str, at: datetime | None = None) -> BurnSplit:
        if not any(summary["name"] == name for summary in SLOS):
            raise KeyError(name)
        if name == "search-latency":
            raise BurnSplitError("SLO 'search-latency' has no event counts: burn cannot be split by deployment")
        when = at or T0
        window = DeploymentWindow(
            "checkout", "v7", "p-1", when - timedelta(hours=2), when - timedelta(hours=1), "fail", 3
        )
        return BurnSplit(
            name, None, when - timedelta(days=30), when, 1e6, 900.0, 1000.0, ((window, 300.0, 5e3),), 300.0
        )

    def ready(self) -> tuple[bool, str]:
        if self.ready_raises:
            raise ConnectionError("prometheus refused the connection")
        return (self.not_ready is None, self.not_ready or "")


def _fits_the_protocol(service: FakeGateService) -> GateService:
    """The fake satisfies the GateService protocol (`mypy --strict tests/test_evaluator_api.py` checks)."""
    return service


@dataclass
class Stack:
    app: FastAPI
    service: FakeGateService
    log: SqliteDecisionLog
    metrics: EvaluatorMetrics
    tokens: dict[str, str]
    """Caller name → token: `read`, `gate`, `admin` hold that scope."""

    def headers(self, caller: str | None) -> dict[str, str]:
        if caller is None:
            return {}
        token = self.tokens.get(caller, "slp_not-a-known-token")
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=[True, False], ids=["direct-gate", "fastapi-gate"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Every test twice: the gate's POST answered by the guard directly (as served) and by its FastAPI route,
    which must answer alike (`RequestGuard`'s `direct`)."""
    issued = {scope: new_token(scope, [scope]) for scope in ("read", "gate", "admin")}
    log = SqliteDecisionLog(tmp_path / "decisions.db")
    service = FakeGateService(log)
    metrics = EvaluatorMetrics()
    tokens = TokenStore(entry for _, entry in issued.values())
    app = create_app(_fits_the_protocol(service), tokens, metrics, direct_gate=request.param)
    yield Stack(app, service, log, metrics, {name: token for name, (token, _) in issued.items()})
    log.close()


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(stack.app) as test_client:
        yield test_client


def _gate(client: TestClient, stack: Stack, body: Any, caller: str = "gate") -> httpx.Response:
    response: httpx.Response = client.post(GATE_PATH, json=body, headers=stack.headers(caller))
    return response


# --- authentication and authorisation ---------------------------------------------------------------

ENDPOINTS = [
    ("POST", GATE_PATH, {"slo": "checkout-availability"}, "gate"),
    ("GET", "/v1/slos", None, "read"),
    ("GET", "/v1/slos/checkout-availability", None, "read"),
    ("GET", "/v1/decisions", None, "read"),
]
ALLOWED = {"read": {"read", "gate", "admin"}, "gate": {"gate", "admin"}}


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
@pytest.mark.parametrize("caller", [None, "stranger", "read", "gate", "admin"])
def test_who_may_call_what(  # noqa: PLR0917 (pytest passes parameters by name)
    client: TestClient, stack: Stack, method: str, path: str, body: Any, scope: str, caller: str | None
) -> None:
    response = client.request(method, path, json=body, headers=stack.headers(caller))
    if caller is None or caller == "stranger":
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif caller in ALLOWED[scope]:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert response.json() == {"detail": f"token {caller!r} lacks the {scope!r} scope"}
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_an_unknown_token_is_told_apart_from_none(client: TestClient, stack: Stack) -> None:
    missing = client.get("/v1/slos")
    unknown = client.get("/v1/slos", headers=stack.headers("stranger"))
    basic = client.get("/v1/slos", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert missing.json() == basic.json() == {"detail": "a bearer token is required"}
    assert unknown.json() == {"detail": "unknown bearer token"}
    assert unknown.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_an_unauthenticated_gate_request_is_401_whatever_its_body(client: TestClient, stack: Stack) -> None:
    response = client.post(GATE_PATH, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert stack.log.count() == 0


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
def test_operations_endpoints_need_no_token(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


# --- the gate ------------------------------------------------------------------------------------------


def test_gate_answers_the_decision_and_records_it(client: TestClient, stack: Stack) -> None:
    body = {"slo": "checkout-availability", "stage": "canary", "revision": "v7", "pipeline": "p-1", "rollout": "co"}
    response = _gate(client, stack, body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["decision"] == "pass"
    assert answer["reasons"] == [
        {
            "code": "budget",
            "message": "70% of the error budget remains",
            "values": {"budgetRemaining": 0.7},
            "slo": "checkout-availability",
            "stage": "canary",
        }
    ]
    (decision,) = answer["decisions"]
    assert decision["request"] == {**body, "service": None, "at": None, "requestedBy": "gate", "breakGlass": None,
                                   "changeType": None, "risk": None, "assessment": None}  # fmt: skip
    assert stack.log.query() == [decision]


def test_a_failing_release_is_a_200_with_fail(client: TestClient, stack: Stack) -> None:
    response = _gate(client, stack, {"slo": "checkout-availability", "revision": "bad"})
    assert (response.status_code, response.json()["decision"]) == (200, "fail")


def test_a_service_request_decides_each_of_its_slos(client: TestClient, stack: Stack) -> None:
    answer = _gate(client, stack, {"service": "checkout", "stage": "canary"}).json()
    assert [d["slo"] for d in answer["decisions"]] == ["checkout-availability", "checkout-latency"]
    assert answer["decision"] == "pass"
    assert stack.log.count() == 2


def test_at_reaches_the_service_as_an_aware_instant(client: TestClient, stack: Stack) -> None:
    answer = _gate(client, stack, {"slo": "checkout-availability", "at": "2026-11-01T10:00:00+01:00"}).json()
    assert answer["decisions"][0]["request"]["at"] == "2026-11-01T10:00:00+01:00"
    assert answer["decisions"][0]["evaluatedAt"] == "2026-11-01T10:00:00+01:00"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body: Invalid JSON"),
        (b"", "body: Input should be an object"),
        (b"[1, 2]", "body: Input should be an object"),
        (b"{}", "give `slo` or `service`"),
        (b'{"slo": null, "service": null, "stage": "canary"}', "give `slo` or `service`"),
        (b'{"slo": 3}', "slo: Input should be a valid string"),
        (b'{"slo": ""}', "slo: String should have at least 1 character"),
        (b'{"slo": "a", "revison": "v1"}', "revison: Extra inputs are not permitted"),
        (b'{"slo": "a", "at": "2026-11-01T10:00:00"}', "at: Input should have timezone info"),
        (b'{"slo": "a", "at": "yesterday"}', "at: Input should be a valid datetime"),
    ],
)
def test_an_invalid_body_is_a_200_error_saying_why(client: TestClient, stack: Stack, body: bytes, message: str) -> None:
    response = client.post(GATE_PATH, content=body, headers=stack.headers("gate"))
    assert response.status_code == 200
    answer = response.json()
    assert answer["decision"] == "error"
    assert answer["decisions"] == []
    (reason,) = answer["reasons"]
    assert reason["code"] == "invalid-request"
    assert reason["message"].startswith("the gate request is invalid: ")
    assert message in reason["message"]
    assert reason["values"]["errors"]
    assert stack.log.count() == 0


def test_an_oversized_body_is_a_200_error(client: TestClient, stack: Stack) -> None:
    padding = "x" * (MAX_BODY_BYTES + 1)
    response = client.post(
        GATE_PATH, json={"slo": "checkout-availability", "pipeline": padding}, headers=stack.headers("gate")
    )
    assert response.status_code == 200
    assert response.json()["decision"] == "error"
    assert (
        response.json()["reasons"][0]["message"]
        == f"the gate request is invalid: body: larger than {MAX_BODY_BYTES} bytes"
    )
    assert stack.log.count() == 0


def test_an_evaluator_fault_is_a_200_error_naming_it(
    client: TestClient, stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="sloplane.evaluator.http.app"):
        response = _gate(client, stack, {"slo": "explode", "revision": "v1"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["decision"] == "error"
    assert answer["reasons"] == [
        {
            "code": "internal-error",
            "message": "the evaluator failed: RuntimeError: backend exploded",
            "values": {"exception": "RuntimeError"},
            "slo": None,
            "stage": None,
        }
    ]
    assert "backend exploded" in caplog.text
    assert stack.tokens["gate"] not in caplog.text


def test_an_unknown_service_is_an_error_without_decisions(client: TestClient, stack: Stack) -> None:
    answer = _gate(client, stack, {"service": "nobody"}).json()
    assert answer == {"decision": "error", "reasons": [], "decisions": []}


# --- metrics ---------------------------------------------------------------------------------------------


def test_metrics_count_each_decision_with_its_service(client: TestClient, stack: Stack) -> None:
    _gate(client, stack, {"slo": "checkout-availability", "stage": "canary"})
    _gate(client, stack, {"slo": "search-latency", "revision": "bad"})
    _gate(client, stack, {"slo": "a", "at": "never"})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    checkout = 'decision="pass",service="checkout",slo="checkout-availability",stage="canary"'
    assert f"sloplane_gate_decisions_total{{{checkout}}} 1.0" in text
    assert 'sloplane_gate_decisions_total{decision="fail",service="search",slo="search-latency",stage=""} 1.0' in text
    assert 'sloplane_gate_decisions_total{decision="error",service="",slo="",stage=""} 1.0' in text
    assert "sloplane_decision_seconds_count 3.0" in text


def test_an_undeclared_slo_is_no_label_but_its_declared_service_is(client: TestClient, stack: Stack) -> None:
    _gate(client, stack, {"slo": "not-declared", "service": "checkout"})
    _gate(client, stack, {"slo": "invented", "service": "invented-too"})
    text = client.get("/metrics").text
    assert 'decision="error",service="checkout",slo="",stage=""} 1.0' in text
    assert 'decision="error",service="",slo="",stage=""} 1.0' in text
    assert "not-declared" not in text and "invented" not in text


def test_a_failing_slo_listing_costs_the_labels_not_the_answer(
    client: TestClient, stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Unable to tell declared names from invented ones, nothing the caller named becomes a label."""
    stack.service.listing_raises = True
    with caplog.at_level(logging.ERROR, logger="sloplane.evaluator.http.app"):
        assert _gate(client, stack, {"slo": "search-latency"}).json()["decision"] == "pass"
    assert 'decision="pass",service="",slo="",stage=""} 1.0' in client.get("/metrics").text
    assert "declarations folder vanished" in caplog.text


# --- reading ---------------------------------------------------------------------------------------------


def test_slos_are_listed(client: TestClient, stack: Stack) -> None:
    assert client.get("/v1/slos", headers=stack.headers("read")).json() == SLOS


def test_one_slo_now_or_at_an_instant(client: TestClient, stack: Stack) -> None:
    read = stack.headers("read")
    assert client.get("/v1/slos/search-latency", headers=read).json()["at"] == T0.isoformat()
    at = client.get("/v1/slos/search-latency", params={"at": "2026-10-01T00:00:00Z"}, headers=read).json()["at"]
    assert at == "2026-10-01T00:00:00+00:00"
    assert client.get("/v1/slos/search-latency", params={"at": "2026-10-01"}, headers=read).status_code == 422


def test_an_unknown_slo_is_404(client: TestClient, stack: Stack) -> None:
    response = client.get("/v1/slos/nope", headers=stack.headers("read"))
    assert (response.status_code, response.json()) == (404, {"detail": "no SLO named 'nope'"})


def test_decisions_are_queried_with_filters(client: TestClient, stack: Stack) -> None:
    for revision in ("v1", "bad", "v2"):
        _gate(client, stack, {"slo": "checkout-availability", "stage": "canary", "revision": revision})
    _gate(client, stack, {"slo": "search-latency", "revision": "v2"})
    read = stack.headers("read")

    def revisions(**params: Any) -> list[str]:
        response = client.get("/v1/decisions", params=params, headers=read)
        assert response.status_code == 200
        return [decision["request"]["revision"] for decision in response.json()]

    assert revisions() == ["v2", "v2", "bad", "v1"]
    assert revisions(slo="checkout-availability", limit=2) == ["v2", "bad"]
    assert revisions(outcome="fail") == ["bad"]
    assert revisions(revision="v2", stage="canary") == ["v2"]
    first = (T0 + timedelta(seconds=1)).isoformat()
    assert revisions(since=(T0 + timedelta(seconds=3)).isoformat()) == ["v2", "v2"]
    assert revisions(until=first) == ["v1"]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"outcome": "maybe"}, {"since": "2026-11-26T12:00:00"}]
)
def test_bad_decision_queries_are_422(client: TestClient, stack: Stack, params: dict[str, Any]) -> None:
    assert client.get("/v1/decisions", params=params, headers=stack.headers("read")).status_code == 422


# --- health ----------------------------------------------------------------------------------------------


def test_ready_or_not_with_the_reason(client: TestClient, stack: Stack) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "reason": None}
    stack.service.not_ready = "prometheus at http://prom:9090 does not answer"
    response = client.get("/readyz")
    assert (response.status_code, response.json()["reason"]) == (503, stack.service.not_ready)
    stack.service.ready_raises = True
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "the readiness check failed: ConnectionError: prometheus refused the connection"
    assert client.get("/healthz").json() == {"status": "ok"}


# --- OpenAPI ---------------------------------------------------------------------------------------------


def test_openapi_document_describes_paths_security_and_shapes(client: TestClient, stack: Stack) -> None:
    document = client.get("/openapi.json").json()
    assert document == openapi_document(stack.app)
    assert document["info"]["title"] == "sloplane evaluator"
    assert set(document["paths"]) == {
        GATE_PATH,
        "/v1/slos",
        "/v1/slos/{name}",
        "/v1/slos/{name}/burn",
        "/v1/decisions",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "slp_<random>",
        "description": "A sloplane token (`sloplane token new`); its scopes decide which endpoints it may call.",
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert operation["description"]
            assert ("security" in operation) == path.startswith("/v1/")
    gate = document["paths"][GATE_PATH]["post"]
    body_schema = gate["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/GateRequest"}
    assert set(document["components"]["schemas"]["GateRequest"]["properties"]) == {
        "slo",
        "service",
        "stage",
        "revision",
        "pipeline",
        "rollout",
        "at",
        "breakGlass",
        "risk",
        "assessment",
        "changeType",
    }
    assert gate["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GateAnswer"
    }


def test_openapi_document_is_a_copy(stack: Stack) -> None:
    document = openapi_document(stack.app)
    document["paths"].clear()
    assert openapi_document(stack.app)["paths"]


# --- schemathesis ---------------------------------------------------------------------------------------


def _published_document() -> dict[str, Any]:
    """The document alone (it depends on no service state), for schemathesis to generate cases from.

    Loaded at import rather than from a fixture: schemathesis' lazy `from_fixture` loader does not
    run under pytest 9 (it sets `Function._nodeid`, which pytest 9 no longer has).
    """
    with tempfile.TemporaryDirectory() as folder, SqliteDecisionLog(Path(folder) / "unused.db") as log:
        return openapi_document(create_app(FakeGateService(log), TokenStore([]), EvaluatorMetrics()))


schema = schemathesis.openapi.from_dict(_published_document())


@pytest.fixture
def served(stack: Stack) -> Iterator[str]:
    with served_app(stack.app) as base_url:
        yield base_url


@schema.parametrize()
@settings(max_examples=30, suppress_health_check=list(HealthCheck))
def test_every_answer_conforms_to_the_published_schema(case: schemathesis.Case[Any], stack: Stack, served: str) -> None:
    """No 5xx, and every answer as documented, over real HTTP. The gate answers 200 to invalid bodies by design."""
    response = case.call_and_validate(
        base_url=served, headers=stack.headers("admin"), excluded_checks=[negative_data_rejection]
    )
    assert response.status_code < 500


# --- under a real server ----------------------------------------------------------------------------------


def test_a_thousand_concurrent_gate_calls_are_all_answered_and_recorded(stack: Stack) -> None:
    headers = stack.headers("gate")

    def ask(numbers: range) -> list[tuple[int, str]]:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            answers = [http.post(GATE_PATH, json={"slo": "checkout-availability", "revision": f"{n}"}) for n in numbers]
        return [(answer.status_code, answer.json()["decision"]) for answer in answers]

    with served_app(stack.app) as base, ThreadPoolExecutor(max_workers=32) as pool:
        chunks = [range(start, 1000, 32) for start in range(32)]
        answers = [answer for chunk in pool.map(ask, chunks) for answer in chunk]
    assert answers == [(200, "pass")] * 1000
    assert stack.log.count() == 1000
    assert len({record["request"]["revision"] for record in stack.log.iter_all()}) == 1000
    text, _ = stack.metrics.render()
    assert b"sloplane_decision_seconds_count 1000.0" in text


# --- break-glass and burn -----------------------------------------------------------------------------


def test_break_glass_is_recorded_with_the_tokens_name_and_needs_admin(client: TestClient, stack: Stack) -> None:
    body = {"slo": "checkout-availability", "revision": "v7", "breakGlass": {"reason": "INC-42 hotfix"}}
    answer = client.post(GATE_PATH, json=body, headers=stack.headers("admin")).json()
    (decision,) = answer["decisions"]
    assert decision["request"]["breakGlass"] == {"reason": "INC-42 hotfix", "identity": "admin"}
    (recorded,) = stack.log.query(limit=1)
    assert recorded["request"]["breakGlass"] == {"reason": "INC-42 hotfix", "identity": "admin"}
    refused = client.post(GATE_PATH, json=body, headers=stack.headers("gate"))
    assert refused.status_code == 200
    assert refused.json()["decision"] == "error"
    assert refused.json()["reasons"][0]["code"] == "break-glass-refused"
    assert stack.log.count() == 1  # the refused override decided nothing
    empty = client.post(GATE_PATH, json={**body, "breakGlass": {"reason": ""}}, headers=stack.headers("admin"))
    assert empty.json()["decision"] == "error" and empty.json()["reasons"][0]["code"] == "invalid-request"


def test_change_type_reaches_the_decision_and_an_unknown_one_is_named(client: TestClient, stack: Stack) -> None:
    body = {"slo": "checkout-availability", "revision": "v7", "changeType": "security"}
    (decision,) = _gate(client, stack, body).json()["decisions"]
    assert decision["request"]["changeType"] == "security"
    assert stack.log.query(limit=1)[0]["request"]["changeType"] == "security"
    refused = _gate(client, stack, {**body, "changeType": "refactor"}).json()
    assert refused["decision"] == "error" and refused["reasons"][0]["code"] == "invalid-request"
    assert "changeType" in refused["reasons"][0]["message"]
    assert stack.log.count() == 1


def test_burn_report_splits_deployments_from_background(client: TestClient, stack: Stack) -> None:
    response = client.get("/v1/slos/checkout-availability/burn", headers=stack.headers("read"))
    assert response.status_code == 200
    report = response.json()
    assert report["budgetConsumed"] == pytest.approx(0.9)
    assert report["deploymentBudgetConsumed"] == pytest.approx(0.3)
    assert report["backgroundBudgetConsumed"] == pytest.approx(0.6)
    assert report["deployments"][0]["rolledBack"] is True
    assert client.get("/v1/slos/nope/burn", headers=stack.headers("read")).status_code == 404
    unsplittable = client.get("/v1/slos/search-latency/burn", headers=stack.headers("read"))
    assert unsplittable.status_code == 409 and "no event counts" in unsplittable.json()["detail"]
    assert client.get("/v1/slos/checkout-availability/burn").status_code == 401


def test_get_decides_like_post_for_pollers(client: TestClient, stack: Stack) -> None:
    params = {"slo": "checkout-availability", "stage": "canary", "revision": "bad", "pipeline": "p-9"}
    answer = client.get(GATE_PATH, params=params, headers=stack.headers("gate"))
    assert answer.status_code == 200 and answer.json()["decision"] == "fail"
    (recorded,) = stack.log.query(limit=1)
    assert recorded["request"]["revision"] == "bad" and recorded["request"]["pipeline"] == "p-9"
    assert recorded["request"]["requestedBy"] == "gate"
    nothing = client.get(GATE_PATH, params={"stage": "canary"}, headers=stack.headers("gate")).json()
    assert nothing["decision"] == "error" and nothing["reasons"][0]["code"] == "invalid-request"
    assert client.get(GATE_PATH, params=params, headers=stack.headers("read")).status_code == 403


def test_a_client_gone_mid_body_gets_nothing_decided_recorded_or_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A body cut off by a disconnect is not a request: half of `{"slo": ...}` must not be decided (it could
    even parse), and a client that left is not an evaluator fault. Both routes alike."""
    import asyncio  # noqa: PLC0415 - this test alone drives the ASGI app by hand

    token = stack.tokens["gate"]
    scope = {
        "type": "http",
        "method": "POST",
        "path": GATE_PATH,
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")],
        "query_string": b"",
    }
    parts: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"slo": "checkout-availability"}', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with caplog.at_level(logging.WARNING):
        asyncio.run(stack.app(scope, receive, send))
    assert stack.log.count() == 0
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] in ([], [499])
    assert "unexpected fault" not in caplog.text
