"""Tokens limited to services or teams (issue 16, "Least privilege in shared pipelines").

The real service (`build_service`: evaluator, SQLite decision log, release controls, the HTTP app
under the server `serve` runs) over a fleet of three services and three teams, reading a real
Prometheus. `ledger` is shared: one SLO of team `payments`, one of team `compliance`.

- **The table.** Every route the app has is either in `CASES` (what a limited token asking about its
  own service is allowed, and what it asking about another's is refused: 403 with a reason naming
  both, counted) or in `NOT_SLO_SPECIFIC`; `test_every_route_is_in_the_table_or_declared_not_slo_specific`
  fails for a new route that is in neither, so none can be forgotten.
- Each case runs with a token limited by service (`svc-checkout`: services checkout) and one limited
  by team (`team-payments`: teams payments), both `admin`, so that scope never decides; what a team
  token may do to a service it shares with another team is tested apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from sloplane.evaluator.http.auth import Scope, TokenStore, new_token
from sloplane.evaluator.server import EvaluatorService, ServerConfig, build_service
from sloplane.sandbox import PrometheusSandbox, aligned_now, http_traffic, incident_day
from tests.conftest import run_cli
from tests.evaluator_data import load_fleet
from tests.servers import served_app

SLO = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {{name: {name}}}
spec:
  service: {service}
  owners: {{team: {team}}}
  objective: 99.5
  sli:
    http: {{metric: http_requests_total, selector: {{job: {service}}}}}
"""
OWNERS = {
    "checkout-availability": ("checkout", "payments"),
    "search-availability": ("search", "discovery"),
    "ledger-payments": ("ledger", "payments"),
    "ledger-audit": ("ledger", "compliance"),
}
FLEET = "---\n".join(SLO.format(name=name, service=service, team=team) for name, (service, team) in OWNERS.items())

LIMITED = {"svc-checkout": {"services": ["checkout"]}, "team-payments": {"teams": ["payments"]}}
"""Both `admin`: only the limit can refuse them. Each reaches `checkout-availability` and not `search-availability`."""
OWN, OTHER = "checkout-availability", "search-availability"
OWN_SERVICE, OTHER_SERVICE = "checkout", "search"


@dataclass
class Served:
    """The running evaluator, its tokens by name, and a client."""

    service: EvaluatorService
    url: str
    tokens: dict[str, str]
    http: httpx.Client

    def call(self, token: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, url, headers={"Authorization": f"Bearer {self.tokens[token]}"}, **kwargs)

    def freeze(self, service: str | None) -> str:
        """A freeze made by the unrestricted admin (of every service with None); its id."""
        body = {"reason": "test"} if service is None else {"reason": "test", "service": service}
        answer = self.call("admin", "POST", "/v1/freezes", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def incident(self, services: list[str]) -> str:
        """A minor incident (it stops no gate) opened by the unrestricted admin; its id."""
        body = {"title": "test", "severity": "minor", "services": services}
        answer = self.call("admin", "POST", "/v1/incidents", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def refusals(self) -> dict[str, float]:
        """`sloplane_auth_refusals_total` by reason, from /metrics."""
        text = self.http.get("/metrics").text
        found = re.findall(r'^sloplane_auth_refusals_total\{reason="([^"]+)"\} ([0-9.e+]+)$', text, re.M)
        return {reason: float(value) for reason, value in found}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    end = aligned_now()
    traffic = [http_traffic(incident_day(), end=end, labels={"job": job}) for job in ("checkout", "search", "ledger")]
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), traffic) as sandbox:
        yield sandbox


