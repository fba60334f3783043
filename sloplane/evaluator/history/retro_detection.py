"""When a release's trouble was detected, against when `explain`'s theory says the burn-rate alerts would have.

Measured: from the release's start (its deployment window's, one analysis window before the first gate) to
the first gate that failed on a breach (`notify.classify` says deployment-related; a break-glass that overrode
such a fail counts: the gate did see it), else to the first decision whose measurement shows an alert with
both windows above its factor (`deciding.context.firing_alerts`, any enabled tier).
Theory: each enabled alert's `detection_time` (what `sloplane explain` prints) for the error ratio that
decision measured over the gate's analysis window. Late: measured beyond the fastest tier's time plus the
analysis window, the slack the window's placement itself adds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sloplane.core.budget import Tier
from sloplane.evaluator.deciding.context import firing_alerts
from sloplane.evaluator.deciding.deployments import DeploymentWindow
from sloplane.evaluator.history.retro_records import as_decision, as_measurement, instant
from sloplane.evaluator.notify.classify import IncidentClass, classify
from sloplane.semantics.subjects import Fleet


def failed_on_breach(record: dict[str, Any]) -> bool:
    """A recorded decision that failed on a deployment-related breach (`notify.classify`), or would have but for a
    break-glass override: the retro's detection and governance's change failures count the same ones."""
    if classify(as_decision(record)) is IncidentClass.DEPLOYMENT:
        return True
    overridden = [r.get("values", {}).get("overridden") for r in record["reasons"] if r["code"] == "break-glass"]
    return "fail" in overridden and classify(as_decision(record, "fail")) is IncidentClass.DEPLOYMENT


def _firing(fleet: Fleet, record: dict[str, Any]) -> list[tuple[str, float]]:
    measurement = as_measurement(record)
    declaration = fleet.get(record["slo"])
    if measurement is None or declaration is None:
        return []
    enabled = declaration.spec.alerting.enabled_tiers()
    quietest = Tier.TICKET if Tier.TICKET in enabled else Tier.PAGE
    return firing_alerts(declaration, measurement, quietest)


def _seen(record: dict[str, Any], window: timedelta) -> tuple[float | None, float | None]:
    """(error ratio, burn rate) the decision measured over `window`."""
    for measured in (record.get("measurement") or {}).get("windows", []):
        if measured["window"] == window.total_seconds():
            return measured.get("errorRatio"), measured.get("burnRate")
    return None, None


def detection(fleet: Fleet, records: list[dict[str, Any]], window: DeploymentWindow, lead: timedelta) -> dict[str, Any]:
    """The release's detection, measured and in theory (see the module's docstring)."""
    found, by = next(((r, "failing-gate") for r in records if failed_on_breach(r)), (None, None))
    if found is None:
        found, by = next(((r, "burn-above-factor") for r in records if _firing(fleet, r)), (None, None))
    answer: dict[str, Any] = {
        "releaseStart": window.start.isoformat(),
        "lead": lead.total_seconds(),
        "by": by,
        "decisionId": None,
        "detectedAt": None,
        "slo": None,
        "stage": None,
        "measured": None,
        "errorRatio": None,
        "burnRate": None,
        "theory": [],
        "fastest": None,
        "late": None,
    }
    if found is None:
        return answer
    measured = instant(found["decidedAt"]) - window.start
    answer.update(
        decisionId=found["id"],
        detectedAt=instant(found["decidedAt"]).isoformat(),
        slo=found["slo"],
        stage=found.get("stage"),
        measured=measured.total_seconds(),
    )
    declaration = fleet.get(found["slo"])
    if declaration is None:
        return answer
    spec = declaration.spec
    ratio, burn = _seen(found, spec.effective_gate.analysis_window)
    answer.update(errorRatio=ratio, burnRate=burn)
    if ratio is None:
        return answer
    objective = (found.get("measurement") or {}).get("objective", spec.objective)
    enabled = set(spec.alerting.enabled_tiers())
    theory: list[dict[str, Any]] = []
    for alert in spec.burn_rate_alerts():
        if alert.tier not in enabled:
            continue
        fires = alert.detection_time(ratio, objective)
        theory.append(
            {
                "tier": alert.tier.value,
                "windows": alert.name,
                "factor": alert.factor,
                "detection": None if fires is None else fires.total_seconds(),
            }
        )
    times = [float(entry["detection"]) for entry in theory if entry["detection"] is not None]
    fastest = min(times, default=None)
    answer.update(
        theory=theory,
        fastest=fastest,
        late=None if fastest is None else measured.total_seconds() > fastest + lead.total_seconds(),
    )
    return answer
