"""`sloplane rollup`: keep each SLO's hourly events past Prometheus' retention, for reports.

Each subject is read where the gate reads it: from Prometheus (`--prometheus`) or, for the SLIs the gate reads
from Datadog, from Datadog (`--datadog`, keys from `$DD_API_KEY` and `$DD_APP_KEY`, as `evaluate` and `serve`
take them); give one or both. A subject read from a backend not given is listed as not rolled up, with why.

Exit codes: 0 every subject that can be rolled up was; 1 a store or a read failed (what was read before is
kept: a run resumes where the store ends); 2 usage. Rows are written a week at a time, so an interrupted
backfill of months loses at most the week it was in.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer

from sloplane.cli.backends import DEFAULT_DATADOG_DELAY, DatadogOption, datadog_settings
from sloplane.cli.common import DEFAULT_DB, DEFAULT_DB_SHOWN, Consoles, Format, Paths, load_fleet, parse_instant
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.history.job import RollupSummary, roll_up_into, settled_now
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.storage.open import open_rollups
from sloplane.evaluator.storage.rollups import RollupError

Since = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Roll up (again) every hour from this RFC 3339 instant; default: each SLO from where it stopped "
        "(14 days back the first time).",
    ),
]
Until = Annotated[str | None, typer.Option("--to", help="Up to this instant (default: now, less 5 minutes).")]
Db = Annotated[
    str,
    typer.Option(
        "--db",
        help="Where the rollups are kept: the decision log's SQLite file or postgresql:// URL ($SLOPLANE_DB).",
        show_default=DEFAULT_DB_SHOWN,
    ),
]
Prometheus = Annotated[str | None, typer.Option("--prometheus", help="Read the events from this Prometheus.")]
TIMEOUT_SECONDS = 60.0
"""How long one query may take: a week of the fleet's hours is more than a gate's few windows."""


def register(app: typer.Typer, console: Consoles) -> None:
    """Add `rollup` to the `sloplane` app."""

    @app.command()
    def rollup(
        paths: Paths,
        prometheus: Prometheus = None,
        datadog: DatadogOption = None,
        db: Db = DEFAULT_DB,
        since_text: Since = None,
        until_text: Until = None,
        output_format: Format = "table",
    ) -> None:
        """Append one row per SLO, stage and hour of its time zone: bad and total events, excluded minutes, and the
        objective and policy version in force. Idempotent: an hour rolled up again is replaced, its objective kept.
        Each SLI is read from the backend its gate reads: --prometheus, --datadog, or both."""
        if prometheus is None and datadog is None:
            raise typer.BadParameter("give --prometheus URL, --datadog SITE, or both", param_hint="--prometheus")
        settings = datadog_settings(datadog, DEFAULT_DATADOG_DELAY)
        until = _until(until_text)
        since = parse_instant(since_text, "--from")
        if since is not None and since >= until:
            raise typer.BadParameter(f"--from must be before --to ({until.isoformat()})", param_hint="--from")
        fleet = load_fleet(console, paths)
        backend = None if prometheus is None else PrometheusBackend(prometheus, timeout=TIMEOUT_SECONDS)
        reader = None if settings is None else settings.counts(timeout=TIMEOUT_SECONDS)
        try:
            store = open_rollups(db)
        except RollupError as error:
            console.err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        try:
            written = roll_up_into(store, fleet, backend, since, until, datadog=reader)
        except RollupError as error:
            console.err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        finally:
            store.close()
        summary = _summary(written, since, until)
        if output_format == "json":
            sys.stdout.write(pretty_json(summary))
        else:
            _print(console, summary)
        raise typer.Exit(1 if summary["failed"] else 0)


def _until(text: str | None) -> datetime:
    given = parse_instant(text, "--to")
    return given if given is not None else settled_now()


def _summary(summary: RollupSummary, since: datetime | None, until: datetime) -> dict[str, Any]:
    """What was written and what was not, the same for the table and for JSON."""
    return {
        "from": None if since is None else since.isoformat(),
        "to": until.isoformat(),
        "rows": summary.rows,
        "noData": summary.no_data,
        "subjects": sorted(summary.subjects),
        "firstHour": summary.first_hour,
        "lastHour": summary.last_hour,
        "queries": summary.queries,
        "skipped": dict(sorted(summary.skipped.items())),
        "failed": dict(sorted(summary.failed.items())),
    }


def _print(console: Consoles, summary: dict[str, Any]) -> None:
    first, last = summary["firstHour"], summary["lastHour"]
    span = "" if first is None else f" from {first.isoformat()} to {last.isoformat()}"
    what = f"{summary['rows']} hourly rows for {len(summary['subjects'])} subjects{span}"
    console.out.print(f"rolled up {what} ({summary['noData']} without data; {summary['queries']} queries)")
    for key, why in summary["skipped"].items():
        console.out.print(f"  not rolled up: {key}: {why}", markup=False, soft_wrap=True)
    for key, why in summary["failed"].items():
        console.err.print(f"  failed: {key}: {why}", markup=False, soft_wrap=True)
