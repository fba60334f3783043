"""Prometheus recording rules and multiwindow, multi-burn-rate alerts for one SLO.

Per subject (the SLO, or each stage) and per window the alerts read, the error ratio; for the
shortest window also the bad and all event counts. Longer windows are computed from the raw series,
not averaged from short ones, so every window is exact. The period ratio is then a true ratio of events: the sum of
the shortest window's bad-event counts over the period divided by the sum of its event counts.
Zero traffic makes a short window's ratio NaN, but never a count, so one quiet minute cannot poison
a month; ratios are filtered with `>= 0`, which drops NaN.

Cost: window rules read raw series once per evaluation, so their cost grows with the window's
length (the 3d window dominates). The period rules read one recorded series each, and
`sum_over_time` over the period touches period / interval samples (43,200 for 30d at 1m) per
subject per evaluation: linear in the period. They live in a separate group so that Prometheus
evaluates them concurrently with, and independently of, the alerting group.

Composites combine their components' recorded ratios (weighted mean, or the worst); each component
records whatever windows the composites above it need.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sloplane.core import names
from sloplane.core.budget import BurnRateAlert, error_budget
from sloplane.core.durations import format_duration, human_duration
from sloplane.core.templating import cached_line
from sloplane.declaration.model import BudgetingMethod, Declaration, Lifecycle, Spec
from sloplane.declaration.policy import TargetSystem
from sloplane.declaration.sli import CompositeMethod, CompositeSLI
from sloplane.render import kubernetes
from sloplane.render.options import BundleOptions, RenderOptions
from sloplane.render.promtool import promtool_test_file
from sloplane.render.registry import Child, Document, Renderer
from sloplane.semantics.promql import promql_matchers
from sloplane.semantics.recording import own_windows, recorded_windows, subject_reads
from sloplane.semantics.subjects import FleetLike, Subject, component_labels, subjects

Rule = dict[str, Any]


def _number(value: float) -> str:
    """Shortest exact text for a number in PromQL: 0.0144, 14.4, 300, 1e-05."""
    rounded = round(float(value), 12)
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


def _selector(series: str, labels: dict[str, str]) -> str:
    return f"{series}{promql_matchers(labels)}"


def _record(series: str, expr: str, labels: dict[str, str]) -> Rule:
    return {"record": series, "expr": expr, "labels": dict(labels)}


def _window_rules(
    declaration: Declaration, subject: Subject, windows: Iterable[timedelta], fleet: FleetLike
) -> list[Rule]:
    """The error ratio for each window of one subject, and event counts for the base window.

    Only the base (shortest) window's counts are recorded: they are what the period ratio and the
    period's event total add up. Every other window's ratio is one expression over the raw series.
    """
    spec = declaration.spec
    labels = subject.labels
    rules: list[Rule] = []
    if spec.sli.composite is not None:
        for window in windows:
            expr = _combined(spec.sli.composite, names.windowed(names.ERROR_RATIO, window), fleet)
            rules.append(_record(names.windowed(names.ERROR_RATIO, window), expr, labels))
        return rules
    queries = subject_reads(declaration, subject, fleet).indicator.queries
    if queries is None:
        return rules
    base = min(windows)
    for window in windows:
        bad_events, events, ratio = queries.at(window).single_series()
        ratio_series = names.windowed(names.ERROR_RATIO, window)
        if bad_events is not None and events is not None and window == base:
            # counts of the base window build the period ratio and event totals
            bad, counted = names.windowed(names.BAD_EVENTS, window), names.windowed(names.EVENTS, window)
            rules.append(_record(bad, bad_events, labels))
            rules.append(_record(counted, events, labels))
            ratio = f"({_selector(bad, labels)} / {_selector(counted, labels)}) >= 0"
        rules.append(_record(ratio_series, ratio, labels))
    return rules


def _combined(composite: CompositeSLI, series: str, fleet: FleetLike) -> str:
    """A composite's ratio from its parts' recorded `series`: the worst of them, or their weighted mean."""
    parts = [(c.weight, _selector(series, p)) for c in composite.components if (p := component_labels(c, fleet))]
    if composite.method is CompositeMethod.WORST_OF:
        return "max(" + " or ".join(selected for _, selected in parts) + ")"
    weighted = " + ".join(f"{_number(weight)} * sum({selected})" for weight, selected in parts)
    return f"({weighted}) / {_number(sum(weight for weight, _ in parts))}"


def _period_ratio(declaration: Declaration, subject: Subject, base: timedelta, fleet: FleetLike) -> str:
    spec = declaration.spec
    labels = subject.labels
    period = format_duration(spec.window.period)
    if spec.budgeting_method is BudgetingMethod.TIMESLICES and spec.timeslice is not None:
        slices = _selector(names.windowed(names.BAD_SLICES, spec.timeslice.window), labels)
        return f"avg_over_time({slices}[{period}])"
    if spec.sli.composite is not None:
        return _combined(spec.sli.composite, names.ERROR_RATIO_PERIOD, fleet)
    queries = subject_reads(declaration, subject, fleet).indicator.queries
    if queries is not None and queries.errors is not None:
        bad = _selector(names.windowed(names.BAD_EVENTS, base), labels)
        events = _selector(names.windowed(names.EVENTS, base), labels)
        return f"(sum_over_time({bad}[{period}]) / sum_over_time({events}[{period}])) >= 0"
    return f"avg_over_time({_selector(names.windowed(names.ERROR_RATIO, base), labels)}[{period}])"


def _slice_rule(spec: Spec, subject: Subject) -> Rule:
    """One sample per time slice: 1 when the slice's error ratio broke its target, else 0.

    `time() % slice < interval` holds at exactly one evaluation per slice, so the period ratio is an
    average over slices without a subquery re-evaluating the whole period every time.
    """
    assert spec.timeslice is not None
    window = spec.timeslice.window
    ratio = _selector(names.windowed(names.ERROR_RATIO, window), subject.labels)
    bad_above = _number(1 - spec.timeslice.target / 100)
    slot = f"vector(time() % {_number(window.total_seconds())}) < {_number(spec.interval.total_seconds())}"
    return _record(
        names.windowed(names.BAD_SLICES, window), f"({ratio} > bool {bad_above}) and on() ({slot})", subject.labels
    )


def _budget_rules(declaration: Declaration, subject: Subject, base: timedelta, fleet: FleetLike) -> list[Rule]:
    """Period ratio, events, objective, budget, budget remaining, burn rates and the info series."""
    spec = declaration.spec
    labels = subject.labels
    budget = _number(error_budget(subject.objective))
    period_ratio = _selector(names.ERROR_RATIO_PERIOD, labels)
    rules: list[Rule] = []
    if spec.budgeting_method is BudgetingMethod.TIMESLICES and spec.timeslice is not None:
        rules.append(_slice_rule(spec, subject))
    rules.append(_record(names.ERROR_RATIO_PERIOD, _period_ratio(declaration, subject, base, fleet), labels))
    queries = subject_reads(declaration, subject, fleet).indicator.queries
    if spec.sli.composite is None and queries is not None and queries.total is not None:
        overlap = _number(spec.interval / base)
        events = _selector(names.windowed(names.EVENTS, base), labels)
        period = format_duration(spec.window.period)
        rules.append(_record(names.EVENTS_PERIOD, f"sum_over_time({events}[{period}]) * {overlap}", labels))
    info_labels = {
        **labels,
        "team": spec.owners.team,
        "tier": spec.tier.value,
        "objective": f"{subject.objective:g}",
        "period": format_duration(spec.window.period),
        "sli": spec.sli.kind,
        "lifecycle": spec.lifecycle.value,
    }
    rules += [
        _record(names.OBJECTIVE, f"vector({_number(subject.objective / 100)})", labels),
        _record(names.ERROR_BUDGET, f"vector({budget})", labels),
        _record(names.BUDGET_REMAINING, f"1 - {period_ratio} / {budget}", labels),
        _record(
            names.BURN_RATE_CURRENT, f"{_selector(names.windowed(names.ERROR_RATIO, base), labels)} / {budget}", labels
        ),
        _record(names.BURN_RATE_PERIOD, f"{period_ratio} / {budget}", labels),
        _record(names.INFO, "vector(1)", info_labels),
    ]
    return rules


def dashboard_url(slo: str, options: RenderOptions, stage: str | None = None) -> str:
    """Link to an SLO's dashboard, on the stage when there is one."""
    url = f"{options.grafana_url.rstrip('/')}/d/{names.dashboard_uid(slo)}/{slo}"
    return f"{url}?var-stage={stage}" if stage else url


