"""When and how often a deployment system asks the gate: one schedule for Argo, Spinnaker and CI.

The declaration says blocking or async and may pin any number; the rest follows from the gate
policy (see `Analysis` in the spec). Every pipeline renderer reads this one function, so an Argo
analysis, a Spinnaker webhook stage and a CI job wait and give up alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import GateMode

MIN_INTERVAL = timedelta(minutes=1)
"""Prometheus-backed answers change at most once a scrape; asking more often only adds load."""
ASYNC_INTERVAL = timedelta(minutes=5)


@dataclass(frozen=True)
class GateSchedule:
    """How often to measure, how many times, after what delay, and how many bad answers end it."""

    interval: timedelta
    count: int | None
    """None: keep measuring until the rollout ends (background analysis)."""
    initial_delay: timedelta
    failure_limit: int
    inconclusive_limit: int
    """0: inconclusive results never pause the rollout."""
    consecutive_error_limit: int
    dry_run: bool

    @property
    def timeout(self) -> timedelta:
        """How long a blocking caller waits at most: the delay and every measurement (async: one interval)."""
        if self.count is None:
            return self.initial_delay + self.interval
        return self.initial_delay + self.interval * self.count


def gate_schedule(declaration: Declaration) -> GateSchedule:
    """The declaration's schedule: pinned numbers as given, the rest from the mode and the policy."""
    gate = declaration.spec.effective_gate
    analysis = gate.analysis
    blocking = gate.mode is GateMode.BLOCKING
    default_interval = max(declaration.spec.interval, MIN_INTERVAL) if blocking else ASYNC_INTERVAL
    interval = analysis.interval or default_interval
    default_count = max(1, math.ceil(gate.analysis_window / interval)) if blocking else None
    return GateSchedule(
        interval=interval,
        count=analysis.count if analysis.count is not None else default_count,
        initial_delay=analysis.initial_delay
        if analysis.initial_delay is not None
        else (gate.analysis_window if blocking else timedelta(0)),
        failure_limit=analysis.failure_limit if analysis.failure_limit is not None else (0 if blocking else 1),
        inconclusive_limit=analysis.inconclusive_limit
        if analysis.inconclusive_limit is not None
        else (2 if blocking else 0),
        consecutive_error_limit=analysis.consecutive_error_limit if analysis.consecutive_error_limit is not None else 4,
        dry_run=analysis.dry_run,
    )
