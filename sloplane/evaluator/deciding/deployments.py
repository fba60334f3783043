"""Budget burned during deployments, reported apart from background burn.

A release that was rolled back within minutes may have burned a visible slice of the budget; a
monthly report that lumps it with everything else tells the team their service is unreliable when
their pipeline, in fact, did its job. The decision log knows when each revision was being gated;
those stretches (from one analysis window before the first gate of a revision to its last gate) are
deployment windows. They are placed by when the evaluator decided, never by a time the caller named:
a replay (`at` in the past) is back-testing, and must not move the history. Bad events inside them
are counted apart, per revision and in total (overlapping windows counted once), and the rest is
background. Excluded time (maintenance, emergency changes) is taken out of both, as it is out of the
budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sloplane.core.budget import error_budget
from sloplane.declaration.model import Declaration
from sloplane.evaluator.measuring.backends.base import MetricsBackend
from sloplane.evaluator.measuring.batching import ASK_LABEL
from sloplane.evaluator.measuring.periods import merge_spans, merged
from sloplane.evaluator.model import JsonShape, Measurement, ReleaseSpan, json_shape
from sloplane.semantics.indicators import subject_indicator
from sloplane.semantics.subjects import Subject

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class DeploymentWindow:
    """One revision of one service being rolled out, as the gate decisions about it show."""

    service: str
    revision: str
    pipeline: str | None
    start: datetime
    end: datetime
    outcome: str
    """The last decision's outcome: `fail` means the release was stopped (rolled back)."""
    decisions: int


def deployment_windows(releases: Iterable[ReleaseSpan], service: str, lead: timedelta) -> list[DeploymentWindow]:
    """Windows of the releases the decision log found for `service` (`DecisionLog.releases`)."""
    windows = [
        DeploymentWindow(
            service=service,
            revision=span.release,
            pipeline=span.pipeline,
            start=span.first - lead,
            end=span.last,
            outcome=span.outcome,
            decisions=span.decisions,
        )
        for span in releases
    ]
    return sorted(windows, key=lambda w: (w.start, w.revision))


def subtract(spans: list[Span], holes: list[Span]) -> list[Span]:
    """`spans` with every instant of `holes` taken out (both lists sorted and non-overlapping)."""
    result = []
    for start, end in spans:
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end <= cursor or hole_start >= end:
                continue
            if hole_start > cursor:
                result.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
        if cursor < end:
            result.append((cursor, end))
    return result


