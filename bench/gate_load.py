"""The gate over HTTP at fixed offered rates (open loop): latency, errors and server CPU per decision.

Prints figures, asserts nothing about speed. `bench.evaluator` measures the gate with 32 closed-loop
clients, which slow down with the server and so hide its stalls (coordinated omission: see
`bench.loadgen`). Here `bench.loadgen`, in a process of its own, offers requests at a fixed rate
(Poisson arrivals by default) whatever the answers do, and measures each from its scheduled send time.

Set-up, as `bench.evaluator` does it (its helpers are reused): SLOS http SLOs (600 requests a minute
each, a constant error ratio per service, one day of history) in one `PrometheusSandbox`; `sloplane
serve` in a subprocess with a fresh gate token and decision log; requests name an SLO and an explicit
instant (`at`), so that the instant, and therefore what is cached, is the bench's choice:

- warm: random SLOs of a set of WARM_SLOS, all at the evaluation instant, each of them gated once
  (primed) just before every run, so that every measurement comes from the evaluator's cache (it keeps
  answers for the fleet's interval, 60 s; the runs are shorter). This is the steady state of a fleet's
  pipelines polling the gate: the server's own cost of a decision — HTTP, auth, deciding, recording;
- cold: each request a random SLO at an instant no request named before (seconds apart, within the
  history), as `bench.evaluator`'s cold run: nothing cached, each gate reads Prometheus (two queries).
  Prometheus runs on the same machine, so its CPU is shown apart.

Per run: offered and achieved rate, answered, errors by kind, p50/p90/p99/max latency from the
scheduled send (unanswered requests count as infinitely late: a p99 of `timeout` means more than 1%
got no answer within the schedule plus DRAIN seconds), the generator's own send lag (how late it
sent: if that is large the generator, not the server, is the bottleneck), and CPU per decision: of
the `serve` process (its /proc/<pid>/stat utime + stime across the run, all threads, divided by
decisions answered; split into its main thread, uvicorn's event loop where HTTP, authentication,
middleware and routing run, and the rest, mostly the thread pool where the gate is decided and
recorded), of Prometheus, of the generator (from inside it). The machine is shared, so each
run also prints the 1-minute load average before it and the machine's busy cores during it (/proc/stat)
with the part that was none of ours ("others").

The generator: `raw` asyncio streams on uvloop, 64 keep-alive connections, pinned to the last CPU
(`serve` only with `--pin-server`: on a shared machine the scheduler had better move it). httpx was
measured beside it (`--compare-clients`, on by default, 100/s warm for 5 s each): its AsyncClient
cost 3-5 ms of generator CPU per request against 0.15-0.35 ms for `raw` on the two-core development
machine, so it could barely offer 100/s from one core, and its latencies were its own queue's.
Cold rates are lower than warm ones (COLD_RATES): a cold gate costs Prometheus, on the same cores,
about twice what it costs the server.

Stores: `--db` (repeatable) names each decision log to run against: `sqlite` (a fresh file, the
default), a SQLite file path, or a PostgreSQL URL (`postgresql://user@host/db`). Before a SQLite store
the bench times commits on its disk as the log makes them (WAL, synchronous FULL: an fsync each): the
log appends one decision per transaction under one lock, so that figure bounds decisions per second.
PostgreSQL is run only when `sloplane serve --help` mentions PostgreSQL for `--db`; otherwise it is
listed as not measured.

Goals (issue 16), printed beside the figures: p99 < 25 ms at 300/s warm; server CPU per warm
decision <= 0.5 ms; cold gate p99 < 50 ms. `--profile SECONDS` adds a py-spy profile of the server
(`bench.server_profile`: Python CPU, then busy threads) during two extra warm runs at 300/s, not
among the figures (sampling slows the server), given py-spy on PATH or `--py-spy PATH`.

Size: over 500 lines because a figure here is only as good as the accounting beside it (what was
warm, what the machine and the generator did meanwhile, what the disk allows); they are read together.
The generator (`bench.loadgen`) and the profile (`bench.server_profile`) live apart.

Needs prometheus and promtool (tools/install-system-packages.sh). Run: `.venv/bin/python -m
bench.gate_load` (two to three minutes; `--help` for rates, run length, connections, client, stores).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml

from bench.evaluator import (
    EVENTS_PER_STEP,
    GATE_PATH,
    HISTORY,
    LEAD,
    SLOPLANE,
    error_ratio,
    percentile,
    process_cpu,
    say,
    scrape,
    service,
    slo_name,
    write_declarations,
)
from bench.loadgen import ARRIVALS, CLIENTS, Plan, Result, spawn
from bench.server_profile import profile_summary
from sloplane.evaluator.http.auth import new_token
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, aligned_now, free_port, http_traffic

SLOS = 1000
WARM_SLOS = 100
RATES = (100, 300, 600)
COLD_RATES = (25, 50, 100)
"""Cold gates are bounded by Prometheus on the same two cores; 600/s cold would only measure a backlog."""
SECONDS = 10.0
DRAIN = 10.0
CONNECTIONS = 64
GOAL_WARM_RATE, GOAL_WARM_P99, GOAL_WARM_CPU, GOAL_COLD_P99 = 300, 0.025, 0.0005, 0.050
CLIENT_COMPARISON = (100, 5.0)
"""Rate and seconds of the warm runs that compare the generator's two transports."""


