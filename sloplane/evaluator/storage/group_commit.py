"""Group commit: appends from many threads written as one transaction each time the writer is free.

Why: a decision is recorded before it is given, so every gate waits for its record's commit, and a
commit is durable only after the disk (SQLite's fsync) or the database server (PostgreSQL's WAL flush,
plus a round trip) says so. One commit per decision under one lock makes every gate queue behind all
the commits before it: at a few hundred gates a second the queue, not the work, was the latency (the
gate-load bench found 48-70% of the server's time waiting on the append lock). Here the appends that
arrive while a batch is being written wait together and go into the next batch, so a burst of N costs
two commits, not N, and each caller still returns only once its own record is committed.

How (leader and followers, no thread of its own): a caller enqueues its item; if no batch is being
written it becomes the writer, takes everything queued (at most `max_batch`), writes it, hands each
caller its outcome, then passes the writer's role to the oldest caller still waiting, or gives it up
when none is. No thread is started, so there is nothing to stop and nothing left running when the
store is closed; a writer always writes its own item in the batch it takes, so no caller waits for
work that is not its own for longer than one batch.

The order of the queue is the order of the log: the batch writer chains the items in the order they
arrived. Each item's outcome is its own: `write` returns one per item (None, or the exception that
caller gets), so a duplicate id refuses only that decision and not its neighbours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")

BatchWriter = Callable[[Sequence[Item]], Sequence[BaseException | None]]
"""Writes a batch in one transaction; returns, per item and in order, None or the exception for its caller.
Raising instead fails the whole batch: every caller in it gets that exception."""


@dataclass(eq=False)
class _Slot(Generic[Item]):
    """One caller's item and what it is waiting for: its outcome, or the writer's role."""

    item: Item
    woken: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    error: BaseException | None = None


class GroupCommit(Generic[Item]):
    """Serialises `submit`s into batches written by `write`; see the module's docstring.

    `max_batch` bounds a transaction (and the time the first caller in it waits), not the queue.
    """

    def __init__(self, write: BatchWriter[Item], *, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot[Item]] = []
        self._writing = False
        self.batches = 0
        """Batches written (a figure for tests and benches: items per batch = submits / batches)."""

    def submit(self, item: Item) -> None:
        """Write `item` in the next batch; return once it is committed, or raise its exception."""
        slot = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            leads = not self._writing
            self._writing = True
        if not leads:
            slot.woken.wait()
        if not slot.done:
            self._write_batch()
        if slot.error is not None:
            raise slot.error

    def _write_batch(self) -> None:
        """Write what is queued (this writer's own item first among it), then pass the role on.

        An exception fails every caller of the batch. An interrupt in the writer (KeyboardInterrupt,
        SystemExit) is the writer's own to raise: the others are told their batch was abandoned.
        """
        with self._lock:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            outcomes: Sequence[BaseException | None] = self._write([slot.item for slot in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch writer answered {len(outcomes)} outcomes for {len(batch)} items")
        except Exception as exc:  # the whole batch failed: each caller gets why, none is left waiting
            outcomes = [exc] * len(batch)
        except BaseException as exc:
            self._finish(batch, [RuntimeError(f"the batch was abandoned: {type(exc).__name__}")] * len(batch))
            raise
        self._finish(batch, outcomes)

    def _finish(self, batch: list[_Slot[Item]], outcomes: Sequence[BaseException | None]) -> None:
        """Hand each caller its outcome and the writer's role to the oldest caller still waiting."""
        self.batches += 1
        with self._lock:
            following = self._queue[0] if self._queue else None
            self._writing = following is not None
        for slot, outcome in zip(batch, outcomes, strict=True):
            slot.error = outcome
            slot.done = True
            slot.woken.set()
        if following is not None:
            following.woken.set()
