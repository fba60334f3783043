"""The notification outbox on PostgreSQL against the SQLite one: one behaviour suite on both, then what only
replicas need — writers on two replicas at once, two dispatchers at once, a dispatcher killed with SIGKILL
while it held deliveries, a dedup check raced from two replicas.

Why both stores in one suite: the notifier must not care which it has, so every behaviour it relies on
(counters, repeats, held incidents, war rooms, the delivery states, pruning, transactions, surviving a
restart) is asserted once, with the same expected values, on each; `test_both_stores_answer_alike` replays
one script on both and compares every answer. Deliveries are counted where a receiver would count them:
at a local HTTP server on 127.0.0.1 (`tests.fake_http`) playing PagerDuty.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from sloplane.evaluator.model import Decision
from sloplane.evaluator.notify import IncidentClass, Notice, Notifier, WarRoom, load_receivers
from sloplane.evaluator.notify.classify import Incident
from sloplane.evaluator.notify.outbox import Outbox, OutboxError
from sloplane.evaluator.notify.outbox_postgres import PostgresOutbox
from sloplane.evaluator.notify.outbox_postgres_schema import DELIVERIES
from tests.conftest import ROOT
from tests.fake_http import EventReceiver, Reply, serve
from tests.test_evaluator_notify import decision, free_port, until

if TYPE_CHECKING:
    from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)

PD = "/v2/enqueue"
RECEIVERS = """\
receivers:
  oncall:
    pagerduty: {{routingKey: oncall-key, url: "{base}/v2/enqueue"}}
defaults: {{deployment: oncall, background: oncall}}
grouping: {{wait: {wait}, window: 15m, minServices: 2}}
retry: {{initial: 50ms, max: 200ms, maxAttempts: 0}}
"""
"""Every SLO routed to one PagerDuty receiver: the notifier tests here need no declarations (an empty fleet)."""

AnyOutbox = Outbox | PostgresOutbox


@dataclass
class Store:
    """One store under test: `open()` is another replica (or a restart) on the same file or database."""

    kind: str
    target: str | Path
    """What a `Notifier` is given: the SQLite file, or the PostgreSQL URL."""
    opened: list[AnyOutbox] = field(default_factory=list)

    def open(self, **options: Any) -> AnyOutbox:
        outbox: AnyOutbox = (
            Outbox(self.target) if self.kind == "sqlite" else PostgresOutbox(str(self.target), **options)
        )
        self.opened.append(outbox)
        return outbox


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The SQLite outbox file, or a fresh PostgreSQL database (a database only for that parameter)."""
    target = tmp_path / "outbox.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    made = Store(request.param, target)
    yield made
    for outbox in made.opened:
        outbox.close()


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[Store]:
    """PostgreSQL only: claims, leases and dispatchers are what SQLite has no need of."""
    made = Store("postgres", postgres_url)
    yield made
    for outbox in made.opened:
        outbox.close()


def notice(key: str) -> Notice:
    return Notice.from_json(
        {
            "kind": "background",
            "dedupKey": key,
            "summary": f"{key} is failing",
            "severity": "error",
            "timestamp": "2026-11-26T12:00:00+00:00",
            "component": "c",
            "group": "g",
            "customDetails": {"key": key},
            "incidents": [],
            "warRoom": None,
            "links": [],
        }
    )


def failing(service: str, revision: str = "r1", number: int = 1) -> Incident:
    """A deployment incident of `service` on `revision` (grouped as `revision/<revision>`)."""
    return Incident(
        kind=IncidentClass.DEPLOYMENT,
        service=service,
        slo=f"{service}-availability",
        stage="production",
        revision=revision,
        pipeline="build-7",
        rollout=None,
        decision_id=f"d-{number:06d}",
        outcome="fail",
        decided_at=f"2026-11-26T12:{number:02d}:00+00:00",
        burn_rates={"1h": 14.4},
        budget_remaining=0.42,
        reasons=[{"code": "alert-active", "message": "page 1h burn-rate alert active", "values": {}}],
    )


