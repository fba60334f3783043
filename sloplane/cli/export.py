"""`sloplane export-decisions`: copy the decision log to S3 as JSON lines, resuming where the bucket ends.

Exit codes as elsewhere: 0 exported (or nothing new), 1 the log or the bucket failed, 2 usage.
The export module (and boto3, ~0.2 s to import) is loaded only when the command runs, so every
other command starts as fast as before.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from sloplane.cli.common import DEFAULT_DB, DEFAULT_DB_SHOWN, store_missing, store_name, store_stem
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.open import open_decision_log

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from sloplane.evaluator.export import ExportReport, S3Location

HELP = (
    "Copy the decision log to S3 as JSON lines, one object per batch, named "
    "<prefix>/<source>/decisions-<first seq>-<last seq>.jsonl. Resumes after the last object in the "
    "bucket, so re-running after an interruption writes each decision exactly once. Credentials come "
    "from the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance role)."
)

Db = Annotated[
    str,
    typer.Option(
        "--db", help="Decision log: a SQLite file or a postgresql:// URL ($SLOPLANE_DB).", show_default=DEFAULT_DB_SHOWN
    ),
]
To = Annotated[str, typer.Option("--to", help="Destination, s3://bucket/prefix.", show_default=False)]
EndpointUrl = Annotated[
    str | None, typer.Option("--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph); default AWS.")
]
Region = Annotated[str | None, typer.Option("--region", help="AWS region (default: the credential chain's).")]
Source = Annotated[
    str | None, typer.Option("--source", help="Folder under the prefix for this log (default: the db file's stem).")
]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Decisions per object.")]
Format = Annotated[str, typer.Option("--format", help="text or json.")]


def _location(text: str) -> S3Location:
    from sloplane.evaluator.export import S3Location  # deferred: boto3 is slow to import

    try:
        return S3Location.parse(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--to") from None


def _source(source: str | None, db: str) -> str:
    """The db file's stem (or the PostgreSQL database's name) by default, so two evaluators' logs exported to one
    prefix stay apart."""
    from sloplane.evaluator.export import check_source  # deferred: boto3 is slow to import

    try:
        return check_source(source if source is not None else store_stem(db))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--source") from None


def _export(db: str, location: S3Location, *, source: str, client: S3Client, batch_size: int) -> ExportReport:
    """Run the export with the log open only for as long as it takes."""
    from sloplane.evaluator.export import FencedSource, export_decisions  # deferred: boto3 is slow to import

    with open_decision_log(db) as log:
        if isinstance(log, FencedSource):  # replicas export this log too: one round at a time (`export_fence`)
            with log.export_fence() as still_fenced:
                return export_decisions(
                    log, client, location, source=source, batch_size=batch_size, still_fenced=still_fenced
                )
        return export_decisions(log, client, location, source=source, batch_size=batch_size)


def register(app: typer.Typer, err_console: Console) -> None:
    """Add `export-decisions` to the `sloplane` app; errors are printed on `err_console`."""

    @app.command(name="export-decisions", help=HELP)
    def export_decisions_command(  # keyword-only: typer passes options by name
        *,
        to: To,
        db: Db = DEFAULT_DB,
        endpoint_url: EndpointUrl = None,
        region: Region = None,
        source: Source = None,
        batch_size: BatchSize = 1000,
        output_format: Format = "text",
    ) -> None:
        if output_format not in ("text", "json"):
            raise typer.BadParameter(f"'{output_format}' is not text or json", param_hint="--format")
        location, name = _location(to), _source(source, db)
        if store_missing(db):
            err_console.print(
                f"sloplane export-decisions: no decision log at {store_name(db)}", style="red", markup=False
            )
            raise typer.Exit(1)
        from sloplane.evaluator.export import ExportError, s3_client  # deferred: boto3 is slow to import

        try:
            client = s3_client(endpoint_url, region)
            report = _export(db, location, source=name, client=client, batch_size=batch_size)
        except (ExportError, DecisionLogError) as error:
            err_console.print(f"sloplane export-decisions: {error}", style="red", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        if output_format == "json":
            sys.stdout.write(pretty_json(report.to_dict()))
        else:
            sys.stdout.write(report.summary() + "\n")
