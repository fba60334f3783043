"""Measuring subjects at one instant: every window, the period, the budget, in few backend queries.

All questions of one evaluation are asked at the same instant. They are batched by window: each
subject's expression for a window is tagged with `label_replace(..., "sloplane_ask", "<id>")` and
the tagged expressions are joined with `or`, so the number of backend queries grows with the
number of distinct windows, not with SLOs x windows.

Where the recording rules of `sloplane render` exist (an `sloplane:slo:info` series is there for
the SLO), window ratios and period totals are read from them; elsewhere from the raw series through
the same expressions the rules use. The period is always a ratio of events: bad events over all
events, with excluded intervals (maintenance, one-off windows, emergency changes) subtracted from
both, each read with an `@`-anchored range. SLIs without event counts (raw, threshold) exclude
time by weighting instead. Composites are computed from their parts' measurements.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sloplane.budget import burn_rate_alerts, error_budget, time_to_exhaustion
from sloplane.durations import format_duration
from sloplane.evaluator.backends.base import BackendError, MetricsBackend, Sample
from sloplane.evaluator.cache import TTLCache
from sloplane.evaluator.model import Exclusion, Measurement, WindowMeasurement
from sloplane.evaluator.periods import exclusions, merged, period_start
from sloplane.queries import ARGO_EVENTS_METRIC, SLOPLANE_DECISIONS_METRIC, WindowedQueries, promql_matchers
from sloplane.render import names
from sloplane.render.prometheus import recorded_windows
from sloplane.spec.model import BudgetingMethod, Declaration
from sloplane.spec.sli import CompositeMethod, DeploymentSource
from sloplane.subjects import Fleet, Subject, component_labels, counted_stages, subject_queries, subjects

ASK_LABEL = "sloplane_ask"
MAX_QUERY_LENGTH = 100_000
"""Batched queries are split beyond this many characters (well under any server's form limit)."""


@dataclass(frozen=True)
class Target:
    """A subject to measure, with its declaration."""

    declaration: Declaration
    subject: Subject

    @property
    def key(self) -> str:
        """`slo` or `slo/stage`."""
        return self.subject.key


@dataclass(frozen=True)
class _Ask:
    """One number wanted: for a target, a part (bad, total, ratio, fresh), in a batch."""

    target: str
    part: str
    batch: str
    expression: str


@dataclass
class _Plan:
    asks: list[_Ask] = field(default_factory=list)

    def add(self, target: str, part: str, batch: str, expression: str) -> None:
        self.asks.append(_Ask(target, part, batch, expression))

    def batches(self) -> dict[str, list[_Ask]]:
        grouped: dict[str, list[_Ask]] = defaultdict(list)
        for ask in self.asks:
            grouped[ask.batch].append(ask)
        return grouped


def _value(samples: list[Sample]) -> float | None:
    if not samples:
        return None
    value = samples[0].value
    return None if math.isnan(value) or math.isinf(value) else value


def _ratio(bad: float | None, total: float | None) -> float | None:
    if bad is None or total is None or total <= 0:
        return None
    return max(0.0, bad / total)


def freshness_selector(declaration: Declaration, subject: Subject) -> str | None:
    """A selector for the raw series an SLI is derived from (None for hand-written queries)."""
    spec = declaration.spec
    stages = counted_stages(spec, subject)
    stage_labels = dict(stages[0].selector) if stages else {}
    sli = spec.sli
    if sli.http is not None:
        return f"{sli.http.metric}{promql_matchers({**sli.http.selector, **stage_labels})}"
    if sli.latency is not None:
        return f"{sli.latency.metric}_count{promql_matchers({**sli.latency.selector, **stage_labels})}"
    if sli.probe is not None:
        return f"{sli.probe.metric}{promql_matchers({**sli.probe.selector, **stage_labels})}"
    if sli.deployment is not None:
        is_argo = sli.deployment.source is DeploymentSource.ARGO_ROLLOUTS
        metric = ARGO_EVENTS_METRIC if is_argo else SLOPLANE_DECISIONS_METRIC
        return f"{metric}{promql_matchers({**sli.deployment.selector, **stage_labels})}"
    return None


class Measurer:
    """Measures targets against one backend."""

    def __init__(
        self,
        fleet: Fleet,
        backend: MetricsBackend,
        *,
        cache: TTLCache[list[Sample]] | None = None,
        staleness: timedelta = timedelta(minutes=5),
        analysis_windows: Iterable[timedelta] = (),
    ) -> None:
        self.fleet = fleet
        self.backend = backend
        self.cache = cache
        self.staleness = staleness
        self.extra_windows = tuple(analysis_windows)
        self.queries_sent = 0

    def targets(self, declaration: Declaration) -> list[Target]:
        """One target per subject of a declaration."""
        return [Target(declaration, subject) for subject in subjects(declaration)]

    def _with_components(self, targets: Sequence[Target]) -> list[Target]:
        """The targets and, transitively, the parts of every composite among them."""
        found: dict[str, Target] = {}
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
                pending += [t for t in self.targets(part) if t.subject.labels == labels]
        return list(found.values())

    def windows_of(self, declaration: Declaration) -> tuple[timedelta, ...]:
        """Every alert window, the gate's analysis window, and any extra window asked for."""
        spec = declaration.spec
        windows = {w for alert in burn_rate_alerts(spec.window.period) for w in (alert.long_window, alert.short_window)}
        windows.add(spec.effective_gate.analysis_window)
        windows.update(self.extra_windows)
        return tuple(sorted(windows))

    # -- asking ---------------------------------------------------------------------------------

    def _query(self, expression: str, at: datetime) -> list[Sample]:
        key = (expression, at.timestamp())
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        samples = self.backend.query(expression, at)
        self.queries_sent += 1
        if self.cache is not None:
            self.cache.put(key, samples)
        return samples

    def _answers(self, plan: _Plan, at: datetime) -> dict[tuple[str, str, str], float | None]:
        """Run every batch (split by length) and map (target, part, batch) to its number."""
        answers: dict[tuple[str, str, str], float | None] = {}
        for batch, asks in sorted(plan.batches().items()):
            ids = {f"{index}": ask for index, ask in enumerate(asks)}
            chunk: list[str] = []
            length = 0
            for ask_id, ask in ids.items():
                tagged = f'label_replace({ask.expression}, "{ASK_LABEL}", "{ask_id}", "", "")'
                if chunk and length + len(tagged) > MAX_QUERY_LENGTH:
                    self._collect(" or ".join(chunk), at, ids, answers)
                    chunk, length = [], 0
                chunk.append(tagged)
                length += len(tagged) + 4
            if chunk:
                self._collect(" or ".join(chunk), at, ids, answers)
            for ask in asks:
                answers.setdefault((ask.target, ask.part, batch), None)
        return answers

    def _collect(
        self, expression: str, at: datetime, ids: dict[str, _Ask], answers: dict[tuple[str, str, str], float | None]
    ) -> None:
        by_ask: dict[str, list[Sample]] = defaultdict(list)
        for sample in self._query(expression, at):
            ask_id = sample.labels.get(ASK_LABEL)
            if ask_id in ids:
                by_ask[ask_id].append(sample)
        for ask_id, samples in by_ask.items():
            ask = ids[ask_id]
            answers[(ask.target, ask.part, ask.batch)] = _value(samples)

    def _recorded_slos(self, at: datetime) -> set[str]:
        samples = self._query(f"count by (slo) ({names.INFO})", at)
        return {sample.labels["slo"] for sample in samples if "slo" in sample.labels}

    # -- planning -------------------------------------------------------------------------------

    def _plan_windows(self, plan: _Plan, target: Target, recorded: set[str], windows: Iterable[timedelta]) -> None:
        declaration, subject = target.declaration, target.subject
        if declaration.spec.sli.composite is not None:
            return
        available = recorded_windows(self.fleet).get(declaration.name, ()) if declaration.name in recorded else ()
        queries = subject_queries(declaration.spec, subject)
        labels = promql_matchers(subject.labels)
        counted = queries is not None and queries.errors is not None
        for window in windows:
            batch = format_duration(window)
            if window in available:
                plan.add(target.key, "ratio", batch, f"{names.windowed(names.ERROR_RATIO, window)}{labels}")
                if counted and window == min(available):
                    plan.add(target.key, "bad", batch, f"{names.windowed(names.BAD_EVENTS, window)}{labels}")
                    plan.add(target.key, "total", batch, f"{names.windowed(names.EVENTS, window)}{labels}")
            elif queries is not None:
                self._plan_raw(plan, target.key, batch, queries.at(window))

    @staticmethod
    def _plan_raw(plan: _Plan, key: str, batch: str, filled: WindowedQueries) -> None:
        bad, total, ratio = filled.single_series()
        if bad is not None and total is not None:
            plan.add(key, "bad", batch, bad)
            plan.add(key, "total", batch, total)
        else:
            plan.add(key, "ratio", batch, ratio)

    def _plan_period(
        self, plan: _Plan, target: Target, recorded: set[str], at: datetime, excluded: list[tuple[datetime, datetime]]
    ) -> None:
        declaration, subject = target.declaration, target.subject
        spec = declaration.spec
        if spec.sli.composite is not None:
            return
        start = period_start(spec.window, at)
        batch = f"period:{format_duration(at - start)}"
        rolling_recorded = declaration.name in recorded and spec.window.rolling is not None and not excluded
        queries = subject_queries(spec, subject)
        if rolling_recorded:
            labels = promql_matchers(subject.labels)
            plan.add(target.key, "ratio", batch, f"{names.ERROR_RATIO_PERIOD}{labels}")
            if queries is not None and queries.errors is not None:
                plan.add(target.key, "total", batch, f"{names.EVENTS_PERIOD}{labels}")
            return
        if queries is None:
            return
        if spec.budgeting_method is BudgetingMethod.TIMESLICES and spec.timeslice is not None:
            plan.add(
                target.key,
                "ratio",
                batch,
                _slices_expression(queries, spec.timeslice.window, spec.timeslice.target, at - start, None),
            )
            for span_start, span_end in excluded:
                plan.add(
                    target.key,
                    "ratio",
                    _span_batch(span_start, span_end),
                    _slices_expression(
                        queries, spec.timeslice.window, spec.timeslice.target, span_end - span_start, span_end
                    ),
                )
            return
        self._plan_raw(plan, target.key, batch, queries.at(at - start))
        for span_start, span_end in excluded:
            self._plan_raw(
                plan, target.key, _span_batch(span_start, span_end), queries.at(span_end - span_start, span_end)
            )

    def _plan_freshness(self, plan: _Plan, target: Target, recorded: set[str]) -> None:
        bound = format_duration(self.staleness)
        if target.declaration.spec.sli.composite is not None:
            return
        if target.declaration.name in recorded:
            selector = f"{names.INFO}{promql_matchers({'slo': target.declaration.name})}"
        else:
            found = freshness_selector(target.declaration, target.subject)
            if found is None:
                return
            selector = found
        plan.add(target.key, "fresh", "fresh", f"sum(count_over_time({selector}[{bound}]))")

    # -- measuring ------------------------------------------------------------------------------

    def measure(self, targets: Sequence[Target], at: datetime) -> dict[str, Measurement]:
        """Measurements of the targets (and nothing else) at `at`; backend faults become `error`."""
        everything = self._with_components(targets)
        excluded = {t.key: self._exclusions(t, at) for t in everything}
        try:
            recorded = self._recorded_slos(at)
            plan = _Plan()
            for target in everything:
                self._plan_windows(plan, target, recorded, self.windows_of(target.declaration))
                self._plan_period(plan, target, recorded, at, merged(excluded[target.key]))
                self._plan_freshness(plan, target, recorded)
            answers = self._answers(plan, at)
            self._fill_missing_periods(plan, answers, everything, recorded, at=at, excluded=excluded)
        except BackendError as error:
            return {t.key: self._failed(t, at, excluded[t.key], str(error)) for t in targets}
        run = _Run(at, answers, excluded, recorded)
        for ask in plan.asks:
            run.expressions[ask.target].append(ask.expression)
        results: dict[str, Measurement] = {}
        for target in everything:
            if target.declaration.spec.sli.composite is None:
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

    def _fill_missing_periods(
        self,
        plan: _Plan,
        answers: dict[tuple[str, str, str], float | None],
        everything: list[Target],
        recorded: set[str],
        *,
        at: datetime,
        excluded: dict[str, list[Exclusion]],
    ) -> None:
        """Read the period from raw series where the recorded period series is missing.

        Recording rules can exist without their period series (just deployed, or backfilled
        without the rules they depend on); the raw series still hold the answer.
        """
        missing = [
            t
            for t in everything
            if t.declaration.name in recorded
            and any(a.target == t.key and a.batch.startswith("period:") for a in plan.asks)
            and all(
                answers.get((a.target, a.part, a.batch)) is None
                for a in plan.asks
                if a.target == t.key and a.batch.startswith("period:")
            )
        ]
        if not missing:
            return
        fallback = _Plan()
        for target in missing:
            self._plan_period(fallback, target, set(), at, merged(excluded[target.key]))
        found = self._answers(fallback, at)
        answers.update({key: value for key, value in found.items() if value is not None})
        plan.asks.extend(fallback.asks)

    def _part_keys(self, target: Target) -> list[str]:
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

    def _exclusions(self, target: Target, at: datetime) -> list[Exclusion]:
        spec = target.declaration.spec
        return exclusions(spec, target.subject.stage, period_start(spec.window, at), at)

    def _failed(self, target: Target, at: datetime, excluded: list[Exclusion], message: str) -> Measurement:
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

    def _compute(self, target: Target, run: _Run) -> Measurement:
        spec = target.declaration.spec
        key = target.key
        budget = error_budget(target.subject.objective)
        windows = []
        for window in self.windows_of(target.declaration):
            batch = format_duration(window)
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
        source = "recording-rules" if recorded else "raw"
        return self._finish(target, run, tuple(windows), period, source=source, stale=stale)

    def _finish(
        self,
        target: Target,
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
        fastest = burn_rate_alerts(spec.window.period)[0].long_window
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

    def _composite(self, target: Target, run: _Run, results: dict[str, Measurement]) -> Measurement:
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


@dataclass
class _Run:
    """One evaluation's shared state: the instant, the answers, and per-target facts."""

    at: datetime
    answers: dict[tuple[str, str, str], float | None]
    excluded: dict[str, list[Exclusion]]
    recorded: set[str]
    expressions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def _window_ratio(measurement: Measurement, window: timedelta) -> float | None:
    found = measurement.window(window)
    return None if found is None else found.error_ratio


def _span_batch(start: datetime, end: datetime) -> str:
    return f"excluded:{format_duration(end - start)}@{end.timestamp():.0f}"


def _slices_expression(
    queries: WindowedQueries, window: timedelta, target_percent: float, length: timedelta, end: datetime | None
) -> str:
    """Share of bad time slices over `length` (ending at `end`): a subquery stepping by slice."""
    _, _, ratio = queries.at(window).single_series()
    threshold = repr(round(1 - target_percent / 100, 12))
    anchor = "" if end is None else f" @ {end.timestamp():.3f}"
    return f"avg_over_time(({ratio} > bool {threshold})[{format_duration(length)}:{format_duration(window)}]{anchor})"


def _period(
    answers: dict[tuple[str, str, str], float | None],
    key: str,
    length: timedelta,
    excluded: list[tuple[datetime, datetime]],
    recorded: bool,
) -> tuple[float | None, float | None, float | None]:
    """(error ratio, events, bad events) over the period with excluded spans taken out."""
    batch = f"period:{format_duration(length)}"
    ratio = answers.get((key, "ratio", batch))
    bad, total = answers.get((key, "bad", batch)), answers.get((key, "total", batch))
    if recorded and not excluded and ratio is not None:
        return ratio, total, None if total is None else ratio * total
    if bad is not None and total is not None:
        for start, end in excluded:
            span = _span_batch(start, end)
            bad -= answers.get((key, "bad", span)) or 0.0
            total -= answers.get((key, "total", span)) or 0.0
        return _ratio(bad, total), max(total, 0.0), max(bad, 0.0)
    if ratio is None:
        return None, None, None
    kept = length.total_seconds()
    weighted = ratio * kept
    for start, end in excluded:
        span_ratio = answers.get((key, "ratio", _span_batch(start, end)))
        seconds = (end - start).total_seconds()
        if span_ratio is not None:
            weighted -= span_ratio * seconds
            kept -= seconds
    return (max(0.0, weighted / kept) if kept > 0 else None), None, None


def _combine(parts: list[tuple[float, float | None]], worst: bool) -> float | None:
    """A composite's ratio: the worst part, or the weighted mean (None when a part has no data)."""
    values = [(weight, ratio) for weight, ratio in parts if ratio is not None]
    if worst:
        return max((ratio for _, ratio in values), default=None)
    if not parts or len(values) != len(parts):
        return None
    return sum(weight * ratio for weight, ratio in values) / sum(weight for weight, _ in values)
