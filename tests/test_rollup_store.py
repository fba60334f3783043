"""Hourly rollups, once for each store: SQLite (a file) and PostgreSQL (a throw-away cluster).

Why one suite: the rollup job and the reports use either store through `RollupStore`, so the two must not drift
apart — same rows back, same order, same upsert rule, same all-or-nothing batches, same refusals. Both are
opened through `open_rollups`, as the CLI and `serve` open them. Replicas are covered too: two store objects
on one database see each other's rows, and batches sharing hours written at once end as one whole batch.

The PostgreSQL-only tests at the end: migrations (recorded once, beside the decision log's, safe from two
processes at once on a fresh database), the least-privileged writer role, credentials that never show.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg
import pytest

from sloplane.evaluator.model import Rollup
from sloplane.evaluator.storage.open import open_rollups
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from sloplane.evaluator.storage.postgres_schema import MIGRATION_LOCK, WRITER_ROLE
from sloplane.evaluator.storage.rollups import RollupError, SqliteRollups
from sloplane.evaluator.storage.rollups_postgres import PostgresRollups
from sloplane.evaluator.storage.rollups_postgres_schema import LATEST
from tests.conftest import ROOT
from tests.evaluator_data import T0
from tests.postgres import advisory_lock_waiters, assert_secret_free, wait_until

if TYPE_CHECKING:
    from sloplane.evaluator.contracts import RollupStore
    from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)

HOUR = timedelta(hours=1)
SECRET = "Pw-9f3k!x@y:z"
"""A password with the characters a URL must escape: it must not appear in any spelling."""
ROLLED_AT = T0 + 30 * 24 * HOUR

Rollups = SqliteRollups | PostgresRollups


def _rollup(slo: str = "checkout", stage: str | None = None, start: datetime = T0, **changes: Any) -> Rollup:
    """An hour of `slo` (or of one stage of it) starting at `start`, with plausible counts."""
    rollup = Rollup(
        slo=slo,
        stage=stage,
        start=start,
        end=start + HOUR,
        bad_events=12.0,
        total_events=10_000.0,
        excluded_bad_events=2.0,
        excluded_total_events=500.0,
        excluded_minutes=3.5,
        objective=99.9,
        policy_version="v1",
        time_zone="Europe/Paris",
        source="prometheus",
    )
    return replace(rollup, **changes)


@dataclass
class Store:
    """The store under test, more objects on the same database (replicas), and SQL by the owner's hand."""

    kind: str
    rollups: Rollups
    target: str | Path
    query: Callable[[str], list[tuple[Any, ...]]]
    table: str
    opened: list[Rollups] = field(default_factory=list)

    def replica(self) -> Rollups:
        """Another store on the same database, as a second evaluator replica opens it."""
        replica = open_rollups(self.target)
        self.opened.append(replica)
        return replica

    def rolled_at(self) -> list[datetime]:
        """Every row's `rolled_at`, as an instant, in key order."""
        rows = self.query(f"SELECT rolled_at FROM {self.table} ORDER BY slo, stage, start")
        return [value if isinstance(value, datetime) else datetime.fromisoformat(value) for (value,) in rows]

    def count(self) -> int:
        return int(self.query(f"SELECT count(*) FROM {self.table}")[0][0])


def _sqlite_query(path: Path) -> Callable[[str], list[tuple[Any, ...]]]:
    def run(statement: str) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(path)
        try:
            return connection.execute(statement).fetchall()
        finally:
            connection.close()

    return run


