"""`sloplane decisions`: list what was decided; `sloplane decisions verify`: check the log's hash chain.

A group whose callback is the listing (`invoke_without_command`), so `sloplane decisions [filters]` works
as it did before `verify` existed. `verify` exits 0 when the chain is intact, 1 naming the first broken
record (edited, deleted, inserted or backdated: `storage.chain`), 2 when the log cannot be read (no file,
not a decision log), as usage errors and faults do everywhere in the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sloplane.cli.common import DEFAULT_DB, Consoles, Db, Format, parse_instant, store_missing, store_name
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.model import ChainReport
from sloplane.evaluator.storage.chain import CHANGED
from sloplane.evaluator.storage.decisions import (
    CHAIN_KEY_ENV,
    DecisionLogError,
    chain_key_from_environment,
    verify_file,
)
from sloplane.evaluator.storage.open import open_decision_log
from sloplane.evaluator.storage.postgres_conninfo import is_postgres_url

EXIT_BROKEN = 1
EXIT_UNREADABLE = 2

VERIFY_HELP = (
    "Verify the decision log's hash chain. Exit codes: 0 intact, 1 a record was edited, deleted, inserted or "
    f"backdated (the first one is named), 2 the log cannot be read. A log written with ${CHAIN_KEY_ENV} is "
    "verified with the same key from the environment."
)


def _decisions_table(found: list[dict[str, Any]]) -> Table:
    table = Table(title=f"decisions ({len(found)})", title_justify="left")
    for column in ("decided at", "slo", "stage", "decision", "revision", "first reason"):
        table.add_column(column)
    for record in found:
        first = record["reasons"][0]["message"] if record.get("reasons") else ""
        revision = (record.get("request") or {}).get("revision") or "-"
        shadow = record.get("shadow")  # the declaration's shadow's outcome beside the real one (A/B of a policy)
        decision = record["decision"] if shadow is None else f"{record['decision']} (shadow: {shadow['decision']})"
        table.add_row(record["decidedAt"], record["slo"], record.get("stage") or "-", decision, revision, first)
    return table


def report_dict(report: ChainReport) -> dict[str, Any]:
    """`verify --format json`: camelCase like every JSON the CLI prints."""
    broken = report.broken
    return {
        "intact": report.intact,
        "records": report.records,
        "head": report.head,
        "firstBroken": None
        if broken is None
        else {"seq": broken.seq, "id": broken.decision_id, "reason": broken.reason},
    }


def _key_hint(report: ChainReport, keyed: bool) -> str | None:
    """A record whose hash is not its content's may also be one hashed under another key: say so."""
    if report.broken is None or report.broken.reason != CHANGED:
        return None
    if keyed:
        return f"(or ${CHAIN_KEY_ENV} is not the key the log was written with)"
    return f"(or the log was written with a chain key: set ${CHAIN_KEY_ENV} to it)"


def _verify(console: Consoles, db: str, output_format: str) -> None:
    """Walk the chain and exit by what was found; a log that cannot be read is one line and exit 2."""
    if not is_postgres_url(db) and not Path(db).is_file():
        console.err.print(f"sloplane decisions verify: no decision log at {store_name(db)}", markup=False)
        raise typer.Exit(EXIT_UNREADABLE)
    try:
        if is_postgres_url(db):
            with open_decision_log(db) as log:
                report = log.verify()
        else:
            report = verify_file(db)  # read-only: an evidence copy is never created, migrated or written
    except DecisionLogError as error:
        console.err.print(f"sloplane decisions verify: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    if output_format == "json":
        sys.stdout.write(pretty_json(report_dict(report)))
    elif report.broken is None:
        console.out.print(f"intact: {report.records} records, head {report.head}", markup=False)
    else:
        console.out.print(f"broken: {report.broken.describe()}", markup=False, soft_wrap=True)
        console.out.print(f"{report.records} records before it verified, head {report.head}", markup=False)
        hint = _key_hint(report, keyed=chain_key_from_environment() is not None)
        if hint is not None:
            console.err.print(hint, markup=False)
    if report.broken is not None:
        raise typer.Exit(EXIT_BROKEN)


def register(app: typer.Typer, console: Consoles) -> None:
    """Add the `decisions` group (the listing, and `verify`) to the `sloplane` app."""
    decisions_app = typer.Typer(add_completion=False)
    app.add_typer(decisions_app, name="decisions")

    @decisions_app.callback(invoke_without_command=True)
    def decisions(
        context: typer.Context,
        db: Db = DEFAULT_DB,
        slo: Annotated[str | None, typer.Option()] = None,
        stage: Annotated[str | None, typer.Option()] = None,
        outcome: Annotated[str | None, typer.Option(help="pass, fail, inconclusive or error.")] = None,
        revision: Annotated[str | None, typer.Option()] = None,
        since: Annotated[str | None, typer.Option(help="RFC 3339.")] = None,
        until: Annotated[str | None, typer.Option(help="RFC 3339.")] = None,
        limit: Annotated[int, typer.Option(min=1, max=100_000)] = 50,
        output_format: Format = "table",
    ) -> None:
        """List recorded gate decisions, newest first (`sloplane decisions verify`: check the log's hash chain)."""
        if context.invoked_subcommand is not None:
            return
        if store_missing(db):
            console.err.print(f"no decision log at {store_name(db)}", markup=False)
            raise typer.Exit(1)
        found = open_decision_log(db).query(
            slo=slo,
            stage=stage,
            outcome=outcome,
            revision=revision,
            since=parse_instant(since, "--since"),
            until=parse_instant(until, "--until"),
            limit=limit,
        )
        if output_format == "json":
            sys.stdout.write(pretty_json(found))
        else:
            console.out.print(_decisions_table(found))

    @decisions_app.command(help=VERIFY_HELP)
    def verify(
        context: typer.Context,
        db: Annotated[
            str | None,
            typer.Option(
                "--db", help="Decision log: a SQLite file or a postgresql:// URL ($SLOPLANE_DB).", show_default=False
            ),
        ] = None,
        output_format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    ) -> None:
        if output_format not in ("text", "json"):
            raise typer.BadParameter(f"'{output_format}' is not text or json", param_hint="--format")
        # `sloplane decisions --db X verify` names the log on the group: honoured when verify's own is not given.
        parent = context.parent.params.get("db") if context.parent is not None else None
        _verify(console, db or parent or DEFAULT_DB, output_format)
