"""Each report kind once, for the command line and for `serve`'s `/v1/reports/{kind}`: the options it takes, how
they are checked, and how the report is built from the stores.

Why one table: `sloplane report sla --month 2025-10` and `GET /v1/reports/sla?month=2025-10` must give the same
bytes for the same data and `at`, and refuse the same mistakes with the same words. Each kind's options arrive
as text (typer's and the query string's alike) and are checked here; a bad one raises `ReportOptionError`
naming it (the CLI turns it into a usage error naming `--month`, the API into a 422 naming `month`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from types import ModuleType
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from sloplane.core.durations import format_duration, parse_duration
from sloplane.core.instants import parse_instant_text
from sloplane.core.text import excerpt
from sloplane.declaration.types import TimeZone
from sloplane.evaluator.contracts import DecisionQuery, ReleaseControlsView
from sloplane.evaluator.history.budget import budget_report, earliest_start
from sloplane.evaluator.history.oncall import (
    DEFAULT_SHIFT,
    DEFAULT_SHIFT_START,
    DEFAULT_TARGET,
    OncallError,
    OncallOptions,
    ReplayError,
    oncall_report,
)
from sloplane.evaluator.history.periods import Period, PeriodError, month, quarter, week
from sloplane.evaluator.history.platform import PlatformError, check_service, platform_report
from sloplane.evaluator.history.quarterly import quarterly_report
from sloplane.evaluator.history.quarterly_agenda import AGENDA, AgendaSource
from sloplane.evaluator.history.quarterly_slo import following_quarter, previous_quarter
from sloplane.evaluator.history.sla import SlaInputs, reported, sla_report, slo_zone
from sloplane.evaluator.measuring.backends.base import MetricsBackend
from sloplane.evaluator.model import ReleaseSpan, Rollup
from sloplane.semantics.subjects import Fleet

RowReader = Callable[[datetime, datetime, list[str]], Sequence[Rollup]]
"""(since, until, SLO names) → their rollup rows: a store's `read`."""
AgendaExtras = Callable[[str, datetime, Fleet, "ReportLog | None"], Sequence[AgendaSource]]
"""(quarter label, as of, the fleet and log the review covers) → agenda sources it adds after its own: the fleet and
log are the report's (a limited token's own SLOs and decisions), so that its agenda shows nothing else."""

_ZONES: TypeAdapter[str] = TypeAdapter(TimeZone)


class ReportLog(DecisionQuery, Protocol):
    """What reports read of the decision log beyond `query` (both stores have it)."""

    def span(self, since: datetime, until: datetime) -> tuple[int, int | None, int | None]: ...

    def releases(self, service: str, since: datetime) -> list[ReleaseSpan]: ...

    def iter_with_seq(self, after_seq: int = 0, *, batch_size: int = 500) -> Iterator[tuple[int, dict[str, Any]]]: ...


@dataclass(frozen=True)
class FleetLog:
    """The decision log as seen from a fleet: only decisions about its SLOs, only releases of its services.

    Why: a token limited to some services gets reports over its own SLOs (`/v1/reports/{kind}`), and a report
    that reads the log by revision or by time (retro, quarterly, platform) would otherwise show what other
    services' gates decided. `span` is passed through: it is the evidence's count of the whole log's range.
    A `query` with a `limit` may return fewer than `limit` records once others' are left out.
    """

    log: ReportLog
    fleet: Fleet

    def span(self, since: datetime, until: datetime) -> tuple[int, int | None, int | None]:
        return self.log.span(since, until)

    def releases(self, service: str, since: datetime) -> list[ReleaseSpan]:
        services = {self.fleet[name].spec.service for name in self.fleet}
        return self.log.releases(service, since) if service in services else []

    def query(self, **filters: Any) -> list[dict[str, Any]]:
        return [record for record in self.log.query(**filters) if record.get("slo") in self.fleet]

    def iter_with_seq(self, after_seq: int = 0, *, batch_size: int = 500) -> Iterator[tuple[int, dict[str, Any]]]:
        for seq, record in self.log.iter_with_seq(after_seq, batch_size=batch_size):
            if record.get("slo") in self.fleet:
                yield seq, record


class NothingToReportError(LookupError):
    """The store holds nothing the report is about (a revision no gate was asked about): the CLI's exit 1, the
    API's 404."""


class ReportReadError(RuntimeError):
    """A source the report reads could not be read (Prometheus down): the CLI's exit 1, the API's 502."""