def _postgres_query(url: str) -> Callable[[str], list[tuple[Any, ...]]]:
    def run(statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else []

    return run


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        path = tmp_path / "rollups.db"
        made = Store("sqlite", open_rollups(path), path, _sqlite_query(path), "rollups")
    else:
        url = request.getfixturevalue("postgres_url")
        made = Store("postgres", open_rollups(url), url, _postgres_query(url), "slo_rollups")
    try:
        yield made
    finally:
        for rollups in [made.rollups, *made.opened]:
            rollups.close()


def _everything(rollups: Rollups, slos: list[str] | None = None) -> list[Rollup]:
    return rollups.read(since=datetime.min.replace(tzinfo=UTC), until=datetime.max.replace(tzinfo=UTC), slos=slos)


def _sort_key(rollup: Rollup) -> tuple[str, str, datetime]:
    """The order both stores promise: SLO, stage (the unstaged SLO's '' first), start — text compared bytewise."""
    return rollup.slo, rollup.stage or "", rollup.start


# --- writing and reading back -----------------------------------------------------------------------------


def test_rows_come_back_equal_including_the_unstaged_slo_and_hours_without_data(store: Store) -> None:
    written = [
        _rollup(),
        _rollup(stage="canary", excluded_bad_events=0.0, excluded_minutes=0.0, source="recording-rules"),
        _rollup(start=T0 + HOUR, bad_events=None, total_events=None, objective=99.5, policy_version="sha:4f2a"),
        _rollup("search", start=T0 + 2 * HOUR, bad_events=0.25, total_events=1e12, time_zone="Asia/Kolkata"),
    ]
    store.rollups.write(written, ROLLED_AT)
    back = _everything(store.rollups)
    assert back == sorted(written, key=_sort_key)
    assert [rollup.stage for rollup in back] == [None, None, "canary", None], "'' is read back as None"
    without_data = back[1]
    assert (without_data.bad_events, without_data.total_events, without_data.counted_bad_events) == (None, None, None)
    assert all(rollup.start.utcoffset() == timedelta(0) and rollup.end.tzinfo is not None for rollup in back)
    assert back[0].to_dict() == written[0].to_dict()


def test_rows_are_ordered_by_slo_then_stage_with_the_unstaged_first_then_start(store: Store) -> None:
    """Bytewise, as SQLite compares text: upper case before lower case, ASCII before accented letters."""
    written = [
        _rollup(slo, stage, T0 + hours * HOUR)
        for slo in ("search", "Checkout", "checkout", "épicerie", "zebra")
        for stage in (None, "canary", "Beta", "beta", "primary")
        for hours in (2, 0, 1)
    ]
    random.Random(7).shuffle(written)
    store.rollups.write(written, ROLLED_AT)
    back = _everything(store.rollups)
    assert back == sorted(written, key=_sort_key)
    assert [rollup.slo for rollup in back[::15]] == ["Checkout", "checkout", "search", "zebra", "épicerie"]
    assert [rollup.stage for rollup in back[:15:3]] == [None, "Beta", "beta", "canary", "primary"]
    assert [rollup.start for rollup in back[:3]] == [T0, T0 + HOUR, T0 + 2 * HOUR]


def test_a_read_takes_the_hours_starting_in_since_until(store: Store) -> None:
    """`since` is included and `until` excluded; an instant in any offset, or naive (UTC), means the same."""
    store.rollups.write([_rollup(start=T0 + hours * HOUR) for hours in range(-1, 4)], ROLLED_AT)

    def starts(since: datetime, until: datetime) -> list[datetime]:
        return [rollup.start for rollup in store.rollups.read(since=since, until=until)]

    assert starts(T0, T0 + 2 * HOUR) == [T0, T0 + HOUR]
    assert starts(T0 + 30 * timedelta(minutes=1), T0 + 2 * HOUR + timedelta(microseconds=1)) == [
        T0 + HOUR,
        T0 + 2 * HOUR,
    ]
    paris = timezone(timedelta(hours=1))
    assert starts(T0.astimezone(paris), (T0 + HOUR).replace(tzinfo=None)) == [T0]
    assert starts(T0 + HOUR, T0 + HOUR) == [], "an empty period"
    assert starts(T0 + 3 * HOUR, T0) == [], "a period ending before it starts"
    assert starts(T0 + 4 * HOUR, T0 + 10 * HOUR) == []
    east, west = timezone(timedelta(hours=5)), timezone(-timedelta(hours=5))
    edges = starts(datetime.min.replace(tzinfo=east), datetime.max.replace(tzinfo=west))
    assert len(edges) == 5, "bounds past the edges of time in their offset are clamped, not refused"


def test_a_read_can_be_limited_to_some_slos(store: Store) -> None:
    written = [_rollup(slo, stage) for slo in ("checkout", "search", "payments") for stage in (None, "canary")]
    store.rollups.write(written, ROLLED_AT)
    assert [(r.slo, r.stage) for r in _everything(store.rollups, ["search", "checkout"])] == [
        ("checkout", None),
        ("checkout", "canary"),
        ("search", None),
        ("search", "canary"),
    ]
    assert _everything(store.rollups, ["payments"]) == [written[4], written[5]]
    assert _everything(store.rollups, ["nobody", "Checkout"]) == [], "names are compared exactly"
    assert _everything(store.rollups, []) == [], "no SLO named: no rows"
    assert len(_everything(store.rollups, None)) == 6


def test_an_empty_batch_writes_nothing_and_is_no_error(store: Store) -> None:
    store.rollups.write([], ROLLED_AT)
    assert (_everything(store.rollups), store.rollups.latest(), store.count()) == ([], {}, 0)


# --- rewriting ---------------------------------------------------------------------------------------------


def test_rolling_an_hour_up_again_replaces_its_counts_and_keeps_its_judgement(store: Store) -> None:
    """Counts, end, source and `rolled_at` are replaced; the objective, policy version and time zone stay the
    first write's, so a target changed later does not rewrite how past hours are judged."""
    first = _rollup(stage="canary")
    other = _rollup(start=T0 + HOUR)
    store.rollups.write([first, other], ROLLED_AT)
    again = replace(
        first,
        end=first.end + timedelta(minutes=30),
        bad_events=None,
        total_events=20_000.0,
        excluded_bad_events=1.0,
        excluded_total_events=0.0,
        excluded_minutes=0.0,
        objective=95.0,
        policy_version="v2",
        time_zone="America/New_York",
        source="recording-rules",
    )
    store.rollups.write([again], ROLLED_AT + HOUR)
    expected = replace(again, objective=99.9, policy_version="v1", time_zone="Europe/Paris")
    assert _everything(store.rollups) == [other, expected]
    assert store.count() == 2, "rewritten in place, not added"
    assert store.rolled_at() == [ROLLED_AT, ROLLED_AT + HOUR], "`rolled_at` is replaced too (key order)"


def test_a_key_given_twice_in_one_batch_ends_as_the_last_one_given(store: Store) -> None:
    """Counts from the last, judgement from the first: the rows are written in the order given."""
    first = _rollup(objective=99.0)
    last = _rollup(bad_events=1.0, objective=50.0, policy_version="v9", source="recording-rules")
    store.rollups.write([first, _rollup("search"), last], ROLLED_AT)
    assert _everything(store.rollups, ["checkout"]) == [replace(last, objective=99.0, policy_version="v1")]


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ({"end": T0}, "end"),
        ({"end": T0 - HOUR}, "end"),
        ({"excluded_minutes": -1.0}, "excluded_minutes"),
        ({"excluded_total_events": float("nan")}, "excluded_total_events"),
    ],
    ids=["end-equals-start", "end-before-start", "negative-excluded-minutes", "nan-where-a-number-is-required"],
)
def test_a_batch_with_one_bad_row_writes_nothing(store: Store, broken: dict[str, Any], reason: str) -> None:
    """All or nothing: neither the new rows before the bad one nor the rewrites of existing rows are kept."""
    kept = _rollup()
    store.rollups.write([kept], ROLLED_AT)
    batch = [
        replace(kept, bad_events=999.0),
        _rollup("search"),
        _rollup("payments", start=T0, **broken),
        _rollup("zebra"),
    ]
    with pytest.raises(RollupError, match=r"^cannot write rollups to ") as refused:
        store.rollups.write(batch, ROLLED_AT + HOUR)
    assert reason in str(refused.value), "the database's reason names the column"
    assert "\n" not in str(refused.value)
    assert _everything(store.rollups) == [kept]
    assert store.rolled_at() == [ROLLED_AT]
    assert store.rollups.latest() == {("checkout", None): T0 + HOUR}


