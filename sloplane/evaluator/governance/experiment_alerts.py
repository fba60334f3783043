"""`sloplane experiment`'s alert part: the hours each tier of the SLO's generated burn-rate alerts would have fired
over the range, under the declared objective and under the experiment's (issue 18).

The replay is the on-call report's (`history.oncall`: `replayed_alerts` builds each subject's alert conditions
from the declaration — the very rule text `render.prometheus` writes, thresholds = factor × (1 − objective) — and
`read_replays` evaluates them minute by minute from the raw series on a real Prometheus, with the rules' `for`),
run once with the fleet as declared and once with the SLO's objective replaced. Hours are those the alert rules fire
(Prometheus' `ALERTS`), each tier's pairs merged per subject and clipped to the range — before Alertmanager's
muting and inhibition, which route notifications and do not change when a rule fires. Subjects the replay cannot
read (composites, SLIs without PromQL, SLOs not rendered for Prometheus) are listed with why.

Cost: one range query per subject, alert pair and objective per 10,000 minutes (about a week): 90 days of an
unstaged SLO with the Workbook's four pairs is about 100 queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sloplane.core.schedules import merge_spans
from sloplane.declaration.model import Declaration
from sloplane.evaluator.history.oncall import OncallOptions, ReplayedAlert, read_replays, replayed_alerts
from sloplane.evaluator.history.oncall_shifts import Span, minutes_in, within
from sloplane.evaluator.measuring.backends.base import MetricsBackend
from sloplane.semantics.subjects import Fleet


def _alerts(fleet: Fleet, name: str) -> tuple[list[ReplayedAlert], dict[str, str]]:
    found, skipped = replayed_alerts(fleet)
    mine = [alert for alert in found if alert.subject.slo == name]
    prefix = f"{name}/"
    return mine, {key: why for key, why in skipped.items() if key == name or key.startswith(prefix)}


def _firing(
    fleet: Fleet, name: str, backend: MetricsBackend, bounds: Span
) -> tuple[dict[tuple[str, str], list[Span]], dict[str, str], int, list[ReplayedAlert]]:
    """(subject key, tier) → the merged spans its alerts fired in, inside `bounds`; the subjects not replayed;
    the queries asked; the alerts."""
    alerts, skipped = _alerts(fleet, name)
    replays, queries = read_replays(backend, alerts, OncallOptions(since=bounds[0], until=bounds[1]), skipped)
    spans = {
        (key, tier.value): within(merge_spans(s for pair in replay.spans.values() for s in pair), bounds)
        for (key, tier), replay in replays.items()
    }
    return spans, skipped, queries, [alert for alert in alerts if alert.subject.key not in skipped]


def alert_hours(
    fleet: Fleet, experiment: Declaration, backend: MetricsBackend, since: datetime, until: datetime
) -> dict[str, Any]:
    """Hours fired per subject and tier, declared and under the experiment; raises `oncall.ReplayError` when
    Prometheus cannot be read."""
    name = experiment.name
    swapped = Fleet(experiment if fleet[other].name == name else fleet[other] for other in fleet)
    old, skipped, old_queries, old_alerts = _firing(fleet, name, backend, (since, until))
    new, _, new_queries, new_alerts = _firing(swapped, name, backend, (since, until))
    thresholds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for alert, label in [(a, "threshold") for a in old_alerts] + [(a, "experimentThreshold") for a in new_alerts]:
        rows = thresholds.setdefault((alert.subject.key, alert.alert.tier.value), [])
        row = next((r for r in rows if r["windows"] == alert.alert.name), None)
        if row is None:
            row = {"windows": alert.alert.name, "factor": alert.alert.factor, "threshold": None}
            row["experimentThreshold"] = None
            rows.append(row)
        row[label] = alert.threshold
    tiers = []
    for key, tier in sorted(set(old) | set(new) | set(thresholds)):
        before, after = old.get((key, tier), []), new.get((key, tier), [])
        tiers.append(
            {
                "subject": key,
                "tier": tier,
                "hours": minutes_in(before) / 60,
                "experimentHours": minutes_in(after) / 60,
                "firings": len(before),
                "experimentFirings": len(after),
                "alerts": thresholds.get((key, tier), []),
            }
        )
    return {
        "replayed": True,
        "why": None,
        "tiers": tiers,
        "notReplayed": dict(sorted(skipped.items())),
        "queries": old_queries + new_queries,
    }


def not_replayed(why: str) -> dict[str, Any]:
    """The alert part when it is not replayed (no Prometheus given): said, never guessed."""
    return {"replayed": False, "why": why, "tiers": [], "notReplayed": {}, "queries": 0}
