"""The on-call report: pages per shift against a target, time spent paging, SLOs that page again and again, and
alerts without a runbook — what an on-call hand-over and a toil review open first.

Pages are the firings of sloplane's own page-tier burn-rate alerts. Prometheus keeps `ALERTS` only as far back as
it kept evaluating the rules (and a backfilled history has none), so the report *replays* each alert instead:
- the very condition the generated rule evaluates (`render.prometheus`): long-window error ratio `>` the threshold
  `and` short-window error ratio `>` the threshold, the threshold being the tier's factor × the error budget
  (`core.budget.BurnRateAlert`, the Workbook's table scaled to the period or the declared `alerting.windows`), for
  every subject (the SLO, or each stage) and every enabled tier that can fire;
- each ratio read from the raw series (`WindowedQueries.single_series`, what the recording rule records), never
  from recorded series: rules deployed only lately, or a backfilled Prometheus, have none for the past;
- as `query_range` at `STEP` (one minute: a rule group's default interval), in chunks under Prometheus' 11,000
  points per series (`MAX_POINTS`), starting `for` + one step before `since` so that an alert pending or firing
  at `since` is known as such;
- Prometheus' `for`: an alert fires at the first evaluation at which its condition has held continuously for
  `for` (at once without one), and stops at the first evaluation at which the condition does not hold (no point
  in the answer); it fires over [first firing evaluation, first evaluation without), to the minute.

A *page* is what Alertmanager delivers: it groups alerts by `alertname, slo, stage, severity`
(`render.alertmanager`), so overlapping or touching firings of one subject's page-tier pairs (1h/5m and 6h/30m)
are one page. Where the SLO is rendered for Alertmanager, its maintenance windows and one-off exclusion windows
mute its routes: time inside them pages no-one, so it is taken out (a page that outlasts the window starts when
the window ends); emergency changes mute nothing. Ticket-tier alerts are listed apart (they are not pages), with
the time a page of the same subject fires taken out as Alertmanager's inhibition rule does.

Shifts are `shift` long, starting at `shift_start` wall-clock time in `time_zone` every day (the length must
divide a day); across a clock change a shift is an hour longer or shorter. A boundary in a skipped hour falls
where the earlier offset puts it (PEP 495's `fold=0`). Shifts are clipped to [since, until). A page counts in
the shift it started in; a page already firing at `since` counts in none, but its minutes do. Minutes paging:
the union of all pages, so two SLOs paging at once count once. Repeaters: subjects paging in two shifts or more.
Target: the SRE book's at most two incidents per 12-hour shift; a shift over it is flagged.

What a replay cannot know: whether Prometheus really evaluated the rules then (it was down; the rules were not
deployed yet), silences set by hand, and routing to receivers. No data looks like no page: the alerts' own
expressions are empty either way. Composites read their parts' recorded ratios, which a replay has no past of,
and SLOs not rendered for Prometheus have no such alerts: both are listed in `notReplayed` with why.

Cost: one range query per subject and alert pair per 10,000 minutes (a week); a 31-day report of 1,000 SLOs
with the four Workbook pairs is about 20,000 queries, the 3-day window's the heaviest. `MAX_SPAN` bounds it.

The report (JSON is this dict; CSV and HTML in `oncall_files`):

    {"kind": "oncall", "generatedAt", "from", "to", "timeZone", "step": "1m",
     "shift": {"length": "12h", "start": "09:00", "target": 2},
     "shifts": [{"start", "end", "partial", "pages", "overTarget", "pagingMinutes", "slos": [subject keys]}],
     "pages": [PAGE], "tickets": [PAGE],
     "repeaters": [{"slo", "stage", "service", "team", "shifts", "pages"}],
     "withoutRunbook": [{"slo", "service", "team", "tiers": ["page", "ticket"], "paged"}],
     "alerts": [{"slo", "stage", "tier", "alertname", "windows": "1h/5m", "factor", "for", "threshold",
                 "expression"}],
     "notReplayed": {subject key: why},
     "totals": {"pages", "pagesBefore", "pagingMinutes", "shifts", "shiftsOverTarget", "tickets",
                "ticketMinutes", "mutedMinutes", "alerts", "queries"},
     "contentHash": "sha256:…"}

    PAGE: {"slo", "stage", "service", "team", "tier", "alertname", "start", "end", "minutes", "windows":
           ["1h/5m", …], "peakBurnRate", "startedBefore", "ongoing", "runbook" (the link, or none),
           "shift" (index of the shift it started in; none when startedBefore, and for tickets)}

`start`/`end` are clipped to [from, to); `minutes` is what lies inside; `peakBurnRate` is the highest long-window
burn rate of the alerts firing within it (the value the alert expression returns ÷ the error budget).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from math import inf
from typing import Any

from sloplane.core.budget import BurnRateAlert, Tier, error_budget
from sloplane.core.durations import format_duration
from sloplane.core.schedules import merge_spans
from sloplane.core.serialize import canonical_json
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.policy import Alerting, TargetSystem
from sloplane.evaluator.history.oncall_shifts import (
    DAY,
    Span,
    firing_spans,
    minutes_in,
    overlap,
    shift_spans,
    subtract,
    within,
)
from sloplane.evaluator.history.rollup import MAX_POINTS
from sloplane.evaluator.measuring.backends.base import BackendError, FailureKind, MetricsBackend
from sloplane.evaluator.measuring.periods import exclusions
from sloplane.semantics.alerts import alert_identity
from sloplane.semantics.recording import subject_reads
from sloplane.semantics.subjects import Fleet, Subject, subjects

STEP = timedelta(minutes=1)
MAX_SPAN = timedelta(days=31)
"""The longest report: a month of shifts, and a bounded number of queries."""
DEFAULT_SHIFT = timedelta(hours=12)
DEFAULT_SHIFT_START = time(9, 0)
DEFAULT_TARGET = 2
"""The SRE book (chapter 11, "Being On-Call"): at most two incidents per 12-hour shift."""
MUTING_KINDS = frozenset({"maintenance", "window"})
"""Exclusions `render.alertmanager` turns into mute intervals (emergency changes are recorded after the fact)."""


class OncallError(ValueError):
    """Options that make no report (a span backwards or too long, a shift that does not divide a day), with the
    option's name (`from`, `to`, `shift`, `target`: the CLI says `--to`, an API would say `to`)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


