"""Prometheus over HTTP: instant queries at an explicit time, with timeouts, retries and a breaker.

Queries go as POST form data (batched queries are long; URLs have limits). Connection failures,
5xx and 429 are retried with exponential backoff (429 honours Retry-After); a timeout is not
retried, because a backend that is slow now will be slow again within the same gate call, and the
caller's own deadline matters more. Every failure feeds the circuit breaker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import requests

from sloplane.evaluator.measuring.backends.base import BackendError, FailureKind, RangeSeries, Sample
from sloplane.evaluator.measuring.backends.breaker import CircuitBreaker, guarded
from sloplane.evaluator.measuring.backends.http import (
    Observer,
    json_of,
    retry_after,
    scrubbing,
    secret_values,
    send,
    session_for,
    without_credentials,
)

T = TypeVar("T")

MAX_RETRY_AFTER = 10.0
"""A Retry-After longer than this is not waited for: the gate answers by policy instead."""


def _samples(payload: Any) -> list[Sample]:
    """Samples from a Prometheus API answer, or BackendError when it is not one."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error") if isinstance(payload, dict) else None
        raise BackendError(FailureKind.BAD_RESPONSE, f"not a successful query answer: {error or payload!r:.200}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise BackendError(FailureKind.BAD_RESPONSE, "answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    if not isinstance(result, list):
        raise BackendError(FailureKind.BAD_RESPONSE, "answer has no result list")
    try:
        if kind == "vector":
            return [Sample(dict(item["metric"]), float(item["value"][1])) for item in result]
        if kind == "scalar":
            return [Sample({}, float(result[1]))]
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise BackendError(FailureKind.BAD_RESPONSE, f"malformed result: {error}") from None
    raise BackendError(FailureKind.BAD_RESPONSE, f"unexpected result type {kind!r}")


def _range_series(payload: Any) -> list[RangeSeries]:
    """Series from a Prometheus range-query answer, or BackendError when it is not one."""
    data = payload.get("data") if isinstance(payload, dict) and payload.get("status") == "success" else None
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise BackendError(FailureKind.BAD_RESPONSE, f"not a range-query answer: {payload!r:.200}")
    try:
        return [
            RangeSeries(dict(item["metric"]), tuple((float(t), float(v)) for t, v in item["values"]))
            for item in data["result"]
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise BackendError(FailureKind.BAD_RESPONSE, f"malformed range result: {error}") from None


class PrometheusBackend:
    """Reads SLIs from a Prometheus (or anything speaking its HTTP API: Thanos, Mimir, VictoriaMetrics)."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
        breaker: CircuitBreaker | None = None,
        session: requests.Session | None = None,
        observe: Observer | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url, self._auth = without_credentials(url.rstrip("/"))
        """The URL without `user:password@` (those go as basic auth): it is named in messages."""
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.breaker = breaker or CircuitBreaker()
        self._session = session or session_for(self.url)
        self._observe = observe
        self._headers = headers or {}
        self._secrets = secret_values(self._auth, self._headers)

    def close(self) -> None:
        """Close the pooled connections (a server closing down; a test's many servers in one process)."""
        self._session.close()

    def _post(self, path: str, form: dict[str, str]) -> requests.Response:
        return send(
            self._session,
            "POST",
            f"{self.url}{path}",
            timeout=self.timeout,
            observe=self._observe,
            data=form,
            headers=self._headers,
            auth=self._auth,
        )

    def _attempt(self, expression: str, at: datetime) -> list[Sample]:
        with scrubbing(self._secrets):
            return _samples(self._answer("/api/v1/query", {"query": expression, "time": f"{at.timestamp():.3f}"}))

    def _attempt_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        form = {
            "query": expression,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step.total_seconds():g}",
        }
        with scrubbing(self._secrets):
            return _range_series(self._answer("/api/v1/query_range", form))

    def _answer(self, path: str, form: dict[str, str]) -> Any:
        """The decoded JSON of a successful answer; typed BackendErrors for everything else."""
        response = self._post(path, form)
        if response.status_code == 429:
            raise BackendError(FailureKind.RATE_LIMITED, "rate limited", retry_after(response.headers))
        payload = json_of(response, self.url)
        if response.status_code == 400 and isinstance(payload, dict) and payload.get("errorType") == "bad_data":
            raise BackendError(FailureKind.QUERY, str(payload.get("error", "bad query")))
        if response.status_code != 200:
            raise BackendError(FailureKind.BAD_RESPONSE, f"HTTP {response.status_code}: {payload!r:.200}")
        return payload

    def query(self, expression: str, at: datetime) -> list[Sample]:
        """An instant query at `at`, retried on transient failures; raises BackendError."""
        return self._retried(lambda: self._attempt(expression, at))

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        """A range query, retried and guarded like instant queries; raises BackendError."""
        return self._retried(lambda: self._attempt_range(expression, start, end, step))

    def _retried(self, ask: Callable[[], T]) -> T:
        """Run `ask`, retrying outages and short rate limits with backoff (see `breaker.guarded`)."""
        return guarded(self.breaker, self.url, ask, retries=self.retries, wait_before_retry=self._wait_before_retry)

    def _wait_before_retry(self, error: BackendError, attempt: int) -> float | None:
        """Backoff for an outage; Retry-After for a 429 when it is short; no retry otherwise."""
        if error.kind not in (FailureKind.UNAVAILABLE, FailureKind.RATE_LIMITED):
            return None
        wait = self.backoff * (2**attempt)
        if error.kind is FailureKind.RATE_LIMITED and error.retry_after is not None:
            wait = error.retry_after
        return None if wait > MAX_RETRY_AFTER else wait

    def healthy(self) -> tuple[bool, str]:
        """Ask Prometheus for a constant: proves the API answers, not only that a port is open."""
        try:
            samples = self._attempt("vector(1)", datetime.now().astimezone())
        except BackendError as error:
            return False, str(error)
        return (True, "ok") if samples else (False, "empty answer to vector(1)")