@pytest.fixture
def served(tmp_path: Path, prometheus: PrometheusSandbox) -> Iterator[Served]:
    """A fresh evaluator whose log holds a decision of every SLO, so reads and lists have something to hide."""
    issued = {"admin": new_token("admin", [Scope.ADMIN]), "reader": new_token("reader", [Scope.READ])}
    for name, limits in LIMITED.items():
        issued[name] = new_token(name, [Scope.ADMIN], **limits)
    issued["read-checkout"] = new_token("read-checkout", [Scope.READ], services=["checkout"])
    issued["svc-ghost"] = new_token("svc-ghost", [Scope.ADMIN], services=["checkout", "ghost"])
    tokens = TokenStore(entry for _, entry in issued.values())
    config = ServerConfig(prometheus.url, tmp_path / "decisions.db", tokens)
    service = build_service(load_fleet(tmp_path, FLEET), config)
    service.start()
    try:
        with served_app(service.app) as url, httpx.Client(base_url=url, timeout=30) as http:
            running = Served(service, url, {name: token for name, (token, _) in issued.items()}, http)
            for slo in OWNERS:
                gate = {"slo": slo, "revision": "v1"}  # one release of every service, for the retro report
                assert running.call("admin", "POST", "/v1/gates/evaluate", json=gate).status_code == 200
            yield running
    finally:
        service.close()


# -- the table --------------------------------------------------------------------------------------

Request = dict[str, Any]
"""`method`, `url` and the keyword arguments of `httpx.Client.request`."""


@dataclass(frozen=True)
class Case:
    """One route: a request about the token's own SLO or service, and one about another's.

    `acting` routes refuse the other request with 403; listing routes answer it 200 without what the
    token may not see (`hidden(answer)` is True when the answer holds something of another's).
    """

    own: Callable[[Served], Request]
    other: Callable[[Served], Request]
    hidden: Callable[[Any], bool] | None = None
    """For a list: whether the answer leaves out everything of other services."""


def _gate_post(slo: str) -> Callable[[Served], Request]:
    return lambda _: {"method": "POST", "url": "/v1/gates/evaluate", "json": {"slo": slo, "revision": "r1"}}


def _gate_get(slo: str) -> Callable[[Served], Request]:
    return lambda _: {"method": "GET", "url": "/v1/gates/evaluate", "params": {"slo": slo, "revision": "r1"}}


def _lift(service: str) -> Callable[[Served], Request]:
    return lambda served: {
        "method": "DELETE",
        "url": f"/v1/freezes/{served.freeze(service)}",
        "params": {"reason": "x"},
    }


def _resolve(service: str) -> Callable[[Served], Request]:
    return lambda served: {"method": "POST", "url": f"/v1/incidents/{served.incident([service])}/resolve"}


def _list_incidents(service: str) -> Callable[[Served], Request]:
    """List incidents, once one of `service` is open."""
    return lambda served: {"method": "GET", "url": "/v1/incidents", "params": {"opened": served.incident([service])}}


def _only_own_slos(answer: Any) -> bool:
    return (
        bool(answer) and all(item["name"] in {OWN, "ledger-payments"} for item in answer) and OTHER not in str(answer)
    )


def _only_own_report(answer: Any) -> bool:
    """A report's lines: the token's own SLOs, none of `search`."""
    return bool(answer["slos"]) and all(line["slo"] in {OWN, "ledger-payments"} for line in answer["slos"])


def _only_own_releases(answer: Any) -> bool:
    """The retro's releases: the token's own services only (the same revision of `search` is not shown)."""
    return bool(answer["releases"]) and {release["service"] for release in answer["releases"]} <= {"checkout", "ledger"}


_HOUR_AGO = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
_RECENT_HOUR = {"from": (_HOUR_AGO - timedelta(hours=1)).isoformat(), "to": _HOUR_AGO.isoformat()}


def _only_own_pages(answer: Any) -> bool:
    """The on-call report replays the token's own SLOs' alerts only."""
    return OTHER not in str(answer)


def _only_own_components(answer: Any) -> bool:
    """The status page's components: the token's own service, not `search`."""
    services = {component["id"] for component in answer["components"]}
    return OWN_SERVICE in services and OTHER_SERVICE not in services


def _only_own_sections(answer: Any) -> bool:
    """The status page's HTML: a section for the token's own service, none for `search`."""
    return f'id="component-{OWN_SERVICE}"' in answer and f'id="component-{OTHER_SERVICE}"' not in answer


def _only_own_decisions(answer: Any) -> bool:
    return bool(answer) and all(item["slo"] in {OWN, "ledger-payments"} for item in answer)


def _only_own_services(answer: Any) -> bool:
    """The catalog's services: the token's own is listed, `search` is not."""
    services = {item["service"] for item in answer}
    return OWN_SERVICE in services and OTHER_SERVICE not in services


