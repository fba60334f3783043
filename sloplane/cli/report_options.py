"""What every `sloplane report …` command shares: its options (`--db`, `--format`, `--out`, `--at`, `--tz`) and
writing the report whole or not at all.

Each report kind registers itself from its own module (`report.py`, `report_*.py`) with these, so that the kinds
read alike and a new one needs no change to the others.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from sloplane.cli.common import DEFAULT_DB_SHOWN, Consoles, store_missing
from sloplane.core.fileio import UnsafeOutputError, write_files
from sloplane.declaration.types import TimeZone
from sloplane.evaluator.history.report_format import FORMATS

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


def require_store(console: Consoles, db: str) -> None:
    """Exit 1 with a hint when --db names a SQLite file that does not exist (nothing was rolled up there)."""
    if store_missing(db):
        console.err.print(f"no rollups at {db}: run `sloplane rollup` first", markup=False)
        raise typer.Exit(1)


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
