"""Freezes and incidents, once for each store: SQLite (a file) and PostgreSQL (a throw-away cluster).

Why one suite: the gate, the API and the CLI use either store through the same methods, so the two must not
drift apart — same records back, same order, same refusals with the same messages. The behaviours are those
of `test_evaluator_controls`'s store tests, here through `open_release_controls`, plus what replicas need:
two store objects on one database (two replicas) see each other's writes at once, race to open one
incident per key, and race to lift or resolve with exactly one winner. SQLite passes those too, through its
write lock; PostgreSQL through its unique index and row locks.

The PostgreSQL-only tests at the end: migrations (recorded once, beside the decision log's, safe from two
processes at once), the least-privileged writer role, credentials that never show, a server that stops and
comes back.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import psycopg
import pytest

from sloplane.evaluator.storage.controls import AlreadyEndedError, ControlsError, ReleaseControls, UnknownControlError
from sloplane.evaluator.storage.open import open_release_controls
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from sloplane.evaluator.storage.postgres_controls import PostgresReleaseControls
from sloplane.evaluator.storage.postgres_controls_schema import LATEST
from sloplane.evaluator.storage.postgres_schema import MIGRATION_LOCK, WRITER_ROLE
from tests.conftest import ROOT
from tests.evaluator_data import T0
from tests.postgres import advisory_lock_waiters, assert_secret_free, wait_until

if TYPE_CHECKING:
    from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
SECRET = "Pw-9f3k!x@y:z"
"""A password with the characters a URL must escape: it must not appear in any spelling."""

Controls = ReleaseControls | PostgresReleaseControls
_Result = TypeVar("_Result")


@dataclass
class Store:
    """The store under test, more objects on the same database (replicas), and SQL by the owner's hand."""

    kind: str
    controls: Controls
    target: str | Path
    by_hand: Callable[[str], None]
    tables: dict[str, str]
    opened: list[Controls] = field(default_factory=list)

    def replica(self) -> Controls:
        """Another store on the same database, as a second evaluator replica opens it."""
        replica = open_release_controls(self.target)
        self.opened.append(replica)
        return replica

    def refusal(self, statement: str) -> str:
        """The database's message refusing `statement` (empty when it was carried out)."""
        try:
            self.by_hand(statement.format(**self.tables))
        except (sqlite3.Error, psycopg.Error) as error:
            return str(error)
        return ""


def _sqlite_by_hand(path: Path) -> Callable[[str], None]:
    def run(statement: str) -> None:
        with sqlite3.connect(path) as connection:
            connection.execute(statement)
        connection.close()

    return run


def _postgres_by_hand(url: str) -> Callable[[str], None]:
    def run(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(statement)

    return run


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        path = tmp_path / "controls.db"
        tables = {"freezes": "freezes", "incidents": "incidents"}
        made = Store("sqlite", open_release_controls(path), path, _sqlite_by_hand(path), tables)
    else:
        url = request.getfixturevalue("postgres_url")
        tables = {"freezes": "release_freezes", "incidents": "release_incidents"}
        made = Store("postgres", open_release_controls(url), url, _postgres_by_hand(url), tables)
    try:
        yield made
    finally:
        for controls in [made.controls, *made.opened]:
            controls.close()


def _ids(records: list[Any]) -> list[str]:
    return [record.id for record in records]


def _race(workers: int, work: Callable[[int], _Result]) -> list[_Result | ControlsError]:
    """`work(n)` for each worker, all released at once; what each returned or raised."""
    start = threading.Barrier(workers)

    def run(number: int) -> _Result | ControlsError:
        start.wait()
        try:
            return work(number)
        except ControlsError as error:
            return error

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(workers)))


# --- freezes ----------------------------------------------------------------------------------------------


