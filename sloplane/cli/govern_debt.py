"""`sloplane govern debt`: the reliability debt register against the history — items overdue or expired, SLOs that
missed their objective with no open debt (`--draft DIR` writes a stub for each), and the open items ranked by the
bad events attributed to them (`--format csv`, for sprint planning). See `evaluator/governance/debt.py`.

Exit codes as the reports': 0 printed; 1 the store could not be read (or does not exist), or a draft could not be
written; 2 usage (a bad `--at` or `--format`).
"""

from __future__ import annotations

import sys
from datetime import UTC, date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sloplane.cli.common import DEFAULT_DB, Consoles, Paths, parse_instant
from sloplane.cli.report_options import At, Db, opened_sources, require_store
from sloplane.core.fileio import UnsafeOutputError, write_files
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.governance.debt import MISSED_WITHOUT_DEBT, debt_report, ranked_rows
from sloplane.evaluator.governance.debt_stub import debt_stub, stub_name
from sloplane.evaluator.history.report_kinds import report_now
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

FORMATS = ("table", "json", "csv")

DebtFormat = Annotated[str, typer.Option("--format", help="table, json, or csv (open items ranked).")]
Draft = Annotated[
    Path | None,
    typer.Option(
        "--draft",
        help="Write a stub item into this folder for each SLO that missed its last period with no open debt "
        "(existing files are kept).",
        show_default=False,
    ),
]


def debt_table(report: dict[str, Any]) -> Table:
    """One row per item: rank, name, SLOs, kind, status, attributed bad events, due and revisit with their flags."""
    table = Table(title=f"reliability debt at {report['at']}", title_justify="left")
    for column in ("rank", "item", "slos", "kind", "status", "bad events", "due", "revisit", "owner"):
        table.add_column(column, overflow="fold")
    for item in report["items"]:
        bad = item["attributedBadEvents"]
        table.add_row(
            "-" if item["rank"] is None else str(item["rank"]),
            item["name"],
            " ".join(item["slos"]),
            item["kind"],
            item["status"],
            "-" if bad is None else f"{bad:.6g}",
            item["due"] + (" OVERDUE" if item["overdue"] else ""),
            item["revisit"] + (" EXPIRED" if item["expired"] else ""),
            item["owner"]["name"],
        )
    return table


def _write_drafts(console: Consoles, folder: Path, fleet: Fleet, report: dict[str, Any]) -> None:
    """One stub per SLO missed without debt, into `folder` (never over an existing file), each said."""
    today = date.fromisoformat(report["today"])
    files: dict[str, str] = {}
    for finding in report["findings"]:
        if finding["rule"] != MISSED_WITHOUT_DEBT:
            continue
        declaration, numbers = fleet[finding["slo"]], finding["inputs"]["period"]
        name = f"{stub_name(declaration, numbers)}.yaml"
        if (folder / name).exists():
            console.err.print(f"kept {folder / name}: it exists", markup=False)
            continue
        files[name] = debt_stub(declaration, numbers, today)
    try:
        write_files(folder, files)
    except (UnsafeOutputError, OSError) as error:
        console.err.print(f"cannot write drafts into {folder}: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for name in sorted(files):
        console.err.print(f"drafted {folder / name}", markup=False)


def register(govern: typer.Typer, console: Consoles) -> None:
    """Add `govern debt` to the `govern` group."""

    @govern.command()
    def debt(
        paths: Paths,
        db: Db = DEFAULT_DB,
        at: At = None,
        output_format: DebtFormat = "table",
        draft: Draft = None,
    ) -> None:
        """The reliability debt register: items overdue or expired, SLOs missed without open debt (with --draft,
        a stub for each), open items ranked by the bad events attributed to them."""
        if output_format not in FORMATS:
            raise typer.BadParameter(f"give one of {', '.join(FORMATS)}", param_hint="--format")
        generated = (parse_instant(at) or report_now()).astimezone(UTC)
        loaded = console.load_all(paths, False)
        fleet = Fleet(loaded.declarations)
        debts = [item.debt for item in loaded.debts]
        require_store(console, db)
        try:
            with opened_sources(db, fleet) as sources:
                report = debt_report(fleet, debts, sources.rows, generated)
        except (RollupError, DecisionLogError, ControlsError) as error:
            console.err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        if draft is not None:
            _write_drafts(console, draft, fleet, report)
        if output_format == "json":
            sys.stdout.write(pretty_json(report))
            return
        if output_format == "csv":
            # why: the CSV writer lives with the reports' files, which import jinja2; `evaluate` must start fast
            from sloplane.evaluator.history.report_files import csv_text

            header, *rows = ranked_rows(report)
            sys.stdout.write(csv_text(header, rows))
            return
        console.out.print(debt_table(report))
        for finding in report["findings"]:
            style = "yellow" if finding["rule"] == MISSED_WITHOUT_DEBT else "red"
            console.out.print(f"{finding['rule']}: {finding['message']}", style=style, markup=False, soft_wrap=True)
