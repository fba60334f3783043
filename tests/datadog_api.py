"""A local stand-in for the slice of Datadog's HTTP API that sloplane's evaluator and Argo's provider call.

Why it exists: gates, parity checks and the bench must run against something that answers in
Datadog's exact wire shapes (the ones `datadog_api_client` models) without a Datadog account, and
tests must be able to make it misbehave (rate limits, faults) on demand. It binds only 127.0.0.1.

Endpoints
- ``POST /api/v2/query/scalar``: ``ScalarFormulaQueryRequest`` in, ``ScalarFormulaQueryResponse`` out.
- ``POST /api/v2/query/timeseries``: ``TimeseriesFormulaQueryRequest`` in, ``TimeseriesFormulaQueryResponse`` out.
- ``GET /api/v1/validate``: ``{"valid": true}`` when ``DD-API-KEY`` is accepted.

Data model and bucket semantics (the part parity tests depend on)
- The store maps ``(metric, tags, timestamp)`` to a count. A point added at ``at`` seconds lands in
  the **UNIX-aligned** rollup bucket starting at ``floor(at / rollup) * rollup`` (rollup 60 s by
  default), as Datadog aligns rollup intervals to UNIX time, not to the query's edges.
- A bucket counts in a query window iff its *start* ``b`` satisfies ``from <= b*1000 < to``
  (``from`` inclusive, ``to`` exclusive, both in ms, as the request model documents). So a window
  whose edges are not multiples of the rollup takes whole buckets by their start: a point at 12:00:59
  is in bucket 12:00:00 and is *not* counted by ``from = 12:00:30``.
- ``aggregator: "sum"`` (the only one modelled) sums the counts of those buckets; a series with no
  point in the window contributes nothing, and a query with no data at all answers ``null`` (not 0).
  A point added with count 0 is data: it answers 0.
- Timeseries buckets are ``interval`` ms rounded up to a multiple of the rollup, also UNIX-aligned;
  only rollup buckets inside ``[from, to)`` are summed into them; empty buckets are ``null``. A query's
  ``.rollup(sum, N)`` asks for N-second buckets (rounded up likewise; the wider of it and ``interval``
  wins), aligned to UNIX time as Datadog's rollup intervals are, not to the query's edges. More than
  ``max_points`` (1,500) buckets widen the interval to the smallest multiple of the rollup that fits, as
  Datadog overrides the interval of a query that would return too many points (which wider interval real
  Datadog picks is not documented; a client must not depend on it).

Queries: ``sum:<metric>{<filter>}[ by {k1,k2}][.as_count()][.rollup(sum, N)]`` (``.as_count()`` may also
precede ``by``; ``.rollup()`` only in timeseries requests, only with ``sum``: a scalar request with it answers
400, as this stand-in does not model how a rollup interval cuts a scalar window). The filter is ``*`` or
comma-separated terms, all of which must hold: ``key:value``, ``key:glob*``, and negations ``!key:value`` /
``-key:value``. Anything else answers 400 naming what this stand-in does not model, so a test never silently
measures a query it cannot answer.

Grouping: ``by {k1,k2}`` gives one ``group`` column per key (``values`` = ``[[v], ...]``) before the
``number`` columns; a series lacking a key is grouped under ``"N/A"``. Rows are the groups with data
in the window across all queries of the request, sorted by tag values; a query without that group
answers ``null`` in that row. All queries of one request must share the same ``by`` keys (400
otherwise: Datadog's behaviour for mixed groupings is not documented).

Formulas: ``+ - * /``, parentheses, numbers and query names. With formulas only the formula columns
are returned (Argo evaluates the first number column, so real Datadog must put formulas first or
alone), each named by its formula text; an operand ``null`` or a division by zero gives ``null``.

Rate limits: each endpoint has a named bucket (scalar: ``query_scalar_public``) of ``limit`` requests
per ``period`` seconds, **calendar aligned** (the window is ``[k*period, (k+1)*period)`` in UNIX
time). Every answer that passed auth carries ``X-RateLimit-Limit``, ``-Period``, ``-Remaining``,
``-Reset`` (whole seconds *until* the window ends, rounded up so a client that sleeps it never
arrives early) and ``-Name``; past the limit the answer is 429 ``{"errors": ["Rate limit of traffic
exceeded"]}``. The clock (``now``) is injectable so tests can step through windows.

Order of checks per request: log → armed fault (answered as scripted, not counted, no rate-limit
headers, except ``slow``/``truncated`` which delay or cut an otherwise normal answer) → auth (403
``{"errors": ["Forbidden"]}``, not counted, no rate-limit headers) → rate limit → request validation
(400, counted) → answer. Unknown paths answer 404 after the fault check.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import math
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

ROLLUP_SECONDS = 60
SCALAR = "scalar"
TIMESERIES = "timeseries"
VALIDATE = "validate"
ENDPOINTS = {
    ("POST", "/api/v2/query/scalar"): SCALAR,
    ("POST", "/api/v2/query/timeseries"): TIMESERIES,
    ("GET", "/api/v1/validate"): VALIDATE,
}
NOT_APPLICABLE = "N/A"
REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"dd-api-key", "dd-application-key", "authorization", "cookie"})
RATE_LIMITED_BODY = {"errors": ["Rate limit of traffic exceeded"]}
FORBIDDEN_BODY = {"errors": ["Forbidden"]}

Tags = Mapping[str, str]
GroupKey = tuple[str, ...]


class QueryError(ValueError):
    """A request this stand-in refuses (answered 400 with Datadog's ``{"errors": [...]}`` body)."""


# --------------------------------------------------------------------------------------------------
# Queries


@dataclass(frozen=True)
class TagTerm:
    """One ``key:value`` filter term; the value may be a glob; ``negated`` for ``!key:value``."""

    key: str
    value: str
    negated: bool = False

    def holds(self, tags: Tags) -> bool:
        """Whether a series with `tags` passes this term (a missing key never matches a positive term)."""
        present = self.key in tags and fnmatch.fnmatchcase(tags[self.key], self.value)
        return not present if self.negated else present


@dataclass(frozen=True)
class MetricQuery:
    """A parsed ``sum:metric{filter} by {keys}.as_count()`` query."""

    metric: str
    terms: tuple[TagTerm, ...]
    by: tuple[str, ...]
    rollup: int | None = None
    """Seconds of a ``.rollup(sum, N)``; None without one."""

    def matches(self, metric: str, tags: Tags) -> bool:
        """Whether a stored series belongs to this query."""
        return metric == self.metric and all(term.holds(tags) for term in self.terms)

    def group_of(self, tags: Tags) -> GroupKey:
        """The row a series falls in: its values of the ``by`` keys (``N/A`` where it lacks one)."""
        return tuple(tags.get(key, NOT_APPLICABLE) for key in self.by)


_QUERY = re.compile(
    r"^\s*(?P<space>[a-z0-9_]+):(?P<metric>[A-Za-z][A-Za-z0-9_.]*)\{(?P<filter>[^{}]*)\}"
    r"(?P<count1>\.as_count\(\))?"
    r"(?:\s+by\s+\{(?P<by>[^{}]*)\})?"
    r"(?P<count2>\.as_count\(\))?"
    r"(?:\.rollup\(\s*(?P<method>[a-z]+)\s*,\s*(?P<seconds>\d+)\s*\))?\s*$"
)
_TAG_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]*$")