class ReplayError(RuntimeError):
    """Prometheus could not be read: the report would under-count pages, so there is none."""


@dataclass(frozen=True)
class OncallOptions:
    """What one report covers and how it cuts shifts."""

    since: datetime
    until: datetime
    shift: timedelta = DEFAULT_SHIFT
    shift_start: time = DEFAULT_SHIFT_START
    time_zone: str = "UTC"
    target: int = DEFAULT_TARGET
    step: timedelta = STEP
    max_points: int = MAX_POINTS

    def check(self, at: datetime | None = None) -> None:
        """Raise `OncallError` for a span backwards, longer than `MAX_SPAN` or ending after `at` (minutes not yet
        measured would read as quiet), or a shift that does not fit a day."""
        if self.until <= self.since:
            raise OncallError("from", f"{self.since.isoformat()} must be before --to ({self.until.isoformat()})")
        if self.until - self.since > MAX_SPAN:
            length = format_duration(self.until - self.since)
            raise OncallError("to", f"the report covers at most {MAX_SPAN.days} days, not {length}")
        if at is not None and self.until > at:
            raise OncallError(
                "to",
                f"{self.until.isoformat()} is after --at ({at.isoformat()}): minutes not measured yet would read "
                "as quiet",
            )
        check_shift(self.shift)
        if self.target < 0:
            raise OncallError("target", "the target is a number of pages, 0 or more")


def check_shift(length: timedelta) -> None:
    """Raise `OncallError` for a shift that does not divide a day into whole minutes, at least an hour each."""
    if length < timedelta(hours=1) or length > DAY or DAY % length or length % STEP:
        raise OncallError(
            "shift", f"a shift must divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h, 24h…), not {format_duration(length)}"
        )


@dataclass(frozen=True)
class ReplayedAlert:
    """One generated alert rule of one subject: its condition as PromQL over raw series."""

    declaration: Declaration
    subject: Subject
    alert: BurnRateAlert
    alertname: str
    threshold: float
    expression: str

    def describe(self) -> dict[str, Any]:
        return {
            "slo": self.subject.slo,
            "stage": self.subject.stage,
            "tier": self.alert.tier.value,
            "alertname": self.alertname,
            "windows": self.alert.name,
            "factor": self.alert.factor,
            "for": format_duration(self.alert.pending) if self.alert.pending else None,
            "threshold": self.threshold,
            "expression": self.expression,
        }


