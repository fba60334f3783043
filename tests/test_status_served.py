"""`/status` and `/status.json` served by a real evaluator over a real Prometheus: who sees which components,
the public page naming nothing it does not show, the bars from the rollup store, the cache headers, and the
public page in headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from math import fsum
from pathlib import Path

import httpx
import pytest
from selenium import webdriver

from sloplane.evaluator.history.rollup import roll_up
from sloplane.evaluator.history.status import DAYS, INDICATOR
from sloplane.evaluator.history.status_board import PUBLIC_WHY
from sloplane.evaluator.http.auth import TokenStore, new_token
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Rollup
from sloplane.evaluator.server import ServerConfig, build_service
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.interop import load_paths
from sloplane.sandbox import PrometheusSandbox, aligned_now, free_port, http_traffic, incident_day
from sloplane.semantics.subjects import Fleet
from tests.browser import open_page, screenshot
from tests.servers import served_app, wait_until_up

pytest_plugins = ("tests.browser",)

END = aligned_now()
DECLARATIONS = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: checkout-availability}
spec:
  service: checkout
  owners: {team: payments}
  objective: 99.9
  statusPage: {public: true}
  sli:
    http: {metric: http_requests_total, selector: {job: checkout}}
---
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: checkout-ledger}
spec:
  service: checkout
  owners: {team: ledger}
  objective: 99.5
  sli:
    http: {metric: http_requests_total, selector: {job: checkout}}
---
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: search-availability}
spec:
  service: search
  owners: {team: discovery}
  objective: 99.5
  sli:
    http: {metric: http_requests_total, selector: {job: search}}
"""
INCIDENT_TITLE = "revision abc123 broke checkout and search"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    checkout = http_traffic(incident_day(), end=END, labels={"job": "checkout"})
    search = http_traffic(incident_day(incident_ratio=0.3), end=END, labels={"job": "search"})
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), [checkout, search]) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    path = tmp_path_factory.mktemp("slos") / "slos.yaml"
    path.write_text(DECLARATIONS, encoding="utf-8")
    loaded = load_paths([path])
    assert not loaded.errors
    return Fleet(loaded.declarations)


@pytest.fixture(scope="module")
def rows(fleet: Fleet, prometheus: PrometheusSandbox) -> list[Rollup]:
    """The history's hours, as the periodic rollup would have written them."""
    rolled = roll_up(fleet, PrometheusBackend(prometheus.url), END - timedelta(days=2), END)
    assert rolled.rows and not rolled.failed
    return rolled.rows


class Served:
    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        return httpx.get(self.url + path, headers=headers, timeout=60)


@contextmanager
def _serving(
    folder: Path, fleet: Fleet, prometheus: PrometheusSandbox, rows: list[Rollup], public: bool
) -> Iterator[Served]:
    """`serve` over the two SLOs, the rows in its database, a major incident open on both services."""
    db = folder / "decisions.db"
    store = SqliteRollups(db)
    store.write(rows, END)
    store.close()
    issued = {
        "read": new_token("read", ["read"]),
        "read@search": new_token("read@search", ["read"], services=["search"]),
        "read@payments": new_token("read@payments", ["read"], teams=["payments"]),
    }
    tokens = TokenStore(entry for _, entry in issued.values())
    config = ServerConfig(prometheus.url, db, tokens, public_status=public, status_name="Example", rollup_interval=None)
    service = build_service(fleet, config)
    service.controls.open_incident(INCIDENT_TITLE, "major", "oncall", services=["checkout", "search"])
    service.start()
    try:
        with served_app(service.app) as url:
            yield Served(url, {name: token for name, (token, _) in issued.items()})
    finally:
        service.close()


