"""`sloplane report oncall` (pages per shift, replayed from Prometheus) and `sloplane report platform` (the
consumers a service's burn held, from the decision log).

Exit codes as every report's: 0 written; 1 Prometheus or the store could not be read; 2 usage (a span backwards,
longer than 31 days or reaching past --at; a shift that does not divide a day; a service nobody declares).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from sloplane.cli.common import DEFAULT_DB, Consoles, Paths
from sloplane.cli.report_options import At, Db, Out, OutputFormat, Zone, build_report, write_report
from sloplane.core.durations import format_duration
from sloplane.evaluator.history.oncall import (
    DEFAULT_SHIFT,
    DEFAULT_TARGET,
)
from sloplane.evaluator.history.report_kinds import KINDS
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend

RANGE_TIMEOUT = 60.0
"""Seconds a range query may take: 10,000 evaluations of a 3-day window are not the gate's 5-second question."""

From = Annotated[str, typer.Option("--from", help="The report's first instant (RFC 3339).", show_default=False)]
To = Annotated[str, typer.Option("--to", help="The report's end, excluded (RFC 3339).", show_default=False)]


def register(reports: typer.Typer, console: Consoles) -> None:
    """Add `report oncall` and `report platform`."""
    register_oncall(reports, console)
    register_platform(reports, console)


def register_oncall(reports: typer.Typer, console: Consoles) -> None:
    """Add `report oncall`."""

    @reports.command()
    def oncall(
        paths: Paths,
        prometheus: Annotated[str, typer.Option("--prometheus", help="Replay the alerts against this Prometheus.")],
        since_text: From,
        until_text: To,
        shift: Annotated[str, typer.Option("--shift", help="A shift's length; it must divide a day.")] = (
            format_duration(DEFAULT_SHIFT)
        ),
        shift_start: Annotated[
            str, typer.Option("--shift-start", help="When the day's first shift starts, HH:MM in --tz.")
        ] = "09:00",
        zone: Zone = None,
        target: Annotated[
            int, typer.Option("--target", min=0, help="Pages a shift can take (the SRE book: 2 per 12 hours).")
        ] = DEFAULT_TARGET,
        output_format: OutputFormat = "html",
        out: Out = None,
        at: At = None,
    ) -> None:
        """Pages per on-call shift against a target, the time spent paging, the SLOs that page again and again,
        and the alerts without a runbook: sloplane's page-tier burn-rate alerts replayed minute by minute from
        --from to --to (at most 31 days) against Prometheus. Ticket-tier alerts are listed apart."""
        # why: the HTML templates load jinja2, which only this command needs (`evaluate` must start fast)
        from sloplane.evaluator.history.oncall_files import oncall_file

        options = {
            "from": since_text,
            "to": until_text,
            "shift": shift,
            "shift-start": shift_start,
            "tz": zone,
            "target": str(target),
        }
        backend = PrometheusBackend(prometheus, timeout=RANGE_TIMEOUT)
        minute = at or datetime.now(UTC).replace(second=0, microsecond=0).isoformat()
        report = build_report(console, KINDS["oncall"], paths, None, options, output_format, minute, backend=backend)
        write_report(console, oncall_file(report, output_format), out)


def register_platform(reports: typer.Typer, console: Consoles) -> None:
    """Add `report platform`."""

    @reports.command()
    def platform(
        paths: Paths,
        service: Annotated[str, typer.Option("--service", help="The service others depend on.", show_default=False)],
        db: Db = DEFAULT_DB,
        since_text: Annotated[
            str | None, typer.Option("--from", help="From this instant (default: the log's beginning).")
        ] = None,
        until_text: Annotated[str | None, typer.Option("--to", help="Up to this instant (default: --at).")] = None,
        output_format: OutputFormat = "html",
        out: Out = None,
        at: At = None,
    ) -> None:
        """The consumers whose gates were held because SERVICE burned its budget (the `dependency` reason): per
        consumer SLO, the decisions and revisions held, when, for how long, and SERVICE's own gates meanwhile."""
        # why: the HTML templates load jinja2, which only this command needs (`evaluate` must start fast)
        from sloplane.evaluator.history.oncall_files import platform_file

        options = {"service": service, "from": since_text, "to": until_text}
        report = build_report(console, KINDS["platform"], paths, db, options, output_format, at)
        write_report(console, platform_file(report, output_format), out)
