"""Support feedback classified against a constructed history, blind spots per service, and the HTTP routes.

The history (rows written into a real SQLite rollup store, decisions into a real decision log), over 2 March 2026:
- checkout (critical, team payments): `checkout-availability` (unstaged, UTC) and `checkout-latency` (canary and
  production stages), both 99%, 1,000 events an hour and 5 bad ones (burn 0.5×) unless `BAD` says otherwise;
  the canary stage of `checkout-latency` burns 3× all day (only production counts);
- search (team discovery): 99.5% in Asia/Kolkata, its hours starting at :30 UTC, 2 bad events an hour (0.4x);
- reports: a ratio-only SLI (never rolled up); legacy: an archived SLO only.
Every expected classification below is worked out in the test from the rows it wrote (`_burn` is the formula
written out again), never taken from the classifier.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner, Result

from sloplane.cli import feedback as feedback_cli
from sloplane.cli.main import _consoles
from sloplane.evaluator.governance.feedback import ROLLUP_LAG, Sources, classify, classify_report, reclassify_due
from sloplane.evaluator.governance.feedback_blind_spots import agenda_source, blind_spots
from sloplane.evaluator.http.auth import Scope, TokenStore, new_token
from sloplane.evaluator.http.feedback_routes import feedback_router
from sloplane.evaluator.http.guard import RouteGuard, validation_failed
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Outcome, Reason, Rollup
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.feedback import FeedbackReport, SqliteFeedback, checked_report
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.semantics.subjects import Fleet
from tests.evaluator_data import load_fleet, make_decision
from tests.rollup_history import START, UNTIL

pytest_plugins = ("tests.rollup_history",)

DAY = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
AT = DAY + timedelta(days=2)
"""When reports are classified: every hour of the day is long rolled up."""
EVENTS = 1000.0
BASE_BAD = 5.0
SEARCH_BAD = 2.0
"""search's bad events an hour: 0.4x of its 99.5% (5 would be exactly 1x)."""


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


FLEET = textwrap.dedent(
    """\
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {name: checkout-availability}
    spec:
      service: checkout
      tier: high
      owners: {team: payments}
      objective: 99
      window: 7d
      sli: {http: {metric: http_requests_total, selector: {job: checkout}}}
    ---
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {name: checkout-latency}
    spec:
      service: checkout
      tier: high
      owners: {team: payments}
      objective: 99
      window: 7d
      sli: {http: {metric: http_requests_total, selector: {job: checkout-latency}}}
      stages:
        - {name: canary, selector: {stage: canary}}
        - {name: production, selector: {stage: stable}}
    ---
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {name: search}
    spec:
      service: search
      owners: {team: discovery}
      objective: 99.5
      window: {calendar: month, timeZone: Asia/Kolkata}
      sli: {http: {metric: http_requests_total, selector: {job: search}}}
    ---
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {name: reports}
    spec:
      service: reports
      owners: {team: discovery}
      objective: 99
      window: 30d
      sli:
        raw:
          errorRatio:
            prometheus: 'sum(rate(errors_total[{{window}}])) / sum(rate(requests_total[{{window}}]))'
    ---
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {name: legacy}
    spec:
      service: legacy
      owners: {team: payments}
      objective: 99
      window: 7d
      lifecycle: archived
      sli: {http: {metric: http_requests_total, selector: {job: legacy}}}
    """
)

BAD = {
    ("checkout-availability", at(14)): 12.0,  # 1.2x
    ("checkout-latency", at(15)): 10.0,  # exactly 1x: burning as fast as the budget lasts is seen
}
"""Bad events of the hours that differ from `BASE_BAD` (production subjects)."""
MISSING = {("checkout-availability", at(18))}
"""Hours without a row."""
NO_DATA = {("checkout-availability", at(19))}
"""Hours with a row whose counts are unknown (Prometheus had no series)."""
EXCLUDED = {("checkout-availability", at(20)), ("checkout-latency", at(20))}
"""Hours wholly inside an excluded span: all their events excluded."""
PARTLY_EXCLUDED = ("checkout-availability", at(21))
"""20 bad of 1,000, of which 15 bad of 100 excluded: 5 of 900 count (0.56x; 2x had they counted)."""
ROWS_UNTIL = at(22)
"""Checkout's rows end here (later hours are `pending` while young)."""


