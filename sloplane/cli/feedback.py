"""`sloplane feedback add|list|reclassify`: record a problem a customer reported and see how monitoring saw it
(`evaluator/governance/feedback.py`), list the reports, and classify again those whose hours were not rolled up.

The same store and classification as `POST /v1/feedback`, for support teams without the API and for scripts.
Exit codes as the reports': 0 done; 1 a store could not be read (or `--db` names no file); 2 usage (a bad
instant, an undeclared service, a range backwards or over 31 days: the message names the option).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sloplane.cli.common import DEFAULT_DB, Consoles, Paths, load_fleet, parse_instant
from sloplane.cli.report_options import Db, opened_sources, require_store
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.feedback import FeedbackError, FeedbackReport, checked_report
from sloplane.evaluator.storage.open import open_feedback
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

if TYPE_CHECKING:
    from sloplane.evaluator.governance.feedback import Sources

FORMATS = ("table", "json")
OPTIONS = {
    "service": "--service",
    "start": "--start",
    "end": "--end",
    "impact": "--impact",
    "ticket": "--ticket",
    "reportedBy": "--by",
    "since": "--since",
    "until": "--until",
    "at": "--at",
}
"""The store's field names (what `FeedbackError.field` says) as this command's options."""

Format = Annotated[str, typer.Option("--format", help="table or json.")]
Prometheus = Annotated[
    str | None,
    typer.Option("--prometheus", help="Replay the burn-rate alerts against this Prometheus (else: not replayed)."),
]
At = Annotated[str | None, typer.Option("--at", help="When the report was received (default: now).")]


def _check_format(output_format: str) -> None:
    if output_format not in FORMATS:
        raise typer.BadParameter(f"give one of {', '.join(FORMATS)}", param_hint="--format")


def _table(reports: list[FeedbackReport]) -> Table:
    table = Table(title="customer reports", title_justify="left")
    for column in ("id", "service", "start", "end", "verdict", "blind spot", "seen by", "ticket"):
        table.add_column(column, overflow="fold")
    for report in reports:
        seen = sorted({entry["kind"] for entry in report.classification.get("seenBy", [])})
        table.add_row(
            report.id,
            report.service,
            report.start.isoformat(),
            report.end.isoformat(),
            report.verdict,
            report.classification.get("blindSpot") or "",
            ", ".join(seen),
            report.ticket,
        )
    return table


def _print(console: Consoles, reports: list[FeedbackReport], output_format: str) -> None:
    if output_format == "json":
        sys.stdout.write(pretty_json([report.to_dict() for report in reports]))
        return
    console.out.print(_table(reports))
    for report in reports:
        console.out.print(f"{report.id}: {report.classification.get('message', '')}", markup=False, soft_wrap=True)


@contextmanager
def _reading(console: Consoles) -> Iterator[None]:
    """A refusal naming a field as a usage error on its option (exit 2); a store that cannot be read: exit 1."""
    try:
        yield
    except FeedbackError as error:
        if error.field is not None:
            raise typer.BadParameter(str(error), param_hint=OPTIONS.get(error.field, error.field)) from None
        console.err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except (RollupError, DecisionLogError, ControlsError) as error:
        console.err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(1) from None


@contextmanager
def _sources(db: str, fleet: Fleet, prometheus: str | None) -> Iterator[Sources]:
    # why: the classification reads the decision log's breaches through the notifier's rules, whose package
    # imports jinja2; `evaluate` must start without it (tests/test_cli_startup.py)
    from sloplane.evaluator.governance.feedback import Sources

    backend = None if prometheus is None else PrometheusBackend(prometheus)
    with opened_sources(db, fleet) as sources:
        yield Sources(fleet, sources.rows, sources.log, backend)


def _required(text: str | None, option: str) -> datetime:
    instant = parse_instant(text, option)
    if instant is None:  # pragma: no cover - typer requires the option
        raise typer.BadParameter("required", param_hint=option)
    return instant


def register(app: typer.Typer, console: Consoles) -> None:
    """Add the `feedback` group (`add`, `list`, `reclassify`) to `app`."""
    feedback = typer.Typer(help="Problems customers reported, and whether monitoring saw them.", no_args_is_help=True)
    app.add_typer(feedback, name="feedback")

    @feedback.command()
    def add(
        paths: Paths,
        service: Annotated[str, typer.Option("--service", help="The service the customer used.")],
        start: Annotated[str, typer.Option("--start", help="When the problem started (RFC 3339).")],
        end: Annotated[str, typer.Option("--end", help="When it ended (RFC 3339); still going on: now.")],
        impact: Annotated[str, typer.Option("--impact", help="What the customer could not do.")],
        ticket: Annotated[str, typer.Option("--ticket", help="The support ticket's id or URL.")],
        by: Annotated[str, typer.Option("--by", help="Who records it (a name or a team).")],
        db: Db = DEFAULT_DB,
        prometheus: Prometheus = None,
        at: At = None,
        output_format: Format = "table",
    ) -> None:
        """Record a customer-reported problem, classified at once: seen by monitoring, or missed (a blind spot)."""
        _check_format(output_format)
        received = (parse_instant(at) or datetime.now(UTC)).astimezone(UTC)
        first, last = _required(start, "--start"), _required(end, "--end")
        fleet = load_fleet(console, paths)
        if not any(fleet[name].spec.service == service for name in fleet):
            raise typer.BadParameter(
                f"no SLO in {len(fleet)} declarations is for service {service!r}", param_hint="--service"
            )
        require_store(console, db)
        with _reading(console):
            report = checked_report(
                service=service,
                start=first,
                end=last,
                impact=impact,
                ticket=ticket,
                reported_by=by,
                received_at=received,
            )
            # why: as in `_sources`
            from sloplane.evaluator.governance.feedback import classify

            with _sources(db, fleet, prometheus) as sources:
                classification = classify(sources, report.service, report.start, report.end, at=report.received_at)
            with open_feedback(db) as store:
                stored = store.add(report, classification)
        _print(console, [stored], output_format)

    @feedback.command("list")
    def list_reports(
        db: Db = DEFAULT_DB,
        service: Annotated[str | None, typer.Option("--service", help="Only this service's reports.")] = None,
        since: Annotated[str | None, typer.Option("--since", help="Started at or after (RFC 3339).")] = None,
        until: Annotated[str | None, typer.Option("--until", help="Started before (RFC 3339).")] = None,
        output_format: Format = "table",
    ) -> None:
        """The reports whose problem started in [--since, --until), by start, with their classification."""
        _check_format(output_format)
        first, last = parse_instant(since, "--since"), parse_instant(until, "--until")
        require_store(console, db, "no support feedback at {db}")
        with _reading(console), open_feedback(db) as store:
            found = store.reports(service=service, since=first, until=last)
        _print(console, found, output_format)

    @feedback.command()
    def reclassify(
        paths: Paths, db: Db = DEFAULT_DB, prometheus: Prometheus = None, at: At = None, output_format: Format = "table"
    ) -> None:
        """Classify again the reports whose hours were not all rolled up when they were classified."""
        _check_format(output_format)
        now = (parse_instant(at) or datetime.now(UTC)).astimezone(UTC)
        fleet = load_fleet(console, paths)
        require_store(console, db)
        # why: as in `_sources`
        from sloplane.evaluator.governance.feedback import reclassify_due

        with _reading(console), _sources(db, fleet, prometheus) as sources, open_feedback(db) as store:
            changed = reclassify_due(store, sources, at=now)
        _print(console, changed, output_format)
