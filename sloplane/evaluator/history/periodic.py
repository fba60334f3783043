"""`serve`'s periodic rollup: every interval, each SLO's hours since its last row, on the leader only.

Why inside `serve`: a cron job is one more thing to deploy and to forget, and the evaluator already reads
Prometheus and Datadog and holds the database. Each subject is read where the gate reads it: given `serve`'s
Datadog transport, the SLIs its gates read from Datadog are rolled up from Datadog too. Why on the leader:
with replicas, one writer is enough, and two would read the backends twice for the same rows (harmless, since
rows are rewritten whole, but wasted).

Failures are logged and counted, and the next round tries again from where the store ends: nothing is lost
while Prometheus still holds the hours (15 days by default). Nothing is ever raised into the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sloplane.evaluator.contracts import RollupStore
from sloplane.evaluator.history.job import roll_up_into, settled_now
from sloplane.evaluator.measuring.backends.base import MetricsBackend
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts
from sloplane.semantics.subjects import Fleet

logger = logging.getLogger(__name__)


@dataclass
class RollupStats:
    """What `/metrics` shows of the job: rounds, rows, subjects that could not be read, the last success."""

    rounds: int = 0
    failed_rounds: int = 0
    rows: int = 0
    failed_subjects: int = 0
    last_success: datetime | None = None
    last_error: str | None = None

    def as_series(self) -> dict[str, float]:
        """The numbers `/metrics` shows (`http.metrics.ROLLUP_SERIES`); no success yet: no timestamp."""
        series = {
            "rounds": float(self.rounds),
            "failed_rounds": float(self.failed_rounds),
            "rows": float(self.rows),
            "failed_subjects": float(self.failed_subjects),
        }
        if self.last_success is not None:
            series["last_success_timestamp_seconds"] = self.last_success.timestamp()
        return series


class PeriodicRollup:
    """Rolls the fleet up every `interval` on a thread of its own; the first round runs at once."""

    def __init__(
        self,
        store: RollupStore,
        fleet: Fleet,
        backend: MetricsBackend | None,
        *,
        interval: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        datadog: DatadogCounts | None = None,
        after_round: Callable[[datetime], object] | None = None,
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError(f"the rollup interval must be positive, not {interval}")
        self._store = store
        self._fleet = fleet
        self._backend = backend
        self._interval = interval
        self._clock = clock
        self._datadog = datadog
        """The Datadog transport when the evaluator reads Datadog: the SLIs the gate reads from it are read there."""
        self._after_round = after_round
        """Work that waits for the hours a round rolls up (support feedback classified again), run after it."""
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sloplane-rollup", daemon=True)
        self._lock = threading.Lock()
        self.stats = RollupStats()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: timedelta = timedelta(seconds=30)) -> None:
        """End the rounds (a round under way finishes its week first)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout.total_seconds())

    def close(self) -> None:
        """Release the store (after `stop`)."""
        self._store.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.roll_up_once()
            self._stopping.wait(self._interval.total_seconds())

    def roll_up_once(self) -> RollupStats:
        """One round; serialised. Returns the stats after it."""
        with self._lock:
            self.stats.rounds += 1
            try:
                until = settled_now(self._clock())
                written = roll_up_into(self._store, self._fleet, self._backend, None, until, datadog=self._datadog)
            except Exception as error:  # a store or a bug: logged, retried next round, never raised
                self.stats.failed_rounds += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                logger.warning("rollup failed, retrying in %s: %s", self._interval, self.stats.last_error)
                return self.stats
            rows, failed = written.rows, written.failed
            self.stats.rows += rows
            self.stats.failed_subjects = len(failed)
            self.stats.last_error = next(iter(failed.values()), None)
            if failed:
                logger.warning("rollup could not read %d subjects, e.g. %s", len(failed), self.stats.last_error)
            else:
                self.stats.last_success = self._clock()
            if rows:
                logger.info("rolled up %d hourly rows", rows)
            self._then(until)
            return self.stats

    def _then(self, until: datetime) -> None:
        """`after_round`, its faults logged, never raised: the next round tries again."""
        if self._after_round is None:
            return
        try:
            self._after_round(until)
        except Exception as error:
            logger.warning("after the rollup: %s: %s", type(error).__name__, error)