def _row(slo: str, stage: str | None, start: datetime, objective: float = 99.0, zone: str = "UTC") -> Rollup:
    bad = BAD.get((slo, start), BASE_BAD)
    excluded_bad, excluded_total = 0.0, 0.0
    if (slo, start) in EXCLUDED:
        excluded_bad, excluded_total = bad, EVENTS
    if (slo, start) == PARTLY_EXCLUDED:
        bad, excluded_bad, excluded_total = 20.0, 15.0, 100.0
    counts: tuple[float | None, float | None] = (bad, EVENTS)
    if (slo, start) in NO_DATA:
        counts = (None, None)
    return Rollup(
        slo, stage, start, start + HOUR, *counts, excluded_bad, excluded_total, 0.0, objective, "v1", zone, "prometheus"
    )


def _rows() -> list[Rollup]:
    rows = []
    for hour in range(22):
        start = at(hour)
        for slo, stage in (("checkout-availability", None), ("checkout-latency", "production")):
            if (slo, start) not in MISSING:
                rows.append(_row(slo, stage, start))
        canary = _row("checkout-latency", "canary", start)
        rows.append(replace(canary, bad_events=30.0))  # 3x, in a stage that is not production
    for hour in range(-1, 23):  # Kolkata's hours: :30 UTC
        start = at(hour) + timedelta(minutes=30)
        rows.append(replace(_row("search", None, start, 99.5, "Asia/Kolkata"), bad_events=SEARCH_BAD))
    return rows


def _burn(bad: float, events: float, objective: float) -> float:
    return bad / (events * (1 - objective / 100))


@dataclass
class History:
    fleet: Fleet
    rollups: SqliteRollups
    log: SqliteDecisionLog
    feedback: SqliteFeedback
    db: Path

    @property
    def sources(self) -> Sources:
        return Sources(
            self.fleet, lambda since, until, slos: self.rollups.read(since=since, until=until, slos=slos), self.log
        )


def _breach(number: int, slo: str, stage: str | None, when: datetime, *, replay: bool = False) -> Any:
    """A fail on a burn-rate breach (what `failed_on_breach` counts), or its replay (which it must not)."""
    decision = make_decision(number, slo=slo, stage=stage, outcome=Outcome.FAIL, decided_at=when)
    reasons = (Reason("burn-rate", "burn rate 20x over 1h", {"burnRate": 20.0}),)
    request = decision.request if not replay else replace(decision.request, at=when - timedelta(days=1))
    return replace(decision, service="checkout", reasons=reasons, request=request)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    fleet = load_fleet(tmp_path, FLEET)
    db = tmp_path / "decisions.db"
    with SqliteRollups(db) as rollups, SqliteDecisionLog(db) as log, SqliteFeedback(db) as feedback:
        rollups.write(_rows(), AT)
        log.append(_breach(1, "checkout-latency", "production", at(16.5)))
        log.append(_breach(2, "checkout-availability", None, at(17.5), replay=True))
        passed = make_decision(3, slo="checkout-availability", stage=None, decided_at=at(17.25))
        log.append(replace(passed, service="checkout"))
        yield History(fleet, rollups, log, feedback, db)


def _slo(classification: dict[str, Any], name: str) -> dict[str, Any]:
    return next(line for line in classification["slos"] if line["slo"] == name)


# --- classification -------------------------------------------------------------------------------------------