def _no_search_control(answer: Any) -> bool:
    """Freezes or incidents listed: the own one is there, none of `search`."""
    return OWN_SERVICE in str(answer) and OTHER_SERVICE not in str(answer)


def _feedback(service: str) -> dict[str, str]:
    """A customer report about `service` over the last hour but one."""
    start = (_HOUR_AGO - timedelta(hours=1)).isoformat()
    return {"service": service, "start": start, "end": _HOUR_AGO.isoformat(), "impact": "x", "ticket": "T-1"}


CASES: dict[tuple[str, str], Case] = {
    ("POST", "/v1/gates/evaluate"): Case(_gate_post(OWN), _gate_post(OTHER)),
    ("GET", "/v1/gates/evaluate"): Case(_gate_get(OWN), _gate_get(OTHER)),
    ("GET", "/v1/slos/{name}"): Case(
        lambda _: {"method": "GET", "url": f"/v1/slos/{OWN}"}, lambda _: {"method": "GET", "url": f"/v1/slos/{OTHER}"}
    ),
    ("GET", "/v1/slos/{name}/burn"): Case(
        lambda _: {"method": "GET", "url": f"/v1/slos/{OWN}/burn"},
        lambda _: {"method": "GET", "url": f"/v1/slos/{OTHER}/burn"},
    ),
    ("GET", "/v1/slos"): Case(
        lambda _: {"method": "GET", "url": "/v1/slos"}, lambda _: {"method": "GET", "url": "/v1/slos"}, _only_own_slos
    ),
    ("GET", "/v1/decisions"): Case(
        lambda _: {"method": "GET", "url": "/v1/decisions", "params": {"slo": OWN}},
        lambda _: {"method": "GET", "url": "/v1/decisions", "params": {"slo": OTHER}},
    ),
    ("POST", "/v1/freezes"): Case(
        lambda _: {"method": "POST", "url": "/v1/freezes", "json": {"reason": "x", "service": OWN_SERVICE}},
        lambda _: {"method": "POST", "url": "/v1/freezes", "json": {"reason": "x", "service": OTHER_SERVICE}},
    ),
    ("GET", "/v1/freezes"): Case(
        lambda _: {"method": "GET", "url": "/v1/freezes", "params": {"service": OWN_SERVICE}},
        lambda _: {"method": "GET", "url": "/v1/freezes", "params": {"service": OTHER_SERVICE}},
    ),
    ("DELETE", "/v1/freezes/{freeze_id}"): Case(_lift(OWN_SERVICE), _lift(OTHER_SERVICE)),
    ("POST", "/v1/incidents"): Case(
        lambda _: {"method": "POST", "url": "/v1/incidents", "json": {"title": "x", "services": [OWN_SERVICE]}},
        lambda _: {"method": "POST", "url": "/v1/incidents", "json": {"title": "x", "services": [OTHER_SERVICE]}},
    ),
    ("GET", "/v1/incidents"): Case(
        lambda served: {"method": "GET", "url": "/v1/incidents", "params": {"marker": served.incident([OWN_SERVICE])}},
        lambda served: {
            "method": "GET",
            "url": "/v1/incidents",
            "params": {"marker": served.incident([OTHER_SERVICE])},
        },
        _no_search_control,
    ),
    ("POST", "/v1/incidents/{incident_id}/resolve"): Case(_resolve(OWN_SERVICE), _resolve(OTHER_SERVICE)),
    ("GET", "/v1/catalog/services"): Case(
        lambda _: {"method": "GET", "url": "/v1/catalog/services"},
        lambda _: {"method": "GET", "url": "/v1/catalog/services"},
        _only_own_services,
    ),
    ("GET", "/v1/catalog/services/{service}"): Case(
        lambda _: {"method": "GET", "url": f"/v1/catalog/services/{OWN_SERVICE}"},
        lambda _: {"method": "GET", "url": f"/v1/catalog/services/{OTHER_SERVICE}"},
    ),
    ("GET", "/v1/catalog/services/{service}/readiness"): Case(
        lambda _: {"method": "GET", "url": f"/v1/catalog/services/{OWN_SERVICE}/readiness"},
        lambda _: {"method": "GET", "url": f"/v1/catalog/services/{OTHER_SERVICE}/readiness"},
    ),
    ("GET", "/v1/reports/sla"): Case(
        lambda _: {"method": "GET", "url": "/v1/reports/sla", "params": {"month": "2025-10"}},
        lambda _: {"method": "GET", "url": "/v1/reports/sla", "params": {"month": "2025-10"}},
        _only_own_report,
    ),
    ("GET", "/v1/reports/budget"): Case(
        lambda _: {"method": "GET", "url": "/v1/reports/budget"},
        lambda _: {"method": "GET", "url": "/v1/reports/budget"},
        _only_own_report,
    ),
    **{
        ("GET", f"/v1/reports/{kind}"): Case(
            lambda _, kind=kind, query=query: {"method": "GET", "url": f"/v1/reports/{kind}", "params": query},
            lambda _, kind=kind, query=query: {"method": "GET", "url": f"/v1/reports/{kind}", "params": query},
            check,
        )
        for kind, query, check in (
            ("quarterly", {"quarter": "2025-Q4"}, _only_own_report),
            ("retro", {"revision": "v1"}, _only_own_releases),
            ("oncall", _RECENT_HOUR, _only_own_pages),
        )
    },
    ("GET", "/v1/reports/platform"): Case(
        lambda _: {"method": "GET", "url": "/v1/reports/platform", "params": {"service": OWN_SERVICE}},
        lambda _: {"method": "GET", "url": "/v1/reports/platform", "params": {"service": OTHER_SERVICE}},
    ),
    ("POST", "/v1/assessments"): Case(
        lambda _: {"method": "POST", "url": "/v1/assessments", "json": {"service": OWN_SERVICE, "risk": "high"}},
        lambda _: {"method": "POST", "url": "/v1/assessments", "json": {"service": OTHER_SERVICE, "risk": "high"}},
    ),
    ("POST", "/v1/feedback"): Case(
        lambda _: {"method": "POST", "url": "/v1/feedback", "json": _feedback(OWN_SERVICE)},
        lambda _: {"method": "POST", "url": "/v1/feedback", "json": _feedback(OTHER_SERVICE)},
    ),
    ("GET", "/v1/feedback"): Case(
        lambda _: {"method": "GET", "url": "/v1/feedback", "params": {"service": OWN_SERVICE}},
        lambda _: {"method": "GET", "url": "/v1/feedback", "params": {"service": OTHER_SERVICE}},
    ),
    ("GET", "/status.json"): Case(
        lambda _: {"method": "GET", "url": "/status.json"},
        lambda _: {"method": "GET", "url": "/status.json"},
        _only_own_components,
    ),
    ("GET", "/status"): Case(
        lambda _: {"method": "GET", "url": "/status"},
        lambda _: {"method": "GET", "url": "/status"},
        _only_own_sections,
    ),
}
"""What a limited token is allowed and refused, by route. `GET /v1/decisions` and `GET /v1/freezes` refuse a
filter naming another's SLO or service; what they list unfiltered: `test_lists_leave_out_what_the_token_may_not_see`."""