def _number(value: float) -> str:
    """A number as `render.prometheus` prints it in rules (so the replayed condition is the rule's, digit for
    digit): shortest exact text, 12 decimals."""
    rounded = round(float(value), 12)
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


def replayed_alerts(fleet: Fleet) -> tuple[list[ReplayedAlert], dict[str, str]]:
    """Every page- and ticket-tier alert the fleet's rules define, as replayable conditions; and the subjects
    that have none to replay, with why. Archived SLOs have no rules, and are left out."""
    found: list[ReplayedAlert] = []
    skipped: dict[str, str] = {}
    for name in sorted(fleet):
        declaration = fleet[name]
        spec = declaration.spec
        if spec.lifecycle is Lifecycle.ARCHIVED or not spec.alerting.enabled_tiers():
            continue
        for subject in subjects(declaration):
            why = _not_replayed(declaration, subject, fleet)
            if why is not None:
                skipped[subject.key] = why
                continue
            queries = subject_reads(declaration, subject, fleet).indicator.queries
            assert queries is not None  # `_not_replayed` said so
            for alert in spec.burn_rate_alerts():
                if alert.tier not in spec.alerting.enabled_tiers() or not alert.can_fire(subject.objective):
                    continue
                threshold = alert.error_ratio_threshold(subject.objective)
                text = _number(threshold)
                long_ratio = queries.at(alert.long_window).single_series()[2]
                short_ratio = queries.at(alert.short_window).single_series()[2]
                expression = f"({long_ratio}) > {text} and ({short_ratio}) > {text}"
                identity = alert_identity(declaration, alert.tier)
                found.append(ReplayedAlert(declaration, subject, alert, identity.name, threshold, expression))
    return found, skipped


def _not_replayed(declaration: Declaration, subject: Subject, fleet: Fleet) -> str | None:
    spec = declaration.spec
    if TargetSystem.PROMETHEUS not in spec.targets:
        return "not rendered for Prometheus: its alerts, if any, live elsewhere"
    if spec.sli.composite is not None:
        return "a composite: its alerts read its parts' recorded ratios, which have no past to replay"
    if subject_reads(declaration, subject, fleet).indicator.queries is None:
        return "no PromQL for its SLI: nothing to replay"
    return None


def _evaluations(
    backend: MetricsBackend, expression: str, first: datetime, last: datetime, options: OncallOptions
) -> tuple[dict[float, float], int]:
    """The expression's value at each evaluation in [first, last] where it has one (its condition held), read in
    runs of at most `max_points` evaluations; and how many queries that took."""
    values: dict[float, float] = {}
    queries = 0
    start = first
    while start <= last:
        end = min(last, start + options.step * (options.max_points - 1))
        queries += 1
        for series in backend.query_range(expression, start, end, options.step):
            for at, value in series.points:
                values[at] = max(values.get(at, -inf), value)
        start = end + options.step
    return values, queries


@dataclass
class _Replay:
    """One subject's tier: its alerts' firing spans and values, merged into deliveries."""

    alerts: list[ReplayedAlert]
    spans: dict[str, list[Span]]
    """Alert pair name → where it fired."""
    values: dict[str, dict[float, float]]


def read_replays(
    backend: MetricsBackend, alerts: Sequence[ReplayedAlert], options: OncallOptions, skipped: dict[str, str]
) -> tuple[dict[tuple[str, Tier], _Replay], int]:
    """Every alert replayed, grouped by subject and tier; a query Prometheus refuses (a hand-written SLI's bad
    PromQL) leaves its subject out with why; any other failure ends the report (`ReplayError`)."""
    replays: dict[tuple[str, Tier], _Replay] = {}
    queries = 0
    first_minute = options.since.replace(second=0, microsecond=0)
    for alert in alerts:
        if alert.subject.key in skipped:
            continue
        first = first_minute - alert.alert.pending - options.step
        last = options.until - options.step
        try:
            values, asked = _evaluations(backend, alert.expression, first, last, options)
        except BackendError as error:
            if error.kind is FailureKind.QUERY:
                skipped[alert.subject.key] = f"Prometheus refused its alert expression: {error.message}"
                continue
            raise ReplayError(f"Prometheus could not be read: {error}") from None
        queries += asked
        spans = firing_spans(values, first, options.until, options.step, alert.alert.pending)
        replay = replays.setdefault((alert.subject.key, alert.alert.tier), _Replay([], {}, {}))
        replay.alerts.append(alert)
        replay.spans[alert.alert.name] = spans
        replay.values[alert.alert.name] = values
    for key in [key for key in replays if key[0] in skipped]:
        del replays[key]
    return replays, queries


