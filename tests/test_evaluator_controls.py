"""Release controls: the SQLite store, its HTTP API and the `freeze`/`incident` commands.

The store is exercised at fixed instants around `T0` (so "active at" and replays are exact), the
API through FastAPI's test client over the same fake gate service as `test_evaluator_api`, and the
commands as a user runs them, in a subprocess, locally and against an evaluator served over HTTP.
"""

from __future__ import annotations

import sqlite3
import tempfile
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from sloplane.evaluator.http.app import create_app, openapi_document
from sloplane.evaluator.http.auth import TokenStore, new_token
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.server import ServerConfig, build_app
from sloplane.evaluator.storage.controls import AlreadyEndedError, ControlsError, ReleaseControls, UnknownControlError
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.semantics.subjects import Fleet
from tests.conftest import run_cli
from tests.evaluator_data import T0, make_decision
from tests.servers import served_app
from tests.test_evaluator_api import FakeGateService

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

HOUR = timedelta(hours=1)


@pytest.fixture
def controls(tmp_path: Path) -> Iterator[ReleaseControls]:
    with ReleaseControls(tmp_path / "controls.db") as store:
        yield store


def _ids(records: list[Any]) -> list[str]:
    return [record.id for record in records]


# --- freezes in the store ---------------------------------------------------------------------------------


def test_a_freeze_is_active_from_its_creation_until_it_expires_or_is_lifted(controls: ReleaseControls) -> None:
    everything = controls.freeze(None, "black friday", "alice", until=T0 + 2 * HOUR, at=T0)
    checkout = controls.freeze("checkout", "payment provider migration", "bob", at=T0 + HOUR)
    controls.lift(checkout.id, "carol", "migration done", at=T0 + 3 * HOUR)

    assert controls.freezes(at=T0 - HOUR) == []
    assert _ids(controls.freezes(at=T0)) == [everything.id]
    assert _ids(controls.freezes(at=T0 + 90 * timedelta(minutes=1))) == [checkout.id, everything.id]
    assert _ids(controls.freezes(at=T0 + 2 * HOUR)) == [checkout.id], "`until` is exclusive"
    assert controls.freezes(at=T0 + 3 * HOUR) == [], "lifting is exclusive too"


def test_active_freezes_of_a_service_are_its_own_and_the_global_ones(controls: ReleaseControls) -> None:
    everything = controls.freeze(None, "change freeze", "alice", at=T0)
    checkout = controls.freeze("checkout", "migration", "alice", at=T0)
    at = T0 + HOUR
    assert _ids(controls.active_freezes("checkout", at)) == [checkout.id, everything.id]
    assert _ids(controls.active_freezes("search", at)) == [everything.id]
    assert [freeze.covers("search") for freeze in (everything, checkout)] == [True, False]


def test_a_replay_in_the_past_sees_the_freezes_of_that_time(controls: ReleaseControls) -> None:
    """A lifted freeze is gone now and still there for a gate replayed at an instant it was in force."""
    freeze = controls.freeze("checkout", "incident follow-up", "alice", at=T0)
    lifted = controls.lift(freeze.id, "bob", "done", at=T0 + HOUR)
    assert controls.active_freezes("checkout", datetime.now(UTC)) == []
    assert controls.active_freezes("checkout", T0 + 30 * timedelta(minutes=1)) == [lifted]
    assert (lifted.lifted_by, lifted.lift_reason, lifted.lifted_at) == ("bob", "done", T0 + HOUR)
    assert _ids(controls.freezes(active_only=False)) == [freeze.id]


def test_lifting_twice_or_an_unknown_freeze_is_refused_saying_why(controls: ReleaseControls) -> None:
    freeze = controls.freeze(None, "release train paused", "alice")
    controls.lift(freeze.id, "bob", "resumed")
    with pytest.raises(AlreadyEndedError, match=rf"freeze {freeze.id} was already lifted by bob at "):
        controls.lift(freeze.id, "carol", "again")
    with pytest.raises(UnknownControlError, match="no freeze 'frz-00000000'"):
        controls.lift("frz-00000000", "carol", "typo")
    assert controls.get_freeze(freeze.id).lifted_by == "bob", "the refused lift changed nothing"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"reason": "  "}, "a reason for the freeze is required"),
        ({"created_by": ""}, "who freezes is required"),
        ({"service": " "}, "the service name is required"),
        ({"until": T0 - HOUR}, "would already be over"),
    ],
)
def test_a_freeze_needs_a_reason_an_author_and_a_future_end(
    controls: ReleaseControls, arguments: dict[str, Any], message: str
) -> None:
    given = {"service": None, "reason": "why", "created_by": "alice", "until": None} | arguments
    with pytest.raises(ControlsError, match=message):
        controls.freeze(given["service"], given["reason"], given["created_by"], until=given["until"], at=T0)
    assert controls.freezes(active_only=False) == []