def test_a_problem_every_slo_measured_as_fine_is_missed_and_the_slis_are_the_blind_spot(history: History) -> None:
    start, end = at(10.25), at(12.75)  # hours 10, 11 and 12, partly covered: whole hours count
    result = classify(history.sources, "checkout", start, end, at=AT)
    assert (result["verdict"], result["blindSpot"], result["seenBy"]) == ("missed", "measured-fine", [])
    for name, stage in (("checkout-availability", None), ("checkout-latency", "production")):
        line = _slo(result, name)
        assert line["stage"] == stage
        assert line["hours"] == {"expected": 3, "withData": 3, "noData": 0, "excluded": 0, "pending": 0}
        assert line["maxBurnRate"] == pytest.approx(_burn(BASE_BAD, EVENTS, 99.0))
    assert result["gates"] == {"read": True, "decisions": 0, "failedOnBreach": 0, "truncated": False}
    assert result["alerts"]["replayed"] is False
    assert result["alerts"]["why"].startswith("alerts not replayed")
    assert result["settled"] is True


def test_an_hour_at_or_above_1x_saw_it_and_is_named(history: History) -> None:
    result = classify(history.sources, "checkout", at(14), at(16), at=AT)
    assert result["verdict"] == "seen" and result["blindSpot"] is None
    assert result["seenBy"] == [
        {
            "kind": "burn",
            "slo": "checkout-availability",
            "stage": None,
            "from": at(14).isoformat(),
            "hours": 1,
            "peakBurnRate": pytest.approx(_burn(12.0, EVENTS, 99.0)),
        },
        {
            "kind": "burn",
            "slo": "checkout-latency",
            "stage": "production",
            "from": at(15).isoformat(),
            "hours": 1,
            "peakBurnRate": pytest.approx(_burn(10.0, EVENTS, 99.0)),
        },
    ]


def test_a_gate_that_failed_on_a_breach_saw_it_and_a_replayed_one_did_not(history: History) -> None:
    seen = classify(history.sources, "checkout", at(16), at(17), at=AT)
    assert seen["verdict"] == "seen"
    assert seen["seenBy"] == [
        {
            "kind": "gate",
            "decisionId": "d-000001",
            "slo": "checkout-latency",
            "stage": "production",
            "decidedAt": at(16.5).isoformat(),
        }
    ]
    replayed = classify(history.sources, "checkout", at(17), at(18), at=AT)
    assert (replayed["verdict"], replayed["blindSpot"]) == ("missed", "measured-fine")
    assert replayed["gates"] == {"read": True, "decisions": 1, "failedOnBreach": 0, "truncated": False}, (
        "the passed gate is read, the replayed fail left out"
    )


def test_hours_without_a_row_or_without_data_are_a_blind_spot_of_their_own(history: History) -> None:
    result = classify(history.sources, "checkout", at(18), at(20), at=AT)
    assert (result["verdict"], result["blindSpot"]) == ("missed", "no-data")
    line = _slo(result, "checkout-availability")
    assert line["noDataHours"] == [at(18).isoformat(), at(19).isoformat()]
    assert line["hours"] == {"expected": 2, "withData": 0, "noData": 2, "excluded": 0, "pending": 0}
    assert _slo(result, "checkout-latency")["hours"]["withData"] == 2


def test_excluded_spans_are_out(history: History) -> None:
    wholly = classify(history.sources, "checkout", at(20), at(21), at=AT)
    assert (wholly["verdict"], wholly["blindSpot"]) == ("excluded", None)
    assert _slo(wholly, "checkout-availability")["hours"]["excluded"] == 1

    partly = classify(history.sources, "checkout", at(21), at(22), at=AT)
    counted = _burn(20.0 - 15.0, EVENTS - 100.0, 99.0)
    assert counted < 1 <= _burn(20.0, EVENTS, 99.0), "the exclusion is what keeps it under 1x"
    assert _slo(partly, "checkout-availability")["maxBurnRate"] == pytest.approx(counted)
    assert (partly["verdict"], partly["blindSpot"]) == ("missed", "measured-fine")


def test_a_zone_at_half_past_counts_its_own_hours(history: History) -> None:
    """10:00–11:00 UTC overlaps Kolkata's hours starting 09:30 and 10:30 UTC."""
    result = classify(history.sources, "search", at(10), at(11), at=AT)
    line = _slo(result, "search")
    assert line["hours"]["expected"] == 2 and line["hours"]["withData"] == 2
    assert line["maxBurnRate"] == pytest.approx(_burn(SEARCH_BAD, EVENTS, 99.5))
    assert (result["verdict"], result["blindSpot"]) == ("missed", "measured-fine")


