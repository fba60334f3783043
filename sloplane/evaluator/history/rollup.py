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

Ratio-only and threshold SLIs have no event counts, and composites none of their own: they are listed as
not rolled up, with why; so are SLIs the gate reads from Datadog (not rolled up yet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from sloplane.core.schedules import merge_spans
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.sli import Backend
from sloplane.evaluator.history.hours import HOUR, hour_alignment, local_hours, zone
from sloplane.evaluator.measuring.backends.base import BackendError, MetricsBackend
from sloplane.evaluator.measuring.datadog_reads import reads_from
from sloplane.evaluator.measuring.periods import exclusions
from sloplane.evaluator.model import Rollup
from sloplane.evaluator.service import policy_version
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

    @property
    def key(self) -> str:
        return self.subject.key


@dataclass
class RollupRun:
    """What one rollup produced: the rows, the subjects left out and why, and what Prometheus was asked."""

    rows: list[Rollup] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Subject key → why it cannot be rolled up at all (no event counts, read from Datadog)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Subject key → why its reads failed this time (a later run retries them)."""
    queries: int = 0


def targets(
    fleet: Fleet,
    since: datetime,
    until: datetime,
    resume: Mapping[tuple[str, str | None], datetime] | None = None,
    *,
    datadog: bool = False,
) -> tuple[list[Target], dict[str, str]]:
    """Every subject of the fleet that can be rolled up, with its whole hours from `since` (or from where
    `resume` says it stopped, even if earlier: an hour of a zone at :30 that a run ending on the hour could
    not finish) to `until`, and the others with why. Archived SLOs are left out: nothing measures them now.

    An SLI the gate reads from Datadog (`datadog`: the evaluator has it) is left out with why: rolling it up
    from Prometheus would give reports other numbers than the gate's, and Datadog is not read here yet."""
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
        why_not = _not_rolled_up(declaration, datadog)
        for subject in subjects(declaration):
            reads = subject_reads(declaration, subject, fleet)
            terms, queries = reads.indicator.terms, reads.indicator.queries
            counted = terms is not None or (queries is not None and None not in (queries.errors, queries.total))
            if why_not is not None or not counted:
                skipped[subject.key] = why_not or "a ratio or threshold SLI: no event counts of its own to roll up"
                continue
            start = (resume or {}).get((subject.slo, subject.stage), since)
            key = (zone_name, start)
            if key not in hours_of:
                hours_of[key] = local_hours(zone_info, start, until)
            hours = tuple(hours_of[key])
            if hours:
                found.append(Target(declaration, subject, zone_name, hours, terms, queries))
    return found, skipped


def hourly_queries(declaration: Declaration, subject: Subject, fleet: Fleet) -> list[str]:
    """The PromQL a subject's rows are read with, one hour each (the evidence a report cites); none for an SLI
    without event counts."""
    reads = subject_reads(declaration, subject, fleet)
    terms, queries = reads.indicator.terms, reads.indicator.queries
    if terms is not None:
        return [term.aggregation.query([term.values], HOUR) for term in (*terms.bad, *terms.total)]
    if queries is None:
        return []
    hourly = queries.at(HOUR)
    return [query for query in (hourly.errors, hourly.total) if query is not None]


def _not_rolled_up(declaration: Declaration, datadog: bool) -> str | None:
    """Why no subject of this SLO can be rolled up from Prometheus, or None."""
    if declaration.spec.sli.composite is not None:
        return "a composite: no event counts of its own to roll up"
    if reads_from(declaration, prometheus=True, datadog=datadog) is Backend.DATADOG:
        return "read from Datadog, which rollups do not read yet (Prometheus would give other numbers)"
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
    backend: MetricsBackend,
    since: datetime,
    until: datetime,
    resume: Mapping[tuple[str, str | None], datetime] | None = None,
    *,
    datadog: bool = False,
) -> RollupRun:
    """The rows of every subject's whole hours in [since, until] (see `targets`); nothing is written here."""
    chosen, skipped = targets(fleet, since, until, resume, datadog=datadog)
    run = RollupRun(skipped=skipped)
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
    return run


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


def _rows(backend: MetricsBackend, target: Target, answers: _Answers, run: RollupRun) -> list[Rollup]:
    spec = target.declaration.spec
    first, last = target.hours[0][0], target.hours[-1][1]
    excluded = merge_spans((e.start, e.end) for e in exclusions(spec, target.subject.stage, first, last))
    version = policy_version(target.declaration)
    rows = []
    for start, end in target.hours:
        bad, total = _counts(target, answers, end)
        inside = [(max(s, start), min(e, end)) for s, e in excluded if s < end and e > start]
        minutes = sum((e - s).total_seconds() for s, e in inside) / 60
        excluded_bad, excluded_total = (0.0, 0.0)
        if inside and total is not None:
            excluded_bad, excluded_total = _excluded(backend, target, inside, run)
        rows.append(
            Rollup(
                slo=target.subject.slo,
                stage=target.subject.stage,
                start=start.astimezone(UTC),
                end=end.astimezone(UTC),
                bad_events=bad,
                total_events=total,
                excluded_bad_events=excluded_bad,
                excluded_total_events=excluded_total,
                excluded_minutes=minutes,
                objective=target.subject.objective,
                policy_version=version,
                time_zone=target.zone_name,
                source="prometheus",
            )
        )
    return rows