NOT_SLO_SPECIFIC = {
    ("GET", "/healthz"): "liveness, no token",
    ("GET", "/readyz"): "readiness, no token",
    ("GET", "/metrics"): "Prometheus scrapes it, no token",
    ("GET", "/openapi.json"): "the API's description",
    ("GET", "/docs"): "the API's description, rendered",
    ("GET", "/docs/oauth2-redirect"): "part of /docs",
}
"""Routes that neither act on nor reveal an SLO or a service."""


BY_ID = {
    ("GET", "/v1/assessments/{assessment_id}"): ("/v1/assessments", {"risk": "high"}),
    ("GET", "/v1/feedback/{report_id}"): ("/v1/feedback", None),
}
"""Routes naming a record by its id: another service's record is not found (404), so that a limited token
cannot learn which ids exist; how each record is made (the path it is posted to, and what the body adds)."""


def _app_routes(routes: Iterable[Any], prefix: str = "") -> set[tuple[str, str]]:
    """Every (method, path) the app answers other than with 405 (its catch-alls name the methods it has),
    included routers' routes among them."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI's record of `include_router`
            found |= _app_routes(included.routes, prefix + route.include_context.prefix)
            continue
        assert isinstance(route, Route), route
        if route.name != "not_allowed":
            found |= {(method, prefix + route.path) for method in route.methods or () if method != "HEAD"}
    return found


def test_every_route_is_in_the_table_or_declared_not_slo_specific(served: Served) -> None:
    routes = _app_routes(served.service.app.routes)
    missing = routes - set(CASES) - set(NOT_SLO_SPECIFIC) - set(BY_ID)
    assert not missing, f"routes neither in CASES, BY_ID nor NOT_SLO_SPECIFIC: {sorted(missing)}"
    assert set(CASES) | set(NOT_SLO_SPECIFIC) | set(BY_ID) <= routes, "the table names routes the app does not have"
    assert all(path.startswith("/v1/") or path in {"/status", "/status.json"} for _, path in CASES)
    assert not any(path.startswith("/v1/") for _, path in NOT_SLO_SPECIFIC)


@pytest.mark.parametrize("token", sorted(LIMITED))
@pytest.mark.parametrize(("method", "path"), sorted(CASES), ids=[f"{m} {p}" for m, p in sorted(CASES)])
def test_a_limited_token_is_allowed_on_its_own_and_refused_on_another(
    served: Served, token: str, method: str, path: str
) -> None:
    case = CASES[(method, path)]
    own = served.call(token, **case.own(served))
    assert 200 <= own.status_code < 300, (token, method, path, own.status_code, own.text[:300])
    before, recorded = served.refusals(), served.service.evaluator.log.count()
    other = served.call(token, **case.other(served))
    if case.hidden is not None:
        assert other.status_code == 200, other.text[:300]
        body = other.json() if other.headers["content-type"].startswith("application/json") else other.text
        assert case.hidden(body), (token, path, other.text[:500])
        return
    assert other.status_code == 403, (token, method, path, other.status_code, other.text[:300])
    detail = other.json()["detail"]
    assert f"token '{token}' is limited to" in detail, detail
    assert "search" in detail, detail  # names what was refused: the SLO or the service
    assert other.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    after = served.refusals()
    assert sum(after.values()) == sum(before.values()) + 1, (before, after)
    assert served.service.evaluator.log.count() == recorded, "a refused request recorded a decision"


@pytest.mark.parametrize("token", sorted(LIMITED))
@pytest.mark.parametrize(("method", "path"), sorted(BY_ID), ids=[f"{m} {p}" for m, p in sorted(BY_ID)])
def test_a_limited_token_reads_its_own_records_and_finds_no_others(
    served: Served, token: str, method: str, path: str
) -> None:
    posted_to, extra = BY_ID[(method, path)]

    def made(service: str) -> str:
        body = {"service": service, **(extra or {})} if extra is not None else _feedback(service)
        answer = served.call("admin", "POST", posted_to, json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    own, other = made(OWN_SERVICE), made(OTHER_SERVICE)
    assert served.call(token, method, f"{posted_to}/{own}").status_code == 200
    hidden = served.call(token, method, f"{posted_to}/{other}")
    assert hidden.status_code == 404 and OTHER_SERVICE not in hidden.text, hidden.text


def test_the_reason_names_the_token_its_limits_and_the_owner(served: Served) -> None:
    answer = served.call("svc-checkout", "POST", "/v1/gates/evaluate", json={"slo": OTHER})
    assert answer.status_code == 403
    assert answer.json() == {
        "detail": "token 'svc-checkout' is limited to services checkout; "
        "SLO 'search-availability' belongs to service 'search' (team 'discovery')"
    }
    answer = served.call("team-payments", "POST", "/v1/gates/evaluate", json={"service": "ledger"})
    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "token 'team-payments' is limited to teams payments; service 'ledger' is not one of its services "
        "and has SLOs of team 'compliance'"
    )
    assert served.refusals()["other-slo"] == 1
    assert served.refusals()["other-service"] == 1


def test_an_undeclared_slo_or_service_is_refused_without_a_hint(served: Served) -> None:
    """An unrestricted token gets `unknown-slo` with "did you mean"; a limited one must not learn names that way."""
    for body in ({"slo": "search-availabilty"}, {"service": "serch"}):
        answer = served.call("svc-checkout", "POST", "/v1/gates/evaluate", json=body)
        assert answer.status_code == 403, answer.text
        assert "is declared" in answer.json()["detail"] and "did you mean" not in answer.text
    assert served.refusals()["undeclared"] == 2
    injected = served.call("svc-checkout", "POST", "/v1/gates/evaluate", json={"slo": "x\nrefused token: forged"})
    assert answer_detail(injected).count("\n") == 0 and "'x\\nrefused" in answer_detail(injected)


def answer_detail(answer: httpx.Response) -> str:
    assert answer.status_code == 403, answer.text
    return str(answer.json()["detail"])


def test_a_service_the_token_names_but_nobody_declares_is_refused_too(served: Served) -> None:
    """Gating it would answer "no SLOs for service" with a "did you mean" naming other services."""
    gate = served.call("svc-ghost", "POST", "/v1/gates/evaluate", json={"service": "ghost"})
    assert "no SLO is declared for service 'ghost'" in answer_detail(gate)
    freeze = served.call("svc-ghost", "POST", "/v1/freezes", json={"reason": "x", "service": "ghost"})
    assert "so freezing it is refused" in answer_detail(freeze)
    assert served.call("svc-ghost", "GET", "/v1/freezes", params={"service": "ghost"}).status_code == 200


def test_break_glass_for_another_team_is_refused_before_it_is_looked_at(served: Served) -> None:
    body = {"slo": OTHER, "breakGlass": {"reason": "hotfix"}}
    assert served.call("svc-checkout", "POST", "/v1/gates/evaluate", json=body).status_code == 403
    own = served.call("svc-checkout", "POST", "/v1/gates/evaluate", json={**body, "slo": OWN}).json()
    assert own["decisions"][0]["request"]["breakGlass"] == {"reason": "hotfix", "identity": "svc-checkout"}


def test_a_body_naming_an_own_slo_and_another_service_is_refused(served: Served) -> None:
    body = {"slo": OWN, "service": OTHER_SERVICE}
    assert served.call("svc-checkout", "POST", "/v1/gates/evaluate", json=body).status_code == 403


def test_freezes_and_incidents_of_every_service_need_an_unrestricted_token(served: Served) -> None:
    global_freeze, global_incident = served.freeze(None), served.incident([])
    for token in LIMITED:
        attempts = [
            served.call(token, "POST", "/v1/freezes", json={"reason": "everything"}),
            served.call(token, "DELETE", f"/v1/freezes/{global_freeze}", params={"reason": "x"}),
            served.call(token, "POST", "/v1/incidents", json={"title": "everything"}),
            served.call(token, "POST", f"/v1/incidents/{global_incident}/resolve"),
        ]
        for answer in attempts:
            assert answer.status_code == 403, answer.text
            assert "every service needs a token that is not limited" in answer.json()["detail"]
    assert served.refusals()["every-service"] == 8
    assert served.call("admin", "DELETE", f"/v1/freezes/{global_freeze}", params={"reason": "x"}).status_code == 200


def test_a_team_token_acts_on_a_service_only_when_the_team_owns_all_of_it(served: Served) -> None:
    """`ledger` has an SLO of `payments` and one of `compliance`: a payments token gates its own SLO, but
    freezing or gating the whole service would stop compliance's releases too."""
    call = served.call
    assert call("team-payments", "POST", "/v1/gates/evaluate", json={"slo": "ledger-payments"}).status_code == 200
    assert call("team-payments", "POST", "/v1/gates/evaluate", json={"slo": "ledger-audit"}).status_code == 403
    assert call("team-payments", "POST", "/v1/freezes", json={"reason": "x", "service": "ledger"}).status_code == 403
    assert call("team-payments", "POST", "/v1/freezes", json={"reason": "x", "service": "checkout"}).status_code == 201
    assert call("team-payments", "GET", "/v1/freezes", params={"service": "ledger"}).status_code == 200  # may see it


