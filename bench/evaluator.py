"""The evaluator against a real Prometheus: gate latency, backend queries per decision, and google's slo-generator.

Prints figures, asserts nothing about speed. What it measures, on one synthetic fleet of http SLOs
(600 requests a minute each, a constant error ratio of 0.0005 + i * 1e-6 for service i, one day of
history ending now, in one `sloplane.sandbox.PrometheusSandbox`):

- peer comparison, 100 and 1,000 SLOs: whole-process wall time (best of two, runs alternating) of
  google's `slo-generator compute` (PyPI 2.6.0, in its own virtual environment under
  `bench/.slo-generator-venv`, made here on first use and reused after) with an error-budget policy
  of two steps (1h, 12h), against `sloplane evaluate --format json`, which computes every alert
  window of a 30d SLO, the gate's analysis window and the period; whether their SLIs agree
  (slo-generator rounds the SLI to six decimals), and how far each is from the hand-computed truth
  (`sandbox.expected_counts`). 12h is not a window of a 30d SLO in sloplane, so its 12h SLIs come
  from sloplane's `Measurer` with 12h added as an analysis window;
- gate latency: `sloplane serve` on the 1,000-SLO fleet, 32 client threads posting
  `/v1/gates/evaluate` for random SLOs, warm (one instant, after a priming call per SLO; then the
  same with one client, latency without queueing) and cold (a distinct instant per request);
  decisions per second, p50/p99/max, and from the evaluator's `/metrics` backend queries per
  decision and cache hits; CPU per decision of the server process and of the client threads;
- in process (no HTTP): one decision warm and cold, and `Evaluator.evaluate` of the whole fleet with
  the time spent waiting for Prometheus.

slo-generator's Prometheus backend sends no evaluation time: it reads Prometheus' "now", and each
SLI is two queries (good, valid) at two slightly different "now"s. The history therefore covers
now: one day before the evaluation instant `aligned_now()` and `LEAD` after it, so that every
window slo-generator reads lies inside the data, where Prometheus extrapolates the linear synthetic
counters exactly whatever the instant. (With the history ending at the instant, slo-generator's
windows run past the last sample a minute later; Prometheus then extrapolates by a fixed half
interval at the end and the two queries of one SLI see different factors: SLIs off by 1e-6 and
the occasional SLI above 1, which slo-generator refuses.) With a constant error ratio per service
the SLI of every window is the same at every instant. sloplane is evaluated at the instant (`--at`).

Goals (issue): p99 under 25 ms warm; at 1,000 SLOs, 10x faster than slo-generator while computing
every window, not two. Needs prometheus and promtool (tools/install-system-packages.sh) and, on the
first run, PyPI. Run: `.venv/bin/python -m bench.evaluator` (two to three minutes); `... peers` runs the
peer comparison alone and `... in-process` the in-process part alone (each under a minute), `--runs N`
sets the alternating runs of each tool per size. The machine may be shared: each run's 1-minute load
average is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import requests
import yaml

from sloplane.core.durations import format_duration
from sloplane.evaluator.http.auth import new_token
from sloplane.evaluator.measuring.backends.base import RangeSeries, Sample
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.measuring.measure import Measurer
from sloplane.evaluator.model import GateRequest
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.interop.loader import load_declarations
from sloplane.sandbox import (
    HttpTraffic,
    PrometheusSandbox,
    Segment,
    aligned_now,
    expected_counts,
    free_port,
    http_traffic,
)
from sloplane.semantics.subjects import Fleet

SIZES = (100, 1000)
FLEET = max(SIZES)
CLIENTS = 32
HISTORY = timedelta(days=1)
LEAD = timedelta(minutes=15)
"""Synthetic samples continue this long after the evaluation instant (see the module docstring)."""
EVENTS_PER_STEP = 600.0
OBJECTIVE = 99.9
PERIOD = timedelta(days=30)
WARM_SECONDS = 15.0
"""Length of the warm HTTP run; it must end within the cache's lifetime (60 s) after priming began."""
WARM_SINGLE_SECONDS = 5.0
"""A warm run with one client after it: the latency of a decision over HTTP with no queueing."""
CACHE_TTL = 60.0
COLD_REQUESTS = 1000
"""Cold HTTP requests, each at its own instant: the evaluation instant minus k minutes, k = 1..COLD_REQUESTS."""
IN_PROCESS_WARM = 2000
IN_PROCESS_WARM_SLOS = 100
IN_PROCESS_COLD = 200
PEER_STEPS = (("1h", timedelta(hours=1), 9.0), ("12h", timedelta(hours=12), 3.0))
"""slo-generator's error-budget policy: (step name, window, burn-rate threshold)."""
PEER_RUNS = 2
"""Whole-process runs of each tool per fleet size, alternating; the best counts (Prometheus compacts its
fresh blocks in the background for a while after it starts, which slows whichever tool runs then)."""
PEER_ROUNDING = 5e-7
"""slo-generator rounds good / (good + bad) to six decimals before printing it."""
GATE_PATH = "/v1/gates/evaluate"

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SLOPLANE = ROOT / ".venv" / "bin" / "sloplane"
PEER_VENV = BENCH / ".slo-generator-venv"
PEER_PACKAGES = ("slo-generator[prometheus]==2.6.0", "setuptools<81")
PEER_VERSION = "2.6.0"

