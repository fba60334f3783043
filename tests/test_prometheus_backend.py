"""The Prometheus HTTP backend against scripted faults: retries, timeouts, rate limits, the breaker."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest

from sloplane.evaluator.measuring.backends.base import BackendError, FailureKind
from sloplane.evaluator.measuring.backends.breaker import CircuitBreaker, State
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from tests.fake_http import Reply, Script, serve

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
VECTOR = json.dumps(
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"slo": "a"}, "value": [1, "0.25"]}]}}
).encode()


def _backend(url: str, **options: object) -> PrometheusBackend:
    return PrometheusBackend(url, timeout=0.5, backoff=0.01, **options)  # type: ignore[arg-type]


def test_queries_are_posted_with_the_evaluation_time() -> None:
    script = Script([Reply(body=VECTOR)])
    with serve(script) as url:
        (sample,) = _backend(url).query('up{job="x"}', AT)
    assert sample.labels == {"slo": "a"} and sample.value == 0.25
    method, path, _, body = script.requests[0]
    form = parse_qs(body.decode())
    assert (method, path) == ("POST", "/api/v1/query")
    assert form["query"] == ['up{job="x"}'] and form["time"] == [f"{AT.timestamp():.3f}"]


def test_server_errors_are_retried_then_succeed() -> None:
    script = Script([Reply(500), Reply(502), Reply(body=VECTOR)])
    with serve(script) as url:
        assert _backend(url, retries=2).query("x", AT)[0].value == 0.25
    assert len(script.requests) == 3


def test_rate_limits_wait_for_retry_after() -> None:
    script = Script([Reply(429, headers={"Retry-After": "0.2"}), Reply(body=VECTOR)])
    with serve(script) as url:
        started = time.monotonic()
        assert _backend(url).query("x", AT)[0].value == 0.25
    assert time.monotonic() - started >= 0.2


def test_a_long_retry_after_is_not_waited_for() -> None:
    script = Script([Reply(429, headers={"X-RateLimit-Reset": "3600"})])
    with serve(script) as url, pytest.raises(BackendError) as caught:
        _backend(url).query("x", AT)
    assert caught.value.kind is FailureKind.RATE_LIMITED and caught.value.retry_after == 3600


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply(500), FailureKind.UNAVAILABLE),
        (Reply(body=b"{not json"), FailureKind.BAD_RESPONSE),
        (
            Reply(body=b'{"status": "success", "data": {"resultType": "matrix", "result": []}}'),
            FailureKind.BAD_RESPONSE,
        ),
        (
            Reply(body=b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}'),
            FailureKind.BAD_RESPONSE,
        ),
        (Reply(400, b'{"status": "error", "errorType": "bad_data", "error": "parse error"}'), FailureKind.QUERY),
        (Reply(delay=1.0, body=VECTOR), FailureKind.TIMEOUT),
    ],
)
def test_faults_become_typed_errors(reply: Reply, kind: FailureKind) -> None:
    with serve(Script([reply])) as url, pytest.raises(BackendError) as caught:
        _backend(url, retries=1).query("x", AT)
    assert caught.value.kind is kind


def test_nothing_listening_is_unavailable() -> None:
    with pytest.raises(BackendError) as caught:
        _backend("http://127.0.0.1:9", retries=0).query("x", AT)
    assert caught.value.kind is FailureKind.UNAVAILABLE


def test_the_breaker_opens_fails_fast_and_recovers() -> None:
    clock = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, reset_after=10, clock=lambda: clock[0])
    script = Script([Reply(500), Reply(500), Reply(body=VECTOR)])
    with serve(script) as url:
        backend = _backend(url, retries=0, breaker=breaker)
        for _ in range(2):
            with pytest.raises(BackendError):
                backend.query("x", AT)
        assert breaker.state is State.OPEN
        with pytest.raises(BackendError) as caught:
            backend.query("x", AT)
        assert caught.value.kind is FailureKind.CIRCUIT_OPEN and len(script.requests) == 2
        clock[0] = 11
        assert breaker.state is State.HALF_OPEN
        assert backend.query("x", AT)[0].value == 0.25
        assert breaker.state is State.CLOSED


def test_query_errors_do_not_open_the_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=1)
    bad = Reply(400, b'{"status": "error", "errorType": "bad_data", "error": "parse error"}')
    with serve(Script([bad])) as url, pytest.raises(BackendError):
        _backend(url, breaker=breaker).query("x(", AT)
    assert breaker.state is State.CLOSED


def test_health_asks_for_a_constant() -> None:
    scalar = b'{"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}}'
    with serve(Script([Reply(body=scalar)])) as url:
        assert _backend(url).healthy() == (True, "ok")
    assert _backend("http://127.0.0.1:9", retries=0).healthy()[0] is False
