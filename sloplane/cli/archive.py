"""`sloplane archive NAME PATH...`: archive a deprecated SLO — its declaration, rollups and decisions with a hash
manifest to a folder or S3 — then set `lifecycle: archived` in its file, and print (never run) the Prometheus call
that deletes the series it leaves behind (`evaluator/governance/archive.py` says what must hold first and why).
`sloplane archive-verify LOCATION` re-hashes an archive (a folder or an S3 prefix) against its manifest.

Exit codes: 0 archived (or, with `--dry-run`, it could be); 1 refused (every blocker listed, nothing written), the
store or the destination failed, or the file could not be edited; 2 usage. The order makes a failure safe: nothing
is written until every check passed, the archive is written whole before the declaration is touched, and the
declaration is edited only if it still holds the bytes it was read with.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sloplane.cli.common import DEFAULT_DB, Consoles, Paths, parse_instant, parse_window, store_name
from sloplane.cli.report_options import Db, require_store
from sloplane.core.fileio import UnsafeOutputError, write_files
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.governance.archive import (
    DEFAULT_DEPRECATION_TEXT,
    DEFAULT_PROMETHEUS,
    ArchiveError,
    ArchivePlan,
    done,
    plan_archive,
)
from sloplane.evaluator.governance.debt import open_debt_names
from sloplane.evaluator.history.report_kinds import report_now
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.open import open_decision_log, open_rollups
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

if TYPE_CHECKING:
    from sloplane.evaluator.export import S3Location

FORMATS = ("table", "json")
STORE_MISSING = "no store at {db}: the archive needs its rollups and decision log (--db)"

Name = Annotated[str, typer.Argument(help="The SLO to archive (metadata.name).", show_default=False)]
To = Annotated[Path | None, typer.Option("--to", help="Write the archive under DIR/<name>/<archive id>/.")]
S3 = Annotated[
    str | None, typer.Option("--s3", help="Write the archive under s3://bucket/prefix/<name>/<archive id>/.")
]
EndpointUrl = Annotated[
    str | None, typer.Option("--endpoint-url", help="S3-compatible endpoint for --s3 (MinIO, Ceph); default AWS.")
]
Region = Annotated[str | None, typer.Option("--region", help="AWS region for --s3 (default: the credential chain's).")]
At = Annotated[str | None, typer.Option("--at", help="Archive as of this RFC 3339 instant (default: now).")]
DeprecatedFor = Annotated[
    str,
    typer.Option(
        "--deprecated-for", help="How long it must have been deprecated (from its spec.history deprecation entry)."
    ),
]
Prometheus = Annotated[
    str, typer.Option("--prometheus", help="The Prometheus URL the printed series-deletion call names.")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Check and show what would be archived; write nothing.")]
Format = Annotated[str, typer.Option("--format", help="table or json.")]


def _location_of(text: str, option: str = "--s3") -> S3Location:
    # why: the export module imports boto3 (~0.2 s): only a command that uses S3 pays for it
    from sloplane.evaluator.export import S3Location

    try:
        return S3Location.parse(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


def _deprecation_period(text: str) -> timedelta:
    period = parse_window(text, "--deprecated-for")
    if period < timedelta(0):
        raise typer.BadParameter("give a duration of 0 or more, e.g. 30d", param_hint="--deprecated-for")
    return period


def _plan(console: Consoles, db: str, arguments: dict[str, Any]) -> ArchivePlan:
    """The plan (`arguments`: `plan_archive`'s, but for the store's readers), with the store open only while it is
    read; exit 1 when the store cannot be read or the SLO is not declared."""
    # why: the export module imports boto3 (~0.2 s): loaded when an archive is made, not with every command
    from sloplane.evaluator.export import export_line

    require_store(console, db, STORE_MISSING)
    try:
        with open_rollups(db) as store, open_decision_log(db) as log:

            def decisions(name: str) -> Iterator[dict[str, Any]]:
                return (export_line(row) for row in log.chain_rows(until_seq=log.last_seq()) if row["slo"] == name)

            rows = lambda since, until, names: store.read(since=since, until=until, slos=names)  # noqa: E731
            return plan_archive(rows=rows, decisions=decisions, **arguments)
    except (ArchiveError, RollupError, DecisionLogError) as error:
        console.err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _write(
    console: Consoles, plan: ArchivePlan, to: Path | None, s3: S3Location | None, s3_options: dict[str, Any]
) -> str:
    """The archive to its destination, then the declaration edited; the archive's location."""
    # why: archive_store imports botocore (~0.2 s), needed only once an archive is written
    from sloplane.evaluator.governance.archive_store import ArchiveWriteError, write_folder, write_s3

    report, source = plan.report, plan.source
    assert source is not None and plan.archived_text is not None
    if not source.unchanged():
        console.err.print(f"{source.path} changed while the archive was prepared: nothing written", markup=False)
        raise typer.Exit(1)
    try:
        if s3 is not None:
            # why: the export module imports boto3 (~0.2 s): only a command that writes to S3 pays for it
            from sloplane.evaluator.export import ExportError, s3_client

            try:
                client = s3_client(**s3_options)
            except ExportError as error:
                raise ArchiveWriteError(str(error)) from None
            location = write_s3(
                client, s3.bucket, s3.prefix, slo=report["slo"], archive_id=report["archiveId"], files=plan.files
            )
        else:
            assert to is not None
            location = str(write_folder(to, report["slo"], report["archiveId"], plan.files))
    except ArchiveWriteError as error:
        console.err.print(f"{error}: nothing else written", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    try:
        if not source.unchanged():
            raise UnsafeOutputError("it changed while the archive was written")
        write_files(source.path.parent, {source.path.name: plan.archived_text})
    except (UnsafeOutputError, OSError) as error:
        console.err.print(
            f"archived to {location}, but cannot set lifecycle: archived in {source.path}: {error} — set it by hand",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    return location


def _print(console: Consoles, report: dict[str, Any], dry_run: bool) -> None:
    out = console.out
    name = report["slo"]
    if report["blockers"]:
        console.err.print(
            f"cannot archive {name} ({len(report['blockers'])} blocker(s)); nothing written:", markup=False
        )
        for blocker in report["blockers"]:
            console.err.print(f"  {blocker['rule']}: {blocker['message']}", markup=False, soft_wrap=True)
        return
    table = Table(title=f"archive {report['archiveId']} of {name}", title_justify="left")
    for column in ("file", "records", "bytes", "sha256"):
        table.add_column(column, overflow="fold")
    for entry in report["files"]:
        table.add_row(entry["name"], str(entry["records"]), str(entry["bytes"]), entry["sha256"])
    out.print(table)
    edit = report["declaration"]
    if dry_run:
        out.print(
            f"dry run: nothing written; would set lifecycle: archived at {edit['path']}:{edit['line']}", markup=False
        )
        return
    out.print(f"archived {name} to {report['location']}", markup=False, soft_wrap=True)
    out.print(f"set lifecycle: archived at {edit['path']}:{edit['line']} ({edit['edit']})", markup=False)
    deletion = report["seriesDeletion"]
    out.print(f"delete its series in Prometheus (not run; {deletion['note']}):", markup=False, soft_wrap=True)
    out.print(deletion["command"], markup=False, soft_wrap=True)
    out.print(deletion["cleanTombstones"], markup=False, soft_wrap=True)


def register(app: typer.Typer, console: Consoles) -> None:
    """Add `archive` to the `sloplane` app."""

    @app.command()
    def archive(
        name: Name,
        paths: Paths,
        to: To = None,
        s3: S3 = None,
        endpoint_url: EndpointUrl = None,
        region: Region = None,
        db: Db = DEFAULT_DB,
        at: At = None,
        deprecated_for: DeprecatedFor = DEFAULT_DEPRECATION_TEXT,
        prometheus: Prometheus = DEFAULT_PROMETHEUS,
        dry_run: DryRun = False,
        output_format: Format = "table",
    ) -> None:
        """Archive a deprecated SLO (deprecated long enough, unreferenced, ungated, without open debt): its
        declaration, rollups and decisions with a hash manifest to --to or --s3; then set lifecycle: archived and
        print the Prometheus call that deletes its series."""
        if output_format not in FORMATS:
            raise typer.BadParameter(f"give one of {', '.join(FORMATS)}", param_hint="--format")
        if (to is None) == (s3 is None) and not dry_run:
            raise typer.BadParameter("give exactly one of --to DIR or --s3 s3://bucket/prefix", param_hint="--to/--s3")
        location = _location_of(s3) if s3 is not None else None
        period = _deprecation_period(deprecated_for)
        when = (parse_instant(at) or report_now()).astimezone(UTC)
        loaded = console.load_all(paths, False)
        fleet = Fleet(loaded.declarations)
        owed = open_debt_names([item.debt for item in loaded.debts])
        arguments = {"fleet": fleet, "name": name, "paths": paths, "at": when, "deprecated_for": period}
        arguments["open_debt"] = lambda slo: owed.get(slo, [])
        plan = _plan(console, db, arguments | {"prometheus": prometheus, "store": store_name(db)})
        report = plan.report
        if not plan.refused and not dry_run:
            written = _write(console, plan, to, location, {"endpoint_url": endpoint_url, "region": region})
            report = done(report, written)
        if output_format == "json":
            sys.stdout.write(pretty_json(report))
        if output_format == "table" or report["blockers"]:
            _print(console, report, dry_run)
        if plan.refused:
            raise typer.Exit(1)

    @app.command("archive-verify")
    def archive_verify(
        location: Annotated[
            str, typer.Argument(help="An archive: DIR/<name>/<archive id> or s3://bucket/prefix/<name>/<archive id>.")
        ],
        endpoint_url: EndpointUrl = None,
        region: Region = None,
    ) -> None:
        """Re-hash an archive's files against its manifest.json: exit 0 intact, 1 naming each file that is not."""
        # why: archive_store imports botocore (~0.2 s), needed only when an archive is read
        from sloplane.evaluator.governance.archive_store import ArchiveWriteError, verify_folder, verify_s3

        try:
            if location.startswith("s3://"):
                # why: the export module imports boto3 (~0.2 s): only a command that reads S3 pays for it
                from sloplane.evaluator.export import ExportError, s3_client

                where = _location_of(location, "LOCATION")
                try:
                    client = s3_client(endpoint_url, region)
                except ExportError as error:
                    raise ArchiveWriteError(str(error)) from None
                problems = verify_s3(client, where.bucket, where.prefix + "/")
            else:
                problems = verify_folder(Path(location))
        except ArchiveWriteError as error:
            console.err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        for problem in problems:
            console.err.print(problem, markup=False, soft_wrap=True)
        if problems:
            raise typer.Exit(1)
        console.out.print(f"{location}: every file as its manifest says", markup=False, soft_wrap=True)
