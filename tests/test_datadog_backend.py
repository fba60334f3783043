"""The evaluator's Datadog transport against the local Datadog API: exact counts over aligned windows,
few requests, the rate limit respected, every fault a typed error.

`tests.datadog_api.DatadogAPI` answers as Datadog does (UNIX-aligned buckets, [from, to) in ms, the five
rate-limit headers, calendar-aligned periods); its clock and ours are one controllable clock here, and
sleeping advances it, so waits are checked exactly and take no real time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sloplane.evaluator.measuring.backends.base import BackendError, FailureKind
from sloplane.evaluator.measuring.backends.breaker import CircuitBreaker
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts, RateLimits, api_url
from tests.datadog_api import SCALAR, DatadogAPI, Fault, RateLimit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
START = T0.timestamp()
QUERY = "sum:requests.count{service:shop}.as_count()"
ERRORS = "sum:requests.count{service:shop,code:5*}.as_count()"


class Clock:
    """One clock for the server and the client; `sleep` moves it instead of waiting."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def api(clock: Clock) -> Iterator[DatadogAPI]:
    server = DatadogAPI(now=clock, limits={SCALAR: RateLimit("query_scalar_public", 5, 10)})
    for minute in range(-120, 0):  # two hours of one request per second, 1% of them errors
        at = START + minute * 60
        server.add("requests.count", {"service": "shop", "code": "200"}, at, 59.4)
        server.add("requests.count", {"service": "shop", "code": "500"}, at, 0.6)
    with server:
        yield server


def _client(api: DatadogAPI, clock: Clock, **options: object) -> DatadogCounts:
    return DatadogCounts(
        api.url,
        "api-key",
        "app-key",
        limits=RateLimits(),
        clock=clock,
        sleep=clock.sleep,
        jitter=lambda: 0.0,
        **options,
    )  # type: ignore[arg-type]


def test_counts_over_aligned_windows_equal_the_hand_sums(api: DatadogAPI, clock: Clock) -> None:
    client = _client(api, clock)
    total, errors = client.counts([QUERY, ERRORS], T0 + timedelta(seconds=42), timedelta(hours=1))
    assert total == pytest.approx(60 * 60.0, rel=1e-12) and errors == pytest.approx(60 * 0.6, rel=1e-12)
    # the window ends at the instant rounded down to the minute, and is [from, to) in ms
    (request,) = api.requests(SCALAR)
    attributes = request.body["data"]["attributes"]
    assert (attributes["from"], attributes["to"]) == ((START - 3600) * 1000, START * 1000)
    assert [query["aggregator"] for query in attributes["queries"]] == ["sum", "sum"]
    assert "formulas" not in attributes


def test_a_delay_for_late_data_moves_the_window_and_no_data_is_none(api: DatadogAPI, clock: Clock) -> None:
    client = _client(api, clock, delay=timedelta(minutes=2))
    assert client.window(T0, timedelta(minutes=5)) == ((START - 420) * 1000, (START - 120) * 1000)
    assert client.counts(["sum:nothing.count{*}.as_count()"], T0, timedelta(minutes=5)) == [None]


def test_many_queries_go_in_few_requests(api: DatadogAPI, clock: Clock) -> None:
    client = _client(api, clock, max_queries=20)
    answers = client.counts([QUERY] * 45, T0, timedelta(minutes=5))
    assert len(answers) == 45 and set(answers) == {300.0}
    assert len(api.requests(SCALAR)) == 3 and client.requests_sent == 3


def test_nothing_is_sent_while_the_limit_is_spent_and_the_wait_is_its_reset(api: DatadogAPI, clock: Clock) -> None:
    """5 requests per calendar-aligned 10 s: the sixth waits for the next period instead of drawing a 429."""
    client = _client(api, clock, max_queries=1)
    clock.now = START + 3  # the period ends at START + 10 (START is a multiple of 10)
    assert len(client.counts([QUERY] * 6, T0, timedelta(minutes=5))) == 6
    statuses = [request.status for request in api.requests(SCALAR)]
    assert statuses == [200] * 6
    assert clock.slept == [pytest.approx(7.0)]
    assert api.sent_during_backoff() == []


