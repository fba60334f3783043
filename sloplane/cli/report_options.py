"""What every `sloplane report …` command shares: its options (`--db`, `--format`, `--out`, `--at`, `--tz`) and
writing the report whole or not at all.

Each report kind registers itself from its own module (`report.py`, `report_*.py`) with these, so that the kinds
read alike and a new one needs no change to the others.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError

from sloplane.cli.common import DEFAULT_DB_SHOWN, Consoles, parse_instant, store_missing
from sloplane.core.fileio import UnsafeOutputError, write_files
from sloplane.declaration.debt import ReliabilityDebt
from sloplane.declaration.types import TimeZone
from sloplane.evaluator.governance.quarterly_findings import governance_agenda
from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.history.report_kinds import (
    ROLLUPS_MISSING,
    NothingToReportError,
    ReportKind,
    ReportOptionError,
    ReportReadError,
    ReportSources,
    report_now,
)
from sloplane.evaluator.measuring.backends.base import MetricsBackend
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.feedback import FeedbackError, FeedbackReport
from sloplane.evaluator.storage.open import open_decision_log, open_feedback, open_release_controls, open_rollups
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

_ZONES: TypeAdapter[str] = TypeAdapter(TimeZone)
"""Checks --tz as a declaration's `timeZone` is checked (an IANA name, with a suggestion when mistyped)."""

Db = Annotated[
    str,
    typer.Option(
        "--db",
        help="The rollups and the decision log: a SQLite file or a postgresql:// URL ($SLOPLANE_DB).",
        show_default=DEFAULT_DB_SHOWN,
    ),
]
Zone = Annotated[
    str | None, typer.Option("--tz", help="Cut the period in this zone (default: each SLO's own, else UTC).")
]
OutputFormat = Annotated[str, typer.Option("--format", help="html, csv or json.")]
Out = Annotated[Path | None, typer.Option("--out", help="Write the report to this file (default: standard output).")]
At = Annotated[
    str | None,
    typer.Option("--at", help="The report's generation time (default: now): the same inputs and --at, the same bytes."),
]


def check_format(output_format: str) -> None:
    """Refuse a --format that is none of `FORMATS`, naming the option (exit 2)."""
    if output_format not in FORMATS:
        raise typer.BadParameter(f"give one of {', '.join(FORMATS)}", param_hint="--format")


def zone_option(text: str | None) -> str | None:
    """--tz checked as a declaration's time zone; none when not given."""
    if text is None:
        return None
    try:
        return str(_ZONES.validate_python(text))
    except ValidationError as error:
        reason = "; ".join(str(problem["msg"]) for problem in error.errors(include_url=False))
        raise typer.BadParameter(reason, param_hint="--tz") from None


def require_store(console: Consoles, db: str, missing: str = ROLLUPS_MISSING) -> None:
    """Exit 1 with a hint (`missing`, naming `{db}`) when --db names a SQLite file that does not exist."""
    if store_missing(db):
        console.err.print(missing.format(db=db), markup=False)
        raise typer.Exit(1)


def build_report(
    console: Consoles,
    kind: ReportKind,
    paths: list[Path],
    db: str | None,
    options: dict[str, str | None],
    output_format: str,
    at: str | None,
    *,
    backend: MetricsBackend | None = None,
) -> dict[str, Any]:
    """A report kind built as `/v1/reports/{kind}` builds it: options checked before the store is opened (a
    usage error is exit 2 whatever the store), then the store read (exit 1 when it cannot be). `db` None: a
    kind that reads Prometheus alone (`backend`)."""
    check_format(output_format)
    generated = parse_instant(at) or report_now()
    loaded = console.load_all(paths, False)
    fleet = Fleet(loaded.declarations)
    try:
        kind.check(fleet, options, generated)
        if db is None:
            return kind.build(ReportSources(fleet, lambda *_: [], backend=backend), options, generated)
        require_store(console, db, kind.missing)
        with opened_sources(db, fleet, backend, [item.debt for item in loaded.debts]) as sources:
            return kind.build(sources, options, generated)
    except ReportOptionError as error:
        raise typer.BadParameter(str(error), param_hint=f"--{error.option}") from None
    except (
        RollupError,
        DecisionLogError,
        ControlsError,
        FeedbackError,
        NothingToReportError,
        ReportReadError,
    ) as error:
        console.err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(1) from None


@contextmanager
def opened_sources(
    db: str, fleet: Fleet, backend: MetricsBackend | None = None, debts: Sequence[ReliabilityDebt] = ()
) -> Iterator[ReportSources]:
    """The store's rollups, decision log and release controls for a report, closed afterwards; the quarterly
    review's governance findings from them, the register (`debts`) and the store's support feedback."""
    store = open_rollups(db)
    try:
        log = open_decision_log(db)
        try:
            controls = open_release_controls(db)
            try:
                rows = lambda since, until, names: store.read(since=since, until=until, slos=names)  # noqa: E731
                agenda = governance_agenda(rows, debts=debts, feedback=_feedback_reader(db))
                yield ReportSources(fleet, rows, log, controls, backend, agenda)
            finally:
                controls.close()
        finally:
            log.close()
    finally:
        store.close()


def _feedback_reader(db: str) -> Callable[[datetime, datetime], Sequence[FeedbackReport]]:
    """The store's support feedback reports over a span, the store opened only when they are read (a quarterly
    review), so that every other report leaves it alone."""

    def reports(since: datetime, until: datetime) -> Sequence[FeedbackReport]:
        with open_feedback(db) as feedback:
            return feedback.reports(since=since, until=until)

    return reports


def write_report(console: Consoles, text: str, out: Path | None) -> None:
    """The report to --out, whole or not at all (atomically, never through a link), or to standard output."""
    if out is None:
        sys.stdout.write(text)
        return
    try:
        write_files(out.parent, {out.name: text})
    except (UnsafeOutputError, OSError) as error:
        console.err.print(f"cannot write {out}: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.err.print(f"wrote {out}", markup=False)