def test_services_that_nothing_measures(history: History) -> None:
    ratio = classify(history.sources, "reports", at(10), at(11), at=AT)
    assert (ratio["verdict"], ratio["blindSpot"]) == ("missed", "no-data")
    assert _slo(ratio, "reports")["rolledUp"] is False
    assert "ratio or threshold SLI" in _slo(ratio, "reports")["why"]

    archived = classify(history.sources, "legacy", at(10), at(11), at=AT)
    assert (archived["verdict"], archived["blindSpot"], archived["slos"]) == ("missed", "no-slo", [])


def _store(history: History, service: str, start: datetime, end: datetime, received: datetime) -> FeedbackReport:
    report = checked_report(
        service=service,
        start=start,
        end=end,
        impact="customers could not pay",
        ticket=f"ZD-{int(start.timestamp())}",
        reported_by="support",
        received_at=received,
    )
    return history.feedback.add(report, classify(history.sources, service, start, end, at=received))


def test_a_report_received_before_its_hours_are_rolled_up_is_pending_until_they_are(history: History) -> None:
    received = at(24.25)  # a problem from 22:00 still going on at 00:15; checkout's rows end at 22:00
    hours = [at(22), at(23), at(24)]
    young = [hour for hour in hours if hour + HOUR > received - ROLLUP_LAG]
    assert young == [at(23), at(24)], "hour 22 ended 75 minutes before: its row should be there"
    report = _store(history, "checkout", at(22), received, received)
    assert report.verdict == "pending"
    line = _slo(report.to_dict()["classification"], "checkout-availability")
    assert line["hours"] == {"expected": 3, "withData": 0, "noData": 1, "excluded": 0, "pending": 2}
    assert line["noDataHours"] == [at(22).isoformat()]
    assert report.classification["settled"] is False
    settles = datetime.fromisoformat(report.classification["settlesAt"])
    assert settles == received + ROLLUP_LAG + HOUR

    again = reclassify_due(history.feedback, history.sources, at=received + timedelta(minutes=10))
    assert [(r.id, r.verdict) for r in again] == [(report.id, "pending")], "a pending report is classified each round"
    subjects = (("checkout-availability", None), ("checkout-latency", "production"))
    history.rollups.write([_row(name, stage, hour) for hour in hours for name, stage in subjects], settles)
    changed = reclassify_due(history.feedback, history.sources, at=settles)
    assert [(r.id, r.verdict, r.classification["blindSpot"]) for r in changed] == [
        (report.id, "missed", "measured-fine")
    ]
    assert changed[0].classification["settled"] is True
    assert reclassify_due(history.feedback, history.sources, at=settles + HOUR) == [], "a settled report stays"
    assert history.feedback.get(report.id) == changed[0]


# --- blind spots ------------------------------------------------------------------------------------------------


