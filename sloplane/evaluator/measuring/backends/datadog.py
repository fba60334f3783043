"""Datadog over HTTP: event counts over aligned windows, within Datadog's rate limits.

The transport of the evaluator's Datadog backend (`measuring/datadog_reads.py` plans what to ask): it asks
`POST /api/v2/query/scalar` for `sum:…as_count()` queries with `aggregator: sum`, one number
column per query and no server-side formula (a ratio is computed here, so a zero denominator can
never become a value), many queries per request.

Windows are `[T−W, T)` in milliseconds with `T` the evaluation instant minus a configurable delay
(late data), rounded down to the rollup (60 s): Datadog sums whole UNIX-aligned buckets by their
start, so aligned edges count exactly the buckets of the window and two readers of the same instant
agree.

Rate limits are Datadog's, read from every answer (`X-RateLimit-Limit/-Period/-Remaining/-Reset/
-Name`; Reset is seconds until the calendar-aligned period ends) into one `RateLimits` shared by every
gate of the process: nothing is sent while a limit's Remaining is 0, a 429 waits for its Reset (plus a
little jitter) when that is short, and otherwise fails as `rate-limited` with the wait, so a policy
decides and the decision says why. Faults are typed like Prometheus's, and feed the same breaker.
"""

from __future__ import annotations

import functools
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import requests

from sloplane.evaluator.measuring.backends.base import BackendError, FailureKind
from sloplane.evaluator.measuring.backends.breaker import CircuitBreaker, guarded
from sloplane.evaluator.measuring.backends.http import (
    json_of,
    retry_after,
    scrubbing,
    secret_values,
    send,
    session_for,
    without_credentials,
)

T = TypeVar("T")

SITES: dict[str, str] = {
    site: f"https://api.{site}"
    for site in (
        "datadoghq.com",
        "datadoghq.eu",
        "us3.datadoghq.com",
        "us5.datadoghq.com",
        "ap1.datadoghq.com",
        "ap2.datadoghq.com",
        "ddog-gov.com",
    )
}
"""Datadog sites and their API hosts (`api.<site>`)."""
SCALAR_PATH = "/api/v2/query/scalar"
ROLLUP = timedelta(seconds=60)
MAX_WAIT = 10.0
"""A wait for a rate limit longer than this is not waited: the gate answers by policy instead."""
DEFAULT_RESET = 1.0
"""How long to stay away after a 429 that says nothing about when to come back."""


def api_url(site_or_url: str) -> str:
    """The API base URL for a site name (`datadoghq.eu`) or a full URL given as is."""
    text = site_or_url.strip().rstrip("/")
    if text in SITES:
        return SITES[text]
    if text.startswith(("https://", "http://")):
        return text
    raise ValueError(f"'{site_or_url}' is not a Datadog site ({', '.join(SITES)}) or an http(s) URL")


Row = dict[str, float | None]
"""A query's counts by the value of its one `by` tag; an ungrouped query's count is under `UNGROUPED`."""
UNGROUPED = ""


@dataclass(frozen=True)
class Counted:
    """Counts in query order (per group for a grouped query), and the seconds spent waiting for Datadog's
    rate limit to get them."""

    rows: list[Row]
    waited: float

    @property
    def values(self) -> list[float | None]:
        """Each ungrouped query's count (None: no data)."""
        return [row.get(UNGROUPED) for row in self.rows]


@dataclass
class _Limit:
    remaining: int
    resets_at: float
    size: int | None = None
    period: float | None = None


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(headers[name])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _boundary(resets_at: float, period: float | None) -> float:
    """The period's calendar-aligned end. `now + Reset` is off by up to a second (Reset is whole
    seconds, rounded up) plus the answer's latency, and a reservation count kept against a drifting
    boundary overruns the next period; the true end is the multiple of the period nearest to it."""
    if period is None or period < 4:
        return resets_at
    aligned = round((resets_at - 0.5) / period) * period
    return aligned if abs(aligned - resets_at) <= 2.0 else resets_at


