"""The blameless postmortem draft of one release: impact numbers and prompts for process gaps.

Required when the release's hours used at least `POSTMORTEM_SHARE` of one SLO's error budget (the SRE
Workbook's error budget policy: "a single incident that consumes more than 20% of the budget"); offered
otherwise. Each prompt is about a process, never about a person, and is raised only by a fact in the data,
which it states (`because`):
- detection: the trouble was found later than the alerts allow (`retro_detection`'s `late`), or the release
  used a required share of the budget and no decision ever saw it;
- canary size: decisions found too little canary traffic to compare (`canary-low-traffic`), or an SLO without
  stages had a required share of its budget used (all traffic took the release at once);
- batch size: the release's pipeline run gated other releases too;
- undeclared dependency: decisions judged the breach background (the baseline stage breaching too): something
  shared was failing that `gate.dependencies` does not name;
- routing: deployment- or background-related breaches (`notify.classify`) for an SLO that declares no
  `alerting.routing` receiver for that kind;
- runbook: an SLO without a runbook had gates fail on a breach, or the gate was overridden (break-glass).
The words are kept here as data, one entry per topic, so that they are reviewed as the sentences people read.
"""

from __future__ import annotations

from datetime import timedelta
from math import fsum
from typing import Any

from sloplane.core.durations import human_duration
from sloplane.declaration.model import Declaration

POSTMORTEM_SHARE = 0.20
TOPICS = ("detection", "canary-size", "batch-size", "undeclared-dependency", "routing", "runbook")

QUESTIONS = {
    "detection-late": "Could the gates have run earlier or more often during the rollout, so that detection "
    "comes as soon as the alerts allow?",
    "detection-missed": "Which signal would have caught this burn during the rollout: a shorter analysis window, "
    "a burn-rate limit (`gate.maxBurnRate`), a gate on another stage?",
    "canary-size-traffic": "Is the canary's share of traffic, or the time it runs before its first gate, large "
    "enough for the comparison with the baseline to say anything?",
    "canary-size-unstaged": "Would a canary stage (`stages`) taking a small share of traffic first have limited "
    "the budget this release used?",
    "batch-size": "Could these changes ship as separate, smaller releases, so that a failure points at one "
    "change and a rollback takes back only that one?",
    "undeclared-dependency": "Was a shared dependency (a database, a platform service, a network path) behind "
    "it? If so, naming it under `gate.dependencies` would attribute such a breach to it in the decision.",
    "routing": "Did the alerts reach the team that owns the release through the default route, and should "
    "these breaches have a route of their own?",
    "runbook-missing": "What did the response follow instead, and what should a runbook for this SLO say first?",
    "runbook-override": "Does the runbook say when overriding the gate is appropriate, and what to check "
    "before and after an override?",
}


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _prompt(topic: str, question: str, because: str) -> dict[str, str]:
    return {"topic": topic, "question": QUESTIONS[question], "because": because}


def _required_slos(section: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in section["slos"] if s["budgetShare"] is not None and s["budgetShare"] >= POSTMORTEM_SHARE]


def _detection(section: dict[str, Any]) -> list[dict[str, str]]:
    found = section["detection"]
    if found["late"]:
        seen = "first gate that failed on a breach" if found["by"] == "failing-gate" else "first burn seen"
        fastest = next(t for t in found["theory"] if t["detection"] == found["fastest"])
        because = (
            f"The {seen} came {human_duration(timedelta(seconds=found['measured']))} after the release started; "
            f"at the burn measured then ({found['burnRate']:.1f}x over the analysis window) the {fastest['tier']} "
            f"alert {fastest['windows']} fires {human_duration(timedelta(seconds=found['fastest']))} after onset."
        )
        return [_prompt("detection", "detection-late", because)]
    heavy = _required_slos(section)
    if found["by"] is None and heavy:
        because = (
            f"No gate failed and no decision showed an alert's burn, yet the release's hours used "
            f"{_percent(heavy[0]['budgetShare'])} of {heavy[0]['slo']}'s error budget."
        )
        return [_prompt("detection", "detection-missed", because)]
    return []


def _canary(section: dict[str, Any], declarations: dict[str, Declaration]) -> list[dict[str, str]]:
    prompts = []
    thin = [
        reason for entry in section["timeline"] for reason in entry["reasons"] if reason["code"] == "canary-low-traffic"
    ]
    if thin:
        because = f"{len(thin)} decision(s) found too little canary traffic to compare: {thin[0]['message']}."
        prompts.append(_prompt("canary-size", "canary-size-traffic", because))
    for slo in _required_slos(section):
        declaration = declarations.get(slo["slo"])
        if declaration is not None and not declaration.spec.stages:
            because = (
                f"{slo['slo']} declares no stages: all of {section['service']}'s traffic took the release at once, "
                f"and its hours used {_percent(slo['budgetShare'])} of the error budget."
            )
            prompts.append(_prompt("canary-size", "canary-size-unstaged", because))
    return prompts


