"""The decision log's behaviour, once for each store: SQLite (a file) and PostgreSQL (a throw-away cluster).

Every test here runs against both through the `store` fixture, so the two logs cannot drift apart: same
records back, same filters and order, same releases, same refusals. The last test writes the same
decisions into both and compares every answer.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from sloplane.evaluator.model import Decision, Outcome
from sloplane.evaluator.storage import chain
from sloplane.evaluator.storage.decisions import DecisionLogError, SqliteDecisionLog
from sloplane.evaluator.storage.open import open_decision_log
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from tests.evaluator_data import T0, make_decision

pytest_plugins = ("tests.postgres",)

Log = SqliteDecisionLog | PostgresDecisionLog


@dataclass
class Store:
    """A decision log and a way to run a statement on its database by hand, as its owner would."""

    kind: str
    log: Log
    by_hand: Callable[[str], None]

    def refusal(self, statement: str) -> str:
        """The database's message refusing `statement` (empty when it was carried out)."""
        try:
            self.by_hand(statement)
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
        path = tmp_path / "decisions.db"
        with SqliteDecisionLog(path) as sqlite_log:
            yield Store("sqlite", sqlite_log, _sqlite_by_hand(path))
        return
    url = request.getfixturevalue("postgres_url")
    with PostgresDecisionLog(url) as postgres_log:
        yield Store("postgres", postgres_log, _postgres_by_hand(url))


def _ids(records: list[dict[str, object]]) -> list[object]:
    return [record["id"] for record in records]


def _live(number: int, *, service: str = "checkout", **changes: object) -> Decision:
    """A live gate of `service` (the record's own `service`, as a service-wide gate writes it)."""
    return replace(make_decision(number, **changes), service=service)


def _replay(number: int, at: datetime, **changes: object) -> Decision:
    """A back-testing decision: the request names the instant it is about."""
    decision = _live(number, **changes)
    return replace(decision, request=replace(decision.request, at=at))


def test_a_decision_comes_back_as_its_to_dict(store: Store) -> None:
    decision = make_decision(1)
    store.log.append(decision)
    assert store.log.query() == [decision.to_dict()]
    assert store.log.count() == 1


def test_newest_first_by_decision_time_not_insertion(store: Store) -> None:
    for number in (2, 5, 1, 4, 3):
        store.log.append(make_decision(number))
    assert _ids(store.log.query()) == ["d-000005", "d-000004", "d-000003", "d-000002", "d-000001"]
    assert _ids(store.log.query(limit=2)) == ["d-000005", "d-000004"]


def test_equal_decision_times_come_newest_recorded_first(store: Store) -> None:
    for number in (3, 1, 2):
        store.log.append(make_decision(number, decided_at=T0))
    assert _ids(store.log.query()) == ["d-000002", "d-000001", "d-000003"]


def test_filters_combine(store: Store) -> None:
    log = store.log
    log.append(make_decision(1, slo="a", stage="canary", outcome=Outcome.PASS, revision="v1"))
    log.append(make_decision(2, slo="a", stage="production", outcome=Outcome.FAIL, revision="v1"))
    log.append(make_decision(3, slo="b", stage="canary", outcome=Outcome.FAIL, revision="v2"))
    log.append(_live(4, slo="b", stage=None, outcome=Outcome.ERROR, revision=None, service="payments"))
    assert _ids(log.query(slo="a")) == ["d-000002", "d-000001"]
    assert _ids(log.query(stage="canary")) == ["d-000003", "d-000001"]
    assert _ids(log.query(outcome="fail")) == ["d-000003", "d-000002"]
    assert _ids(log.query(outcome=Outcome.ERROR)) == ["d-000004"]
    assert _ids(log.query(revision="v1")) == ["d-000002", "d-000001"]
    assert _ids(log.query(service="payments")) == ["d-000004"]
    assert _ids(log.query(slo="b", outcome="fail", revision="v2", stage="canary")) == ["d-000003"]
    assert log.query(slo="c") == []


def test_since_and_until_bound_the_decision_time_inclusively_in_any_offset(store: Store) -> None:
    for number in range(1, 6):
        store.log.append(make_decision(number))
    berlin = timezone(timedelta(hours=1))
    since = (T0 + timedelta(minutes=2)).astimezone(berlin)
    until = (T0 + timedelta(minutes=4)).astimezone(berlin)
    assert _ids(store.log.query(since=since, until=until)) == ["d-000004", "d-000003", "d-000002"]
    assert _ids(store.log.query(until=T0 + timedelta(minutes=1))) == ["d-000001"]
    naive_utc = (T0 + timedelta(minutes=5)).replace(tzinfo=None)
    assert _ids(store.log.query(since=naive_utc)) == ["d-000005"]


def test_decision_times_in_other_offsets_sort_by_instant(store: Store) -> None:
    """13:30+02:00 (11:30Z) sorts before 12:00Z."""
    store.log.append(make_decision(1, decided_at=T0))
    store.log.append(make_decision(2, decided_at=T0.replace(hour=13, minute=30, tzinfo=timezone(timedelta(hours=2)))))
    assert _ids(store.log.query()) == ["d-000001", "d-000002"]


