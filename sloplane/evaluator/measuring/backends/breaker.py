"""A circuit breaker: after repeated failures, stop asking for a while and fail at once.

A gate that waits out a dead backend's timeout on every call makes every pipeline slow at exactly
the moment people are trying to ship a fix. Open, the breaker answers immediately (the policy then
decides: fail open or closed); after `reset_after` one trial call goes through (half-open), and its
success closes the circuit again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from sloplane.evaluator.measuring.backends.base import BackendError, FailureKind

T = TypeVar("T")


class State(StrEnum):
    """Closed: calls go through. Open: calls fail fast. Half-open: one trial call goes through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Counts consecutive failures; thread-safe."""

    def __init__(
        self, failure_threshold: int = 5, reset_after: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> State:
        """The state now (an open circuit turns half-open once `reset_after` has passed)."""
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return State.CLOSED
        if self._clock() - self._opened_at >= self.reset_after:
            return State.HALF_OPEN
        return State.OPEN

    def allow(self) -> bool:
        """Whether a call may go ahead now (in half-open, only one at a time)."""
        with self._lock:
            state = self._state()
            if state is State.CLOSED:
                return True
            if state is State.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def record_success(self) -> None:
        """A call worked: close the circuit."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        """A call failed: open the circuit at the threshold (or again after a failed trial)."""
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_running = False


def guarded(
    breaker: CircuitBreaker,
    target: str,
    ask: Callable[[], T],
    *,
    retries: int,
    wait_before_retry: Callable[[BackendError, int], float | None],
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Run `ask` through the breaker, retrying what `wait_before_retry` allows; every outcome feeds the breaker.

    `wait_before_retry(error, attempt)` says how long to wait before trying again, or None to give up
    (each backend knows which of its failures pass on a second try). A query the backend rejected
    (FailureKind.QUERY) is a declaration's bug, not an outage: it does not count against the breaker.
    """
    if not breaker.allow():
        raise BackendError(FailureKind.CIRCUIT_OPEN, f"{target} failed repeatedly; not asked again yet")
    attempt = 0
    while True:
        try:
            answer = ask()
        except BackendError as error:
            wait = wait_before_retry(error, attempt) if attempt < retries else None
            if wait is None:
                if error.kind is not FailureKind.QUERY:
                    breaker.record_failure()
                raise
            attempt += 1
            if wait > 0:
                (sleep or time.sleep)(wait)  # looked up now, so a test that patches time.sleep is obeyed
            continue
        breaker.record_success()
        return answer
