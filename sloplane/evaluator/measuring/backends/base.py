"""The backend interface: instant queries at an explicit time, and typed failures.

Every query of one evaluation is sent with the same evaluation time, so all windows and SLOs are
read at one instant (tools that let the backend use "now" per query show phantom spikes when the
queries straddle a scrape). Failures are typed so that policies can tell a timeout from a bad
answer, and so that a rate-limited backend (Datadog answers 429 with X-RateLimit-Reset) says when
to come back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol


class FailureKind(StrEnum):
    """Why a backend could not answer."""

    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    BAD_RESPONSE = "bad-response"
    RATE_LIMITED = "rate-limited"
    CIRCUIT_OPEN = "circuit-open"
    QUERY = "query"
    """The backend rejected the query itself (a bug in a declaration's PromQL, not an outage)."""


class BackendError(Exception):
    """A query that could not be answered, and why."""

    def __init__(self, kind: FailureKind, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Sample:
    """One series of an instant-query result."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range-query result: (unix seconds, value) points in time order."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


class MetricsBackend(Protocol):
    """A source of SLI numbers."""

    name: str

    def query(self, expression: str, at: datetime) -> list[Sample]:
        """Evaluate an instant query at `at`; raises BackendError."""
        ...

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        """Evaluate at every `step` from `start` to `end` inclusive (canary analysis); raises BackendError."""
        ...

    def healthy(self) -> tuple[bool, str]:
        """Whether the backend answers at all, with a reason when it does not."""
        ...


class NoPrometheus:
    """Stands in for the Prometheus an evaluator was not given (it reads Datadog only).

    Every question is a typed failure naming the missing option, so an SLO that can only be read from
    Prometheus gets a decision by policy, never a crash. Its health is the health of what the evaluator
    reads instead (Datadog's key validation), so readiness still says whether SLIs can be read.
    """

    name = "prometheus"

    def __init__(self, instead: Callable[[], tuple[bool, str]] | None = None) -> None:
        self._instead = instead

    def query(self, expression: str, at: datetime) -> list[Sample]:
        """Always fails: no Prometheus is configured."""
        raise BackendError(FailureKind.UNAVAILABLE, "no Prometheus is configured (--prometheus)")

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        """Always fails: no Prometheus is configured."""
        raise BackendError(FailureKind.UNAVAILABLE, "no Prometheus is configured (--prometheus)")

    def healthy(self) -> tuple[bool, str]:
        """The other backend's health, or nothing to be unhealthy about."""
        return self._instead() if self._instead is not None else (True, "no Prometheus configured")
