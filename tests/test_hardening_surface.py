"""The evaluator's whole HTTP surface against every kind of caller (issue 10, "beyond the list").

The real service (`build_service`: evaluator, SQLite decision log, release controls, the HTTP app
under the server `serve` runs) reading a real Prometheus with a day of backfilled history.

- **The matrix.** Every operation the OpenAPI document publishes, with {no token, a malformed
  header, a token whose scope is too weak, a token of each scope strong enough}: 401, 401, 403 and a
  documented success, as the document's security requirement (`bearer: [scope]`) says; and with a
  token of each scope limited to the SLOs' own service (as the unlimited one) or to another (403,
  except the lists, which answer without what it may not see). `tests/test_token_scopes.py` has
  the limits route by route.
- **schemathesis with a valid token of each scope**: no server error, every status documented, and
  no answer larger than `MAX_ANSWER_BYTES` (an error body never echoes its input).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from sloplane.evaluator.http.app import openapi_document
from sloplane.evaluator.http.auth import Scope
from sloplane.evaluator.model import GateRequest
from sloplane.sandbox import PrometheusSandbox, aligned_now, http_traffic, incident_day
from tests.conftest import summarised
from tests.served_evaluator import LIMITED, SCOPES, Running, build, running

MAX_ANSWER_BYTES = 256 * 1024
"""No answer in these tests may be larger: the decision log holds a few dozen records, and an error
never repeats more than an excerpt of what it was sent."""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    traffic = http_traffic(incident_day(), end=aligned_now(), labels={"job": "checkout"})
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), [traffic]) as sandbox:
        yield sandbox


@pytest.fixture
def surface(tmp_path: Path, prometheus: PrometheusSandbox) -> Iterator[Running]:
    """A fresh evaluator whose log already holds a few gates, so every read has something to return."""
    with running(tmp_path, prometheus.url) as served:
        for revision, stage in itertools.product(("r1", "r2"), (None, "canary")):
            request = GateRequest(slo="checkout-staged", stage=stage, revision=revision, pipeline="p")
            served.service.evaluator.gate(request)
        yield served


def _document() -> dict[str, Any]:
    """The published document of the real service (loaded at import, as schemathesis needs it then)."""
    import tempfile  # noqa: PLC0415 (only for this import-time build)

    with tempfile.TemporaryDirectory() as folder:
        service, _ = build(Path(folder), "http://127.0.0.1:9")
        try:
            return openapi_document(service.app)
        finally:
            service.close()


DOCUMENT = _document()
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in {"get", "post", "put", "patch", "delete"}
]


def _required_scope(operation: dict[str, Any]) -> str | None:
    """The scope the document names for an operation, or None when it needs no token."""
    requirements = operation.get("security") or []
    scopes = [scope for requirement in requirements for scope in requirement.get("bearer", [])]
    assert len(scopes) <= 1, operation["operationId"]
    return scopes[0] if scopes else None


def _allows(granted: str, needed: str) -> bool:
    return Scope(needed) in Scope(granted).implied


STATUS_PATHS = {"/status", "/status.json"}
"""The status page: outside `/v1` (where a browser or a CDN expects it), scope `read` all the same (and public
only with `serve --public-status`, which the matrix's service is not)."""


def test_the_document_names_a_scope_for_every_v1_operation() -> None:
    for method, path, operation in OPERATIONS:
        needed = _required_scope(operation)
        assert (needed is not None) == (path.startswith("/v1/") or path in STATUS_PATHS), (method, path)
        if needed is not None:
            assert "401" in operation["responses"] and "403" in operation["responses"], (method, path)


def _valid_request(surface: Running, method: str, path: str, caller: str) -> dict[str, Any]:
    """A request the operation accepts, creating what it needs first (a freeze to lift, an incident to resolve)."""
    admin = surface.headers("admin")
    with httpx.Client(base_url=surface.url, timeout=30) as http:
        if path == "/v1/freezes/{freeze_id}":
            body = {"reason": f"for {caller}", "service": "checkout"}
            created = http.post("/v1/freezes", json=body, headers=admin).json()
            return {"url": f"/v1/freezes/{created['id']}", "params": {"reason": "matrix"}}
        if path == "/v1/assessments/{assessment_id}":
            made = http.post("/v1/assessments", json={"service": "checkout", "risk": "high"}, headers=admin)
            return {"url": f"/v1/assessments/{made.json()['id']}"}
        if path == "/v1/feedback/{report_id}":
            made = http.post("/v1/feedback", json=FEEDBACK, headers=admin)
            return {"url": f"/v1/feedback/{made.json()['id']}"}
        if path == "/v1/incidents/{incident_id}/resolve":
            body = {"title": f"for {caller}", "severity": "minor", "services": ["checkout"]}
            opened = http.post("/v1/incidents", json=body, headers=admin)
            return {"url": f"/v1/incidents/{opened.json()['id']}/resolve"}
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/v1/gates/evaluate"): {"slo": "checkout-availability", "revision": "matrix"},
        ("POST", "/v1/freezes"): {"reason": "matrix", "service": "checkout"},
        ("POST", "/v1/incidents"): {"title": "matrix", "severity": "minor", "services": ["checkout"]},
        ("POST", "/v1/assessments"): {"service": "checkout", "risk": "high"},
        ("POST", "/v1/feedback"): FEEDBACK,
    }
    params = {"slo": "checkout-availability"} if (method, path) == ("GET", "/v1/gates/evaluate") else None
    params = REPORT_QUERIES.get(path, params)
    url = path.replace("{name}", "checkout-availability").replace("{service}", "checkout")
    return {"url": url, "json": bodies.get((method, path)), "params": params}