@dataclass(frozen=True)
class Served:
    """A running `sloplane serve`."""

    url: str
    token: str
    pid: int
    store: str


@dataclass
class Run:
    """One generator run and what the machine did meanwhile."""

    kind: str
    result: Result
    wall: float
    server_cpu: float
    server_system: float
    """The part of `server_cpu` spent in the kernel (sockets, SQLite's writes and fsyncs)."""
    server_loop: float
    """The part of `server_cpu` spent by the main thread: uvicorn's event loop, where a request is parsed,
    authenticated, routed through the middleware and answered; the gate itself runs in the thread pool."""
    prometheus_cpu: float
    generator_cpu: float
    """The generator process's whole CPU, start-up included (from the parent's children usage)."""
    machine_busy: float
    """Core-seconds the whole machine was busy during the run."""
    load: float
    counters: dict[str, float] = field(default_factory=dict)
    primed: float = math.nan
    """Seconds the priming of a warm run took (cache entries live 60 s from their priming)."""

    @property
    def decisions(self) -> int:
        """Answers that carry a decision (status 200)."""
        return sum(count for key, count in self.result.outcomes.items() if key.startswith("decision:"))

    def per_decision(self, seconds: float) -> float:
        """Milliseconds per answered decision."""
        return seconds / self.decisions * 1000 if self.decisions else float("nan")


def process_times(pid: int, thread: int | None = None) -> tuple[float, float]:
    """(user, system) CPU seconds so far of a process (all its threads) or of one of its threads (Linux /proc)."""
    where = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(where).read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def commit_cost(folder: Path, warm_up: int = 1000, commits: int = 500) -> list[float]:
    """Wall seconds of each of `commits` SQLite commits in `folder`, made as the decision log makes them.

    WAL, synchronous FULL: an fsync per commit. The log appends one decision per transaction under one
    lock, so a commit is also the least time between two appends: the disk bounds the decisions a second,
    whatever the CPU. The first `warm_up` commits are not timed: until the WAL reaches its checkpoint
    (1,000 pages) every fsync also grows the file, which costs several times more than steady state.
    On a shared machine the figure moves with everyone else's writes; it is measured just before the runs.
    """
    path = folder / "commit-probe.db"
    connection = sqlite3.connect(path, isolation_level=None)
    times: list[float] = []
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, record TEXT)")
        for index in range(warm_up + commits):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO probe (record) VALUES (?)", ("x" * 2000,))
            connection.execute("COMMIT")
            if index >= warm_up:
                times.append(time.perf_counter() - started)
        return times
    finally:
        connection.close()
        for leftover in folder.glob("commit-probe.db*"):
            leftover.unlink()


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs so far, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (the generator runs as one)."""
    usage = os.times()
    return usage.children_user + usage.children_system


def settle(pid: int, quiet: float = 0.1, limit: float = 30.0) -> None:
    """Wait until the server uses under `quiet` of a core (requests abandoned by a run still finish)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = process_cpu(pid)
        time.sleep(0.5)
        if process_cpu(pid) - before < quiet * 0.5:
            return