class ReportOptionError(ValueError):
    """An option a report cannot take, with the option's name (`month`, not `--month`: each caller spells it)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class ReportSources:
    """Where a report reads: the fleet it covers, the rollups, the decision log and the release controls."""

    fleet: Fleet
    rows: RowReader
    log: ReportLog | None = None
    controls: ReleaseControlsView | None = None
    backend: MetricsBackend | None = None
    """Prometheus, for the reports replayed from it (`oncall`); none: they cannot be built here."""
    agenda: AgendaExtras | None = None
    """The quarterly review's further agenda sources (governance's findings, `governance.quarterly_findings`),
    given from above this layer; none: the review's own sources only."""


ROLLUPS_MISSING = "no rollups at {db}: run `sloplane rollup` first"
LOG_MISSING = "no decision log at {db}: gates record there (`sloplane serve`, `gate`)"


@dataclass(frozen=True)
class ReportKind:
    """One kind: its name, its options (besides `format` and `at`), and its builder."""

    name: str
    options: tuple[str, ...]
    check: Callable[[Fleet, Mapping[str, str | None], datetime], object]
    """Raises `ReportOptionError` for options the kind cannot take, before any store is opened."""
    build: Callable[[ReportSources, Mapping[str, str | None], datetime], dict[str, Any]]
    summary: str
    file: Callable[[], Callable[[dict[str, Any], str], str]]
    """The kind's writer (report, format → text), loaded when first needed: the HTML needs jinja2."""
    missing: str = ROLLUPS_MISSING
    """What to say when `--db` names no file (`{db}`: its name): what the kind reads, and how it gets there."""
    names_service: str | None = None
    """The option naming a service the report is about (`platform`'s `service`): a token limited to other
    services is refused it, as it is the catalog's page of that service."""


def report_now() -> datetime:
    """A report's default `at`: now, rounded up to the second. Up, not down: a decision recorded earlier in this
    very second must be in a report asked for now (a retro right after the release's last gate)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=0) + (timedelta(seconds=1) if now.microsecond else timedelta(0))


def time_zone(text: str | None) -> str | None:
    """`tz` checked as a declaration's `timeZone` is (an IANA name, a suggestion when mistyped)."""
    if text is None:
        return None
    try:
        return str(_ZONES.validate_python(text))
    except ValidationError as error:
        raise ReportOptionError("tz", "; ".join(str(p["msg"]) for p in error.errors(include_url=False))) from None


def instant(text: str | None, option: str = "at") -> datetime | None:
    """An instant option (RFC 3339, or what `sloplane` accepts elsewhere), UTC."""
    if text is None:
        return None
    try:
        return parse_instant_text(text).astimezone(UTC)
    except ValueError as error:
        raise ReportOptionError(option, str(error)) from None


def sla_periods(fleet: Fleet, options: Mapping[str, str | None]) -> tuple[str, dict[str, Period]]:
    """The label and each SLO's period: exactly one of `month` and `quarter`, cut in `tz` or the SLO's zone."""
    month_text, quarter_text = options.get("month"), options.get("quarter")
    if (month_text is None) == (quarter_text is None):
        raise ReportOptionError("month", "give exactly one of month (YYYY-MM) or quarter (YYYY-Qn)")
    zone = time_zone(options.get("tz"))
    label, make, option = (month_text, month, "month") if month_text is not None else (quarter_text, quarter, "quarter")
    assert label is not None  # exactly one is given (above)
    try:
        make(label, "UTC")  # the label itself, whatever the fleet
        return label, {d.name: make(label, zone or slo_zone(d)) for d in reported(fleet)}
    except PeriodError as error:
        raise ReportOptionError(option, str(error)) from None


def _sla(sources: ReportSources, options: Mapping[str, str | None], at: datetime) -> dict[str, Any]:
    label, periods = sla_periods(sources.fleet, options)
    starts = [period.start for period in periods.values()] or [at]
    ends = [period.end for period in periods.values()] or [at]
    inputs = SlaInputs(sources.fleet, [], periods, at, sources.log)
    try:
        return sla_report(inputs, label, lambda names: sources.rows(min(starts), max(ends), names))
    except PeriodError as error:  # a zone cutting the rollups' hours in two
        raise ReportOptionError("tz", str(error)) from None


def budget_at(options: Mapping[str, str | None], generated: datetime) -> datetime:
    """Where the budget report's week ends: the end of ISO week `week` (UTC), or `at`, or now to the hour."""
    week_text = options.get("week")
    if week_text is None:
        return generated.replace(minute=0, second=0, microsecond=0)
    try:
        return week(week_text, "UTC").end
    except PeriodError as error:
        raise ReportOptionError("week", str(error)) from None


def _budget(sources: ReportSources, options: Mapping[str, str | None], at: datetime) -> dict[str, Any]:
    end = budget_at(options, at)
    since = earliest_start(sources.fleet, end)
    return budget_report(sources.fleet, end, lambda names: sources.rows(since, end, names), sources.controls)


