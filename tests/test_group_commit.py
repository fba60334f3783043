"""`GroupCommit`: appends from many threads become few transactions, and each caller gets its own outcome.

The writer here is a list with a deliberately slow commit (a barrier the test opens), so that batching is
forced rather than hoped for; the stores' own batches are tested in `test_postgres_decision_log.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from sloplane.evaluator.storage.group_commit import GroupCommit


class _Ledger:
    """A batch writer that records each batch, refuses odd numbers alone, and fails a batch holding 13."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.first_batch_started = threading.Event()
        self.release_first_batch = threading.Event()

    def write(self, items: Sequence[int]) -> list[BaseException | None]:
        if not self.batches:
            self.first_batch_started.set()
            assert self.release_first_batch.wait(10)
        if 13 in items:
            self.batches.append([])
            raise OSError("disk full")
        self.batches.append(list(items))
        return [ValueError(f"{item} is odd") if item % 2 else None for item in items]


def _submit(commit: GroupCommit[int], item: int) -> str:
    try:
        commit.submit(item)
    except (ValueError, OSError) as error:
        return str(error)
    return "ok"


def test_appends_waiting_on_a_commit_go_together_into_the_next_one() -> None:
    ledger = _Ledger()
    commit: GroupCommit[int] = GroupCommit(ledger.write)
    with ThreadPoolExecutor(max_workers=21) as pool:
        first = pool.submit(_submit, commit, 0)
        assert ledger.first_batch_started.wait(10)
        waiting = [pool.submit(_submit, commit, number) for number in range(2, 42, 2)]
        while len(commit._queue) < 20:  # every follower queued behind the first, slow, commit
            threading.Event().wait(0.001)
        ledger.release_first_batch.set()
        answers = [first.result(10)] + [future.result(10) for future in waiting]
    assert answers == ["ok"] * 21
    assert ledger.batches[0] == [0]
    assert sorted(ledger.batches[1]) == list(range(2, 42, 2))
    assert len(ledger.batches) == 2
    assert commit.batches == 2


def test_each_caller_gets_its_own_outcome_and_a_failed_batch_fails_all_in_it() -> None:
    ledger = _Ledger()
    ledger.release_first_batch.set()
    commit: GroupCommit[int] = GroupCommit(ledger.write)
    assert _submit(commit, 4) == "ok"
    assert _submit(commit, 7) == "7 is odd"
    assert _submit(commit, 13) == "disk full"
    assert _submit(commit, 8) == "ok", "a failed batch must hand the writer's role on"
    assert ledger.batches == [[4], [7], [], [8]]


def test_many_threads_each_item_written_once_in_arrival_order_per_thread() -> None:
    written: list[int] = []
    lock = threading.Lock()

    def write(items: Sequence[int]) -> list[BaseException | None]:
        with lock:
            written.extend(items)
        return [None] * len(items)

    commit: GroupCommit[int] = GroupCommit(write, max_batch=7)

    def submit_run(thread: int) -> None:
        for step in range(50):
            commit.submit(thread * 1000 + step)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(submit_run, range(16)))
    assert sorted(written) == sorted(thread * 1000 + step for thread in range(16) for step in range(50))
    for thread in range(16):
        mine = [item for item in written if item // 1000 == thread]
        assert mine == sorted(mine)
    assert commit.batches <= len(written)


def test_a_writer_answering_the_wrong_number_of_outcomes_fails_its_batch() -> None:
    commit: GroupCommit[int] = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        commit.submit(1)


def test_max_batch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        GroupCommit(lambda items: [None] * len(items), max_batch=0)


def test_an_interrupt_in_the_writer_is_its_own_and_the_role_is_released() -> None:
    interrupts = iter([KeyboardInterrupt()])

    def write(items: Sequence[int]) -> list[BaseException | None]:
        interrupt = next(interrupts, None)
        if interrupt is not None:
            raise interrupt
        return [None] * len(items)

    commit: GroupCommit[int] = GroupCommit(write)
    with pytest.raises(KeyboardInterrupt):
        commit.submit(1)
    commit.submit(2)
    assert commit.batches == 2