# `INFO - <name padded to 32> | <step padded to 8> | SLI: 99.9495  % | SLO: 99.9 % | Gap: ...` (report.py)
PEER_REPORT = re.compile(r"^INFO - (?P<name>\S+)\s*\| (?P<step>\S+)\s*\| SLI: (?P<sli>[0-9.eE+-]+)\s*%")
PEER_INVALID = re.compile(r"^ERROR - (?P<name>\S+)\s*\| (?P<step>\S+)\s*\| (?P<message>.*)$")


def say(text: str) -> None:
    """A progress line, at once."""
    print(text, flush=True)


def service(index: int) -> str:
    """The job label and service of SLO `index`."""
    return f"svc-{index:04d}"


def slo_name(index: int) -> str:
    """The SLO's name, the same in both tools."""
    return f"{service(index)}-availability"


def error_ratio(index: int) -> float:
    """Service `index`'s constant error ratio (services past 500 burn more than their budget)."""
    return 0.0005 + index * 1e-6


# --- the fleet, in both tools' formats ----------------------------------------------------------


def traffics(instant: datetime) -> list[HttpTraffic]:
    """One day of http traffic per service up to `instant`, and `LEAD` beyond it."""
    return [
        http_traffic(
            [Segment(HISTORY + LEAD, EVENTS_PER_STEP, error_ratio(index))],
            end=instant + LEAD,
            labels={"job": service(index)},
        )
        for index in range(FLEET)
    ]