def _files() -> ModuleType:
    # why: jinja2 and the templates load when a report is written, not when the command line starts
    from sloplane.evaluator.history import report_files  # noqa: PLC0415 - jinja2 only when writing

    return report_files


def quarter_label(options: Mapping[str, str | None]) -> str:
    """`quarter`, required, checked as a quarter."""
    text = options.get("quarter")
    if text is None:
        raise ReportOptionError("quarter", "give the quarter, YYYY-Qn")
    try:
        quarter(text, "UTC")
        for label in (previous_quarter(text), following_quarter(text)):  # the review reads both neighbours
            quarter(label, "UTC")
    except PeriodError as error:
        raise ReportOptionError("quarter", str(error)) from None
    return text


def _quarterly_check(options: Mapping[str, str | None]) -> None:
    quarter_label(options)
    time_zone(options.get("tz"))


def _quarterly(sources: ReportSources, options: Mapping[str, str | None], at: datetime) -> dict[str, Any]:
    label, zone = quarter_label(options), time_zone(options.get("tz"))
    try:
        return quarterly_report(
            sources.fleet,
            label,
            at,
            lambda names, since, until: sources.rows(since, until, names),
            time_zone=zone,
            log=sources.log,
            agenda_sources=(*AGENDA, *_extra_agenda(sources, label, at)),
        )
    except PeriodError as error:  # a zone cutting the rollups' hours in two
        raise ReportOptionError("tz", str(error)) from None


def _extra_agenda(sources: ReportSources, label: str, at: datetime) -> Sequence[AgendaSource]:
    """The further agenda sources over the report's own fleet and log (none without `sources.agenda`)."""
    return () if sources.agenda is None else sources.agenda(label, at, sources.fleet, sources.log)


def _retro_check(options: Mapping[str, str | None]) -> None:
    if (options.get("revision") is None) == (options.get("pipeline") is None):
        raise ReportOptionError("revision", "give exactly one of revision R or pipeline P")


def _retro(sources: ReportSources, options: Mapping[str, str | None], at: datetime) -> dict[str, Any]:
    # why: the builder reads `notify.classify`, whose package loads jinja2: not when the command line starts
    from sloplane.evaluator.history.retro import RetroError, retro_report  # noqa: PLC0415

    _retro_check(options)
    if sources.log is None:
        raise NothingToReportError("no decision log to look back on")
    try:
        return retro_report(
            sources.fleet,
            sources.log,
            sources.rows,
            at,
            revision=options.get("revision"),
            pipeline=options.get("pipeline"),
        )
    except RetroError as error:
        raise NothingToReportError(f"{error}: `sloplane decisions` lists what the log holds") from None


def _required(options: Mapping[str, str | None], option: str) -> str:
    text = options.get(option)
    if text is None:
        raise ReportOptionError(option, f"give {option}")
    return text


def _shift_start(text: str | None) -> time:
    if text is None:
        return DEFAULT_SHIFT_START
    try:
        parsed: time | None = time.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.second or parsed.microsecond or parsed.tzinfo is not None or len(text) != 5:
        raise ReportOptionError("shift-start", f"'{excerpt(text)}' is not a wall-clock time HH:MM (e.g. 09:00)")
    return parsed


def oncall_options(options: Mapping[str, str | None], at: datetime) -> OncallOptions:
    """The on-call report's span and shifts, checked (`OncallOptions.check`)."""
    since, until = instant(_required(options, "from"), "from"), instant(_required(options, "to"), "to")
    assert since is not None and until is not None
    try:
        shift = parse_duration(options.get("shift") or format_duration(DEFAULT_SHIFT))
    except ValueError as error:
        raise ReportOptionError("shift", str(error)) from None
    target_text = options.get("target")
    if target_text is not None and not re.fullmatch(r"[0-9]{1,6}", target_text):
        raise ReportOptionError("target", f"'{excerpt(target_text)}' is not a number of pages (0 to 999999)")
    target = DEFAULT_TARGET if target_text is None else int(target_text)
    zone = time_zone(options.get("tz")) or "UTC"
    parsed = OncallOptions(since, until, shift, _shift_start(options.get("shift-start")), zone, target)
    try:
        parsed.check(at)
    except OncallError as error:
        raise ReportOptionError(error.option, str(error)) from None
    return parsed


def _oncall(sources: ReportSources, options: Mapping[str, str | None], at: datetime) -> dict[str, Any]:
    parsed = oncall_options(options, at)
    if sources.backend is None:
        raise NothingToReportError("no Prometheus to replay the alerts against")
    try:
        return oncall_report(sources.fleet, sources.backend, parsed, at=at)
    except ReplayError as error:
        raise ReportReadError(str(error)) from None


