"""The service-catalog endpoints against a real evaluator and Prometheus: what a Backstage card and an
approval UI read, cached with an ETag, limited tokens kept to their services, readiness never recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sloplane.sandbox import PrometheusSandbox, aligned_now, http_traffic, incident_day
from tests.served_evaluator import Running, running

INCIDENT = incident_day()
"""checkout's day: 10% errors for 45 minutes, three hours ago (the demo's)."""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    traffic = http_traffic(INCIDENT, end=aligned_now(), labels={"job": "checkout"})
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), [traffic]) as sandbox:
        yield sandbox


@pytest.fixture
def served(tmp_path: Path, prometheus: PrometheusSandbox) -> Iterator[Running]:
    with running(tmp_path, prometheus.url) as evaluator:
        yield evaluator


def _get(served: Running, path: str, caller: str = "read", **headers: str) -> httpx.Response:
    return httpx.get(f"{served.url}{path}", headers={**served.headers(caller), **headers}, timeout=30)


def test_the_list_names_each_service_with_its_state_and_least_budget(served: Running) -> None:
    answer = _get(served, "/v1/catalog/services")
    assert answer.status_code == 200, answer.text
    (checkout,) = answer.json()
    assert checkout["service"] == "checkout" and checkout["slos"] == 2 and checkout["teams"] == ["payments"]
    assert checkout["state"] in {"operational", "degraded_performance", "partial_outage", "major_outage"}
    detail = _get(served, "/v1/catalog/services/checkout").json()
    left = [slo["budgetRemaining"] for slo in detail["slos"] if slo["budgetRemaining"] is not None]
    assert checkout["budgetRemaining"] == min(left)


def test_a_service_shows_its_slos_the_same_numbers_as_the_slo_endpoint_and_its_controls(served: Running) -> None:
    admin = served.headers("admin")
    freeze = httpx.post(
        f"{served.url}/v1/freezes", json={"reason": "quarter close", "service": "checkout"}, headers=admin, timeout=30
    ).json()
    detail = _get(served, "/v1/catalog/services/checkout").json()
    assert [slo["slo"] for slo in detail["slos"]] == ["checkout-availability", "checkout-staged"]
    assert [f["id"] for f in detail["freezes"]] == [freeze["id"]]
    availability = detail["slos"][0]
    slo = _get(served, "/v1/slos/checkout-availability").json()
    (measured,) = slo["measurements"]
    assert availability["budgetRemaining"] == measured["budgetRemaining"]
    assert availability["objective"] == slo["objective"] and availability["owners"]["team"] == "payments"
    assert availability["links"]["slo"] == "/v1/slos/checkout-availability"
    assert set(availability["burnRates"]) >= {"1h", "6h"} and availability["why"]
    assert detail["slos"][1]["stage"] is None or detail["slos"][1]["stage"] == "canary"


def test_readiness_answers_as_the_gate_would_and_records_nothing(served: Running) -> None:
    before = served.service.evaluator.log.count()
    answer = _get(served, "/v1/catalog/services/checkout/readiness")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["recorded"] is False and body["service"] == "checkout"
    assert body["decision"] in {"pass", "fail", "error"} and body["decisions"]
    gate = httpx.get(
        f"{served.url}/v1/gates/evaluate", params={"service": "checkout"}, headers=served.headers("gate"), timeout=30
    ).json()
    assert [d["decision"] for d in body["decisions"]] == [d["decision"] for d in gate["decisions"]]
    assert served.service.evaluator.log.count() == before + len(gate["decisions"]), "only the gate recorded"


def test_answers_carry_an_etag_and_max_age_and_a_repeat_is_304(served: Running) -> None:
    first = _get(served, "/v1/catalog/services/checkout")
    assert first.headers["cache-control"] == "private, max-age=60"
    again = _get(served, "/v1/catalog/services/checkout", **{"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == first.headers["etag"]
    other = _get(served, "/v1/catalog/services/checkout", **{"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.json() == first.json()


def test_a_token_limited_to_another_service_sees_nothing_of_checkout(served: Running) -> None:
    assert _get(served, "/v1/catalog/services", "read@search").json() == []
    for path in ("/v1/catalog/services/checkout", "/v1/catalog/services/checkout/readiness"):
        refused = _get(served, path, "read@search")
        assert refused.status_code == 403 and "limited to services search" in refused.json()["detail"]
    assert _get(served, "/v1/catalog/services/checkout", "read@checkout").status_code == 200


def test_an_unknown_service_is_404_and_no_token_is_401(served: Running) -> None:
    missing = _get(served, "/v1/catalog/services/nowhere")
    assert missing.status_code == 404 and "no SLO names service 'nowhere'" in missing.json()["detail"]
    assert httpx.get(f"{served.url}/v1/catalog/services", timeout=30).status_code == 401