def test_a_nan_count_is_stored_as_no_data(store: Store) -> None:
    """SQLite has no NaN (it stores NULL); PostgreSQL would keep it, but follows SQLite so both read alike."""
    store.rollups.write([_rollup(bad_events=float("nan"), total_events=float("nan"))], ROLLED_AT)
    (back,) = _everything(store.rollups)
    assert (back.bad_events, back.total_events) == (None, None)


def test_times_in_any_offset_or_naive_are_stored_as_utc_instants(store: Store) -> None:
    kolkata = timezone(timedelta(hours=5, minutes=30))
    start = (T0 + HOUR).astimezone(kolkata)
    store.rollups.write([_rollup(start=start), _rollup("search", start=T0.replace(tzinfo=None))], ROLLED_AT)
    back = _everything(store.rollups)
    assert [(rollup.slo, rollup.start, rollup.end) for rollup in back] == [
        ("checkout", T0 + HOUR, T0 + 2 * HOUR),
        ("search", T0, T0 + HOUR),
    ]
    assert {rollup.start.utcoffset() for rollup in back} == {timedelta(0)}
    assert store.rollups.latest() == {("checkout", None): T0 + 2 * HOUR, ("search", None): T0 + HOUR}


# --- latest ------------------------------------------------------------------------------------------------