def write_declarations(folder: Path, count: int) -> Path:
    """sloplane declarations, one file per SLO: http SLI on the job, 99.9% over 30d."""
    folder.mkdir(parents=True)
    for index in range(count):
        document = {
            "apiVersion": "sloplane.dev/v1alpha1",
            "kind": "ServiceLevelObjective",
            "metadata": {"name": slo_name(index)},
            "spec": {
                "service": service(index),
                "owners": {"team": "bench"},
                "objective": OBJECTIVE,
                "window": format_duration(PERIOD),
                "sli": {"http": {"metric": "http_requests_total", "selector": {"job": service(index)}}},
            },
        }
        (folder / f"{slo_name(index)}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


def write_peer_configs(folder: Path, count: int, prometheus: str) -> Path:
    """slo-generator v2 SLO configs (one file each) and the shared config.yaml; returns config.yaml's path.

    The same counters as the sloplane SLI: good is every request whose code is not 5xx, valid every request.
    """
    slos = folder / "slos"
    slos.mkdir(parents=True)
    for index in range(count):
        selector = f'job="{service(index)}"'
        document = {
            "apiVersion": "sre.google.com/v2",
            "kind": "ServiceLevelObjective",
            "metadata": {
                "name": slo_name(index),
                "labels": {"service_name": service(index), "feature_name": "http", "slo_name": "availability"},
            },
            "spec": {
                "description": f"Availability of {service(index)}",
                "backend": "prometheus",
                "method": "good_bad_ratio",
                "exporters": [],
                "service_level_indicator": {
                    "filter_good": f'http_requests_total{{{selector},code!~"5.."}}',
                    "filter_valid": f"http_requests_total{{{selector}}}",
                },
                "goal": OBJECTIVE / 100,
            },
        }
        (slos / f"{slo_name(index)}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    steps = [
        {
            "name": name,
            "burn_rate_threshold": threshold,
            "alert": True,
            "message_alert": "Page to defend the SLO",
            "message_ok": "On track",
            "window": int(window.total_seconds()),
        }
        for name, window, threshold in PEER_STEPS
    ]
    config = {
        "backends": {"prometheus": {"url": prometheus}},
        "exporters": {},
        "error_budget_policies": {"default": {"steps": steps}},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def truth(traffic: HttpTraffic, end: datetime, window: timedelta) -> float:
    """The SLI over `window` ending at `end`, from the segments by hand."""
    bad, total = expected_counts(traffic, end, window)
    return 1 - bad / total


# --- slo-generator --------------------------------------------------------------------------------


def peer_binary() -> Path:
    """slo-generator in its own virtual environment: reused when present at the right version, else made."""
    binary = PEER_VENV / "bin" / "slo-generator"
    if binary.exists():
        found = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and f"v{PEER_VERSION}" in found.stdout:
            say(f"slo-generator {PEER_VERSION}: reusing {PEER_VENV.relative_to(ROOT)}")
            return binary
        shutil.rmtree(PEER_VENV)
    say(f"slo-generator {PEER_VERSION}: creating {PEER_VENV.relative_to(ROOT)} (pip, needs PyPI) ...")
    started = time.perf_counter()
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run(
        [str(PEER_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *PEER_PACKAGES],
        check=True,
    )
    say(f"  installed in {time.perf_counter() - started:.0f} s")
    return binary


@dataclass
class Cost:
    """What one whole-process run cost besides its wall time: its own CPU and Prometheus' (both in seconds)."""

    cpu: float = float("nan")
    """User + system CPU of the process and its threads (`RUSAGE_CHILDREN`)."""
    prometheus_cpu: float = float("nan")
    """CPU the sandbox's Prometheus used meanwhile (/proc; on this machine nothing else queries it)."""


@contextmanager
def costing(prometheus_pid: int | None) -> Iterator[Cost]:
    """Measure a child process run inside: its CPU and Prometheus' (filled in on leaving)."""
    cost = Cost()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    served = process_cpu(prometheus_pid) if prometheus_pid is not None else float("nan")
    yield cost
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cost.cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if prometheus_pid is not None:
        cost.prometheus_cpu = process_cpu(prometheus_pid) - served


@dataclass
class PeerRun:
    """One `slo-generator compute`: wall time, SLI per (SLO, step), and the reports it refused."""

    seconds: float
    slis: dict[tuple[str, str], float]
    invalid: list[str]
    cost: Cost = field(default_factory=Cost)


def run_peer(binary: Path, folder: Path, config: Path, prometheus_pid: int | None = None) -> PeerRun:
    """`slo-generator compute -f <folder> -c config.yaml` as a whole process; SLIs parsed from its log lines."""
    environment = {**os.environ, "COLORED_OUTPUT": "0", "DEBUG": "0"}
    with costing(prometheus_pid) as cost:
        started = time.perf_counter()
        completed = subprocess.run(
            [str(binary), "compute", "-f", str(folder), "-c", str(config)],
            capture_output=True,
            text=True,
            check=False,
            cwd=folder.parent,
            env=environment,
        )
        seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"slo-generator exited {completed.returncode}:\n{completed.stderr[-2000:]}")
    slis: dict[tuple[str, str], float] = {}
    invalid: list[str] = []
    for line in completed.stdout.splitlines():
        if found := PEER_REPORT.match(line):
            slis[(found["name"], found["step"])] = float(found["sli"]) / 100
        elif found := PEER_INVALID.match(line):
            invalid.append(f"{found['name']} {found['step']}: {found['message'][:200]}")
    return PeerRun(seconds, slis, invalid, cost)


# --- sloplane evaluate ------------------------------------------------------------------------------


@dataclass
class OursRun:
    """One `sloplane evaluate --format json`: wall time, SLI per (SLO, window seconds), period SLI per SLO."""

    seconds: float
    slis: dict[tuple[str, float], float]
    periods: dict[str, float]
    windows: tuple[float, ...]
    errors: list[str]
    cost: Cost = field(default_factory=Cost)


def run_ours(folder: Path, prometheus: str, at: datetime, prometheus_pid: int | None = None) -> OursRun:
    """`sloplane evaluate <folder> --prometheus URL --at <instant> --format json` as a whole process."""
    command = [str(SLOPLANE), "evaluate", str(folder), "--prometheus", prometheus, "--at", at.isoformat()]
    with costing(prometheus_pid) as cost:
        started = time.perf_counter()
        completed = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"sloplane evaluate exited {completed.returncode}:\n{completed.stderr[-2000:]}")
    slis: dict[tuple[str, float], float] = {}
    periods: dict[str, float] = {}
    errors: list[str] = []
    windows: set[float] = set()
    for measurement in json.loads(completed.stdout):
        if measurement["error"]:
            errors.append(f"{measurement['slo']}: {measurement['error']}")
        for window in measurement["windows"]:
            windows.add(window["window"])
            if window["errorRatio"] is not None:
                slis[(measurement["slo"], window["window"])] = 1 - window["errorRatio"]
        if measurement["periodErrorRatio"] is not None:
            periods[measurement["slo"]] = 1 - measurement["periodErrorRatio"]
    return OursRun(seconds, slis, periods, tuple(sorted(windows)), errors, cost)


def process_start(command: Sequence[str]) -> float:
    """Wall time of a command that only starts and exits (imports, CLI set-up): the floor of every run."""
    started = time.perf_counter()
    subprocess.run(list(command), capture_output=True, check=False)
    return time.perf_counter() - started


@dataclass
class PeerComparison:
    """Both tools on one fleet size."""

    count: int
    ours: OursRun
    peer: PeerRun
    agree_1h: tuple[int, float]
    agree_12h: tuple[int, float]
    ours_vs_truth: float
    peer_vs_truth: float
    ours_times: list[float] = field(default_factory=list)
    peer_times: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    """The 1-minute load average before each run (the machine is shared)."""


def _max_difference(pairs: Sequence[tuple[float, float]]) -> float:
    return max((abs(a - b) for a, b in pairs), default=float("nan"))


def compare(
    count: int,
    *,
    ours: OursRun,
    peer: PeerRun,
    twelve_hours: dict[str, float],
    flows: Sequence[HttpTraffic],
    end: datetime,
) -> PeerComparison:
    """Agreement on the shared windows and distance of each tool from the hand-computed truth."""
    one_hour = [
        (ours.slis[(slo_name(i), 3600.0)], peer.slis[(slo_name(i), "1h")])
        for i in range(count)
        if (slo_name(i), 3600.0) in ours.slis and (slo_name(i), "1h") in peer.slis
    ]
    twelve = [
        (twelve_hours[slo_name(i)], peer.slis[(slo_name(i), "12h")])
        for i in range(count)
        if slo_name(i) in twelve_hours and (slo_name(i), "12h") in peer.slis
    ]
    expected: dict[tuple[int, float], float] = {}

    def hand(index: int, seconds: float) -> float:
        if (index, seconds) not in expected:
            expected[(index, seconds)] = truth(flows[index], end, timedelta(seconds=seconds))
        return expected[(index, seconds)]

    index = {slo_name(i): i for i in range(FLEET)}
    ours_pairs = [(value, hand(index[name], seconds)) for (name, seconds), value in ours.slis.items()]
    ours_pairs += [(value, hand(index[name], PERIOD.total_seconds())) for name, value in ours.periods.items()]
    steps = {name: window.total_seconds() for name, window, _ in PEER_STEPS}
    peer_pairs = [(value, hand(index[name], steps[step])) for (name, step), value in peer.slis.items()]
    return PeerComparison(
        count,
        ours,
        peer,
        (len(one_hour), _max_difference(one_hour)),
        (len(twelve), _max_difference(twelve)),
        _max_difference(ours_pairs),
        _max_difference(peer_pairs),
    )


def twelve_hour_slis(folder: Path, prometheus: str, at: datetime) -> dict[str, float]:
    """12h SLIs from sloplane's own Measurer with 12h added (not among a 30d SLO's windows), in process."""
    fleet = Fleet(load_declarations([folder]))
    measurer = Measurer(fleet, PrometheusBackend(prometheus, timeout=60), analysis_windows=(timedelta(hours=12),))
    targets = [target for declaration in fleet.values() for target in measurer.declared_subjects(declaration)]
    found: dict[str, float] = {}
    for key, measurement in measurer.measure(targets, at).items():
        window = measurement.window(timedelta(hours=12))
        if window is not None and window.error_ratio is not None:
            found[key] = 1 - window.error_ratio
    return found


# --- the evaluator service under load ------------------------------------------------------------------


Job = tuple[str, datetime]


@dataclass(frozen=True)
class Served:
    """A running `sloplane serve`: where, with which token, how long it took to answer, its process id."""

    url: str
    token: str
    startup: float
    pid: int


@dataclass
class LoadRun:
    """One run of the clients: latencies, wall time, outcomes, CPU spent, the evaluator's counters around it."""

    clients: int
    latencies: list[float]
    seconds: float
    outcomes: Counter[str]
    counters: dict[str, float] = field(default_factory=dict)
    server_cpu: float = float("nan")
    """CPU seconds the `sloplane serve` process used during the run (user + system)."""
    client_cpu: float = float("nan")
    """CPU seconds this process (the client threads) used during the run."""

    @property
    def rate(self) -> float:
        """Decisions per second."""
        return len(self.latencies) / self.seconds if self.seconds else float("nan")

    def per_decision(self, seconds: float) -> float:
        """Milliseconds of something per decision."""
        return seconds / len(self.latencies) * 1000 if self.latencies else float("nan")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1) of unsorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def latency_line(latencies: Sequence[float]) -> str:
    """p50 / p99 / max in milliseconds."""
    p50, p99, worst = percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies, default=float("nan"))
    return f"p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms  max {worst * 1000:6.1f} ms"