_HOUR_AGO = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
FEEDBACK = {
    "service": "checkout",
    "start": (_HOUR_AGO - timedelta(hours=2)).isoformat(),
    "end": _HOUR_AGO.isoformat(),
    "impact": "matrix",
    "ticket": "T-1",
}
"""A customer report `POST /v1/feedback` accepts."""
REPORT_QUERIES = {
    "/v1/reports/sla": {"month": "2025-10"},
    "/v1/reports/budget": {},
    "/v1/reports/quarterly": {"quarter": "2025-Q4"},
    "/v1/reports/retro": {"revision": "r1"},
    "/v1/reports/oncall": {"from": (_HOUR_AGO - timedelta(hours=1)).isoformat(), "to": _HOUR_AGO.isoformat()},
    "/v1/reports/platform": {"service": "checkout"},
}
"""A query each report kind accepts (the reports are lists: a limited token gets its own SLOs)."""
NAMES_A_SERVICE = {"/v1/reports/platform"}
"""Reports about one service: refused (403) to a token limited to others, as the catalog's page of it is."""
NOTHING_FOR_OTHERS = {"/v1/reports/retro", "/v1/assessments/{assessment_id}", "/v1/feedback/{report_id}"}
"""A report about a release, an assessment or a customer report of checkout: a token limited to other services
finds nothing of its own there (404)."""

LISTS = {
    ("GET", "/v1/slos"),
    ("GET", "/v1/decisions"),
    ("GET", "/v1/freezes"),
    ("GET", "/v1/incidents"),
    ("GET", "/v1/catalog/services"),
    ("GET", "/v1/feedback"),
    ("GET", "/status"),
    ("GET", "/status.json"),
    *(("GET", path) for path in REPORT_QUERIES if path not in NOTHING_FOR_OTHERS | NAMES_A_SERVICE),
}
"""Operations that list rather than name an SLO or service: a token limited elsewhere gets them, without
what it may not see (`_valid_request` names no SLO or service in them)."""

MALFORMED = ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer slp_not-a-known-token", "Bearer two tokens", "x" * 9000]
"""Authorization headers that name no known token: empty, a scheme with nothing, another scheme, an
unknown token, two words, and a header far longer than any token."""


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_every_route_answers_each_kind_of_caller_as_documented(
    surface: Running, method: str, path: str, operation: dict[str, Any]
) -> None:
    needed = _required_scope(operation)
    documented = set(operation["responses"])
    with httpx.Client(base_url=surface.url, timeout=30) as http:

        def call(headers: dict[str, str], caller: str) -> httpx.Response:
            request = _valid_request(surface, method, path, caller)
            return http.request(
                method, request["url"], json=request.get("json"), params=request.get("params"), headers=headers
            )

        anonymous = call({}, "anonymous")
        malformed = [call({"Authorization": header}, "malformed") for header in MALFORMED]
        if needed is None:
            for answer in (anonymous, *malformed):
                assert answer.status_code == 200 or str(answer.status_code) in documented, (method, path, answer.text)
            return
        for answer in (anonymous, *malformed):
            assert answer.status_code == 401, (method, path, answer.status_code, answer.text[:200])
            assert answer.headers["www-authenticate"].startswith("Bearer"), answer.headers
            assert len(answer.content) < 1024
        for caller in [*SCOPES, *LIMITED]:
            scope, service = LIMITED.get(caller, (caller, "checkout"))
            answer = call(surface.headers(caller), caller)
            if not _allows(scope, needed):
                assert answer.status_code == 403, (method, path, caller, answer.status_code, answer.text[:200])
                assert f'scope="{needed}"' in answer.headers["www-authenticate"]
            elif service != "checkout" and path in NOTHING_FOR_OTHERS:
                assert answer.status_code == 404, (method, path, caller, answer.status_code, answer.text[:200])
                assert "checkout" not in answer.text
            elif service == "checkout" or (method, path) in LISTS:
                assert 200 <= answer.status_code < 300, (method, path, caller, answer.status_code, answer.text[:300])
                assert "checkout" not in answer.text or service == "checkout", (method, path, caller, answer.text[:300])
            else:
                assert answer.status_code == 403, (method, path, caller, answer.status_code, answer.text[:200])
                assert f"token '{caller}' is limited to services search" in answer.json()["detail"]
            assert str(answer.status_code) in documented, (method, path, caller, answer.status_code)


schema = schemathesis.openapi.from_dict(DOCUMENT)

ANSWERS: Counter[str] = Counter()
"""What the schemathesis runs were answered, by scope and status class, reported at the end of the module."""


report_answers = summarised("schemathesis answers", ANSWERS)


@pytest.mark.parametrize("scope", SCOPES)
@schema.parametrize()
@settings(max_examples=30, suppress_health_check=list(HealthCheck))
def test_schemathesis_with_a_token_of_each_scope(case: schemathesis.Case[Any], surface: Running, scope: str) -> None:
    """No 5xx and nothing undocumented, with each scope's token; no answer past the size bound.

    Excluded checks, each for a reason the schema cannot state: the gate answers 200 with
    `decision: error` to invalid bodies (its contract), and a schema-valid freeze can still be a
    documented 400 (`until` in the past) or 403 (a weaker scope's token).
    """
    response = case.call_and_validate(
        base_url=surface.url,
        headers=surface.headers(scope),
        excluded_checks=[negative_data_rejection, positive_data_acceptance],
    )
    ANSWERS[f"{scope} {response.status_code // 100}xx"] += 1
    ANSWERS["larger than the bound"] += len(response.content) > MAX_ANSWER_BYTES
    ANSWERS["server errors"] += response.status_code >= 500
    assert response.status_code < 500, response.text[:500]
    assert len(response.content) <= MAX_ANSWER_BYTES, (case.operation.label, len(response.content))