def test_lists_leave_out_what_the_token_may_not_see(served: Served) -> None:
    served.freeze(OTHER_SERVICE)
    served.freeze(OWN_SERVICE)
    served.freeze(None)
    served.incident([OTHER_SERVICE])
    served.incident([])
    for token in ("read-checkout", "svc-checkout"):
        decisions = served.call(token, "GET", "/v1/decisions").json()
        assert {decision["slo"] for decision in decisions} == {OWN}
        assert [slo["name"] for slo in served.call(token, "GET", "/v1/slos").json()] == [OWN]
        freezes = served.call(token, "GET", "/v1/freezes").json()
        assert sorted(str(freeze["service"]) for freeze in freezes) == ["None", OWN_SERVICE]  # its own and the global
        incidents = served.call(token, "GET", "/v1/incidents").json()
        assert [incident["services"] for incident in incidents] == [[]]  # only the global one
    decisions = served.call("team-payments", "GET", "/v1/decisions").json()
    assert {decision["slo"] for decision in decisions} == {OWN, "ledger-payments"}
    everything = served.call("reader", "GET", "/v1/decisions").json()
    assert {decision["slo"] for decision in everything} == set(OWNERS)  # an unrestricted token sees it all


def test_a_limited_token_pages_its_decisions_newest_first(served: Served) -> None:
    """Merged from one query per service and per team SLO, the page is still the newest `limit`, in order."""
    for revision in ("r2", "r3"):
        for slo in OWNERS:
            served.call("admin", "POST", "/v1/gates/evaluate", json={"slo": slo, "revision": revision})
    page = served.call("team-payments", "GET", "/v1/decisions", params={"limit": 3}).json()
    assert len(page) == 3
    stamps = [decision["decidedAt"] for decision in page]
    assert stamps == sorted(stamps, reverse=True)
    assert {decision["request"]["revision"] for decision in page} <= {"r3", "r2"}
    assert "r3" in {decision["request"]["revision"] for decision in page}