def test_latest_is_the_end_of_each_subjects_newest_row(store: Store) -> None:
    assert store.rollups.latest() == {}
    store.rollups.write(
        [
            _rollup(start=T0 + 5 * HOUR),
            _rollup(start=T0),
            _rollup(stage="canary", start=T0 + 2 * HOUR),
            _rollup("search", start=T0 - 24 * HOUR),
            # an hour of a zone whose offset moved by half an hour: its end is not start + 1 h
            _rollup("search", start=T0 - 23 * HOUR, end=T0 - 22 * HOUR + timedelta(minutes=30)),
        ],
        ROLLED_AT,
    )
    store.rollups.write([_rollup(start=T0 + 3 * HOUR)], ROLLED_AT)
    latest = store.rollups.latest()
    assert latest == {
        ("checkout", None): T0 + 6 * HOUR,
        ("checkout", "canary"): T0 + 3 * HOUR,
        ("search", None): T0 - 22 * HOUR + timedelta(minutes=30),
    }
    assert {end.utcoffset() for end in latest.values()} == {timedelta(0)}


# --- replicas and closing -----------------------------------------------------------------------------------


def test_replicas_see_each_others_rows_at_once(store: Store) -> None:
    one, other = store.rollups, store.replica()
    one.write([_rollup()], ROLLED_AT)
    assert _everything(other) == [_rollup()]
    other.write([_rollup(bad_events=3.0, objective=10.0)], ROLLED_AT)
    assert _everything(one) == [_rollup(bad_events=3.0)]
    assert one.latest() == other.latest() == {("checkout", None): T0 + HOUR}


def test_batches_sharing_hours_written_at_once_each_land_whole(store: Store) -> None:
    """Writers on two replicas rewrite the same day at once, half of them in reverse order: none fails (no
    deadlock), and every row ends as one and the same batch wrote it, never a mix of two."""
    replicas = [store.rollups, store.replica()]
    workers = 8
    hours = [T0 + hour * HOUR for hour in range(24)]
    start = threading.Barrier(workers)

    def write(number: int) -> None:
        batch = [_rollup(stage=stage, start=at, bad_events=float(number)) for at in hours for stage in (None, "b")]
        start.wait()
        replicas[number % 2].write(batch if number % 2 else batch[::-1], ROLLED_AT + number * HOUR)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(write, range(workers)))
    back = _everything(store.rollups)
    assert len(back) == 48
    assert len({rollup.bad_events for rollup in back}) == 1, "one whole batch won"
    assert len(set(store.rolled_at())) == 1


def test_a_closed_store_says_so(store: Store) -> None:
    store.rollups.close()
    with pytest.raises(RollupError, match=r"the rollups at .+ is closed$"):
        store.rollups.write([_rollup()], ROLLED_AT)
    with pytest.raises(RollupError, match=r"the rollups at .+ is closed$"):
        _everything(store.rollups)
    with pytest.raises(RollupError, match=r"the rollups at .+ is closed$"):
        store.rollups.latest()


def test_both_stores_are_rollup_stores(store: Store) -> None:
    """What the rollup job and the reports hold: a `RollupStore`, whichever `open_rollups` gave."""
    rollups: RollupStore = store.rollups
    rollups.write([_rollup()], ROLLED_AT)
    assert rollups.latest() == {("checkout", None): T0 + HOUR}
    assert isinstance(store.rollups, SqliteRollups if store.kind == "sqlite" else PostgresRollups)


# --- PostgreSQL: opening, migrations ------------------------------------------------------------------------


def _migrations(cluster: PostgresCluster, database: str) -> list[tuple[object, ...]]:
    return cluster.execute(
        "SELECT store, version, name, applied_at FROM schema_migrations ORDER BY store, version", database
    )


