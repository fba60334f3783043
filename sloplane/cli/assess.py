"""`sloplane assess`: the impact assessment of a risky change — SLOs affected (consumers included), budget left
and what an outage would cost, how fast each alert tier would see it, overlaps with freezes, incidents and
maintenance, change failure rate, canary and rollback, approvers, and a verdict with its reasons and conditions
(`evaluator/governance/assessment.py` says every rule); `--record` keeps it in the assessments store under an id
that a gate policy may require (`gate.requireAssessment`).

Stores: `--db` is the decision log (change failure rate) and where `--record` writes; `--controls` the freezes and
incidents (default: `--db`). A SQLite file that is not there is read as empty and said so on standard error: an
assessment before the first gate is still an assessment. Exit codes: 0 printed (whatever the verdict: a pipeline
reads it from the JSON); 1 a store that cannot be read or written; 2 usage (no backend; a bad --risk, --window,
--outage, --at or --format; a --service with no SLO).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sloplane.cli.backends import (
    DEFAULT_DATADOG_DELAY,
    DatadogDelayOption,
    DatadogOption,
    PrometheusOption,
    backends,
)
from sloplane.cli.common import (
    DEFAULT_DB,
    Consoles,
    Paths,
    load_fleet,
    parse_instant,
    parse_window,
    store_missing,
    store_name,
)
from sloplane.cli.evaluator import NullLog
from sloplane.cli.report_options import Db
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.history.report_kinds import ReportOptionError
from sloplane.evaluator.model import Freeze, Incident
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.assessments import AssessmentError
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.open import open_assessments, open_decision_log, open_release_controls, open_rollups
from sloplane.evaluator.storage.rollups import RollupError

if TYPE_CHECKING:
    from sloplane.evaluator.governance.assessment_rules import ControlsHistory
    from sloplane.evaluator.governance.delivery import DeliveryLog, RowReader

FORMATS = ("table", "json")
DEFAULT_WINDOW = timedelta(hours=1)

Service = Annotated[str, typer.Option("--service", help="The service the change is to.", show_default=False)]
Risk = Annotated[str, typer.Option("--risk", help="low, medium, high or critical.", show_default=False)]
Window = Annotated[
    str | None,
    typer.Option("--window", help="The change window START/END (RFC 3339 instants; default: --at to an hour later)."),
]
Outage = Annotated[
    str | None,
    typer.Option("--outage", help="The total outage to cost, e.g. 30m (default by risk: 5m, 15m, 30m, 60m)."),
]
Controls = Annotated[
    str | None,
    typer.Option("--controls", help="Freezes and incidents: a SQLite file or a postgresql:// URL (default: --db)."),
]
AssessAt = Annotated[
    str | None,
    typer.Option("--at", help="Assess as of this instant (default: now, to the fleet's evaluation interval)."),
]
Record = Annotated[bool, typer.Option("--record", help="Keep the assessment in --db's assessments store.")]
Format = Annotated[str, typer.Option("--format", help="table or json.")]


class _Empty:
    """The release controls of a store that does not exist: none recorded."""

    def freezes(
        self, *, at: datetime | None = None, active_only: bool = True, service: str | None = None
    ) -> list[Freeze]:
        return []

    def incidents(self, *, at: datetime | None = None, open_only: bool = True) -> list[Incident]:
        return []


def _no_rows(since: datetime, until: datetime, names: list[str]) -> list[Any]:
    return []


def parse_change_window(text: str | None, at: datetime) -> tuple[datetime, datetime]:
    """START/END, or `at` to an hour later; a usage error naming --window otherwise."""
    if text is None:
        return at, at + DEFAULT_WINDOW
    start, separator, end = text.partition("/")
    if not separator:
        raise typer.BadParameter("give START/END, two RFC 3339 instants", param_hint="--window")
    first, last = parse_instant(start, "--window"), parse_instant(end, "--window")
    assert first is not None and last is not None
    if last <= first:
        raise typer.BadParameter(f"the window ends ({end}) before it starts ({start})", param_hint="--window")
    return first.astimezone(UTC), last.astimezone(UTC)


@contextmanager
def _sources(
    console: Consoles, db: str, controls: str
) -> Iterator[tuple[DeliveryLog | None, RowReader, ControlsHistory]]:
    """The decision log and rollups of --db and the controls of --controls; a missing SQLite file is read as empty."""
    with ExitStack() as stack:
        log: DeliveryLog | None = None
        rows: RowReader = _no_rows
        if store_missing(db):
            console.err.print(f"no decision log at {db}: the change failure rate is unknown", markup=False)
        else:
            opened_log = open_decision_log(db)
            stack.callback(opened_log.close)
            log = opened_log
            store = open_rollups(db)
            stack.callback(store.close)
            rows = lambda since, until, names: store.read(since=since, until=until, slos=names)  # noqa: E731
        found: ControlsHistory = _Empty()
        if store_missing(controls):
            console.err.print(
                f"no release controls at {store_name(controls)}: no freeze or incident known", markup=False
            )
        else:
            opened_controls = open_release_controls(controls)
            stack.callback(opened_controls.close)
            found = opened_controls
        yield log, rows, found


def assessment_table(report: dict[str, Any]) -> Table:
    """One row per affected SLO: its relation, budget left, the outage's share, and the first page."""
    window = report["window"]
    title = (
        f"{report['service']} at {report['risk']} risk, {window['start']} to {window['end']}: "
        f"{report['outage']['minutes']:g} min outage"
    )
    table = Table(title=title, title_justify="left")
    for column in ("slo", "tier", "relation", "budget left", "outage costs", "after", "first page"):
        table.add_column(column, overflow="fold")
    for slo in report["slos"]:
        relation = slo["relation"] if slo["via"] is None else f"{slo['relation']} of {slo['via']}"
        page = slo["firstPageSeconds"]
        table.add_row(
            slo["slo"],
            slo["tier"],
            relation,
            _percent(slo["budgetRemaining"]),
            _percent(slo["outageShare"]),
            _percent(slo["remainingAfter"]) + (" (exhausted)" if slo["exhausts"] else ""),
            "never" if page is None else f"{page / 60:.1f} min",
        )
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def assessment_lines(report: dict[str, Any]) -> list[str]:
    """Everything after the table, one line each: delivery, safeguards, approvers, the verdict and its findings."""
    lines = []
    delivery = report["delivery"]
    if delivery is None:
        lines.append("change failure rate: unknown (no decision log)")
    elif not delivery["sufficient"]:
        lines.append(
            f"change failure rate: {delivery['deployments']} deployment(s) in {delivery['span']}, fewer than "
            f"{delivery['minimumDeployments']}: too few to judge"
        )
    else:
        lines.append(
            f"change failure rate: {_percent(delivery['changeFailureRate'])} "
            f"({delivery['failed']} of {delivery['deployments']} in {delivery['span']})"
        )
    guards = report["safeguards"]
    lines.append(f"canary: {'yes' if guards['canary'] else 'no'}; rollback: {'yes' if guards['rollback'] else 'no'}")
    approval = report["approvers"]
    named = ", ".join(f"{p['role']}: {p['name']} ({p['contact']})" for p in approval["people"]) or "none named"
    lines.append(f"approvers ({approval['tier']} tier, {approval['risk']} risk): {named}")
    lines.append(f"verdict: {report['verdict']}")
    lines += [f"  defer: [{item['rule']}] {item['message']}" for item in report["reasons"]]
    lines += [f"  condition: [{item['rule']}] {item['message']}" for item in report["conditions"]]
    return lines


