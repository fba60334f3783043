"""`sloplane experiment`: the gates and alerts of an SLO's history replayed under another objective, beside what
they did (`evaluator/governance/experiment.py` says how each answer is worked out). Nothing is recorded.

Exit codes: 0 printed; 1 the store is missing or cannot be read, or Prometheus cannot be; 2 usage (an SLO nobody
declares, an --objective outside (0, 100), a --since that is no positive duration or longer than 400 days, an
--at or --format that is none). `--format json` prints the builder's dict; `table` (the default) three tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from sloplane.cli.common import DEFAULT_DB, Consoles, Paths, load_fleet, parse_instant, parse_window
from sloplane.cli.report_options import At, Db, opened_sources, require_store, write_report
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.history.report_kinds import LOG_MISSING, ReportOptionError, report_now
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.rollups import RollupError

FORMATS = ("table", "json")
RANGE_TIMEOUT = 60.0
"""Seconds a range query may take (as `report oncall`'s: 10,000 evaluations of a long window)."""
Slo = Annotated[str, typer.Option("--slo", help="The SLO experimented on.", show_default=False)]
Objective = Annotated[
    float, typer.Option("--objective", help="The objective to try, in percent as declared, e.g. 99.95.")
]
Since = Annotated[str, typer.Option("--since", help="The range back from --at, e.g. 90d (at most 400d).")]
Prometheus = Annotated[
    str | None, typer.Option("--prometheus", help="Replay the burn-rate alerts against this Prometheus.")
]
Format = Annotated[str, typer.Option("--format", help="table or json.")]


def _number(value: float | None, spec: str = ".1%") -> str:
    return "-" if value is None else format(value, spec)


def _decisions_table(report: dict[str, Any]) -> Table:
    decisions = report["decisions"]
    table = Table(title=f"Gate decisions flipped ({decisions['replayed']} replayed)", title_justify="left")
    for column in ("id", "decided at", "stage", "revision", "was", "would be", "reasons"):
        table.add_column(column, overflow="fold")
    for flip in decisions["flipped"]:
        table.add_row(
            flip["id"],
            flip["decidedAt"],
            flip["stage"] or "-",
            flip["revision"] or "-",
            flip["old"],
            flip["new"],
            ", ".join(reason["code"] for reason in flip["reasons"]),
        )
    return table


def _alerts_table(report: dict[str, Any]) -> Table:
    table = Table(title="Hours each alert tier fired", title_justify="left")
    for column in ("subject", "tier", "hours", "would be", "firings", "would be"):
        table.add_column(column, justify="left" if column in ("subject", "tier") else "right")
    for tier in report["alerts"]["tiers"]:
        table.add_row(
            tier["subject"],
            tier["tier"],
            f"{tier['hours']:.2f}",
            f"{tier['experimentHours']:.2f}",
            str(tier["firings"]),
            str(tier["experimentFirings"]),
        )
    return table


def _print(console: Consoles, report: dict[str, Any]) -> None:
    out = console.out
    objective = report["objective"]
    out.print(
        f"{report['slo']}: {objective['declared']:g}% → {objective['experiment']:g}%, "
        f"{report['since']} to {report['at']} ({report['span']}); nothing recorded",
        markup=False,
    )
    decisions = report["decisions"]
    out.print(_decisions_table(report))
    out.print(
        f"pass→fail {decisions['passToFail']}, fail→pass {decisions['failToPass']}, other changes "
        f"{decisions['otherChanges']}, unchanged {decisions['unchanged']}, not reproduced "
        f"{len(decisions['notReproduced'])}, replays left out {decisions['replaysLeftOut']}",
        markup=False,
    )
    days = report["days"]
    out.print(
        f"days with the budget exhausted at their end ({days['window']}): {days['exhausted']} of "
        f"{len(days['days'])}, would be {days['experimentExhausted']}"
        + (f" (changed: {', '.join(days['changed'])})" if days["changed"] else ""),
        markup=False,
        soft_wrap=True,
    )
    alerts = report["alerts"]
    if alerts["replayed"]:
        out.print(_alerts_table(report))
        for subject, why in alerts["notReplayed"].items():
            out.print(f"alerts of {subject} not replayed: {why}", markup=False, soft_wrap=True)
    else:
        out.print(f"alerts not replayed: {alerts['why']}", markup=False, soft_wrap=True)
    for note in report["notes"]:
        out.print(f"note: {note}", markup=False, soft_wrap=True)


def register(app: typer.Typer, console: Consoles) -> None:
    """Add `experiment`."""

    @app.command()
    def experiment(
        paths: Paths,
        slo: Slo,
        objective: Objective,
        since: Since = "90d",
        db: Db = DEFAULT_DB,
        prometheus: Prometheus = None,
        at: At = None,
        output_format: Format = "table",
    ) -> None:
        """Replay an SLO's gates and alerts over its history as if its objective had been --objective, without
        recording anything: decisions that would flip, days the budget would be exhausted, hours each alert tier
        would fire (with --prometheus) — beside what the declared objective did."""
        # why: the days read the retro's compliance periods, whose imports load jinja2 (`evaluate` must start fast)
        from sloplane.evaluator.governance.experiment import check_options, experiment_report
        from sloplane.evaluator.history.oncall import ReplayError

        if output_format not in FORMATS:
            raise typer.BadParameter(f"give one of {', '.join(FORMATS)}", param_hint="--format")
        window = parse_window(since, "--since")
        generated: datetime = parse_instant(at) or report_now()
        fleet = load_fleet(console, paths)
        try:
            check_options(fleet, slo, objective, window)
        except ReportOptionError as error:
            raise typer.BadParameter(str(error), param_hint=f"--{error.option}") from None
        require_store(console, db, LOG_MISSING)
        backend = None if prometheus is None else PrometheusBackend(prometheus, timeout=RANGE_TIMEOUT)
        try:
            with opened_sources(db, fleet) as sources:
                assert sources.log is not None  # opened_sources always opens the log
                report = experiment_report(
                    fleet,
                    sources.log,
                    sources.rows,
                    generated,
                    slo=slo,
                    objective=objective,
                    since=window,
                    backend=backend,
                )
        except (RollupError, DecisionLogError, ControlsError, ReplayError) as error:
            console.err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        if output_format == "json":
            write_report(console, pretty_json(report), None)
        else:
            _print(console, report)
