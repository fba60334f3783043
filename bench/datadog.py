"""What reading SLIs from Datadog costs in requests, against the local Datadog API (tests/datadog_api.py).

Prints, for fleets of SLOs (30d, the default windows) read from Datadog only — one fleet whose SLOs
share one metric (the http shorthand by service: their queries regroup as `by {service}`) and one
whose SLOs each have a metric of their own (nothing to regroup, the worst case):
- requests per gate (one SLO, cold) and per fleet evaluation at one instant, and their time;
- how many SLOs one evaluator keeps fresh every minute under a limit of 100 requests per 10 s
  (600 a minute): the largest fleet whose evaluation needs at most 600 requests, found by asking
  the evaluator's own plan, then one evaluation of that fleet run against the local API under that
  limit, showing how long the limiter made it wait and that no request drew a 429 or was sent
  while the limit was spent.

The local API answers from memory in a few milliseconds, so the times are sloplane's own work plus
the rate limiter's waits, not Datadog's latency. Prints figures, asserts nothing about speed.

Run: `.venv/bin/python -m bench.datadog`.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sloplane.evaluator.measuring.backends.datadog import DatadogCounts, RateLimits
from sloplane.evaluator.measuring.datadog_reads import DatadogPlan, subject_queries
from sloplane.evaluator.model import GateRequest
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.interop import load_paths
from sloplane.semantics.subjects import Fleet
from tests.datadog_api import SCALAR, DatadogAPI, RateLimit

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LIMIT, PERIOD = 100, 10
PER_MINUTE = LIMIT * 60 // PERIOD
BOUND = 2_000


def _sli(i: int, shared: bool) -> str:
    """One metric for the whole fleet (the http shorthand, by service), or a metric of its own per SLO."""
    if shared:
        return f"{{http: {{metric: http_requests_total, selector: {{service: svc-{i}}}}}}}"
    errors, total = f"sum:svc{i}.errors{{env:prod}}.as_count()", f"sum:svc{i}.hits{{env:prod}}.as_count()"
    return f"{{ratio: {{errors: {{datadog: '{errors}'}}, total: {{datadog: '{total}'}}}}}}"


def _fleet(count: int, folder: Path, shared: bool = True) -> Fleet:
    documents = [
        f"apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: svc-{i}}}\n"
        f"spec:\n  service: svc-{i}\n  owners: {{team: t{i % 10}}}\n  objective: 99.9\n  window: 30d\n"
        f"  targets: [datadog]\n  sli: {_sli(i, shared)}\n"
        for i in range(count)
    ]
    path = folder / f"fleet-{count}-{'shared' if shared else 'own'}.yaml"
    path.write_text("---\n".join(documents))
    loaded = load_paths([path])
    if loaded.errors:
        raise SystemExit("\n".join(d.render() for d in loaded.errors))
    return Fleet(loaded.declarations)


def _history(api: DatadogAPI, count: int, shared: bool) -> None:
    start = NOW - timedelta(hours=2)
    for i in range(count):
        points = [((start + timedelta(minutes=m)).timestamp(), 600.0) for m in range(120)]
        errors = [((start + timedelta(minutes=m)).timestamp(), 0.6) for m in range(120)]
        if shared:
            api.add_series("http_requests.count", {"service": f"svc-{i}", "code": "200"}, points)
            api.add_series("http_requests.count", {"service": f"svc-{i}", "code": "500"}, errors)
        else:
            api.add_series(f"svc{i}.hits", {"env": "prod"}, points)
            api.add_series(f"svc{i}.errors", {"env": "prod"}, errors)


def _planned(fleet: Fleet, counts: DatadogCounts) -> int:
    """Requests one evaluation of the whole fleet needs (the evaluator's own plan, nothing sent)."""
    evaluator = Evaluator(fleet, None, SqliteDecisionLog(Path(tempfile.mkdtemp()) / "p.db"), datadog=counts)
    plan = DatadogPlan(counts, NOW)
    measurer = evaluator.measurer
    for declaration in fleet.values():
        for target in measurer.declared_subjects(declaration):
            queries = subject_queries(declaration, target.subject)
            assert queries is not None
            plan.add_subject(
                target.key,
                queries,
                windows=measurer.windows_of(declaration),
                period=timedelta(days=30),
                excluded=(),
                staleness=measurer.staleness,
            )
    return plan.requests_needed()


def _table(folder: Path, shared: bool) -> None:
    print("fleet  requests/gate  requests/fleet evaluation  seconds")
    for count in (1, 10, 100, 500):
        fleet = _fleet(count, folder, shared)
        with _Served(count, shared) as api:
            counts = DatadogCounts(api.url, "k", "a", limits=RateLimits())
            evaluator = Evaluator(fleet, None, SqliteDecisionLog(folder / f"g{count}{shared}.db"), datadog=counts)
            evaluator.gate(GateRequest(slo="svc-0", at=NOW))
            per_gate = counts.requests_sent
            counts = DatadogCounts(api.url, "k", "a", limits=RateLimits())
            evaluator = Evaluator(fleet, None, SqliteDecisionLog(folder / f"f{count}{shared}.db"), datadog=counts)
            began = time.perf_counter()
            evaluator.evaluate(NOW)
            seconds = time.perf_counter() - began
            print(f"{count:5d}  {per_gate:13d}  {counts.requests_sent:25d}  {seconds:7.2f}")


def _fresh_per_minute(folder: Path, shared: bool) -> None:
    probe = DatadogCounts("http://127.0.0.1:9", "k", "a")
    low, high = 1, BOUND
    while low < high:  # the largest fleet whose one evaluation fits a minute's budget
        middle = (low + high + 1) // 2
        if _planned(_fleet(middle, folder, shared), probe) <= PER_MINUTE:
            low = middle
        else:
            high = middle - 1
    needed = _planned(_fleet(low, folder, shared), probe)
    bound = " (the search's upper bound)" if low == BOUND else ""
    print(f"under {LIMIT} requests / {PERIOD} s ({PER_MINUTE} a minute): {low} SLOs kept fresh every minute{bound}")
    print(f"  ({needed} requests per evaluation of {low} SLOs)")
    fleet = _fleet(low, folder, shared)
    with _Served(low, shared, limit=RateLimit("query_scalar_public", LIMIT, PERIOD)) as api:
        counts = DatadogCounts(api.url, "k", "a", limits=RateLimits())
        evaluator = Evaluator(fleet, None, SqliteDecisionLog(folder / f"limited{shared}.db"), datadog=counts)
        began = time.perf_counter()
        measurements = evaluator.evaluate(NOW)
        seconds = time.perf_counter() - began
        refused = [r for r in api.requests(SCALAR) if r.status == 429]
        failed = sum(1 for m in measurements if m.error)
        waited = max((m.rate_limit_wait_seconds or 0.0) for m in measurements)
        print(
            f"  one evaluation of {low} SLOs under the limit: {counts.requests_sent} requests in {seconds:.1f} s, "
            f"{waited:.1f} s of it waiting for the limit; 429s: {len(refused)}, "
            f"sent while spent: {len(api.sent_during_backoff())}, failed measurements: {failed}"
        )


def main() -> None:
    """Print the figures."""
    folder = Path(tempfile.mkdtemp(prefix="sloplane-bench-datadog-"))
    for shared, title in ((True, "one metric, SLOs by service (grouped by {service})"), (False, "a metric per SLO")):
        print(f"\n== {title}")
        _table(folder, shared)
        _fresh_per_minute(folder, shared)


class _Served:
    """A local Datadog API holding two hours of traffic for `count` services."""

    def __init__(self, count: int, shared: bool, limit: RateLimit | None = None) -> None:
        self.api = DatadogAPI(limits=None if limit is None else {SCALAR: limit})
        _history(self.api, count, shared)

    def __enter__(self) -> DatadogAPI:
        self.api.start()
        return self.api

    def __exit__(self, *_: object) -> None:
        self.api.stop()


if __name__ == "__main__":
    main()