@pytest.fixture(params=[True, False], ids=["public", "private"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, fleet: Fleet, prometheus: PrometheusSandbox, rows: list[Rollup]
) -> Iterator[Served]:
    """Either way, what a token sees is the same."""
    with _serving(tmp_path, fleet, prometheus, rows, request.param) as running:
        yield running


@pytest.fixture
def public(tmp_path: Path, fleet: Fleet, prometheus: PrometheusSandbox, rows: list[Rollup]) -> Iterator[Served]:
    with _serving(tmp_path, fleet, prometheus, rows, True) as running:
        yield running


@pytest.fixture
def private(tmp_path: Path, fleet: Fleet, prometheus: PrometheusSandbox, rows: list[Rollup]) -> Iterator[Served]:
    with _serving(tmp_path, fleet, prometheus, rows, False) as running:
        yield running


def _names(page: dict[str, object]) -> list[str]:
    return [str(component["id"]) for component in page["components"]]  # type: ignore[attr-defined]


def test_a_read_token_sees_every_service_and_the_incident_as_written(served: Served) -> None:
    answer = served.get("/status.json", "read")
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert _names(page) == ["checkout", "search"]
    assert [incident["name"] for incident in page["incidents"]] == [INCIDENT_TITLE]
    assert page["page"]["name"] == "Example"
    assert answer.headers["cache-control"] == "private, max-age=60"
    assert "authorization" in answer.headers["vary"].lower()


def test_a_token_limited_to_search_sees_search_alone(served: Served) -> None:
    page = served.get("/status.json", "read@search").json()
    assert _names(page) == ["search"]
    assert [[c["id"] for c in incident["components"]] for incident in page["incidents"]] == [["search"]]


def test_a_token_limited_to_a_team_sees_its_slos_of_a_shared_service_and_no_others(
    served: Served, rows: list[Rollup]
) -> None:
    page = served.get("/status.json", "read@payments").json()
    assert _names(page) == ["checkout"]
    (checkout,) = page["components"]
    assert [slo["slo"] for slo in checkout["sloplane"]["slos"]] == ["checkout-availability"]
    assert "checkout-ledger" not in str(page)
    theirs = [row for row in rows if row.slo == "checkout-availability" and row.total_events]
    total = fsum(day["events"] or 0.0 for day in checkout["sloplane"]["days"])
    assert total == pytest.approx(fsum(row.counted_total_events or 0.0 for row in theirs), rel=1e-9)  # theirs only


def test_the_states_agree_with_the_catalog(served: Served) -> None:
    page = served.get("/status.json", "read").json()
    for component in page["components"]:
        card = served.get(f"/v1/catalog/services/{component['id']}", "read").json()
        assert component["status"] == card["state"]
        assert [slo["slo"] for slo in component["sloplane"]["slos"]] == [slo["slo"] for slo in card["slos"]]


def test_the_bars_are_the_stores_rows_day_by_day(served: Served, rows: list[Rollup]) -> None:
    page = served.get("/status.json", "read").json()
    for component in page["components"]:
        days = component["sloplane"]["days"]
        assert len(days) == DAYS
        slos = {slo["slo"] for slo in component["sloplane"]["slos"]}
        own = [row for row in rows if row.slo in slos]
        for day in days:
            start = datetime.fromisoformat(day["day"]).replace(tzinfo=UTC)
            inside = [row for row in own if start <= row.start < start + timedelta(days=1) and row.total_events]
            if not inside:
                assert day["events"] is None
                continue
            assert day["events"] == pytest.approx(fsum(row.counted_total_events or 0.0 for row in inside), rel=1e-9)
            assert day["badEvents"] == pytest.approx(fsum(row.counted_bad_events or 0.0 for row in inside), rel=1e-9)
        assert sum(day["events"] is not None for day in days) >= 2  # the two days rolled up


def test_a_repeat_with_the_etag_is_304(served: Served) -> None:
    first = served.get("/status", "read")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    assert first.headers["content-security-policy"].startswith("default-src 'none'")  # no script, nothing fetched
    again = served.get("/status", "read", **{"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_an_unknown_token_is_refused_even_where_the_page_is_public(served: Served) -> None:
    unknown = served.get("/status.json", "slp_not_a_token")
    assert unknown.status_code == 401 and "invalid_token" in unknown.headers["www-authenticate"]


def test_no_token_is_refused_when_the_page_is_not_public(private: Served) -> None:
    for path in ("/status", "/status.json"):
        answer = private.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"] == "Bearer"


def test_no_token_gets_the_public_slos_and_nothing_else(public: Served) -> None:
    answer = public.get("/status.json")
    assert answer.status_code == 200
    page = answer.json()
    assert _names(page) == ["checkout"]
    assert answer.headers["cache-control"] == "public, max-age=60"
    assert [(i["name"], [c["id"] for c in i["components"]]) for i in page["incidents"]] == [
        ("Service disruption", ["checkout"])
    ]
    for secret in ("search", "abc123", "discovery", "checkout-ledger", "127.0.0.1"):
        assert secret not in answer.text  # the private service and SLO, the incident's title, a team, a backend
    for slo in page["components"][0]["sloplane"]["slos"]:
        assert slo["why"] == PUBLIC_WHY[slo["state"]]
    indicator, description = INDICATOR[page["components"][0]["status"]]
    assert page["status"] == {"indicator": indicator, "description": description}  # from checkout alone


def test_the_public_page_in_a_browser(
    public: Served, browser: webdriver.Chrome, browser_without_javascript: webdriver.Chrome
) -> None:
    page = open_page(browser, public.url + "/status")
    assert page.problems() == []
    assert page.count("section.component") == 1
    assert page.count("section.component svg.bars rect") == DAYS
    assert page.count("script") == 0
    assert "Service disruption" in page.text() and "search" not in page.text()
    screenshot(browser, "status-served-public")
    plain = open_page(browser_without_javascript, public.url + "/status")
    assert "checkout" in plain.text()


@pytest.mark.parametrize("declared", [False, True], ids=["none-public", "one-public"])
def test_serve_warns_when_the_public_page_would_show_nothing(tmp_path: Path, declared: bool) -> None:
    """`--public-status` with no SLO marked public serves an empty page: said at start, not left silent."""
    text = DECLARATIONS if declared else DECLARATIONS.replace("  statusPage: {public: true}\n", "")
    (tmp_path / "slos.yaml").write_text(text, encoding="utf-8")
    _, entry = new_token("read", ["read"])
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(json.dumps(TokenStore([entry]).to_dict()))
    tokens.chmod(0o600)
    port = free_port()
    command = [sys.executable, "-m", "sloplane", "serve", str(tmp_path / "slos.yaml"), "--tokens", str(tokens)]
    command += ["--prometheus", f"http://127.0.0.1:{free_port()}", "--db", str(tmp_path / "decisions.db")]
    command += ["--port", str(port), "--public-status", "--rollup-interval", "off"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    warned = "no SLO says statusPage: {public: true}" in stderr.decode()
    assert warned is not declared