def _muted(alert: ReplayedAlert, options: OncallOptions) -> list[Span]:
    """Where Alertmanager mutes this subject's routes (none when the SLO is not rendered for Alertmanager)."""
    spec = alert.declaration.spec
    if TargetSystem.ALERTMANAGER not in spec.targets:
        return []
    start = options.since - alert.alert.pending - 2 * options.step
    found = exclusions(spec, alert.subject.stage, start, options.until)
    return merge_spans((e.start, e.end) for e in found if e.kind in MUTING_KINDS)


def _deliveries(replay: _Replay, taken: Sequence[Span], options: OncallOptions) -> list[dict[str, Any]]:
    """The subject's tier as Alertmanager delivers it: firings merged, `taken` time removed, clipped."""
    alert = replay.alerts[0]
    subject, spec = alert.subject, alert.declaration.spec
    budget = error_budget(subject.objective)
    merged = merge_spans(span for spans in replay.spans.values() for span in spans)
    found = []
    for start, end in subtract(merged, taken):
        if end <= options.since:
            continue
        clipped = (max(start, options.since), end)
        inside = [name for name, spans in replay.spans.items() if any(s < end and e > start for s, e in spans)]
        peak = max(
            (
                value
                for name in inside
                for at, value in replay.values[name].items()
                if start.timestamp() <= at < end.timestamp()
            ),
            default=None,
        )
        found.append(
            {
                "slo": subject.slo,
                "stage": subject.stage,
                "service": subject.service,
                "team": subject.team,
                "tier": alert.alert.tier.value,
                "alertname": alert.alertname,
                "start": clipped[0].isoformat(),
                "end": clipped[1].isoformat(),
                "minutes": (clipped[1] - clipped[0]).total_seconds() / 60,
                "windows": inside,  # in the order of the alert table (spans are kept in that order)
                "peakBurnRate": None if peak is None or budget <= 0 else peak / budget,
                "startedBefore": start < options.since,
                "ongoing": end >= options.until,
                "runbook": runbook(spec.alerting, alert.alert.tier),
                "shift": None,
            }
        )
    return found


def runbook(alerting: Alerting, tier: Tier) -> str | None:
    """The runbook link a tier's alerts carry (`runbook_url`, as `render.prometheus` annotates them: the tier's
    annotations over the SLO's over `alerting.runbook`); none when empty or missing."""
    link = alerting.tier_alert(tier).annotations.get(
        "runbook_url", alerting.annotations.get("runbook_url", alerting.runbook)
    )
    return link or None


def _span(delivery: dict[str, Any]) -> Span:
    return datetime.fromisoformat(delivery["start"]), datetime.fromisoformat(delivery["end"])


def _without_runbook(fleet: Fleet, paged: set[str]) -> list[dict[str, Any]]:
    """SLOs whose enabled alert tiers carry no runbook link, paged or not in the span."""
    found = []
    for name in sorted(fleet):
        spec = fleet[name].spec
        if spec.lifecycle is Lifecycle.ARCHIVED or TargetSystem.PROMETHEUS not in spec.targets:
            continue
        missing = [tier.value for tier in spec.alerting.enabled_tiers() if runbook(spec.alerting, tier) is None]
        if missing:
            owner = {"slo": name, "service": spec.service, "team": spec.owners.team}
            found.append({**owner, "tiers": missing, "paged": name in paged})
    return found


