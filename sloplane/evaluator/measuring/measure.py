"""Measuring subjects at one instant: every window, the period, the budget, in few backend queries.

All questions of one evaluation are asked at the same instant, and batched by window so that the
number of backend queries grows with the number of distinct windows, not with SLOs x windows: the
`Measurer` plans what each target needs into one plan, and `batching` turns that plan into few
queries (grouped reads shared by every SLO of one shape; hand-written expressions tagged with
`sloplane_ask` and joined with `or`) and maps the samples back to numbers. Subjects whose SLI is
read from Datadog are planned and asked by `datadog_reads`, whose answers are keyed alike, so the
arithmetic below (and a composite of parts from both backends) does not know where they came from.

Where the recording rules of `sloplane render` exist (an `sloplane:slo:info` series is there for
the SLO), window ratios and period totals are read from them; elsewhere from the raw series through
the same expressions the rules use. The period is always a ratio of events: bad events over all
events, with excluded intervals (maintenance, one-off windows, emergency changes) subtracted from
both, each read with an `@`-anchored range. SLIs without event counts (raw, threshold) exclude
time by weighting instead (the sums are in `arithmetic`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sloplane.core import names
from sloplane.core.budget import error_budget, time_to_exhaustion
from sloplane.core.durations import format_duration
from sloplane.declaration.model import BudgetingMethod, Declaration
from sloplane.declaration.sli import Backend, CompositeMethod
from sloplane.evaluator.measuring.arithmetic import (
    _combine,
    _period,
    _ratio,
    _Run,
    _slices_expression,
    _spans,
    _window_ratio,
)
from sloplane.evaluator.measuring.backends.base import BackendError, MetricsBackend, Sample
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts
from sloplane.evaluator.measuring.batching import (
    _answered,
    _grouped_queries,
    _packed,
    _Plan,
    _tagged_queries,
    costliest_first,
)
from sloplane.evaluator.measuring.cache import TTLCache
from sloplane.evaluator.measuring.datadog_reads import DatadogSubject, read, reads_from
from sloplane.evaluator.measuring.known import Known
from sloplane.evaluator.measuring.periods import exclusions, merged, period_start
from sloplane.evaluator.model import Exclusion, Measurement, WindowMeasurement
from sloplane.semantics.promql import Aggregation, Term, WindowedQueries
from sloplane.semantics.subjects import Fleet, Subject, component_labels, subjects

PARALLEL_QUERIES = 8
"""Queries of one evaluation sent at once (they are independent; Prometheus runs them concurrently)."""


@dataclass(frozen=True)
class DeclaredSubject:
    """A subject to measure, with its declaration: what a gate decides on and the planner asks about.

    (Not a `TargetSystem`, which is where a declaration renders to.)"""

    declaration: Declaration
    subject: Subject

    @property
    def key(self) -> str:
        """`slo` or `slo/stage`."""
        return self.subject.key


def _recorded(metric: str, subject: Subject) -> tuple[Term, ...]:
    """The grouped read of one recorded series of a subject (by slo and stage)."""
    return (Term(1, Aggregation(None, metric, ("slo", "stage")), (subject.slo, subject.stage or "")),)


class Measurer:
    """Measures targets against one backend."""

    def __init__(
        self,
        fleet: Fleet,
        backend: MetricsBackend,
        *,
        cache: TTLCache[list[Sample]] | None = None,
        measurements: TTLCache[Measurement] | None = None,
        staleness: timedelta = timedelta(minutes=5),
        analysis_windows: Iterable[timedelta] = (),
        datadog: DatadogCounts | None = None,
        prometheus: bool = True,
    ) -> None:
        self.fleet = fleet
        self.backend = backend
        self.datadog = datadog
        """Where SLIs read from Datadog are counted (`datadog_reads`); None: no Datadog configured."""
        self.prometheus = prometheus
        """Whether `backend` is a configured Prometheus (an evaluator may read Datadog only)."""
        self.datadog_cache: TTLCache[tuple[float | None]] | None = (
            None if cache is None else TTLCache(cache.ttl, max_entries=cache.max_entries)
        )
        self.cache = cache
        self.measurements = measurements
        self.staleness = staleness
        self.extra_windows = tuple(analysis_windows)
        self.queries_sent = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._known = Known(fleet, self.extra_windows)

    def declared_subjects(self, declaration: Declaration) -> list[DeclaredSubject]:
        """One target per subject of a declaration."""
        return [DeclaredSubject(declaration, subject) for subject in subjects(declaration)]

    def _with_components(self, targets: Sequence[DeclaredSubject]) -> list[DeclaredSubject]:
        """The targets and, transitively, the parts of every composite among them."""
        found: dict[str, DeclaredSubject] = {}
        pending = list(targets)
        while pending:
            target = pending.pop()
            if target.key in found:
                continue
            found[target.key] = target
            composite = target.declaration.spec.sli.composite
            if composite is None:
                continue
            for component in composite.components:
                part = self.fleet.get(component.slo)
                labels = component_labels(component, self.fleet)
                if part is None or labels is None:
                    continue
                pending += [t for t in self.declared_subjects(part) if t.subject.labels == labels]
        return list(found.values())

    def windows_of(self, declaration: Declaration) -> tuple[timedelta, ...]:
        """Every alert window, the gate's analysis window, and any extra window asked for."""
        return self._known.windows_of(declaration)

    def _plan(self) -> _Plan:
        return _Plan(escaped=self._known.escaped, templates=self._known.templates)

    # -- asking ---------------------------------------------------------------------------------

    def _query(self, expression: str, at: datetime) -> list[Sample]:
        key = (expression, at.timestamp())
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        samples = self.backend.query(expression, at)
        with self._lock:
            self.queries_sent += 1
        if self.cache is not None:
            self.cache.put(key, samples)
        return samples

    def _run_all(self, expressions: list[str], at: datetime) -> list[list[Sample]]:
        """Every query at once, in parallel: a cold evaluation waits for the slowest, not for the sum."""
        if len(expressions) <= 1:
            return [self._query(expression, at) for expression in expressions]
        return list(self._pool().map(lambda expression: self._query(expression, at), expressions))

    def _pool(self) -> ThreadPoolExecutor:
        """One pool per measurer, shared by concurrent gates: threads are not started per gate, and
        however many gates run at once, Prometheus sees at most PARALLEL_QUERIES queries from us."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=PARALLEL_QUERIES, thread_name_prefix="sloplane-query")
            return self._executor

    def _answers(self, plan: _Plan, at: datetime) -> dict[tuple[str, str, str], float | None]:
        """Run every query of the plan (in parallel, costliest first) and map (target, part, batch) to its number."""
        grouped = _packed(_grouped_queries(plan))
        tagged = _tagged_queries(plan)
        expressions = [query for query, _ in grouped] + [query for query, _ in tagged]
        order = costliest_first(grouped, tagged)
        results: list[list[Sample]] = [[] for _ in expressions]
        for index, samples in zip(order, self._run_all([expressions[index] for index in order], at), strict=True):
            results[index] = samples
        return _answered(plan, grouped, tagged, results)

    def _recorded_slos(self, at: datetime) -> set[str]:
        samples = self._query(f"count by (slo) ({names.INFO})", at)
        return {sample.labels["slo"] for sample in samples if "slo" in sample.labels}

    # -- planning -------------------------------------------------------------------------------

    def _plan_windows(self, plan: _Plan, target: DeclaredSubject, recorded: set[str]) -> None:
        declaration, subject = target.declaration, target.subject
        if declaration.spec.sli.composite is not None:
            return
        known = self._known.reads(declaration, subject)
        reads, terms = known.reads, known.terms
        deployed = declaration.name in recorded
        queries = reads.indicator.queries if terms is None else None
        counted = terms is not None or (queries is not None and queries.errors is not None)
        for window, batch in self._known.windows(declaration).windows:
            if reads.from_recorded(window, rules_deployed=deployed):
                plan.add_terms(
                    target.key, "ratio", batch, _recorded(names.windowed(names.ERROR_RATIO, window), subject)
                )
                if counted and window == min(reads.recorded):
                    bad, events = names.windowed(names.BAD_EVENTS, window), names.windowed(names.EVENTS, window)
                    plan.add_terms(target.key, "bad", batch, _recorded(bad, subject))
                    plan.add_terms(target.key, "total", batch, _recorded(events, subject))
            elif terms is not None:
                plan.add_terms(target.key, "bad", batch, terms.bad, window=window)
                plan.add_terms(target.key, "total", batch, terms.total, window=window)
            elif queries is not None:
                self._plan_raw(plan, target.key, batch, queries.at(window), window)

    @staticmethod
    def _plan_raw(plan: _Plan, key: str, batch: str, filled: WindowedQueries, window: timedelta) -> None:
        bad, total, ratio = filled.single_series()
        if bad is not None and total is not None:
            plan.add(key, "bad", batch, bad, window)
            plan.add(key, "total", batch, total, window)
        else:
            plan.add(key, "ratio", batch, ratio, window)

    def _plan_period(
        self,
        plan: _Plan,
        target: DeclaredSubject,
        recorded: set[str],
        at: datetime,
        excluded: list[tuple[datetime, datetime]],
    ) -> None:
        declaration, subject = target.declaration, target.subject
        spec = declaration.spec
        if spec.sli.composite is not None:
            return
        start = period_start(spec.window, at)
        batch = f"period:{format_duration(at - start)}"
        known = self._known.reads(declaration, subject)
        terms = known.terms
        if declaration.name in recorded and spec.window.rolling is not None and not excluded:
            plan.add_terms(target.key, "ratio", batch, _recorded(names.ERROR_RATIO_PERIOD, subject))
            if terms is not None:
                plan.add_terms(target.key, "total", batch, _recorded(names.EVENTS_PERIOD, subject))
            return
        queries = known.reads.indicator.queries
        if spec.budgeting_method is BudgetingMethod.TIMESLICES and spec.timeslice is not None and queries is not None:
            for span_batch, length, end in [(batch, at - start, None), *_spans(excluded)]:
                expression = _slices_expression(queries, spec.timeslice.window, spec.timeslice.target, length, end)
                plan.add(target.key, "ratio", span_batch, expression, length)
            return
        for span_batch, length, end in [(batch, at - start, None), *_spans(excluded)]:
            if terms is not None:
                plan.add_terms(target.key, "bad", span_batch, terms.bad, window=length, end=end)
                plan.add_terms(target.key, "total", span_batch, terms.total, window=length, end=end)
            elif queries is not None:
                self._plan_raw(plan, target.key, span_batch, queries.at(length, end), length)

    def _plan_freshness(self, plan: _Plan, target: DeclaredSubject, recorded: set[str]) -> None:
        if target.declaration.spec.sli.composite is not None:
            return
        if target.declaration.name in recorded:
            info = Aggregation("count_over_time", names.INFO, ("slo",))
            fresh = (Term(1, info, (target.declaration.name,)),)
            plan.add_terms(target.key, "fresh", "fresh", fresh, window=self.staleness)
            return
        known = self._known.reads(target.declaration, target.subject)
        if known.terms is None:
            return
        plan.add_terms(target.key, "fresh", "fresh", known.counted, window=self.staleness)

    # -- measuring ------------------------------------------------------------------------------

    def measure(self, targets: Sequence[DeclaredSubject], at: datetime) -> dict[str, Measurement]:
        """Measurements of the targets (and nothing else) at `at`; backend faults become `error`.

        With a measurement cache, a target measured at the same instant before is not planned or
        asked again: every gate within one evaluation interval after the first is a lookup.
        Failed measurements are never cached, so a backend that recovers is asked again at once.
        """
        if self.measurements is None:
            return self._measure(targets, at)
        stamp = at.timestamp()
        found: dict[str, Measurement] = {}
        for target in targets:
            cached = self.measurements.get((target.key, stamp))
            if cached is not None:
                found[target.key] = cached
        missing = [target for target in targets if target.key not in found]
        if missing:
            fresh = self._measure(missing, at)
            for key, measurement in fresh.items():
                if measurement.error is None:
                    self.measurements.put((key, stamp), measurement)
            found.update(fresh)
        return {target.key: found[target.key] for target in targets}

    def reads_datadog(self, target: DeclaredSubject) -> bool:
        """Whether this subject's SLI is read from Datadog (`datadog_reads.reads_from`)."""
        backend = reads_from(target.declaration, prometheus=self.prometheus, datadog=self.datadog is not None)
        return backend is Backend.DATADOG

    def _measure(self, targets: Sequence[DeclaredSubject], at: datetime) -> dict[str, Measurement]:
        """Measure the targets now, asking each backend (through the query caches) for its subjects."""
        everything = self._with_components(targets)
        excluded = {t.key: self._exclusions(t, at) for t in everything}
        measured = [t for t in everything if t.declaration.spec.sli.composite is None]
        from_datadog = [t for t in measured if self.reads_datadog(t)]
        datadog_keys = {t.key for t in from_datadog}
        from_prometheus = [t for t in measured if t.key not in datadog_keys]
        failures: dict[str, str] = {}
        run = _Run(at, {}, excluded, set())
        if from_prometheus:
            self._read_prometheus(from_prometheus, run, failures)
        waited = self._read_datadog(from_datadog, run, failures) if from_datadog else 0.0
        results: dict[str, Measurement] = {}
        for target in measured:
            if target.key in failures:
                results[target.key] = self._failed(target, at, excluded[target.key], failures[target.key])
            elif target.key in datadog_keys:
                found = self._compute(target, run, source="datadog")
                results[target.key] = replace(found, rate_limit_wait_seconds=waited or None)
            else:
                results[target.key] = self._compute(target, run)
        pending = [t for t in everything if t.declaration.spec.sli.composite is not None]
        while pending:  # composites once all their parts are measured (cycles are refused at load)
            ready = [t for t in pending if all(part in results for part in self._part_keys(t))]
            if not ready:
                break
            for target in ready:
                results[target.key] = self._composite(target, run, results)
                pending.remove(target)
        for target in pending:
            message = "composite parts could not be measured"
            results[target.key] = self._failed(target, at, excluded[target.key], message)
        return {t.key: results[t.key] for t in targets}

    def _read_prometheus(self, targets: list[DeclaredSubject], run: _Run, failures: dict[str, str]) -> None:
        """Plan and ask Prometheus for its subjects; a fault fails those subjects only."""
        at = run.at
        try:
            recorded = self._recorded_slos(at)
            plan = self._plan()
            for target in targets:
                self._plan_windows(plan, target, recorded)
                self._plan_period(plan, target, recorded, at, merged(run.excluded[target.key]))
                self._plan_freshness(plan, target, recorded)
            answers = self._answers(plan, at)
            self._fill_missing_periods(plan, answers, targets, recorded, at=at, excluded=run.excluded)
        except BackendError as error:
            failures.update({t.key: str(error) for t in targets})
            return
        run.answers.update(answers)
        run.recorded.update(recorded)
        run.expressions.update(plan.expressions())

    def _read_datadog(self, targets: list[DeclaredSubject], run: _Run, failures: dict[str, str]) -> float:
        """Ask Datadog for its subjects (`datadog_reads.read`); the seconds spent waiting for its rate limit."""
        wanted = [
            DatadogSubject(t.key, t.declaration, t.subject, self.windows_of(t.declaration), merged(run.excluded[t.key]))
            for t in targets
        ]
        reading = read(self.datadog, wanted, run.at, self.staleness, self.datadog_cache)
        failures.update(reading.failures)
        run.answers.update(reading.answers)
        run.expressions.update(reading.expressions)
        return reading.waited

    def _fill_missing_periods(
        self,
        plan: _Plan,
        answers: dict[tuple[str, str, str], float | None],
        everything: list[DeclaredSubject],
        recorded: set[str],
        *,
        at: datetime,
        excluded: dict[str, list[Exclusion]],
    ) -> None:
        """Read the period from raw series where the recorded period series is missing.

        Recording rules can exist without their period series (just deployed, or backfilled
        without the rules they depend on); the raw series still hold the answer.
        """
        unanswered = plan.period_unanswered(answers) if recorded else set()
        missing = [t for t in everything if t.declaration.name in recorded and t.key in unanswered]
        if not missing:
            return
        fallback = self._plan()
        for target in missing:
            self._plan_period(fallback, target, set(), at, merged(excluded[target.key]))
        found = self._answers(fallback, at)
        answers.update({key: value for key, value in found.items() if value is not None})
        plan.extend(fallback)

    def _part_keys(self, target: DeclaredSubject) -> list[str]:
        """Subject keys of a composite's parts."""
        composite = target.declaration.spec.sli.composite
        assert composite is not None
        keys = []
        for component in composite.components:
            labels = component_labels(component, self.fleet)
            part = self.fleet.get(component.slo)
            if labels is not None and part is not None:
                keys += [s.key for s in subjects(part) if s.labels == labels]
        return keys

    def _exclusions(self, target: DeclaredSubject, at: datetime) -> list[Exclusion]:
        spec = target.declaration.spec
        return exclusions(spec, target.subject.stage, period_start(spec.window, at), at)

    def _failed(self, target: DeclaredSubject, at: datetime, excluded: list[Exclusion], message: str) -> Measurement:
        spec = target.declaration.spec
        return Measurement(
            slo=target.declaration.name,
            stage=target.subject.stage,
            objective=target.subject.objective,
            at=at,
            period_start=period_start(spec.window, at),
            exclusions=tuple(excluded),
            error=message,
        )

    def _compute(self, target: DeclaredSubject, run: _Run, source: str | None = None) -> Measurement:
        spec = target.declaration.spec
        key = target.key
        budget = error_budget(target.subject.objective)
        windows = []
        for window, batch in self._known.windows(target.declaration).windows:
            bad, total = run.answers.get((key, "bad", batch)), run.answers.get((key, "total", batch))
            ratio = run.answers.get((key, "ratio", batch))
            if ratio is None:
                ratio = _ratio(bad, total)
            windows.append(WindowMeasurement(window, ratio, None if ratio is None else ratio / budget, total, bad))
        start = period_start(spec.window, run.at)
        recorded = target.declaration.name in run.recorded
        period = _period(run.answers, key, run.at - start, merged(run.excluded[key]), recorded=recorded)
        checked = (key, "fresh", "fresh") in run.answers
        recent = run.answers.get((key, "fresh", "fresh"))
        has_data = period[0] is not None or any(w.error_ratio is not None for w in windows)
        stale = self.staleness.total_seconds() if checked and not recent and has_data else None
        source = source or ("recording-rules" if recorded else "raw")
        return self._finish(target, run, tuple(windows), period, source=source, stale=stale)

    def _finish(
        self,
        target: DeclaredSubject,
        run: _Run,
        windows: tuple[WindowMeasurement, ...],
        period: tuple[float | None, float | None, float | None],
        *,
        source: str,
        stale: float | None,
    ) -> Measurement:
        spec = target.declaration.spec
        ratio, events, bad = period
        budget = error_budget(target.subject.objective)
        remaining = None if ratio is None else 1 - ratio / budget
        fastest = self._known.windows(target.declaration).fastest
        current = next((w.burn_rate for w in windows if w.window == fastest), None)
        exhaustion = None
        if remaining is not None and current is not None:
            exhaustion = time_to_exhaustion(remaining, current, spec.window.period)
        return Measurement(
            slo=target.declaration.name,
            stage=target.subject.stage,
            objective=target.subject.objective,
            at=run.at,
            period_start=period_start(spec.window, run.at),
            windows=windows,
            period_error_ratio=ratio,
            period_events=events,
            period_bad_events=bad,
            budget_remaining=remaining,
            time_to_exhaustion=exhaustion,
            exclusions=tuple(run.excluded[target.key]),
            source=source,
            queries=tuple(run.expressions[target.key]),
            stale_seconds=stale,
        )

    def _composite(self, target: DeclaredSubject, run: _Run, results: dict[str, Measurement]) -> Measurement:
        composite = target.declaration.spec.sli.composite
        assert composite is not None
        weights = [component.weight for component in composite.components]
        parts = [(weight, results[key]) for weight, key in zip(weights, self._part_keys(target), strict=False)]
        errors = [m.error for _, m in parts if m.error]
        if errors:
            return self._failed(target, run.at, run.excluded[target.key], errors[0])
        worst = composite.method is CompositeMethod.WORST_OF
        budget = error_budget(target.subject.objective)
        windows = []
        for window in self.windows_of(target.declaration):
            ratio = _combine([(w, _window_ratio(m, window)) for w, m in parts], worst)
            windows.append(WindowMeasurement(window, ratio, None if ratio is None else ratio / budget))
        period = _combine([(w, m.period_error_ratio) for w, m in parts], worst)
        run.expressions[target.key] = [q for _, m in parts for q in m.queries]
        stale = max((m.stale_seconds for _, m in parts if m.stale_seconds is not None), default=None)
        return self._finish(target, run, tuple(windows), (period, None, None), source="composite", stale=stale)
