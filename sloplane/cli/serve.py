"""`sloplane serve`, `openapi` and `token create`: running the evaluator and giving out its tokens."""

from __future__ import annotations

import json
import logging
import signal
import sys
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer

from sloplane.cli.backends import (
    DEFAULT_DATADOG_DELAY,
    DatadogDelayOption,
    DatadogOption,
    PrometheusOption,
    datadog_settings,
)
from sloplane.cli.common import DEFAULT_DB, Consoles, Db, Paths, Staleness, parse_window
from sloplane.core.serialize import pretty_json_ascii
from sloplane.evaluator.http.auth import TokenFileError, TokenStore, new_token
from sloplane.evaluator.http.token_sets import SetLimits, read_token_files
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.semantics.subjects import Fleet

T = TypeVar("T")


LOG_LEVEL_ENV = "SLOPLANE_LOG_LEVEL"
LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str) -> None:
    """sloplane's own log at `level` on stderr, with the time and the logger; other libraries' at warning.

    Why not every logger at `level`: the database and HTTP clients log connection details at debug and info,
    and the evaluator's own messages are the ones written to keep secrets out (`test_backend_secrets`).
    """
    if level.lower() not in LOG_LEVELS:
        hint = f"--log-level/${LOG_LEVEL_ENV}"
        raise typer.BadParameter(f"'{level}' is not one of {', '.join(LOG_LEVELS)}", param_hint=hint)
    shape = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=shape)
    logging.getLogger("sloplane").setLevel(level.upper())


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (Kubernetes stopping a pod) ends `serve` like Ctrl-C: through its `finally`."""
    raise SystemExit(0)


def _built(console: Consoles, build: Callable[[], T]) -> T:
    """Build the service; a bad receivers file, S3 URL or store becomes a message and exit 1, not a traceback."""
    # deferred: these pull in boto3, the Kubernetes client and the notifier, which only `serve` needs
    from sloplane.evaluator.export import ExportError
    from sloplane.evaluator.integrations.argocd import KubernetesError
    from sloplane.evaluator.notify import ReceiversFileError

    try:
        return build()
    except ReceiversFileError as error:
        for problem in error.problems:
            console.err.print(problem, markup=False, soft_wrap=True)
    except (ExportError, ControlsError, DecisionLogError, KubernetesError, ValueError) as error:
        console.err.print(f"cannot start the evaluator: {error}", markup=False, soft_wrap=True)
    raise typer.Exit(1)


def _limited_file(text: str) -> tuple[SetLimits, Path]:
    """`team:payments,service:checkout=FILE` as (limits, file); BadParameter saying what is wrong."""
    limits, equals, path = text.partition("=")
    if not equals or not path:
        raise typer.BadParameter(f"{text!r}: give LIMITS=FILE, e.g. team:payments=tokens/payments.yaml")
    try:
        return SetLimits.parse(limits), Path(path)
    except ValueError as error:
        raise typer.BadParameter(f"{text!r}: {error}") from None


def _token_store(paths: list[Path], limited: list[str], console: Consoles) -> TokenStore:
    files = [_limited_file(text) for text in limited]
    try:
        return read_token_files(paths, lambda text: console.err.print(text, style="yellow", markup=False), files)
    except TokenFileError as error:
        console.err.print(f"sloplane serve: {error}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer, console: Consoles) -> None:
    """Add `serve`, `openapi` and `token create` to the `sloplane` app."""
    token_app = typer.Typer(help="Bearer tokens for the evaluator API.", no_args_is_help=True)
    app.add_typer(token_app, name="token")

    @app.command()
    def serve(
        paths: Paths,
        tokens: Annotated[
            list[Path] | None,
            typer.Option(
                help="Tokens file, or a folder of them (`sloplane token create` writes entries); repeatable: "
                "e.g. one file per team, each from its own secret."
            ),
        ] = None,
        limited_tokens: Annotated[
            list[str] | None,
            typer.Option(
                "--limited-tokens",
                metavar="LIMITS=FILE",
                help="A tokens file whose every token is confined to LIMITS (team:NAME, service:NAME, "
                "comma-separated), whatever the file says: e.g. team:payments=payments.yaml (repeatable).",
            ),
        ] = None,
        prometheus: PrometheusOption = None,
        datadog: DatadogOption = None,
        datadog_delay: DatadogDelayOption = DEFAULT_DATADOG_DELAY,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
        db: Db = DEFAULT_DB,
        staleness: Staleness = "5m",
        controls: Annotated[
            Path | None, typer.Option(help="Freezes and incidents (SQLite); default: the decision log's file.")
        ] = None,
        receivers: Annotated[
            Path | None, typer.Option(help="PagerDuty and webhook receivers for incident notifications.")
        ] = None,
        outbox: Annotated[Path | None, typer.Option(help="Notification outbox; default: <db>-outbox.db.")] = None,
        export_s3: Annotated[
            str | None, typer.Option("--export-s3", help="Export the decision log to s3://bucket/prefix.")
        ] = None,
        export_interval: Annotated[str, typer.Option(help="How often to export with --export-s3.")] = "5m",
        s3_endpoint_url: Annotated[
            str | None, typer.Option("--s3-endpoint-url", help="S3-compatible endpoint (MinIO, Ceph).")
        ] = None,
        s3_region: Annotated[str | None, typer.Option("--s3-region", help="The bucket's region.")] = None,
        argocd_project: Annotated[
            str | None,
            typer.Option(help="While a major incident is open, keep a deny sync window in this Argo CD AppProject."),
        ] = None,
        argocd_namespace: Annotated[str, typer.Option(help="Namespace of the AppProject.")] = "argocd",
        argocd_application: Annotated[
            list[str] | None, typer.Option(help="Applications the deny window covers (repeatable; default all).")
        ] = None,
        health_interval: Annotated[
            str,
            typer.Option(help="How often readiness state is refreshed: an idle backend asked, a failed log retried."),
        ] = "15s",
        rollup_interval: Annotated[
            str,
            typer.Option(help="How often the leader rolls each SLO's hours up into --db for reports (off: never)."),
        ] = "1h",
        public_status: Annotated[
            bool,
            typer.Option(
                "--public-status",
                help="Serve /status and /status.json without a token, showing the SLOs marked statusPage.public "
                "(a read token still sees every SLO).",
            ),
        ] = False,
        status_name: Annotated[str, typer.Option("--status-name", help="The status page's name.")] = "sloplane",
        log_level: Annotated[
            str, typer.Option("--log-level", envvar=LOG_LEVEL_ENV, help="debug, info, warning or error.")
        ] = "warning",
    ) -> None:
        """Run the evaluator's HTTP API (gates, SLOs, decisions, freezes, incidents, /metrics) until interrupted."""
        from sloplane.evaluator.http import serving  # the web stack is slow to import; only this command needs it
        from sloplane.evaluator.server import ServerConfig, build_service  # the whole service: only `serve` needs it

        configure_logging(log_level)
        if prometheus is None and datadog is None:
            raise typer.BadParameter("give --prometheus URL, --datadog SITE, or both")
        if not tokens and not limited_tokens:
            raise typer.BadParameter("give --tokens FILE (or --limited-tokens LIMITS=FILE): who may call the API")
        rollups = None if rollup_interval == "off" else parse_window(rollup_interval, "--rollup-interval")
        if rollups is not None and rollups <= timedelta(0):
            raise typer.BadParameter("give a positive duration, or off", param_hint="--rollup-interval")
        settings = datadog_settings(datadog, datadog_delay)
        store = _token_store(tokens or [], limited_tokens or [], console)
        loaded = console.load_all(paths, False)
        config = ServerConfig(
            prometheus,
            db,
            store,
            parse_window(staleness, "--staleness"),
            controls=controls,
            receivers=receivers,
            outbox=outbox,
            export_s3=export_s3,
            export_interval=parse_window(export_interval, "--export-interval"),
            s3_endpoint_url=s3_endpoint_url,
            s3_region=s3_region,
            argocd_project=argocd_project,
            argocd_namespace=argocd_namespace,
            argocd_applications=tuple(argocd_application or ("*",)),
            health_interval=parse_window(health_interval, "--health-interval"),
            datadog=settings.counts if settings is not None else None,
            rollup_interval=rollups,
            public_status=public_status,
            status_name=status_name,
            debts=tuple(item.debt for item in loaded.debts),
        )
        service = _built(console, lambda: build_service(Fleet(loaded.declarations), config))
        fleet = service.evaluator.fleet
        if public_status and not any(fleet[name].spec.status_page.public for name in fleet):
            console.err.print(
                "warning: --public-status, but no SLO says statusPage: {public: true}: the public page shows nothing",
                markup=False,
            )
        service.start()
        console.err.print(f"sloplane evaluator on http://{host}:{port} (OpenAPI at /openapi.json)", markup=False)
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it
        # found: make that handler an orderly exit, so the last export and the outbox close still run.
        signal.signal(signal.SIGTERM, _exit_quietly)
        try:
            serving.run(service.app, host, port)
        finally:
            service.close()

    @app.command(name="openapi")
    def openapi_command() -> None:
        """Print the evaluator API's OpenAPI document."""
        # deferred: the web stack is slow to import, and every other command would pay for it
        from sloplane.evaluator.http.app import openapi_document
        from sloplane.evaluator.server import ServerConfig, build_app

        with tempfile.TemporaryDirectory() as folder:
            config = ServerConfig("http://unused", Path(folder) / "unused.db", TokenStore([]))
            application, _ = build_app(Fleet([]), config)
            sys.stdout.write(pretty_json_ascii(openapi_document(application), sort_keys=True))

    @token_app.command(name="create")
    def create_token(
        name: Annotated[str, typer.Argument(help="Who or what the token is for (e.g. argo-rollouts).")],
        scope: Annotated[list[str], typer.Option("--scope", help="read, gate or admin (repeatable).")],
        service: Annotated[
            list[str] | None,
            typer.Option("--service", help="Limit the token to SLOs of this service (repeatable)."),
        ] = None,
        team: Annotated[
            list[str] | None,
            typer.Option("--team", help="Limit the token to SLOs this team owns (repeatable)."),
        ] = None,
    ) -> None:
        """Make a token: prints it once (hand it over) and the hashed entry for the token file.

        With --service or --team it reaches only those SLOs: one team's CI cannot act for another's.
        """
        try:
            token, entry = new_token(name, scope, services=service or (), teams=team or ())
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
        console.err.print("token (shown once; store it as a secret):", markup=False)
        sys.stdout.write(token + "\n")
        console.err.print("entry for the token file (under tokens:):", markup=False)
        console.err.print(json.dumps(entry.to_dict()), markup=False, soft_wrap=True)  # one line, to copy whole
