"""Decision steps that know about releases: freezes, canary attribution, background, dependencies, break-glass.

Each is a guard, a check or an adjuster of the decision pipeline (see `decide.py`), judging only
what the service gathered into the context, so each is tested on its own and every decision can be
replayed. The rule they share: roll back a release only for what the release did. A breach that
the stable stage shares, or that a dependency explains, is `inconclusive` with a reason saying so;
a canary fails only when it is measurably worse than stable.
"""

from __future__ import annotations

from sloplane.core.budget import Tier
from sloplane.core.durations import format_duration
from sloplane.core.schedules import occurrence_at
from sloplane.declaration.policy import BackendErrorPolicy
from sloplane.evaluator.deciding.context import Adjuster, GateContext, firing_alerts
from sloplane.evaluator.model import Outcome, Reason

BREACH_CODES = frozenset({"budget-exhausted", "budget-low", "burn-rate", "alert-active", "canary-worse"})
"""Reasons that say the SLO itself is being breached (as opposed to a freeze or a fault)."""
NOT_A_BREACH = frozenset({"frozen", "backend-error", "stale-data", "attribution-unavailable"})


def frozen(context: GateContext) -> Outcome | None:
    """Fail while releases are frozen: by hand, by a major incident, by schedule, or by a spent budget.

    A freeze fails even a healthy SLO: that is its point. Every freeze in force is a reason, so
    the answer says who froze what and why, and what has to end for releases to resume.
    """
    policy = context.policy
    at = context.measurement.at
    if context.controls_error is not None:
        context.note(
            "frozen",
            f"freezes and incidents could not be read ({context.controls_error}): releases wait until they can",
            kind="unknown",
            error=context.controls_error,
        )
    for freeze in context.freezes:
        scope = f"service {freeze.service}" if freeze.service else "every service"
        until = f" until {freeze.until.isoformat()}" if freeze.until else ""
        context.note(
            "frozen",
            f"releases of {scope} are frozen by {freeze.created_by}{until}: {freeze.reason}",
            kind="manual",
            freeze=freeze.id,
            by=freeze.created_by,
        )
    if policy.freeze_on_major_incident:
        for incident in context.incidents:
            context.note(
                "frozen",
                f"major incident {incident.id} is open ({incident.title}): every release waits",
                kind="incident",
                incident=incident.id,
            )
    for window in policy.freezes:
        if window.stages and context.subject.stage not in window.stages:
            continue
        began = occurrence_at(window.schedule, window.duration, window.time_zone, at)
        if began is not None:
            context.note(
                "frozen",
                f"scheduled freeze '{window.name}' since {began.isoformat()} for {format_duration(window.duration)}",
                kind="schedule",
                window=window.name,
                began=began.isoformat(),
            )
    if policy.freeze_on_budget_exhausted:
        for sibling in context.related_as("sibling"):
            remaining = sibling.measurement.budget_remaining
            if remaining is not None and remaining <= 0:
                context.note(
                    "frozen",
                    f"the error budget of SLO '{sibling.declaration.name}' of service "
                    f"{sibling.subject.service} is exhausted ({remaining:.1%} left): its releases are frozen",
                    kind="budget",
                    slo=sibling.declaration.name,
                    budget_remaining=remaining,
                )
    return freeze_outcome(context)


def freeze_outcome(context: GateContext) -> Outcome | None:
    """What the freezes noted so far decide: nothing without one; a fail; or, for a spent budget's freeze and a
    change the policy exempts, nothing yet — the other guards and the checks still judge it, and
    `reliability_window` records the exception when nothing else stops it. (Experiments replay recorded freezes
    through this same rule.)"""
    if not context.has_reason("frozen"):
        return None
    if _reliability_change(context) and not _other_freezes(context):
        return None
    return Outcome.FAIL


def _reliability_change(context: GateContext) -> bool:
    """The request declares a change type the policy lets through a spent budget (`reliabilityChanges`)."""
    change = context.request.change_type
    return change is not None and change in context.policy.reliability_changes


def _other_freezes(context: GateContext) -> bool:
    """A freeze in force other than a spent budget's (by hand, an incident, a schedule, unreadable controls)."""
    return any(reason.code == "frozen" and reason.values.get("kind") != "budget" for reason in context.reasons)


