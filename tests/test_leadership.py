"""One leader among replicas, by a PostgreSQL advisory lock: exactly one holds it, and when the leader's
process is killed (SIGKILL: no clean-up runs) another takes over within about one check interval.

Real PostgreSQL (tests/postgres.py); each replica is its own process, as pods are.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

from sloplane.evaluator.storage.leadership import AdvisoryLockLeadership, SoleLeader

pytest_plugins = ("tests.postgres",)

INTERVAL = 0.2
"""How often a replica checks (the evaluator's default is 1 s; short here to keep the test short)."""


def _replica(url: str, name: str, report: Connection) -> None:
    """A replica: elects, and reports (name, became leader at) once when it becomes the leader."""
    reported = False

    def changed(leader: bool) -> None:
        nonlocal reported
        if leader and not reported:
            report.send((name, time.time()))
            reported = True

    leadership = AdvisoryLockLeadership(url, interval=INTERVAL, on_change=changed)
    leadership.start()
    while True:
        time.sleep(1)


def _start(url: str, name: str) -> tuple[SpawnProcess, Connection]:
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=_replica, args=(url, name, sending), daemon=True)
    process.start()
    return process, receiving


def _first_report(pipes: dict[str, Connection], timeout: float) -> tuple[str, float] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pipe in pipes.values():
            if pipe.poll(0.05):
                name, at = pipe.recv()
                return str(name), float(at)
    return None


def test_one_replica_leads_and_another_takes_over_when_it_is_killed(postgres_url: str) -> None:
    replicas = {name: _start(postgres_url, name) for name in ("a", "b")}
    pipes = {name: pipe for name, (_, pipe) in replicas.items()}
    try:
        first = _first_report(pipes, timeout=30)
        assert first is not None, "no replica became the leader"
        leader, _ = first
        assert _first_report(pipes, timeout=3 * INTERVAL + 1) is None, "two leaders at once"
        killed_at = time.time()
        os.kill(replicas[leader][0].pid or 0, signal.SIGKILL)
        second = _first_report({n: p for n, p in pipes.items() if n != leader}, timeout=30)
        assert second is not None, "nobody took over from the killed leader"
        follower, took_over_at = second
        assert follower != leader
        takeover = took_over_at - killed_at
        print(f"takeover after SIGKILL: {takeover:.2f} s (check interval {INTERVAL} s)")
        assert takeover < 30
    finally:
        for process, _ in replicas.values():
            process.kill()
            process.join(timeout=10)


def test_a_replica_steps_down_when_stopped_and_the_lock_is_free_at_once(postgres_url: str) -> None:
    first = AdvisoryLockLeadership(postgres_url, interval=INTERVAL)
    second = AdvisoryLockLeadership(postgres_url, interval=INTERVAL)
    first.start()
    deadline = time.monotonic() + 20
    while not first.is_leader and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.is_leader
    second.start()
    time.sleep(3 * INTERVAL)
    assert not second.is_leader, "the lock is held: the second replica waits"
    first.stop()
    assert not first.is_leader
    deadline = time.monotonic() + 20
    while not second.is_leader and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second.is_leader
    second.stop()


def test_a_single_sqlite_replica_is_always_the_leader() -> None:
    sole = SoleLeader()
    sole.start()
    assert sole.is_leader
    sole.stop()
