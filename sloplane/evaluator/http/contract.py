"""What the HTTP API needs from the evaluator: declared by its consumer, so a fake serves the API in tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sloplane.evaluator.contracts import DecisionLog
from sloplane.evaluator.deciding.deployments import BurnSplit
from sloplane.evaluator.model import GateRequest, GateResult


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