def register(app: typer.Typer, console: Consoles) -> None:
    """Add `assess` to the `sloplane` app."""

    @app.command()
    def assess(
        paths: Paths,
        service: Service,
        risk: Risk,
        window: Window = None,
        outage: Outage = None,
        prometheus: PrometheusOption = None,
        datadog: DatadogOption = None,
        datadog_delay: DatadogDelayOption = DEFAULT_DATADOG_DELAY,
        db: Db = DEFAULT_DB,
        controls: Controls = None,
        at: AssessAt = None,
        record: Record = False,
        output_format: Format = "table",
    ) -> None:
        """The impact assessment of a risky change to a service during a window: SLOs affected (consumers through
        dependencies and composites included), budget left and what an outage would cost, how fast each alert
        tier would detect it, overlaps with freezes, incidents and maintenance, change failure rate, canary and
        rollback, approvers, and a verdict (proceed, proceed-with-conditions, defer) with each reason."""
        # why: the builder reads the change failure rate through the retro's modules, which load jinja2
        from sloplane.evaluator.governance.assessment import assessment_report, check_options

        if output_format not in FORMATS:
            raise typer.BadParameter(f"give one of {', '.join(FORMATS)}", param_hint="--format")
        length = None if outage is None else parse_window(outage, "--outage")
        moment = parse_instant(at)
        if prometheus is None and datadog is None:
            raise typer.BadParameter("give --prometheus URL, --datadog SITE, or both", param_hint="--prometheus")
        backend, counts = backends(prometheus, datadog, datadog_delay)
        fleet = load_fleet(console, paths)
        evaluator = Evaluator(fleet, backend, NullLog(), datadog=counts)
        instant = (moment or evaluator.now()).astimezone(UTC)
        span = parse_change_window(window, instant)
        try:
            check_options(fleet, service, risk, span, length)
        except ReportOptionError as error:
            raise typer.BadParameter(str(error), param_hint=f"--{error.option}") from None
        measurements = evaluator.evaluate(instant)
        try:
            with _sources(console, db, controls or db) as (log, rows, found):
                report = assessment_report(
                    fleet,
                    service,
                    risk,
                    span,
                    instant,
                    measurements=measurements,
                    controls=found,
                    log=log,
                    rows=rows,
                    outage=length,
                )
            if record:
                with open_assessments(db) as store:
                    report = store.get(store.record(report))
        except (RollupError, DecisionLogError, ControlsError, AssessmentError) as error:
            console.err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        if output_format == "json":
            sys.stdout.write(pretty_json(report))
            return
        console.out.print(assessment_table(report))
        for line in assessment_lines(report):
            console.out.print(line, markup=False, soft_wrap=True)
        if record:
            console.out.print(f"recorded as {report['id']}", markup=False)
