"""The platform report: which consumers' releases a service held back by burning its budget — what a platform
team brings to its consumers' reviews, and what tells it which dependents an outage of its own cost.

From the decision log alone. A gate is *held* by service S when one of its reasons is `dependency`
(`deciding.release.dependency`: the breach is attributed to a declared dependency burning at page level, and the
gate answers inconclusive rather than rolling back) and the subject that reason names (`values.dependency`, an
SLO or `slo/stage`) is one of S's SLOs in the declarations given. Replays (a request with `at`, back-testing)
are left out, as everywhere the log is read for history: they held nothing back.

Per consumer (its service and SLO):
- decisions held, distinct revisions held, the first and last held decision;
- holds: for each stage and release (the request's revision, else its pipeline; decisions naming neither share
  one), from its first held decision to the next decision of the same stage and release that passed, or to the
  report's end when none did (`passed` false); a later hold of the same release starts again after a pass. Time
  held is the sum of its holds;
- S's state then, as the log has it: the page-tier alerts the held decisions saw S firing and their highest burn
  rate (`values.alert`, `values.burn_rate`), and the outcomes of S's own gates decided during each hold.
A decision counts when it was decided in [since, until] (`decidedAt`, inclusive as the log's own queries are).

The report (JSON is this dict; CSV and HTML in `oncall_files`):

    {"kind": "platform", "service", "generatedAt", "from" (none: the log's beginning), "to",
     "providerSlos": [S's SLO names],
     "consumers": [{"service", "slo", "team", "decisionsHeld", "revisionsHeld", "firstHeld", "lastHeld",
                    "minutesHeld", "dependencies": [S's subjects named], "alerts": [alert names],
                    "peakDependencyBurnRate",
                    "holds": [{"stage", "release", "start", "end", "passed", "minutes", "decisionsHeld",
                               "peakDependencyBurnRate", "providerDecisions": {outcome: count}}]}],
     "provider": {"decisions", "outcomes": {outcome: count}},
     "totals": {"services", "slos", "decisionsHeld", "revisionsHeld", "minutesHeld", "decisionsRead"},
     "contentHash": "sha256:…"}

Consumers come most time held first. Reading walks the log twice in `seq` order (`iter_with_seq`, in batches):
first to find the SLOs S held, then keeping S's decisions and theirs, so memory holds those, not the log.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sloplane.core.serialize import canonical_json
from sloplane.declaration.validation import did_you_mean
from sloplane.semantics.subjects import Fleet

HELD = "dependency"
"""The reason code of a gate held by a dependency's burn."""


class DecisionStream(Protocol):
    """What the report reads of the decision log (both stores have it)."""

    def iter_with_seq(self, after_seq: int = 0, *, batch_size: int = 500) -> Iterator[tuple[int, dict[str, Any]]]: ...


class PlatformError(ValueError):
    """An option that makes no report, with its name (`service`: the CLI says `--service`)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def services(fleet: Fleet) -> list[str]:
    """Every service the declarations name, sorted (what `--service` may be)."""
    return sorted({declaration.spec.service for declaration in fleet.values()})


def check_service(fleet: Fleet, service: str) -> None:
    """Raise `PlatformError` for a service no declaration names, with the closest one when it looks mistyped."""
    known = services(fleet)
    if service not in known:
        raise PlatformError("service", f"no SLO declares service '{service}'{did_you_mean(service, known)}")


def _dependency_reasons(record: dict[str, Any], provided: set[str]) -> list[dict[str, Any]]:
    """The record's `dependency` reasons naming one of `provided` (SLO names)."""
    found = []
    for reason in record.get("reasons") or []:
        values = reason.get("values") or {}
        named = str(values.get("dependency", ""))
        if reason.get("code") == HELD and named.split("/", 1)[0] in provided:
            found.append(values)
    return found


@dataclass
class _Hold:
    stage: str | None
    release: str | None
    start: datetime
    end: datetime | None = None
    held: int = 0
    peak: float | None = None

    def to_dict(self, until: datetime, provider: list[tuple[datetime, str]]) -> dict[str, Any]:
        end = self.end or until
        return {
            "stage": self.stage,
            "release": self.release,
            "start": self.start.isoformat(),
            "end": end.isoformat(),
            "passed": self.end is not None,
            "minutes": (end - self.start).total_seconds() / 60,
            "decisionsHeld": self.held,
            "peakDependencyBurnRate": self.peak,
            "providerDecisions": dict(sorted(Counter(o for at, o in provider if self.start <= at <= end).items())),
        }


@dataclass
class _Consumer:
    service: str
    slo: str
    team: str | None
    held: list[datetime] = field(default_factory=list)
    revisions: set[str] = field(default_factory=set)
    dependencies: set[str] = field(default_factory=set)
    alerts: set[str] = field(default_factory=set)
    holds: list[_Hold] = field(default_factory=list)
    open: dict[tuple[str | None, str | None], _Hold] = field(default_factory=dict)


def _peak(current: float | None, values: list[dict[str, Any]]) -> float | None:
    rates = [float(v["burn_rate"]) for v in values if isinstance(v.get("burn_rate"), int | float)]
    return max([*rates, *([] if current is None else [current])], default=None)


def _in_span(record: dict[str, Any], since: datetime | None, until: datetime) -> datetime | None:
    """When it was decided, if it is a live decision in [since, until]."""
    if (record.get("request") or {}).get("at") is not None:
        return None
    decided = datetime.fromisoformat(str(record["decidedAt"]))
    if decided > until or (since is not None and decided < since):
        return None
    return decided


