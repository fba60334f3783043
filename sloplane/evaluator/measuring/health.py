"""What readiness knows: the metrics backend's last known state and the decision log's, never asked on the spot.

A readiness probe has a deadline of a few seconds; a metrics backend that stalls (a SIGSTOPped
Prometheus, a network partition) holds a request for its whole timeout. Were `/readyz` to ask the
backend, every pod would be marked NotReady exactly while gates still answer by policy — and a
rollout of the evaluator itself would stall. So the backend's state is what its real answers said
(`HealthRecordingBackend` wraps it and records every outcome), refreshed by a background probe
only when no gate has asked for a while (`HealthProbe`), and readiness reads that state.

The decision log's state works the same way: an append that failed (a full disk) makes the
evaluator not ready until a write succeeds again, which the probe tries, so a pod that cannot
record is taken out of its Service and comes back by itself once the disk has room.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from sloplane.evaluator.measuring.backends.base import BackendError, FailureKind, MetricsBackend, RangeSeries, Sample

logger = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 15.0
"""How often the probe asks the backend when no gate has (and retries a failed decision log)."""


class BackendHealth:
    """The backend's last known state: healthy, unhealthy with a reason, or not known yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._healthy: bool | None = None
        self._reason = "not asked yet"
        self._reported = float("-inf")

    def record(self, healthy: bool, reason: str = "ok") -> None:
        """What one answer (or failure) of the backend showed."""
        with self._lock:
            self._healthy, self._reason, self._reported = healthy, reason, time.monotonic()

    def state(self) -> tuple[bool | None, str]:
        """(healthy, reason); healthy is None before the backend has been asked at all."""
        with self._lock:
            return self._healthy, self._reason

    def age(self) -> float:
        """Seconds since the last report."""
        with self._lock:
            return time.monotonic() - self._reported


_BACKEND_UP = frozenset({FailureKind.QUERY})
"""Failures that prove the backend answered: it refused one query, it is not down."""


class HealthRecordingBackend:
    """A backend that records the outcome of every request in a `BackendHealth`; otherwise the same."""

    def __init__(self, backend: MetricsBackend, health: BackendHealth) -> None:
        self.backend = backend
        self.health = health
        self.name = backend.name

    def query(self, expression: str, at: datetime) -> list[Sample]:
        try:
            samples = self.backend.query(expression, at)
        except BackendError as error:
            self.health.record(error.kind in _BACKEND_UP, str(error))
            raise
        self.health.record(True)
        return samples

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        try:
            series = self.backend.query_range(expression, start, end, step)
        except BackendError as error:
            self.health.record(error.kind in _BACKEND_UP, str(error))
            raise
        self.health.record(True)
        return series

    def healthy(self) -> tuple[bool, str]:
        """Ask the backend now (the probe does; readiness never does) and record the answer."""
        healthy, reason = self.backend.healthy()
        self.health.record(healthy, reason)
        return healthy, reason


class RecoverableLog(Protocol):
    """What the probe needs of a decision log: whether it is failing, and a way to try writing again."""

    def problem(self) -> str | None:
        """Why the log cannot be used now, or None."""
        ...

    def check_writable(self) -> None:
        """Try one small write; clears the problem when it succeeds."""
        ...


class HealthProbe:
    """A thread that keeps `BackendHealth` fresh while no gate asks, and retries a failing decision log."""

    def __init__(
        self,
        backend: HealthRecordingBackend,
        log: RecoverableLog,
        interval: float = PROBE_INTERVAL_SECONDS,
        *,
        also: Callable[[], None] | None = None,
    ) -> None:
        self._backend = backend
        self._log = log
        self._interval = interval
        self._also = also
        """More upkeep for every round, on every replica (the notifier's kept decisions); must not raise."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Probe once at once, then every `interval`, on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="sloplane-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing (waits for a probe in flight, at most its timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def probe_once(self) -> None:
        """One round: the backend when nothing reported recently, the log when it is failing."""
        if self._backend.health.age() >= self._interval:
            try:
                self._backend.healthy()
            except Exception as error:  # a probe must never end the thread
                self._backend.health.record(False, f"{type(error).__name__}: {error}")
        if self._log.problem() is not None:
            try:
                self._log.check_writable()
            except Exception as error:  # the log says why in problem(); one line here
                logger.error("the decision log is still not writable: %s", error)
        if self._also is not None:
            self._also()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.probe_once()
            self._stop.wait(self._interval)