def test_a_freeze_is_active_from_its_creation_until_it_expires_or_is_lifted(store: Store) -> None:
    controls = store.controls
    everything = controls.freeze(None, "black friday", "alice", until=T0 + 2 * HOUR, at=T0)
    checkout = controls.freeze("checkout", "payment provider migration", "bob", at=T0 + HOUR)
    controls.lift(checkout.id, "carol", "migration done", at=T0 + 3 * HOUR)

    assert controls.freezes(at=T0 - HOUR) == []
    assert _ids(controls.freezes(at=T0)) == [everything.id]
    assert _ids(controls.freezes(at=T0 + 90 * MINUTE)) == [checkout.id, everything.id]
    assert _ids(controls.freezes(at=T0 + 2 * HOUR)) == [checkout.id], "`until` is exclusive"
    assert controls.freezes(at=T0 + 3 * HOUR) == [], "lifting is exclusive too"


def test_active_freezes_of_a_service_are_its_own_and_the_global_ones(store: Store) -> None:
    controls = store.controls
    everything = controls.freeze(None, "change freeze", "alice", at=T0)
    checkout = controls.freeze("checkout", "migration", "alice", at=T0)
    controls.freeze("search", "reindex", "alice", at=T0 - HOUR)
    at = T0 + HOUR
    assert _ids(controls.active_freezes("checkout", at)) == [checkout.id, everything.id]
    assert _ids(controls.active_freezes("payments", at)) == [everything.id]
    assert [freeze.covers("payments") for freeze in (everything, checkout)] == [True, False]
    assert _ids(controls.freezes(active_only=False, service="checkout")) == [checkout.id, everything.id]


def test_equal_creation_times_list_the_latest_recorded_first(store: Store) -> None:
    first, second, third = (store.controls.freeze(f"s{n}", "why", "alice", at=T0) for n in range(3))
    assert _ids(store.controls.freezes(at=T0)) == [third.id, second.id, first.id]


def test_a_replay_in_the_past_sees_the_freezes_of_that_time(store: Store) -> None:
    """A lifted freeze is gone now and still there for a gate replayed at an instant it was in force."""
    controls = store.controls
    freeze = controls.freeze("checkout", "incident follow-up", "alice", at=T0)
    lifted = controls.lift(freeze.id, "bob", "done", at=T0 + HOUR)
    assert controls.active_freezes("checkout", datetime.now(UTC)) == []
    assert controls.active_freezes("checkout", T0 + 30 * MINUTE) == [lifted]
    assert (lifted.lifted_by, lifted.lift_reason, lifted.lifted_at) == ("bob", "done", T0 + HOUR)
    assert _ids(controls.freezes(active_only=False)) == [freeze.id]
    assert controls.get_freeze(freeze.id) == lifted


def test_lifting_twice_or_an_unknown_freeze_is_refused_saying_why(store: Store) -> None:
    controls = store.controls
    freeze = controls.freeze(None, "release train paused", "alice")
    controls.lift(freeze.id, "bob", "resumed")
    with pytest.raises(AlreadyEndedError, match=rf"^freeze {freeze.id} was already lifted by bob at \d{{4}}-"):
        controls.lift(freeze.id, "carol", "again")
    with pytest.raises(UnknownControlError, match=r"^no freeze 'frz-00000000' in "):
        controls.lift("frz-00000000", "carol", "typo")
    with pytest.raises(UnknownControlError, match=r"^no freeze 'frz-00000000' in "):
        controls.get_freeze("frz-00000000")
    assert controls.get_freeze(freeze.id).lifted_by == "bob", "the refused lift changed nothing"


def test_a_freeze_cannot_be_lifted_before_it_was_created(store: Store) -> None:
    freeze = store.controls.freeze(None, "why", "alice", at=T0)
    with pytest.raises(ControlsError, match=f"^freeze {freeze.id} cannot be lifted before it was created$"):
        store.controls.lift(freeze.id, "bob", "early", at=T0 - MINUTE)
    assert store.controls.get_freeze(freeze.id).lifted_at is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"reason": "  "}, "a reason for the freeze is required"),
        ({"created_by": ""}, "who freezes is required"),
        ({"service": " "}, "the service name is required"),
        ({"reason": "why\x00"}, r"a reason for the freeze holds a control character"),
        ({"until": T0 - HOUR}, "would already be over"),
        ({"until": T0}, "would already be over"),
    ],
)
def test_a_freeze_needs_a_reason_an_author_and_a_future_end(
    store: Store, arguments: dict[str, Any], message: str
) -> None:
    given = {"service": None, "reason": "why", "created_by": "alice", "until": None} | arguments
    with pytest.raises(ControlsError, match=message):
        store.controls.freeze(given["service"], given["reason"], given["created_by"], until=given["until"], at=T0)
    assert store.controls.freezes(active_only=False) == []


