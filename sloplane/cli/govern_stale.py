"""`sloplane govern stale`: the SLOs the review loop should look at — reviews overdue, objectives that never burn or
keep missing, usage drift, budgets too small to measure, no data, unused, ownership gaps — each finding with its
rule, its inputs and the Workbook action (`evaluator/governance/stale.py`).

Exit codes as the reports': 0 printed; 1 the store could not be read (or does not exist); 2 usage (a bad
`--cadence`, `--at` or `--format`).
"""

from __future__ import annotations

import sys
from datetime import UTC
from typing import Annotated, Any

import typer
from rich.table import Table

from sloplane.cli.common import DEFAULT_DB, Consoles, Paths, parse_instant
from sloplane.cli.report_options import At, Db, opened_sources, require_store
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.governance.debt import open_debt_lookup
from sloplane.evaluator.governance.feedback_blind_spots import STALE_SPAN, blind_spots
from sloplane.evaluator.governance.stale import StaleOptionError, parse_cadence, stale_report
from sloplane.evaluator.history.report_kinds import report_now
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.feedback import FeedbackError
from sloplane.evaluator.storage.open import open_feedback
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

FORMATS = ("table", "json")

GovernFormat = Annotated[str, typer.Option("--format", help="table or json.")]
Cadence = Annotated[
    str | None,
    typer.Option(
        "--cadence",
        help="Days between reviews per tier, e.g. critical=30d,high=90d,medium=180d,low=365d (tiers not named "
        "keep these defaults).",
        show_default=False,
    ),
]


def stale_table(report: dict[str, Any]) -> Table:
    """One row per finding: tier, SLO, rule, action and the finding in words."""
    table = Table(title=f"stale SLOs at {report['at']}", title_justify="left")
    for column in ("tier", "slo", "rule", "action", "finding"):
        table.add_column(column, overflow="fold")
    for finding in report["findings"]:
        where = finding["slo"] or f"service {finding['service']}"
        table.add_row(finding["tier"] or "-", where, finding["rule"], finding["action"], finding["message"])
    return table


def not_checked_lines(report: dict[str, Any]) -> list[str]:
    """The rules that could not be judged, one line each."""
    return [
        f"not checked: {entry['slo'] or 'every SLO'} {entry['rule']}: {entry['reason']}"
        for entry in report["notChecked"]
    ]


def register(govern: typer.Typer, console: Consoles) -> None:
    """Add `govern stale` to the `govern` group."""

    @govern.command()
    def stale(
        paths: Paths,
        db: Db = DEFAULT_DB,
        at: At = None,
        output_format: GovernFormat = "table",
        cadence: Cadence = None,
    ) -> None:
        """Stale and outdated SLOs: reviews overdue, objectives that never burn or keep missing, usage drift,
        budgets too small to measure, no data, unused, ownership gaps, and services with customer reports monitoring
        missed (blind spots) — each with its rule, inputs and action."""
        if output_format not in FORMATS:
            raise typer.BadParameter(f"give one of {', '.join(FORMATS)}", param_hint="--format")
        try:
            days = parse_cadence(cadence)
        except StaleOptionError as error:
            raise typer.BadParameter(str(error), param_hint=f"--{error.option}") from None
        generated = (parse_instant(at) or report_now()).astimezone(UTC)
        loaded = console.load_all(paths, False)
        fleet = Fleet(loaded.declarations)
        open_debt = open_debt_lookup([item.debt for item in loaded.debts])
        require_store(console, db)
        since = generated - STALE_SPAN
        try:
            with opened_sources(db, fleet) as sources, open_feedback(db) as feedback:
                spots = blind_spots(feedback.reports(since=since, until=generated), fleet, since, generated)
                report = stale_report(
                    fleet,
                    sources.rows,
                    generated,
                    log=sources.log,
                    cadence=days,
                    open_debt=open_debt,
                    blind_spots=spots,
                )
        except (RollupError, DecisionLogError, ControlsError, FeedbackError) as error:
            console.err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        if output_format == "json":
            sys.stdout.write(pretty_json(report))
            return
        console.out.print(stale_table(report))
        counts = ", ".join(f"{rule} {count}" for rule, count in report["summary"].items() if count)
        console.out.print(f"{len(report['findings'])} findings" + (f": {counts}" if counts else ""), markup=False)
        for line in not_checked_lines(report):
            console.out.print(line, markup=False, soft_wrap=True)