def test_replays_about_the_edges_of_time_are_kept(store: Store) -> None:
    """A replayed `at` within hours of year 1 or 9999 is clamped to the edge, in both stores alike."""
    store.log.append(_replay(1, datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=5)))))
    store.log.append(_replay(2, datetime(9999, 12, 31, 22, tzinfo=timezone(timedelta(hours=-5)))))
    assert sorted(_ids(store.log.query())) == ["d-000001", "d-000002"]
    assert store.log.releases("checkout", T0 - timedelta(days=1)) == []


def test_limit_below_one_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        store.log.query(limit=0)


def test_a_decision_id_is_recorded_once(store: Store) -> None:
    store.log.append(make_decision(1))
    with pytest.raises(DecisionLogError, match="d-000001 is already in the decision log"):
        store.log.append(make_decision(1, outcome=Outcome.FAIL))
    assert store.log.query()[0]["decision"] == "pass"
    assert store.log.problem() is None
    store.log.append(make_decision(2))
    assert [seq for seq, _ in store.log.iter_with_seq()] == [1, 2]


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE decisions SET outcome = 'pass'", "cannot be changed"),
        ("UPDATE decisions SET record = '{}' WHERE id = 'd-000001'", "cannot be changed"),
        ("DELETE FROM decisions", "cannot be deleted"),
        ("DELETE FROM decisions WHERE id = 'd-000001'", "cannot be deleted"),
    ],
)
def test_history_cannot_be_rewritten_even_by_hand(store: Store, statement: str, message: str) -> None:
    store.log.append(make_decision(1, outcome=Outcome.FAIL))
    assert f"append-only: recorded decisions {message}" in store.refusal(statement)
    assert store.log.count() == 1
    assert store.log.query()[0]["decision"] == "fail"


def test_thousand_appends_from_thirty_two_threads(store: Store) -> None:
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda number: store.log.append(make_decision(number)), range(1000)))
    assert store.log.count() == 1000
    assert store.log.last_seq() == 1000
    assert len({record["id"] for record in store.log.iter_all()}) == 1000


def test_reads_from_many_threads_see_committed_appends(store: Store) -> None:
    store.log.append(make_decision(1))
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: store.log.count(), range(32)))
    assert counts == [1] * 32


def test_iter_all_walks_insertion_order_and_resumes(store: Store) -> None:
    order = [7, 3, 9, 1, 5]
    for number in order:
        store.log.append(make_decision(number))
    assert _ids(list(store.log.iter_all(batch_size=2))) == [f"d-{n:06d}" for n in order]
    assert _ids(list(store.log.iter_all(after_id="d-000009", batch_size=2))) == ["d-000001", "d-000005"]
    assert list(store.log.iter_all(after_id="d-000005")) == []


def test_iter_all_after_an_unknown_id_is_an_error_not_a_restart(store: Store) -> None:
    store.log.append(make_decision(1))
    with pytest.raises(DecisionLogError, match="d-999999 is not in the decision log"):
        list(store.log.iter_all(after_id="d-999999"))


def test_iter_with_seq_numbers_from_one_and_resumes_after_a_seq(store: Store) -> None:
    assert store.log.last_seq() == 0
    assert list(store.log.iter_with_seq()) == []
    for number in (4, 2, 6):
        store.log.append(make_decision(number))
    walked = [(seq, record["id"]) for seq, record in store.log.iter_with_seq(batch_size=1)]
    assert walked == [(1, "d-000004"), (2, "d-000002"), (3, "d-000006")]
    assert [seq for seq, _ in store.log.iter_with_seq(after_seq=2)] == [3]
    assert store.log.last_seq() == 3
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        list(store.log.iter_with_seq(batch_size=0))


def test_chain_rows_walk_a_range_in_batches_and_verify_holds(store: Store) -> None:
    for number in range(1, 6):
        store.log.append(make_decision(number))
    rows = list(store.log.chain_rows(batch_size=2))
    assert [row["seq"] for row in rows] == [1, 2, 3, 4, 5]
    assert [row["seq"] for row in store.log.chain_rows(1, 3, batch_size=1)] == [2, 3]
    assert rows[0]["prev_hash"] == chain.GENESIS
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(rows))
    assert rows[0]["decided_at"] == "2026-11-26T12:01:00.000000+00:00", "times as the text they were hashed as"
    report = store.log.verify()
    assert (report.intact, report.records, report.head) == (True, 5, rows[-1]["hash"])
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        list(store.log.chain_rows(batch_size=0))