@dataclass(frozen=True)
class BurnSplit:
    """One subject's budget over its period: what deployments burned, and what the rest did."""

    slo: str
    stage: str | None
    period_start: datetime
    at: datetime
    events: float
    bad_events: float
    allowed_bad_events: float
    deployments: tuple[tuple[DeploymentWindow, float, float], ...]
    """(window, bad events, events) per revision, inside the period and outside excluded time."""
    deployment_bad_events: float
    """Inside any deployment window, overlaps counted once."""

    @property
    def background_bad_events(self) -> float:
        """Bad events outside every deployment window."""
        return max(0.0, self.bad_events - self.deployment_bad_events)

    def _share(self, bad: float) -> float | None:
        return bad / self.allowed_bad_events if self.allowed_bad_events > 0 else None

    def report(self) -> BurnReport:
        """The split as the API, the CLI and the log show it: budget shares are fractions of the whole budget."""
        return BurnReport(
            slo=self.slo,
            stage=self.stage,
            period_start=self.period_start,
            at=self.at,
            events=self.events,
            bad_events=self.bad_events,
            allowed_bad_events=self.allowed_bad_events,
            budget_consumed=self._share(self.bad_events),
            deployment_budget_consumed=self._share(self.deployment_bad_events),
            background_budget_consumed=self._share(self.background_bad_events),
            deployment_bad_events=self.deployment_bad_events,
            background_bad_events=self.background_bad_events,
            deployments=tuple(
                DeploymentBurn(
                    service=window.service,
                    revision=window.revision,
                    pipeline=window.pipeline,
                    start=window.start,
                    end=window.end,
                    outcome=window.outcome,
                    rolled_back=window.outcome == "fail",
                    decisions=window.decisions,
                    bad_events=bad,
                    events=total,
                    budget_consumed=self._share(bad),
                )
                for window, bad, total in self.deployments
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (`report`'s)."""
        return self.report().to_dict()


@json_shape(every_field_required=True)
@dataclass(frozen=True)
class DeploymentBurn(JsonShape):
    """One revision's deployment window and the budget burned inside it."""

    service: str
    revision: str
    pipeline: str | None
    start: datetime
    end: datetime
    outcome: str
    """The last decision about this revision; `fail` means it was stopped."""
    rolled_back: bool
    decisions: int
    bad_events: float
    events: float
    budget_consumed: float | None
    """Fraction of the period's whole budget."""


@json_shape(every_field_required=True)
@dataclass(frozen=True)
class BurnReport(JsonShape):
    """An SLO's production budget over its period: burned during deployments, and in the background."""

    slo: str
    stage: str | None
    period_start: datetime
    at: datetime
    events: float
    bad_events: float
    allowed_bad_events: float
    budget_consumed: float | None
    deployment_budget_consumed: float | None
    background_budget_consumed: float | None
    deployment_bad_events: float
    background_bad_events: float
    deployments: tuple[DeploymentBurn, ...]


class BurnSplitError(Exception):
    """The split cannot be computed (no event counts, no data); the message says why."""


COUNTS_PER_QUERY = 50
"""Span counts asked in one tagged query: a month of deployments is a few hundred windows, and a
query per count would be as many round trips."""


def _counts(backend: MetricsBackend, expressions: list[str], at: datetime) -> list[float]:
    """The sum of each expression at `at` (0 where it has no data), asked `COUNTS_PER_QUERY` at a time.

    Each is summed to one series and tagged with its index (`label_replace`), so the parts of one
    query can be told apart in its answer.
    """
    values = [0.0] * len(expressions)
    for start in range(0, len(expressions), COUNTS_PER_QUERY):
        chunk = expressions[start : start + COUNTS_PER_QUERY]
        tagged = " or ".join(
            f'label_replace(sum({expression}), "{ASK_LABEL}", "c{start + index}", "", "")'
            for index, expression in enumerate(chunk)
        )
        for sample in backend.query(tagged, at):
            tag = sample.labels.get(ASK_LABEL, "")
            if tag.startswith("c") and tag[1:].isdigit() and int(tag[1:]) < len(values):
                values[int(tag[1:])] += sample.value
    return values


def burn_split(
    backend: MetricsBackend,
    declaration: Declaration,
    subject: Subject,
    measurement: Measurement,
    windows: list[DeploymentWindow],
) -> BurnSplit:
    """Split the period's bad events of a measured subject into deployment windows and background."""
    queries = subject_indicator(declaration.spec, subject).queries
    if queries is None or queries.errors is None or queries.total is None:
        raise BurnSplitError(f"SLO '{declaration.name}' has no event counts: burn cannot be split by deployment")
    if measurement.period_bad_events is None or measurement.period_events is None:
        raise BurnSplitError(
            f"SLO '{subject.key}' has no event counts for its period ({measurement.error or 'no data'})"
        )
    excluded = merged(measurement.exclusions)

    def inside(window: DeploymentWindow) -> list[Span]:
        clipped = (max(window.start, measurement.period_start), min(window.end, measurement.at))
        return subtract([clipped], excluded) if clipped[0] < clipped[1] else []

    spans_of = {window: inside(window) for window in windows}
    union = merge_spans(span for spans in spans_of.values() for span in spans)
    every = sorted({*union, *(span for spans in spans_of.values() for span in spans)})
    expressions: list[str] = []
    for start, end in every:  # each span asked once (a lone window is also its own union)
        anchored = queries.at(end - start, end)
        assert anchored.errors is not None and anchored.total is not None
        expressions += [f"({anchored.errors})", f"({anchored.total})"]
    values = _counts(backend, expressions, measurement.at)
    read = {span: (values[2 * index], values[2 * index + 1]) for index, span in enumerate(every)}

    def counted(spans: list[Span]) -> tuple[float, float]:
        found = [read[span] for span in spans]
        return math.fsum(bad for bad, _ in found), math.fsum(total for _, total in found)

    per_window = []
    for window in windows:
        bad, total = counted(spans_of[window])
        per_window.append((window, bad, total))
    deployment_bad, _ = counted(union)
    budget = error_budget(subject.objective)
    return BurnSplit(
        slo=declaration.name,
        stage=subject.stage,
        period_start=measurement.period_start,
        at=measurement.at,
        events=measurement.period_events,
        bad_events=measurement.period_bad_events,
        allowed_bad_events=budget * measurement.period_events,
        deployments=tuple(per_window),
        deployment_bad_events=min(deployment_bad, measurement.period_bad_events),
    )