def summary(outbox: AnyOutbox) -> list[tuple[Any, ...]]:
    """Every delivery as (id, dedup key, state, attempts, next_at, last error), by state then id."""
    return [
        (d.id, d.notice.dedup_key, d.state, d.attempts, d.next_at, d.last_error)
        for state in ("pending", "delivered", "dead")
        for d in outbox.deliveries(state)
    ]


def at_once(workers: list[Callable[[], Any]]) -> list[Any]:
    """Run every worker on its own thread, released together; their results, in order (a failure re-raised)."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(index: int, work: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = work()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if errors:
        raise errors[0]
    return results


# -- the behaviour suite, on both stores ----------------------------------------------------------


def test_counters_add_up(store: Store) -> None:
    outbox = store.open()
    assert outbox.counters() == {}
    outbox.bump("attempts")
    outbox.bump("attempts", by=4)
    outbox.bump("suppressed")
    assert outbox.counters() == {"attempts": 5, "suppressed": 1}


def test_a_dedup_key_is_recent_from_when_it_was_last_sent(store: Store) -> None:
    outbox = store.open()
    assert not outbox.recently_sent("k", since=0.0)
    outbox.mark_sent("k", 100.0)
    assert outbox.recently_sent("k", since=100.0)
    assert not outbox.recently_sent("k", since=100.5)
    assert not outbox.recently_sent("other", since=0.0)
    outbox.mark_sent("k", 200.0)  # a new notification for the key moves its time
    assert outbox.recently_sent("k", since=150.0)


def test_held_incidents_wait_then_are_released(store: Store) -> None:
    outbox = store.open()
    assert (outbox.held_count(), outbox.oldest_held(), outbox.due(1e12)) == (0, None, [])
    outbox.hold(failing("cart", number=1), "oncall", 10.0)
    outbox.hold(failing("search", number=2), "chat", 20.0)
    outbox.hold(failing("payments", revision="r2", number=3), "oncall", 30.0)
    assert (outbox.held_count(), outbox.oldest_held()) == (3, 10.0)

    due = outbox.due(received_by=20.0)
    assert [(h.incident, h.receiver, h.received_at, h.state) for h in due] == [
        (failing("cart", number=1), "oncall", 10.0, "held"),
        (failing("search", number=2), "chat", 20.0, "held"),
    ]
    assert [h.incident.service for h in outbox.in_group("revision/r1", since=15.0)] == ["search"]

    outbox.release([due[0].id])
    outbox.release([])
    assert [h.incident.service for h in outbox.due(1e12)] == ["search", "payments"]
    assert [(h.incident.service, h.state) for h in outbox.in_group("revision/r1", since=0.0)] == [
        ("cart", "released"),
        ("search", "held"),
    ]
    assert (outbox.held_count(), outbox.oldest_held()) == (2, 20.0)


def test_war_rooms_open_gain_members_and_expire(store: Store) -> None:
    outbox = store.open()
    cart, search, checkout = failing("cart"), failing("search"), failing("checkout")
    assert outbox.war_room("revision/r1", since=0.0) is None
    outbox.save_war_room("revision/r1", [(cart, "oncall"), (search, "oncall")], opened_at=100.0)
    assert outbox.war_room("revision/r1", since=100.0) == [(cart, "oncall"), (search, "oncall")]
    assert outbox.war_room("revision/r1", since=100.1) is None  # opened before the window

    outbox.save_war_room("revision/r1", [(cart, "oncall"), (search, "oncall"), (checkout, "chat")], opened_at=None)
    assert outbox.war_room("revision/r1", since=100.0) == [(cart, "oncall"), (search, "oncall"), (checkout, "chat")]
    outbox.save_war_room("revision/r1", [(checkout, "chat")], opened_at=500.0)  # opened again, later
    assert outbox.war_room("revision/r1", since=400.0) == [(checkout, "chat")]


def test_deliveries_go_from_pending_to_delivered_retried_or_dead(store: Store) -> None:
    outbox = store.open()
    assert (outbox.next_delivery(), outbox.due_deliveries(1e12)) == (None, [])
    for key, now in (("a", 10.0), ("b", 20.0), ("c", 30.0)):
        outbox.enqueue("oncall", "pagerduty", notice(key), now)
    assert outbox.next_delivery() == 10.0

    due = outbox.due_deliveries(now=20.0)
    assert [(d.receiver, d.channel, d.notice, d.state, d.attempts, d.next_at) for d in due] == [
        ("oncall", "pagerduty", notice("a"), "pending", 0, 10.0),
        ("oncall", "pagerduty", notice("b"), "pending", 0, 20.0),
    ]
    a, b = due
    outbox.retry(a.id, next_at=50.0, error="HTTP 503: busy")
    outbox.delivered(b.id, now=21.0)
    assert [d.notice.dedup_key for d in outbox.due_deliveries(now=40.0)] == ["c"]
    assert [d.notice.dedup_key for d in outbox.due_deliveries(now=50.0)] == ["a", "c"]
    c = outbox.deliveries("pending")[1]
    outbox.dead(c.id, "HTTP 400: invalid routing key")

    assert summary(outbox) == [
        (a.id, "a", "pending", 1, 50.0, "HTTP 503: busy"),
        (b.id, "b", "delivered", 1, 20.0, None),
        (c.id, "c", "dead", 1, 30.0, "HTTP 400: invalid routing key"),
    ]
    assert outbox.counts() == {"pending": 1, "delivered": 1, "dead": 1, "held": 0}
    assert outbox.next_delivery() == 50.0
    assert outbox.deliveries("dead")[0].to_dict() == {
        "id": c.id,
        "receiver": "oncall",
        "channel": "pagerduty",
        "dedupKey": "c",
        "state": "dead",
        "attempts": 1,
        "nextAt": 30.0,
        "lastError": "HTTP 400: invalid routing key",
        "notice": notice("c").to_json(),
    }


def test_pruning_keeps_what_is_left_to_do_or_to_look_at(store: Store) -> None:
    outbox = store.open()
    for _ in range(3):
        outbox.enqueue("oncall", "pagerduty", notice("k"), now=100.0)
    first, second, _ = (delivery.id for delivery in outbox.deliveries("pending"))
    outbox.delivered(first, now=100.0)
    outbox.dead(second, "HTTP 400: no")
    outbox.mark_sent("k", 100.0)
    outbox.hold(failing("cart"), "oncall", 100.0)
    outbox.release([held.id for held in outbox.due(1e12)])
    outbox.hold(failing("search"), "oncall", 100.0)
    outbox.save_war_room("revision/r1", [(failing("cart"), "oncall")], opened_at=100.0)
    outbox.prune(delivered_before=200.0, grouping_before=200.0)
    assert outbox.counts() == {"pending": 1, "delivered": 0, "dead": 1, "held": 1}
    assert not outbox.recently_sent("k", since=0.0)
    assert outbox.war_room("revision/r1", since=0.0) is None
    assert [held.incident.service for held in outbox.in_group("revision/r1", since=0.0)] == ["search"]


def test_a_transaction_lands_whole_or_not_at_all(store: Store) -> None:
    outbox = store.open()

    def fail_half_way() -> None:
        with outbox.transaction():
            outbox.mark_sent("k", 100.0)
            outbox.enqueue("oncall", "pagerduty", notice("k"), 100.0)
            outbox.bump("suppressed")
            raise RuntimeError("failed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        fail_half_way()
    assert (outbox.recently_sent("k", 0.0), outbox.counts()["pending"], outbox.counters()) == (False, 0, {})

    with outbox.transaction():
        outbox.mark_sent("k", 100.0)
        with outbox.transaction():  # nested: the outer one commits
            outbox.enqueue("oncall", "pagerduty", notice("k"), 100.0)
        assert outbox.recently_sent("k", 0.0)  # the transaction reads its own writes
    assert (outbox.recently_sent("k", 0.0), outbox.counts()["pending"]) == (True, 1)


def test_a_reopened_outbox_carries_on_where_the_last_one_stopped(store: Store) -> None:
    first = store.open()
    first.enqueue("oncall", "pagerduty", notice("a"), 10.0)
    first.hold(failing("cart"), "oncall", 10.0)
    first.mark_sent("a", 10.0)
    first.bump("warRooms")
    first.save_war_room("revision/r1", [(failing("cart"), "oncall")], opened_at=10.0)
    claimed = first.due_deliveries(10.0)
    first.close()

    second = store.open()
    assert [d.id for d in second.due_deliveries(10.0)] == [d.id for d in claimed]  # closing handed them back
    assert (second.held_count(), second.recently_sent("a", 10.0), second.counters()) == (1, True, {"warRooms": 1})
    assert second.war_room("revision/r1", since=0.0) == [(failing("cart"), "oncall")]


def test_replicas_writing_at_once_lose_nothing(store: Store) -> None:
    replicas = [store.open(), store.open()]

    def writer(outbox: AnyOutbox, name: str) -> None:
        for number in range(25):
            outbox.enqueue("oncall", "pagerduty", notice(f"{name}-{number}"), 1.0)
            outbox.bump("written")

    at_once([lambda o=outbox, n=f"w{i}": writer(o, n) for i, outbox in enumerate(replicas * 3)])
    pending = replicas[0].deliveries("pending")
    assert len({d.id for d in pending}) == len(pending) == 150
    assert {d.notice.dedup_key for d in pending} == {f"w{i}-{n}" for i in range(6) for n in range(25)}
    assert replicas[1].counters() == {"written": 150}


def test_a_dedup_key_raced_from_two_replicas_notifies_once(store: Store) -> None:
    replicas = [store.open(), store.open()]

    def decide(outbox: AnyOutbox, key: str) -> bool:
        """What `Notifier._record` does with a failing decision: check and mark the key in one transaction."""
        with outbox.transaction():
            if outbox.recently_sent(key, since=0.0):
                outbox.bump("suppressed")
                return False
            outbox.mark_sent(key, 100.0)
            outbox.enqueue("oncall", "pagerduty", notice(key), 100.0)
            return True

    for key in ("k1", "k2", "k3"):
        won = at_once([lambda o=outbox, k=key: decide(o, k) for outbox in replicas * 4])
        assert won.count(True) == 1, key
    assert Counter(d.notice.dedup_key for d in replicas[0].deliveries("pending")) == {"k1": 1, "k2": 1, "k3": 1}
    assert replicas[1].counters() == {"suppressed": 21}


def test_both_stores_answer_alike(tmp_path: Path, postgres_url: str) -> None:
    """One script of every call the notifier makes, on each store: every answer equal."""

    def script(outbox: AnyOutbox) -> list[Any]:
        answers: list[Any] = []
        with outbox.transaction():
            answers.append(outbox.recently_sent("sloplane/cart/r1", 50.0))
            outbox.mark_sent("sloplane/cart/r1", 100.0)
            outbox.hold(failing("cart"), "oncall", 100.0)
        outbox.hold(failing("search", number=2), "oncall", 101.5)
        outbox.bump("warRooms")
        answers += [outbox.recently_sent("sloplane/cart/r1", 50.0), outbox.oldest_held(), outbox.held_count()]
        held = outbox.due(101.5)
        answers += [(h.id, h.incident, h.receiver, h.received_at, h.state) for h in held]
        outbox.save_war_room("revision/r1", [(h.incident, h.receiver) for h in held], 102.0)
        outbox.release([h.id for h in held])
        answers += [outbox.war_room("revision/r1", 0.0), outbox.in_group("revision/r1", 0.0)]
        for key in ("x", "y", "z"):
            outbox.enqueue("oncall", "pagerduty", notice(key), 103.0)
        due = outbox.due_deliveries(103.0)
        outbox.delivered(due[0].id, 104.0)
        outbox.retry(due[1].id, 110.25, "timeout")
        outbox.dead(due[2].id, "HTTP 400")
        answers += [due, summary(outbox), outbox.next_delivery(), outbox.counts(), outbox.counters()]
        outbox.prune(delivered_before=105.0, grouping_before=101.0)
        answers += [summary(outbox), outbox.counts(), outbox.in_group("revision/r1", 0.0)]
        return answers

    sqlite, postgres = Outbox(tmp_path / "outbox.db"), PostgresOutbox(postgres_url)
    try:
        assert script(sqlite) == script(postgres)
    finally:
        sqlite.close()
        postgres.close()


# -- the notifier on both stores --------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[EventReceiver, str]]:
    script = EventReceiver()
    with serve(script) as base:
        yield script, base


MakeNotifier = Callable[..., Notifier]


@pytest.fixture
def notifier(tmp_path: Path) -> Iterator[MakeNotifier]:
    """notifier(outbox, base, wait=...) -> a notifier (started unless start=False); all closed afterwards."""
    made: list[Notifier] = []

    def make(
        outbox: str | Path | AnyOutbox, base: str, *, wait: str = "200ms", start: bool = True, **kw: Any
    ) -> Notifier:
        path = tmp_path / f"receivers-{len(made)}.yaml"
        path.write_text(RECEIVERS.format(base=base, wait=wait), encoding="utf-8")
        created = Notifier({}, load_receivers(path), outbox, **kw)
        made.append(created)
        if start:
            created.start()
        return created

    yield make
    for created in made:
        created.close()


def drained(sender: Notifier, delivered: int) -> bool:
    """Flushed, and `delivered` accepted (waited for too: the SQLite outbox's `counts()` reads twice, so a
    flush there can return between a release committing and its delivery; the PostgreSQL one reads once)."""
    return sender.flush(10, include_held=True) and until(lambda: sender.stats()["delivered"] >= delivered)


def background(number: int, service: str = "cart") -> Decision:
    """A failing decision outside any deployment: notified at once, not held for grouping."""
    return decision(number, service=service, revision=None, pipeline=None)


def test_the_notifier_pages_once_per_release_on_either_store(
    store: Store, receiver: tuple[EventReceiver, str], notifier: MakeNotifier
) -> None:
    script, base = receiver
    sender = notifier(store.target, base)
    for number in range(1, 5):
        sender.on_decision(decision(number, service="cart"))
    sender.on_decision(decision(5, service="cart", revision="def456"))
    assert drained(sender, delivered=2)
    assert [event["dedup_key"] for event in script.events(PD)] == ["sloplane/cart/abc123", "sloplane/cart/def456"]
    assert {key: sender.stats()[key] for key in ("delivered", "suppressed", "pending", "held")} == {
        "delivered": 2,
        "suppressed": 3,
        "pending": 0,
        "held": 0,
    }


def test_the_notifier_opens_a_war_room_on_either_store(
    store: Store, receiver: tuple[EventReceiver, str], notifier: MakeNotifier
) -> None:
    script, base = receiver
    rooms: list[WarRoom] = []
    sender = notifier(store.target, base, on_war_room=rooms.append)
    for number, service in enumerate(("cart", "search", "payments"), start=1):
        sender.on_decision(decision(number, service=service, revision="r42"))
    assert drained(sender, delivered=1)
    assert [event["dedup_key"] for event in script.events(PD)] == ["sloplane/war-room/revision/r42"]
    assert [(room.key, room.services) for room in rooms] == [("revision/r42", ("cart", "payments", "search"))]
    assert sender.stats()["warRooms"] == 1


def test_the_notifier_retries_then_delivers_on_either_store(
    store: Store, receiver: tuple[EventReceiver, str], notifier: MakeNotifier
) -> None:
    script, base = receiver
    script.replies[:] = [Reply(500), Reply(503), Reply(202)]
    sender = notifier(store.target, base)
    sender.on_decision(background(1))
    assert drained(sender, delivered=1)
    assert [event["dedup_key"] for event in script.events(PD)] == ["sloplane/cart/background"]
    stats = sender.stats()
    assert (stats["delivered"], stats["retries"], stats["attempts"]) == (1, 2, 3)


def test_a_restarted_notifier_resumes_held_and_pending_work_on_either_store(
    store: Store, notifier: MakeNotifier
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = notifier(store.target, base, wait="1h")
    first.on_decision(background(1))  # pending: the receiver is down
    first.on_decision(decision(2, service="search"))  # held for grouping
    assert until(lambda: first.stats()["retries"] >= 1)
    first.close()

    second = notifier(store.target, base)
    assert second.stats()["held"] == 1
    script = EventReceiver()
    with serve(script, port):
        assert drained(second, delivered=2)
    assert sorted(event["dedup_key"] for event in script.events(PD)) == [
        "sloplane/cart/background",
        "sloplane/search/abc123",
    ]


def test_on_decision_never_raises_on_either_store(store: Store, notifier: MakeNotifier) -> None:
    sender = notifier(store.target, "http://127.0.0.1:9", start=False)
    sender.outbox.close()  # the outbox is unusable: the gate's answer must still go out
    sender.on_decision(background(1))
    assert sender.errors == 1


def test_two_notifiers_on_one_database_page_once(postgres_store: Store, notifier: MakeNotifier) -> None:
    """Two replicas hook the same failing decision (a pipeline polling both): one page, the rest suppressed."""
    replicas = [notifier(postgres_store.target, "http://127.0.0.1:9", start=False) for _ in range(2)]
    at_once([lambda n=replica: n.on_decision(background(1)) for replica in replicas * 4])
    assert [(p["dedupKey"], p["attempts"]) for p in replicas[0].pending()] == [("sloplane/cart/background", 0)]
    assert replicas[1].stats()["suppressed"] == 7


# -- claims: what only PostgreSQL has ---------------------------------------------------------------


def claims_per_delivery(url: str) -> dict[int, int]:
    with psycopg.connect(url) as connection:
        return dict(connection.execute(f"SELECT id, claims FROM {DELIVERIES} ORDER BY id").fetchall())


def test_two_dispatchers_at_once_claim_each_delivery_once(postgres_store: Store) -> None:
    writer = postgres_store.open()
    for number in range(60):
        writer.enqueue("oncall", "pagerduty", notice(f"k{number}"), 1.0)
    dispatchers = [postgres_store.open(batch=5), postgres_store.open(batch=5)]

    def dispatch(outbox: AnyOutbox) -> list[int]:
        sent: list[int] = []
        while outbox.counts()["pending"]:
            for delivery in outbox.due_deliveries(2.0):
                sent.append(delivery.id)
                outbox.delivered(delivery.id, 2.0)
        return sent

    first, second = at_once([lambda o=outbox: dispatch(o) for outbox in dispatchers])
    assert sorted(first + second) == sorted(d.id for d in writer.deliveries("delivered"))
    assert len(first + second) == 60
    assert set(claims_per_delivery(str(postgres_store.target)).values()) == {1}


def test_a_claim_holds_until_handed_back_or_its_lease_ends(postgres_store: Store) -> None:
    holder, other = postgres_store.open(dispatcher="holder"), postgres_store.open(dispatcher="other")
    holder.enqueue("oncall", "pagerduty", notice("a"), 1.0)
    holder.enqueue("oncall", "pagerduty", notice("b"), 1.0)
    a, b = holder.due_deliveries(1.0)
    assert [(claim.delivery_id, claim.dispatcher) for claim in holder.claims()] == [(a.id, "holder"), (b.id, "holder")]
    assert (other.due_deliveries(1.0), other.next_delivery()) == ([], None)  # a live claim is not offered
    assert holder.counts()["pending"] == 2  # but is still pending: `flush` waits for it
    holder.close()
    assert [d.id for d in other.due_deliveries(1.0)] == [a.id, b.id]  # handed back: offered at once

    brief = postgres_store.open(dispatcher="brief", lease=0.2)
    other.release_claims()
    assert [d.id for d in brief.due_deliveries(1.0)] == [a.id, b.id]
    assert until(lambda: [d.id for d in other.due_deliveries(1.0)] == [a.id, b.id], timeout=5)
    # `brief` lost its claims to `other`: its failures defer to other's claim, its success is recorded.
    brief.retry(a.id, 99.0, "timeout")
    brief.dead(b.id, "HTTP 400")
    assert [(c.delivery_id, c.dispatcher) for c in other.claims()] == [(a.id, "other"), (b.id, "other")]
    assert summary(other) == [(a.id, "a", "pending", 0, 1.0, None), (b.id, "b", "pending", 0, 1.0, None)]
    brief.delivered(a.id, 2.0)
    assert [(c.delivery_id, c.dispatcher) for c in other.claims()] == [(b.id, "other")]
    assert [d.notice.dedup_key for d in other.deliveries("delivered")] == ["a"]
    assert claims_per_delivery(str(postgres_store.target)) == {a.id: 4, b.id: 4}  # holder, other, brief, other


def test_each_attempt_renews_the_dispatchers_other_claims(postgres_store: Store) -> None:
    """The lease need only outlast one attempt: after each outcome the rest of the batch starts afresh."""
    holder, other = postgres_store.open(dispatcher="holder"), postgres_store.open(dispatcher="other")
    for key in ("a", "b", "c"):
        holder.enqueue("oncall", "pagerduty", notice(key), 1.0)
    a, _, _ = holder.due_deliveries(1.0)
    before = {claim.delivery_id: claim.lease_until for claim in holder.claims()}
    time.sleep(0.05)
    holder.delivered(a.id, 2.0)
    after = {claim.delivery_id: claim.lease_until for claim in holder.claims()}
    assert set(after) == set(before) - {a.id}
    assert all(after[key] > before[key] for key in after)
    assert other.due_deliveries(1.0) == []


# -- a dispatcher killed with SIGKILL ---------------------------------------------------------------

CHILD = """
import sys, time
import requests
from sloplane.evaluator.notify.delivery import post
from sloplane.evaluator.notify.outbox_postgres import PostgresOutbox