def test_ids_are_short_and_readable(store: Store) -> None:
    freeze = store.controls.freeze(None, "why", "alice")
    incident = store.controls.open_incident("down", "major", "alice")
    assert freeze.id.startswith("frz-") and len(freeze.id) == 12
    assert incident.id.startswith("inc-") and len(incident.id) == 12


def test_to_dict_is_camel_case_with_rfc3339_utc_times(store: Store) -> None:
    """Whatever offset the caller used, and a naive time taken as UTC, records come back in UTC."""
    paris = timezone(timedelta(hours=1))
    freeze = store.controls.freeze(" checkout ", " why ", "alice", until=(T0 + HOUR).astimezone(paris), at=T0)
    naive = store.controls.open_incident("down", "minor", "bob", at=(T0 + HOUR).replace(tzinfo=None))
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
    assert naive.to_dict() == {
        "id": naive.id,
        "title": "down",
        "severity": "minor",
        "services": [],
        "openedBy": "bob",
        "openedAt": "2026-11-26T13:00:00+00:00",
        "resolvedAt": None,
        "resolvedBy": None,
        "key": None,
        "source": "manual",
    }
    assert store.controls.get_freeze(freeze.id).to_dict() == freeze.to_dict()
    assert store.controls.freezes(at=T0 + 30 * MINUTE)[0].created_at.utcoffset() == timedelta(0)


def test_replays_about_the_edges_of_time_are_answered(store: Store) -> None:
    """`at` years 1 and 9999, even in an offset that leaves the representable range, as SQLite answers them."""
    controls = store.controls
    forever = controls.freeze(None, "since the beginning", "alice", at=datetime.min.replace(tzinfo=UTC))
    assert forever.created_at == datetime.min.replace(tzinfo=UTC)
    assert _ids(controls.freezes(at=datetime.max.replace(tzinfo=UTC))) == [forever.id]
    east = timezone(timedelta(hours=5))
    assert _ids(controls.freezes(at=datetime.min.replace(tzinfo=east))) == [forever.id], "clamped to year 1 UTC"
    assert controls.open_major_incidents(datetime.max.replace(tzinfo=timezone(-timedelta(hours=5)))) == []


# --- incidents --------------------------------------------------------------------------------------------


def test_an_incident_key_is_idempotent_while_open(store: Store) -> None:
    controls = store.controls
    first, new = controls.record_incident(
        "checkout 5xx", "major", "alertmanager", key="alert-1", source="notifier", at=T0
    )
    again, new_again = controls.record_incident("checkout 5xx (repeat)", "minor", "alertmanager", key="alert-1")
    assert (new, new_again) == (True, False)
    assert again == first, "the open incident is answered, unchanged"
    controls.resolve_incident(first.id, "alice", at=T0 + 2 * HOUR)
    recurrence = controls.open_incident("checkout 5xx", "major", "alertmanager", key="alert-1", at=T0 + 3 * HOUR)
    assert recurrence.id != first.id, "a resolved incident's key may open the next one"
    other = controls.open_incident("search slow", "minor", "alertmanager", key="alert-2", at=T0 + 3 * HOUR)
    unkeyed = [controls.open_incident("by hand", "minor", "alice", at=T0 + 4 * HOUR) for _ in range(2)]
    assert len(set(_ids(unkeyed))) == 2, "without a key every opening is an incident"
    assert _ids(controls.incidents(open_only=False)) == [*_ids(unkeyed)[::-1], other.id, recurrence.id, first.id]
    assert (first.source, recurrence.source) == ("notifier", "manual")