def scrape(url: str) -> dict[str, float]:
    """The evaluator's /metrics: every sample by its full series text, and sums by metric name."""
    text = requests.get(f"{url}/metrics", timeout=30).text
    values: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        values[series] += float(value)
        values[series.split("{", 1)[0]] += float(value)
    return dict(values)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hammer(served: Served, next_job: Callable[[], Job | None], clients: int = CLIENTS) -> LoadRun:
    """`clients` threads, each with its own session, posting gate requests until `next_job` says stop."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    endpoint = f"{served.url}{GATE_PATH}"

    def take() -> Job | None:
        with lock:
            return next_job()

    def client() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {served.token}"
        session.get(f"{served.url}/healthz", timeout=30)  # the connection is open before the clock starts
        mine: list[float] = []
        seen: Counter[str] = Counter()
        ready.wait()
        while (job := take()) is not None:
            slo, at = job
            started = time.perf_counter()
            response = session.post(endpoint, json={"slo": slo, "at": at.isoformat()}, timeout=120)
            mine.append(time.perf_counter() - started)
            ok = response.status_code == 200
            seen[str(response.json().get("decision")) if ok else f"HTTP {response.status_code}"] += 1
        with lock:
            latencies.extend(mine)
            outcomes.update(seen)
        session.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    before = scrape(served.url)
    ready.wait()
    server_cpu, client_cpu = process_cpu(served.pid), time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    server_cpu, client_cpu = process_cpu(served.pid) - server_cpu, time.process_time() - client_cpu
    after = scrape(served.url)
    counters = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    return LoadRun(clients, latencies, seconds, outcomes, counters, server_cpu, client_cpu)


def from_list(jobs: Sequence[Job]) -> Callable[[], Job | None]:
    """Hand out the jobs once each, in order."""
    pending = iter(jobs)
    return lambda: next(pending, None)


def random_until(names: Sequence[str], at: datetime, deadline: float, seed: int = 11) -> Callable[[], Job | None]:
    """Random SLOs at one instant until `deadline` (time.monotonic)."""
    rng = random.Random(seed)
    return lambda: (rng.choice(names), at) if time.monotonic() < deadline else None


@contextmanager
def evaluator_service(folder: Path, prometheus: str, workdir: Path) -> Iterator[Served]:
    """`sloplane serve` on the fleet in a subprocess, with a fresh gate token and decision log."""
    token, entry = new_token("bench", ["gate"])
    tokens = workdir / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"tokens": [entry.to_dict()]}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "serve.log"
    command = [str(SLOPLANE), "serve", str(folder), "--prometheus", prometheus, "--tokens", str(tokens)]
    command += ["--rollup-interval", "off"]  # the gate's figures alone, without the hourly rollup's reads
    command += ["--port", str(port), "--db", str(workdir / "decisions.db")]
    started = time.perf_counter()
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
        yield Served(url, token, time.perf_counter() - started, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ServiceFigures:
    """What the HTTP runs showed."""

    startup: float
    prime: LoadRun
    warm: LoadRun
    warm_single: LoadRun
    cold: LoadRun
    warm_age: float
    """Seconds from the start of priming to the end of the last warm run (the cache keeps entries 60 s)."""


def queries_per_decision(run: LoadRun) -> float:
    """Backend requests per gate decision during a run, from the evaluator's own counters."""
    decisions = run.counters.get("sloplane_gate_decisions_total", 0.0)
    queries = run.counters.get("sloplane_backend_request_seconds_count", 0.0)
    return queries / decisions if decisions else float("nan")