def parse_query(text: str) -> MetricQuery:
    """Parse the query subset sloplane writes; anything else is a `QueryError` saying what is missing."""
    found = _QUERY.match(text)
    if found is None:
        raise QueryError(f"local Datadog stand-in cannot parse query {text!r}")
    if found["space"] != "sum":
        raise QueryError(f"local Datadog stand-in models only the sum space aggregator, not {found['space']!r}")
    if not (found["count1"] or found["count2"]) or (found["count1"] and found["count2"]):
        raise QueryError(f"local Datadog stand-in models only counts: end the query with one .as_count() ({text!r})")
    rollup = None
    if found["method"] is not None:
        if found["method"] != "sum" or int(found["seconds"]) <= 0:
            raise QueryError(f"local Datadog stand-in models only .rollup(sum, <positive seconds>), not in {text!r}")
        rollup = int(found["seconds"])
    return MetricQuery(found["metric"], _parse_filter(found["filter"]), _parse_by(found["by"]), rollup)


def _parse_filter(text: str) -> tuple[TagTerm, ...]:
    text = text.strip()
    if text == "*":
        return ()
    terms = []
    for raw in text.split(","):
        part = raw.strip()
        negated = part[:1] in {"!", "-"}
        part = part[1:] if negated else part
        key, sep, value = part.partition(":")
        if not sep or not _TAG_KEY.match(key) or not value or any(c in value for c in " ()"):
            raise QueryError(f"local Datadog stand-in models only key:value filter terms, not {raw.strip()!r}")
        terms.append(TagTerm(key, value, negated))
    return tuple(terms)


