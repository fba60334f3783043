"""`promtool test rules` files generated next to each rule file: healthy, full outage, slow burn.

Each scenario feeds synthetic history into the rules and asserts, through the `ALERTS` series,
which burn-rate alert fires and when, against the times the budget math predicts:

- healthy: an error ratio of a tenth of the budget; nothing fires.
- full outage: every request fails; the fastest alert fires within two intervals of its predicted
  detection time (and not before, when that is long enough to tell).
- slow burn: a burn rate 1.5x the second-fastest alert's factor; that alert fires, the fastest
  one never does.

Inputs are the raw series the rules read where sloplane derives the queries (http, latency, probe,
deployment SLIs), so the recording expressions are tested too. For hand-written queries (ratio,
raw, threshold) and composites, the inputs are the recorded error-ratio series themselves, computed
exactly for a step change, so the alert logic is tested without guessing at the author's metrics.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sloplane.core import names
from sloplane.core.budget import BurnRateAlert, error_budget
from sloplane.core.durations import format_duration
from sloplane.declaration.model import Declaration, Spec
from sloplane.declaration.sli import DeploymentSource
from sloplane.semantics.alerts import alert_identity, alert_names, alertname_matchers
from sloplane.semantics.indicators import deployment_reasons
from sloplane.semantics.promql import promql_matchers
from sloplane.semantics.recording import recorded_windows
from sloplane.semantics.subjects import FleetLike, Subject, component_labels, counted_stages, production_subject

EVENTS_PER_STEP = 600.0
"""Synthetic traffic: requests (or rollouts) per step."""
SLOW_BURN_MARGIN = 1.5
"""The slow burn runs this much above the second-fastest alert's factor (and below the fastest's)."""
DETECTION_TOLERANCE = 0.05
"""Checks allow 5% of the predicted detection time either side (at least two evaluations)."""
PROBE_STEP = timedelta(seconds=30)
"""Probes are 0/1 samples: they need a fine step for a small error ratio to show in a window."""
PROBE_FAILURES_PER_WINDOW = 2.0
"""Failed probes the shortest window an asserted alert reads must hold (see `_probe_step`)."""
PROMTOOL_MAX_SAMPLES = 10_000
"""promtool's unit-test engine refuses a query that loads more samples than this (its `MaxSamples`)."""


@dataclass(frozen=True)
class Scenario:
    """A named incident: history at one error ratio, then a constant error ratio."""

    name: str
    error_ratio: float
    history_steps: int
    incident_steps: int
    history_ratio: float = 0.0
    """Incidents start after a clean history, as the detection times assume."""


def _steps(duration: timedelta, step: timedelta) -> int:
    return math.ceil(duration / step)


@dataclass(frozen=True)
class Schedule:
    """An error ratio over time: a history segment, then an incident segment, in input steps."""

    history_steps: int
    history_ratio: float
    incident_steps: int
    incident_ratio: float

    @property
    def length(self) -> int:
        """Total input steps."""
        return self.history_steps + self.incident_steps

    def segments(self) -> list[tuple[int, float]]:
        """(steps, ratio) pieces, empty ones left out."""
        pieces = [(self.history_steps, self.history_ratio), (self.incident_steps, self.incident_ratio)]
        return [(steps, ratio) for steps, ratio in pieces if steps > 0]

    def per_step(self) -> list[float]:
        """The ratio at every step (only for series that must be spelled sample by sample)."""
        return [ratio for steps, ratio in self.segments() for _ in range(steps)]


def _counter(segments: list[tuple[int, float]]) -> str:
    """A counter growing by a constant increment per step in each segment, in promtool's notation."""
    tokens: list[str] = []
    value = 0.0
    for steps, increment in segments:
        first = value + increment if tokens else value
        tokens.append(f"{_float(first)}+{_float(increment)}x{steps - 1}" if steps > 1 else _float(first))
        value = first + increment * (steps - 1)
    return " ".join(tokens)