url, lease, send_to = sys.argv[1], float(sys.argv[2]), sys.argv[3]
outbox = PostgresOutbox(url, dispatcher="doomed", lease=lease)
claimed = outbox.due_deliveries(time.time())
if send_to != "-":  # the receiver accepts each one; the `delivered` mark never comes
    for delivery in claimed:
        assert post(requests.Session(), send_to, delivery.notice.pagerduty("oncall-key"), {}).delivered
print(" ".join(str(delivery.id) for delivery in claimed), flush=True)
time.sleep(600)
"""
"""A dispatcher that claims every due delivery (and with a receiver URL, sends them), says which, then hangs."""
LEASE = 2.0


class TimedReceiver(EventReceiver):
    """Also when each event was accepted, by the wall clock the database's clock also reads."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[str, float]] = []

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        reply = super().answer(method, path, body)
        if 200 <= reply.status < 300:
            self.times.append((path, time.time()))
        return reply


def kill_after_claiming(url: str, send_to: str) -> list[int]:
    """Run the doomed dispatcher until it has claimed (and maybe sent), then SIGKILL it; the ids it claimed."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(LEASE), send_to],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 30)
        line = child.stdout.readline() if ready else ""
    finally:
        os.kill(child.pid, signal.SIGKILL)
        _, errors = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert line.strip(), errors
    return [int(word) for word in line.split()]


def test_a_dispatcher_killed_after_claiming_is_taken_over_after_its_lease_exactly_once(
    postgres_store: Store, notifier: MakeNotifier
) -> None:
    script = TimedReceiver()
    with serve(script) as base:
        recorder = notifier(postgres_store.target, base, start=False)  # a replica that only records
        for number, service in enumerate(("cart", "search", "payments"), start=1):
            recorder.on_decision(background(number, service))
        claimed = kill_after_claiming(str(postgres_store.target), "-")
        outbox = postgres_store.open(dispatcher="heir")
        assert claimed == [d.id for d in outbox.deliveries("pending")]
        lease_ends = max(claim.lease_until.timestamp() for claim in outbox.claims())
        heir = notifier(outbox, base)
        assert heir.flush(LEASE + 10)
    keys = [event["dedup_key"] for event in script.events(PD)]
    assert sorted(keys) == ["sloplane/cart/background", "sloplane/payments/background", "sloplane/search/background"]
    assert all(accepted >= lease_ends for _, accepted in script.times)  # not one before the dead one's lease ended
    assert claims_per_delivery(str(postgres_store.target)) == dict.fromkeys(claimed, 2)
    assert heir.stats()["delivered"] == 3


def test_a_dispatcher_killed_between_the_post_and_its_mark_is_sent_twice_under_one_dedup_key(
    postgres_store: Store, notifier: MakeNotifier
) -> None:
    """The at-least-once window the module's docstring states: PagerDuty merges the repeat by its dedup key."""
    script = EventReceiver()
    with serve(script) as base:
        recorder = notifier(postgres_store.target, base, start=False)
        recorder.on_decision(background(1, "cart"))
        recorder.on_decision(background(2, "search"))
        claimed = kill_after_claiming(str(postgres_store.target), base + PD)
        assert len(script.events(PD)) == 2  # accepted by the receiver, not marked as delivered
        heir = notifier(postgres_store.open(), base)
        assert heir.flush(LEASE + 10)
    assert Counter(event["dedup_key"] for event in script.events(PD)) == {
        "sloplane/cart/background": 2,
        "sloplane/search/background": 2,
    }
    assert claims_per_delivery(str(postgres_store.target)) == dict.fromkeys(claimed, 2)