def test_migrations_run_once_beside_the_decision_logs(
    postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    """One database for both stores (the default); each records its own versions, and reopening changes nothing."""
    url = postgres_cluster.url(postgres_database)
    with PostgresRollups(url) as rollups:
        rollups.write([_rollup()], ROLLED_AT)
    PostgresDecisionLog(url).close()
    first = _migrations(postgres_cluster, postgres_database)
    with open_rollups(url) as again, PostgresDecisionLog(url):
        assert _everything(again) == [_rollup()]
    assert _migrations(postgres_cluster, postgres_database) == first
    assert [(store, version) for store, version, *_ in first if store == "rollups"] == [
        ("rollups", version) for version in range(1, LATEST + 1)
    ]
    assert {store for store, *_ in first} == {"rollups", "decisions"}


def test_two_processes_opening_a_fresh_database_at_once_apply_each_version_once(
    postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    """Both start while the migration lock is held, so both wait for it; each version is applied once, and
    both then write."""
    url = postgres_cluster.url(postgres_database)
    script = (
        "import sys\n"
        "from datetime import datetime, timedelta, UTC\n"
        "from sloplane.evaluator.model import Rollup\n"
        "from sloplane.evaluator.storage.rollups_postgres import PostgresRollups\n"
        "start = datetime(2026, 11, 26, 12, tzinfo=UTC)\n"
        "row = Rollup(sys.argv[2], None, start, start + timedelta(hours=1), 1.0, 10.0, 0.0, 0.0, 0.0, 99.0, 'v1',"
        " 'UTC', 'prometheus')\n"
        "with PostgresRollups(sys.argv[1]) as rollups:\n"
        "    rollups.write([row], start)\n"
    )
    assert postgres_cluster.execute("SELECT to_regclass('schema_migrations') IS NULL", postgres_database) == [(True,)]
    with psycopg.connect(url, autocommit=True) as holder:
        with holder.transaction():
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            replicas = [
                subprocess.Popen(
                    [sys.executable, "-c", script, url, f"slo-{number}"], cwd=ROOT, stderr=subprocess.PIPE, text=True
                )
                for number in range(2)
            ]
            wait_until(lambda: advisory_lock_waiters(holder) == 2, within=20.0)
        outcomes = [(replica.wait(timeout=30), replica.stderr.read() if replica.stderr else "") for replica in replicas]
    assert outcomes == [(0, ""), (0, "")]
    versions = [(store, version) for store, version, *_ in _migrations(postgres_cluster, postgres_database)]
    assert versions == [("rollups", version) for version in range(1, LATEST + 1)]
    with PostgresRollups(url) as rollups:
        assert [rollup.slo for rollup in _everything(rollups)] == ["slo-0", "slo-1"]


def test_a_newer_rollups_schema_is_refused(
    postgres_url: str, postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    PostgresRollups(postgres_url).close()
    postgres_cluster.execute(
        "INSERT INTO schema_migrations (store, version, name) VALUES ('rollups', 99, 'from the future')",
        postgres_database,
    )
    with pytest.raises(RollupError, match=r"^the rollups at .+: the rollups schema is at version 99; this sloplane"):
        open_rollups(postgres_url)
    with PostgresDecisionLog(postgres_url) as log:
        assert log.count() == 0, "the decision log's schema is another store's, and still opens"


def test_open_rollups_tells_a_url_from_a_path(postgres_url: str, tmp_path: Path) -> None:
    with open_rollups(postgres_url) as rollups:
        assert isinstance(rollups, PostgresRollups)
        assert rollups.where == postgres_url
    with open_rollups(tmp_path / "rollups.db") as rollups:
        assert isinstance(rollups, SqliteRollups)
    with pytest.raises(RollupError, match="is a file path, not a PostgreSQL URL"):
        open_rollups(tmp_path / "rollups.db", password_file=tmp_path / "password")


# --- PostgreSQL: roles and credentials ----------------------------------------------------------------------


def test_the_writer_role_can_write_and_read_rollups_and_not_delete_them(
    private_postgres_cluster: PostgresCluster,
) -> None:
    """Migrated first (on a cluster with no writer role yet), the rollups create the role and grant it what the
    job does: an evaluator logged in with only that role writes, rewrites and reads, and cannot delete or
    truncate rows nor change the objective, policy version or time zone an hour was judged by."""
    cluster = private_postgres_cluster
    database = cluster.create_database()
    assert cluster.execute(f"SELECT count(*) FROM pg_roles WHERE rolname = '{WRITER_ROLE}'") == [(0,)]
    PostgresRollups(cluster.url(database)).close()
    assert cluster.execute(f"SELECT count(*) FROM pg_roles WHERE rolname = '{WRITER_ROLE}'") == [(1,)]
    user = f"evaluator_{uuid.uuid4().hex[:8]}"
    cluster.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{SECRET}'; GRANT {WRITER_ROLE} TO {user}")
    url = cluster.tcp_url(database, user, quote(SECRET, safe=""))
    with PostgresRollups(url) as rollups:
        assert SECRET not in rollups.where and user in rollups.where
        rollups.write([_rollup(), _rollup(stage="canary")], ROLLED_AT)
        rollups.write([_rollup(bad_events=1.0, objective=50.0)], ROLLED_AT + HOUR)
        assert _everything(rollups) == [_rollup(bad_events=1.0), _rollup(stage="canary")]
        assert rollups.latest() == {("checkout", None): T0 + HOUR, ("checkout", "canary"): T0 + HOUR}
    as_evaluator = _postgres_query(url)
    for statement in (
        "DELETE FROM slo_rollups",
        "TRUNCATE slo_rollups",
        "UPDATE slo_rollups SET objective = 0",
        "UPDATE slo_rollups SET policy_version = 'rewritten', time_zone = 'UTC'",
        "DROP TABLE slo_rollups",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"(permission denied|must be owner)"):
            as_evaluator(statement)
    assert as_evaluator("UPDATE slo_rollups SET bad_events = 2 WHERE stage = 'canary'") == []
    assert _postgres_query(cluster.url(database))("SELECT count(*), min(objective) FROM slo_rollups") == [(2, 99.9)]


def test_a_database_that_cannot_be_reached_is_named_without_the_password() -> None:
    url = f"postgresql://someone:{quote(SECRET, safe='')}@127.0.0.1:1/rollups"
    with pytest.raises(RollupError, match=r"^cannot open the rollups at postgresql://someone@127\.0\.0\.1") as failed:
        open_rollups(url)
    assert_secret_free(SECRET, failed.value)
    assert "\n" not in str(failed.value)


def test_a_wrong_password_from_a_file_is_refused_without_being_shown(
    postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    PostgresRollups(postgres_cluster.url(postgres_database)).close()
    user = f"evaluator_{uuid.uuid4().hex[:8]}"
    postgres_cluster.execute(f"CREATE ROLE {user} LOGIN PASSWORD 'the-right-one'; GRANT {WRITER_ROLE} TO {user}")
    password_file = tmp_path / "password"
    password_file.write_text(f"{SECRET}\n")
    url = postgres_cluster.tcp_url(postgres_database, user, None)
    with pytest.raises(RollupError, match="password authentication failed") as refused:
        open_rollups(url, password_file=password_file)
    assert_secret_free(SECRET, refused.value)
    with pytest.raises(RollupError, match="has a password and a password file was given too") as both:
        open_rollups(
            postgres_cluster.tcp_url(postgres_database, user, quote(SECRET, safe="")), password_file=password_file
        )
    assert_secret_free(SECRET, both.value)


# --- PostgreSQL: the server goes away and comes back ------------------------------------------------------


def test_a_restart_between_writes_is_survived_and_a_stopped_server_said_fast(
    private_postgres_cluster: PostgresCluster,
) -> None:
    """Restarted between two writes: the dead pooled connections are dropped and the write goes through. Down:
    the write fails fast with the reason, in one line. Back: writes succeed again, and nothing was doubled."""
    cluster = private_postgres_cluster
    url = cluster.url(cluster.create_database())
    with PostgresRollups(url, pool_size=4, timeout=1.0) as rollups:
        rollups.write([_rollup()], ROLLED_AT)
        with ThreadPoolExecutor(max_workers=4) as pool:  # several pooled connections, all of which the restart kills
            list(pool.map(lambda _: rollups.latest(), range(4)))
        cluster.stop()
        cluster.start()
        rollups.write([_rollup(bad_events=1.0), _rollup(start=T0 + HOUR)], ROLLED_AT + HOUR)
        assert [rollup.bad_events for rollup in _everything(rollups)] == [1.0, 12.0]

        cluster.stop()
        started = time.monotonic()
        with pytest.raises(RollupError, match=r"^cannot write rollups to postgresql://postgres@") as down:
            rollups.write([_rollup(start=T0 + 2 * HOUR)], ROLLED_AT)
        assert time.monotonic() - started < 5, "a stopped database is said, not waited for"
        assert "\n" not in str(down.value)
        cluster.start()
        wait_until(lambda: _answers(rollups), within=20.0)
        rollups.write([_rollup(start=T0 + 2 * HOUR)], ROLLED_AT)
        assert rollups.latest() == {("checkout", None): T0 + 3 * HOUR}
        assert len(_everything(rollups)) == 3


def _answers(rollups: PostgresRollups) -> bool:
    try:
        rollups.latest()
    except RollupError:
        return False
    return True