def _window_ratio_notation(schedule: Schedule, window_steps: int) -> str:
    """The error ratio over a sliding window of a step change, analytically, as promtool notation.

    Before the change: the history ratio. While the window is still filling from the start of the
    series, each sample is an average over fewer steps (spelled out); once it is full, the ratio
    climbs in a straight line for one window length; after that: the incident ratio.
    """
    h, e = schedule.history_ratio, schedule.incident_ratio
    onset, total, width = schedule.history_steps, schedule.length, max(1, window_steps)
    if h == e:
        return f"{_float(e)}x{total - 1}"
    values: list[str] = [f"{_float(h)}x{onset - 1}"] if onset > 1 else ([_float(h)] if onset == 1 else [])
    index = onset
    while index < total and index + 1 < width:  # partial windows at the start of the series
        inside = index - onset + 1
        values.append(_float((h * (index + 1 - inside) + e * inside) / (index + 1)))
        index += 1
    ramp_end = min(total, onset + width - 1)
    if index < ramp_end:
        inside = index - onset + 1
        first = h + (e - h) * inside / width
        step = (e - h) / width
        count = ramp_end - index
        sign = "+" if step >= 0 else "-"
        values.append(f"{_float(first)}{sign}{_float(abs(step))}x{count - 1}" if count > 1 else _float(first))
        index = ramp_end
    if index < total:
        values.append(f"{_float(e)}x{total - index - 1}" if total - index > 1 else _float(e))
    return " ".join(values)


def _probe_notation(schedule: Schedule) -> str:
    """Probe samples for a schedule, as promtool notation: 1 (success), with a 0 each time failures accumulate.

    The ratio is added up step by step (`accumulate`: the same float additions in the same order as a
    loop would make) and a step fails where the running total crosses a whole number. Samples are
    only 0 or 1, so the notation is their run lengths (`1.0x220 0.0 1.0x220 ...`), computed without
    a Python loop per sample: a slow burn's history is tens of thousands of them.
    """
    totals = list(itertools.accumulate(schedule.per_step(), initial=0.0))
    floors = list(map(math.floor, totals))
    values = [0.0 if after > before else 1.0 for before, after in itertools.pairwise(floors)]
    return " ".join(
        _float(value) if count == 1 else f"{_float(value)}x{count - 1}"
        for value, count in ((value, len(list(run))) for value, run in itertools.groupby(values))
    )


def _float(value: float) -> str:
    return repr(round(value, 9))


def _schedule(scenario: Scenario, repeat: int = 1) -> Schedule:
    """The scenario in input steps (`repeat` input steps per evaluation step)."""
    return Schedule(
        scenario.history_steps * repeat, scenario.history_ratio, scenario.incident_steps * repeat, scenario.error_ratio
    )


def _event_series(bad_labels: dict[str, str], good_labels: dict[str, str], schedule: Schedule) -> list[dict[str, str]]:
    segments = schedule.segments()
    bad = [(steps, EVENTS_PER_STEP * ratio) for steps, ratio in segments]
    good = [(steps, EVENTS_PER_STEP * (1 - ratio)) for steps, ratio in segments]
    return [
        {"series": promql_series(bad_labels), "values": _counter(bad)},
        {"series": promql_series(good_labels), "values": _counter(good)},
    ]


def promql_series(labels: dict[str, str]) -> str:
    """`name{a="b"}` from a label set with `__name__`."""
    name = labels.get("__name__", "")
    rest = {key: value for key, value in labels.items() if key != "__name__"}
    return f"{name}{promql_matchers(rest)}"


def _stage_labels(spec: Spec, subject: Subject) -> dict[str, str]:
    stages = counted_stages(spec, subject)
    return dict(stages[0].selector) if stages else {}


