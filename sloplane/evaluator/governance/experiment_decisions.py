"""`sloplane experiment`'s gate part: each live decision of the log decided again, under another objective, from the
very measurement its record holds (issue 18).

Why through `deciding.pipeline` rather than a rule of our own: the experiment must answer what *the gate* would
have said, so the gate's own steps judge. What changes with the objective is recomputed as the measuring code
computes it (`core.budget`): each window's burn rate = its error ratio ÷ (1 − objective), the budget remaining =
1 − the period's error ratio ÷ (1 − objective). The guards that read the measurement alone (backend fault, stale
data, no data, low traffic), the objective-dependent checks (budget left, burn during analysis, the rollback
tier's alerts) and break-glass run as they are, under the policy the record was decided with.

What a record cannot give again is replayed *as recorded* (its reasons re-noted, its effect the same), and said in
the report's notes: freezes and incidents (the controls then; a sibling SLO's spent budget, which this experiment
does not change), the canary comparison (its verdict; its effect size would scale with the budget), and the
background and dependency attributions (which read the baseline's and the dependency's measurements, not kept):
these apply again only where the replayed outcome is a breach of the kind they explain.

Trust: every record is first decided again under the objective it was decided with. Where that does not give the
recorded outcome (a gate rule changed since, a context the record does not hold), the record is listed as not
reproduced and not counted as flipped: a flip must be the objective's doing, nothing else's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from sloplane.core.budget import budget_remaining, burn_rate
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import BackendErrorPolicy, GatePolicy
from sloplane.evaluator.deciding.context import Adjuster, GateContext, Step
from sloplane.evaluator.deciding.pipeline import CHECKS, GUARDS, DecisionPipeline, rate_limit_wait
from sloplane.evaluator.deciding.release import (
    ADJUSTERS,
    assessment_required,
    background,
    breach_only,
    canary_attribution,
    dependency,
    freeze_outcome,
    frozen,
)
from sloplane.evaluator.history.retro_records import instant
from sloplane.evaluator.model import GateRequest, Measurement, Outcome, Reason, WindowMeasurement
from sloplane.semantics.subjects import subjects

Record = dict[str, Any]
DECISION_LIMIT = 100_000
"""Decisions read for the SLO over the range; reaching it is said in `notes`."""
CANARY_CODES = frozenset({"canary-worse", "canary-low-traffic", "canary-comparable", "attribution-unavailable"})
AS_RECORDED = (
    "freezes and incidents, the canary comparison and the background and dependency attributions are replayed as "
    "recorded (the record does not hold what they read)"
)


class ExperimentLog(Protocol):
    """What the experiment reads of the decision log (both stores have it)."""

    def query(
        self,
        *,
        slo: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...


def measurement_under(found: dict[str, Any], objective: float) -> Measurement:
    """The recorded measurement (`Measurement.to_dict()` form) as it reads under `objective`: the same error
    ratios and events, burn rates and budget remaining recomputed (`core.budget`, as `measuring.measure` does)."""
    windows = tuple(
        WindowMeasurement(
            timedelta(seconds=w["window"]),
            w.get("errorRatio"),
            None if w.get("errorRatio") is None else burn_rate(w["errorRatio"], objective),
            w.get("events"),
            w.get("badEvents"),
        )
        for w in found.get("windows", [])
    )
    ratio = found.get("periodErrorRatio")
    return Measurement(
        slo=found["slo"],
        stage=found.get("stage"),
        objective=objective,
        at=instant(found["at"]),
        period_start=instant(found["periodStart"]),
        windows=windows,
        period_error_ratio=ratio,
        period_events=found.get("periodEvents"),
        period_bad_events=found.get("periodBadEvents"),
        budget_remaining=None if ratio is None else budget_remaining(ratio, objective),
        source=found.get("source", "raw"),
        error=found.get("error"),
        stale_seconds=found.get("staleSeconds"),
        rate_limit_wait_seconds=found.get("rateLimitWaitSeconds"),
    )


REQUESTS: TypeAdapter[GateRequest] = TypeAdapter(GateRequest)
"""A recorded request read back whole (break-glass and every field the gate may come to read), as the API's schema
reads one: a step added to the pipeline then sees what the gate saw."""


def _request(record: Record) -> GateRequest:
    return REQUESTS.validate_python(record["request"])


def _recorded(record: Record, codes: frozenset[str]) -> list[Reason]:
    return [Reason(r["code"], r["message"], r.get("values", {})) for r in record["reasons"] if r["code"] in codes]


def replay_pipeline(record: Record) -> DecisionPipeline:
    """The gate's own pipeline, with the steps whose inputs the record does not hold replayed as recorded."""

    def frozen_as_recorded(context: GateContext) -> Outcome | None:
        context.reasons += _recorded(record, frozenset({"frozen"}))
        return freeze_outcome(context)

    def assessment_as_recorded(context: GateContext) -> Outcome | None:
        """The impact assessment as the gate found it then (the store is not read again): covered, missing or
        not covering, or unreadable and judged by the policy it was."""
        found = [reason for reason in record["reasons"] if str(reason["code"]).startswith("assessment")]
        context.reasons += _recorded(record, frozenset(str(reason["code"]) for reason in found))
        failed = [reason for reason in found if reason["code"] not in {"assessment", "assessment-unavailable"}]
        unreadable = [reason for reason in found if reason["code"] == "assessment-unavailable"]
        closed = any(reason.get("values", {}).get("policy") == "failClosed" for reason in unreadable)
        return Outcome.FAIL if failed or closed else None

    def canary_as_recorded(context: GateContext) -> Outcome | None:
        found = _recorded(record, CANARY_CODES)
        context.reasons += found
        codes = {reason.code for reason in found}
        if "canary-worse" in codes:
            return Outcome.FAIL
        if "canary-low-traffic" in codes:
            return Outcome.INCONCLUSIVE
        fault = any("error" in reason.values for reason in found if reason.code == "attribution-unavailable")
        if fault and context.policy.on_backend_error is BackendErrorPolicy.FAIL_CLOSED:
            return Outcome.FAIL
        return None

    def attribution_as_recorded(code: str) -> Adjuster:
        def adjust(context: GateContext, outcome: Outcome) -> Outcome:
            found = _recorded(record, frozenset({code}))
            if not found or not breach_only(context, outcome) or context.has_reason("canary-worse"):
                return outcome
            context.reasons += found
            return Outcome.INCONCLUSIVE

        return adjust

    steps: dict[Callable[..., Any], Any] = {
        frozen: frozen_as_recorded,
        assessment_required: assessment_as_recorded,
        canary_attribution: canary_as_recorded,
        background: attribution_as_recorded("background"),
        dependency: attribution_as_recorded("dependency"),
    }
    guards: Sequence[Step] = tuple(steps.get(step, step) for step in GUARDS)
    checks: Sequence[Step] = tuple(steps.get(step, step) for step in CHECKS)
    adjusters: Sequence[Adjuster] = (*(steps.get(step, step) for step in ADJUSTERS), rate_limit_wait)
    return DecisionPipeline(guards, checks, adjusters)