def test_open_major_incidents_at_an_instant(store: Store) -> None:
    controls = store.controls
    major = controls.open_incident("db down", "major", "alice", services=["checkout", " checkout", "search"], at=T0)
    controls.open_incident("slow dashboards", "minor", "alice", at=T0)
    later = controls.open_incident("cache down", "major", "alice", at=T0 + 10 * MINUTE)
    controls.resolve_incident(major.id, "bob", at=T0 + HOUR)
    assert major.services == ("checkout", "search"), "each service named once, in order"
    assert _ids(controls.open_major_incidents(T0 + 30 * MINUTE)) == [later.id, major.id]
    assert _ids(controls.open_major_incidents(T0 + HOUR)) == [later.id]
    assert controls.open_major_incidents(T0 - MINUTE) == []
    assert len(controls.incidents(at=T0 + 30 * MINUTE)) == 3
    assert [major.covers("checkout"), major.covers("payments"), later.covers("payments")] == [True, False, True]


def test_resolving_twice_or_an_unknown_incident_is_refused(store: Store) -> None:
    controls = store.controls
    incident = controls.open_incident("db down", "major", "alice", at=T0)
    with pytest.raises(ControlsError, match=f"^incident {incident.id} cannot be resolved before it was opened$"):
        controls.resolve_incident(incident.id, "bob", at=T0 - MINUTE)
    resolved = controls.resolve_incident(incident.id, "bob")
    assert resolved.resolved_by == "bob" and controls.get_incident(incident.id) == resolved
    with pytest.raises(AlreadyEndedError, match=rf"^incident {incident.id} was already resolved by bob at "):
        controls.resolve_incident(incident.id, "carol")
    with pytest.raises(UnknownControlError, match=r"^no incident 'inc-nope' in "):
        controls.resolve_incident("inc-nope", "carol")
    with pytest.raises(UnknownControlError, match=r"^no incident 'inc-nope' in "):
        controls.get_incident("inc-nope")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"severity": "critical"}, "^severity must be one of major, minor, not 'critical'$"),
        ({"title": " "}, "^an incident title is required and cannot be empty$"),
        ({"opened_by": ""}, "^who opens the incident is required"),
        ({"services": ["checkout", ""]}, "^a service name is required"),
        ({"key": "\t"}, "^the incident key is required"),
        ({"source": "b\x07ot"}, "^the incident source holds a control character"),
    ],
)
def test_an_incident_needs_a_title_a_severity_and_an_author(
    store: Store, arguments: dict[str, Any], message: str
) -> None:
    given: dict[str, Any] = {"title": "down", "severity": "major", "opened_by": "alice"} | arguments
    title, severity, opened_by = given.pop("title"), given.pop("severity"), given.pop("opened_by")
    with pytest.raises(ControlsError, match=message):
        store.controls.open_incident(title, severity, opened_by, **given)
    assert store.controls.incidents(open_only=False) == []


# --- replicas ---------------------------------------------------------------------------------------------


def test_replicas_see_each_others_freezes_and_incidents_at_once(store: Store) -> None:
    """Nothing is cached: a freeze made through one replica stops the other's next gate."""
    one, other = store.controls, store.replica()
    now = datetime.now(UTC)
    assert other.active_freezes("checkout", now) == []
    freeze = one.freeze("checkout", "migration", "alice")
    assert _ids(other.active_freezes("checkout", datetime.now(UTC))) == [freeze.id]
    other.lift(freeze.id, "bob", "done")
    assert one.active_freezes("checkout", datetime.now(UTC)) == []
    assert one.get_freeze(freeze.id).lifted_by == "bob"
    incident = other.open_incident("db down", "major", "pager", key="db")
    assert _ids(one.open_major_incidents(datetime.now(UTC))) == [incident.id]
    assert one.open_incident("db down again", "major", "pager", key="db") == incident
    one.resolve_incident(incident.id, "carol")
    assert other.open_major_incidents(datetime.now(UTC)) == []