def test_a_limited_read_token_still_needs_the_scope(served: Served) -> None:
    answer = served.call("read-checkout", "POST", "/v1/gates/evaluate", json={"slo": OWN})
    assert answer.status_code == 403
    assert answer.json()["detail"] == "token 'read-checkout' lacks the 'gate' scope"
    assert served.refusals()["scope"] == 1


def test_an_incident_key_cannot_fetch_another_teams_incident(served: Served) -> None:
    """Opening with a key that an open incident has answers that incident: not when it is another team's."""
    served.call("admin", "POST", "/v1/incidents", json={"title": "search down", "services": ["search"], "key": "k1"})
    body = {"title": "probe", "services": [OWN_SERVICE], "key": "k1"}
    answer = served.call("svc-checkout", "POST", "/v1/incidents", json=body)
    assert answer.status_code == 403 and "search down" not in answer.text


def test_refusals_and_unknown_tokens_are_counted_from_zero(served: Served) -> None:
    counted = served.refusals()
    assert set(counted) == {"unauthenticated", "scope", "other-slo", "other-service", "undeclared", "every-service"}
    assert served.http.get("/v1/slos", headers={"Authorization": "Bearer slp_unknown"}).status_code == 401
    assert served.refusals()["unauthenticated"] == counted["unauthenticated"] + 1


def test_unrestricted_tokens_are_unchanged(served: Served) -> None:
    """No limits: everything, as before limits existed (the old tokens files have none)."""
    for slo in OWNERS:
        assert served.call("admin", "POST", "/v1/gates/evaluate", json={"slo": slo}).status_code == 200
        assert served.call("reader", "GET", f"/v1/slos/{slo}").status_code == 200
    assert len(served.call("reader", "GET", "/v1/slos").json()) == len(OWNERS)
    assert served.call("admin", "POST", "/v1/freezes", json={"reason": "all"}).status_code == 201
    assert sum(served.refusals().values()) == 0


def test_sloplane_gate_against_an_evaluator_prints_why_it_was_refused(served: Served) -> None:
    """A pipeline's log must say why its gate was refused, not only "HTTP 403"."""
    result = run_cli("gate", "--slo", OTHER, "--evaluator", served.url, "--token", served.tokens["svc-checkout"])
    assert result.code != 0
    assert "evaluator answered HTTP 403: token 'svc-checkout' is limited to services checkout" in result.stdout
