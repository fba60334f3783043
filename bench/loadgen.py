"""An open-loop HTTP load generator for the evaluator's gate, run in a process of its own.

Why open loop: a closed-loop client (N threads, each sending its next request when the last one is
answered) slows down with the server it measures. When the server stalls, the clients stop sending,
the requests that would have queued during the stall are never made, and the stall shows up as a
lower rate with a few slow requests instead of as many slow ones (coordinated omission). Here the
send times are fixed in advance from the offered rate (Poisson or constant inter-arrival times) and
every latency is measured from the request's *scheduled* send time to the last byte of its answer,
so time spent waiting in the client for a free connection, or for the event loop, counts too. How
late requests actually left (`send_lag`) is reported apart, so that an overloaded generator is seen
and not mistaken for a slow server.

Why a process of its own: the server's CPU per decision is read from /proc for the server process;
a client in the bench's process would be cheap to account for but would compete with it for the
GIL and the same core. The bench starts `python -m bench.loadgen` with the plan as JSON on standard
input (the token travels there, never on a command line) and reads the result as JSON from standard
output; with `Plan.cpu` the generator pins itself to that CPU before it starts.

Two transports: `raw` (asyncio streams, a request line and headers written by hand, one request at
a time per keep-alive connection, connections reused last in first out: the least client CPU per
request) and `httpx` (`AsyncClient` with a connection pool: the ordinary client, to measure what it
costs next to `raw`; on the two-core development machine about 3-5 ms of CPU per request against
0.15-0.35 ms, too much to offer even 100/s reliably from one core). Both run on uvloop.
Responses are checked for status 200 and their `decision` read; anything else is an error by kind.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvloop

ARRIVALS = ("poisson", "constant")
CLIENTS = ("raw", "httpx")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plan:
    """What to send: where, how fast, for how long, with which bodies and how many connections."""

    url: str
    """Base URL of the server, e.g. http://127.0.0.1:8080."""
    path: str
    token: str
    bodies: list[str]
    """JSON request bodies, taken in order and cycled (a cold run gives one per request)."""
    rate: float
    """Offered requests per second."""
    seconds: float
    """Length of the schedule; requests are offered for this long whatever the answers do."""
    connections: int = 64
    arrivals: str = "poisson"
    client: str = "raw"
    seed: int = 1
    drain: float = 10.0
    """Seconds to wait after the last scheduled send for answers still outstanding; those are timeouts."""
    cpu: int | None = None
    """The CPU the generator pins itself to (None: wherever the scheduler puts it)."""


@dataclass
class Result:
    """One run: per scheduled request its latency (from the scheduled send time; inf when unanswered)."""

    plan_rate: float
    plan_seconds: float
    client: str
    connections: int
    latencies: list[float] = field(default_factory=list)
    """Seconds from the scheduled send time to the answer's last byte; `inf` for no answer in time."""
    service: list[float] = field(default_factory=list)
    """Seconds from the actual send to the answer (what a closed-loop client would have measured)."""
    send_lag: list[float] = field(default_factory=list)
    """Seconds from the scheduled to the actual send: waiting for a connection or for the event loop."""
    outcomes: dict[str, int] = field(default_factory=dict)
    """`decision:pass`, `decision:error`, `http:503`, `timeout`, `connection:<Error>` ... and their counts."""
    last_answer: float = 0.0
    """Seconds from the schedule's start to the last answer."""
    client_cpu: float = 0.0
    """CPU seconds (user + system) the generator process used during the run."""
    cpus: list[int] = field(default_factory=list)
    """The CPUs the generator ran on."""

    @property
    def answered(self) -> int:
        """Requests answered (any status)."""
        return sum(1 for value in self.latencies if math.isfinite(value))

    @property
    def achieved_rate(self) -> float:
        """Answered requests per second, from the schedule's start to the last answer."""
        return self.answered / self.last_answer if self.last_answer > 0 else float("nan")

    def errors(self) -> int:
        """Requests that did not come back as a 200 with a decision other than `error`."""
        fine = {key for key in self.outcomes if key.startswith("decision:") and key != "decision:error"}
        return sum(count for key, count in self.outcomes.items() if key not in fine)


def schedule(rate: float, seconds: float, arrivals: str, seed: int) -> list[float]:
    """Send offsets in seconds from the start: exponential gaps (Poisson) or equal ones (constant)."""
    if arrivals not in ARRIVALS:
        raise ValueError(f"arrivals must be one of {ARRIVALS}, not {arrivals!r}")
    rng = random.Random(seed)
    offsets: list[float] = []
    moment = 0.0
    while True:
        moment += rng.expovariate(rate) if arrivals == "poisson" else 1.0 / rate
        if moment >= seconds:
            return offsets
        offsets.append(moment)