class RateLimits:
    """What Datadog's answers said about each named limit; shared by every request of the process.

    Requests *reserve* a slot (`take`) before they are sent, so concurrent requests never both spend
    the last one; answers correct the count (never upwards within a period: other requests of ours may
    still be in flight). When a period ends, the limit's size (`X-RateLimit-Limit`) is available again
    until the next calendar-aligned boundary (`X-RateLimit-Period`).
    """

    def __init__(self) -> None:
        self._limits: dict[str, _Limit] = {}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def sent(self, name: str) -> None:
        """A request under `name` is on its way (`answered` when it is back, however it ended)."""
        with self._lock:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1

    def answered(self, name: str) -> None:
        """A request under `name` is back."""
        with self._lock:
            self._in_flight[name] = max(0, self._in_flight.get(name, 0) - 1)

    def record(self, headers: Mapping[str, str], now: float) -> None:
        """Remember a limit's Remaining, size, period and when it resets, from an answer's headers."""
        name = headers.get("X-RateLimit-Name")
        remaining, reset = (
            _header_number(headers, "X-RateLimit-Remaining"),
            _header_number(headers, "X-RateLimit-Reset"),
        )
        if name is None or remaining is None or reset is None:
            return
        size, period = _header_number(headers, "X-RateLimit-Limit"), _header_number(headers, "X-RateLimit-Period")
        period = period if period is not None and period > 0 else None
        told = _Limit(
            int(remaining), _boundary(now + max(0.0, reset), period), None if size is None else int(size), period
        )
        with self._lock:
            known = self._limits.get(name)
            if known is not None and told.resets_at < known.resets_at - 0.5:
                return  # an answer from a period already over says nothing about this one
            if known is not None and abs(known.resets_at - told.resets_at) < 0.5:
                told.remaining = min(told.remaining, known.remaining)  # same period: the lower count holds
            self._limits[name] = told

    def exhausted(self, name: str, until: float) -> None:
        """A 429 for `name`: nothing more until `until`."""
        with self._lock:
            known = self._limits.get(name)
            self._limits[name] = _Limit(0, until, known.size if known else None, known.period if known else None)

    def take(self, name: str, now: float) -> float:
        """Reserve one request under `name`: 0 when it may be sent now, else the seconds to wait first."""
        with self._lock:
            limit = self._limits.get(name)
            if limit is None:
                return 0.0
            if limit.resets_at <= now:
                if limit.size is None or limit.period is None:
                    del self._limits[name]  # what the next period allows is learnt from the next answer
                    return 0.0
                periods = math.floor((now - limit.resets_at) / limit.period) + 1
                limit.resets_at += periods * limit.period
                limit.remaining = max(0, limit.size - self._in_flight.get(name, 0))
            if limit.remaining > 0:
                limit.remaining -= 1
                return 0.0
            return limit.resets_at - now

    def known(self, name: str) -> bool:
        """Whether an answer has said how much of `name` is left (until then, requests go one at a time)."""
        with self._lock:
            return name in self._limits


SHARED_LIMITS = RateLimits()
"""The process's one view of Datadog's limits (every backend instance uses it unless given another)."""


def number_of(item: Any) -> float | None:
    """A value of an answer: a number, or None; BackendError for anything else (a string, a boolean)."""
    if item is not None and (isinstance(item, bool) or not isinstance(item, int | float)):
        raise BackendError(FailureKind.BAD_RESPONSE, f"not a number: {item!r:.50}")
    return None if item is None else float(item)


def checked_answer(payload: Any, kind: str) -> dict[str, Any]:
    """The answer as a dict; BackendError when it is none (`kind`: what it should have been) or carries Datadog's
    `errors` (a 200 may: a query it could not run)."""
    if not isinstance(payload, dict):
        raise BackendError(FailureKind.BAD_RESPONSE, f"not a {kind} answer: {payload!r:.200}")
    errors = payload.get("errors")
    if errors:
        text = errors if isinstance(errors, str) else "; ".join(map(str, errors))
        raise BackendError(FailureKind.QUERY, f"Datadog refused the query: {text:.300}")
    return payload


def _table(payload: Any, expected: int, grouped: bool) -> list[Row]:
    """The number columns of a scalar answer in query order, each by its group (ungrouped: one value);
    BackendError for anything else."""
    payload = checked_answer(payload, "scalar")
    try:
        columns = payload["data"]["attributes"]["columns"]
        groups = [column["values"] for column in columns if column.get("type") == "group"]
        values = [column["values"] for column in columns if column.get("type") == "number"]
    except (KeyError, TypeError, AttributeError) as error:
        raise BackendError(FailureKind.BAD_RESPONSE, f"malformed scalar answer: {error!r}") from None
    if len(values) != expected or any(not isinstance(v, list) for v in values):
        raise BackendError(FailureKind.BAD_RESPONSE, f"expected {expected} number columns")
    if not grouped:
        if groups or any(len(v) > 1 for v in values):
            raise BackendError(FailureKind.BAD_RESPONSE, f"expected {expected} ungrouped number columns")
        return [{UNGROUPED: number_of(v[0]) if v else None} for v in values]
    if len(groups) != 1 or not isinstance(groups[0], list):
        raise BackendError(FailureKind.BAD_RESPONSE, "expected one group column")
    keys = [str(tags[0]) if isinstance(tags, list) and tags else str(tags) for tags in groups[0]]
    if any(len(v) != len(keys) for v in values):
        raise BackendError(FailureKind.BAD_RESPONSE, "number columns and the group column differ in length")
    return [{key: number_of(item) for key, item in zip(keys, column, strict=True)} for column in values]


