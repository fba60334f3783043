"""The facts of an impact assessment (`assessment.py` says how they make a verdict): which SLOs a change reaches,
how fast each alert tier would see a total outage, what the change window overlaps, whether canary and rollback
are in place, and who must approve. Each is a plain function of the declarations (and the controls store), so a
test can state its expected value by hand.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sloplane.core.schedules import occurrences
from sloplane.declaration.model import Criticality, Declaration, Lifecycle
from sloplane.declaration.policy import GateMode, TargetSystem
from sloplane.evaluator.governance.risk import parts
from sloplane.evaluator.measuring.periods import exclusions
from sloplane.evaluator.model import Freeze, Incident
from sloplane.semantics.explain import explain
from sloplane.semantics.subjects import Fleet, production_subject

RISKS = ("low", "medium", "high", "critical")
DEFAULT_OUTAGE = {
    "low": timedelta(minutes=5),
    "medium": timedelta(minutes=15),
    "high": timedelta(minutes=30),
    "critical": timedelta(minutes=60),
}
"""The total outage assumed when `--outage` is not given: how long a change of that risk could take a service down
before it is noticed and rolled back (a low-risk change is one quick rollback away; a critical one — a migration,
a schema change — may take an hour to undo)."""

DEV, OPS, PRODUCT = "dev", "ops", "product"
ROLE_NAMES = {DEV: "service owner (dev)", OPS: "operations owner (ops)", PRODUCT: "product owner"}
APPROVERS: dict[str, dict[str, tuple[str, ...]]] = {
    "low": {"low": (DEV,), "medium": (DEV,), "high": (DEV, OPS), "critical": (DEV, OPS, PRODUCT)},
    "medium": {"low": (DEV,), "medium": (DEV,), "high": (DEV, OPS), "critical": (DEV, OPS, PRODUCT)},
    "high": {"low": (DEV,), "medium": (DEV, OPS), "high": (DEV, OPS, PRODUCT), "critical": (DEV, OPS, PRODUCT)},
    "critical": {
        "low": (DEV, OPS),
        "medium": (DEV, OPS, PRODUCT),
        "high": (DEV, OPS, PRODUCT),
        "critical": (DEV, OPS, PRODUCT),
    },
}
"""tier (the highest of the service's own SLOs) → risk → the roles that approve, named from `spec.owners`. The
more there is to lose (tier) and the likelier the loss (risk), the more owners sign: the service owner always;
operations from a high risk on medium/low tiers, from a medium risk on a high tier, always on a critical one; the
product owner (who owns the budget's trade-off) at a critical risk, from a high risk on high and critical tiers,
and from a medium risk on a critical tier."""

TIERS_WORST_FIRST = (Criticality.CRITICAL, Criticality.HIGH, Criticality.MEDIUM, Criticality.LOW)


@dataclass(frozen=True)
class Affected:
    """An SLO the change reaches: the service's own, or a consumer through a dependency or a composite."""

    declaration: Declaration
    relation: str
    """`own`, `dependency` (its `gate.dependencies` name a reached SLO) or `component` (its composite does)."""
    via: str | None
    """The reached SLO it names (None for the service's own)."""


def affected(fleet: Fleet, service: str) -> list[Affected]:
    """The service's own SLOs (by name), then their consumers, nearest first (breadth first, by name at each
    step): every SLO not archived whose parts (`risk.parts`: dependencies and composite components, any stage)
    name a reached SLO, transitively. Each SLO is listed once, at its first (nearest) reach."""
    live = [fleet[name] for name in sorted(fleet) if fleet[name].spec.lifecycle is not Lifecycle.ARCHIVED]
    found = [Affected(d, "own", None) for d in live if d.spec.service == service]
    seen = {a.declaration.name for a in found}
    queue = deque(a.declaration.name for a in found)
    while queue:
        reached = queue.popleft()
        for declaration in live:
            if declaration.name in seen:
                continue
            relation = next((rel for (slo, _), rel in parts(declaration) if slo == reached), None)
            if relation is not None:
                found.append(Affected(declaration, relation, reached))
                seen.add(declaration.name)
                queue.append(declaration.name)
    return found


def detection(declaration: Declaration) -> list[dict[str, Any]]:
    """Each burn-rate alert of the production subject's objective and how long after a total outage begins it
    fires: `explain`'s own numbers (`detection[1.0]`), in seconds (None: it cannot fire at 100% errors)."""
    stage = production_subject(declaration).stage
    explained = explain(declaration)
    chosen = next((e for e in explained if e.stage == stage), explained[0])
    return [
        {
            "tier": alert.tier,
            "windows": alert.windows,
            "enabled": alert.enabled,
            "seconds": None if alert.detection[1.0] is None else alert.detection[1.0].total_seconds(),
        }
        for alert in chosen.alerts
    ]


def first_detection(alerts: Iterable[dict[str, Any]], tier: str) -> float | None:
    """The fastest enabled alert of `tier` to fire on a total outage, seconds; None when none would."""
    times = [a["seconds"] for a in alerts if a["tier"] == tier and a["enabled"] and a["seconds"] is not None]
    return min(times, default=None)


def maintenance(declaration: Declaration, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The SLO's excluded time (maintenance, one-off windows, emergency changes) overlapping [start, end), clipped
    to it: the budget's own `measuring.periods.exclusions`, for the production subject."""
    stage = production_subject(declaration).stage
    return [
        {"kind": e.kind, "name": e.name, "start": e.start.isoformat(), "end": e.end.isoformat(), "reason": e.reason}
        for e in exclusions(declaration.spec, stage, start, end)
        if e.end > e.start
    ]


class ControlsHistory(Protocol):
    """What an assessment reads of the release controls (both stores have it): every record, ended or not."""

    def freezes(
        self, *, at: datetime | None = None, active_only: bool = True, service: str | None = None
    ) -> list[Freeze]: ...

    def incidents(self, *, at: datetime | None = None, open_only: bool = True) -> list[Incident]: ...


def _overlaps(start: datetime, end: datetime | None, window: tuple[datetime, datetime]) -> bool:
    """[start, end) (end None: not ended) meets the window [window start, window end)."""
    return start < window[1] and (end is None or end > window[0])


def _freeze_end(freeze: Freeze) -> datetime | None:
    ends = [moment for moment in (freeze.until, freeze.lifted_at) if moment is not None]
    return min(ends, default=None)


def recorded_freezes(
    controls: ControlsHistory, service: str, window: tuple[datetime, datetime]
) -> list[dict[str, Any]]:
    """Freezes of the service or of every service (`sloplane freeze`) in force at some instant of the window, as
    recorded now: created before its end, and neither lifted nor expired before its start. Oldest first."""
    found = []
    for freeze in controls.freezes(active_only=False, service=service):
        end = _freeze_end(freeze)
        if _overlaps(freeze.created_at, end, window):
            found.append(
                {
                    "id": freeze.id,
                    "service": freeze.service,
                    "reason": freeze.reason,
                    "by": freeze.created_by,
                    "start": freeze.created_at.isoformat(),
                    "end": None if end is None else end.isoformat(),
                }
            )
    return sorted(found, key=lambda f: (f["start"], f["id"]))


def declared_freezes(declarations: Sequence[Declaration], window: tuple[datetime, datetime]) -> list[dict[str, Any]]:
    """Scheduled freezes (`gate.freezes`) of the service's own SLOs that open during the window or are open at its
    start, for the production subject (a freeze limited to other stages does not stop production): what the gate
    would refuse (`deciding.release`, `occurrence_at` over the same `occurrences`). In time order."""
    found: list[dict[str, Any]] = []
    for declaration in declarations:
        stage = production_subject(declaration).stage
        for freeze in declaration.spec.effective_gate.freezes:
            if freeze.stages and stage not in freeze.stages:
                continue
            for opens, closes in occurrences(freeze.schedule, freeze.duration, freeze.time_zone, *window):
                if _overlaps(opens, closes, window):
                    found.append({"slo": declaration.name, "name": freeze.name, "start": opens, "end": closes})
    found.sort(key=lambda f: (f["start"], f["slo"], f["name"]))
    return [{**f, "start": f["start"].isoformat(), "end": f["end"].isoformat()} for f in found]


def incidents(controls: ControlsHistory, service: str, window: tuple[datetime, datetime]) -> list[dict[str, Any]]:
    """Incidents concerning the service (naming it, or naming none) open at some instant of the window, as
    recorded now: opened before its end and not resolved before its start — an incident open now and not resolved
    is taken to stay open. Oldest first."""
    found = [
        i
        for i in controls.incidents(open_only=False)
        if i.covers(service) and _overlaps(i.opened_at, i.resolved_at, window)
    ]
    return [
        {
            "id": i.id,
            "title": i.title,
            "severity": i.severity,
            "services": list(i.services),
            "start": i.opened_at.isoformat(),
            "end": None if i.resolved_at is None else i.resolved_at.isoformat(),
        }
        for i in sorted(found, key=lambda i: (i.opened_at, i.id))
    ]


def safeguards(declarations: Sequence[Declaration]) -> dict[str, Any]:
    """Whether canary and rollback are in place for the service's own SLOs (see `assessment.py` for the rules):

    - canary: an SLO declares a stage before its production stage (`spec.stages`) and its gate is `blocking`
      (the pipeline waits for the canary's verdict before production; an `async` gate records and moves on);
    - rollback: an SLO targets Argo Rollouts with its analysis not a dry run (`gate.analysis.dryRun` false): the
      rendered AnalysisTemplate aborts the rollout and Argo rolls it back (blocking: the first failure; async:
      two). Spinnaker and CI only stop a pipeline; they undo nothing.
    """
    slos = []
    for declaration in declarations:
        spec = declaration.spec
        gate = spec.effective_gate
        production = spec.production_stage
        before = [] if production is None else [s.name for s in spec.stages[: spec.stages.index(production)]]
        argo = TargetSystem.ARGO_ROLLOUTS in spec.targets
        slos.append(
            {
                "slo": declaration.name,
                "stagesBeforeProduction": before,
                "mode": gate.mode.value,
                "argoRollouts": argo,
                "analysisProvider": gate.analysis.provider.value,
                "dryRun": gate.analysis.dry_run,
                "canary": bool(before) and gate.mode is GateMode.BLOCKING,
                "rollback": argo and not gate.analysis.dry_run,
            }
        )
    return {
        "canary": any(s["canary"] for s in slos),
        "rollback": any(s["rollback"] for s in slos),
        "slos": slos,
    }


def approvers(declarations: Sequence[Declaration], risk: str) -> dict[str, Any]:
    """The roles `APPROVERS` requires for the service's highest tier at `risk`, each named from the owners of the
    SLOs of that tier (`spec.owners.dev/ops/product`, distinct contacts, by SLO name); `missing` the roles no SLO
    of that tier names."""
    tiers = {d.spec.tier for d in declarations}
    tier = next((t for t in TIERS_WORST_FIRST if t in tiers), Criticality.LOW)
    roles = APPROVERS[tier.value][risk]
    people: list[dict[str, Any]] = []
    for role in roles:
        seen: set[tuple[str, str]] = set()
        for declaration in sorted(declarations, key=lambda d: d.name):
            contact = getattr(declaration.spec.owners, role)
            if declaration.spec.tier is tier and contact is not None and (contact.name, contact.contact) not in seen:
                seen.add((contact.name, contact.contact))
                people.append({"role": role, "name": contact.name, "contact": contact.contact, "slo": declaration.name})
    named = {person["role"] for person in people}
    return {
        "tier": tier.value,
        "risk": risk,
        "roles": list(roles),
        "people": people,
        "missing": [role for role in roles if role not in named],
    }