def _decision(status: int, body: bytes) -> str:
    """The outcome key of one answer."""
    if status != 200:
        return f"http:{status}"
    try:
        return f"decision:{json.loads(body).get('decision')}"
    except ValueError:
        return "http:200-not-json"


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect (again)."""
        self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        """Drop the connection, if any."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, read one response (Content-Length or chunked); reconnect first if closed."""
        if self.writer is None or self.writer.is_closing() or self.reader is None or self.reader.at_eof():
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {name.strip().lower(): value.strip() for name, _, value in (x.partition(":") for x in lines[1:] if x)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readuntil(b"\r\n")
            body = b"".join(parts)
        else:
            body = await self.reader.read()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body


async def _run_raw(plan: Plan, offsets: Sequence[float], result: Result) -> None:
    """Every scheduled request on a pool of `RawConnection`s, opened before the clock starts."""
    parts = urlsplit(plan.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [
        (
            f"POST {plan.path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {plan.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n"
        ).encode()
        + body.encode()
        for body in plan.bodies
    ]
    # last in, first out: at low rates a few connections carry the load and stay open (the server closes
    # a connection idle for 5 s), as in a client's pool; a closed one is reopened within the request's time
    idle: asyncio.LifoQueue[RawConnection] = asyncio.LifoQueue()
    for _ in range(plan.connections):
        connection = RawConnection(host, port)
        await connection.open()
        idle.put_nowait(connection)

    async def one(index: int, due: float) -> None:
        connection = await idle.get()
        sent = time.perf_counter()
        try:
            status, body = await connection.exchange(requests[index % len(requests)])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as error:
            connection.close()
            _record(result, index, due=due, sent=sent, done=None, outcome=f"connection:{type(error).__name__}")
            return
        finally:
            idle.put_nowait(connection)
        done = time.perf_counter()
        _record(result, index, due=due, sent=sent, done=done, outcome=_decision(status, body))

    await _drive(plan, offsets, result, one)
    while not idle.empty():
        idle.get_nowait().close()


async def _run_httpx(plan: Plan, offsets: Sequence[float], result: Result) -> None:
    """Every scheduled request through one `httpx.AsyncClient` whose pool holds `connections`."""
    limits = httpx.Limits(max_connections=plan.connections, max_keepalive_connections=plan.connections)
    headers = {"Authorization": f"Bearer {plan.token}", "Content-Type": "application/json"}
    bodies = [body.encode() for body in plan.bodies]
    async with httpx.AsyncClient(base_url=plan.url, limits=limits, headers=headers, timeout=None) as client:
        # the pool's connections are open before the clock starts, as `raw`'s are
        await asyncio.gather(*(client.get("/healthz") for _ in range(plan.connections)))

        async def one(index: int, due: float) -> None:
            sent = time.perf_counter()
            try:
                response = await client.post(plan.path, content=bodies[index % len(bodies)])
            except httpx.HTTPError as error:
                _record(result, index, due=due, sent=sent, done=None, outcome=f"connection:{type(error).__name__}")
                return
            done, outcome = time.perf_counter(), _decision(response.status_code, response.content)
            _record(result, index, due=due, sent=sent, done=done, outcome=outcome)

        await _drive(plan, offsets, result, one)


def _record(result: Result, index: int, *, due: float, sent: float, done: float | None, outcome: str) -> None:
    """One request's times (perf_counter seconds; `done` None: no answer) and outcome."""
    result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
    result.send_lag[index] = sent - due
    if done is not None:
        result.latencies[index] = done - due
        result.service[index] = done - sent
        result.last_answer = max(result.last_answer, done)


Request = Callable[[int, float], Coroutine[Any, Any, None]]
"""Sends request `index`, scheduled at perf_counter time `due`, and records it."""


async def _drive(plan: Plan, offsets: Sequence[float], result: Result, one: Request) -> None:
    """Start one task per scheduled request at its time, never waiting for answers; then drain."""
    result.latencies = [math.inf] * len(offsets)
    result.service = [math.inf] * len(offsets)
    result.send_lag = [math.nan] * len(offsets)
    started_cpu = _cpu()
    start = time.perf_counter() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for index, offset in enumerate(offsets):
        due = start + offset
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    if tasks:
        deadline = start + plan.seconds + plan.drain
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()))
        for task in pending:
            task.cancel()
        if pending:
            result.outcomes["timeout"] = len(pending)
            await asyncio.wait(pending)
    result.client_cpu = _cpu() - started_cpu
    result.last_answer = max(0.0, result.last_answer - start)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(plan: Plan) -> Result:
    """The plan, in this process (pinned to `plan.cpu` when given), on uvloop."""
    if plan.client not in CLIENTS:
        raise ValueError(f"client must be one of {CLIENTS}, not {plan.client!r}")
    if plan.cpu is not None:
        os.sched_setaffinity(0, {plan.cpu})
    offsets = schedule(plan.rate, plan.seconds, plan.arrivals, plan.seed)
    result = Result(plan.rate, plan.seconds, plan.client, plan.connections, cpus=sorted(os.sched_getaffinity(0)))
    transport = _run_raw if plan.client == "raw" else _run_httpx
    uvloop.run(transport(plan, offsets, result))
    return result


SERIES = ("latencies", "service", "send_lag")
"""The per-request lists; JSON has no inf or NaN, so they travel as null (no answer / never sent)."""


def spawn(plan: Plan) -> Result:
    """Run the plan in a new `python -m bench.loadgen` process and return its result."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(asdict(plan)),
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the load generator exited {completed.returncode}:\n{completed.stderr[-2000:]}")
    data = json.loads(completed.stdout)
    for key in SERIES:
        missing = math.nan if key == "send_lag" else math.inf
        data[key] = [missing if value is None else value for value in data[key]]
    return Result(**data)


def main() -> None:
    """A plan as JSON on standard input, the result as JSON on standard output."""
    plan = Plan(**json.load(sys.stdin))
    data = asdict(run(plan))
    for key in SERIES:
        data[key] = [value if math.isfinite(value) else None for value in data[key]]
    json.dump(data, sys.stdout)


if __name__ == "__main__":
    main()