# -- the database -----------------------------------------------------------------------------------


def test_opening_migrates_once_under_its_own_store_name(postgres_url: str) -> None:
    outboxes = at_once([lambda: PostgresOutbox(postgres_url) for _ in range(4)])  # replicas starting at once
    for outbox in outboxes:
        outbox.close()
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute("SELECT store, version FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [("outbox", 1), ("outbox", 2)]


def test_the_writer_role_is_enough_to_run_the_outbox(
    postgres_cluster: PostgresCluster, postgres_database: str, postgres_url: str
) -> None:
    PostgresOutbox(postgres_url).close()  # the owner migrates
    role = f"notifier_{uuid.uuid4().hex[:8]}"
    postgres_cluster.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'writer-pass'; GRANT sloplane_writer TO {role}")
    with PostgresOutbox(postgres_cluster.tcp_url(postgres_database, role, "writer-pass")) as outbox:
        with outbox.transaction():
            outbox.mark_sent("k", 1.0)
            outbox.enqueue("oncall", "pagerduty", notice("k"), 1.0)
            outbox.hold(failing("cart"), "oncall", 1.0)
            outbox.bump("suppressed")
        (delivery,) = outbox.due_deliveries(1.0)
        outbox.delivered(delivery.id, 2.0)
        outbox.save_war_room("revision/r1", [(failing("cart"), "oncall")], 1.0)
        outbox.prune(delivered_before=3.0, grouping_before=3.0)
        assert outbox.counts() == {"pending": 0, "delivered": 0, "dead": 0, "held": 1}


def test_messages_never_show_the_password(postgres_cluster: PostgresCluster, postgres_database: str) -> None:
    database = postgres_database
    wrong = postgres_cluster.tcp_url(database, "postgres", "s3cret-wrong-pass")
    with pytest.raises(OutboxError) as refused:
        PostgresOutbox(wrong)
    nobody = f"postgresql://postgres:s3cret-wrong-pass@127.0.0.1:{free_port()}/{database}"
    with pytest.raises(OutboxError) as unreachable:
        PostgresOutbox(nobody)
    for message in (str(refused.value), str(unreachable.value)):
        assert "s3cret" not in message
        assert message.startswith("cannot open the notification outbox at postgresql://postgres@127.0.0.1:"), message


def test_the_outbox_carries_on_after_postgresql_restarts(private_postgres_cluster: PostgresCluster) -> None:
    cluster = private_postgres_cluster
    url = cluster.url(cluster.create_database())
    with PostgresOutbox(url, timeout=1.0) as outbox:
        outbox.enqueue("oncall", "pagerduty", notice("before"), 1.0)
        cluster.stop("fast")
        cluster.start()
        assert outbox.counts()["pending"] == 1  # the first use after a restart finds the pool dead and replaces it

        cluster.stop("fast")
        with pytest.raises(OutboxError, match="cannot read the notification outbox at postgresql://postgres@/"):
            outbox.counts()
        cluster.start()
        assert until(lambda: _answers(outbox), timeout=20)  # the pool reconnects (backing off) once it is back
        with outbox.transaction():
            outbox.enqueue("oncall", "pagerduty", notice("after"), 1.0)
        assert [d.notice.dedup_key for d in outbox.due_deliveries(1.0)] == ["before", "after"]


def _answers(outbox: PostgresOutbox) -> bool:
    try:
        outbox.counts()
    except OutboxError:
        return False
    return True