SUMMARY_TEMPLATE = "alerts/burn-rate-summary.txt"
DESCRIPTION_TEMPLATE = "alerts/burn-rate-description.txt"
"""Alert prose is a template (`sloplane/templates/alerts/`): reviewed as the sentence a page shows."""


def _alert_annotations(
    declaration: Declaration, subject: Subject, alert: BurnRateAlert, options: RenderOptions
) -> dict[str, str]:
    spec = declaration.spec
    factor = f"{alert.factor:g}"
    where = f"{subject.slo}" + (f" [{subject.stage}]" if subject.stage else "")
    summary = cached_line(SUMMARY_TEMPLATE, where=where, factor=factor, windows=alert.name, tier=alert.tier.value)
    description = cached_line(
        DESCRIPTION_TEMPLATE,
        objective=f"{subject.objective:g}",
        window=spec.window.describe(),
        outage_allowed=human_duration(spec.window.period * error_budget(subject.objective)),
        long_window=format_duration(alert.long_window),
        threshold=f"{alert.error_ratio_threshold(subject.objective) * 100:.4g}",
        factor=factor,
        budget_share=f"{alert.budget_share:.0%}",
        exhaustion=human_duration(spec.window.period / alert.factor),
    )
    annotations = {
        "summary": summary,
        "description": description,
        "dashboard": dashboard_url(subject.slo, options, subject.stage),
    }
    if spec.alerting.runbook:
        annotations["runbook_url"] = spec.alerting.runbook
    annotations.update(spec.alerting.annotations)
    annotations.update(spec.alerting.tier_alert(alert.tier).annotations)
    return annotations