class DatadogCounts:
    """Event counts from Datadog's scalar API (see the module docstring)."""

    name = "datadog"

    def __init__(
        self,
        url: str,
        api_key: str,
        app_key: str,
        *,
        delay: timedelta = timedelta(0),
        max_queries: int = 20,
        parallel: int = 4,
        timeout: float = 10.0,
        retries: int = 2,
        limits: RateLimits | None = None,
        breaker: CircuitBreaker | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = lambda: random.uniform(0.0, 0.25),
    ) -> None:
        self.url, self._auth = without_credentials(api_url(url))
        """The API's URL without `user:password@` (a proxy's, sent as basic auth): it is named in messages."""
        self.delay = delay
        self.max_queries = max_queries
        self.timeout = timeout
        self.retries = retries
        self.limits = limits if limits is not None else SHARED_LIMITS
        self.breaker = breaker or CircuitBreaker()
        self._session = session or session_for(self.url)
        self._headers = {"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key, "Content-Type": "application/json"}
        self._secrets = secret_values(self._auth, {"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key})
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self.parallel = parallel
        """Requests in flight at once: a fleet's requests wait for Datadog's latency side by side, while
        the shared rate limit still bounds how many are sent per period."""
        self.requests_sent = 0
        self._count_lock = threading.Lock()
        self._limit_name = "query_scalar_public"
        """The scalar endpoint's limit, as Datadog's answers name it."""

    def close(self) -> None:
        """Close the pooled connections (a server closing down; a test's many servers in one process)."""
        self._session.close()

    def window(self, at: datetime, length: timedelta) -> tuple[int, int]:
        """`[from, to)` in ms: ending at `at` minus the delay, rounded down to the rollup."""
        end = math.floor((at - self.delay).timestamp() / ROLLUP.total_seconds()) * int(ROLLUP.total_seconds())
        return (end - int(length.total_seconds())) * 1000, end * 1000

    def counts(self, queries: Sequence[str], at: datetime, length: timedelta) -> list[float | None]:
        """Each query's sum over the window ending at `at` (None: no data); raises BackendError."""
        start, end = self.window(at, length)
        return self.read(queries, start, end).values

    def read(self, queries: Sequence[str], start: int, end: int) -> Counted:
        """Each query's sum over `[start, end)` ms, `max_queries` to a request; raises BackendError.

        Says how long it waited for the rate limit, so a decision made on these numbers can say so.
        """
        return self.read_many([(queries, start, end, False)])[0]

    def read_many(self, asks: Sequence[tuple[Sequence[str], int, int, bool]]) -> list[Counted]:
        """Several `(queries, start, end, grouped)` reads, their requests `parallel` at a time; raises the
        first BackendError. A grouped read's queries all group `by` the same one tag (a request's queries
        must share their grouping)."""
        jobs = [
            (index, list(queries[first : first + self.max_queries]), start, end, grouped)
            for index, (queries, start, end, grouped) in enumerate(asks)
            for first in range(0, len(queries), self.max_queries)
        ]

        def run(job: tuple[int, list[str], int, int, bool]) -> tuple[list[Row], float]:
            _, batch, start, end, grouped = job
            return self._guarded(functools.partial(self._scalar, batch, start, end, grouped))

        answers: list[tuple[list[Row], float]] = []
        if jobs and not self.limits.known(self._limit_name):
            answers.append(run(jobs[0]))  # learn the limit before sending side by side
        rest = jobs[len(answers) :]
        if len(rest) <= 1 or self.parallel <= 1:
            answers += [run(job) for job in rest]
        else:
            with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="sloplane-datadog") as pool:
                answers += pool.map(run, rest)
        found: list[Counted] = [Counted([], 0.0) for _ in asks]
        for (index, *_), (rows, waited) in zip(jobs, answers, strict=True):
            found[index] = Counted(found[index].rows + rows, found[index].waited + waited)
        return found

    def _scalar(self, batch: Sequence[str], start: int, end: int, grouped: bool) -> tuple[list[Row], float]:
        body = {
            "data": {
                "type": "scalar_request",
                "attributes": {
                    "from": start,
                    "to": end,
                    "queries": [
                        {"data_source": "metrics", "name": f"q{i}", "query": query, "aggregator": "sum"}
                        for i, query in enumerate(batch)
                    ],
                },
            }
        }
        with self.scrubbed():  # an answer, even a 200's `errors`, may quote the keys it was sent
            payload, waited = self._post(body)
            return _table(payload, len(batch), grouped), waited

    def _post(self, body: dict[str, Any]) -> tuple[Any, float]:
        """One scalar request (see `post`), keeping the limit's name as Datadog's answer gives it."""
        payload, waited, self._limit_name = self.post(SCALAR_PATH, body, limit=self._limit_name)
        return payload, waited

    def post(
        self, path: str, body: dict[str, Any], *, limit: str, max_wait: float = MAX_WAIT
    ) -> tuple[Any, float, str]:
        """One request to `path` of Datadog's API under the process's shared rate limit named `limit`: the
        answer's payload, the seconds waited for the limit, and the limit's name as the answer gives it (the
        caller passes it with its next request). Typed BackendErrors for everything but a 200; call it inside
        `scrubbed()`, as an answer may quote the keys it was sent.

        Public for the other endpoints sloplane reads with the same keys, session and limits (the rollup's
        timeseries requests): one place speaks Datadog's rate limits and errors."""
        waited = 0.0
        while (wait := self.limits.take(limit, self._clock())) > 0:
            if wait > max_wait:
                raise BackendError(FailureKind.RATE_LIMITED, f"Datadog rate limit: next request in {wait:.1f} s", wait)
            wait += self._jitter()
            self._sleep(wait)
            waited += wait
        name = limit
        self.limits.sent(name)
        try:
            response = send(
                self._session,
                "POST",
                f"{self.url}{path}",
                timeout=self.timeout,
                json=body,
                headers=self._headers,
                auth=self._auth,
            )
            with self._count_lock:
                self.requests_sent += 1
            now = self._clock()
            limit = response.headers.get("X-RateLimit-Name", limit)
            self.limits.record(response.headers, now)
        finally:
            self.limits.answered(name)
        if response.status_code == 429:
            told = retry_after(response.headers)
            seconds = told if told is not None else DEFAULT_RESET
            self.limits.exhausted(limit, now + seconds)
            raise BackendError(FailureKind.RATE_LIMITED, f"Datadog answered 429; reset in {seconds:g} s", seconds)
        if response.status_code in (401, 403):
            message = f"Datadog refused the API or application key (HTTP {response.status_code})"
            raise BackendError(FailureKind.BAD_RESPONSE, message)
        payload = json_of(response, self.url)
        if response.status_code != 200:
            errors = payload.get("errors") if isinstance(payload, dict) else None
            kind = FailureKind.QUERY if response.status_code == 400 else FailureKind.BAD_RESPONSE
            raise BackendError(kind, f"HTTP {response.status_code}: {errors or payload!r:.300}")
        return payload, waited, limit

    def scrubbed(self) -> AbstractContextManager[None]:
        """Keys taken out of any message raised inside (`http.scrubbing`)."""
        return scrubbing(self._secrets)

    def guard(self, ask: Callable[[], T], *, retries: int | None = None, max_wait: float = MAX_WAIT) -> T:
        """`ask` through this transport's circuit breaker, retried as `guarded` retries: an outage after a backoff,
        a rate limit resetting within `max_wait` seconds at once (the next request's own check waits it out)."""

        def wait_before_retry(error: BackendError, attempt: int) -> float | None:
            if error.kind is FailureKind.UNAVAILABLE:
                return 0.2 * (1 << (attempt + 1))
            if error.kind is FailureKind.RATE_LIMITED and (error.retry_after or 0) <= max_wait:
                return 0.0
            return None

        return guarded(
            self.breaker,
            self.url,
            ask,
            retries=self.retries if retries is None else retries,
            wait_before_retry=wait_before_retry,
            sleep=self._sleep,
        )

    def _guarded(self, ask: Callable[[], T]) -> T:
        """Retry what may pass on a second try (an outage, a short rate limit); feed the breaker."""
        return self.guard(ask)

    def healthy(self) -> tuple[bool, str]:
        """Whether the keys are accepted (`GET /api/v1/validate`)."""
        try:
            response = self._session.get(
                f"{self.url}/api/v1/validate", headers=self._headers, timeout=self.timeout, auth=self._auth
            )
        except requests.RequestException as error:
            return False, f"{self.url}: {type(error).__name__}"
        return (True, "ok") if response.status_code == 200 else (False, f"HTTP {response.status_code} from validate")