def _parse_by(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    keys = tuple(key.strip() for key in text.split(","))
    if not all(_TAG_KEY.match(key) for key in keys) or len(set(keys)) != len(keys):
        raise QueryError(f"bad group-by keys {{{text}}}")
    return keys


# --------------------------------------------------------------------------------------------------
# Formulas: a small recursive-descent parser, so a formula never reaches eval().

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*/()]))")
Formula = tuple[Any, ...]  # ("num", x) | ("name", n) | ("neg", f) | (op, left, right)


def parse_formula(text: str, names: Iterable[str]) -> Formula:
    """Parse arithmetic over query names; unknown names and functions are `QueryError`s."""
    known = set(names)
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text.rstrip()):
        found = _TOKEN.match(text, position)
        if found is None or found.end() == position:
            raise QueryError(f"local Datadog stand-in cannot parse formula {text!r}")
        kind = found.lastgroup or ""
        tokens.append((kind, found[kind]))
        position = found.end()
    index = 0

    def peek() -> tuple[str, str] | None:
        return tokens[index] if index < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal index
        if index >= len(tokens):
            raise QueryError(f"formula {text!r} ends early")
        index += 1
        return tokens[index - 1]

    def expression() -> Formula:
        node = term()
        while (tok := peek()) is not None and tok[1] in {"+", "-"}:
            node = (take()[1], node, term())
        return node

    def term() -> Formula:
        node = unary()
        while (tok := peek()) is not None and tok[1] in {"*", "/"}:
            node = (take()[1], node, unary())
        return node

    def unary() -> Formula:
        kind, value = take()
        if value == "-":
            return ("neg", unary())
        if value == "(":
            node = expression()
            if take()[1] != ")":
                raise QueryError(f"formula {text!r}: unbalanced parentheses")
            return node
        if kind == "num":
            return ("num", float(value))
        if kind == "name":
            if (tok := peek()) is not None and tok[1] == "(":
                raise QueryError(f"local Datadog stand-in models no formula functions ({value}() in {text!r})")
            if value not in known:
                raise QueryError(f"formula {text!r} names {value!r}, which no query is called")
            return ("name", value)
        raise QueryError(f"formula {text!r}: unexpected {value!r}")

    node = expression()
    if peek() is not None:
        raise QueryError(f"formula {text!r}: unexpected {peek()[1]!r}")  # type: ignore[index]
    return node


def evaluate_formula(node: Formula, values: Mapping[str, float | None]) -> float | None:
    """The formula's value for one row; ``None`` when an operand is ``None`` or on division by zero."""
    kind = node[0]
    if kind == "num":
        return float(node[1])
    if kind == "name":
        return values.get(node[1])
    if kind == "neg":
        inner = evaluate_formula(node[1], values)
        return None if inner is None else -inner
    left, right = evaluate_formula(node[1], values), evaluate_formula(node[2], values)
    if left is None or right is None:
        return None
    if kind == "+":
        return left + right
    if kind == "-":
        return left - right
    if kind == "*":
        return left * right
    return None if right == 0 else left / right


# --------------------------------------------------------------------------------------------------
# Store


