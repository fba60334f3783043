"""The seams between the evaluator's parts, so each can be built and tested on its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sloplane.evaluator.context import FreezeLike, IncidentLike
from sloplane.evaluator.deployments import BurnSplit
from sloplane.evaluator.model import Decision, GateRequest, GateResult, ReleaseSpan


class DecisionLog(Protocol):
    """Where decisions are kept: append-only, queryable."""

    def append(self, decision: Decision) -> None:
        """Record one decision (never changes or removes an earlier one)."""

    def query(
        self,
        *,
        slo: str | None = None,
        stage: str | None = None,
        outcome: str | None = None,
        revision: str | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Recorded decisions (their `to_dict()` form), newest first."""
        ...

    def count(self) -> int:
        """How many decisions are recorded."""
        ...

    def releases(self, service: str, since: datetime) -> list[ReleaseSpan]:
        """Each release of `service` gated live (not replayed) since `since`, first gated first."""
        ...

    def problem(self) -> str | None:
        """Why the log cannot be used now (its last append failed, it cannot be read), or None; never waits long."""
        ...

    def check_writable(self) -> None:
        """Try one small write, to find out whether a failed log has recovered (raises when not)."""
        ...


class ReleaseControlsView(Protocol):
    """What the decision pipeline reads from the freeze and incident store (`controls.py`)."""

    def active_freezes(self, service: str, at: datetime) -> Sequence[FreezeLike]:
        """Freezes in force at `at` that cover `service` (its own and global ones)."""
        ...

    def open_major_incidents(self, at: datetime) -> Sequence[IncidentLike]:
        """Major incidents open at `at`."""
        ...


class GateService(Protocol):
    """What the HTTP API and the CLI need from the evaluator."""

    log: DecisionLog

    def gate(self, request: GateRequest) -> GateResult:
        """Decide (and record) a gate request; never raises for backend faults."""
        ...

    def slos(self) -> list[dict[str, Any]]:
        """A summary of every SLO the evaluator knows (name, service, team, stages, objective, ...)."""
        ...

    def slo(self, name: str, at: datetime | None = None) -> dict[str, Any] | None:
        """One SLO's declaration summary and its current measurements; None when unknown."""
        ...

    def deployment_burn(self, name: str, at: datetime | None = None) -> BurnSplit:
        """The SLO's production budget split into deployment windows and background (KeyError if unknown)."""
        ...

    def ready(self) -> tuple[bool, str]:
        """Whether the backend answers and the log is writable, with a reason when not."""
        ...
