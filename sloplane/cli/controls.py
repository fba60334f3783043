"""`sloplane freeze` and `sloplane incident`: release controls from the command line.

Each command works on a local file (`--db`, the decision log's by default, as `sloplane serve`
uses) or on a running evaluator (`--evaluator URL --token`), so an on-call engineer can freeze
from a laptop and a script on the evaluator's host can do without a token. Locally the record
names `$SLOPLANE_USER` (or the OS user); remotely, the evaluator records the token's name.

Refusals (unknown id, already lifted, an unreachable evaluator) are one line on stderr and exit 1;
usage errors (a bad --until) exit 2, as everywhere in sloplane.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from urllib.parse import quote

import requests
import typer
from rich.table import Table

from sloplane.cli.common import (
    DEFAULT_DB,
    DEFAULT_DB_SHOWN,
    Consoles,
    RefusedError,
    local_user,
    parse_instant,
    parse_window,
    store_missing,
    store_name,
)
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.contracts import ReleaseControlsStore
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.open import open_release_controls

TIMEOUT_SECONDS = 30.0

Db = Annotated[
    str,
    typer.Option(
        "--db",
        help="Release controls: a SQLite file or a postgresql:// URL ($SLOPLANE_DB).",
        show_default=DEFAULT_DB_SHOWN,
    ),
]
EvaluatorUrl = Annotated[
    str | None, typer.Option("--evaluator", help="Act on a running evaluator (sloplane serve) instead of --db.")
]
Token = Annotated[str | None, typer.Option("--token", envvar="SLOPLANE_TOKEN", help="Token for --evaluator (admin).")]
Format = Annotated[str, typer.Option("--format", help="table (or text) or json.")]
All = Annotated[bool, typer.Option("--all", help="Include lifted freezes / resolved incidents.")]


class ControlsEndpoint(Protocol):
    """Where the controls are: a local file or a running evaluator. Records in their `to_dict()` form."""

    def freeze(self, service: str | None, reason: str, until: datetime | None) -> dict[str, Any]: ...
    def lift(self, freeze_id: str, reason: str) -> dict[str, Any]: ...
    def freezes(self, include_all: bool) -> list[dict[str, Any]]: ...
    def open_incident(self, title: str, severity: str, services: list[str]) -> dict[str, Any]: ...
    def resolve(self, incident_id: str) -> dict[str, Any]: ...
    def incidents(self, include_all: bool) -> list[dict[str, Any]]: ...


@dataclass
class Local:
    """The controls in a SQLite file, opened only when a command needs them."""

    db: str
    must_exist: bool = False

    @contextmanager
    def _controls(self) -> Iterator[ReleaseControlsStore]:
        if self.must_exist and store_missing(self.db):
            raise RefusedError(f"no release controls at {store_name(self.db)}")
        try:
            with open_release_controls(self.db) as controls:
                yield controls
        except ControlsError as error:
            raise RefusedError(str(error)) from None

    def freeze(self, service: str | None, reason: str, until: datetime | None) -> dict[str, Any]:
        with self._controls() as controls:
            return controls.freeze(service, reason, local_user(), until=until).to_dict()

    def lift(self, freeze_id: str, reason: str) -> dict[str, Any]:
        with self._controls() as controls:
            return controls.lift(freeze_id, local_user(), reason).to_dict()

    def freezes(self, include_all: bool) -> list[dict[str, Any]]:
        with self._controls() as controls:
            return [freeze.to_dict() for freeze in controls.freezes(active_only=not include_all)]

    def open_incident(self, title: str, severity: str, services: list[str]) -> dict[str, Any]:
        with self._controls() as controls:
            return controls.open_incident(title, severity, local_user(), services=services).to_dict()

    def resolve(self, incident_id: str) -> dict[str, Any]:
        with self._controls() as controls:
            return controls.resolve_incident(incident_id, local_user()).to_dict()

    def incidents(self, include_all: bool) -> list[dict[str, Any]]:
        with self._controls() as controls:
            return [incident.to_dict() for incident in controls.incidents(open_only=not include_all)]


@dataclass
class Remote:
    """The controls of a running evaluator, through its HTTP API (`controls_api`)."""

    url: str
    token: str | None

    def freeze(self, service: str | None, reason: str, until: datetime | None) -> dict[str, Any]:
        body = {"service": service, "reason": reason, "until": None if until is None else until.isoformat()}
        return dict(self._call("POST", "/v1/freezes", json={k: v for k, v in body.items() if v is not None}))

    def lift(self, freeze_id: str, reason: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/v1/freezes/{_segment(freeze_id)}", json={"reason": reason}))

    def freezes(self, include_all: bool) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/freezes", params={"all": str(include_all).lower()}))

    def open_incident(self, title: str, severity: str, services: list[str]) -> dict[str, Any]:
        body = {"title": title, "severity": severity, "services": services}
        return dict(self._call("POST", "/v1/incidents", json=body))

    def resolve(self, incident_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/incidents/{_segment(incident_id)}/resolve"))

    def incidents(self, include_all: bool) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/incidents", params={"all": str(include_all).lower()}))

    def _call(self, method: str, path: str, **options: Any) -> Any:
        """The answer's JSON, or `RefusedError` saying what went wrong in words (never a traceback)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = self.url.rstrip("/") + path
        try:
            response = requests.request(method, url, headers=headers, timeout=TIMEOUT_SECONDS, **options)
        except requests.RequestException as error:
            raise RefusedError(f"cannot reach the evaluator at {self.url}: {type(error).__name__}") from None
        try:
            answer = response.json()
        except ValueError:
            raise RefusedError(
                f"the evaluator answered HTTP {response.status_code} with something that is not JSON"
            ) from None
        if response.status_code >= 400:
            raise RefusedError(f"the evaluator refused (HTTP {response.status_code}): {_detail(answer)}")
        return answer


