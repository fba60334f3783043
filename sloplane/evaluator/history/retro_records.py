"""Recorded decisions (their `to_dict()` form, as `DecisionLog.query` returns them) read back for the retro.

Why turn records back into model objects at all: whether a decision was deployment-related (`notify.classify`)
and which alerts its measurement shows firing (`deciding.context.firing_alerts`) are answered once, by the
evaluator's own functions, which take the model's objects. These rebuild only what those functions read, so
the retro never re-derives either rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sloplane.evaluator.model import Decision, GateRequest, Measurement, Outcome, Reason, WindowMeasurement

NAME_KEYS = ("identity", "by")
"""Reason values that name who acted (a break-glass, a manual freeze): left out of the retro's text."""


def instant(text: str) -> datetime:
    """A recorded RFC 3339 instant."""
    return datetime.fromisoformat(text)


def as_decision(record: dict[str, Any], outcome: str | None = None) -> Decision:
    """The decision `classify` reads: outcome (or `outcome` instead: what a break-glass overrode), reasons and
    the release fields of the request; no measurement or policy."""
    request = record["request"]
    return Decision(
        id=record["id"],
        outcome=Outcome(outcome or record["decision"]),
        slo=record["slo"],
        service=record.get("service"),
        stage=record.get("stage"),
        decided_at=instant(record["decidedAt"]),
        reasons=tuple(Reason(r["code"], r["message"], r.get("values", {})) for r in record["reasons"]),
        request=GateRequest(
            revision=request.get("revision"), pipeline=request.get("pipeline"), rollout=request.get("rollout")
        ),
        measurement=None,
        policy={},
        policy_version=record.get("policyVersion", ""),
    )


def as_measurement(record: dict[str, Any]) -> Measurement | None:
    """The measurement's windows (what `firing_alerts` reads), or None for a decision without one."""
    found = record.get("measurement")
    if not found:
        return None
    return Measurement(
        slo=found["slo"],
        stage=found.get("stage"),
        objective=found["objective"],
        at=instant(found["at"]),
        period_start=instant(found["periodStart"]),
        windows=tuple(
            WindowMeasurement(timedelta(seconds=w["window"]), w.get("errorRatio"), w.get("burnRate"))
            for w in found.get("windows", [])
        ),
    )


def blameless(message: str, values: dict[str, Any]) -> str:
    """A reason's message without the `by <name> ` it names someone with (`break-glass by dana overrides …`)."""
    for key in NAME_KEYS:
        name = values.get(key)
        if isinstance(name, str) and name:
            message = message.replace(f" by {name}", "")
    return message