def measure(kind: str, served: Served, plan: Plan, prometheus_pid: int | None) -> Run:
    """Run one plan in the generator process, with the server's and the machine's CPU around it."""
    before = scrape(served.url)
    load = os.getloadavg()[0]
    prometheus = process_cpu(prometheus_pid) if prometheus_pid else float("nan")
    (user, system), generator, (busy, total) = process_times(served.pid), children_cpu(), machine_jiffies()
    loop = sum(process_times(served.pid, served.pid))
    started = time.perf_counter()
    result = spawn(plan)
    wall = time.perf_counter() - started
    busy_after, total_after = machine_jiffies()
    user_after, system_after = process_times(served.pid)
    loop = sum(process_times(served.pid, served.pid)) - loop
    user, system, generator = user_after - user, system_after - system, children_cpu() - generator
    prometheus = (process_cpu(prometheus_pid) if prometheus_pid else float("nan")) - prometheus
    cores = os.cpu_count() or 1
    machine = (busy_after - busy) / max(total_after - total, 1) * cores * wall
    after = scrape(served.url)
    counters = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    return Run(kind, result, wall, user + system, system, loop, prometheus, generator, machine, load, counters)


def prime(served: Served, names: Sequence[str], at: datetime) -> float:
    """Gate each SLO once at `at`, one after another, so that the warm run finds everything cached; seconds."""
    started = time.perf_counter()
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {served.token}"
        for name in names:
            session.post(f"{served.url}{GATE_PATH}", json={"slo": name, "at": at.isoformat()}, timeout=60)
    return time.perf_counter() - started


def gate_body(slo: str, at: datetime) -> str:
    """A gate request's JSON body."""
    return f'{{"slo": "{slo}", "at": "{at.isoformat()}"}}'


# --- stores and the server --------------------------------------------------------------------------


def is_postgres(db: str) -> bool:
    """A PostgreSQL URL rather than a SQLite file."""
    return db.startswith(("postgresql://", "postgres://"))


def shown(db: str) -> str:
    """The store for printing: a URL's password is never shown."""
    if not is_postgres(db):
        return db
    parts = urlsplit(db)
    if parts.password is None:
        return db
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def serve_supports_postgres() -> bool:
    """Whether this checkout's `sloplane serve --db` takes a PostgreSQL URL (its help says so)."""
    completed = subprocess.run([str(SLOPLANE), "serve", "--help"], capture_output=True, text=True, check=False)
    return "postgres" in completed.stdout.lower()