class MetricStore:
    """Counts by ``(metric, tags)`` series and UNIX-aligned rollup bucket; safe across server threads."""

    def __init__(self, rollup: int = ROLLUP_SECONDS) -> None:
        if rollup <= 0:
            raise ValueError("rollup must be positive seconds")
        self.rollup = rollup
        self._series: dict[tuple[str, frozenset[tuple[str, str]]], dict[int, float]] = {}
        self._lock = threading.Lock()

    def bucket_of(self, at: float) -> int:
        """The start (UNIX seconds) of the rollup bucket a point at `at` seconds lands in."""
        return math.floor(at / self.rollup) * self.rollup

    def add(self, metric: str, tags: Tags, at: float, count: float = 1.0) -> None:
        """Add `count` to `metric{tags}` at `at` seconds (summed with whatever its bucket holds)."""
        self.add_series(metric, tags, [(at, count)])

    def add_series(self, metric: str, tags: Tags, points: Iterable[tuple[float, float]]) -> None:
        """Bulk `add` of ``(at seconds, count)`` points for one series (one lock, for big histories)."""
        key = (metric, frozenset(tags.items()))
        with self._lock:
            buckets = self._series.setdefault(key, {})
            for at, count in points:
                start = self.bucket_of(at)
                buckets[start] = buckets.get(start, 0.0) + float(count)

    def clear(self) -> None:
        """Forget every point."""
        with self._lock:
            self._series.clear()

    def buckets(self, query: MetricQuery, start_ms: int, end_ms: int) -> dict[GroupKey, dict[int, float]]:
        """Per group, the rollup buckets (start seconds → summed count) whose start is in ``[start, end)`` ms.

        A group appears only if at least one of its buckets is in the window: that is what makes an
        empty window answer ``null`` rather than 0.
        """
        out: dict[GroupKey, dict[int, float]] = {}
        with self._lock:
            for (metric, tagset), buckets in self._series.items():
                tags = dict(tagset)
                if not query.matches(metric, tags):
                    continue
                inside = {b: c for b, c in buckets.items() if start_ms <= b * 1000 < end_ms}
                if not inside:
                    continue
                row = out.setdefault(query.group_of(tags), {})
                for b, c in inside.items():
                    row[b] = row.get(b, 0.0) + c
        return out

    def window_sum(self, query: MetricQuery, start_ms: int, end_ms: int) -> dict[GroupKey, float]:
        """Per group with data, the sum of its counts over ``[start, end)`` ms (the scalar ``sum``)."""
        return {group: math.fsum(b.values()) for group, b in self.buckets(query, start_ms, end_ms).items()}


# --------------------------------------------------------------------------------------------------
# Rate limits


@dataclass(frozen=True)
class RateLimit:
    """A named Datadog rate-limit bucket: `limit` requests per calendar-aligned `period` seconds."""

    name: str
    limit: int
    period: int


DEFAULT_LIMITS: dict[str, RateLimit] = {
    # The scalar bucket's name is the one Argo's docs give; its real size is not documented, so the
    # default is generous and tests/bench set their own (the figure is 100 per 10 s).
    SCALAR: RateLimit("query_scalar_public", 1000, 10),
    TIMESERIES: RateLimit("query_timeseries_public", 1000, 10),
    VALIDATE: RateLimit("validate_api_key", 1000, 10),
}