def _with_policy(declaration: Declaration, record: Record, notes: set[str]) -> Declaration:
    """The declaration with the gate policy the record was decided under (its `policy`), else its own."""
    recorded = {key: value for key, value in record.get("policy", {}).items() if key != "declared"}
    try:
        policy = GatePolicy.model_validate(recorded)
    except ValidationError:
        notes.add("a recorded gate policy could not be read: the declaration's own was used for it")
        return declaration
    return declaration.model_copy(update={"spec": declaration.spec.model_copy(update={"gate": policy})})


def decide_again(
    declaration: Declaration, record: Record, objective: float, notes: set[str]
) -> tuple[Outcome, list[Reason]]:
    """The record decided again under `objective`: the outcome and its reasons."""
    subject = next(s for s in subjects(declaration) if s.stage == record.get("stage"))
    context = GateContext(
        _with_policy(declaration, record, notes),
        subject,
        _request(record),
        measurement_under(record["measurement"], objective),
    )
    outcome = replay_pipeline(record).decide(context)
    return outcome, context.reasons


@dataclass
class DecisionTally:
    """The decisions part of the report, as it is counted."""

    replayed: int = 0
    replays: int = 0
    not_replayable: dict[str, int] = field(default_factory=dict)
    not_reproduced: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    flipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def count(old: str, new: str) -> int:
            return sum(1 for f in self.flipped if f["old"] == old and f["new"] == new)

        pass_to_fail, fail_to_pass = count("pass", "fail"), count("fail", "pass")
        return {
            "replayed": self.replayed,
            "replaysLeftOut": self.replays,
            "notReplayable": dict(sorted(self.not_replayable.items())),
            "notReproduced": self.not_reproduced,
            "unchanged": self.unchanged,
            "passToFail": pass_to_fail,
            "failToPass": fail_to_pass,
            "otherChanges": len(self.flipped) - pass_to_fail - fail_to_pass,
            "flipped": self.flipped,
        }


def _why_not(record: Record, stages: dict[str | None, float]) -> str | None:
    if not record.get("measurement"):
        return "no measurement recorded"
    if record.get("stage") not in stages:
        return "its stage is no longer declared"
    return None


def _entry(record: Record, old: str, new: Outcome, reasons: list[Reason]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "decidedAt": instant(record["decidedAt"]).isoformat(),
        "stage": record.get("stage"),
        "revision": record["request"].get("revision"),
        "old": old,
        "new": new.value,
        "oldReasons": [reason["code"] for reason in record["reasons"]],
        "reasons": [reason.to_dict() for reason in reasons],
    }


def replay_decisions(
    declaration: Declaration,
    experiment: Declaration,
    log: ExperimentLog,
    bounds: tuple[datetime, datetime],
    *,
    notes: set[str],
) -> dict[str, Any]:
    """Every live decision about the SLO decided in [since, at], under its own objective then the experiment's
    (see the module's docstring); the counts and the flipped ones, oldest first."""
    since, at = bounds
    found = log.query(slo=declaration.name, since=since, until=at, limit=DECISION_LIMIT)
    if len(found) >= DECISION_LIMIT:
        notes.add(f"only the newest {DECISION_LIMIT} decisions were read")
    new_objectives = {subject.stage: subject.objective for subject in subjects(experiment)}
    tally = DecisionTally()
    for record in sorted(found, key=lambda r: (instant(r["decidedAt"]), r["id"])):
        if record["request"].get("at") is not None:
            tally.replays += 1
            continue
        why = _why_not(record, new_objectives)
        if why is not None:
            tally.not_replayable[why] = tally.not_replayable.get(why, 0) + 1
            continue
        recorded = record["decision"]
        try:
            again, reasons = decide_again(declaration, record, record["measurement"]["objective"], notes)
            new, new_reasons = decide_again(declaration, record, new_objectives[record.get("stage")], notes)
        except (ValidationError, KeyError, TypeError, ValueError):
            why = "its request or measurement could not be read"
            tally.not_replayable[why] = tally.not_replayable.get(why, 0) + 1
            continue
        tally.replayed += 1
        if again.value != recorded:
            tally.not_reproduced.append(_entry(record, recorded, again, reasons))
            continue
        if new.value == recorded:
            tally.unchanged += 1
        else:
            tally.flipped.append(_entry(record, recorded, new, new_reasons))
    if tally.replayed:
        notes.add(AS_RECORDED)
    return tally.to_dict()