def _raw_inputs(spec: Spec, subject: Subject, schedule: Schedule) -> list[dict[str, str]] | None:
    """Raw input series for SLI kinds whose queries sloplane derives; None for the others."""
    sli = spec.sli
    stage = _stage_labels(spec, subject)
    if sli.http is not None:
        base = {"__name__": sli.http.metric, **sli.http.selector, **stage}
        bad_code = sli.http.errors.codes[0].lower().replace("x", "0")
        return _event_series(
            {**base, sli.http.errors.label: bad_code}, {**base, sli.http.errors.label: "200"}, schedule
        )
    if sli.latency is not None:
        labels = {**sli.latency.selector, **stage}
        seconds = sli.latency.threshold.total_seconds()
        bound = str(int(seconds)) if seconds.is_integer() else repr(seconds)
        good = [(steps, EVENTS_PER_STEP * (1 - ratio)) for steps, ratio in schedule.segments()]
        total = [(schedule.length, EVENTS_PER_STEP)]
        metric = sli.latency.metric
        return [
            {
                "series": promql_series({"__name__": f"{metric}_bucket", **labels, "le": bound}),
                "values": _counter(good),
            },
            {
                "series": promql_series({"__name__": f"{metric}_bucket", **labels, "le": "+Inf"}),
                "values": _counter(total),
            },
            {"series": promql_series({"__name__": f"{metric}_count", **labels}), "values": _counter(total)},
        ]
    if sli.probe is not None:
        labels = {"__name__": sli.probe.metric, **sli.probe.selector, **stage}
        return [{"series": promql_series(labels), "values": _probe_notation(schedule)}]
    if sli.deployment is not None:
        bad_reasons, all_reasons = deployment_reasons(sli.deployment)
        is_argo = sli.deployment.source is DeploymentSource.ARGO_ROLLOUTS
        metric, label = ("rollout_events_total", "reason") if is_argo else ("sloplane_gate_decisions_total", "decision")
        base = {"__name__": metric, **sli.deployment.selector, **stage}
        good_reason = next((r for r in all_reasons if r not in bad_reasons), None)
        if good_reason is None:  # every counted reason is bad: totals come from the bad events alone
            return None
        if set(bad_reasons) <= set(all_reasons):
            return _event_series({**base, label: bad_reasons[0]}, {**base, label: good_reason}, schedule)
        # bad events are not among the counted ones (e.g. aborted over updated): total is its own series
        total = [(schedule.length, EVENTS_PER_STEP)]
        bad = [(steps, EVENTS_PER_STEP * ratio) for steps, ratio in schedule.segments()]
        return [
            {"series": promql_series({**base, label: bad_reasons[0]}), "values": _counter(bad)},
            {"series": promql_series({**base, label: good_reason}), "values": _counter(total)},
        ]
    return None


def _recorded_inputs(
    windows: Iterable[timedelta], step: timedelta, label_sets: list[dict[str, str]], schedule: Schedule
) -> list[dict[str, str]]:
    """The recorded error-ratio series themselves, for each window and label set.

    Windows longer than the clean history are left out of incidents: their ratio would only be an
    artefact of where the synthetic series starts, and no check reads them.
    """
    inputs = []
    constant = schedule.history_ratio == schedule.incident_ratio
    for window in windows:
        width = round(window / step)
        if not constant and width > schedule.history_steps:
            continue
        notation = _window_ratio_notation(schedule, width)
        for labels in label_sets:
            series = promql_series({"__name__": names.windowed(names.ERROR_RATIO, window), **labels})
            inputs.append({"series": series, "values": notation})
    return inputs


def _alerts_expr(declaration: Declaration, subject: Subject, alert: BurnRateAlert | None = None) -> str:
    """Firing alerts of the subject: of one window pair when given (under its tier's name), else of any."""
    labels = {"alertstate": "firing", **subject.labels}
    extra: tuple[str, ...] = ()
    if alert is not None:
        labels["alertname"] = alert_identity(declaration, alert.tier).name
        labels["long_window"] = format_duration(alert.long_window)
        labels["short_window"] = format_duration(alert.short_window)
    else:
        by_name, extra = alertname_matchers(alert_names([declaration]))
        labels |= by_name
    return f"count(ALERTS{promql_matchers(labels, extra)}) or vector(0)"


def _check(expr: str, at: timedelta, step: timedelta, value: int) -> dict[str, Any]:
    """Assert `expr` at the first rule evaluation at or after `at`."""
    aligned = step * math.ceil(at / step)
    return {"expr": expr, "eval_time": format_duration(aligned), "exp_samples": [{"labels": "{}", "value": value}]}