def test_blind_spots_count_each_services_missed_reports_in_the_span(history: History) -> None:
    received = AT
    made = {
        "fine": _store(history, "checkout", at(10), at(12), received),
        "burn": _store(history, "checkout", at(14), at(15), received),
        "no-data": _store(history, "checkout", at(18), at(19), received),
        "excluded": _store(history, "checkout", at(20), at(21), received),
        "search": _store(history, "search", at(3), at(4), received),
        "reports": _store(history, "reports", at(5), at(6), received),
        "before": _store(history, "checkout", DAY - 5 * HOUR, DAY - 4 * HOUR, received),  # outside the span
    }
    assert made["before"].verdict == "missed" and made["burn"].verdict == "seen"
    since, until = DAY, DAY + timedelta(days=1)
    findings = blind_spots(history.feedback.reports(since=since, until=until), history.fleet, since, until)

    by_service = {finding["service"]: finding for finding in findings}
    assert list(by_service) == ["checkout", "reports", "search"], "high first, then most missed, then by name"
    checkout = by_service["checkout"]
    assert (checkout["rule"], checkout["action"], checkout["tier"], checkout["team"]) == (
        "blind-spot",
        "add-sli",
        "high",
        "payments",
    )
    inputs = checkout["inputs"]
    assert (inputs["reports"], inputs["missed"], inputs["seen"], inputs["excluded"], inputs["pending"]) == (
        4,
        2,
        1,
        1,
        0,
    )
    assert inputs["blindSpots"] == {"measured-fine": 1, "no-data": 1, "no-slo": 0}
    assert [missed["id"] for missed in inputs["missedReports"]] == [made["fine"].id, made["no-data"].id]
    assert inputs["slos"] == ["checkout-availability", "checkout-latency"]
    assert checkout["message"].startswith("checkout: 2 of 4 customer reports missed by monitoring")

    assert by_service["reports"]["action"] == "review", "only hours without data: mend the measurement first"
    assert by_service["search"]["action"] == "add-sli"

    items = agenda_source(findings)({"slos": []})
    assert [(item["kind"], item["team"], item["facts"]["service"]) for item in items] == [
        ("blind-spot", "payments", "checkout"),
        ("blind-spot", "discovery", "reports"),
        ("blind-spot", "discovery", "search"),
    ]
    assert items[0]["facts"]["tickets"] == [made["fine"].ticket, made["no-data"].ticket]


def test_a_service_without_missed_reports_is_no_finding(history: History) -> None:
    report = _store(history, "checkout", at(14), at(15), AT)
    assert blind_spots([report], history.fleet, DAY, AT) == []
    assert blind_spots([report.to_dict()], history.fleet, DAY, AT) == []


# --- the routes -------------------------------------------------------------------------------------------------

ROUTE_SCOPE = Scope.FEEDBACK


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]

    def headers(self, caller: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[caller]}"}


@pytest.fixture
def api(history: History) -> Iterator[Api]:
    grants: dict[str, tuple[list[str], list[str]]] = {
        "support": ([ROUTE_SCOPE.value], []),
        "reader": (["read"], []),
        "admin": (["admin"], []),
        "payments-support": ([ROUTE_SCOPE.value], ["payments"]),
    }
    issued = {name: new_token(name, scopes, teams=teams) for name, (scopes, teams) in grants.items()}
    tokens = TokenStore(entry for _, entry in issued.values())
    summaries = [
        {"name": name, "service": history.fleet[name].spec.service, "team": history.fleet[name].spec.owners.team}
        for name in history.fleet
    ]
    guard = RouteGuard(tokens, lambda: summaries)
    app = FastAPI()
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.include_router(feedback_router(history.feedback, history.sources, guard, scope=ROUTE_SCOPE))
    with TestClient(app) as client:
        yield Api(client, {name: token for name, (token, _) in issued.items()})


def _body(**change: Any) -> dict[str, Any]:
    return {
        "service": "checkout",
        "start": at(10).isoformat(),
        "end": at(12).isoformat(),
        "impact": "Payments spun forever.\nThree customers wrote in.",
        "ticket": "https://support.example.com/t/4711",
    } | change


def test_a_report_is_stored_classified_and_listed(api: Api, history: History) -> None:
    response = api.client.post("/v1/feedback", json=_body(), headers=api.headers("support"))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["reportedBy"] == "support", "the token's name, never the body's"
    assert (answer["verdict"], answer["classification"]["blindSpot"]) == ("missed", "measured-fine")
    stored = history.feedback.get(answer["id"])
    assert answer == stored.to_dict()
    expected = classify_report(history.sources, stored, at=datetime.fromisoformat(answer["receivedAt"]))
    assert answer["classification"] == expected

    listed = api.client.get(
        "/v1/feedback", params={"service": "checkout", "since": DAY.isoformat()}, headers=api.headers("admin")
    )
    assert listed.status_code == 200 and listed.json() == [answer]
    one = api.client.get(f"/v1/feedback/{answer['id']}", headers=api.headers("support"))
    assert one.json() == answer
    assert (
        api.client.get("/v1/feedback", params={"until": DAY.isoformat()}, headers=api.headers("support")).json() == []
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"service": "nowhere"}, "service"),
        ({"end": at(9).isoformat()}, "end"),
        ({"end": (at(10) + timedelta(days=32)).isoformat()}, "end"),
        ({"start": "2026-03-02T10:00:00"}, "start"),
        ({"impact": "x" * 2001}, "impact"),
        ({"impact": "bad\x00"}, "impact"),
        ({"ticket": ""}, "ticket"),
        ({"reportedBy": "mallory"}, "reportedBy"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api: Api, history: History, change: dict[str, Any], field: str) -> None:
    response = api.client.post("/v1/feedback", json=_body(**change), headers=api.headers("support"))
    assert response.status_code == 422, response.text
    assert [problem["loc"] for problem in response.json()["detail"]] == [["body", field]]
    assert history.feedback.reports() == []