def test_releases_are_live_gates_of_the_service_grouped_by_revision_else_pipeline(store: Store) -> None:
    log = store.log
    log.append(_live(1, revision="r1"))
    log.append(_live(2, revision="r2", outcome=Outcome.FAIL))
    log.append(_live(3, revision="r1", outcome=Outcome.FAIL))
    log.append(_live(4, revision=None))  # no revision: the pipeline run names the release
    log.append(_live(5, revision="r9", service="payments"))
    log.append(_replay(6, T0 - timedelta(days=2), revision="r7"))
    since = T0 - timedelta(days=1)
    spans = log.releases("checkout", since)
    assert [(s.release, s.decisions, s.outcome, s.pipeline) for s in spans] == [
        ("r1", 2, "fail", "build-7"),
        ("r2", 1, "fail", "build-7"),
        ("build-7", 1, "pass", "build-7"),
    ]
    assert (spans[0].first, spans[0].last) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))
    assert spans[0].first.tzinfo == UTC
    assert [s.release for s in log.releases("checkout", T0 + timedelta(minutes=2))] == ["r2", "r1", "build-7"]
    assert log.releases("nobody", since) == []


def test_a_healthy_log_has_no_problem_and_is_writable(store: Store) -> None:
    assert store.log.problem() is None
    store.log.check_writable()
    store.log.append(make_decision(1))
    assert store.log.problem() is None
    assert store.log.count() == 1, "the write probe writes no decision"


def test_a_closed_log_says_so(store: Store) -> None:
    store.log.close()
    with pytest.raises(DecisionLogError, match="closed"):
        store.log.count()


def test_open_decision_log_tells_a_url_from_a_path(store: Store, tmp_path: Path) -> None:
    target = str(tmp_path / "other.db") if store.kind == "sqlite" else _url_of(store)
    with open_decision_log(target) as opened:
        assert type(opened) is type(store.log)
        opened.append(make_decision(1))
    assert store.log.count() == (1 if store.kind == "postgres" else 0)


def _url_of(store: Store) -> str:
    assert isinstance(store.log, PostgresDecisionLog)
    return store.log.where


def test_both_stores_answer_alike(tmp_path: Path, postgres_url: str) -> None:
    """The same decisions, written to both, give the same records, releases and order under every filter, and
    the same chain: row for row the same columns and hashes (an export of either reads the same)."""
    decisions = [
        _live(1, revision="r1"),
        _live(2, revision="r1", stage="production", outcome=Outcome.FAIL),
        _live(3, revision=None, decided_at=T0.replace(tzinfo=timezone(timedelta(hours=-3)))),
        _live(4, revision="r2", slo="latency", service="payments"),
        _replay(5, T0 - timedelta(days=3), revision="r0"),
        _live(6, revision="r2", decided_at=T0 + timedelta(minutes=4), outcome=Outcome.INCONCLUSIVE),
        _live(7, revision="r3", decided_at=T0 + timedelta(minutes=4)),
    ]
    queries: list[dict[str, object]] = [
        {},
        {"limit": 3},
        {"slo": "latency"},
        {"stage": "production"},
        {"outcome": "fail"},
        {"revision": "r2"},
        {"service": "checkout"},
        {"since": T0 + timedelta(minutes=2), "until": T0 + timedelta(minutes=4)},
    ]
    with SqliteDecisionLog(tmp_path / "d.db") as sqlite_log, PostgresDecisionLog(postgres_url) as postgres_log:
        for decision in decisions:
            sqlite_log.append(decision)
            postgres_log.append(decision)
        for filters in queries:
            assert postgres_log.query(**filters) == sqlite_log.query(**filters), filters
        for service in ("checkout", "payments"):
            since = T0 - timedelta(days=7)
            assert postgres_log.releases(service, since) == sqlite_log.releases(service, since)
        assert list(postgres_log.iter_with_seq()) == list(sqlite_log.iter_with_seq())
        assert (postgres_log.count(), postgres_log.last_seq()) == (sqlite_log.count(), sqlite_log.last_seq())
        assert list(postgres_log.chain_rows()) == list(sqlite_log.chain_rows()), "one chain: the same hashes"
        report = postgres_log.verify()
        assert report == sqlite_log.verify()
        assert report.broken is not None, "decision 3 is hours after decision 4, which follows it: both say so"
        assert (report.broken.seq, report.broken.decision_id) == (4, "d-000004")


def test_concurrent_appends_share_commits_and_a_repeated_id_is_refused_alone(store: Store) -> None:
    """Group commit: 400 appends from 32 threads, ten of them repeating an id, in far fewer transactions;
    each repeat is refused alone and the chain links past it, contiguous, verifiable."""
    numbers = [*range(400), *range(0, 400, 40)]

    def append(number: int) -> str:
        # one instant for all: 32 threads append in no set order, and decisions a minute apart (`make_decision`'s
        # default) would read as backdated whenever one thread fell a few appends behind (a clean run saw it once)
        try:
            store.log.append(make_decision(number, decided_at=T0))
        except DecisionLogError as error:
            return str(error)
        return "ok"

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(append, numbers))
    refusals = [answer for answer in answers if answer != "ok"]
    assert len(refusals) == 10
    assert all("is already in the decision log" in refusal for refusal in refusals)
    assert [seq for seq, _ in store.log.iter_with_seq()] == list(range(1, 401))
    assert store.log.verify().intact
    assert store.log._appends.batches < len(numbers)
    assert store.log.problem() is None