class RateLimiter:
    """Counts requests per bucket name within calendar-aligned windows of the injected clock."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def take(self, limit: RateLimit) -> tuple[bool, dict[str, str], float]:
        """Count one request; returns (allowed, the five headers, the UNIX time the window resets)."""
        with self._lock:
            now = self._now()
            start = math.floor(now / limit.period) * limit.period
            seen_start, used = self._windows.get(limit.name, (start, 0))
            if seen_start != start:
                used = 0
            allowed = used < limit.limit
            if allowed:
                used += 1
            self._windows[limit.name] = (start, used)
            end = start + limit.period
            headers = {
                "X-RateLimit-Limit": str(limit.limit),
                "X-RateLimit-Period": str(limit.period),
                "X-RateLimit-Remaining": str(max(0, limit.limit - used) if allowed else 0),
                "X-RateLimit-Reset": str(max(1, math.ceil(end - now))),
                "X-RateLimit-Name": limit.name,
            }
            return allowed, headers, end


# --------------------------------------------------------------------------------------------------
# Faults


@dataclass(frozen=True)
class Fault:
    """A scripted misbehaviour for one endpoint. Build with the class methods; arm with `DatadogAPI.fail`.

    ``passthrough`` faults (slow, truncated, short read) let the request be handled normally (auth,
    rate limit, answer) and then delay or cut the answer; the others replace the answer entirely.
    """

    kind: str
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    passthrough: bool = False
    truncate: bool = False
    cut_connection: bool = False

    @classmethod
    def rate_limited_without_headers(cls) -> Fault:
        """A 429 as a proxy might send it: Datadog's body but none of the X-RateLimit headers."""
        return cls("429-no-headers", 429, json.dumps(RATE_LIMITED_BODY).encode())

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        """A 5xx with an HTML body (what a load balancer answers), so JSON parsing must not be assumed."""
        html = f"<html><head><title>{status}</title></head><body><h1>{status} Service Unavailable</h1></body></html>"
        return cls(f"{status}-html", status, html.encode(), "text/html")

    @classmethod
    def errors_string(cls, message: str = "Query error", status: int = 200, in_data: bool = False) -> Fault:
        """``errors`` as a string: top level as the client's model has it, or under ``data`` where Argo reads it."""
        data: dict[str, Any] = {"type": "scalar_response", "attributes": {"columns": []}}
        body: dict[str, Any] = {"data": data}
        if in_data:
            data["errors"] = message
        else:
            body["errors"] = message
        return cls("errors-string", status, json.dumps(body).encode())

    @classmethod
    def errors_list(cls, messages: Iterable[str] = ("Query error",), status: int = 400) -> Fault:
        """Datadog's general error body ``{"errors": [...]}`` (APIErrorResponse)."""
        return cls("errors-list", status, json.dumps({"errors": list(messages)}).encode())

    @classmethod
    def forbidden(cls) -> Fault:
        """A 403 whatever the keys (a revoked key or a missing ``timeseries_query`` permission)."""
        return cls("403", 403, json.dumps(FORBIDDEN_BODY).encode())

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Wait `seconds` (real time) before answering normally, to exercise client timeouts."""
        return cls("slow", delay=seconds, passthrough=True)

    @classmethod
    def truncated(cls) -> Fault:
        """The normal answer cut in half, with an honest Content-Length: a body that is not JSON."""
        return cls("truncated", passthrough=True, truncate=True)

    @classmethod
    def short_read(cls) -> Fault:
        """The normal answer's Content-Length but only half its bytes, then the connection closes."""
        return cls("short-read", passthrough=True, cut_connection=True)


@dataclass
class _Armed:
    fault: Fault
    remaining: int | None  # None: until cleared


# --------------------------------------------------------------------------------------------------
# Request log


@dataclass
class LoggedRequest:
    """One request as the server saw it; keys redacted. ``status`` is 0 until the answer is decided."""

    seq: int
    at: float
    method: str
    path: str
    endpoint: str | None
    headers: dict[str, str]
    body: Any
    status: int = 0
    limit_name: str | None = None
    reset_at: float | None = None  # for a limiter 429: the UNIX time its window ends
    fault: str | None = None


def _redact(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {key: (REDACTED if key.lower() in SECRET_HEADERS else value) for key, value in headers}


# --------------------------------------------------------------------------------------------------
# Server


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), headers=dict(headers or {}))