def oncall_report(fleet: Fleet, backend: MetricsBackend, options: OncallOptions, *, at: datetime) -> dict[str, Any]:
    """The report (see the module's docstring); raises `OncallError` for bad options, `ReplayError` when
    Prometheus cannot be read."""
    options.check(at)
    alerts, skipped = replayed_alerts(fleet)
    replays, queries = read_replays(backend, alerts, options, skipped)
    pages: list[dict[str, Any]] = []
    tickets: list[dict[str, Any]] = []
    muted_minutes = 0.0
    for (_, tier), replay in sorted(replays.items()):
        if tier is not Tier.PAGE:
            continue
        muted = _muted(replay.alerts[0], options)
        fired = merge_spans(span for spans in replay.spans.values() for span in spans)
        muted_minutes += minutes_in(within(overlap(fired, muted), (options.since, options.until)))
        pages += _deliveries(replay, muted, options)
    for (key, tier), replay in sorted(replays.items()):
        if tier is not Tier.TICKET:
            continue
        taken: list[Span] = []
        if TargetSystem.ALERTMANAGER in replay.alerts[0].declaration.spec.targets:
            page = replays.get((key, Tier.PAGE))
            inhibiting = [] if page is None else [span for spans in page.spans.values() for span in spans]
            taken = merge_spans([*inhibiting, *_muted(replay.alerts[0], options)])
        tickets += _deliveries(replay, taken, options)
    pages.sort(key=lambda p: (p["start"], p["slo"], p["stage"] or ""))
    tickets.sort(key=lambda p: (p["start"], p["slo"], p["stage"] or ""))
    shifts = _shifts(pages, options)
    report: dict[str, Any] = {
        "kind": "oncall",
        "generatedAt": at.isoformat(),
        "from": options.since.isoformat(),
        "to": options.until.isoformat(),
        "timeZone": options.time_zone,
        "step": format_duration(options.step),
        "shift": {
            "length": format_duration(options.shift),
            "start": options.shift_start.strftime("%H:%M"),
            "target": options.target,
        },
        "shifts": shifts,
        "pages": pages,
        "tickets": tickets,
        "repeaters": _repeaters(pages),
        "withoutRunbook": _without_runbook(fleet, {p["slo"] for p in pages}),
        "alerts": [alert.describe() for alert in alerts if alert.subject.key not in skipped],
        "notReplayed": dict(sorted(skipped.items())),
        "totals": {
            "pages": sum(1 for p in pages if not p["startedBefore"]),
            "pagesBefore": sum(1 for p in pages if p["startedBefore"]),
            "pagingMinutes": minutes_in(_span(p) for p in pages),
            "shifts": len(shifts),
            "shiftsOverTarget": sum(1 for s in shifts if s["overTarget"]),
            "tickets": sum(1 for t in tickets if not t["startedBefore"]),
            "ticketMinutes": minutes_in(_span(t) for t in tickets),
            "mutedMinutes": muted_minutes,
            "alerts": sum(1 for alert in alerts if alert.subject.key not in skipped),
            "queries": queries,
        },
    }
    report["contentHash"] = "sha256:" + hashlib.sha256(canonical_json(report).encode()).hexdigest()
    return report


def _shifts(pages: list[dict[str, Any]], options: OncallOptions) -> list[dict[str, Any]]:
    """Each shift's pages (those starting in it), minutes with a page firing, and the subjects that paged;
    sets each page's `shift` index."""
    found = []
    spans = shift_spans(options.since, options.until, options.shift, options.shift_start, options.time_zone)
    for index, ((start, end), partial) in enumerate(spans):
        started = []
        for page in pages:
            page_start = datetime.fromisoformat(page["start"])
            if not page["startedBefore"] and start <= page_start < end:
                page["shift"] = index
                started.append(page)
        found.append(
            {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "partial": partial,
                "pages": len(started),
                "overTarget": len(started) > options.target,
                "pagingMinutes": minutes_in(within((_span(p) for p in pages), (start, end))),
                "slos": sorted({_key(page) for page in started}),
            }
        )
    return found


def _key(page: dict[str, Any]) -> str:
    return page["slo"] if page["stage"] is None else f"{page['slo']}/{page['stage']}"


def _repeaters(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Subjects whose pages started in two shifts or more, most shifts first."""
    shifts: dict[str, set[int]] = {}
    counts: dict[str, int] = {}
    first: dict[str, dict[str, Any]] = {}
    for page in pages:
        if page["shift"] is None:
            continue
        key = _key(page)
        shifts.setdefault(key, set()).add(page["shift"])
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, page)
    found = [
        {
            "slo": first[key]["slo"],
            "stage": first[key]["stage"],
            "service": first[key]["service"],
            "team": first[key]["team"],
            "shifts": len(seen),
            "pages": counts[key],
        }
        for key, seen in shifts.items()
        if len(seen) >= 2
    ]
    return sorted(found, key=lambda r: (-r["shifts"], -r["pages"], r["slo"], r["stage"] or ""))