def test_replicas_opening_one_key_at_once_make_one_incident(store: Store) -> None:
    replicas = [store.controls, store.replica()]
    outcomes = _race(16, lambda n: replicas[n % 2].record_incident(f"try {n}", "major", "bot", key="alert-7"))
    opened = [outcome for outcome in outcomes if not isinstance(outcome, ControlsError)]
    assert len(opened) == 16, outcomes
    assert len({incident.id for incident, _ in opened}) == 1
    assert sum(new for _, new in opened) == 1, "exactly one replica opened it; the others were answered it"
    assert len(store.controls.incidents(open_only=False)) == 1


def test_replicas_lifting_one_freeze_at_once_lift_it_once(store: Store) -> None:
    replicas = [store.controls, store.replica()]
    freeze = store.controls.freeze(None, "why", "alice")
    outcomes = _race(8, lambda n: replicas[n % 2].lift(freeze.id, f"lifter-{n}", "done"))
    winners = [outcome for outcome in outcomes if not isinstance(outcome, ControlsError)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, ControlsError)]
    assert len(winners) == 1 and all(isinstance(loser, AlreadyEndedError) for loser in losers), outcomes
    assert store.controls.get_freeze(freeze.id) == winners[0]
    assert all(f"already lifted by {winners[0].lifted_by} at " in str(loser) for loser in losers)


def test_replicas_resolving_one_incident_at_once_resolve_it_once(store: Store) -> None:
    replicas = [store.controls, store.replica()]
    incident = store.controls.open_incident("db down", "major", "alice")
    outcomes = _race(8, lambda n: replicas[n % 2].resolve_incident(incident.id, f"resolver-{n}"))
    winners = [outcome for outcome in outcomes if not isinstance(outcome, ControlsError)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, ControlsError)]
    assert len(winners) == 1 and all(isinstance(loser, AlreadyEndedError) for loser in losers), outcomes
    assert store.controls.get_incident(incident.id) == winners[0]


# --- nothing is ever deleted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DELETE FROM {freezes}", "a freeze cannot be deleted, only lifted"),
        ("DELETE FROM {incidents}", "an incident cannot be deleted, only resolved"),
        ("UPDATE {freezes} SET reason = 'rewritten'", "a freeze can only be lifted, once"),
        ("UPDATE {freezes} SET lifted_at = created_at, lifted_by = 'x', lift_reason = 'y'", "only be lifted, once"),
        ("UPDATE {incidents} SET severity = 'minor', resolved_at = opened_at, resolved_by = 'x'", "only be resolved"),
        ("UPDATE {incidents} SET resolved_at = opened_at", "only be resolved"),
    ],
)
def test_sql_by_hand_cannot_delete_or_rewrite_a_record(store: Store, statement: str, message: str) -> None:
    """The database guards the history even against the owner's hand (the freeze is lifted already)."""
    freeze = store.controls.freeze(None, "why", "alice")
    store.controls.lift(freeze.id, "bob", "over")
    incident = store.controls.open_incident("down", "major", "alice")
    assert message in store.refusal(statement)
    assert store.controls.get_freeze(freeze.id).reason == "why"
    assert store.controls.incidents() == [incident]


def test_a_closed_store_says_so(store: Store) -> None:
    store.controls.close()
    with pytest.raises(ControlsError, match=r"^the release controls at .+ is closed$"):
        store.controls.freezes()
    with pytest.raises(ControlsError, match=r"^the release controls at .+ is closed$"):
        store.controls.freeze(None, "why", "alice")


# --- PostgreSQL: opening, migrations ----------------------------------------------------------------------


def _migrations(cluster: PostgresCluster, database: str) -> list[tuple[object, ...]]:
    return cluster.execute(
        "SELECT store, version, name, applied_at FROM schema_migrations ORDER BY store, version", database
    )