def test_freeze_ids_are_short_and_readable(controls: ReleaseControls) -> None:
    freeze = controls.freeze(None, "why", "alice")
    incident = controls.open_incident("down", "major", "alice")
    assert freeze.id.startswith("frz-") and len(freeze.id) == 12
    assert incident.id.startswith("inc-") and len(incident.id) == 12


def test_to_dict_is_camel_case_with_rfc3339_times(controls: ReleaseControls) -> None:
    freeze = controls.freeze("checkout", "why", "alice", until=T0 + HOUR, at=T0)
    assert freeze.to_dict() == {
        "id": freeze.id,
        "service": "checkout",
        "reason": "why",
        "createdBy": "alice",
        "createdAt": "2026-11-26T12:00:00+00:00",
        "until": "2026-11-26T13:00:00+00:00",
        "liftedAt": None,
        "liftedBy": None,
        "liftReason": None,
    }


# --- incidents in the store -------------------------------------------------------------------------------


def test_an_incident_key_is_idempotent_while_open(controls: ReleaseControls) -> None:
    first = controls.open_incident("checkout 5xx", "major", "alertmanager", key="alert-1", source="notifier", at=T0)
    again = controls.open_incident("checkout 5xx (repeat)", "minor", "alertmanager", key="alert-1", at=T0 + HOUR)
    assert again == first, "the open incident is answered, unchanged"
    controls.resolve_incident(first.id, "alice", at=T0 + 2 * HOUR)
    recurrence = controls.open_incident("checkout 5xx", "major", "alertmanager", key="alert-1", at=T0 + 3 * HOUR)
    assert recurrence.id != first.id, "a resolved incident's key may open the next one"
    assert _ids(controls.incidents(open_only=False)) == [recurrence.id, first.id]


def test_concurrent_openings_with_one_key_make_one_incident(controls: ReleaseControls) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        opened = list(pool.map(lambda n: controls.open_incident(f"try {n}", "major", "bot", key="k").id, range(32)))
    assert len(set(opened)) == 1
    assert len(controls.incidents(open_only=False)) == 1


def test_open_major_incidents_at_an_instant(controls: ReleaseControls) -> None:
    major = controls.open_incident("db down", "major", "alice", services=["checkout", "checkout"], at=T0)
    controls.open_incident("slow dashboards", "minor", "alice", at=T0)
    controls.resolve_incident(major.id, "bob", at=T0 + HOUR)
    assert major.services == ("checkout",), "each service named once"
    assert _ids(controls.open_major_incidents(T0 + 30 * timedelta(minutes=1))) == [major.id]
    assert controls.open_major_incidents(T0 + HOUR) == []
    assert [major.covers("checkout"), major.covers("search")] == [True, False]


def test_resolving_twice_or_an_unknown_incident_is_refused(controls: ReleaseControls) -> None:
    incident = controls.open_incident("db down", "major", "alice")
    resolved = controls.resolve_incident(incident.id, "bob")
    assert resolved.resolved_by == "bob"
    with pytest.raises(AlreadyEndedError, match=rf"incident {incident.id} was already resolved by bob"):
        controls.resolve_incident(incident.id, "carol")
    with pytest.raises(UnknownControlError, match="no incident 'inc-nope'"):
        controls.resolve_incident("inc-nope", "carol")
    with pytest.raises(ControlsError, match="severity must be one of major, minor, not 'critical'"):
        controls.open_incident("x", "critical", "alice")


# --- nothing is ever deleted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DELETE FROM freezes", "a freeze cannot be deleted, only lifted"),
        ("DELETE FROM incidents", "an incident cannot be deleted, only resolved"),
        ("UPDATE freezes SET reason = 'rewritten'", "a freeze can only be lifted, once"),
        ("UPDATE freezes SET lifted_at = '2030', lifted_by = 'x', lift_reason = 'y'", "can only be lifted, once"),
        ("UPDATE incidents SET severity = 'minor', resolved_at = '2030', resolved_by = 'x'", "only be resolved"),
    ],
)
def test_raw_sql_cannot_delete_or_rewrite_a_record(controls: ReleaseControls, statement: str, message: str) -> None:
    """Triggers guard the history even against a hand in the `sqlite3` shell (the freeze is lifted already)."""
    freeze = controls.freeze(None, "why", "alice")
    controls.lift(freeze.id, "bob", "over")
    controls.open_incident("down", "major", "alice")
    with sqlite3.connect(controls.path) as raw, pytest.raises(sqlite3.IntegrityError, match=message):
        raw.execute(statement)
    assert controls.get_freeze(freeze.id).reason == "why"
    assert len(controls.incidents()) == 1