def cache_lookups(run: LoadRun) -> tuple[float, float]:
    """(hits, misses) of the measurement cache during a run."""
    hits = run.counters.get('sloplane_cache_requests_total{result="hit"}', 0.0)
    misses = run.counters.get('sloplane_cache_requests_total{result="miss"}', 0.0)
    return hits, misses


def service_figures(folder: Path, prometheus: str, end: datetime, workdir: Path) -> ServiceFigures:
    """Prime, warm runs (32 clients, then one), cold run, against one `sloplane serve`."""
    names = [slo_name(index) for index in range(FLEET)]
    with evaluator_service(folder, prometheus, workdir) as served:
        say(f"  sloplane serve answering after {served.startup:.1f} s; priming {FLEET} SLOs at the instant ...")
        primed_at = time.monotonic()
        prime = hammer(served, from_list([(name, end) for name in names]))
        say(f"  primed: {prime.rate:.0f} decisions/s; warm run for up to {WARM_SECONDS:.0f} s ...")
        expiry = primed_at + CACHE_TTL - 5
        warm = hammer(served, random_until(names, end, min(time.monotonic() + WARM_SECONDS, expiry)))
        say(f"  warm: {warm.rate:.0f} decisions/s; one client for up to {WARM_SINGLE_SECONDS:.0f} s ...")
        single_until = min(time.monotonic() + WARM_SINGLE_SECONDS, expiry)
        warm_single = hammer(served, random_until(names, end, single_until, seed=12), clients=1)
        warm_age = time.monotonic() - primed_at
        say(f"  warm, one client: {warm_single.rate:.0f} decisions/s; cold run of {COLD_REQUESTS} instants ...")
        rng = random.Random(5)
        cold_jobs = [(rng.choice(names), end - timedelta(minutes=k)) for k in range(1, COLD_REQUESTS + 1)]
        rng.shuffle(cold_jobs)
        cold = hammer(served, from_list(cold_jobs))
        say(f"  cold: {cold.rate:.0f} decisions/s")
    return ServiceFigures(served.startup, prime, warm, warm_single, cold, warm_age)


# --- in process ------------------------------------------------------------------------------------------