def _segment(value: str) -> str:
    """An id as one path segment: a `/` or `?` in a mistyped id must not reach another endpoint."""
    return quote(value, safe="")


def _detail(answer: Any) -> str:
    """The `Problem` detail, or each field error of a 422."""
    detail = answer.get("detail") if isinstance(answer, dict) else answer
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
    return str(detail)


def _target(db: str, evaluator: str | None, token: str | None, *, existing: bool = False) -> ControlsEndpoint:
    """The evaluator when given, else the file; `existing`: a command that only reads or ends records
    must not create an empty file where a mistyped --db points."""
    return Remote(evaluator, token) if evaluator else Local(db, must_exist=existing)


def _until(until: str | None, lasting: str | None) -> datetime | None:
    """The end of a freeze from --until or --for (not both), or a usage error."""
    if until is not None and lasting is not None:
        raise typer.BadParameter("give --until or --for, not both")
    if lasting is not None:
        return datetime.now(UTC) + parse_window(lasting, "--for")
    return parse_instant(until, "--until")


def _show(value: Any) -> str:
    return "-" if value in (None, "", []) else str(value)


def freezes_table(found: list[dict[str, Any]]) -> Table:
    """One row per freeze: what it covers, why, who, and when it started and ends."""
    table = Table(title=f"freezes ({len(found)})", title_justify="left")
    for column in ("id", "service", "reason", "by", "since", "until", "lifted"):
        table.add_column(column)
    for freeze in found:
        lifted = f"{freeze['liftedAt']} by {freeze['liftedBy']}" if freeze.get("liftedAt") else "-"
        service = freeze.get("service") or "(every service)"
        row = (freeze["id"], service, freeze["reason"], freeze["createdBy"], freeze["createdAt"])
        table.add_row(*row, _show(freeze.get("until")), lifted)
    return table


def incidents_table(found: list[dict[str, Any]]) -> Table:
    """One row per incident: severity, title, services, who opened it and when, and its resolution."""
    table = Table(title=f"incidents ({len(found)})", title_justify="left")
    for column in ("id", "severity", "title", "services", "opened by", "opened at", "resolved"):
        table.add_column(column)
    for incident in found:
        resolved = f"{incident['resolvedAt']} by {incident['resolvedBy']}" if incident.get("resolvedAt") else "-"
        services = ", ".join(incident.get("services") or []) or "(every service)"
        row = (incident["id"], incident["severity"], incident["title"], services, incident["openedBy"])
        table.add_row(*row, incident["openedAt"], resolved)
    return table