def test_the_scope_is_required_and_read_does_not_imply_it(api: Api, history: History) -> None:
    refused = api.client.post("/v1/feedback", json=_body(), headers=api.headers("reader"))
    assert refused.status_code == 403
    assert refused.json() == {"detail": f"token 'reader' lacks the {ROUTE_SCOPE.value!r} scope"}
    assert api.client.get("/v1/feedback", headers=api.headers("reader")).status_code == 403
    assert api.client.post("/v1/feedback", json=_body(), headers=api.headers("admin")).status_code == 201
    assert len(history.feedback.reports()) == 1


def test_the_document_publishes_the_scope_and_the_answer(api: Api) -> None:
    app = api.client.app
    assert isinstance(app, FastAPI)
    document = app.openapi()
    post = document["paths"]["/v1/feedback"]["post"]
    assert post["security"] == [{"bearer": [ROUTE_SCOPE.value]}]
    assert set(post["responses"]) >= {"201", "401", "403", "422", "503"}
    listing = document["paths"]["/v1/feedback"]["get"]
    assert listing["security"] == [{"bearer": [ROUTE_SCOPE.value]}]
    assert "FeedbackAnswer" in document["components"]["schemas"]
    not_allowed = api.client.delete("/v1/feedback", headers=api.headers("support"))
    assert (not_allowed.status_code, not_allowed.headers["allow"]) == (405, "GET, POST")


def test_a_limited_token_reports_and_lists_only_its_own_services(api: Api, history: History) -> None:
    own = api.client.post("/v1/feedback", json=_body(), headers=api.headers("payments-support"))
    assert own.status_code == 201
    other = api.client.post("/v1/feedback", json=_body(service="search"), headers=api.headers("payments-support"))
    assert other.status_code == 403
    assert "service 'search' is not one of its services" in other.json()["detail"]
    undeclared = api.client.post("/v1/feedback", json=_body(service="nowhere"), headers=api.headers("payments-support"))
    assert undeclared.status_code == 403, "a limited token is not told which services exist"
    search = api.client.post("/v1/feedback", json=_body(service="search"), headers=api.headers("support"))
    assert search.status_code == 201

    listed = api.client.get("/v1/feedback", headers=api.headers("payments-support")).json()
    assert [report["id"] for report in listed] == [own.json()["id"]]
    hidden = api.client.get(f"/v1/feedback/{search.json()['id']}", headers=api.headers("payments-support"))
    assert hidden.status_code == 404
    assert len(api.client.get("/v1/feedback", headers=api.headers("support")).json()) == 2


# --- alerts replayed from Prometheus ------------------------------------------------------------------------------


@pytest.fixture
def replaying(history_fleet: Fleet, history_database: Path, history_prometheus: str) -> Iterator[Sources]:
    """`tests.rollup_history`'s fleet, rows and Prometheus: no decision log."""
    with SqliteRollups(history_database) as rollups:
        yield Sources(
            history_fleet,
            lambda since, until, slos: rollups.read(since=since, until=until, slos=slos),
            None,
            PrometheusBackend(history_prometheus),
        )


