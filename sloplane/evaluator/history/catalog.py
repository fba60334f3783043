"""What a service catalog (Backstage, an approval workflow) asks of the evaluator, per service.

Why per service: a catalog's entity is a service (a Backstage `Component`), not an SLO, and an approval UI
asks "may this service be released now?", not about one objective. Each answer comes from the same
measurements, alerts and decision steps as the gate (`slo_state` for the state, `Evaluator.preview` for
readiness), so a catalog card, a gate and `explain` never disagree.

Answers are cached for the fleet's evaluation interval (`CACHE_SECONDS`, what the measurement cache keeps
reads for): a catalog page polled by every visitor must not measure anew each time, and nothing it could
show changes faster than the measurements under it. Readiness is never recorded: it is a question, not a
deployment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sloplane.core.durations import format_duration
from sloplane.declaration.model import Declaration
from sloplane.evaluator.contracts import ReleaseControlsView
from sloplane.evaluator.history.sla import reported
from sloplane.evaluator.history.status import slo_state, worst
from sloplane.evaluator.model import GateRequest, Measurement
from sloplane.evaluator.service import Evaluator
from sloplane.semantics.subjects import production_subject

CACHE_SECONDS = 60.0
"""The fleet's evaluation interval: how long an answer is reused, and the `max-age` it is served with."""


class Catalog:
    """The catalog's answers about services, each cached for `CACHE_SECONDS`."""

    def __init__(
        self,
        evaluator: Evaluator,
        controls: ReleaseControlsView | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._evaluator = evaluator
        self._controls = controls
        self._clock = clock
        self._cached: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._services = sorted({declaration.spec.service for declaration in reported(evaluator.fleet)})
        self._lock = threading.Lock()

    def services(self) -> list[str]:
        """Every service with an SLO that is not archived, by name (worked out once: declarations never change)."""
        return list(self._services)

    def summaries(self, visible: Callable[[str], bool]) -> list[dict[str, Any]]:
        """A line per service the caller may see: its teams, SLO count, state and least budget left."""
        return [self._summary(self.detail(name)) for name in self._services if visible(name)]

    def detail(self, service: str) -> dict[str, Any]:
        """One service: its SLOs with objective, state, budget left and burn, owners, freezes, incidents, links.

        Raises KeyError for a service no SLO names."""
        if service not in self._services:
            raise KeyError(service)
        return self._remembered(("detail", service), lambda: self._detail(service))

    def readiness(self, service: str, stage: str | None) -> dict[str, Any]:
        """What a gate would answer now for the service (and stage), unrecorded; KeyError for an unknown service."""
        if service not in self._services:
            raise KeyError(service)
        return self._remembered(("readiness", service, stage or ""), lambda: self._readiness(service, stage))

    def _remembered(self, key: tuple[str, ...], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            found = self._cached.get(key)
            if found is not None and now - found[0] < CACHE_SECONDS:
                return dict(found[1])
        answer = compute()
        with self._lock:
            self._cached[key] = (now, answer)
        return dict(answer)

    def _detail(self, service: str) -> dict[str, Any]:
        declarations = [d for d in reported(self._evaluator.fleet) if d.spec.service == service]
        at = self._evaluator.now()  # the interval-aligned instant every gate and `/v1/slos` measure at now
        now = self._evaluator.clock()
        measured = {(m.slo, m.stage): m for m in self._evaluator.evaluate(at, [d.name for d in declarations])}
        slos = [_slo_entry(d, measured.get((d.name, production_subject(d).stage)), at) for d in declarations]
        state = worst(entry["state"] for entry in slos)
        return {
            "service": service,
            "state": state,
            "teams": sorted({d.spec.owners.team for d in declarations}),
            "slos": slos,
            # freezes at the real instant, as the gate reads them: one made seconds ago counts
            "freezes": self._freezes(service, now),
            "incidents": self._incidents(service, now),
            "links": {
                "slos": [f"/v1/slos/{d.name}" for d in declarations],
                "readiness": f"/v1/catalog/services/{service}/readiness",
            },
            "evaluatedAt": at.isoformat(),
        }

    def _freezes(self, service: str, at: datetime) -> list[dict[str, Any]]:
        if self._controls is None:
            return []
        return [freeze.to_dict() for freeze in self._controls.active_freezes(service, at)]

    def _incidents(self, service: str, at: datetime) -> list[dict[str, Any]]:
        if self._controls is None:
            return []
        return [i.to_dict() for i in self._controls.open_major_incidents(at) if i.covers(service)]

    def _readiness(self, service: str, stage: str | None) -> dict[str, Any]:
        request = GateRequest(service=service, stage=stage, requested_by="catalog")
        answer = self._evaluator.preview(request).to_dict()
        evaluated = self._evaluator.clock().isoformat()
        return {"service": service, "stage": stage, "recorded": False, "evaluatedAt": evaluated, **answer}

    @staticmethod
    def _summary(detail: dict[str, Any]) -> dict[str, Any]:
        left = [entry["budgetRemaining"] for entry in detail["slos"] if entry["budgetRemaining"] is not None]
        return {
            "service": detail["service"],
            "state": detail["state"],
            "teams": detail["teams"],
            "slos": len(detail["slos"]),
            "budgetRemaining": min(left, default=None),
            "frozen": bool(detail["freezes"] or detail["incidents"]),
            "links": {"self": f"/v1/catalog/services/{detail['service']}"},
        }


def _slo_entry(declaration: Declaration, measurement: Measurement | None, at: datetime) -> dict[str, Any]:
    spec = declaration.spec
    state = slo_state(declaration, measurement, at)
    burn = {}
    if measurement is not None:
        burn = {format_duration(w.window): w.burn_rate for w in measurement.windows if w.burn_rate is not None}
    owners = spec.owners.model_dump(mode="json", by_alias=True, exclude_none=True)
    runbook = spec.alerting.runbook
    return {
        "slo": declaration.name,
        "stage": production_subject(declaration).stage,
        "tier": spec.tier.value,
        "objective": spec.objective,
        "window": spec.window.describe(),
        "state": state.state,
        "why": state.why,
        "budgetRemaining": None if measurement is None else measurement.budget_remaining,
        "burnRates": burn,
        "owners": owners,
        "links": {"slo": f"/v1/slos/{declaration.name}", **({"runbook": str(runbook)} if runbook else {})},
    }