class DatadogAPI:
    """The local Datadog API: ``with DatadogAPI() as url:`` serves on ``http://127.0.0.1:<free port>``.

    `store` holds the data (`add`, `add_series`); `api_key`/`app_key`, when given, must match the
    headers exactly (otherwise any non-empty value passes); `limits` maps endpoint (`SCALAR`,
    `TIMESERIES`, `VALIDATE`) to its `RateLimit`; `now` is the clock for rate limits and the log;
    `max_queries` caps queries per request (Datadog's cap is not documented); `max_points` the buckets of a
    timeseries answer (Datadog's 1,500 points per series).
    """

    def __init__(
        self,
        store: MetricStore | None = None,
        *,
        rollup: int = ROLLUP_SECONDS,
        api_key: str | None = None,
        app_key: str | None = None,
        limits: Mapping[str, RateLimit] | None = None,
        now: Callable[[], float] = time.time,
        max_queries: int = 20,
        max_points: int = 1500,
    ) -> None:
        self.store = store if store is not None else MetricStore(rollup)
        self.api_key = api_key
        self.app_key = app_key
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.now = now
        self.max_queries = max_queries
        self.max_points = max_points
        self.limiter = RateLimiter(now)
        self._faults: dict[str, list[_Armed]] = {}
        self._log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- data -------------------------------------------------------------------------------------

    def add(self, metric: str, tags: Tags, at: float, count: float = 1.0) -> None:
        """Shorthand for ``store.add``."""
        self.store.add(metric, tags, at, count)

    def add_series(self, metric: str, tags: Tags, points: Iterable[tuple[float, float]]) -> None:
        """Shorthand for ``store.add_series``."""
        self.store.add_series(metric, tags, points)

    # -- faults -----------------------------------------------------------------------------------

    def fail(self, endpoint: str, fault: Fault, times: int | None = 1) -> None:
        """Answer the next `times` requests to `endpoint` (``"*"``: any) with `fault`; None: until cleared."""
        with self._lock:
            self._faults.setdefault(endpoint, []).append(_Armed(fault, times))

    def clear_faults(self, endpoint: str | None = None) -> None:
        """Disarm the faults of `endpoint`, or all of them."""
        with self._lock:
            if endpoint is None:
                self._faults.clear()
            else:
                self._faults.pop(endpoint, None)

    def _next_fault(self, endpoint: str | None) -> Fault | None:
        with self._lock:
            for key in (endpoint, "*"):
                queue = self._faults.get(key or "") or []
                while queue:
                    armed = queue[0]
                    if armed.remaining is None:
                        return armed.fault
                    if armed.remaining <= 0:
                        queue.pop(0)
                        continue
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        queue.pop(0)
                    return armed.fault
        return None

    # -- log --------------------------------------------------------------------------------------

    def requests(self, endpoint: str | None = None) -> list[LoggedRequest]:
        """Logged requests in arrival order (only those to `endpoint` when given)."""
        with self._lock:
            return [r for r in self._log if endpoint is None or r.endpoint == endpoint]

    def sent_during_backoff(self) -> list[LoggedRequest]:
        """Requests that arrived after a rate-limit 429 and before its window reset, in the same bucket.

        Empty means every client respected ``X-RateLimit-Reset``.
        """
        log = self.requests()
        limited = [r for r in log if r.status == 429 and r.reset_at is not None]
        return [
            r
            for r in log
            for hit in limited
            if r.seq > hit.seq and r.limit_name == hit.limit_name and r.at < (hit.reset_at or 0.0)
        ]

    def clear_log(self) -> None:
        """Forget logged requests."""
        with self._lock:
            self._log.clear()

    def _record(
        self, method: str, path: str, endpoint: str | None, headers: dict[str, str], body: Any
    ) -> LoggedRequest:
        with self._lock:
            entry = LoggedRequest(len(self._log), self.now(), method, path, endpoint, headers, body)
            self._log.append(entry)
            return entry

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free 127.0.0.1 port in daemon threads; returns the base URL."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                api._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

            def log_message(self, *_: object) -> None:
                return None

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # a fleet evaluation fires many queries at once

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True, name="datadog-api"
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # -- handling ---------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        endpoint = ENDPOINTS.get((handler.command, path))
        raw = _read_body(handler)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        entry = self._record(handler.command, handler.path, endpoint, _redact(handler.headers.items()), body)
        fault = self._next_fault(endpoint)
        if fault is not None:
            entry.fault = fault.kind
        if fault is not None and not fault.passthrough:
            answer = _Answer(fault.status, fault.body, fault.content_type)
        else:
            answer = self._answer(entry, endpoint, handler.headers, body)
        entry.status = answer.status
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        _send(handler, answer, fault)

    def _answer(self, entry: LoggedRequest, endpoint: str | None, headers: Any, body: Any) -> _Answer:
        if endpoint is None:
            return _json(404, {"errors": ["Not found"]})
        if not self._authorized(endpoint, headers):
            return _json(403, FORBIDDEN_BODY)
        limit = self.limits[endpoint]
        allowed, limit_headers, reset_at = self.limiter.take(limit)
        entry.limit_name = limit.name
        if not allowed:
            entry.reset_at = reset_at
            return _json(429, RATE_LIMITED_BODY, limit_headers)
        try:
            if endpoint == VALIDATE:
                payload: dict[str, Any] = {"valid": True}
            elif endpoint == SCALAR:
                payload = self._scalar(body)
            else:
                payload = self._timeseries(body)
        except QueryError as error:
            return _json(400, {"errors": [str(error)]}, limit_headers)
        return _json(200, payload, limit_headers)

    def _authorized(self, endpoint: str, headers: Any) -> bool:
        api_key = headers.get("DD-API-KEY") or ""
        app_key = headers.get("DD-APPLICATION-KEY") or ""
        api_ok = bool(api_key) and (self.api_key is None or api_key == self.api_key)
        app_ok = bool(app_key) and (self.app_key is None or app_key == self.app_key)
        return api_ok if endpoint == VALIDATE else api_ok and app_ok

    def _scalar(self, body: Any) -> dict[str, Any]:
        attributes = _attributes(body, "scalar_request")
        start, end = _window(attributes)
        queries = self._queries(attributes, need_aggregator=True)
        if any(query.rollup is not None for query in queries.values()):
            raise QueryError("local Datadog stand-in does not model .rollup() in scalar queries")
        results = {name: self.store.window_sum(query, start, end) for name, query in queries.items()}
        by = _shared_by(queries)
        rows = sorted({group for values in results.values() for group in values}) if by else [()]
        columns: list[dict[str, Any]] = [
            {"name": key, "type": "group", "values": [[row[i]] for row in rows]} for i, key in enumerate(by)
        ]
        formulas = _formulas(attributes, queries)
        if formulas:
            for text, formula in formulas:
                values = [evaluate_formula(formula, {n: results[n].get(row) for n in queries}) for row in rows]
                columns.append(_number_column(text, values))
        else:
            for name in queries:
                columns.append(_number_column(name, [results[name].get(row) for row in rows]))
        return {"data": {"type": "scalar_response", "attributes": {"columns": columns}}}

    def _timeseries(self, body: Any) -> dict[str, Any]:
        attributes = _attributes(body, "timeseries_request")
        start, end = _window(attributes)
        rollup = self.store.rollup
        interval_ms = attributes.get("interval", rollup * 1000)
        if not isinstance(interval_ms, int) or isinstance(interval_ms, bool) or interval_ms <= 0:
            raise QueryError("interval must be a positive integer of milliseconds")
        queries = self._queries(attributes, need_aggregator=False)
        asked = {query.rollup for query in queries.values() if query.rollup is not None}
        if len(asked) > 1:
            raise QueryError("local Datadog stand-in needs every .rollup() of one request to ask the same interval")
        width = max(1, math.ceil(interval_ms / 1000 / rollup), math.ceil(max(asked, default=0) / rollup)) * rollup
        first = math.ceil(start / (rollup * 1000)) * rollup  # first rollup bucket starting at or after from
        last = math.ceil(end / (rollup * 1000)) * rollup - rollup  # last rollup bucket starting before to
        if first <= last and (last - math.floor(first / width) * width) // width + 1 > self.max_points:
            width = math.ceil((last - first + rollup) / self.max_points / rollup) * rollup  # Datadog widens
            while (last - math.floor(first / width) * width) // width + 1 > self.max_points:
                width += rollup
        times = list(range(math.floor(first / width) * width, last + 1, width)) if first <= last else []
        per_query: dict[str, dict[GroupKey, dict[int, float]]] = {}
        for name, query in queries.items():
            grouped: dict[GroupKey, dict[int, float]] = {}
            for group, buckets in self.store.buckets(query, start, end).items():
                slots = grouped.setdefault(group, {})
                for b, count in buckets.items():
                    slot = math.floor(b / width) * width
                    slots[slot] = slots.get(slot, 0.0) + count
            per_query[name] = grouped
        by = _shared_by(queries)
        rows = sorted({g for grouped in per_query.values() for g in grouped}) if by else [()]
        series: list[dict[str, Any]] = []
        values: list[list[float | None]] = []
        formulas = _formulas(attributes, queries)
        outputs = [text for text, _ in formulas] if formulas else list(queries)
        for index, output in enumerate(outputs):
            for row in rows:
                if formulas:
                    formula = formulas[index][1]
                    line = [
                        evaluate_formula(formula, {n: per_query[n].get(row, {}).get(t) for n in queries}) for t in times
                    ]
                else:
                    line = [per_query[output].get(row, {}).get(t) for t in times]
                tags = [f"{key}:{value}" for key, value in zip(by, row, strict=True)]
                series.append({"group_tags": tags, "query_index": index, "unit": None})
                values.append(line)
        attrs = {"series": series, "times": [t * 1000 for t in times], "values": values}
        return {"data": {"type": "timeseries_response", "attributes": attrs}}

    def _queries(self, attributes: dict[str, Any], need_aggregator: bool) -> dict[str, MetricQuery]:
        raw = attributes.get("queries")
        if not isinstance(raw, list) or not raw:
            raise QueryError("attributes.queries must be a non-empty list")
        if len(raw) > self.max_queries:
            raise QueryError(f"too many queries in one request ({len(raw)} > {self.max_queries})")
        out: dict[str, MetricQuery] = {}
        for index, item in enumerate(raw):
            if not isinstance(item, dict) or item.get("data_source") != "metrics":
                raise QueryError(f"queries[{index}]: local Datadog stand-in models only data_source 'metrics'")
            if not isinstance(item.get("query"), str):
                raise QueryError(f"queries[{index}].query must be a string")
            if need_aggregator and item.get("aggregator") != "sum":
                raise QueryError(f"queries[{index}]: local Datadog stand-in models only aggregator 'sum'")
            name = item.get("name", f"query{index + 1}")
            if not isinstance(name, str) or not name or name in out:
                raise QueryError(f"queries[{index}].name must be a unique non-empty string")
            out[name] = parse_query(item["query"])
        return out


