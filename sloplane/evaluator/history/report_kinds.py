"""Each report kind once, for the command line and for `serve`'s `/v1/reports/{kind}`: the options it takes, how
they are checked, and how the report is built from the stores.

Why one table: `sloplane report sla --month 2025-10` and `GET /v1/reports/sla?month=2025-10` must give the same
bytes for the same data and `at`, and refuse the same mistakes with the same words. Each kind's options arrive
as text (typer's and the query string's alike) and are checked here; a bad one raises `ReportOptionError`
naming it (the CLI turns it into a usage error naming `--month`, the API into a 422 naming `month`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sloplane.core.instants import parse_instant_text
from sloplane.declaration.types import TimeZone
from sloplane.evaluator.contracts import ReleaseControlsView
from sloplane.evaluator.history.budget import budget_report, earliest_start
from sloplane.evaluator.history.periods import Period, PeriodError, month, quarter, week
from sloplane.evaluator.history.sla import DecisionRange, SlaInputs, reported, sla_report, slo_zone
from sloplane.evaluator.model import Rollup
from sloplane.semantics.subjects import Fleet

RowReader = Callable[[datetime, datetime, list[str]], Sequence[Rollup]]
"""(since, until, SLO names) → their rollup rows: a store's `read`."""

_ZONES: TypeAdapter[str] = TypeAdapter(TimeZone)


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
    log: DecisionRange | None = None
    controls: ReleaseControlsView | None = None


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
    )
}
"""Every kind `/v1/reports/{kind}` serves; the command line registers the same builders."""
