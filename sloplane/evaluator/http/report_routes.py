"""`GET /v1/reports/{kind}`: the reports `sloplane report KIND` writes, built by `serve` from its own database.

Each kind takes the command's options as query parameters of the same names (`--month 2025-10` is
`?month=2025-10`), plus `format` (json, the default; csv; html) and `at`; the same data and `at` give the same
bytes as the command (`history.report_kinds` is the one table both use). A parameter the kind does not take,
or one it cannot (a month that is none), is a 422 naming it.

A token limited to services or teams gets the report over its own SLOs only. Reports read months of rows:
one is built at a time per replica (`ReportDesk`), in a worker thread, so a burst of report requests does not
take the CPU the gates need; a request's options are checked first (a bad one is a 422 at once), and one that
cannot start within `WAIT_SECONDS` is answered 503 with `Retry-After` rather than holding a worker thread while
it waits (a server's threads are few). A store that cannot be read is a 503 too, as for the gates.

No `from __future__ import annotations`: FastAPI must resolve the closures' `Depends(...)` annotations.
"""

import dataclasses
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response

from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.history.report_kinds import (
    KINDS,
    FleetLog,
    NothingToReportError,
    ReportKind,
    ReportOptionError,
    ReportReadError,
    ReportSources,
    instant,
    report_now,
)
from sloplane.evaluator.http.auth import Principal, Scope
from sloplane.evaluator.http.common import AUTH_RESPONSES, PAGE_HEADERS, requires
from sloplane.evaluator.http.guard import RouteGuard
from sloplane.evaluator.http.schemas import Problem
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

REPORTS_PATH = "/v1/reports"
WAIT_SECONDS = 2.0
MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}
COMMON = ("format", "at")


class ReportDesk:
    """Builds reports one at a time from `serve`'s stores (see the module's docstring)."""

    def __init__(self, sources: ReportSources) -> None:
        self.sources = sources
        self._turn = threading.Semaphore(1)

    def build(
        self, kind: ReportKind, options: dict[str, str | None], at: datetime, fleet: Fleet, *, limited: bool
    ) -> dict[str, Any]:
        """The report over `fleet` (the caller's SLOs; `limited`: not the whole fleet, so the log is read through
        `FleetLog`); TimeoutError when another did not finish in time."""
        kind.check(fleet, options, at)
        if not self._turn.acquire(timeout=WAIT_SECONDS):
            raise TimeoutError
        try:
            log = self.sources.log
            if limited and log is not None:
                log = FleetLog(log, fleet)
            sources = dataclasses.replace(self.sources, fleet=fleet, log=log)
            return kind.build(sources, options, at)
        finally:
            self._turn.release()


def _parameters(kind: ReportKind) -> list[dict[str, Any]]:
    """The kind's query parameters, for the document (the route reads them from the query string)."""
    described = [
        {
            "name": "format",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": list(FORMATS), "default": "json"},
            "description": "json (the report's own shape), csv (a header row) or html (one self-contained page).",
        },
        {
            "name": "at",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "format": "date-time", "maxLength": 64},
            "description": "The report's generation time (default: now): the same data and `at`, the same bytes.",
        },
    ]
    described += [
        {
            "name": option,
            "in": "query",
            "required": False,
            "schema": {"type": "string", "maxLength": 253},
            "description": f"As `sloplane report {kind.name} --{option}`.",
        }
        for option in kind.options
    ]
    return described


def _options(request: Request, kind: ReportKind) -> tuple[dict[str, str | None], str, datetime]:
    """The query's options, format and `at`; 422 for a parameter the kind does not take, or given twice."""
    query = request.query_params
    for name in query:
        if name not in kind.options and name not in COMMON:
            taken = ", ".join((*kind.options, *COMMON))
            raise HTTPException(422, f"report {kind.name} takes no parameter {name[:64]!r} (it takes {taken})")
        if len(query.getlist(name)) > 1:
            raise HTTPException(422, f"parameter {name[:64]!r} is given more than once")
    output_format = query.get("format", "json")
    if output_format not in FORMATS:
        raise HTTPException(422, f"format: give one of {', '.join(FORMATS)}")
    try:
        at = instant(query.get("at")) or report_now()
    except ReportOptionError as error:
        raise HTTPException(422, f"{error.option}: {error}") from None
    return {option: query.get(option) for option in kind.options}, output_format, at


def add_report_routes(app: FastAPI, desk: ReportDesk, guard: RouteGuard) -> None:
    """One `GET /v1/reports/{kind}` per kind in `KINDS` (scope `read`)."""
    reader = requires(guard, Scope.READ)

    def visible_fleet(principal: Principal) -> Fleet:
        fleet = desk.sources.fleet
        if not principal.limited:
            return fleet
        return Fleet([fleet[name] for name in fleet if guard.sees_slo(principal, name)])

    def route(kind: ReportKind) -> Callable[..., Response]:
        def report(request: Request, principal: Annotated[Principal, Depends(reader)]) -> Response:
            options, output_format, at = _options(request, kind)
            named = options.get(kind.names_service) if kind.names_service else None
            if named is not None:
                guard.service(principal, named, acting=False)
            try:
                built = desk.build(kind, options, at, visible_fleet(principal), limited=principal.limited)
            except ReportOptionError as error:
                raise HTTPException(422, f"{error.option}: {error}") from None
            except NothingToReportError as error:
                raise HTTPException(404, str(error)) from None
            except ReportReadError as error:
                raise HTTPException(502, str(error)) from None
            except TimeoutError:
                busy = "another report is being built on this replica: retry shortly"
                raise HTTPException(503, busy, {"Retry-After": "10"}) from None
            except (RollupError, DecisionLogError, ControlsError) as error:
                raise HTTPException(503, f"the store cannot be read: {error}") from None
            text = kind.file()(built, output_format)
            headers = {"Cache-Control": "no-store", **(PAGE_HEADERS if output_format == "html" else {})}
            return Response(text.encode(), media_type=MEDIA[output_format], headers=headers)

        return report

    for kind in KINDS.values():
        app.add_api_route(
            f"{REPORTS_PATH}/{kind.name}",
            route(kind),
            methods=["GET"],
            tags=["reports"],
            summary=f"The {kind.name} report",
            description=f"{kind.summary} As `sloplane report {kind.name}`, from this evaluator's database. "
            "A limited token: its own SLOs. Scope `read`.",
            response_model=None,
            responses={
                200: {
                    "description": "The report in the format asked for.",
                    "content": {media: {} for media in MEDIA.values()},
                },
                404: {"model": Problem, "description": "Nothing to report on (a revision no gate was asked about)."},
                422: {"model": Problem, "description": "A parameter the report does not take, or cannot."},
                502: {"model": Problem, "description": "Prometheus, which the report replays, did not answer."},
                503: {
                    "model": Problem,
                    "description": "Another report is being built (`Retry-After`), or the store cannot be read.",
                },
                **AUTH_RESPONSES,
            },
            openapi_extra={"parameters": _parameters(kind)},
            name=f"report_{kind.name}",
        )
