"""What `GET /v1/slos/{name}/burn` costs with a long decision log: the deployment split over 100,000 records.

One service, 30 days of gates: 500 revisions, 200 live gate decisions each (a pipeline polling its
gate), recorded in a real SQLite decision log. The backend answers every query at once with one
sample, so the figures are the evaluator's own work: reading the log into deployment windows and
splitting the period by them (two counts per window). Prints figures, asserts nothing about speed.

Run: `.venv/bin/python -m bench.burn [RECORDS]` (100,000 by default; about a minute to record them).
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sloplane.evaluator.measuring.backends.base import RangeSeries, Sample
from sloplane.evaluator.model import Decision, GateRequest, Measurement, Outcome, Reason
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.interop import load_paths
from sloplane.semantics.subjects import Fleet

NOW = datetime(2026, 11, 30, tzinfo=UTC)
REVISIONS = 500

DECLARATION = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: checkout-availability}
spec:
  service: checkout
  owners: {team: payments}
  objective: 99.9
  window: 30d
  sli: {http: {metric: http_requests_total, selector: {job: checkout}}}
"""


class InstantBackend:
    """Answers every query at once with one sample: what is left is the evaluator's own work."""

    name = "instant"

    def __init__(self) -> None:
        self.queries = 0

    def query(self, expression: str, at: datetime) -> list[Sample]:
        """No recording rules; each part of a grouped read, and each count, one sample of 1,000."""
        self.queries += 1
        if expression.startswith("count by (slo)"):
            return []
        asked = re.findall(r'"sloplane_ask", "([^"]+)"', expression)
        if asked:
            return [Sample({"job": "checkout", "sloplane_ask": part}, 1000.0) for part in asked]
        return [Sample({}, 1000.0)]

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        raise NotImplementedError

    def healthy(self) -> tuple[bool, str]:
        return True, "ok"


def _record(log: SqliteDecisionLog, count: int) -> None:
    """`count` live decisions: one revision after another, gated every few minutes while it rolls out."""
    per_revision = max(1, count // REVISIONS)
    spacing = timedelta(days=30) / count
    for index in range(count):
        decided = NOW - timedelta(days=30) + index * spacing
        revision = f"r{index // per_revision:04d}"
        request = GateRequest(slo="checkout-availability", revision=revision, pipeline=f"deploy-{revision}")
        measurement = Measurement("checkout-availability", None, 99.9, decided, decided - timedelta(days=30))
        log.append(
            Decision(
                id=uuid.uuid4().hex,
                decided_at=decided,
                request=request,
                slo="checkout-availability",
                stage=None,
                outcome=Outcome.PASS,
                reasons=(Reason("budget", "ok", {}),),
                measurement=measurement,
                policy={},
                policy_version="bench",
                service="checkout",
            )
        )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "slo.yaml"
        path.write_text(DECLARATION, encoding="utf-8")
        fleet = Fleet(load_paths([path]).declarations)
        log = SqliteDecisionLog(Path(folder) / "decisions.db")
        started = time.perf_counter()
        _record(log, count)
        print(f"recorded {count:,} decisions in {time.perf_counter() - started:.1f} s", flush=True)
        backend = InstantBackend()
        evaluator = Evaluator(fleet, backend, log, clock=lambda: NOW)
        timings = []
        for _ in range(5):
            backend.queries = 0
            started = time.perf_counter()
            split = evaluator.deployment_burn("checkout-availability", NOW)
            timings.append(time.perf_counter() - started)
        print(
            f"burn split over {count:,} records, {len(split.deployments)} deployment windows: "
            f"median {statistics.median(timings):.3f} s, best {min(timings):.3f} s of 5 "
            f"({backend.queries} backend queries per split)"
        )
        log.close()


if __name__ == "__main__":
    main()