def platform_span(options: Mapping[str, str | None], at: datetime) -> tuple[datetime | None, datetime]:
    """`from` (default: the log's beginning) and `to` (default: `at`), in order and not past `at`."""
    until = instant(options.get("to"), "to") or at
    since = instant(options.get("from"), "from")
    if since is not None and since >= until:
        raise ReportOptionError("from", f"{since.isoformat()} must be before to ({until.isoformat()})")
    if until > at:
        raise ReportOptionError("to", f"{until.isoformat()} is after at ({at.isoformat()})")
    return since, until


def _platform_check(fleet: Fleet, options: Mapping[str, str | None], at: datetime) -> None:
    platform_span(options, at)
    try:
        check_service(fleet, _required(options, "service"))
    except PlatformError as error:
        raise ReportOptionError(error.option, str(error)) from None


def _platform(sources: ReportSources, options: Mapping[str, str | None], at: datetime) -> dict[str, Any]:
    _platform_check(sources.fleet, options, at)
    since, until = platform_span(options, at)
    if sources.log is None:
        raise NothingToReportError("no decision log to read")
    return platform_report(sources.fleet, sources.log, _required(options, "service"), since=since, until=until, at=at)


def _oncall_files() -> Callable[[dict[str, Any], str], str]:
    # why: jinja2 and the templates load when a report is written, not when the command line starts
    from sloplane.evaluator.history.oncall_files import oncall_file  # noqa: PLC0415

    return oncall_file


def _platform_files() -> Callable[[dict[str, Any], str], str]:
    # why: jinja2 and the templates load when a report is written, not when the command line starts
    from sloplane.evaluator.history.oncall_files import platform_file  # noqa: PLC0415

    return platform_file


def _quarterly_files() -> Callable[[dict[str, Any], str], str]:
    # why: jinja2 and the templates load when a report is written, not when the command line starts
    from sloplane.evaluator.history.quarterly_files import quarterly_file  # noqa: PLC0415

    return quarterly_file


def _retro_files() -> Callable[[dict[str, Any], str], str]:
    # why: jinja2 and the templates load when a report is written, not when the command line starts
    from sloplane.evaluator.history.retro_files import retro_file  # noqa: PLC0415

    return retro_file


KINDS: dict[str, ReportKind] = {
    kind.name: kind
    for kind in (
        ReportKind(
            "sla",
            ("month", "quarter", "tz"),
            lambda fleet, options, _at: sla_periods(fleet, options),
            _sla,
            "Per SLO over a month or quarter: the objective in force, met or missed, budget used, bad minutes, "
            "exclusions, the deployment share of the burn, and the evidence.",
            lambda: _files().sla_file,
        ),
        ReportKind(
            "budget",
            ("week",),
            lambda _fleet, options, at: budget_at(options, at),
            _budget,
            "SLOs by error budget left: the period so far and the last seven days, the burn rate, the time to "
            "exhaustion, the freezes in force.",
            lambda: _files().budget_file,
        ),
        ReportKind(
            "quarterly",
            ("quarter", "tz"),
            lambda _fleet, options, _at: _quarterly_check(options),
            _quarterly,
            "The quarterly review: health by team and tier, a roll-up score with its inputs, each SLO's months and "
            "the change since the quarter before, reviews due, break-glass per team, and the meeting's agenda.",
            _quarterly_files,
        ),
        ReportKind(
            "retro",
            ("revision", "pipeline"),
            lambda _fleet, options, _at: _retro_check(options),
            _retro,
            "A release looked back on: the gates with their reasons and burn, the budget its hours used against "
            "the background, rollbacks and break-glass, detection against the alerts' theory, links, and the "
            "questions for a blameless postmortem (required when it used 20% of a budget or more).",
            _retro_files,
        ),
        ReportKind(
            "oncall",
            ("from", "to", "shift", "shift-start", "tz", "target"),
            lambda _fleet, options, at: oncall_options(options, at),
            _oncall,
            "Pages per on-call shift against a target, the time spent paging, the SLOs that page again and again, "
            "and the alerts without a runbook: the page-tier burn-rate alerts replayed from Prometheus.",
            _oncall_files,
        ),
        ReportKind(
            "platform",
            ("service", "from", "to"),
            _platform_check,
            _platform,
            "The consumers whose gates were held because the service burned its budget (the `dependency` reason): "
            "per consumer SLO, the decisions and revisions held, when, for how long, and the service's own gates.",
            _platform_files,
            LOG_MISSING,
            "service",
        ),
    )
}
"""Every kind `/v1/reports/{kind}` serves; the command line registers the same builders."""
