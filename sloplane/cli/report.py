"""`sloplane report …`: reports people read, from the rollups (`sloplane rollup`) and the decision log.

Exit codes: 0 written; 1 the store could not be read; 2 usage (a period that is none, a zone that would cut
the rollups' hours in two). The file named by --out is written whole or not at all (atomically, never through
a link); without --out the report goes to standard output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from sloplane.cli import report_oncall, report_quarterly, report_retro
from sloplane.cli.backends import (
    DEFAULT_DATADOG_DELAY,
    DatadogDelayOption,
    DatadogOption,
    PrometheusOption,
    backends,
)
from sloplane.cli.common import DEFAULT_DB, Consoles, Paths, load_fleet, parse_instant, store_missing
from sloplane.cli.evaluator import NullLog
from sloplane.cli.report_options import (
    At,
    Db,
    Out,
    OutputFormat,
    Zone,
    build_report,
    write_report,
)
from sloplane.core.fileio import UnsafeOutputError, write_files
from sloplane.evaluator.history.report_kinds import KINDS
from sloplane.evaluator.history.rollup import roll_up
from sloplane.evaluator.history.status import DAYS, status_page
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Measurement
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.open import open_release_controls, open_rollups
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

Month = Annotated[str | None, typer.Option("--month", help="The month, YYYY-MM.")]
Quarter = Annotated[str | None, typer.Option("--quarter", help="Or the quarter, YYYY-Qn.")]


def register(app: typer.Typer, console: Consoles) -> None:
    """Add the `report` group and `status` to the `sloplane` app."""
    register_status(app, console)
    reports = typer.Typer(help="Reports from the rollups and the decision log (HTML, CSV, JSON).", no_args_is_help=True)
    app.add_typer(reports, name="report")
    register_budget(reports, console)
    report_quarterly.register(reports, console)
    report_retro.register(reports, console)
    report_oncall.register(reports, console)

    @reports.command()
    def sla(
        paths: Paths,
        db: Db = DEFAULT_DB,
        month_text: Month = None,
        quarter_text: Quarter = None,
        zone: Zone = None,
        output_format: OutputFormat = "html",
        out: Out = None,
        at: At = None,
    ) -> None:
        """Per SLO over a month or quarter: the objective in force, met or missed, budget used, bad minutes,
        exclusions, the deployment share of the burn, and the evidence (queries, policy versions, decision-log
        range, content hash)."""
        # why: the HTML templates load jinja2, which only this command needs (`evaluate` must start fast)
        from sloplane.evaluator.history.report_files import sla_file

        options = {"month": month_text, "quarter": quarter_text, "tz": zone}
        report = build_report(console, KINDS["sla"], paths, db, options, output_format, at)
        write_report(console, sla_file(report, output_format), out)


def register_status(app: typer.Typer, console: Consoles) -> None:
    """Add `status` to the `sloplane` app."""

    @app.command()
    def status(
        paths: Paths,
        out: Annotated[Path, typer.Option("--out", help="The folder to write index.html and status.json into.")],
        prometheus: PrometheusOption = None,
        datadog: DatadogOption = None,
        datadog_delay: DatadogDelayOption = DEFAULT_DATADOG_DELAY,
        db: Annotated[
            str | None,
            typer.Option(
                "--db",
                help="Rollups (sloplane rollup) for the 90 daily bars, and open incidents; default: the bars are "
                "read from Prometheus and Datadog as the gate reads them (only the days they still keep).",
            ),
        ] = None,
        at: Annotated[str | None, typer.Option("--at", help="The page at this instant (default: now).")] = None,
        name: Annotated[str, typer.Option("--name", help="The page's name.")] = "sloplane",
    ) -> None:
        """A static status page: a component per service in Statuspage's states (from the burn-rate alerts and
        exclusions), 90 daily bars of bad against allowed events, the uptime, and status.json in Statuspage's
        summary shape. The states are read as the gate reads them: from --prometheus, --datadog, or both."""
        # why: the HTML templates load jinja2, which only this command needs (`evaluate` must start fast)
        from sloplane.evaluator.history.report_files import status_files

        moment = parse_instant(at) or datetime.now(UTC).replace(microsecond=0)
        backend, counts = backends(prometheus, datadog, datadog_delay)
        fleet = load_fleet(console, paths)
        measurements = Evaluator(fleet, backend, NullLog(), datadog=counts).evaluate(moment)
        since = moment - timedelta(days=DAYS)
        if db is not None and store_missing(db):
            console.err.print(f"no rollups at {db}: run `sloplane rollup` first, or leave --db out", markup=False)
            raise typer.Exit(1)
        try:
            page = _page(fleet, (backend, counts), db, since, moment, measurements, name)
        except (RollupError, ControlsError) as error:
            console.err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        try:
            write_files(out, status_files(page))
        except (UnsafeOutputError, OSError) as error:
            console.err.print(f"cannot write {out}: {error}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        console.err.print(f"wrote {out / 'index.html'} and {out / 'status.json'}", markup=False)


def _page(
    fleet: Fleet,
    readers: tuple[PrometheusBackend | None, DatadogCounts | None],
    db: str | None,
    since: datetime,
    until: datetime,
    measurements: list[Measurement],
    name: str,
) -> dict[str, Any]:
    """The status page: its bars from the store's rows, read a service at a time, and its open incidents; or,
    without a store, from rows read now from Prometheus and Datadog as the gate reads them (only the days they
    keep)."""
    if db is None:
        backend, counts = readers
        rows = roll_up(fleet, backend, since, until, datadog=counts).rows
        return status_page(fleet, measurements, rows, until, name=name)
    controls = open_release_controls(db)
    try:
        incidents = controls.incidents(at=until)
    finally:
        controls.close()
    store = open_rollups(db)
    try:
        return status_page(
            fleet,
            measurements,
            [],
            until,
            name=name,
            incidents=incidents,
            read=lambda names: store.read(since=since, until=until, slos=names),
        )
    finally:
        store.close()


def register_budget(reports: typer.Typer, console: Consoles) -> None:
    """Add `report budget`."""

    @reports.command()
    def budget(
        paths: Paths,
        db: Db = DEFAULT_DB,
        week: Annotated[
            str | None, typer.Option("--week", help="The ISO week (YYYY-Www) the report ends with, in UTC.")
        ] = None,
        output_format: OutputFormat = "html",
        out: Out = None,
        at: Annotated[
            str | None, typer.Option("--at", help="Without --week, the week ends here (default: now, to the hour).")
        ] = None,
    ) -> None:
        """SLOs by error budget left: the period so far and the last seven days, the burn rate, the time to
        exhaustion at the week's pace, and the freezes in force."""
        # why: the HTML templates load jinja2, which only this command needs (`evaluate` must start fast)
        from sloplane.evaluator.history.report_files import budget_file

        report = build_report(console, KINDS["budget"], paths, db, {"week": week}, output_format, at)
        write_report(console, budget_file(report, output_format), out)
