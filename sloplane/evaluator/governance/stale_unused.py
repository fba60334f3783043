"""The `unused` rule of `govern stale`: an SLO no gate asked about in `UNUSED_DAYS` while its siblings (the other
SLOs of its service) were gated — the pipeline gates the service, just not on this objective.

Why only against siblings: a service whose SLOs nobody gates may not deploy through a pipeline at all, and saying
so of each of its SLOs would be noise; the `unused` finding is about an objective the release process forgot.
Replays (a request with `at`: back-testing) are not a use of the gate and are left out, as the log's `releases`
leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sloplane.declaration.model import Declaration
from sloplane.evaluator.governance.stale_rules import REVIEW, UNUSED, Finding, NotChecked, Outcome

UNUSED_DAYS = 90
"""How far back a gate decision counts as use."""
SCAN = 100
"""Decisions about one SLO read to find a live one among replays; all replays: the rule is not checked."""


class GateLog(Protocol):
    """What the rule reads of the decision log (both stores have it)."""

    def query(
        self,
        *,
        slo: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...

    def span(self, since: datetime, until: datetime) -> tuple[int, int | None, int | None]: ...


def _live(record: dict[str, Any]) -> bool:
    return (record.get("request") or {}).get("at") is None


def _last_gate(log: GateLog, slo: str, since: datetime, until: datetime) -> tuple[str | None, bool]:
    """The newest live decision's time in [since, until] (None: none), and whether the answer is sure (False: the
    `SCAN` newest were all replays)."""
    records = log.query(slo=slo, since=since, until=until, limit=SCAN)
    live = [record for record in records if _live(record)]
    if live:
        return str(live[0]["decidedAt"]), True
    return None, len(records) < SCAN


def unused(declarations: Sequence[Declaration], log: GateLog, at: datetime) -> dict[str, Outcome]:
    """SLO name → its `unused` outcome, for SLOs of services with more than one SLO (others: not judged)."""
    since = at - timedelta(days=UNUSED_DAYS)
    by_service: dict[str, list[Declaration]] = {}
    for declaration in declarations:
        by_service.setdefault(declaration.spec.service, []).append(declaration)
    outcomes: dict[str, Outcome] = {}
    for service, siblings in sorted(by_service.items()):
        if len(siblings) < 2:
            continue
        gates = {declaration.name: _last_gate(log, declaration.name, since, at) for declaration in siblings}
        gated = sorted(name for name, (last, _) in gates.items() if last is not None)
        if not gated:
            continue
        for name, (last, sure) in sorted(gates.items()):
            if last is not None:
                continue
            if not sure:
                outcomes[name] = NotChecked(UNUSED, f"the {SCAN} newest decisions about it were all replays")
                continue
            message = (
                f"no gate asked about it in the {UNUSED_DAYS} days before {at.date()} while {', '.join(gated)} of "
                f"service {service} were gated: gate releases on it too, or archive it"
            )
            inputs = {
                "since": since.isoformat(),
                "until": at.isoformat(),
                "days": UNUSED_DAYS,
                "service": service,
                "gatedSiblings": [{"slo": sibling, "lastGate": gates[sibling][0]} for sibling in gated],
            }
            outcomes[name] = Finding(UNUSED, REVIEW, message, inputs)
    return outcomes