def assessment_required(context: GateContext) -> Outcome | None:
    """Fail a release the policy's `requireAssessment` covers when it names no impact assessment that covers it.

    A request that declares a risk below the policy's level needs none; one that declares none counts as at the
    level (the risk is the assessment's to state). An unreadable store follows the policy for a backend fault:
    fail closed by default, or let the release through saying so.
    """
    level = context.policy.require_assessment
    declared = context.request.risk
    if level is None or (declared is not None and declared.rank < level.rank):
        return None
    service = context.declaration.spec.service
    if context.assessment_error is not None:
        return _assessments_unreadable(context, context.assessment_error)
    found = context.assessment
    if found is None:  # no store given to the evaluator: nothing can be covered
        context.note(
            "assessment-missing",
            f"releases of {service} at {level.value} risk or above need an impact assessment, and this evaluator "
            "keeps none (serve --db)",
            required_from=level.value,
        )
        return Outcome.FAIL
    risk = "undeclared" if declared is None else declared.value
    if not found.covered:
        assert found.code is not None
        values = {"assessment": context.request.assessment, "risk": risk, "required_from": level.value}
        context.note(found.code, found.message, **values)
        return Outcome.FAIL
    recorded = found.assessment or {}
    context.note(
        "assessment",
        found.message,
        assessment=context.request.assessment,
        verdict=recorded.get("verdict"),
        conditions=[condition.get("message") for condition in recorded.get("conditions", [])],
        risk=risk,
    )
    return None


def _assessments_unreadable(context: GateContext, error: str) -> Outcome | None:
    """The policy for a backend fault, applied to the assessments' store: fail closed (the default), or go on to
    the other checks saying so (unlike the metrics backend's fault, this one leaves the measurements to judge)."""
    closed = context.policy.on_backend_error is BackendErrorPolicy.FAIL_CLOSED
    how = "failing closed by policy" if closed else "not checked, failing open by policy"
    policy = "failClosed" if closed else "failOpen"
    message = f"the impact assessments could not be read ({error}); {how}"
    context.note("assessment-unavailable", message, policy=policy, error=error)
    return Outcome.FAIL if closed else None


def canary_attribution(context: GateContext) -> Outcome | None:
    """Fail a canary that is significantly and materially worse than its baseline; inconclusive on thin data."""
    if not context.related_as("baseline"):
        return None
    if context.comparison_error is not None:
        context.note(
            "attribution-unavailable",
            f"the canary could not be compared with its baseline ({context.comparison_error})",
            error=context.comparison_error,
        )
        return Outcome.FAIL if context.policy.on_backend_error is BackendErrorPolicy.FAIL_CLOSED else None
    comparison = context.comparison
    if comparison is None:
        context.note("attribution-unavailable", "this SLI has no event counts: the canary is not compared")
        return None
    values = comparison.values()
    canary, baseline = comparison.canary.stage, comparison.baseline.stage
    window = format_duration(comparison.window)
    if comparison.verdict == "low-traffic":
        needed = context.policy.attribution.min_canary_events
        context.note(
            "canary-low-traffic",
            f"only {comparison.canary.events:g} {canary} events in the last {window} "
            f"(at least {needed} needed to compare with {baseline}): inconclusive",
            **values,
        )
        return Outcome.INCONCLUSIVE
    if comparison.verdict == "too-few-intervals":
        context.note(
            "canary-low-traffic",
            f"too few intervals with traffic to compare {canary} with {baseline} over {window}: inconclusive",
            **values,
        )
        return Outcome.INCONCLUSIVE
    summary = (
        f"{canary} error ratio {comparison.canary.mean_ratio:.4%} vs {baseline} {comparison.baseline.mean_ratio:.4%} "
        f"over {window} (p = {comparison.p_value:.2g}, {comparison.effect:+.2f}x burn)"
    )
    if comparison.verdict == "worse":
        context.note("canary-worse", f"the canary is worse than {baseline}: {summary}: roll back", **values)
        return Outcome.FAIL
    context.note("canary-comparable", f"the canary is not significantly worse than {baseline}: {summary}", **values)
    return None


def breach_only(context: GateContext, outcome: Outcome) -> bool:
    """A fail that rests on breaches alone (not a freeze or a fault): the kind context may explain."""
    codes = {reason.code for reason in context.reasons}
    return outcome is Outcome.FAIL and bool(codes & BREACH_CODES) and not codes & NOT_A_BREACH


def background(context: GateContext, outcome: Outcome) -> Outcome:
    """A canary breach that its baseline shares (and is not worse than) is the day's, not the release's."""
    if not breach_only(context, outcome) or context.has_reason("canary-worse"):
        return outcome
    policy = context.policy
    for baseline in context.related_as("baseline"):
        why = [name for name, _ in firing_alerts(baseline.declaration, baseline.measurement, policy.rollback_on)]
        window = baseline.measurement.window(policy.analysis_window)
        burn = None if window is None else window.burn_rate
        if policy.max_burn_rate is not None and burn is not None and burn > policy.max_burn_rate:
            why.append(f"burn {burn:.1f}x over {format_duration(policy.analysis_window)}")
        if why:
            context.note(
                "background",
                f"the {baseline.subject.stage} stage is breaching too ({', '.join(why)}): a background problem, "
                "not this release; inconclusive rather than a rollback",
                baseline_stage=baseline.subject.stage,
                baseline=why,
            )
            return Outcome.INCONCLUSIVE
    return outcome