def platform_report(
    fleet: Fleet, log: DecisionStream, service: str, *, since: datetime | None, until: datetime, at: datetime
) -> dict[str, Any]:
    """The report for `service` (see the module's docstring); `service` must be declared (`services`)."""
    provided = {name for name, declaration in fleet.items() if declaration.spec.service == service}
    consumers: dict[str, _Consumer] = {}
    provider: list[tuple[datetime, str]] = []
    read, relevant = _records(log, since, until, service, provided)
    for _, record in relevant:
        decided = record["_decided"]
        if record.get("service") == service or record.get("slo") in provided:
            provider.append((decided, str(record["decision"])))
        _follow(consumers, fleet, record, decided, _dependency_reasons(record, provided))
    lines = [_line(consumer, until, provider) for consumer in consumers.values() if consumer.held]
    lines.sort(key=lambda line: (-line["minutesHeld"], line["service"], line["slo"]))
    report: dict[str, Any] = {
        "kind": "platform",
        "service": service,
        "generatedAt": at.isoformat(),
        "from": None if since is None else since.isoformat(),
        "to": until.isoformat(),
        "providerSlos": sorted(provided),
        "consumers": lines,
        "provider": {"decisions": len(provider), "outcomes": dict(sorted(Counter(o for _, o in provider).items()))},
        "totals": {
            "services": len({line["service"] for line in lines}),
            "slos": len(lines),
            "decisionsHeld": sum(line["decisionsHeld"] for line in lines),
            "revisionsHeld": sum(line["revisionsHeld"] for line in lines),
            "minutesHeld": sum(line["minutesHeld"] for line in lines),
            "decisionsRead": read,
        },
    }
    report["contentHash"] = "sha256:" + hashlib.sha256(canonical_json(report).encode()).hexdigest()
    return report


def _records(
    log: DecisionStream, since: datetime | None, until: datetime, service: str, provided: set[str]
) -> tuple[int, list[tuple[tuple[datetime, int], dict[str, Any]]]]:
    """How many live decisions the span holds, and those the report follows, in time order (decided, seq), each
    with `_decided` parsed: the provider's, and every decision of an SLO it held at least once (its passes close
    holds). Two passes over the log, so that memory holds those alone, not the log."""
    read, consumers = 0, set()
    for _, record in log.iter_with_seq():
        if _in_span(record, since, until) is not None:
            read += 1
            if _dependency_reasons(record, provided):
                consumers.add(record["slo"])
    kept = []
    for seq, record in log.iter_with_seq():
        mine = record.get("service") == service or record.get("slo") in provided or record.get("slo") in consumers
        decided = _in_span(record, since, until) if mine else None
        if decided is not None:
            kept.append(((decided, seq), {**record, "_decided": decided}))
    kept.sort(key=lambda pair: pair[0])
    return read, kept


def _follow(
    consumers: dict[str, _Consumer],
    fleet: Fleet,
    record: dict[str, Any],
    decided: datetime,
    held_by: list[dict[str, Any]],
) -> None:
    """One decision of any SLO, in time order: a held one opens or extends its release's hold; a pass closes it."""
    slo = str(record["slo"])
    request = record.get("request") or {}
    release = request.get("revision") or request.get("pipeline")
    key = (record.get("stage"), release)
    consumer = consumers.get(slo)
    if held_by:
        if consumer is None:
            declaration = fleet.get(slo)
            owner = record.get("service") or (declaration.spec.service if declaration else "unknown")
            team = declaration.spec.owners.team if declaration else None
            consumer = consumers[slo] = _Consumer(str(owner), slo, team)
        consumer.held.append(decided)
        if request.get("revision"):
            consumer.revisions.add(str(request["revision"]))
        consumer.dependencies |= {str(values["dependency"]) for values in held_by}
        consumer.alerts |= {str(values["alert"]) for values in held_by if values.get("alert")}
        hold = consumer.open.get(key)
        if hold is None:
            hold = consumer.open[key] = _Hold(key[0], release, decided)
            consumer.holds.append(hold)
        hold.held += 1
        hold.peak = _peak(hold.peak, held_by)
    elif consumer is not None and record.get("decision") == "pass" and key in consumer.open:
        consumer.open.pop(key).end = decided


def _line(consumer: _Consumer, until: datetime, provider: list[tuple[datetime, str]]) -> dict[str, Any]:
    holds = [hold.to_dict(until, provider) for hold in consumer.holds]
    holds.sort(key=lambda hold: (hold["start"], hold["stage"] or "", hold["release"] or ""))
    peaks = [hold["peakDependencyBurnRate"] for hold in holds if hold["peakDependencyBurnRate"] is not None]
    return {
        "service": consumer.service,
        "slo": consumer.slo,
        "team": consumer.team,
        "decisionsHeld": len(consumer.held),
        "revisionsHeld": len(consumer.revisions),
        "firstHeld": min(consumer.held).isoformat(),
        "lastHeld": max(consumer.held).isoformat(),
        "minutesHeld": sum(hold["minutes"] for hold in holds),
        "dependencies": sorted(consumer.dependencies),
        "alerts": sorted(consumer.alerts),
        "peakDependencyBurnRate": max(peaks, default=None),
        "holds": holds,
    }
