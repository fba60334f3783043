"""Rolling a fleet's events up into hourly rows (`Rollup`), from Prometheus, for reports past its retention.

How the numbers are read, so that they agree with the gate and `explain`:
- a subject's bad and total events are the same reads the evaluator makes (`semantics.recording.subject_reads`):
  for a derived SLI, signed sums of grouped reads (`EventTerms`); each grouped read is asked once for the
  whole fleet, as a range query of `sum by (keys) (increase(...[1h]))` stepping an hour, whose point at `t`
  is the hour ending at `t` (one query per grouped read and alignment of the zones' hours, in chunks under
  Prometheus' 11,000 points per series); a hand-written SLI's own `errors` and `total` templates, per subject;
- hours of a zone whose offset moved by half an hour (a 30- or 90-minute row) are read with instant queries;
- excluded spans (maintenance, exclusion windows, emergency changes: `measuring.periods.exclusions`) inside
  an hour are read apart, as the evaluator reads them for the period (`increase(...[span] @ end)`), and kept
  beside the hour's counts.
An hour with no sample of any total read has no data (None); a bad read missing where the total has data is
zero bad events (a `5..` selector has no series until the first error).

SLIs the gate reads from Datadog (`measuring.datadog_reads.reads_from`: Datadog-only ones, and those both can
read when the evaluator has Datadog and the SLO targets it) are read from Datadog when a Datadog transport is
given (`history.rollup_datadog`: hourly buckets of the gate's own queries), with the same rows; without one they
are left out with why, never read from Prometheus beside a gate that reads Datadog. Subjects read from
Prometheus are likewise left out when no Prometheus is given.

Ratio-only and threshold SLIs have no event counts, and composites none of their own (their components are
rolled up): they are listed as not rolled up, with why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property

from sloplane.core.schedules import merge_spans
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.sli import Backend
from sloplane.evaluator.history.hours import HOUR, hour_alignment, local_hours, zone
from sloplane.evaluator.history.rollup_datadog import HourReads, read_hours
from sloplane.evaluator.measuring.backends.base import BackendError, MetricsBackend
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts
from sloplane.evaluator.measuring.datadog_reads import reads_from, subject_queries, unreadable
from sloplane.evaluator.measuring.periods import exclusions
from sloplane.evaluator.model import Rollup
from sloplane.evaluator.service import policy_version
from sloplane.semantics.datadog import DatadogQueries
from sloplane.semantics.promql import Aggregation, EventTerms, Term, WindowedQueries
from sloplane.semantics.recording import subject_reads
from sloplane.semantics.subjects import Fleet, Subject, subjects

MAX_POINTS = 10_000
"""Points per series in one range query: Prometheus refuses more than 11,000."""

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Target:
    """One subject to roll up, the hours it needs, and how its events are read."""

    declaration: Declaration
    subject: Subject
    zone_name: str
    hours: tuple[Span, ...]
    terms: EventTerms | None
    """Derived SLIs: grouped reads; None for a hand-written SLI read through `queries`."""
    queries: WindowedQueries | None
    datadog: DatadogQueries | None = None
    """Read from Datadog with these queries (the gate's); None: read from Prometheus (`terms` or `queries`)."""

    @property
    def key(self) -> str:
        return self.subject.key

    @cached_property
    def version(self) -> str:
        """The declaration's policy version, written on every row."""
        return policy_version(self.declaration)


@dataclass
class RollupRun:
    """What one rollup produced: the rows, the subjects left out and why, and how many queries it took."""

    rows: list[Rollup] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Subject key → why it cannot be rolled up at all (no event counts, a backend this rollup does not read)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Subject key → why its reads failed this time (a later run retries them)."""
    queries: int = 0
    """Queries asked of Prometheus and requests sent to Datadog."""


def targets(
    fleet: Fleet,
    since: datetime,
    until: datetime,
    resume: Mapping[tuple[str, str | None], datetime] | None = None,
    *,
    datadog: bool = False,
    from_datadog: bool = False,
    from_prometheus: bool = True,
) -> tuple[list[Target], dict[str, str]]:
    """Every subject of the fleet that can be rolled up, with its whole hours from `since` (or from where
    `resume` says it stopped, even if earlier: an hour of a zone at :30 that a run ending on the hour could
    not finish) to `until`, and the others with why. Archived SLOs are left out: nothing measures them now.

    Each subject is read where the gate reads it (`reads_from`; `datadog`: the evaluator has Datadog, which
    `from_datadog` implies): from Datadog when `from_datadog` (this rollup has a Datadog transport), else it is
    left out with why, for Prometheus would give reports other numbers than the gate's; from Prometheus when
    `from_prometheus`, else left out likewise."""
    found: list[Target] = []
    skipped: dict[str, str] = {}
    zones: dict[str, tzinfo] = {}
    hours_of: dict[tuple[str, datetime], list[Span]] = {}
    for name in sorted(fleet):
        declaration = fleet[name]
        spec = declaration.spec
        if spec.lifecycle is Lifecycle.ARCHIVED:
            continue
        zone_name = spec.window.time_zone or "UTC"
        zone_info = zones.setdefault(zone_name, zone(zone_name))
        backend = reads_from(declaration, prometheus=from_prometheus, datadog=datadog or from_datadog)
        why_not = _not_rolled_up(backend, from_datadog=from_datadog, from_prometheus=from_prometheus)
        for subject in subjects(declaration):
            if why_not is not None:
                skipped[subject.key] = why_not
                continue
            if backend is Backend.DATADOG:
                terms, queries, counts = None, None, subject_queries(declaration, subject)
                why = unreadable(declaration, counts)
            else:
                reads = subject_reads(declaration, subject, fleet)
                terms, queries, counts = reads.indicator.terms, reads.indicator.queries, None
                counted = terms is not None or (queries is not None and None not in (queries.errors, queries.total))
                why = None if counted else "a ratio or threshold SLI: no event counts of its own to roll up"
            if why is not None:
                skipped[subject.key] = why
                continue
            start = (resume or {}).get((subject.slo, subject.stage), since)
            key = (zone_name, start)
            if key not in hours_of:
                hours_of[key] = local_hours(zone_info, start, until)
            hours = tuple(hours_of[key])
            if hours:
                found.append(Target(declaration, subject, zone_name, hours, terms, queries, counts))
    return found, skipped


def hourly_queries(declaration: Declaration, subject: Subject, fleet: Fleet, *, datadog: bool = False) -> list[str]:
    """The queries a subject's rows are read with, one hour each (the evidence a report cites): PromQL, or the
    gate's Datadog queries where it reads Datadog (`datadog`: the evaluator has it); none for an SLI without
    event counts."""
    if reads_from(declaration, prometheus=True, datadog=datadog) is Backend.DATADOG:
        counts = subject_queries(declaration, subject)
        return [] if counts is None else [q for q in (counts.errors, counts.good, counts.total) if q is not None]
    reads = subject_reads(declaration, subject, fleet)
    terms, queries = reads.indicator.terms, reads.indicator.queries
    if terms is not None:
        return [term.aggregation.query([term.values], HOUR) for term in (*terms.bad, *terms.total)]
    if queries is None:
        return []
    hourly = queries.at(HOUR)
    return [query for query in (hourly.errors, hourly.total) if query is not None]


def _not_rolled_up(backend: Backend | None, *, from_datadog: bool, from_prometheus: bool) -> str | None:
    """Why no subject of an SLO read from `backend` (None: a composite) can be rolled up here, or None."""
    if backend is None:
        return "a composite: no event counts of its own to roll up (its components are rolled up)"
    if backend is Backend.DATADOG and not from_datadog:
        return (
            "read from Datadog, and this rollup has no Datadog (--datadog) to read it from "
            "(Prometheus would give other numbers)"
        )
    if backend is Backend.PROMETHEUS and not from_prometheus:
        return "read from Prometheus, and this rollup has no Prometheus (--prometheus) to read it from"
    return None


class _Answers:
    """Values read so far: per grouped read and key values, or per subject and part, by the hour's end."""

    def __init__(self) -> None:
        self.grouped: dict[tuple[Aggregation, tuple[str, ...]], dict[float, float]] = defaultdict(dict)
        self.own: dict[tuple[str, str], dict[float, float]] = defaultdict(dict)
        self.failed: dict[str, str] = {}
        """Subject key → why one of its own reads failed."""
        self.failed_reads: dict[tuple[Aggregation, tuple[str, ...]], str] = {}
        """Grouped read and key values → why its range query failed."""


def roll_up(
    fleet: Fleet,
    backend: MetricsBackend | None,
    since: datetime,
    until: datetime,
    resume: Mapping[tuple[str, str | None], datetime] | None = None,
    *,
    datadog: DatadogCounts | None = None,
) -> RollupRun:
    """The rows of every subject's whole hours in [since, until] (see `targets`), read from Prometheus
    (`backend`) and Datadog (`datadog`, the gate's transport) where the gate reads them; nothing is written."""
    chosen, skipped = targets(
        fleet, since, until, resume, from_datadog=datadog is not None, from_prometheus=backend is not None
    )
    run = RollupRun(skipped=skipped)
    from_prometheus = [target for target in chosen if target.datadog is None]
    if backend is not None and from_prometheus:
        _from_prometheus(backend, from_prometheus, run)
    from_datadog = [target for target in chosen if target.datadog is not None]
    if datadog is not None and from_datadog:
        _from_datadog(datadog, from_datadog, run)
    return run


def _from_prometheus(backend: MetricsBackend, chosen: Sequence[Target], run: RollupRun) -> None:
    answers = _Answers()
    _read_grouped(backend, chosen, answers, run)
    _read_own(backend, chosen, answers, run)
    for target in chosen:
        failure = _failure_of(target, answers)
        if failure is not None:
            run.failed[target.key] = failure
            continue
        try:
            run.rows += _rows(backend, target, answers, run)
        except BackendError as error:
            run.failed[target.key] = f"an excluded span could not be read: {error}"


def _from_datadog(reader: DatadogCounts, chosen: Sequence[Target], run: RollupRun) -> None:
    """Datadog's subjects: their rows from `rollup_datadog`, a failed subject named with why."""
    inside = {target.key: _excluded_by_hour(target) for target in chosen}
    wanted = []
    for target in chosen:
        assert target.datadog is not None  # `roll_up` passes only subjects read from Datadog
        wanted.append(HourReads(target.key, target.datadog, target.hours, inside[target.key]))
    read = read_hours(reader, wanted)
    run.queries += read.requests
    run.failed.update(read.failed)
    for target in chosen:
        if target.key in read.failed:
            continue
        counted, excluded = read.counts[target.key], read.excluded.get(target.key, {})
        for start, end in target.hours:
            bad, total = counted[start]
            excluded_bad, excluded_total = excluded.get(start, (0.0, 0.0)) if total is not None else (0.0, 0.0)
            spans = inside[target.key].get(start, [])
            run.rows.append(
                _row(
                    target,
                    hour=(start, end),
                    counts=(bad, total),
                    excluded=(excluded_bad, excluded_total),
                    spans=spans,
                    source="datadog",
                )
            )


def _regular(target: Target) -> list[Span]:
    return [span for span in target.hours if span[1] - span[0] == HOUR]


def _read_grouped(backend: MetricsBackend, chosen: Sequence[Target], answers: _Answers, run: RollupRun) -> None:
    """One range query per grouped read and alignment (in chunks), for every derived subject's whole hours."""
    wanted: dict[tuple[Aggregation, timedelta], set[tuple[str, ...]]] = defaultdict(set)
    ends: dict[tuple[Aggregation, timedelta], set[datetime]] = defaultdict(set)
    for target in chosen:
        if target.terms is None:
            continue
        for start, end in _regular(target):
            for term in (*target.terms.bad, *target.terms.total):
                group = (term.aggregation, hour_alignment(start))
                wanted[group].add(term.values)
                ends[group].add(end)
    for (aggregation, alignment), values in wanted.items():
        expression = aggregation.query(values, HOUR)
        for first, last in _chunks(sorted(ends[(aggregation, alignment)])):
            run.queries += 1
            try:
                series = backend.query_range(expression, first, last, HOUR)
            except BackendError as error:
                for key_values in values:
                    answers.failed_reads[(aggregation, key_values)] = str(error)
                continue
            for one in series:
                key = tuple(one.labels.get(label, "") for label in aggregation.keys)
                answers.grouped[(aggregation, key)].update(one.points)
    for target in chosen:  # irregular hours (a zone's half-hour shift): instant queries, per subject
        if target.terms is None:
            continue
        for start, end in target.hours:
            if end - start != HOUR:
                for term in (*target.terms.bad, *target.terms.total):
                    expression = term.aggregation.query([term.values], end - start, end)
                    try:
                        found = _instant(backend, expression, end, run)
                    except BackendError as error:
                        answers.failed[target.key] = str(error)
                        continue
                    if found is not None:
                        answers.grouped[(term.aggregation, term.values)][end.timestamp()] = found


def _chunks(ends: list[datetime]) -> Iterable[tuple[datetime, datetime]]:
    """Consecutive hourly ends split into runs of at most MAX_POINTS (a gap in them starts a new run)."""
    start = previous = ends[0]
    count = 1
    for end in ends[1:]:
        if end - previous != HOUR or count == MAX_POINTS:
            yield start, previous
            start, count = end, 0
        previous = end
        count += 1
    yield start, previous


def _read_own(backend: MetricsBackend, chosen: Sequence[Target], answers: _Answers, run: RollupRun) -> None:
    """Hand-written SLIs: their own `errors` and `total` templates over an hour, per subject."""
    for target in chosen:
        if target.terms is not None or target.queries is None:
            continue
        hourly = target.queries.at(HOUR)
        regular = _regular(target)
        for part, expression in (("bad", hourly.errors), ("total", hourly.total)):
            assert expression is not None  # `targets` keeps only hand-written SLIs with both
            points = answers.own[(target.key, part)]
            if regular:
                for first, last in _chunks([end for _, end in regular]):
                    run.queries += 1
                    try:
                        series = backend.query_range(expression, first, last, HOUR)
                    except BackendError as error:
                        answers.failed[target.key] = str(error)
                        break
                    for one in series:
                        for at, number in one.points:
                            points[at] = points.get(at, 0.0) + number
            for start, end in target.hours:
                if end - start != HOUR:
                    shifted = target.queries.at(end - start, end)
                    text = shifted.errors if part == "bad" else shifted.total
                    assert text is not None
                    try:
                        found = _instant(backend, text, end, run)
                    except BackendError as error:
                        answers.failed[target.key] = str(error)
                        continue
                    if found is not None:
                        points[end.timestamp()] = found


def _instant(backend: MetricsBackend, expression: str, at: datetime, run: RollupRun) -> float | None:
    """The sum of an instant query's samples, None when it has none."""
    run.queries += 1
    samples = backend.query(expression, at)
    return sum(sample.value for sample in samples) if samples else None


def _failure_of(target: Target, answers: _Answers) -> str | None:
    if target.key in answers.failed:
        return f"Prometheus could not be read: {answers.failed[target.key]}"
    if target.terms is not None:
        for term in (*target.terms.bad, *target.terms.total):
            why = answers.failed_reads.get((term.aggregation, term.values))
            if why is not None:
                return f"Prometheus could not be read: {why}"
    return None


def _sum(terms: Sequence[Term], answers: _Answers, at: float) -> float | None:
    """Σ sign × value at `at`; None when no term has a value there."""
    found = [(term.sign, answers.grouped.get((term.aggregation, term.values), {}).get(at)) for term in terms]
    present = [sign * value for sign, value in found if value is not None]
    return sum(present) if present else None


def _counts(target: Target, answers: _Answers, end: datetime) -> tuple[float | None, float | None]:
    at = end.timestamp()
    if target.terms is not None:
        total = _sum(target.terms.total, answers, at)
        bad = _sum(target.terms.bad, answers, at)
    else:
        total = answers.own[(target.key, "total")].get(at)
        bad = answers.own[(target.key, "bad")].get(at)
    if total is None:
        return None, None
    return (bad if bad is not None else 0.0), total


def _excluded(backend: MetricsBackend, target: Target, spans: Sequence[Span], run: RollupRun) -> tuple[float, float]:
    """Bad and total events inside excluded spans of one hour, each read over its span (anchored at its end)."""
    bad = total = 0.0
    for start, end in spans:
        length = end - start
        if target.terms is not None:
            for terms, is_bad in ((target.terms.bad, True), (target.terms.total, False)):
                for term in terms:
                    value = _instant(backend, term.aggregation.query([term.values], length, end), end, run)
                    if value is not None:
                        if is_bad:
                            bad += term.sign * value
                        else:
                            total += term.sign * value
        else:
            assert target.queries is not None
            anchored = target.queries.at(length, end)
            assert anchored.errors is not None and anchored.total is not None
            bad += _instant(backend, anchored.errors, end, run) or 0.0
            total += _instant(backend, anchored.total, end, run) or 0.0
    return bad, total


def _excluded_by_hour(target: Target) -> dict[datetime, list[Span]]:
    """The excluded spans inside each of the target's hours, by the hour's start (hours without any left out)."""
    spec = target.declaration.spec
    first, last = target.hours[0][0], target.hours[-1][1]
    excluded = merge_spans((e.start, e.end) for e in exclusions(spec, target.subject.stage, first, last))
    found: dict[datetime, list[Span]] = {}
    for start, end in target.hours:
        inside = [(max(s, start), min(e, end)) for s, e in excluded if s < end and e > start]
        if inside:
            found[start] = inside
    return found


def _row(
    target: Target,
    *,
    hour: Span,
    counts: tuple[float | None, float | None],
    excluded: tuple[float, float],
    spans: Sequence[Span],
    source: str,
) -> Rollup:
    """One row: the hour's (bad, total), the excluded events apart, and what was in force."""
    start, end = hour
    return Rollup(
        slo=target.subject.slo,
        stage=target.subject.stage,
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        bad_events=counts[0],
        total_events=counts[1],
        excluded_bad_events=excluded[0],
        excluded_total_events=excluded[1],
        excluded_minutes=sum((e - s).total_seconds() for s, e in spans) / 60,
        objective=target.subject.objective,
        policy_version=target.version,
        time_zone=target.zone_name,
        source=source,
    )


def _rows(backend: MetricsBackend, target: Target, answers: _Answers, run: RollupRun) -> list[Rollup]:
    inside = _excluded_by_hour(target)
    rows = []
    for start, end in target.hours:
        bad, total = _counts(target, answers, end)
        spans = inside.get(start, [])
        excluded = (0.0, 0.0)
        if spans and total is not None:
            excluded = _excluded(backend, target, spans, run)
        rows.append(
            _row(target, hour=(start, end), counts=(bad, total), excluded=excluded, spans=spans, source="prometheus")
        )
    return rows
