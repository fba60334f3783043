"""The evaluator as a service: resolve a request, measure, decide, record.

Every request is answered with a decision and every decision is recorded, including the ones that
could not be made (unknown SLO, backend down): an audit trail with gaps is not one. "Now" is the
current time rounded down to the fleet's evaluation interval, so that concurrent gate calls read
the same instant and share cached answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sloplane.core.budget import error_budget
from sloplane.core.instants import RANGE_TEXT, in_range
from sloplane.core.serialize import canonical_json
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.validation import did_you_mean
from sloplane.declaration.writer import declaration_data
from sloplane.evaluator.contracts import DecisionLog, ReleaseControlsView
from sloplane.evaluator.deciding.attribution import IntervalReader, attribution_window, baseline_stage, compare
from sloplane.evaluator.deciding.deployments import BurnSplit, burn_split, deployment_windows
from sloplane.evaluator.deciding.pipeline import DecisionPipeline, GateContext, Related
from sloplane.evaluator.measuring.backends.base import BackendError, MetricsBackend, NoPrometheus, Sample
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts
from sloplane.evaluator.measuring.cache import TTLCache
from sloplane.evaluator.measuring.health import BackendHealth, HealthRecordingBackend
from sloplane.evaluator.measuring.measure import DeclaredSubject, Measurer
from sloplane.evaluator.model import Decision, GateRequest, GateResult, Measurement, Outcome, Reason, ShadowDecision
from sloplane.evaluator.storage.assessments import AssessmentReader, Coverage, coverage
from sloplane.semantics.subjects import Fleet, Subject, production_subject, subjects

logger = logging.getLogger(__name__)

QUERY_CACHE_ENTRIES = 100_000
"""Answers kept per interval: a gate for one SLO asks about 20 narrow queries, so a fleet of a few
thousand SLOs gated within one interval still fits."""
MEASUREMENT_CACHE_ENTRIES = 50_000
"""Measurements kept per interval (one per subject and instant)."""

Clock = Callable[[], datetime]
ControlsState = tuple[list[Any], list[Any], str | None]
"""Freezes and major incidents covering a service, and why they could not be read (if so)."""
DecisionHook = Callable[[Decision], None]


def utc_now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def policy_version(declaration: Declaration) -> str:
    """A short hash of the declaration: decisions say which version of the rules they applied."""
    text = canonical_json(declaration_data(declaration))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def align(moment: datetime, interval: timedelta) -> datetime:
    """`moment` rounded down to a multiple of `interval` since the epoch."""
    seconds = interval.total_seconds()
    return datetime.fromtimestamp(moment.timestamp() // seconds * seconds, UTC)


def _subject_named(declaration: Declaration, stage: str | None) -> Subject | None:
    """The named stage's subject, or the production one when no stage is named."""
    if stage is None:
        return production_subject(declaration)
    return next((s for s in subjects(declaration) if s.stage == stage), None)