def _alert_rules(declaration: Declaration, subject: Subject, options: RenderOptions) -> list[Rule]:
    """One alert per enabled window pair (two when a deployment signal splits it by cause)."""
    spec = declaration.spec
    tiers = set(spec.alerting.enabled_tiers())
    signal = spec.alerting.deployment_signal
    rules: list[Rule] = []
    for alert in spec.burn_rate_alerts():
        if alert.tier not in tiers or not alert.can_fire(subject.objective):
            continue
        threshold = _number(alert.error_ratio_threshold(subject.objective))
        long_ratio = _selector(names.windowed(names.ERROR_RATIO, alert.long_window), subject.labels)
        short_ratio = _selector(names.windowed(names.ERROR_RATIO, alert.short_window), subject.labels)
        expr = f"{long_ratio} > {threshold} and {short_ratio} > {threshold}"
        labels = {
            **spec.alerting.labels,
            **subject.labels,
            "severity": alert.tier.value,
            "team": spec.owners.team,
            "long_window": format_duration(alert.long_window),
            "short_window": format_duration(alert.short_window),
            **spec.alerting.tier_alert(alert.tier).labels,
        }
        rule: Rule = {"alert": spec.alerting.alert_name(alert.tier, names.ALERT), "expr": expr}
        if alert.pending:
            rule["for"] = format_duration(alert.pending)
        rule |= {"labels": labels, "annotations": _alert_annotations(declaration, subject, alert, options)}
        if signal is None:
            rules.append(rule)
            continue
        rollout = f"on() (({signal}) > 0)"
        during = {**labels, "during_deployment": "true"}
        outside = {**labels, "during_deployment": "false"}
        rules.append(rule | {"expr": f"({expr}) and {rollout}", "labels": during})
        rules.append(rule | {"expr": f"({expr}) unless {rollout}", "labels": outside})
    return rules


def rule_groups(
    declaration: Declaration, fleet: FleetLike, options: RenderOptions | None = None
) -> list[dict[str, Any]]:
    """The rule groups for one SLO: window recordings with alerts, then period and budget series.

    Archived SLOs render nothing; everything else renders, deprecated ones included.
    """
    if declaration.spec.lifecycle is Lifecycle.ARCHIVED:
        return []
    options = options or RenderOptions()
    windows = recorded_windows(fleet).get(declaration.name) or tuple(sorted(own_windows(declaration)))
    base = min(windows)
    interval = format_duration(declaration.spec.interval)
    window_rules: list[Rule] = []
    alert_rules: list[Rule] = []
    budget_rules: list[Rule] = []
    for subject in subjects(declaration):
        window_rules += _window_rules(declaration, subject, windows, fleet)
        alert_rules += _alert_rules(declaration, subject, options)
        budget_rules += _budget_rules(declaration, subject, base, fleet)
    return [
        {"name": names.rule_group(declaration.name), "interval": interval, "rules": window_rules + alert_rules},
        {"name": names.budget_group(declaration.name), "interval": interval, "rules": budget_rules},
    ]


def rule_file(declaration: Declaration, fleet: FleetLike, options: RenderOptions | None = None) -> dict[str, Any]:
    """A Prometheus rule file (`groups:`) for one SLO."""
    return {"groups": rule_groups(declaration, fleet, options)}


def _documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    """The rule file, its promtool tests, and the same rules as a PrometheusRule (with a Probe for probe SLIs)."""
    name = declaration.name
    rules = rule_file(declaration, fleet, options.render)
    documents: dict[str, Document] = {f"prometheus/{name}.rules.yaml": ("yaml", rules)}
    test = promtool_test_file(declaration, fleet, f"{name}.rules.yaml")
    if test is not None:
        documents[f"prometheus/{name}.test.yaml"] = ("yaml", test)
    objects = [child.object for child in _children(declaration, fleet, options, rules)]
    documents[f"kubernetes/{name}.prometheusrule.yaml"] = ("yaml-documents", objects)
    return documents


def _children(
    declaration: Declaration, fleet: FleetLike, options: BundleOptions, rules: dict[str, Any] | None = None
) -> list[Child]:
    """The PrometheusRule (and the Probe of a probe SLI) that a Pulumi component registers."""
    rules = rules if rules is not None else rule_file(declaration, fleet, options.render)
    rule = kubernetes.prometheus_rule(declaration, rules, options.kubernetes)
    children = [Child("prometheusRule", "rules", "custom-resource", rule)]
    probe = kubernetes.probe(declaration, options.kubernetes)
    if probe is not None:
        children.append(Child("probe", "probe", "custom-resource", probe))
    return children


RENDERER = Renderer(
    TargetSystem.PROMETHEUS,
    folders=("prometheus", "kubernetes"),
    slo_documents=_documents,
    child_keys=("prometheusRule", "probe"),
    slo_children=_children,
)