@dataclass(frozen=True)
class _Printer:
    consoles: Consoles

    @contextmanager
    def refusals(self, command: str) -> Iterator[None]:
        """A refusal as one line on stderr and exit 1."""
        try:
            yield
        except RefusedError as error:
            self.consoles.err.print(f"sloplane {command}: {error}", style="red", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None

    def record(self, value: dict[str, Any], output: str, line: str) -> None:
        if output == "json":
            sys.stdout.write(pretty_json(value))
        else:
            self.consoles.out.print(line, markup=False, soft_wrap=True)

    def listing(self, found: list[dict[str, Any]], output: str, table: Callable[[list[dict[str, Any]]], Table]) -> None:
        if output == "json":
            sys.stdout.write(pretty_json(found))
        else:
            self.consoles.out.print(table(found))


def register(app: typer.Typer, console: Consoles) -> None:
    """Add `freeze` and `incident` to the `sloplane` app."""
    printer = _Printer(console)
    freeze_app = typer.Typer(help="Release freezes: while one is in force, gates fail `frozen`.", no_args_is_help=True)
    incident_app = typer.Typer(help="Incidents: while a major one is open, gates fail `frozen`.", no_args_is_help=True)
    app.add_typer(freeze_app, name="freeze")
    app.add_typer(incident_app, name="incident")
    _freeze_commands(freeze_app, printer)
    _incident_commands(incident_app, printer)


def _freeze_commands(freeze_app: typer.Typer, printer: _Printer) -> None:
    @freeze_app.command(name="create")
    def create(
        reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")],
        service: Annotated[str | None, typer.Option("--service", help="Only this service (default: all).")] = None,
        until: Annotated[str | None, typer.Option("--until", help="Ends at this RFC 3339 instant.")] = None,
        lasting: Annotated[str | None, typer.Option("--for", help="Ends after this long, e.g. 2h.")] = None,
        db: Db = DEFAULT_DB,
        evaluator: EvaluatorUrl = None,
        token: Token = None,
        output_format: Format = "text",
    ) -> None:
        """Freeze releases of a service, or of every service, until lifted (or --until / --for)."""
        ends = _until(until, lasting)
        with printer.refusals("freeze create"):
            freeze = _target(db, evaluator, token).freeze(service, reason, ends)
        covered = freeze.get("service") or "every service"
        ending = f" until {freeze['until']}" if freeze.get("until") else " until lifted"
        printer.record(freeze, output_format, f"{freeze['id']}: froze {covered}{ending}")

    @freeze_app.command(name="lift")
    def lift(
        freeze_id: Annotated[str, typer.Argument(help="The freeze's id (frz-...).", show_default=False)],
        reason: Annotated[str, typer.Option("--reason", help="Why it is lifted, for the record.")],
        db: Db = DEFAULT_DB,
        evaluator: EvaluatorUrl = None,
        token: Token = None,
        output_format: Format = "text",
    ) -> None:
        """Lift a freeze; it stays recorded, with who lifted it and why."""
        with printer.refusals("freeze lift"):
            freeze = _target(db, evaluator, token, existing=True).lift(freeze_id, reason)
        printer.record(freeze, output_format, f"{freeze['id']}: lifted by {freeze['liftedBy']}")

    @freeze_app.command(name="list")
    def list_freezes(
        include_all: All = False,
        db: Db = DEFAULT_DB,
        evaluator: EvaluatorUrl = None,
        token: Token = None,
        output_format: Format = "table",
    ) -> None:
        """List the freezes in force (with --all, every freeze recorded), newest first."""
        with printer.refusals("freeze list"):
            found = _target(db, evaluator, token, existing=True).freezes(include_all)
        printer.listing(found, output_format, freezes_table)


def _incident_commands(incident_app: typer.Typer, printer: _Printer) -> None:
    @incident_app.command(name="open")
    def open_incident(
        title: Annotated[str, typer.Option("--title", help="What is wrong.")],
        severity: Annotated[str, typer.Option("--severity", help="major (stops releases) or minor.")] = "major",
        service: Annotated[
            list[str] | None, typer.Option("--service", help="A service concerned (repeatable).")
        ] = None,
        db: Db = DEFAULT_DB,
        evaluator: EvaluatorUrl = None,
        token: Token = None,
        output_format: Format = "text",
    ) -> None:
        """Open an incident; a major one stops releases of its services (of all, when none named)."""
        if severity not in ("major", "minor"):
            raise typer.BadParameter(f"'{severity}' is not major or minor", param_hint="--severity")
        with printer.refusals("incident open"):
            incident = _target(db, evaluator, token).open_incident(title, severity, service or [])
        printer.record(
            incident, output_format, f"{incident['id']}: opened ({incident['severity']}) {incident['title']}"
        )

    @incident_app.command(name="resolve")
    def resolve(
        incident_id: Annotated[str, typer.Argument(help="The incident's id (inc-...).", show_default=False)],
        db: Db = DEFAULT_DB,
        evaluator: EvaluatorUrl = None,
        token: Token = None,
        output_format: Format = "text",
    ) -> None:
        """Resolve an incident; it stays recorded, with who resolved it."""
        with printer.refusals("incident resolve"):
            incident = _target(db, evaluator, token, existing=True).resolve(incident_id)
        printer.record(incident, output_format, f"{incident['id']}: resolved by {incident['resolvedBy']}")

    @incident_app.command(name="list")
    def list_incidents(
        include_all: All = False,
        db: Db = DEFAULT_DB,
        evaluator: EvaluatorUrl = None,
        token: Token = None,
        output_format: Format = "table",
    ) -> None:
        """List the open incidents (with --all, every incident recorded), newest first."""
        with printer.refusals("incident list"):
            found = _target(db, evaluator, token, existing=True).incidents(include_all)
        printer.listing(found, output_format, incidents_table)
