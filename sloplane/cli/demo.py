"""`make demo`'s evaluator part: a throw-away Prometheus with a synthetic day, the gate replayed.

Every example SLO gets a day of traffic ending now; checkout's production traffic has an incident
(10% errors for 45 minutes, starting three hours ago). The demo evaluates every SLO now, then
replays the checkout gate two hours before the incident and twenty minutes into it; gates the
healthy canary during the incident (compared with stable, it is not to blame); freezes checkout's
releases and gates again, then breaks the glass; printing every decision with its reasons, and
rolls the day up and writes its month's SLA report, the budget report, the quarterly review, the day's on-call
report (HTML, CSV, JSON each) and the status page into `--reports DIR`; stops the server.
Run: `python -m sloplane.cli.demo examples/slos --reports out/reports`.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console

from sloplane.cli.evaluator import answer_lines, measurement_table
from sloplane.core.fileio import write_files
from sloplane.evaluator.history.job import roll_up_into
from sloplane.evaluator.history.report_files import status_files
from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.history.report_kinds import KINDS, ReportSources
from sloplane.evaluator.history.status import status_page
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import BreakGlass, GateRequest
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.interop import load_declarations
from sloplane.sandbox import (
    PrometheusSandbox,
    Segment,
    Traffic,
    aligned_now,
    http_traffic,
    incident_day,
    latency_traffic,
    probe_traffic,
    rollout_traffic,
)
from sloplane.semantics.subjects import Fleet

DAY = timedelta(days=1)
INCIDENT_AT = timedelta(hours=21)
"""Into the synthetic day: the day ends now, so the incident started three hours ago."""
INCIDENT_FOR = timedelta(minutes=45)


def synthetic_day() -> tuple[list[Traffic], datetime]:
    """Traffic for every example SLO over the last day; checkout production has the incident."""
    end = aligned_now()
    steady = [Segment(DAY, 600.0, 0.0005)]
    checkout = incident_day(baseline=0.0005, incident_ratio=0.10, incident_at=INCIDENT_AT, incident_for=INCIDENT_FOR)
    traffics: list[Traffic] = [
        http_traffic(checkout, end=end, labels={"job": "checkout", "track": "stable"}),
        http_traffic([Segment(DAY, 60.0, 0.0005)], end=end, labels={"job": "checkout", "track": "canary"}),
        latency_traffic([Segment(DAY, 300.0, 0.02)], end=end, labels={"job": "search", "handler": "/api/search"}),
        probe_traffic(
            [Segment(DAY, 1.0, 0.001)],
            end=end,
            labels={"job": "blackbox", "instance": "https://admin.example.com/healthz"},
        ),
        http_traffic(steady, end=end, metric="payments_requests_total", labels={}),
        rollout_traffic([Segment(DAY, 0.05, 0.02)], end=end, labels={"rollout": "checkout"}),
    ]
    return traffics, end


def show(console: Console, evaluator: Evaluator, label: str, request: GateRequest) -> None:
    """Gate and print the decision with its reasons."""
    assert request.at is not None
    where = f"{request.slo}" + (f" [{request.stage}]" if request.stage else "")
    console.print(f"\ngate {where} at {request.at:%H:%M} UTC, {label}:", markup=False)
    for line in answer_lines(evaluator.gate(request).to_dict()):
        console.print(line, markup=False, soft_wrap=True)


def main(paths: list[str], reports: Path | None = None) -> int:
    """Run the demo (and write the reports of its day into `reports`); returns the process exit code."""
    console = Console(width=160)
    fleet = Fleet(load_declarations(paths))
    traffics, end = synthetic_day()
    with (
        tempfile.TemporaryDirectory() as folder,
        PrometheusSandbox(Path(folder) / "prometheus", traffics) as prometheus,
    ):
        console.print(f"throw-away Prometheus at {prometheus.url} with a synthetic day ending {end}", markup=False)
        log = SqliteDecisionLog(Path(folder) / "decisions.db")
        controls = ReleaseControls(Path(folder) / "decisions.db")
        evaluator = Evaluator(fleet, PrometheusBackend(prometheus.url), log, controls=controls)
        console.print(measurement_table(evaluator.evaluate(end)))
        incident = end - DAY + INCIDENT_AT
        before, during = incident - timedelta(hours=2), incident + timedelta(minutes=20)
        steps: list[tuple[str, GateRequest]] = [
            ("2h before the incident", GateRequest(slo="checkout-availability", at=before, revision="demo")),
            ("20 min into the incident", GateRequest(slo="checkout-availability", at=during, revision="demo")),
            (
                "the canary, 20 min into the incident",
                GateRequest(slo="checkout-availability", stage="canary", at=during, revision="demo"),
            ),
        ]
        for label, request in steps:
            show(console, evaluator, label, request)
        freeze_at = before - timedelta(minutes=30)
        controls.freeze("checkout", "quarter-end close (demo)", "release-manager", at=freeze_at)
        frozen = GateRequest(slo="checkout-availability", at=before, revision="demo")
        show(console, evaluator, "2h before the incident, checkout frozen", frozen)
        glass = BreakGlass("security fix CVE-2026-0001 (demo)", "on-call")
        show(console, evaluator, "the same, breaking the glass", replace(frozen, break_glass=glass))
        controls.close()
        console.print(f"\n{log.count()} decisions recorded", markup=False)
        if reports is not None:
            write_reports(console, fleet, PrometheusBackend(prometheus.url), log, end, Path(folder), reports)
        console.print("stopping Prometheus", markup=False)
    return 0


def write_reports(
    console: Console,
    fleet: Fleet,
    backend: PrometheusBackend,
    log: SqliteDecisionLog,
    end: datetime,
    folder: Path,
    reports: Path,
) -> None:
    """Roll the synthetic day up, as `serve` does every hour, and write its month's SLA report, the budget report
    and the quarterly review at its end, the on-call report of the day (its page-tier alerts replayed), and the
    status page: each kind as `sloplane report` writes it (`history.report_kinds`)."""
    store = SqliteRollups(folder / "decisions.db")
    controls = ReleaseControls(folder / "decisions.db")
    try:
        written = roll_up_into(store, fleet, backend, end - DAY, end)
        console.print(f"rolled up {written.rows} hourly rows", markup=False)
        sources = ReportSources(
            fleet, lambda since, until, names: store.read(since=since, until=until, slos=names), log, controls, backend
        )
        label, quarter = f"{end:%Y-%m}", f"{end.year}-Q{(end.month - 1) // 3 + 1}"
        wanted = {
            f"sla-{label}": ("sla", {"month": label}),
            "budget": ("budget", {}),
            f"quarterly-{quarter}": ("quarterly", {"quarter": quarter}),
            "oncall": ("oncall", {"from": (end - DAY).isoformat(), "to": end.isoformat()}),
        }
        for stem, (kind, options) in wanted.items():
            report = KINDS[kind].build(sources, options, end)
            write_files(reports, {f"{stem}.{form}": KINDS[kind].file()(report, form) for form in FORMATS})
            console.print(f"{kind} report: open {reports / f'{stem}.html'} (also .csv and .json)", markup=False)
        rows = store.read(since=end - 2 * DAY, until=end + DAY)
    finally:
        controls.close()
        store.close()
    measurements = Evaluator(fleet, backend, log).evaluate(end)
    write_files(reports / "status", status_files(status_page(fleet, measurements, rows, end, name="sloplane demo")))
    console.print(f"status page: open {reports / 'status' / 'index.html'} (and status.json)", markup=False)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    target = None
    if "--reports" in arguments:
        at = arguments.index("--reports")
        target = Path(arguments[at + 1])
        del arguments[at : at + 2]
    sys.exit(main(arguments or ["examples/slos"], target))