def _firing_alerts(declaration: Declaration, subject: Subject) -> list[BurnRateAlert]:
    tiers = set(declaration.spec.alerting.enabled_tiers())
    alerts = [a for a in declaration.spec.burn_rate_alerts() if a.tier in tiers]
    return sorted((a for a in alerts if a.can_fire(subject.objective)), key=lambda a: -a.factor)


def _margin(detection: timedelta, step: timedelta) -> timedelta:
    """Two evaluations, or 5% of the detection time for long windows (sampling makes ratios step)."""
    return max(step * 2, detection * DETECTION_TOLERANCE)


def _scenario_checks(
    declaration: Declaration, scenario: Scenario, step: timedelta, subject: Subject, alerts: list[BurnRateAlert]
) -> list[dict[str, Any]]:
    onset = step * scenario.history_steps
    end = step * (scenario.history_steps + scenario.incident_steps - 1)
    if scenario.name == "healthy":
        return [_check(_alerts_expr(declaration, subject), end, step, 0)]
    objective = subject.objective
    expected = min(
        (a for a in alerts if a.detection_time(scenario.error_ratio, objective) is not None),
        key=lambda a: a.detection_time(scenario.error_ratio, objective) or timedelta.max,
    )
    detection = expected.detection_time(scenario.error_ratio, objective)
    assert detection is not None
    margin = _margin(detection, step)
    checks = [_check(_alerts_expr(declaration, subject, expected), onset + detection + margin, step, 1)]
    if detection > margin * 2:
        checks.append(_check(_alerts_expr(declaration, subject, expected), onset + detection - margin - step, step, 0))
    for alert in alerts:
        if alert.detection_time(scenario.error_ratio, objective) is None and alert.long_window <= onset:
            checks.append(_check(_alerts_expr(declaration, subject, alert), end, step, 0))
    return checks


def _scenarios(declaration: Declaration, subject: Subject, step: timedelta) -> list[Scenario]:
    """Healthy, full outage and slow burn, each with just enough history for the alerts it asserts.

    A constant ratio reads the same over every window, so the healthy run needs no long history;
    an incident needs clean history as long as the asserted alert's long window, or that window's
    ratio would be inflated by the missing past.
    """
    budget = error_budget(subject.objective)
    alerts = _firing_alerts(declaration, subject)
    if not alerts:
        return []
    fast = alerts[0]
    slow = alerts[1] if len(alerts) > 1 else alerts[0]
    slow_ratio = min(1.0, SLOW_BURN_MARGIN * slow.factor * budget)
    healthy_steps = _steps(max(a.short_window for a in alerts), step) + 2
    scenarios = [Scenario("healthy", budget / 10, 1, healthy_steps, history_ratio=budget / 10)]
    for name, ratio, alert in (("full outage", 1.0, fast), ("slow burn", slow_ratio, slow)):
        detection = alert.detection_time(ratio, subject.objective) or alert.long_window
        incident = _steps(detection + _margin(detection, step), step) + 4
        scenarios.append(Scenario(name, ratio, _steps(alert.long_window, step), incident))
    return scenarios


LOOKBACK = timedelta(minutes=5)
"""Prometheus' default lookback: a recorded sample older than this is invisible, so no step is longer."""


def evaluation_step(declaration: Declaration, subject: Subject) -> timedelta:
    """The test's step: the SLO's interval, or a fifth of the shortest asserted window, up to 5m.

    Ticket-only SLOs assert nothing shorter than hours; stepping by minutes would only slow the test.
    """
    alerts = _firing_alerts(declaration, subject)
    shortest = min((a.short_window for a in alerts), default=declaration.spec.interval)
    minutes = max(declaration.spec.interval, shortest / 5) // timedelta(minutes=1)
    return min(LOOKBACK, timedelta(minutes=max(1, minutes)))