def test_with_prometheus_the_alerts_are_replayed(replaying: Sources) -> None:
    """checkout's history (`tests.rollup_history`, 99.5%): 0.2% errors until SECOND, then 3.1% — 6.2x, above the
    page tier's 6h/30m factor of 6 once the 6-hour window is mostly inside the bad stretch."""
    sources = replaying
    quiet = classify(sources, "checkout", START + timedelta(days=1), START + timedelta(days=1, hours=2), at=UNTIL)
    assert quiet["alerts"] == {"replayed": True, "why": None, "pages": 0, "tickets": 0}
    assert (quiet["verdict"], quiet["blindSpot"]) == ("missed", "measured-fine")

    second = START + timedelta(days=2, hours=3, minutes=36)
    threshold = 6 * (1 - 0.995)
    inside = (threshold - 0.002) / (0.031 - 0.002)  # the share of the 6h window in the bad stretch that crosses it
    earliest = second + inside * timedelta(hours=6)
    loud = classify(sources, "checkout", second + timedelta(hours=7), second + timedelta(hours=8), at=UNTIL)
    assert loud["verdict"] == "seen"
    kinds = {entry["kind"] for entry in loud["seenBy"]}
    assert kinds == {"burn", "alert"}
    pages = [entry for entry in loud["seenBy"] if entry["kind"] == "alert" and entry["tier"] == "page"]
    assert pages and all(entry["slo"] == "checkout" for entry in pages)
    assert loud["alerts"]["pages"] == len(pages)
    assert datetime.fromisoformat(pages[0]["start"]) == second + timedelta(hours=7), "firing before the range began"
    assert earliest < second + timedelta(hours=7)


# --- the command ----------------------------------------------------------------------------------------------------


def run_feedback(*args: str | Path) -> tuple[Result, str]:
    """`feedback` registered on a local app as `sloplane` will register it; its result and its table output."""
    out = io.StringIO()
    app = typer.Typer()
    app.callback()(lambda: None)
    feedback_cli.register(app, replace(_consoles, out=Console(file=out, width=300)))
    result = CliRunner().invoke(app, ["feedback", *map(str, args)])
    return result, out.getvalue()


def test_the_command_adds_lists_and_refuses_naming_the_option(history: History, tmp_path: Path) -> None:
    common = ("--db", history.db, "--service", "checkout", "--impact", "payments hung", "--ticket", "ZD-9")
    added, _ = run_feedback(
        "add", tmp_path / "fleet.yaml", *common, "--start", at(10).isoformat(), "--end", at(12).isoformat(),
        "--by", "support", "--at", AT.isoformat(), "--format", "json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    (answer,) = json.loads(added.stdout)
    assert (answer["verdict"], answer["classification"]["blindSpot"], answer["reportedBy"]) == (
        "missed",
        "measured-fine",
        "support",
    )
    assert answer["classification"] == classify(history.sources, "checkout", at(10), at(12), at=AT)
    assert [report.to_dict() for report in history.feedback.reports()] == [answer]

    listed, table = run_feedback("list", "--db", history.db, "--since", DAY.isoformat())
    assert listed.exit_code == 0, listed.output
    assert answer["id"] in table and "measured-fine" in table

    backwards, _ = run_feedback(
        "add", tmp_path / "fleet.yaml", *common, "--start", at(12).isoformat(), "--end", at(10).isoformat(),
        "--by", "support", "--at", AT.isoformat(),
    )  # fmt: skip
    assert backwards.exit_code == 2 and "--end" in backwards.output
    elsewhere, _ = run_feedback(
        "add", tmp_path / "fleet.yaml", "--db", history.db, "--service", "nowhere", "--impact", "x", "--ticket", "1",
        "--start", at(10).isoformat(), "--end", at(12).isoformat(), "--by", "support",
    )  # fmt: skip
    assert elsewhere.exit_code == 2 and "--service" in elsewhere.output
    missing, _ = run_feedback("list", "--db", tmp_path / "none.db")
    assert missing.exit_code == 1 and "no support feedback at" in missing.output
    assert len(history.feedback.reports()) == 1, "refused commands record nothing"