@contextmanager
def serving(folder: Path, prometheus: str, db: str, workdir: Path, cpus: set[int] | None) -> Iterator[Served]:
    """`sloplane serve` on the fleet with a fresh gate token, on `db`, its threads pinned to `cpus` if given."""
    token, entry = new_token("bench", ["gate"])
    tokens = workdir / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"tokens": [entry.to_dict()]}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "serve.log"
    command = [str(SLOPLANE), "serve", str(folder), "--prometheus", prometheus, "--tokens", str(tokens)]
    command += ["--rollup-interval", "off"]  # the gate's figures alone, without the hourly rollup's reads
    command += ["--port", str(port), "--db", db]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sloplane serve exited {process.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sloplane serve did not answer within 120 s:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        if cpus:
            for thread in os.listdir(f"/proc/{process.pid}/task"):  # threads started later inherit it
                os.sched_setaffinity(int(thread), cpus)
        yield Served(url, token, process.pid, shown(db))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- printing --------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    """Milliseconds, or `timeout` for a request that got no answer."""
    return f"{seconds * 1000:7.1f}" if seconds != float("inf") else "timeout"


def print_run(run: Run) -> None:
    """Three lines: rate and latency; CPU per decision; cache and the machine."""
    result = run.result
    lat = result.latencies
    lags = [value for value in result.send_lag if not math.isnan(value)]  # NaN: never sent
    errors = {key: count for key, count in result.outcomes.items() if not key.startswith("decision:")}
    errors.update({key: count for key, count in result.outcomes.items() if key == "decision:error"})
    hits = run.counters.get('sloplane_cache_requests_total{result="hit"}', 0.0)
    misses = run.counters.get('sloplane_cache_requests_total{result="miss"}', 0.0)
    queries = run.counters.get("sloplane_backend_request_seconds_count", 0.0)
    others = run.machine_busy - run.server_cpu - run.generator_cpu - max(run.prometheus_cpu, 0.0)
    print(
        f"  {run.kind:4} {result.plan_rate:5.0f}/s offered {result.achieved_rate:6.1f}/s achieved "
        f"{result.answered:5} answered  p50 {ms(percentile(lat, 0.5))}  p90 {ms(percentile(lat, 0.9))}  "
        f"p99 {ms(percentile(lat, 0.99))}  max {ms(max(lat, default=float('nan')))} ms  "
        f"errors {sum(errors.values())}{' ' + str(errors) if errors else ''}"
    )
    print(
        f"        CPU per decision: server {run.per_decision(run.server_cpu):.2f} ms "
        f"(event loop thread {run.per_decision(run.server_loop):.2f}, thread pool and others "
        f"{run.per_decision(run.server_cpu - run.server_loop):.2f}; system {run.per_decision(run.server_system):.2f}), "
        f"prometheus "
        f"{run.per_decision(run.prometheus_cpu):.2f} ms, generator {run.per_decision(result.client_cpu):.2f} ms; "
        f"the generator's send lag p99 {ms(percentile(lags, 0.99)).strip()} ms"
    )
    primed = f"; primed in {run.primed:.1f} s" if not math.isnan(run.primed) else ""
    print(
        f"        backend queries per decision {queries / max(run.decisions, 1):.2f}, cache "
        f"{hits / max(hits + misses, 1):.0%} hits{primed}; load {run.load:.2f} before, machine busy "
        f"{run.machine_busy / run.wall:.2f} cores during (others: {max(others, 0.0) / run.wall:.2f})"
    )


def print_goals(store: str, warm: list[Run], cold: list[Run]) -> None:
    """The issue's goals beside the figures."""
    print(f"  goals ({store}; figures, not assertions):")
    at_goal = [run for run in warm if run.result.plan_rate == GOAL_WARM_RATE]
    for run in at_goal:
        p99 = percentile(run.result.latencies, 0.99)
        verdict = "met" if p99 < GOAL_WARM_P99 else "NOT met"
        print(f"    p99 < {GOAL_WARM_P99 * 1000:.0f} ms at {GOAL_WARM_RATE}/s warm: {ms(p99).strip()} ms -> {verdict}")
    if not at_goal:
        print(f"    p99 < {GOAL_WARM_P99 * 1000:.0f} ms at {GOAL_WARM_RATE}/s warm: not run (give --rates with 300)")
    cpu = ", ".join(f"{run.per_decision(run.server_cpu):.2f} ms at {run.result.plan_rate:.0f}/s" for run in warm)
    best = min((run.per_decision(run.server_cpu) for run in warm), default=float("nan"))
    verdict = "met" if best <= GOAL_WARM_CPU * 1000 else "NOT met"
    print(f"    server CPU per warm decision <= {GOAL_WARM_CPU * 1000:.1f} ms: {cpu} -> {verdict}")
    for run in cold:
        p99 = percentile(run.result.latencies, 0.99)
        verdict = "met" if p99 < GOAL_COLD_P99 else "NOT met"
        rate = run.result.plan_rate
        print(f"    cold gate p99 < {GOAL_COLD_P99 * 1000:.0f} ms at {rate:.0f}/s: {ms(p99).strip()} ms -> {verdict}")


# --- main ------------------------------------------------------------------------------------------------


def _rates(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gate_load", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--slos", type=int, default=SLOS, help="SLOs in the fleet")
    parser.add_argument("--warm-slos", type=int, default=WARM_SLOS, help="SLOs the warm runs gate")
    parser.add_argument("--rates", type=_rates, default=RATES, help="warm offered rates, e.g. 100,300,600")
    parser.add_argument("--cold-rates", type=_rates, default=COLD_RATES, help="cold offered rates; empty: none")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="length of each run's schedule")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="the generator's connections")
    parser.add_argument("--arrivals", choices=ARRIVALS, default="poisson")
    parser.add_argument("--client", choices=CLIENTS, default="raw", help="the generator's transport")
    parser.add_argument("--compare-clients", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--db", action="append", help="sqlite (default), a SQLite path or postgresql://...")
    parser.add_argument("--pin-server", action="store_true", help="pin serve to the CPUs the generator is not on")
    parser.add_argument("--profile", type=float, default=0.0, help="seconds of py-spy on the server at 300/s warm")
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy binary for --profile")
    return parser.parse_args()


def _fleet(root: Path, count: int) -> tuple[Path, list[HttpTraffic], datetime]:
    end = aligned_now()
    flows = [
        http_traffic(
            [Segment(HISTORY + LEAD, EVENTS_PER_STEP, error_ratio(index))],
            end=end + LEAD,
            labels={"job": service(index)},
        )
        for index in range(count)
    ]
    return write_declarations(root / "slos", count), flows, end


@dataclass
class StoreReport:
    """The runs against one store, or why there are none."""

    store: str
    commits: list[float] = field(default_factory=list)
    """Seconds of SQLite commits on the store's disk (`commit_cost`); none for PostgreSQL."""
    comparison: list[Run] = field(default_factory=list)
    warm: list[Run] = field(default_factory=list)
    cold: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Bench:
    """What every store's runs share: the options, the fleet, the instants, where the generator runs."""

    options: argparse.Namespace
    end: datetime
    names: list[str]
    warm_names: list[str]
    generator_cpu: int | None
    prometheus_pid: int | None
    rng: random.Random
    cold_offset: int = 0
    """Seconds before `end` already used by cold requests: every cold instant is new to every store."""

    def plan(self, served: Served, rate: float, seconds: float, bodies: list[str], client: str = "") -> Plan:
        """A generator plan against `served`."""
        return Plan(
            url=served.url,
            path=GATE_PATH,
            token=served.token,
            bodies=bodies,
            rate=rate,
            seconds=seconds,
            connections=self.options.connections,
            arrivals=self.options.arrivals,
            client=client or self.options.client,
            seed=int(rate),
            drain=DRAIN,
            cpu=self.generator_cpu,
        )

    def warm_run(self, kind: str, served: Served, rate: float, seconds: float, client: str = "") -> Run:
        """Wait for the server to be idle, prime the warm SLOs, then offer `rate` for `seconds`."""
        settle(served.pid)
        primed = prime(served, self.warm_names, self.end)
        say(f"  {kind} {rate:.0f}/s for {seconds:.0f} s (primed in {primed:.1f} s) ...")
        plan = self.plan(served, rate, seconds, self.warm_bodies(rate * seconds), client)
        run = measure(kind, served, plan, self.prometheus_pid)
        run.primed = primed
        return run

    def warm_bodies(self, requests: float) -> list[str]:
        """Bodies for about `requests` warm gates (Poisson may send a few more: the list is cycled)."""
        return [gate_body(self.rng.choice(self.warm_names), self.end) for _ in range(int(requests) + 10)]

    def cold_run(self, served: Served, rate: float) -> Run:
        """Offer `rate` for the run's length, each request at an instant never named before."""
        count = int(rate * self.options.seconds * 2) + 10
        bodies = [
            gate_body(self.rng.choice(self.names), self.end - timedelta(seconds=self.cold_offset + k + 1))
            for k in range(count)
        ]
        self.cold_offset += count
        say(f"  cold {rate:.0f}/s for {self.options.seconds:.0f} s ...")
        settle(served.pid)
        return measure("cold", served, self.plan(served, rate, self.options.seconds, bodies), self.prometheus_pid)

    def store(self, served: Served, first: bool) -> StoreReport:
        """The client comparison and the profile (first store only), the warm and the cold runs."""
        report = StoreReport(served.store)
        if self.options.compare_clients and first:
            rate, seconds = CLIENT_COMPARISON
            report.comparison = [self.warm_run(client, served, rate, seconds, client) for client in CLIENTS]
        report.warm = [self.warm_run("warm", served, rate, self.options.seconds) for rate in self.options.rates]
        report.cold = [self.cold_run(served, rate) for rate in self.options.cold_rates]
        if self.options.profile > 0 and first:
            seconds = self.options.profile
            load = self.plan(served, GOAL_WARM_RATE, seconds, self.warm_bodies(GOAL_WARM_RATE * seconds))

            def ready() -> None:
                settle(served.pid)
                prime(served, self.warm_names, self.end)

            say(f"  profiling the server at {GOAL_WARM_RATE}/s warm, twice {seconds:.0f} s ...")
            report.notes = profile_summary(self.options.py_spy, served.pid, seconds, lambda: spawn(load), ready)
        return report


def main() -> None:
    options = _arguments()
    started = time.perf_counter()
    cores = sorted(os.sched_getaffinity(0))
    generator_cpu = cores[-1] if len(cores) > 1 else None
    server_cpus = set(cores[:-1]) if options.pin_server and len(cores) > 1 else None
    stores = options.db or ["sqlite"]
    postgres_ok = any(is_postgres(db) for db in stores) and serve_supports_postgres()
    reports: list[StoreReport] = []
    with tempfile.TemporaryDirectory(prefix="sloplane-gate-load-") as folder:
        root = Path(folder)
        slos, flows, end = _fleet(root, options.slos)
        say(f"sandbox: {options.slos} http SLOs, one day of history up to {end.isoformat()} ...")
        with PrometheusSandbox(root / "prometheus", flows) as sandbox:
            sandbox.query("sum(increase(http_requests_total[1d]))", end)  # touch every chunk once
            say(f"  ready after {time.perf_counter() - started:.0f} s")
            names = [slo_name(index) for index in range(options.slos)]
            rng = random.Random(17)
            warm_names = rng.sample(names, min(options.warm_slos, len(names)))
            bench = Bench(options, end, names, warm_names, generator_cpu, sandbox.pid, rng)
            for index, db in enumerate(stores):
                if is_postgres(db) and not postgres_ok:
                    why = "not measured: this checkout's `sloplane serve --db` takes a SQLite path, not a URL"
                    reports.append(StoreReport(shown(db), notes=[why]))
                    continue
                workdir = root / f"store-{index}"
                workdir.mkdir()
                path = str(workdir / "decisions.db") if db == "sqlite" else db
                commits = [] if is_postgres(db) else commit_cost(Path(path).parent)
                with serving(slos, sandbox.url, path, workdir, server_cpus) as served:
                    say(f"store {served.store}: serve pid {served.pid} at {served.url}")
                    reports.append(bench.store(served, first=index == 0))
                    reports[-1].commits = commits
    _print(options, reports, generator_cpu, server_cpus, time.perf_counter() - started)


def _print(
    options: argparse.Namespace,
    reports: list[StoreReport],
    generator_cpu: int | None,
    server_cpus: set[int] | None,
    seconds: float,
) -> None:
    print()
    print(f"=== the gate at fixed offered rates (open loop), {options.slos:,} SLOs, {os.cpu_count()} cores ===")
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average now (1/5/15 min) {load}: the machine is shared; see `others` per run")
    placement = f"generator pinned to CPU {generator_cpu}" if generator_cpu is not None else "generator not pinned"
    placement += f", serve pinned to CPUs {sorted(server_cpus)}" if server_cpus else ", serve not pinned"
    print(
        f"{options.arrivals} arrivals, {options.seconds:.0f} s per run, {options.connections} connections, "
        f"{options.client} client; {placement}; latency from the scheduled send time"
    )
    for report in reports:
        print()
        print(f"store {report.store}:")
        if report.commits:
            p50, p90 = percentile(report.commits, 0.5), percentile(report.commits, 0.9)
            print(
                f"  a SQLite commit on its disk just before (WAL, synchronous FULL: an fsync): p50 {p50 * 1000:.2f} ms,"
                f" p90 {p90 * 1000:.2f} ms; appends take turns under one lock: at p50 at most {1 / p50:,.0f} a second"
            )
        if report.comparison:
            print("  the generator's transports, warm (same server, same rate):")
            for run in report.comparison:
                print_run(run)
        for run in report.warm + report.cold:
            print_run(run)
        if report.warm or report.cold:
            print_goals(report.store, report.warm, report.cold)
        for line in report.notes:
            print(f"  {line}")
    if not any(is_postgres(report.store) for report in reports):
        support = "takes" if serve_supports_postgres() else "does not take yet"
        print(f"\nPostgreSQL: not measured; give --db postgresql://... (this checkout's serve --db {support} a URL)")
    print(f"\ntotal {seconds:.0f} s")


if __name__ == "__main__":
    main()
