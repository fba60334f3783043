"""`serve` verifies the decision log's hash chain when it starts, in the background, and says what it found.

Why in the background: a log of millions of records takes a while to walk, and an evaluator that does not
answer gates until then would stall every pipeline (and its own rollout, on readiness). Until the walk
ends the state is `verifying`.

Why a broken chain does not stop gating: it is an audit finding about records already written, not a
reason to refuse the next release; gates go on deciding by their policies and recording. It must be seen,
though: `/readyz` carries the state in `decisionChain` (the pod stays ready), `/metrics` has
`sloplane_decision_chain_intact` (0 when broken) and the log says it as an error. `sloplane decisions
verify` walks the chain on demand, and names the same first broken record.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sloplane.evaluator.contracts import DecisionLog
from sloplane.evaluator.model import ChainReport

logger = logging.getLogger(__name__)


class ChainStatus(StrEnum):
    """Where the walk is: still going, done and whole, done and broken, or unable to read the log."""

    VERIFYING = "verifying"
    INTACT = "intact"
    BROKEN = "broken"
    FAILED = "failed"


@dataclass(frozen=True)
class ChainState:
    """What is known about the chain now: the status, the report once there is one, why it failed."""

    status: ChainStatus
    report: ChainReport | None = None
    problem: str | None = None
    seconds: float | None = None
    """How long the walk took."""

    def to_dict(self) -> dict[str, Any]:
        """`/readyz`'s `decisionChain`: camelCase, only what this status has."""
        found: dict[str, Any] = {"state": self.status.value}
        if self.report is not None:
            found.update(records=self.report.records, head=self.report.head)
            if self.report.broken is not None:
                broken = self.report.broken
                found["firstBroken"] = {"seq": broken.seq, "id": broken.decision_id, "reason": broken.reason}
        if self.problem is not None:
            found["reason"] = self.problem
        if self.seconds is not None:
            found["seconds"] = round(self.seconds, 3)
        return found


class ChainAudit:
    """Walks the log's chain once, on its own thread; `state` answers at once whether it has finished or not."""

    def __init__(self, log: DecisionLog) -> None:
        self._log = log
        self._state = ChainState(ChainStatus.VERIFYING)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.run, name="sloplane-chain-verify", daemon=True)

    def start(self) -> None:
        """Begin the walk (once); a daemon thread, so a long walk never holds up the process's exit."""
        if not self._thread.is_alive() and self.state().status is ChainStatus.VERIFYING:
            self._thread.start()

    def state(self) -> ChainState:
        with self._lock:
            return self._state

    def run(self) -> None:
        """Walk the chain here and now, and keep and log what was found; never raises (it runs beside gates)."""
        started = time.monotonic()
        try:
            report = self._log.verify()
        except Exception as error:  # an unreadable log, or a bug: reported, never raised into the server
            problem = str(error) or type(error).__name__
            logger.warning("could not verify the decision log's hash chain: %s", problem)
            self._set(ChainState(ChainStatus.FAILED, problem=problem, seconds=time.monotonic() - started))
            return
        seconds = time.monotonic() - started
        if report.broken is not None:
            logger.error(
                "the decision log's hash chain is broken: %s (gates go on deciding; this is an audit finding)",
                report.broken.describe(),
            )
            self._set(ChainState(ChainStatus.BROKEN, report, seconds=seconds))
            return
        logger.info("the decision log's hash chain is intact: %d records in %.1f s", report.records, seconds)
        self._set(ChainState(ChainStatus.INTACT, report, seconds=seconds))

    def _set(self, state: ChainState) -> None:
        with self._lock:
            self._state = state