class Evaluator:
    """Measures and decides for one fleet against its backends (Prometheus, Datadog or both; each SLO is
    read from the one its SLI names), recording every decision."""

    def __init__(
        self,
        fleet: Fleet,
        backend: MetricsBackend | None,
        log: DecisionLog,
        *,
        datadog: DatadogCounts | None = None,
        staleness: timedelta = timedelta(minutes=5),
        pipeline: DecisionPipeline | None = None,
        clock: Clock = utc_now,
        on_cache_lookup: Callable[[bool], None] | None = None,
        on_decision: DecisionHook | None = None,
        controls: ReleaseControlsView | None = None,
        assessments: AssessmentReader | None = None,
    ) -> None:
        self.fleet = fleet
        self.assessments = assessments
        """Impact assessments, read for the SLOs whose policy requires one (`gate.requireAssessment`)."""
        self.health = BackendHealth()
        reads = backend or NoPrometheus(datadog.healthy if datadog is not None else None)
        self.backend = HealthRecordingBackend(reads, self.health)
        """The backend, recording every outcome: readiness reads that state and never asks itself."""
        self.log = log
        self.pipeline = pipeline or DecisionPipeline()
        self.clock = clock
        self.interval = min((d.spec.interval for d in fleet.values()), default=timedelta(minutes=1))
        ttl = self.interval.total_seconds()
        cache: TTLCache[list[Sample]] = TTLCache(ttl, max_entries=QUERY_CACHE_ENTRIES)
        measurements: TTLCache[Measurement] = TTLCache(
            ttl, max_entries=MEASUREMENT_CACHE_ENTRIES, on_lookup=on_cache_lookup
        )
        self.measurer = Measurer(
            fleet,
            self.backend,
            cache=cache,
            measurements=measurements,
            staleness=staleness,
            datadog=datadog,
            prometheus=backend is not None,
        )
        self._on_decision = on_decision
        self.controls = controls
        self.intervals = IntervalReader(self.backend, ttl)
        self._by_service: dict[str, list[Declaration]] = {}
        for declaration in fleet.values():
            self._by_service.setdefault(declaration.spec.service, []).append(declaration)
        self._versions: dict[str, str] = {}
        """Each SLO's policy version, hashed on first use: `evaluate` never needs one (20 ms at 1,000 SLOs)."""
        self._lock = threading.Lock()

    def _version(self, declaration: Declaration) -> str:
        """The declaration's policy version (a dict write is atomic: two threads at worst hash it twice)."""
        found = self._versions.get(declaration.name)
        if found is None:
            found = self._versions[declaration.name] = policy_version(declaration)
        return found

    # -- measuring ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The evaluation instant for "now": the clock rounded down to the evaluation interval."""
        return align(self.clock(), self.interval)

    def active(self) -> list[Declaration]:
        """Declarations that are evaluated: all but archived ones."""
        return [d for d in self.fleet.values() if d.spec.lifecycle is not Lifecycle.ARCHIVED]

    def evaluate(self, at: datetime | None = None, names: Sequence[str] | None = None) -> list[Measurement]:
        """Measurements of every subject of the named (or all active) SLOs at one instant."""
        chosen = [self.fleet[name] for name in names] if names is not None else self.active()
        targets = [target for declaration in chosen for target in self.measurer.declared_subjects(declaration)]
        found = self.measurer.measure(targets, at or self.now())
        return [found[target.key] for target in targets]

    # -- deciding -------------------------------------------------------------------------------

    def _resolve(self, request: GateRequest) -> tuple[list[DeclaredSubject], list[Reason]]:
        """The subjects a request is about, or the reasons it names none."""
        if request.slo is not None:
            declaration = self.fleet.get(request.slo)
            if declaration is None:
                hint = did_you_mean(request.slo, sorted(self.fleet))
                return [], [Reason("unknown-slo", f"unknown SLO '{request.slo}'{hint}", {"slo": request.slo})]
            chosen = [declaration]
        elif request.service is not None:
            chosen = [d for d in self.active() if d.spec.service == request.service]
            if not chosen:
                services = sorted({d.spec.service for d in self.active()})
                hint = did_you_mean(request.service, services)
                return [], [Reason("unknown-service", f"no SLOs for service '{request.service}'{hint}", {})]
        else:
            return [], [Reason("no-subject", "the request names neither an SLO nor a service", {})]
        targets: list[DeclaredSubject] = []
        problems: list[Reason] = []
        for declaration in chosen:
            subject_list = subjects(declaration)
            if request.stage is None:
                picked = [s for s in subject_list if s.production]
            else:
                picked = [s for s in subject_list if s.stage == request.stage]
                if not picked and declaration.spec.stages:
                    known = sorted(s.stage for s in subject_list if s.stage)
                    hint = did_you_mean(request.stage, known)
                    problems.append(
                        Reason("unknown-stage", f"SLO '{declaration.name}' has no stage '{request.stage}'{hint}", {})
                    )
                    continue
                if not picked:
                    picked = subject_list  # unstaged SLOs gate every stage with their one objective
            targets += [DeclaredSubject(declaration, subject) for subject in picked]
        return targets, problems

    def _error_decision(self, request: GateRequest, reasons: list[Reason]) -> Decision:
        return Decision(
            id=uuid.uuid4().hex,
            decided_at=self.clock(),
            request=request,
            slo=request.slo or f"service:{request.service}",
            stage=request.stage,
            outcome=Outcome.ERROR,
            reasons=tuple(reasons),
            measurement=None,
            policy={},
            policy_version="",
            service=request.service,
        )

    # -- what else a decision looks at ----------------------------------------------------------

    def related(self, target: DeclaredSubject) -> list[tuple[str, DeclaredSubject]]:
        """Subjects measured alongside a target: its baseline stage, its dependencies, its service's other SLOs."""
        declaration = target.declaration
        policy = declaration.spec.effective_gate
        found: list[tuple[str, DeclaredSubject]] = []
        baseline = baseline_stage(declaration, target.subject.stage)
        if baseline is not None:
            subject = next(s for s in subjects(declaration) if s.stage == baseline.name)
            found.append(("baseline", DeclaredSubject(declaration, subject)))
        for reference in policy.dependencies:
            depended = self.fleet.get(reference.slo)
            if depended is None:
                continue
            picked = _subject_named(depended, reference.stage)
            if picked is not None:
                found.append(("dependency", DeclaredSubject(depended, picked)))
        if policy.freeze_on_budget_exhausted:
            for sibling in self._by_service.get(declaration.spec.service, []):
                if sibling.name != declaration.name and sibling.spec.lifecycle is not Lifecycle.ARCHIVED:
                    found.append(("sibling", DeclaredSubject(sibling, production_subject(sibling))))
        return found

    def _compare(self, target: DeclaredSubject, at: datetime) -> tuple[Any, str | None]:
        """The canary comparison for a staged target (None without a baseline), or why it failed."""
        declaration = target.declaration
        stage_name = target.subject.stage
        baseline = baseline_stage(declaration, stage_name)
        canary = declaration.spec.stage(stage_name) if stage_name is not None else None
        if baseline is None or canary is None:
            return None, None
        policy = declaration.spec.effective_gate
        window, step = attribution_window(policy, declaration.spec.interval)
        try:
            canary_intervals = self.intervals.read(declaration, canary, at, window=window, step=step)
            baseline_intervals = self.intervals.read(declaration, baseline, at, window=window, step=step)
        except BackendError as error:
            return None, str(error)
        if canary_intervals is None or baseline_intervals is None:
            return None, None
        budget = error_budget(target.subject.objective)
        comparison = compare(
            canary_intervals, baseline_intervals, budget=budget, policy=policy.attribution, window=window, step=step
        )
        return comparison, None

    def _controls(self, service: str, at: datetime) -> ControlsState:
        """Freezes and open major incidents covering the service at `at`, or why they could not be read.

        An incident that names services freezes those; one that names none (a war room, the house on
        fire) freezes every release.
        """
        if self.controls is None:
            return [], [], None
        try:
            incidents = [i for i in self.controls.open_major_incidents(at) if i.covers(service)]
            return list(self.controls.active_freezes(service, at)), incidents, None
        except Exception as error:  # any storage failure: the freeze guard fails closed and says why
            return [], [], f"{type(error).__name__}: {error}"

    def _assessment(self, declaration: Declaration, request: GateRequest) -> tuple[Coverage | None, str | None]:
        """Whether the request's assessment covers a release of the SLO's service now, read only when its policy (or
        its shadow's) requires one; or that the store could not be read — in words that name no database: the
        reason reaches the caller and the log, the details go to the evaluator's log. At the real instant, as
        freezes are."""
        shadowed = declaration.spec.shadowed()
        asking = [declaration.spec, *([] if shadowed is None else [shadowed])]
        if self.assessments is None or all(spec.effective_gate.require_assessment is None for spec in asking):
            return None, None
        try:
            instant = self._controls_instant(request)
            risk = None if request.risk is None else request.risk.value
            found = coverage(self.assessments, request.assessment, declaration.spec.service, instant, risk)
        except Exception as error:  # any storage failure: the policy for a backend fault decides
            logger.warning("the impact assessments could not be read: %s: %s", type(error).__name__, error)
            return None, "the store could not be read; the evaluator's log says why"
        return found, None

    def _controls_instant(self, request: GateRequest) -> datetime:
        """Freezes are read at the real instant, not the interval-aligned one: a freeze made a few
        seconds ago must stop the next gate, even though that gate shares the interval's reads."""
        return request.at or self.clock()

    def decide(
        self,
        target: DeclaredSubject,
        request: GateRequest,
        measurements: dict[str, Measurement],
        related: list[tuple[str, DeclaredSubject]] | None = None,
        controls: ControlsState | None = None,
    ) -> Decision:
        """Run the pipeline for one subject whose measurement (and related ones) are in `measurements`.

        `controls` are the freezes and incidents of the target's service, when the caller read them already.
        """
        at = measurements[target.key].at
        if controls is None:
            controls = self._controls(target.declaration.spec.service, self._controls_instant(request))
        freezes, incidents, controls_error = controls
        comparison, comparison_error = self._compare(target, at)
        assessment, assessment_error = self._assessment(target.declaration, request)
        context = GateContext(
            target.declaration,
            target.subject,
            request,
            measurements[target.key],
            measurements,
            related=[
                Related(role, other.declaration, other.subject, measurements[other.key])
                for role, other in (related if related is not None else self.related(target))
                if other.key in measurements
            ],
            freezes=freezes,
            incidents=incidents,
            comparison=comparison,
            comparison_error=comparison_error,
            controls_error=controls_error,
            assessment=assessment,
            assessment_error=assessment_error,
        )
        outcome = self.pipeline.decide(context)
        policy: dict[str, Any] = context.policy.model_dump(mode="json", by_alias=True)
        policy["declared"] = target.declaration.spec.gate is not None
        shadow = self._shadow(target, context)
        return Decision(
            id=uuid.uuid4().hex,
            decided_at=self.clock(),
            request=request,
            slo=target.declaration.name,
            stage=target.subject.stage,
            outcome=outcome,
            reasons=tuple(context.reasons),
            measurement=measurements[target.key],
            policy=policy,
            policy_version=self._version(target.declaration),
            service=target.declaration.spec.service,
            shadow=shadow,
        )

    def _shadow(self, target: DeclaredSubject, context: GateContext) -> ShadowDecision | None:
        """What the declaration's shadow decides on the same request, measurements and controls: the subject under
        the shadow's objective (its stage's own, if it has one) and policy, the measurement read against it."""
        shadowed = target.declaration.shadowed()
        if shadowed is None:
            return None
        subject = next(s for s in subjects(shadowed) if s.stage == target.subject.stage)
        shadow_context = dataclasses.replace(
            context,
            declaration=shadowed,
            subject=subject,
            measurement=context.measurement.under(subject.objective),
            reasons=[],
        )
        outcome = self.pipeline.decide(shadow_context)
        return ShadowDecision(
            objective=subject.objective,
            outcome=outcome,
            reasons=tuple(shadow_context.reasons),
            policy=shadow_context.policy.model_dump(mode="json", by_alias=True),
            policy_version=policy_version(shadowed),
        )

    def gate(self, request: GateRequest) -> GateResult:
        """Decide and record; never raises for bad requests or backend faults."""
        decisions = self._decisions(request)
        for decision in decisions:
            self.log.append(decision)
            if self._on_decision is not None:
                self._on_decision(decision)
        return GateResult(tuple(decisions))

    def preview(self, request: GateRequest) -> GateResult:
        """What `gate` would answer, neither recorded nor notified: an approval UI asking "is it ready?" is no
        deployment, and must not become deployment history (`releases`) or page anyone."""
        return GateResult(tuple(self._decisions(request)))

    def _decisions(self, request: GateRequest) -> list[Decision]:
        targets, problems = self._resolve(request)
        if request.at is not None and not in_range(request.at):
            message = f"`at` {request.at.isoformat()} is not an instant sloplane can measure at: give one {RANGE_TEXT}"
            targets, problems = [], [Reason("invalid-instant", message, {"at": request.at.isoformat()})]
        if not targets:
            decisions = [self._error_decision(request, problems)]
        else:
            at = request.at or self.now()
            related = {target.key: self.related(target) for target in targets}
            everything = {target.key: target for target in targets}
            for pairs in related.values():
                everything.update((other.key, other) for _, other in pairs)
            measurements = self.measurer.measure(list(everything.values()), at)
            controls_at = self._controls_instant(request)
            services = {target.declaration.spec.service for target in targets}
            controls = {service: self._controls(service, controls_at) for service in services}  # once per service
            decisions = [
                self.decide(
                    target, request, measurements, related[target.key], controls[target.declaration.spec.service]
                )
                for target in targets
            ]
            decisions += [self._error_decision(request, [problem]) for problem in problems]
        return decisions

    # -- reporting ------------------------------------------------------------------------------

    def deployment_burn(self, name: str, at: datetime | None = None) -> BurnSplit:
        """The production budget of an SLO over its period, split into deployment windows and background.

        Raises KeyError for an unknown SLO and BurnSplitError when it cannot be split (no counts).
        """
        declaration = self.fleet[name]
        target = DeclaredSubject(declaration, production_subject(declaration))
        (measurement,) = self.measurer.measure([target], at or self.now()).values()
        lead = declaration.spec.effective_gate.analysis_window
        releases = self.log.releases(declaration.spec.service, measurement.period_start - lead)
        windows = deployment_windows(releases, declaration.spec.service, lead)
        return burn_split(self.backend, declaration, target.subject, measurement, windows)

    # -- describing -----------------------------------------------------------------------------

    def _summary(self, declaration: Declaration) -> dict[str, Any]:
        spec = declaration.spec
        return {
            "name": declaration.name,
            "service": spec.service,
            "team": spec.owners.team,
            "tier": spec.tier.value,
            "objective": spec.objective,
            "window": declaration_data(declaration)["spec"].get("window", "30d"),
            "sli": spec.sli.kind,
            "stages": [stage.name for stage in spec.stages],
            "lifecycle": spec.lifecycle.value,
            "gate": spec.gate is not None,
            "policyVersion": self._version(declaration),
        }

    def slos(self) -> list[dict[str, Any]]:
        """A summary of every SLO."""
        return [self._summary(declaration) for declaration in sorted(self.fleet.values(), key=lambda d: d.name)]

    def slo(self, name: str, at: datetime | None = None) -> dict[str, Any] | None:
        """One SLO's summary and the current measurements of its subjects."""
        declaration = self.fleet.get(name)
        if declaration is None:
            return None
        measurements = self.evaluate(at, [name])
        return {**self._summary(declaration), "measurements": [m.to_dict() for m in measurements]}

    def ready(self) -> tuple[bool, str]:
        """Ready while decisions can be recorded; a backend that does not answer only degrades.

        From state only (see `health`): the backend's last known answer, the log's last write.
        An evaluator whose metrics backend is down still answers every gate by its policy (fail
        closed, by default) and records why. Taking it out of its Service instead would turn those
        recorded decisions into "evaluator unreachable" errors in every pipeline, and a rollout of
        the evaluator itself would stall on readiness for as long as the backend is away. One that
        cannot record answers only `error`, so it steps aside until its log is writable again.
        """
        problem = self.log.problem()
        if problem is not None:
            return False, f"decision log: {problem}"
        healthy, reason = self.health.state()
        if healthy is False:
            return True, f"degraded: backend: {reason} (gates answer by their onBackendError policy)"
        return True, "ok" if healthy else f"ok (backend {reason})"