def _batch(section: dict[str, Any]) -> list[dict[str, str]]:
    prompts = []
    for pipeline in section["pipelines"]:
        others = [f"{c['service']} {c['release']}" for c in section["companions"] if c["pipeline"] == pipeline]
        if others:
            because = (
                f"Pipeline run {pipeline} gated {len(others) + 1} releases: "
                f"{section['service']} {section['release']}, {', '.join(others)}."
            )
            prompts.append(_prompt("batch-size", "batch-size", because))
    return prompts


def _dependency(section: dict[str, Any]) -> list[dict[str, str]]:
    shared = [
        (entry, reason)
        for entry in section["timeline"]
        for reason in entry["reasons"]
        if reason["code"] == "background"
    ]
    if not shared:
        return []
    entry, reason = shared[0]
    because = (
        f"{len(shared)} decision(s) judged the breach background, first at {entry['decidedAt']}: {reason['message']}."
    )
    return [_prompt("undeclared-dependency", "undeclared-dependency", because)]


def _routing(section: dict[str, Any], declarations: dict[str, Declaration]) -> list[dict[str, str]]:
    prompts = []
    for kind in ("deployment", "background"):
        for slo in sorted({e["slo"] for e in section["timeline"] if e["incident"] == kind}):
            declaration = declarations.get(slo)
            if declaration is None or getattr(declaration.spec.alerting.routing, kind) is not None:
                continue
            count = sum(1 for e in section["timeline"] if e["incident"] == kind and e["slo"] == slo)
            because = (
                f"{count} decision(s) of {slo} were {kind}-related breaches, and {slo} declares no "
                f"`alerting.routing.{kind}` receiver."
            )
            prompts.append(_prompt("routing", "routing", because))
    return prompts


def _runbook(section: dict[str, Any], declarations: dict[str, Declaration]) -> list[dict[str, str]]:
    prompts = []
    breached = sorted({e["slo"] for e in section["timeline"] if e["incident"] is not None})
    for slo in breached:
        declaration = declarations.get(slo)
        if declaration is not None and declaration.spec.alerting.runbook is None:
            count = sum(1 for e in section["timeline"] if e["incident"] is not None and e["slo"] == slo)
            because = f"{slo} declares no runbook (`alerting.runbook`), and {count} of its decisions were breaches."
            prompts.append(_prompt("runbook", "runbook-missing", because))
    overrides = [e for e in section["breakGlass"] if e["breakGlass"]["overridden"] is not None]
    if overrides:
        reasons = "; ".join(sorted({e["breakGlass"]["reason"] for e in overrides}))
        because = f"The gate was overridden {len(overrides)} time(s) (break-glass, given reason: {reasons})."
        prompts.append(_prompt("runbook", "runbook-override", because))
    return prompts


def _impact(section: dict[str, Any]) -> dict[str, Any]:
    slos = section["slos"]
    excess = [s["excessBadEvents"] for s in slos if s["excessBadEvents"] is not None]
    shares = [s["excessBudgetShare"] for s in slos if s["excessBudgetShare"] is not None]
    return {
        "budgetShare": section["budgetShare"],
        "excessBudgetShare": max(shares, default=None),
        "badEvents": fsum(s["deployment"]["badEvents"] for s in slos),
        "excessBadEvents": fsum(excess) if excess else None,
        "slos": [
            {"slo": s["slo"], "budgetShare": s["budgetShare"], "badEvents": s["deployment"]["badEvents"]} for s in slos
        ],
        "rolledBack": section["rolledBack"],
        "rollbacks": len(section["rollbacks"]),
        "breakGlass": len(section["breakGlass"]),
    }


def postmortem(section: dict[str, Any], declarations: dict[str, Declaration]) -> dict[str, Any]:
    """Whether a postmortem is required, the impact, and the prompts the data raises (see the module docstring)."""
    share = section["budgetShare"]
    required = share is not None and share >= POSTMORTEM_SHARE
    if share is None:
        why = "the rollups hold no counted events for this release's hours: its budget share is unknown"
    else:
        verdict = "at least" if required else "less than"
        outcome = "required" if required else "offered, not required"
        why = (
            f"the release's hours used {_percent(share)} of an error budget, {verdict} {POSTMORTEM_SHARE:.0%}: "
            f"a postmortem is {outcome} (the SRE Workbook's error budget policy)"
        )
    prompts = [
        *_detection(section),
        *_canary(section, declarations),
        *_batch(section),
        *_dependency(section),
        *_routing(section, declarations),
        *_runbook(section, declarations),
    ]
    return {
        "required": required,
        "threshold": POSTMORTEM_SHARE,
        "why": why,
        "impact": _impact(section),
        "prompts": prompts,
    }