def test_migrations_run_once_beside_the_decision_logs(
    postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    """One database for both stores (the default); each records its own versions, and reopening changes nothing."""
    url = postgres_cluster.url(postgres_database)
    with PostgresReleaseControls(url) as controls:
        controls.freeze(None, "why", "alice")
    PostgresDecisionLog(url).close()
    first = _migrations(postgres_cluster, postgres_database)
    with open_release_controls(url) as again, PostgresDecisionLog(url):
        assert len(again.freezes()) == 1
    assert _migrations(postgres_cluster, postgres_database) == first
    assert [(store, version) for store, version, *_ in first if store == "controls"] == [
        ("controls", version) for version in range(1, LATEST + 1)
    ]
    assert {store for store, *_ in first} == {"controls", "decisions"}


def test_two_processes_migrating_at_once_apply_each_version_once(
    postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    """Both start while the migration lock is held, so both wait for it; each version is applied once."""
    url = postgres_cluster.url(postgres_database)
    script = (
        "import sys\n"
        "from sloplane.evaluator.storage.postgres_controls import PostgresReleaseControls\n"
        "with PostgresReleaseControls(sys.argv[1]) as controls:\n"
        "    controls.freeze(None, 'from a replica', 'replica')\n"
    )
    with psycopg.connect(url, autocommit=True) as holder:
        with holder.transaction():
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            replicas = [
                subprocess.Popen([sys.executable, "-c", script, url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
                for _ in range(2)
            ]
            wait_until(lambda: advisory_lock_waiters(holder) == 2, within=20.0)
        outcomes = [(replica.wait(timeout=30), replica.stderr.read() if replica.stderr else "") for replica in replicas]
    assert outcomes == [(0, ""), (0, "")]
    versions = [(store, version) for store, version, *_ in _migrations(postgres_cluster, postgres_database)]
    assert versions == [("controls", version) for version in range(1, LATEST + 1)]
    with PostgresReleaseControls(url) as controls:
        assert [freeze.created_by for freeze in controls.freezes()] == ["replica", "replica"]


def test_a_newer_controls_schema_is_refused(
    postgres_url: str, postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    PostgresReleaseControls(postgres_url).close()
    postgres_cluster.execute(
        "INSERT INTO schema_migrations (store, version, name) VALUES ('controls', 99, 'from the future')",
        postgres_database,
    )
    with pytest.raises(ControlsError, match=r"controls schema is at version 99; this sloplane knows up to \d"):
        open_release_controls(postgres_url)
    with PostgresDecisionLog(postgres_url) as log:
        assert log.count() == 0, "the decision log's schema is another store's, and still opens"


def test_open_release_controls_tells_a_url_from_a_path(postgres_url: str, tmp_path: Path) -> None:
    with open_release_controls(postgres_url) as controls:
        assert isinstance(controls, PostgresReleaseControls)
        assert controls.where == postgres_url
    with open_release_controls(tmp_path / "controls.db") as controls:
        assert isinstance(controls, ReleaseControls)
    with pytest.raises(ControlsError, match="is a file path, not a PostgreSQL URL"):
        open_release_controls(tmp_path / "controls.db", password_file=tmp_path / "password")


# --- PostgreSQL: roles and credentials --------------------------------------------------------------------


def _login_role(cluster: PostgresCluster) -> str:
    """A login role with `SECRET` as its password that holds only the writer role (the operator's setup)."""
    name = f"evaluator_{uuid.uuid4().hex[:8]}"
    cluster.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{SECRET}'; GRANT {WRITER_ROLE} TO {name}")
    return name


def test_the_writer_role_can_keep_the_controls_and_not_rewrite_them(
    private_postgres_cluster: PostgresCluster,
) -> None:
    """Migrated first (before any decision log), the controls create the writer role and grant it what the
    evaluator does: an evaluator logged in with only that role freezes, lifts, opens and resolves, and cannot
    delete, truncate or rewrite a record even with the triggers out of its way."""
    cluster = private_postgres_cluster
    database = cluster.create_database()
    assert cluster.execute(f"SELECT count(*) FROM pg_roles WHERE rolname = '{WRITER_ROLE}'") == [(0,)]
    PostgresReleaseControls(cluster.url(database)).close()
    user = _login_role(cluster)
    url = cluster.tcp_url(database, user, quote(SECRET, safe=""))
    with PostgresReleaseControls(url) as controls:
        assert SECRET not in controls.where and user in controls.where
        freeze = controls.freeze("checkout", "why", user)
        controls.lift(freeze.id, user, "done")
        incident, _ = controls.record_incident("down", "major", user, key="k")
        assert controls.open_incident("down", "major", user, key="k") == incident
        controls.resolve_incident(incident.id, user)
    as_evaluator = _postgres_by_hand(url)
    for statement in (
        "DELETE FROM release_freezes",
        "TRUNCATE release_incidents",
        "UPDATE release_freezes SET reason = 'rewritten'",
        "UPDATE release_incidents SET severity = 'minor'",
        "ALTER TABLE release_freezes DISABLE TRIGGER USER",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"(permission denied|must be owner)"):
            as_evaluator(statement)
    with pytest.raises(psycopg.errors.RestrictViolation, match="a freeze cannot be deleted, only lifted"):
        _postgres_by_hand(cluster.url(database))("TRUNCATE release_freezes")


def test_a_database_that_cannot_be_reached_is_named_without_the_password() -> None:
    url = f"postgresql://someone:{quote(SECRET, safe='')}@127.0.0.1:1/controls"
    with pytest.raises(ControlsError, match=r"^cannot open the release controls at postgresql://someone@") as failed:
        open_release_controls(url)
    assert_secret_free(SECRET, failed.value)
    assert "\n" not in str(failed.value)


def test_a_wrong_password_is_refused_without_being_shown(
    postgres_cluster: PostgresCluster, postgres_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    PostgresReleaseControls(postgres_cluster.url(postgres_database)).close()
    user = f"evaluator_{uuid.uuid4().hex[:8]}"
    postgres_cluster.execute(f"CREATE ROLE {user} LOGIN PASSWORD 'the-right-one'; GRANT {WRITER_ROLE} TO {user}")
    url = postgres_cluster.tcp_url(postgres_database, user, quote(SECRET, safe=""))
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(ControlsError, match="password authentication failed") as refused,
    ):
        open_release_controls(url)
    assert_secret_free(SECRET, refused.value, caplog.text)


# --- PostgreSQL: the server goes away and comes back ------------------------------------------------------


def test_a_restart_mid_use_is_one_clear_error_then_recovers(
    private_postgres_cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Restarted between two calls: the dead pooled connections are dropped and the call goes through. Down:
    every call fails fast with the reason, naming the database without its password. Back: calls succeed
    again, and nothing was recorded twice or lost."""
    cluster = private_postgres_cluster
    database = cluster.create_database()
    PostgresReleaseControls(cluster.url(database)).close()
    url = cluster.tcp_url(database, _login_role(cluster), quote(SECRET, safe=""))
    with caplog.at_level(logging.DEBUG), PostgresReleaseControls(url, pool_size=4, timeout=1.0) as controls:
        freeze = controls.freeze(None, "before the restart", "alice")
        _race(4, lambda _: controls.freezes())  # several pooled connections, all of which the restart kills
        cluster.stop()
        cluster.start()
        assert _ids(controls.active_freezes("checkout", datetime.now(UTC))) == [freeze.id]
        incident = controls.open_incident("db restarted", "major", "alice", key="db")

        cluster.stop()
        started = time.monotonic()
        with pytest.raises(ControlsError, match=r"^cannot read the release controls at postgresql://evaluator_"):
            controls.open_major_incidents(datetime.now(UTC))
        with pytest.raises(ControlsError, match=rf"^cannot lift freeze {freeze.id} in postgresql://.*refused") as down:
            controls.lift(freeze.id, "bob", "over")
        assert time.monotonic() - started < 5, "a gate must not hang on a database that is gone"
        cluster.start()
        wait_until(lambda: _answers(controls), within=20.0)
        controls.lift(freeze.id, "bob", "over")
        assert controls.open_incident("db restarted", "major", "alice", key="db") == incident
        assert [len(controls.freezes(active_only=False)), len(controls.incidents(open_only=False))] == [1, 1]
        assert controls.get_freeze(freeze.id).lifted_by == "bob"
    assert_secret_free(SECRET, down.value, caplog.text)


def _answers(controls: PostgresReleaseControls) -> bool:
    try:
        controls.freezes()
    except ControlsError:
        return False
    return True