def promtool_test_file(
    declaration: Declaration, fleet: FleetLike, rule_file_name: str, evaluation_interval: timedelta | None = None
) -> dict[str, Any] | None:
    """A promtool test file for an SLO's production subject; None when no alert can fire."""
    spec = declaration.spec
    subject = production_subject(declaration)
    step = evaluation_interval or evaluation_step(declaration, subject)
    scenarios = _scenarios(declaration, subject, step)
    if not scenarios:
        return None
    alerts = _firing_alerts(declaration, subject)
    windows = recorded_windows(fleet).get(declaration.name, ())
    tests = []
    for scenario in scenarios:
        input_step: timedelta | None = step
        if spec.sli.probe is not None:
            input_step = _probe_step(step, scenario, alerts, subject, max(windows, default=None))
        inputs = None
        if input_step is not None:
            schedule = _schedule(scenario, repeat=round(step / input_step))
            inputs = _raw_inputs(spec, subject, schedule)
        else:  # no probe step fits both bounds: feed the recorded ratios, as for hand-written queries
            input_step, schedule = step, _schedule(scenario)
        if inputs is None:
            label_sets = _input_label_sets(declaration, subject, fleet)
            inputs = _recorded_inputs(windows, input_step, label_sets, schedule)
        tests.append(
            {
                "name": f"{declaration.name}: {scenario.name}",
                "interval": format_duration(input_step),
                "input_series": inputs,
                "promql_expr_test": _scenario_checks(declaration, scenario, step, subject, alerts),
            }
        )
    return {
        "rule_files": [rule_file_name],
        "evaluation_interval": format_duration(step),
        "group_eval_order": [names.rule_group(declaration.name), names.budget_group(declaration.name)],
        "tests": tests,
    }


def _probe_step(
    step: timedelta, scenario: Scenario, alerts: list[BurnRateAlert], subject: Subject, longest: timedelta | None
) -> timedelta | None:
    """The input step of a probe scenario: fine enough to show its failure ratio, coarse enough for promtool.

    Failures are single 0 samples spaced 1/r apart, so a window of n samples holds floor(n·r) or
    ceil(n·r) of them wherever it ends. The alert fires when the window's ratio exceeds r / 1.5
    (`SLOW_BURN_MARGIN`); with n·r >= 2 even floor(n·r) / n does, so the short window of the alert
    the scenario asserts must hold `PROBE_FAILURES_PER_WINDOW` failures. (A 90d SLO's slow burn at
    99.95% is one failure in 222 samples: at 30 s a 1h30m window holds 180, and the alert flickers.)
    The longest window the rules read from the samples (`longest`, or the whole scenario if shorter)
    must hold fewer than `PROMTOOL_MAX_SAMPLES`, or promtool refuses to evaluate it.
    The step divides the evaluation step in whole seconds, so evaluations fall on samples; None when
    no step meets both bounds.
    """
    finest = PROBE_STEP
    firing = [a for a in alerts if a.detection_time(scenario.error_ratio, subject.objective) is not None]
    if scenario.error_ratio > scenario.history_ratio and firing:
        expected = min(firing, key=lambda a: a.detection_time(scenario.error_ratio, subject.objective) or step)
        finest = min(finest, expected.short_window * scenario.error_ratio / PROBE_FAILURES_PER_WINDOW)
    length = step * (scenario.history_steps + scenario.incident_steps)
    read = min(length, longest) if longest is not None else length
    seconds = int(step.total_seconds())
    fitting = [
        divisor
        for divisor in range(1, seconds + 1)
        if seconds % divisor == 0
        and divisor <= finest.total_seconds()
        and read / timedelta(seconds=divisor) < PROMTOOL_MAX_SAMPLES
    ]
    return timedelta(seconds=max(fitting)) if fitting else None


def _input_label_sets(declaration: Declaration, subject: Subject, fleet: FleetLike) -> list[dict[str, str]]:
    """Whose recorded ratios to feed: the components' for a composite, else the subject's own."""
    composite = declaration.spec.sli.composite
    if composite is None:
        return [subject.labels]
    return [labels for component in composite.components if (labels := component_labels(component, fleet))]
