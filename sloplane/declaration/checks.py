"""Checks beyond a single model's shape: references, stages, backends, and the lints.

pydantic has already proved each document well-formed. What remains needs positions (to point at
the exact field), the whole fleet (references between SLOs), or judgement (lints: legal but almost
certainly not what the author meant). Lints are warnings; `--strict` turns them into errors.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import date

from sloplane.core.durations import format_duration
from sloplane.declaration.datadog_limits import check_datadog
from sloplane.declaration.diagnostics import Diagnostic, Loc, Severity
from sloplane.declaration.model import BudgetingMethod, Lifecycle, Spec
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.policy import AnalysisProvider, TargetSystem
from sloplane.declaration.sli import SELECTOR_PLACEHOLDER, SLI, WINDOW_PLACEHOLDER, Backend, SLORef
from sloplane.declaration.validation import did_you_mean

RESERVED_ALERT_LABELS = frozenset(
    {
        "slo",
        "service",
        "severity",
        "stage",
        "team",
        "long_window",
        "short_window",
        "during_deployment",
        "tier",
    }
)
"""Labels sloplane sets on every alert; a declaration may not override them."""

TARGET_BACKEND: dict[TargetSystem, Backend] = {
    TargetSystem.PROMETHEUS: Backend.PROMETHEUS,
    TargetSystem.ALERTMANAGER: Backend.PROMETHEUS,
    TargetSystem.GRAFANA: Backend.PROMETHEUS,
    TargetSystem.DATADOG: Backend.DATADOG,
    TargetSystem.ARGO_ROLLOUTS: Backend.PROMETHEUS,
    TargetSystem.SPINNAKER: Backend.PROMETHEUS,
}
"""Targets that can only be rendered when the SLI can be read from a given backend."""


def _warning(slo: LoadedSLO, loc: Loc, message: str, code: str) -> Diagnostic:
    return slo.diagnostic(loc, message, severity=Severity.WARNING, code=code)


def _check_stages(slo: LoadedSLO) -> Iterator[Diagnostic]:
    spec = slo.declaration.spec
    seen: set[str] = set()
    production_marked = False
    for index, stage in enumerate(spec.stages):
        if stage.name in seen:
            yield slo.diagnostic(("spec", "stages", index, "name"), f"stage '{stage.name}' is declared twice")
        seen.add(stage.name)
        if stage.production:
            if production_marked:
                yield slo.diagnostic(("spec", "stages", index, "production"), "only one stage can be marked production")
            production_marked = True
    stage_lists: list[tuple[Loc, list[str]]] = []
    for kind in ("maintenance", "windows"):
        for index, window in enumerate(getattr(spec.exclusions, kind)):
            stage_lists.append((("spec", "exclusions", kind, index, "stages"), window.stages))
    for index, freeze in enumerate(spec.effective_gate.freezes):
        stage_lists.append((("spec", "gate", "freezes", index, "stages"), freeze.stages))
    for loc, names in stage_lists:
        for position, name in enumerate(names):
            if name not in seen:
                yield slo.diagnostic((*loc, position), _unknown_stage_message(name, slo.name, sorted(seen)))
    baseline = spec.effective_gate.attribution.baseline
    if baseline is not None and baseline not in seen:
        loc = ("spec", "gate", "attribution", "baseline")
        yield slo.diagnostic(loc, _unknown_stage_message(baseline, slo.name, sorted(seen)))


def _unknown_stage_message(stage: str, slo_name: str, known: list[str]) -> str:
    if not known:
        return f"stage '{stage}': SLO '{slo_name}' declares no stages"
    return f"unknown stage '{stage}' of SLO '{slo_name}'{did_you_mean(stage, known)}"


def _check_selector_placeholders(slo: LoadedSLO) -> Iterator[Diagnostic]:
    spec = slo.declaration.spec
    if not any(stage.selector for stage in spec.stages):
        return
    for path, query in spec.sli.handwritten_queries().items():
        if SELECTOR_PLACEHOLDER not in query:
            yield slo.diagnostic(
                ("spec", "sli", *path),
                f"stages add selector labels, but this query has no {SELECTOR_PLACEHOLDER} placeholder "
                "to put them in: every stage would measure the same traffic",
                code="stage-selector",
            )


def _check_alert_labels(slo: LoadedSLO) -> Iterator[Diagnostic]:
    for key in slo.declaration.spec.alerting.labels:
        if key in RESERVED_ALERT_LABELS:
            yield slo.diagnostic(
                ("spec", "alerting", "labels", key),
                f"label '{key}' is set by sloplane on every alert and cannot be overridden",
                key=True,
                code="reserved-label",
            )


ANALYSIS_BACKEND: dict[AnalysisProvider, Backend | None] = {
    AnalysisProvider.PROMETHEUS: Backend.PROMETHEUS,
    AnalysisProvider.DATADOG: None,
    AnalysisProvider.WEB: None,
}
"""What the Argo Rollouts target needs the SLI to be read from, by analysis provider: `web` asks the
evaluator, which reads either backend; `datadog` is checked at the provider's own line
(`_check_analysis_provider`), which says what Datadog counts are missing."""


def _check_targets(slo: LoadedSLO, backends: set[Backend]) -> Iterator[Diagnostic]:
    for index, target in enumerate(slo.declaration.spec.targets):
        needed = TARGET_BACKEND.get(target)
        if target is TargetSystem.ARGO_ROLLOUTS:
            needed = ANALYSIS_BACKEND[slo.declaration.spec.effective_gate.analysis.provider]
        if needed is not None and needed not in backends:
            yield slo.diagnostic(
                ("spec", "targets", index),
                f"target '{target.value}' needs a {needed.value} query, and this SLI has none "
                f"(it can be read from: {', '.join(sorted(b.value for b in backends)) or 'no backend'})",
                code="target-backend",
            )


def check_renderable(slos: Iterable[LoadedSLO], renderable: Collection[TargetSystem]) -> Iterator[Diagnostic]:
    """An error for each named target that no renderer serves: a target must render or be refused, never skipped.

    The renderers sit above the declaration, so their caller says which targets they serve
    (`render.targets.rendered_targets()`).
    """
    served = ", ".join(sorted(target.value for target in renderable))
    for slo in slos:
        for index, target in enumerate(slo.declaration.spec.targets):
            if target not in renderable:
                yield slo.diagnostic(
                    ("spec", "targets", index),
                    f"target '{target.value}' has no renderer in this sloplane yet, so nothing would be written "
                    f"for it (rendered: {served}); leave it out for now",
                    code="target-unrendered",
                )


DATADOG_COUNTS_HINT = {
    "ratio": "give a datadog query for both its errors (or good) and total",
    "latency": "give its `datadog` good (or errors) and total queries",
    "probe": "give its `datadog` good (or errors) and total queries",
    "raw": "a raw SLI has no event counts",
    "threshold": "a threshold SLI has no event counts",
    "composite": "a composite is combined from its parts by the evaluator",
    "deployment": "deployment SLIs are read from Prometheus",
}
"""Why an SLI kind has no Datadog event counts, and what would give it some."""


def _datadog_event_counts(sli: SLI) -> bool:
    """Whether the SLI counts events in Datadog: the SLIs `semantics.datadog.datadog_queries` can print.

    Raw and threshold SLIs may have a Datadog query, but not counts a burn rate is computed from.
    """
    return Backend.DATADOG in sli.backends() and sli.raw is None and sli.threshold is None


def _check_analysis_provider(slo: LoadedSLO) -> Iterator[Diagnostic]:
    """What Argo's datadog provider cannot compute: burn rates without event counts, timeslice budgets.

    Errors rather than a guess, at the provider's line, since the analysis would otherwise not render;
    counted stages only lose precision (the production stage reads its own traffic), so a warning.
    """
    spec = slo.declaration.spec
    if spec.effective_gate.analysis.provider is not AnalysisProvider.DATADOG:
        return
    loc: Loc = ("spec", "gate", "analysis", "provider")
    if not _datadog_event_counts(spec.sli):
        hint = DATADOG_COUNTS_HINT.get(spec.sli.kind, "no Datadog form")
        yield slo.diagnostic(
            loc,
            f"the datadog analysis provider computes burn rates from Datadog event counts, and this "
            f"{spec.sli.kind} SLI has none ({hint}); use prometheus or web instead",
            code="analysis-provider",
        )
    if spec.budgeting_method is BudgetingMethod.TIMESLICES:
        yield slo.diagnostic(
            loc,
            "the datadog analysis provider computes the budget from event counts, and this SLO budgets time "
            "slices (kept by sloplane's rules and evaluator only); use prometheus or web instead",
            code="analysis-provider",
        )
    for index, stage in enumerate(spec.stages):
        if stage.counts_toward_production:
            yield _warning(
                slo,
                ("spec", "stages", index, "countsTowardProduction"),
                "Argo's datadog analysis of the production stage reads that stage's traffic only: this stage's "
                "events count toward production's budget in sloplane's rules and evaluator, not in that analysis",
                "lint/datadog-analysis-stages",
            )


def _lint_queries(slo: LoadedSLO) -> Iterator[Diagnostic]:
    sli = slo.declaration.spec.sli
    windowed_kinds = ("ratio", "raw")
    for path, query in sli.handwritten_queries().items():
        if path[0] in windowed_kinds and path[-1] == Backend.PROMETHEUS.value and WINDOW_PLACEHOLDER not in query:
            yield _warning(
                slo,
                ("spec", "sli", *path),
                f"query has no {WINDOW_PLACEHOLDER} placeholder: every alert window would measure the same range",
                "lint/no-window",
            )
    if sli.ratio is not None:
        part = "errors" if sli.ratio.errors is not None else "good"
        for backend in Backend:
            numerator = sli.ratio.numerator.for_backend(backend)
            if numerator is not None and numerator == sli.ratio.total.for_backend(backend):
                outcome = "100% errors" if part == "errors" else "no errors, ever"
                yield _warning(
                    slo,
                    ("spec", "sli", "ratio", part, backend.value),
                    f"the {part} query equals the total query: the SLI would always read {outcome}",
                    "lint/same-query",
                )


def _objectives(spec: Spec) -> Iterator[tuple[Loc, float]]:
    yield ("spec", "objective"), spec.objective
    for index, stage in enumerate(spec.stages):
        if stage.objective is not None:
            yield ("spec", "stages", index, "objective"), stage.objective


def _lint_unreachable_tiers(slo: LoadedSLO) -> Iterator[Diagnostic]:
    spec = slo.declaration.spec
    tiers = set(spec.alerting.enabled_tiers())
    alerts = [alert for alert in spec.burn_rate_alerts() if alert.tier in tiers]
    for loc, objective in _objectives(spec):
        for alert in alerts:
            if not alert.can_fire(objective):
                threshold = alert.error_ratio_threshold(objective)
                yield _warning(
                    slo,
                    loc,
                    f"objective {objective:g}% leaves a {100 - objective:g}% budget: the {alert.tier.value} "
                    f"alert {alert.name} (burn rate {alert.factor:g}x) would need an error ratio of "
                    f"{threshold:.0%} and can never fire; raise the objective or switch the tier off",
                    "lint/unreachable-tier",
                )


def _lint_interval(slo: LoadedSLO) -> Iterator[Diagnostic]:
    spec = slo.declaration.spec
    shortest = min(alert.short_window for alert in spec.burn_rate_alerts())
    if spec.interval > shortest:
        yield _warning(
            slo,
            ("spec", "interval"),
            f"interval {format_duration(spec.interval)} is longer than the shortest alert window "
            f"({format_duration(shortest)}): fast burns would be seen late or not at all",
            "lint/interval",
        )


def _lint_rate_events(slo: LoadedSLO) -> Iterator[Diagnostic]:
    spec = slo.declaration.spec
    if spec.sli.ratio is None or spec.effective_gate.min_events <= 0:
        return
    for path, query in spec.sli.handwritten_queries().items():
        if path[-1] == Backend.PROMETHEUS.value and "rate(" in query and "increase(" not in query:
            yield _warning(
                slo,
                ("spec", "sli", *path),
                "gate.minEvents counts events, but this query is a rate (per second): use increase() so that "
                "the evaluator reads event counts",
                "lint/rate-events",
            )


def _lint_routing(slo: LoadedSLO) -> Iterator[Diagnostic]:
    alerting = slo.declaration.spec.alerting
    if alerting.routing.deployment is not None and alerting.deployment_signal is None:
        yield _warning(
            slo,
            ("spec", "alerting", "routing", "deployment"),
            "a receiver for deployment-related breaches needs 'deploymentSignal' (PromQL > 0 while a rollout "
            "runs): without it no alert is known to be deployment-related and this route never matches",
            "lint/deployment-routing",
        )


def _lint_review(slo: LoadedSLO, today: date) -> Iterator[Diagnostic]:
    due = slo.declaration.spec.review.next
    if due is not None and due < today:
        yield _warning(
            slo,
            ("spec", "review", "next"),
            f"review was due on {due.isoformat()} ({(today - due).days} days ago): "
            "reassess the target with its owners and record it in history",
            "lint/review-overdue",
        )


def _references(slo: LoadedSLO) -> Iterator[tuple[Loc, SLORef, str]]:
    spec = slo.declaration.spec
    if spec.sli.composite is not None:
        for index, component in enumerate(spec.sli.composite.components):
            yield ("spec", "sli", "composite", "components", index), component, "composite component"
    if spec.gate is not None:
        for index, dependency in enumerate(spec.gate.dependencies):
            yield ("spec", "gate", "dependencies", index), dependency, "dependency"


def _check_references(slo: LoadedSLO, by_name: dict[str, LoadedSLO], declared: Collection[str]) -> Iterator[Diagnostic]:
    for loc, ref, role in _references(slo):
        if ref.slo == slo.name:
            yield slo.diagnostic((*loc, "slo"), f"{role} refers to this SLO itself", code="self-reference")
            continue
        target = by_name.get(ref.slo)
        if target is None:
            if ref.slo not in declared:
                hint = did_you_mean(ref.slo, sorted(declared))
                yield slo.diagnostic(
                    (*loc, "slo"), f"{role} refers to unknown SLO '{ref.slo}'{hint}", code="unknown-ref"
                )
            continue
        if ref.stage is not None and target.declaration.spec.stage(ref.stage) is None:
            known = sorted(stage.name for stage in target.declaration.spec.stages)
            yield slo.diagnostic((*loc, "stage"), _unknown_stage_message(ref.stage, ref.slo, known), code="unknown-ref")
        if target.declaration.spec.lifecycle is not Lifecycle.ACTIVE:
            yield _warning(
                slo,
                (*loc, "slo"),
                f"{role} '{ref.slo}' is {target.declaration.spec.lifecycle.value}",
                "lint/inactive-ref",
            )


def _check_duplicates(slos: list[LoadedSLO]) -> Iterator[Diagnostic]:
    first: dict[str, LoadedSLO] = {}
    for slo in slos:
        earlier = first.get(slo.name)
        if earlier is None:
            first[slo.name] = slo
            continue
        where = earlier.source.position(("metadata", "name"))
        yield slo.diagnostic(
            ("metadata", "name"),
            f"duplicate SLO name '{slo.name}' (first declared at {earlier.source.path}:{where.line})",
            code="duplicate-name",
        )


def _composite_cycles(by_name: dict[str, LoadedSLO]) -> Iterator[Diagnostic]:
    """Composites that (indirectly) contain themselves: their ratio could never be computed."""
    graph: dict[str, list[str]] = {}
    for name, slo in by_name.items():
        composite = slo.declaration.spec.sli.composite
        graph[name] = [c.slo for c in composite.components if c.slo in by_name] if composite else []
    state: dict[str, bool] = {}  # False while on the current path, True when finished
    path: list[str] = []

    def visit(name: str) -> Iterator[Diagnostic]:
        state[name] = False
        path.append(name)
        for part in graph[name]:
            if state.get(part) is False:
                cycle = [*path[path.index(part) :], part]
                yield by_name[part].diagnostic(
                    ("spec", "sli", "composite", "components"),
                    f"composite SLOs form a cycle: {' -> '.join(cycle)}",
                    code="cycle",
                )
            elif part not in state:
                yield from visit(part)
        path.pop()
        state[name] = True

    for name in sorted(graph):
        if name not in state:
            yield from visit(name)


def _resolved_backends(slo: LoadedSLO, by_name: dict[str, LoadedSLO], visiting: frozenset[str]) -> set[Backend]:
    """Backends an SLI can be read from; a composite's are those all its parts share."""
    composite = slo.declaration.spec.sli.composite
    if composite is None:
        return slo.declaration.spec.sli.backends()
    shared = set(Backend)
    for component in composite.components:
        part = by_name.get(component.slo)
        if part is None or component.slo in visiting:
            continue
        shared &= _resolved_backends(part, by_name, visiting | {slo.name})
    return shared


def run_checks(slos: list[LoadedSLO], *, today: date, declared: Collection[str] = ()) -> list[Diagnostic]:
    """Every check and lint over a fleet of valid declarations.

    `declared` names SLOs that exist but failed validation, so references to them are not reported
    a second time as unknown.
    """
    diagnostics = list(_check_duplicates(slos))
    by_name: dict[str, LoadedSLO] = {}
    for slo in slos:
        by_name.setdefault(slo.name, slo)
    known = set(by_name) | set(declared)
    for slo in slos:
        for check in (
            _check_stages,
            _check_selector_placeholders,
            _check_alert_labels,
            _check_analysis_provider,
            _lint_queries,
            _lint_unreachable_tiers,
            _lint_interval,
            _lint_routing,
            _lint_rate_events,
            check_datadog,
        ):
            diagnostics.extend(check(slo))
        diagnostics.extend(_lint_review(slo, today))
        diagnostics.extend(_check_references(slo, by_name, known))
        diagnostics.extend(_check_targets(slo, _resolved_backends(slo, by_name, frozenset())))
    diagnostics.extend(_composite_cycles(by_name))
    return diagnostics