class TimedBackend:
    """A backend that counts its queries and the time spent waiting for them."""

    name = "prometheus"

    def __init__(self, inner: PrometheusBackend) -> None:
        self.inner = inner
        self.queries = 0
        self.seconds = 0.0
        self.characters = 0
        self._lock = threading.Lock()

    def query(self, expression: str, at: datetime) -> list[Sample]:
        """The inner query, timed."""
        started = time.perf_counter()
        try:
            return self.inner.query(expression, at)
        finally:
            with self._lock:
                self.queries += 1
                self.seconds += time.perf_counter() - started
                self.characters += len(expression)

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        """The inner range query, not counted (an evaluation asks none)."""
        return self.inner.query_range(expression, start, end, step)

    def healthy(self) -> tuple[bool, str]:
        """The inner backend's health."""
        return self.inner.healthy()

    def reset(self) -> None:
        """Start counting again."""
        self.queries, self.seconds, self.characters = 0, 0.0, 0


@dataclass
class InProcessFigures:
    """Single decisions and whole-fleet evaluations without HTTP."""

    load_seconds: float
    warm: list[float]
    cold: list[float]
    cold_queries: float
    fleet_cold: tuple[float, float, int, int]
    """Whole-fleet evaluate, empty cache: wall seconds, seconds waiting for Prometheus, queries, characters sent."""
    fleet_warm: float
    """Whole-fleet evaluate again at the same instant: every answer cached, so this is sloplane's own work."""


def in_process(folder: Path, prometheus: str, end: datetime, workdir: Path) -> InProcessFigures:
    """An `Evaluator` object with a SQLite decision log, as `sloplane serve` builds it, called directly."""
    started = time.perf_counter()
    fleet = Fleet(load_declarations([folder]))
    load_seconds = time.perf_counter() - started
    backend = TimedBackend(PrometheusBackend(prometheus, timeout=60))
    evaluator = Evaluator(fleet, backend, SqliteDecisionLog(workdir / "in-process.db"))
    rng = random.Random(3)
    names = sorted(fleet)
    chosen = rng.sample(names, IN_PROCESS_WARM_SLOS)
    for name in chosen:  # prime
        evaluator.gate(GateRequest(slo=name, at=end))
    warm = []
    for _ in range(IN_PROCESS_WARM):
        request = GateRequest(slo=rng.choice(chosen), at=end)
        began = time.perf_counter()
        evaluator.gate(request)
        warm.append(time.perf_counter() - began)
    backend.reset()
    cold = []
    for k in range(COLD_REQUESTS + 1, COLD_REQUESTS + 1 + IN_PROCESS_COLD):
        request = GateRequest(slo=rng.choice(names), at=end - timedelta(minutes=k))
        began = time.perf_counter()
        evaluator.gate(request)
        cold.append(time.perf_counter() - began)
    cold_queries = backend.queries / IN_PROCESS_COLD
    whole = Evaluator(fleet, backend, SqliteDecisionLog(workdir / "in-process-fleet.db"))
    at = end - timedelta(minutes=COLD_REQUESTS + IN_PROCESS_COLD + 1)
    backend.reset()
    began = time.perf_counter()
    whole.evaluate(at)
    fleet_cold = (time.perf_counter() - began, backend.seconds, backend.queries, backend.characters)
    began = time.perf_counter()
    whole.evaluate(at)
    fleet_warm = time.perf_counter() - began
    return InProcessFigures(load_seconds, warm, cold, cold_queries, fleet_cold, fleet_warm)


# --- main -------------------------------------------------------------------------------------------------


def _peer_comparisons(
    root: Path,
    prometheus: str,
    end: datetime,
    flows: Sequence[HttpTraffic],
    *,
    runs: int = PEER_RUNS,
    prometheus_pid: int | None = None,
) -> tuple[list[PeerComparison], float, float]:
    binary = peer_binary()
    ours_start = process_start([str(SLOPLANE), "--help"])
    peer_start = process_start([str(binary), "--version"])
    comparisons = []
    for count in SIZES:
        ours_folder = root / f"sloplane-{count}"
        config = root / f"slo-generator-{count}" / "config.yaml"
        ours_runs: list[OursRun] = []
        peer_runs: list[PeerRun] = []
        loads: list[float] = []
        for attempt in range(1, runs + 1):
            loads.append(os.getloadavg()[0])
            say(f"peer comparison, {count} SLOs, run {attempt}/{runs} ({_load()}): sloplane evaluate ...")
            ours_runs.append(run_ours(ours_folder, prometheus, end, prometheus_pid))
            say(f"  {ours_runs[-1].seconds:.2f} s; slo-generator compute ...")
            peer_runs.append(run_peer(binary, config.parent / "slos", config, prometheus_pid))
            say(f"  {peer_runs[-1].seconds:.2f} s")
        say("  12h cross-check in process ...")
        twelve = twelve_hour_slis(ours_folder, prometheus, end)
        ours = min(ours_runs, key=lambda run: run.seconds)
        peer = min(peer_runs, key=lambda run: run.seconds)
        compared = compare(count, ours=ours, peer=peer, twelve_hours=twelve, flows=flows, end=end)
        compared.ours_times = [run.seconds for run in ours_runs]
        compared.peer_times = [run.seconds for run in peer_runs]
        compared.loads = loads
        comparisons.append(compared)
    return comparisons, ours_start, peer_start


