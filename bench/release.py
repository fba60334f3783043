"""What release-aware decisions cost: canary gates, the notifier on the decision path, the S3 export.

Prints figures, asserts nothing about speed. Three measurements:

- canary gates against a real Prometheus (`sloplane.sandbox`), 100 staged SLOs (canary at 60
  requests a minute, stable at 600, six hours of history): backend requests per cold gate (instant
  and range queries), and in-process latency p50/p99 of a cold and a warm gate on the canary stage
  (measured against its baseline, with a Mann-Whitney U test) and on the production stage (no
  comparison), each over the 100 SLOs;
- the notifier's share of a decision: `Notifier.on_decision` for 10,000 failing deployment
  decisions (classification and one outbox insert; delivery is on another thread), p50/p99;
- the S3 export: 20,000 recorded decisions to moto's S3 server (started here), records per second.

Needs prometheus and promtool (tools/install-system-packages.sh). Run: `.venv/bin/python -m
bench.release` (about a minute).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import requests
import yaml

from bench.evaluator import latency_line
from sloplane.cli.evaluator import NullLog
from sloplane.evaluator.export import S3Location, export_decisions, s3_client
from sloplane.evaluator.measuring.backends.base import RangeSeries, Sample
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import GateRequest, Outcome, Reason
from sloplane.evaluator.notify import Notifier, ReceiversConfig
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.interop import load_paths
from sloplane.sandbox import PrometheusSandbox, Segment, aligned_now, http_traffic
from sloplane.semantics.subjects import Fleet

SLOS = 100
HISTORY = timedelta(hours=6)
DECISIONS_NOTIFIED = 10_000
DECISIONS_EXPORTED = 20_000


def say(text: str) -> None:
    """A progress or result line, at once."""
    print(text, flush=True)


class CountingBackend(PrometheusBackend):
    """Prometheus, counting instant and range requests."""

    instant = 0
    ranged = 0

    def query(self, expression: str, at: datetime) -> list[Sample]:
        self.instant += 1
        return super().query(expression, at)

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        self.ranged += 1
        return super().query_range(expression, start, end, step)


def _declarations(folder: Path) -> Fleet:
    documents = []
    for index in range(SLOS):
        name = f"shop-{index:03d}"
        documents.append(
            {
                "apiVersion": "sloplane.dev/v1alpha1",
                "kind": "ServiceLevelObjective",
                "metadata": {"name": name},
                "spec": {
                    "service": name,
                    "owners": {"team": "bench"},
                    "objective": 99.9,
                    "window": "1d",
                    "sli": {"http": {"metric": "http_requests_total", "selector": {"job": name}}},
                    "stages": [
                        {"name": "canary", "selector": {"stage": "canary"}},
                        {"name": "production", "selector": {"stage": "stable"}},
                    ],
                },
            }
        )
    (folder / "fleet.yaml").write_text(yaml.safe_dump_all(documents))
    return Fleet(load_paths([folder]).declarations)


def canary_gates(work: Path) -> None:
    """Backend requests and latency of canary and production gates, cold and warm."""
    end = aligned_now()
    fleet = _declarations(work)
    traffic = []
    for index in range(SLOS):
        job = f"shop-{index:03d}"
        canary_ratio = 0.05 if index % 2 else 0.0005  # half the canaries are bad
        traffic.append(http_traffic([Segment(HISTORY, 600, 0.0005)], end=end, labels={"job": job, "stage": "stable"}))
        traffic.append(
            http_traffic([Segment(HISTORY, 60, canary_ratio)], end=end, labels={"job": job, "stage": "canary"})
        )
    say(f"backfilling {len(traffic) * 2} series x {HISTORY} ...")
    with PrometheusSandbox(work / "prometheus", traffic) as sandbox:
        for stage in ("canary", "production"):
            backend = CountingBackend(sandbox.url)
            evaluator = Evaluator(fleet, backend, SqliteDecisionLog(work / f"{stage}.db"))
            names = sorted(fleet)
            # a distinct instant per SLO, so nothing is cached: cold
            cold = [_gate_once(evaluator, name, stage, end - timedelta(minutes=n % 30)) for n, name in enumerate(names)]
            instant, ranged = backend.instant / SLOS, backend.ranged / SLOS
            warm = [_gate_once(evaluator, name, stage, end) for name in names]
            warm = [_gate_once(evaluator, name, stage, end) for name in names]  # the second round is the warm one
            outcomes = Counter(outcome for _, outcome in cold)
            say(
                f"{stage:10s} gate cold: {latency_line([s for s, _ in cold])}  "
                f"({instant:.1f} instant + {ranged:.1f} range requests per gate)"
            )
            say(f"{stage:10s} gate warm: {latency_line([s for s, _ in warm])}  outcomes {dict(outcomes)}")


def _gate_once(evaluator: Evaluator, name: str, stage: str, at: datetime) -> tuple[float, str]:
    """(seconds, outcome) of one gate decision."""
    started = time.perf_counter()
    (decision,) = evaluator.gate(GateRequest(slo=name, stage=stage, at=at, revision="r1")).decisions
    return time.perf_counter() - started, decision.outcome.value


def _failing_decisions(fleet: Fleet, count: int) -> Iterator[object]:
    name = sorted(fleet)[0]
    evaluator = Evaluator(fleet, _NoBackend(), NullLog())
    request = GateRequest(slo=name, stage="canary", revision="r1", pipeline="p1")
    base = evaluator.gate(request).decisions[0]
    for number in range(count):
        service = f"svc-{number}"  # every decision a new service and revision: none is suppressed
        yield replace(
            base,
            id=uuid.uuid4().hex,
            service=service,
            outcome=Outcome.FAIL,
            reasons=(Reason("alert-active", "page burn-rate alert active", {}),),
            request=replace(request, revision=f"r{number}"),
        )


class _NoBackend:
    name = "none"

    def query(self, expression: str, at: datetime) -> list[Sample]:
        return []

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        return []

    def healthy(self) -> tuple[bool, str]:
        return True, "ok"


def notifier_cost(work: Path) -> None:
    """`on_decision` for failing deployment decisions: what the decision path pays."""
    fleet = _declarations(work / "notify")
    config = ReceiversConfig.model_validate(
        {
            "receivers": {"oncall": {"webhook": {"url": "http://127.0.0.1:9/hook"}}},
            "defaults": {"deployment": "oncall", "background": "oncall"},
            "grouping": {"wait": "1h", "window": "15m"},
        }
    )
    notifier = Notifier(fleet, config, work / "outbox.db")  # not started: nothing is delivered
    decisions = list(_failing_decisions(fleet, DECISIONS_NOTIFIED))
    costs = []
    for decision in decisions:
        started = time.perf_counter()
        notifier.on_decision(decision)  # type: ignore[arg-type]
        costs.append(time.perf_counter() - started)
    say(f"notifier on_decision ({DECISIONS_NOTIFIED} failing deployment decisions): {latency_line(costs)}")
    say(f"  outbox after: {notifier.stats()}")
    notifier.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on a free port, stopped afterwards."""
    port = _free_port()
    binary = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def export_speed(work: Path, decisions: Sequence[object]) -> None:
    """Records per second from the SQLite log to moto's S3."""
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    log = SqliteDecisionLog(work / "export.db")
    for decision in decisions:
        log.append(decision)  # type: ignore[arg-type]
    with moto_server() as url:
        client = s3_client(url, "us-east-1")
        client.create_bucket(Bucket="bench")
        started = time.perf_counter()
        report = export_decisions(log, client, S3Location.parse("s3://bench/audit"), source="bench")
        seconds = time.perf_counter() - started
    say(
        f"S3 export: {report.records_written} records in {report.objects_written} objects, {seconds:.2f} s "
        f"({report.records_written / seconds:,.0f} records/s)"
    )


def main() -> None:
    """Run every measurement and print the figures."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        canary_gates(work)
        (work / "notify").mkdir()
        notifier_cost(work)
        fleet = Fleet(load_paths([work / "notify"]).declarations)
        export_speed(work, list(_failing_decisions(fleet, DECISIONS_EXPORTED)))


if __name__ == "__main__":
    main()