def test_a_429_is_waited_for_once_and_long_waits_are_left_to_the_policy(api: DatadogAPI, clock: Clock) -> None:
    client = _client(api, clock)
    api.fail(SCALAR, Fault.rate_limited_without_headers(), times=1)
    assert client.counts([QUERY], T0, timedelta(minutes=5)) == [300.0]
    assert clock.slept == [pytest.approx(1.0)]  # no Reset header: a second, then the retry
    api.fail(SCALAR, Fault.rate_limited_without_headers(), times=None)
    with pytest.raises(BackendError) as raised:
        client.counts([QUERY], T0, timedelta(minutes=5))
    assert raised.value.kind is FailureKind.RATE_LIMITED
    api.clear_faults()
    spent = RateLimits()
    spent.exhausted("query_scalar_public", clock.now + 60)
    patient = DatadogCounts(api.url, "k", "a", limits=spent, clock=clock, sleep=clock.sleep)
    with pytest.raises(BackendError) as waiting:
        patient.counts([QUERY], T0, timedelta(minutes=5))
    assert waiting.value.kind is FailureKind.RATE_LIMITED and waiting.value.retry_after == pytest.approx(60)
    assert patient.requests_sent == 0


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.server_error(503), FailureKind.UNAVAILABLE),
        (Fault.errors_string("bad query"), FailureKind.QUERY),
        (Fault.errors_list(["bad query"]), FailureKind.QUERY),
        (Fault.truncated(), FailureKind.BAD_RESPONSE),
        (Fault.forbidden(), FailureKind.BAD_RESPONSE),
    ],
    ids=["html-5xx", "errors-string", "errors-list", "truncated-json", "forbidden"],
)
def test_every_fault_is_a_typed_error(fault: Fault, kind: FailureKind, api: DatadogAPI, clock: Clock) -> None:
    api.fail(SCALAR, fault, times=None)
    with pytest.raises(BackendError) as raised:
        _client(api, clock).counts([QUERY], T0, timedelta(minutes=5))
    assert raised.value.kind is kind


def test_a_slow_answer_is_a_timeout_and_repeated_failures_open_the_breaker(api: DatadogAPI, clock: Clock) -> None:
    api.fail(SCALAR, Fault.slow(1.0), times=1)
    breaker = CircuitBreaker(failure_threshold=2, reset_after=60, clock=clock)
    client = _client(api, clock, timeout=0.2, breaker=breaker)
    with pytest.raises(BackendError) as slow:
        client.counts([QUERY], T0, timedelta(minutes=5))
    assert slow.value.kind is FailureKind.TIMEOUT
    api.fail(SCALAR, Fault.server_error(502), times=None)
    with pytest.raises(BackendError):
        client.counts([QUERY], T0, timedelta(minutes=5))
    sent = client.requests_sent
    with pytest.raises(BackendError) as open_circuit:
        client.counts([QUERY], T0, timedelta(minutes=5))
    assert open_circuit.value.kind is FailureKind.CIRCUIT_OPEN and client.requests_sent == sent


def test_sites_and_keys(api: DatadogAPI, clock: Clock) -> None:
    assert api_url("datadoghq.eu") == "https://api.datadoghq.eu"
    assert api_url("ddog-gov.com") == "https://api.ddog-gov.com"
    assert api_url("https://api.us5.datadoghq.com/") == "https://api.us5.datadoghq.com"
    with pytest.raises(ValueError, match="not a Datadog site"):
        api_url("datadog.example")
    assert _client(api, clock).healthy() == (True, "ok")


def test_requests_side_by_side_share_the_limit_without_a_429() -> None:
    """Four requests in flight at once reserve their slots: 12 requests under 5 per 2 s never draw a 429
    and none is sent while the limit is spent (real time: about two periods)."""
    server = DatadogAPI(limits={SCALAR: RateLimit("query_scalar_public", 5, 2)})
    server.add("requests.count", {"service": "shop"}, START - 60, 5.0)
    with server:
        client = DatadogCounts(server.url, "k", "a", limits=RateLimits(), max_queries=1, parallel=4)
        assert client.counts([QUERY] * 12, T0, timedelta(minutes=5)) == [5.0] * 12
    assert [request.status for request in server.requests(SCALAR)] == [200] * 12
    assert server.sent_during_backoff() == []


def test_a_limit_resets_on_its_calendar_boundary_not_on_a_rounded_reset() -> None:
    """Reset is whole seconds and arrives late: the period's end is the multiple of the period nearest."""
    limits = RateLimits()
    headers = {
        "X-RateLimit-Name": "query_scalar_public",
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Period": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "9",
    }
    limits.record(headers, 1000.0 + 2.01)  # the server saw 1001.8 (Reset ceil(8.2) = 9), we read it at 1002.01
    assert limits.take("query_scalar_public", 1005.0) == pytest.approx(5.0)  # until 1010, not 1011.01
    assert limits.take("query_scalar_public", 1010.0) == 0.0  # a new period: the limit's size again