def dependency(context: GateContext, outcome: Outcome) -> Outcome:
    """A breach while a declared dependency burns at page level is attributed to the dependency."""
    if not breach_only(context, outcome) or context.has_reason("canary-worse"):
        return outcome
    burning = []
    for related in context.related_as("dependency"):
        firing = firing_alerts(related.declaration, related.measurement, Tier.PAGE)
        if firing:
            name, burn = max(firing, key=lambda alert: alert[1])
            burning.append((related, name, burn))
    if not burning:
        return outcome
    for related, name, burn in burning:
        context.note(
            "dependency",
            f"dependency '{related.subject.key}' is burning its budget at {burn:.1f}x ({name} alert): "
            "the breach is attributed to it; inconclusive rather than a rollback",
            dependency=related.subject.key,
            alert=name,
            burn_rate=burn,
        )
    return Outcome.INCONCLUSIVE


BUDGET_ONLY = frozenset({"budget-exhausted", "budget-low"})
"""The reasons a reliability change may pass despite: the budget policy's own, not a breach happening now."""
INFORMATIONAL = frozenset(
    {
        "alerts",
        "budget",
        "burn-rate-ok",
        "canary-comparable",
        "traffic",
        "no-event-counts",
        "break-glass-unused",
        "assessment",
    }
)
"""Reasons that describe without failing anything."""


def _budget_only(context: GateContext, outcome: Outcome) -> bool:
    """A fail whose every failing reason is the spent or low budget (its own, or a sibling's freeze)."""
    if outcome is not Outcome.FAIL:
        return False
    failing = [reason for reason in context.reasons if reason.code not in INFORMATIONAL]
    return bool(failing) and all(reason.code in BUDGET_ONLY or _budget_freeze(reason) for reason in failing)


def reliability_window(context: GateContext, outcome: Outcome) -> Outcome:
    """While the budget is spent, a change the policy lists (`reliabilityChanges`: fix, reliability, security)
    passes when the budget is all that fails it — the error budget policy's exception, recorded as one. A change
    of another type, or none declared, is told which types would pass. A burn, an alert, a worse canary, a missing
    assessment or data that cannot be judged still stops every change: for such a change a spent budget's freeze
    does not end the guards (`frozen`), so everything else was judged before this step."""
    spent = [reason for reason in context.reasons if reason.code in BUDGET_ONLY or _budget_freeze(reason)]
    if not spent:
        return outcome
    allowed = context.policy.reliability_changes
    change = context.request.change_type
    names = ", ".join(kind.value for kind in allowed)
    if _reliability_change(context):
        assert change is not None
        if outcome is Outcome.PASS or _budget_only(context, outcome):
            context.note(
                "policy-exception",
                f"a {change.value} change may ship while the error budget is spent (the budget policy lets {names} "
                "changes through); the other guards and checks were judged and are clear",
                change_type=change.value,
                allowed=[kind.value for kind in allowed],
                overridden=Outcome.FAIL.value,
            )
            return Outcome.PASS
        return outcome
    if not _budget_only(context, outcome):
        return outcome
    declared = "no changeType was declared" if change is None else f"this is a {change.value} change"
    passing = f"only {names} changes pass" if allowed else "no change passes (the policy's reliabilityChanges is [])"
    context.note(
        "changes-restricted",
        f"while the error budget is spent {passing} ({declared})",
        change_type=None if change is None else change.value,
        allowed=[kind.value for kind in allowed],
    )
    return outcome


def _budget_freeze(reason: Reason) -> bool:
    return reason.code == "frozen" and reason.values.get("kind") == "budget"


def break_glass(context: GateContext, outcome: Outcome) -> Outcome:
    """Let a release through on a named person's reason; the overridden outcome stays in the record."""
    override = context.request.break_glass
    if override is None:
        return outcome
    if outcome is Outcome.PASS:
        context.note(
            "break-glass-unused",
            f"break-glass by {override.identity} was not needed: the gate passed on its own",
            identity=override.identity,
            reason=override.reason,
        )
        return outcome
    context.note(
        "break-glass",
        f"break-glass by {override.identity} overrides '{outcome.value}': {override.reason}",
        identity=override.identity,
        reason=override.reason,
        overridden=outcome.value,
    )
    return Outcome.PASS


ADJUSTERS: tuple[Adjuster, ...] = (background, dependency, reliability_window, break_glass)