def _times(values: Sequence[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values) + " s"


def _print_peers(comparisons: list[PeerComparison], ours_start: float, peer_start: float) -> int:
    """The peer comparison; returns sloplane's windows per SLO."""
    runs = len(comparisons[0].ours_times)
    print(f"peer comparison: whole-process wall time, best of {runs} (runs alternate), one Prometheus")
    windows = comparisons[0].ours.windows
    listed = ", ".join(format_duration(timedelta(seconds=seconds)) for seconds in windows)
    per_slo = len(windows) + 1
    print(f"  slo-generator {PEER_VERSION}: 2 windows per SLO (error-budget policy steps 1h, 12h)")
    print(f"  sloplane evaluate: {per_slo} per SLO: {listed} (alert windows + 10m gate analysis window) + 30d period")
    print(f"  bare process start: sloplane --help {ours_start:.2f} s, slo-generator --version {peer_start:.2f} s")
    print("   SLOs | slo-generator              | sloplane evaluate           | speed-up | per SLI")
    for item in comparisons:
        peer_windows = len(item.peer.slis)
        ours_windows = len(item.ours.slis) + len(item.ours.periods)
        ratio = item.peer.seconds / item.ours.seconds
        print(
            f"  {item.count:5,} | {item.peer.seconds:6.2f} s for {peer_windows:6,} SLIs | "
            f"{item.ours.seconds:6.2f} s for {ours_windows:7,} SLIs | {ratio:7.2f}x | "
            f"{item.peer.seconds / max(peer_windows, 1) * 1000:.2f} ms vs "
            f"{item.ours.seconds / max(ours_windows, 1) * 1000:.2f} ms"
        )
        print(f"        | runs {_times(item.peer_times):21} | runs {_times(item.ours_times):23} |")
        print(
            f"        | CPU of the best runs: slo-generator {item.peer.cost.cpu:.2f} s + Prometheus "
            f"{item.peer.cost.prometheus_cpu:.2f} s; sloplane {item.ours.cost.cpu:.2f} s + Prometheus "
            f"{item.ours.cost.prometheus_cpu:.2f} s"
        )
        paired = sorted(peer / ours for peer, ours in zip(item.peer_times, item.ours_times, strict=True))
        print(
            f"        | speed-up per alternating pair: {' / '.join(f'{r:.2f}x' for r in paired)}; "
            f"1-min load before each run: {' / '.join(f'{load:.2f}' for load in item.loads)}"
        )
    print("  SLI agreement (slo-generator rounds the SLI to 6 decimals: agree = |difference| <= 5e-7):")
    for item in comparisons:
        compared_1h, diff_1h = item.agree_1h
        compared_12h, diff_12h = item.agree_12h
        verdict = all(diff <= PEER_ROUNDING + 1e-12 for diff in (diff_1h, diff_12h))
        print(
            f"  {item.count:5,}: 1h on {compared_1h} SLOs max |diff| {diff_1h:.1e}; "
            f"12h on {compared_12h} SLOs max |diff| {diff_12h:.1e} -> {'agree' if verdict else 'DISAGREE'}"
        )
        print(
            f"         vs hand-computed truth: sloplane max |diff| {item.ours_vs_truth:.1e} (every window and "
            f"the period), slo-generator {item.peer_vs_truth:.1e}"
        )
        if item.peer.invalid or item.ours.errors:
            print(f"         refused: slo-generator {len(item.peer.invalid)}, sloplane {len(item.ours.errors)}")
            for line in (item.peer.invalid + item.ours.errors)[:3]:
                print(f"           {line}")
    print("  12h is not among sloplane's windows for a 30d SLO: its 12h SLIs come from sloplane's Measurer")
    print("  with 12h added as an analysis window, in process; 1h comes from the `sloplane evaluate` output.")
    return per_slo


def _print_service(served: ServiceFigures) -> None:
    print(f"gate over HTTP: sloplane serve, {FLEET:,} SLOs; clients are threads of this process (requests)")
    print(f"  server answering after {served.startup:.1f} s (start-up and loading {FLEET:,} declarations)")
    rows = (
        ("prime", served.prime, f"one call per SLO at one instant, {FLEET:,} calls"),
        ("warm", served.warm, "random SLOs at the primed instant"),
        ("warm", served.warm_single, f"the same, one client; ends {served.warm_age:.0f} s after priming began"),
        ("cold", served.cold, f"{COLD_REQUESTS:,} calls, each at its own instant"),
    )
    for label, run, what in rows:
        outcomes = ", ".join(f"{key} {value}" for key, value in sorted(run.outcomes.items()))
        hits, misses = cache_lookups(run)
        share = hits / (hits + misses) if hits + misses else float("nan")
        print(
            f"  {label:5} {run.clients:2} clients {run.rate:6.1f} decisions/s  {latency_line(run.latencies)}  ({what})"
        )
        print(
            f"        backend queries per decision {queries_per_decision(run):.2f}; cache {share:.1%} hits "
            f"({misses:,.0f} misses); CPU per decision: server {run.per_decision(run.server_cpu):.2f} ms, "
            f"clients {run.per_decision(run.client_cpu):.2f} ms; {outcomes}"
        )


def _print_in_process(local: InProcessFigures) -> None:
    print(f"in process (Evaluator object, SQLite decision log, no HTTP, one thread), {FLEET:,} SLOs:")
    print(f"  loading {FLEET:,} declarations: {local.load_seconds:.2f} s")
    print(
        f"  one decision warm: {latency_line(local.warm)}  ({IN_PROCESS_WARM:,} calls on {IN_PROCESS_WARM_SLOS} SLOs)"
    )
    print(
        f"  one decision cold: {latency_line(local.cold)}  ({IN_PROCESS_COLD} calls, "
        f"{local.cold_queries:.1f} backend queries each)"
    )
    wall, waiting, queries, characters = local.fleet_cold
    print(
        f"  evaluate all {FLEET:,}, cold: {wall:.2f} s, of which waiting for Prometheus {waiting:.2f} s "
        f"({queries} queries, {characters / 1e6:.1f} M characters of PromQL)"
    )
    print(f"  evaluate all {FLEET:,}, every answer cached (sloplane's own work): {local.fleet_warm:.2f} s")


def _print_summary(
    comparisons: list[PeerComparison],
    starts: tuple[float, float],
    served: ServiceFigures | None,
    local: InProcessFigures | None,
    setup: float,
) -> None:
    """Every part that ran (`peers` and `in-process` run one part each)."""
    print()
    print(f"=== sloplane evaluator bench ({os.cpu_count()} cores; fleet built and served in {setup:.0f} s) ===")
    print()
    per_slo = 0
    if comparisons:
        per_slo = _print_peers(comparisons, *starts)
        print()
    if served is not None:
        _print_service(served)
        print()
    if local is not None:
        _print_in_process(local)
        print()
    print("goals (figures, not assertions):")
    if served is not None:
        warm_p99 = percentile(served.warm.latencies, 0.99) * 1000
        print(f"  p99 under 25 ms warm, {CLIENTS} clients over HTTP: {warm_p99:.1f} ms")
    if comparisons:
        largest = comparisons[-1]
        print(
            f"  {largest.count:,} SLOs 10x faster than slo-generator: "
            f"{largest.peer.seconds / largest.ours.seconds:.2f}x, computing {per_slo} windows per SLO against 2"
        )


MODES = ("all", "peers", "in-process")


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluator", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "mode",
        nargs="?",
        choices=MODES,
        default="all",
        help="all (default); peers: the peer comparison alone; in-process: the in-process figures alone",
    )
    parser.add_argument("--runs", type=int, default=PEER_RUNS, help="whole-process runs of each tool per size")
    return parser.parse_args(argv)