def _attributes(body: Any, kind: str) -> dict[str, Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("type") != kind or not isinstance(data.get("attributes"), dict):
        raise QueryError(f'body must be {{"data": {{"type": "{kind}", "attributes": {{...}}}}}}')
    attributes: dict[str, Any] = data["attributes"]
    return attributes


def _window(attributes: dict[str, Any]) -> tuple[int, int]:
    start, end = attributes.get("from"), attributes.get("to")
    for name, value in (("from", start), ("to", end)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise QueryError(f"attributes.{name} must be an integer of milliseconds since the epoch")
    assert isinstance(start, int) and isinstance(end, int)
    if start >= end:
        raise QueryError("attributes.from must be before attributes.to")
    return start, end


def _shared_by(queries: Mapping[str, MetricQuery]) -> tuple[str, ...]:
    groupings = {query.by for query in queries.values()}
    if len(groupings) > 1:
        raise QueryError("local Datadog stand-in needs every query of one request to share its `by` keys")
    return next(iter(groupings))


def _formulas(attributes: dict[str, Any], queries: Mapping[str, MetricQuery]) -> list[tuple[str, Formula]]:
    raw = attributes.get("formulas") or []  # Argo sends [] when it has no formula
    if not isinstance(raw, list):
        raise QueryError("attributes.formulas must be a list")
    out = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("formula"), str):
            raise QueryError(f"formulas[{index}] must be an object with a string formula")
        out.append((item["formula"], parse_formula(item["formula"], queries)))
    return out


def _number_column(name: str, values: list[float | None]) -> dict[str, Any]:
    return {"name": name, "type": "number", "values": values, "meta": {"unit": None}}


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    encoding = (handler.headers.get("Content-Encoding") or "").lower()
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    return raw


def _send(handler: BaseHTTPRequestHandler, answer: _Answer, fault: Fault | None) -> None:
    body = answer.body
    length = len(body)
    if fault is not None and fault.truncate:
        body = body[: len(body) // 2]
        length = len(body)
    elif fault is not None and fault.cut_connection:
        body = body[: len(body) // 2]
    try:
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        for key, value in answer.headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(length))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        return  # the client gave up first (a timeout under test): nothing left to answer
    handler.close_connection = True
