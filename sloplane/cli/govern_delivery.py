"""`sloplane govern delivery`: DORA's delivery figures from the decision log and the deployment-frequency advice
(`evaluator/governance/delivery.py` says what each figure is, `delivery_advice.py` each rule).

Exit codes: 0 printed; 1 the store is missing or cannot be read; 2 usage (a --since that is no positive duration,
a --service with no SLO declared, an --at or --format that is none). `--format json` prints the builder's dict;
`table` (the default) a table per service and each advice item with the rule and its inputs.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from sloplane.cli.common import DEFAULT_DB, Consoles, Paths, load_fleet, parse_instant
from sloplane.cli.report_options import At, Db, opened_sources, require_store, write_report
from sloplane.core.durations import format_duration, parse_duration
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.history.report_kinds import LOG_MISSING, ReportOptionError, report_now
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.rollups import RollupError

FORMATS = ("table", "json")
DEFAULT_SINCE_TEXT = "90d"
"""`governance.delivery.DEFAULT_SINCE` as text (that module loads jinja2 through the retro's imports; `evaluate`
must start fast, so it is imported when the command runs; a test checks the two agree)."""
Since = Annotated[str, typer.Option("--since", help="The window back from --at, e.g. 90d or 12w.")]
Service = Annotated[str | None, typer.Option("--service", help="Only this service (default: every service).")]
Format = Annotated[str, typer.Option("--format", help="table or json.")]


def _since(text: str) -> timedelta:
    try:
        found = parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--since") from None
    if found <= timedelta(0):
        raise typer.BadParameter(f"give a positive duration, not {text}", param_hint="--since")
    return found


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(timedelta(seconds=round(seconds)))


def _inputs(inputs: dict[str, Any]) -> str:
    """`key=value, …`, nested values as compact JSON (what `--format json` shows)."""
    return ", ".join(
        f"{key}={json.dumps(value, separators=(',', ':')) if isinstance(value, dict | list) else value}"
        for key, value in inputs.items()
    )


def _table(console: Consoles, report: dict[str, Any]) -> None:
    table = Table(title=f"Delivery {report['since']} to {report['at']} ({report['span']})")
    for column in ("service", "deploys", "failed", "CFR", "restore p50", "restore p90", "days/week", "heavy"):
        table.add_column(column, justify="left" if column == "service" else "right")
    table.add_column("advice")
    rows = [*report["services"], {**report["fleet"], "service": "fleet", "advice": []}]
    for entry in rows:
        restore = entry["timeToRestore"]
        table.add_row(
            entry["service"],
            str(entry["deployments"]),
            str(entry["failed"]),
            _percent(entry["changeFailureRate"]),
            _duration(restore["median"]),
            _duration(restore["p90"]),
            f"{entry['deployDaysPerWeek']:.2f}",
            str(entry["budgetHeavyDeployments"]),
            ", ".join(item["rule"] for item in entry["advice"]),
        )
    console.out.print(table)
    for entry in report["services"]:
        for item in entry["advice"]:
            console.out.print(f"{entry['service']}: [{item['rule']}] {item['message']}", markup=False)
            console.out.print(f"  inputs: {_inputs(item['inputs'])}", markup=False)
    for note in report["notes"]:
        console.out.print(f"note: {note}", markup=False)


def register(govern: typer.Typer, console: Consoles) -> None:
    """Add `govern delivery`."""

    @govern.command()
    def delivery(
        paths: Paths,
        db: Db = DEFAULT_DB,
        at: At = None,
        since: Since = DEFAULT_SINCE_TEXT,
        service: Service = None,
        output_format: Format = "table",
    ) -> None:
        """DORA figures from the decision log — deployments, change failure rate, time to restore, deploy days
        per week, budget share per deployment — and advice, each item naming its rule and inputs."""
        # why: the builder reads the retro's budget shares, whose imports load jinja2 (`evaluate` must start fast)
        from sloplane.evaluator.governance.delivery import check_service, delivery_report

        if output_format not in FORMATS:
            raise typer.BadParameter(f"give one of {', '.join(FORMATS)}", param_hint="--format")
        window = _since(since)
        generated: datetime = parse_instant(at) or report_now()
        fleet = load_fleet(console, paths)
        try:
            check_service(fleet, service)
        except ReportOptionError as error:
            raise typer.BadParameter(str(error), param_hint="--service") from None
        require_store(console, db, LOG_MISSING)
        try:
            with opened_sources(db, fleet) as sources:
                assert sources.log is not None  # opened_sources always opens the log
                report = delivery_report(fleet, sources.log, sources.rows, generated, since=window, service=service)
        except ReportOptionError as error:
            raise typer.BadParameter(str(error), param_hint=f"--{error.option}") from None
        except (RollupError, DecisionLogError, ControlsError) as error:
            console.err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        if output_format == "json":
            write_report(console, pretty_json(report), None)
        else:
            _table(console, report)