def test_the_controls_share_the_decision_log_file(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as log, ReleaseControls(path) as controls:
        log.append(make_decision(1))
        controls.freeze(None, "why", "alice")
    with SqliteDecisionLog(path) as log, ReleaseControls(path) as controls:
        assert log.count() == 1
        assert len(controls.freezes()) == 1


def test_a_file_with_someone_elses_incidents_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE incidents (id INTEGER PRIMARY KEY, data TEXT)")
    with pytest.raises(ControlsError, match=r"has a table 'incidents' that is not release controls' \(no title"):
        ReleaseControls(path)


# --- the API ----------------------------------------------------------------------------------------------


@dataclass
class Api:
    app: FastAPI
    controls: ReleaseControls
    tokens: dict[str, str]

    def headers(self, caller: str | None) -> dict[str, str]:
        if caller is None:
            return {}
        return {"Authorization": f"Bearer {self.tokens.get(caller, 'slp_not-a-known-token')}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    issued = {scope: new_token(scope, [scope]) for scope in ("read", "gate", "admin")}
    tokens = TokenStore(entry for _, entry in issued.values())
    with SqliteDecisionLog(tmp_path / "decisions.db") as log, ReleaseControls(tmp_path / "decisions.db") as controls:
        app = create_app(FakeGateService(log), tokens, EvaluatorMetrics(), controls)
        yield Api(app, controls, {name: token for name, (token, _) in issued.items()})


@pytest.fixture
def client(api: Api) -> Iterator[TestClient]:
    with TestClient(api.app) as test_client:
        yield test_client


ENDPOINTS = [
    ("GET", "/v1/freezes", None, "read", 200),
    ("GET", "/v1/incidents", None, "read", 200),
    ("POST", "/v1/freezes", {"reason": "why"}, "admin", 201),
    ("DELETE", "/v1/freezes/frz-00000000?reason=why", None, "admin", 404),
    ("POST", "/v1/incidents", {"title": "down"}, "admin", 201),
    ("POST", "/v1/incidents/inc-00000000/resolve", None, "admin", 404),
]
ALLOWED = {"read": {"read", "gate", "admin"}, "admin": {"admin"}}


@pytest.mark.parametrize(("method", "path", "body", "scope", "status"), ENDPOINTS)
@pytest.mark.parametrize("caller", [None, "stranger", "read", "gate", "admin"])
def test_who_may_call_what(  # noqa: PLR0917 (pytest passes parameters by name)
    client: TestClient, api: Api, method: str, path: str, body: Any, scope: str, status: int, caller: str | None
) -> None:
    """Reading is `read`; changing is `admin` only: a pipeline's `gate` token must not lift a freeze."""
    response = client.request(method, path, json=body, headers=api.headers(caller))
    if caller in {None, "stranger"}:
        assert response.status_code == 401
    elif caller in ALLOWED[scope]:
        assert response.status_code == status
    else:
        assert response.status_code == 403
        assert response.json() == {"detail": f"token {caller!r} lacks the {scope!r} scope"}
    froze = (method, path, caller) == ("POST", "/v1/freezes", "admin")
    assert len(api.controls.freezes(active_only=False)) == (1 if froze else 0), "only an allowed call changes anything"


def test_a_freeze_is_created_listed_and_lifted_by_the_tokens_principal(client: TestClient, api: Api) -> None:
    until = (datetime.now(UTC) + HOUR).isoformat()
    created = client.post(
        "/v1/freezes", json={"service": "checkout", "reason": "migration", "until": until}, headers=api.headers("admin")
    )
    assert created.status_code == 201
    freeze = created.json()
    assert (freeze["service"], freeze["reason"], freeze["createdBy"]) == ("checkout", "migration", "admin")
    assert client.get("/v1/freezes", headers=api.headers("read")).json() == [freeze]

    lifted = client.request(
        "DELETE", f"/v1/freezes/{freeze['id']}", json={"reason": "done"}, headers=api.headers("admin")
    )
    assert lifted.status_code == 200
    assert (lifted.json()["liftedBy"], lifted.json()["liftReason"]) == ("admin", "done")
    assert client.get("/v1/freezes", headers=api.headers("read")).json() == []
    assert client.get("/v1/freezes?all=true", headers=api.headers("read")).json() == [lifted.json()]

    again = client.delete(f"/v1/freezes/{freeze['id']}?reason=twice", headers=api.headers("admin"))
    assert again.status_code == 409
    assert set(again.json()) == {"detail"}, "the Problem shape"
    assert again.json()["detail"].startswith(f"freeze {freeze['id']} was already lifted by admin at ")


def test_freeze_requests_the_store_refuses_are_problems(client: TestClient, api: Api) -> None:
    admin = api.headers("admin")
    past = client.post("/v1/freezes", json={"reason": "why", "until": "2020-01-01T00:00:00Z"}, headers=admin)
    assert past.status_code == 400
    assert "would already be over" in past.json()["detail"]
    blank = client.post("/v1/freezes", json={"reason": "   "}, headers=admin)
    assert blank.status_code == 422
    freeze = client.post("/v1/freezes", json={"reason": "why"}, headers=admin).json()
    no_reason = client.delete(f"/v1/freezes/{freeze['id']}", headers=admin)
    assert no_reason.status_code == 400
    assert no_reason.json() == {"detail": "give a reason for lifting the freeze, in the body or as ?reason="}
    unknown = client.delete("/v1/freezes/frz-nope?reason=x", headers=admin)
    assert unknown.json()["detail"].startswith("no freeze 'frz-nope'")


def test_incidents_are_opened_deduplicated_and_resolved(client: TestClient, api: Api) -> None:
    admin = api.headers("admin")
    body = {"title": "checkout 5xx", "severity": "major", "services": ["checkout"], "key": "alert-1"}
    opened = client.post("/v1/incidents", json=body, headers=admin)
    assert opened.status_code == 201
    assert (opened.json()["openedBy"], opened.json()["source"]) == ("admin", "manual")
    repeated = client.post("/v1/incidents", json=body, headers=admin)
    assert (repeated.status_code, repeated.json()) == (200, opened.json())

    path = f"/v1/incidents/{opened.json()['id']}/resolve"
    resolved = client.post(path, headers=admin)
    assert (resolved.status_code, resolved.json()["resolvedBy"]) == (200, "admin")
    assert client.post(path, headers=admin).status_code == 409
    assert client.get("/v1/incidents", headers=api.headers("read")).json() == []
    assert client.get("/v1/incidents", params={"all": "true"}, headers=api.headers("read")).json() == [resolved.json()]


def test_the_openapi_document_describes_the_controls(client: TestClient, api: Api) -> None:
    document = client.get("/openapi.json").json()
    controls_paths = {"/v1/freezes", "/v1/freezes/{freeze_id}", "/v1/incidents", "/v1/incidents/{incident_id}/resolve"}
    assert controls_paths <= set(document["paths"])
    assert {"freezes", "incidents"} <= {tag["name"] for tag in document["tags"]}
    for path in controls_paths:
        for operation in document["paths"][path].values():
            scope = "read" if operation is document["paths"][path].get("get") else "admin"
            assert operation["description"] and operation["security"] == [{"bearer": [scope]}]
            assert set(operation["tags"]) <= {"freezes", "incidents"}


def test_build_app_serves_the_controls_from_the_decision_log_file(tmp_path: Path) -> None:
    """`ServerConfig.controls` None: the freezes live next to the decisions, in one file to back up."""
    token, entry = new_token("ops", ["admin"])
    config = ServerConfig("http://unused", tmp_path / "decisions.db", TokenStore([entry]))
    app, evaluator = build_app(Fleet([]), config)
    with TestClient(app) as client:
        created = client.post("/v1/freezes", json={"reason": "why"}, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201
    assert evaluator.controls is not None, "the decision pipeline reads the same store"
    assert _ids(evaluator.controls.active_freezes("checkout", datetime.now(UTC))) == [created.json()["id"]]
    with ReleaseControls(tmp_path / "decisions.db") as controls:
        assert _ids(controls.freezes()) == [created.json()["id"]]


def _controls_document() -> dict[str, Any]:
    """The controls' part of the document, for schemathesis (loaded at import, as in `test_evaluator_api`)."""
    with (
        tempfile.TemporaryDirectory() as folder,
        SqliteDecisionLog(Path(folder) / "unused.db") as log,
        ReleaseControls(log.path) as controls,
    ):
        document = openapi_document(create_app(FakeGateService(log), TokenStore([]), EvaluatorMetrics(), controls))
    document["paths"] = {
        path: item for path, item in document["paths"].items() if path.startswith(("/v1/freezes", "/v1/incidents"))
    }
    return document


schema = schemathesis.openapi.from_dict(_controls_document())


@pytest.fixture
def served(api: Api) -> Iterator[str]:
    with served_app(api.app) as base_url:
        yield base_url


@schema.parametrize()
@settings(max_examples=20, suppress_health_check=list(HealthCheck))
def test_every_controls_answer_conforms_to_the_published_schema(
    case: schemathesis.Case[Any], api: Api, served: str
) -> None:
    """No 5xx, and every answer as documented, over real HTTP.

    Schema-valid requests may be refused with a documented 400: the schema cannot say that `until`
    must be in the future, nor that a lift's reason may come from the body or the query.
    """
    response = case.call_and_validate(
        base_url=served,
        headers=api.headers("admin"),
        excluded_checks=[negative_data_rejection, positive_data_acceptance],
    )
    assert response.status_code < 500


# --- the commands -----------------------------------------------------------------------------------------


def _json(text: str) -> Any:
    return orjson.loads(text)


def test_freeze_commands_on_a_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOPLANE_USER", "dana")
    db = tmp_path / "decisions.db"
    created = run_cli("freeze", "create", "--reason", "black friday", "--for", "2h", "--db", db, "--format", "json")
    assert created.code == 0, created.stderr
    freeze = _json(created.stdout)
    assert (freeze["service"], freeze["createdBy"]) == (None, "dana")
    assert datetime.fromisoformat(freeze["until"]) - datetime.fromisoformat(freeze["createdAt"]) < 2 * HOUR

    listed = run_cli("freeze", "list", "--db", db)
    assert listed.code == 0
    assert freeze["id"] in listed.stdout and "black friday" in listed.stdout and "(every service)" in listed.stdout

    lifted = run_cli("freeze", "lift", freeze["id"], "--reason", "sales over", "--db", db)
    assert (lifted.code, lifted.stdout.strip()) == (0, f"{freeze['id']}: lifted by dana")
    twice = run_cli("freeze", "lift", freeze["id"], "--reason", "again", "--db", db)
    assert twice.code == 1
    assert f"sloplane freeze lift: freeze {freeze['id']} was already lifted by dana" in twice.stderr
    assert "Traceback" not in twice.stderr


def test_a_bad_until_is_a_usage_error_and_records_nothing(tmp_path: Path) -> None:
    db = tmp_path / "decisions.db"
    result = run_cli("freeze", "create", "--reason", "why", "--until", "tomorrow", "--db", db)
    assert result.code == 2
    assert "'tomorrow' is not an RFC 3339 time" in result.stderr and "--until" in result.stderr
    assert not db.exists()


def test_incident_commands_against_a_served_evaluator(api: Api, served: str) -> None:
    remote = ("--evaluator", served, "--token", api.tokens["admin"])
    opened = run_cli("incident", "open", "--title", "db down", "--service", "checkout", *remote, "--format", "json")
    assert opened.code == 0, opened.stderr
    incident = _json(opened.stdout)
    assert (incident["openedBy"], incident["services"], incident["severity"]) == ("admin", ["checkout"], "major")

    listed = run_cli("incident", "list", *remote, "--format", "json")
    assert _json(listed.stdout) == [incident]
    resolved = run_cli("incident", "resolve", incident["id"], *remote)
    assert (resolved.code, resolved.stdout.strip()) == (0, f"{incident['id']}: resolved by admin")
    assert api.controls.incidents() == []

    refused = run_cli("freeze", "create", "--reason", "why", "--evaluator", served, "--token", api.tokens["read"])
    assert refused.code == 1
    assert "the evaluator refused (HTTP 403): token 'read' lacks the 'admin' scope" in refused.stderr
    assert api.controls.freezes() == []


def test_an_unreachable_evaluator_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("freeze", "list", "--evaluator", "http://127.0.0.1:9", "--token", "slp_x")
    assert result.code == 1
    assert (
        result.stderr.strip()
        == "sloplane freeze list: cannot reach the evaluator at http://127.0.0.1:9: ConnectionError"
    )


def test_listing_a_missing_local_file_says_so(tmp_path: Path) -> None:
    result = run_cli("incident", "list", "--db", tmp_path / "nowhere.db")
    assert (result.code, result.stderr.strip()) == (
        1,
        f"sloplane incident list: no release controls at {tmp_path / 'nowhere.db'}",
    )
    assert not (tmp_path / "nowhere.db").exists()