def _load() -> str:
    """The machine's load averages (1, 5, 15 min): the machine is shared, so every figure says how busy it was."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def main(argv: Sequence[str] | None = None) -> None:
    options = _arguments(sys.argv[1:] if argv is None else argv)
    mode: str = options.mode
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sloplane-bench-") as folder:
        root = Path(folder)
        end = aligned_now()
        flows = traffics(end)
        say(
            f"sandbox: {FLEET} services x 1 day of http traffic up to the evaluation instant {end.isoformat()}"
            f" and {format_duration(LEAD)} beyond it ..."
        )
        comparisons: list[PeerComparison] = []
        starts = (float("nan"), float("nan"))
        served: ServiceFigures | None = None
        local: InProcessFigures | None = None
        with PrometheusSandbox(root / "prometheus", flows) as sandbox:
            say(f"  Prometheus ready at {sandbox.url} after {time.perf_counter() - started:.0f} s")
            for count in SIZES:
                write_declarations(root / f"sloplane-{count}", count)
                write_peer_configs(root / f"slo-generator-{count}", count, sandbox.url)
            sandbox.query("sum(increase(http_requests_total[1d]))", end)  # touch every chunk once
            setup = time.perf_counter() - started
            if mode in ("all", "peers"):
                comparisons, *pair = _peer_comparisons(
                    root, sandbox.url, end, flows, runs=options.runs, prometheus_pid=sandbox.pid
                )
                starts = (pair[0], pair[1])
            if mode == "all":
                say(f"gate over HTTP, {FLEET} SLOs, {CLIENTS} clients:")
                served = service_figures(root / f"sloplane-{FLEET}", sandbox.url, end, root)
            if mode in ("all", "in-process"):
                say("in process ...")
                local = in_process(root / f"sloplane-{FLEET}", sandbox.url, end, root)
        _print_summary(comparisons, starts, served, local, setup)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; {_load()}")


if __name__ == "__main__":
    main()
