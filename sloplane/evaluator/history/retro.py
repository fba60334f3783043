"""The deployment retrospective: one release (`--revision R`) or one pipeline run (`--pipeline P`) as the decision
log and the rollups saw it — the gates in order with their reasons and burn, the budget its hours used against
the background, rollbacks, break-glass, when it was detected against what the alerts allow, and a blameless
postmortem draft (`retro_postmortem`), required when it used at least 20% of a budget (the SRE Workbook's policy).

Where each part comes from, so that every number can be checked by hand from the log and the rows
(`tests/test_report_retro.py` does):
- decisions: the revision's (`DecisionLog.query(revision=)`), or, for a pipeline, the log's decisions of the
  last `PIPELINE_LOOKBACK` filtered on `request.pipeline` here (the log has no query by pipeline); decided up to
  `at`; replays (a request with `at`: back-testing) are left out and counted in `notes`. They are grouped into
  releases by service and revision (else pipeline), as `DecisionLog.releases` groups them;
- the release's window: `deployments.deployment_windows` over the group's decisions (from one analysis window
  before its first gate to its last; its outcome is the last decision's, `fail` meaning rolled back);
- rollbacks: the decisions `notify.classify` calls deployment-related (a fail on a breach while a release is in
  flight); break-glass: decisions whose request carried one (who broke the glass is left out: the retro is
  about the system; `sloplane decisions` has the name); reason messages lose their `by <name>` the same way;
- budget (per SLO of the service, its production subject, from the rollups, to the hour as the SLA report):
  bad events of the rows overlapping the window, against the allowed bad events of the SLO's compliance period
  holding the window's end (rolling: the window back from it; calendar: the week, month or quarter in its zone):
  (1 − objective) × the period's counted events, scaled to the whole period when rows cover only part of it
  (a period not over yet, or history shorter than it): events ÷ hours with data × the period's hours;
- background: the same hours of the `BACKGROUND_DAYS` preceding days (24 h apart), leaving out hours that
  overlap any release of the service and hours without data; its error ratio times the release hours' events
  is what the background alone would have burned, the rest is the excess the release added;
- detection: the first gate that failed on a breach (a break-glass that overrode one counts), else the first
  decision whose measurement shows an alert's both windows above its factor; measured from the window's start;
  the theory is `explain`'s (`BurnRateAlert.detection_time`) for the error ratio that decision saw over the
  gate's analysis window; late when measured exceeds the fastest tier's time by more than the analysis window
  (the window's start is placed that far before the first gate, so that much is the model's own slack).

The JSON (the dict `retro_report` returns): `kind` "retro"; `selector` {revision | pipeline}; `generatedAt`;
`releases`: each {service, release, revision, pipelines, start, firstGate, lastGate, decisions, outcome,
rolledBack, timeline: [{decisionId, decidedAt, slo, stage, outcome, incident, reasons: [{code, message}],
burnRates {window: rate}, budgetRemaining, breakGlass {reason, overridden} | null}], rollbacks, breakGlass,
attribution {code: count, dependencies: [...]}, companions: [{pipeline, service, release}], slos: [{slo, stage,
objective, window, deployment {start, end, hours, events, badEvents, errorRatio, burnRate}, background {days,
hours, events, badEvents, errorRatio, burnRate}, excessBadEvents, period {start, end, hours, hoursWithData,
events, allowedBadEvents}, budgetShare, excessBudgetShare, hourly: [{start, events, badEvents, burnRate,
deployment}], links}], budgetShare (the largest), detection {…}, postmortem {required, threshold, share,
impact, prompts: [{topic, question, because}]}}; `summary`; `notes`; `contentHash` (SHA-256 of the rest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import fsum
from typing import Any, Protocol
from urllib.parse import urlencode

from sloplane.core.budget import error_budget
from sloplane.core.durations import format_duration
from sloplane.core.names import dashboard_uid
from sloplane.core.serialize import canonical_json
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import DEFAULT_GATE
from sloplane.evaluator.deciding.deployments import DeploymentWindow, deployment_windows
from sloplane.evaluator.history.retro_detection import detection
from sloplane.evaluator.history.retro_postmortem import postmortem
from sloplane.evaluator.history.retro_records import as_decision, blameless, instant
from sloplane.evaluator.history.sla import reported
from sloplane.evaluator.measuring.periods import period_start
from sloplane.evaluator.model import ReleaseSpan, Rollup
from sloplane.evaluator.notify.classify import IncidentClass, classify
from sloplane.semantics.subjects import Fleet, production_subject

BACKGROUND_DAYS = 7
"""The background is read from the same hours of this many preceding days: a week holds every weekday once."""
DECISION_LIMIT = 10_000
"""Decisions read for one revision: far more than any release is gated; reaching it is said in `notes`."""
PIPELINE_LOOKBACK = timedelta(days=90)
PIPELINE_SCAN = 100_000
"""A pipeline's decisions are found among the log's newest this many of the last `PIPELINE_LOOKBACK`."""
CHART_BEFORE, CHART_AFTER = timedelta(hours=12), timedelta(hours=6)
"""The hours around the release the hourly chart shows."""
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
CALENDAR_REACH = {"week": timedelta(days=8), "month": timedelta(days=32), "quarter": timedelta(days=95)}
"""From a calendar period's start, an instant inside the next one (whose start is this one's end)."""

Span = tuple[datetime, datetime]
RowReader = Callable[[datetime, datetime, list[str]], Sequence[Rollup]]
"""(since, until, SLO names) → the rows whose hour starts in [since, until): `RollupStore.read`."""


class RetroLog(Protocol):
    """What the retro reads of the decision log (both stores have it)."""

    def query(
        self,
        *,
        revision: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...

    def releases(self, service: str, since: datetime) -> list[ReleaseSpan]: ...


class RetroError(LookupError):
    """Nothing to report: no live decision about the revision or pipeline (the message says which)."""


@dataclass(frozen=True)
class Selector:
    """What the retro is about: exactly one of a revision and a pipeline run."""

    revision: str | None = None
    pipeline: str | None = None

    def __post_init__(self) -> None:
        if (self.revision is None) == (self.pipeline is None):
            raise ValueError("give exactly one of revision and pipeline")

    def describe(self) -> str:
        return f"revision '{self.revision}'" if self.revision is not None else f"pipeline '{self.pipeline}'"

    def to_dict(self) -> dict[str, str]:
        return {"revision": self.revision} if self.revision is not None else {"pipeline": str(self.pipeline)}


def _pipeline_of(record: dict[str, Any]) -> str | None:
    value = record["request"].get("pipeline")
    return value if isinstance(value, str) else None


def _decisions(log: RetroLog, selector: Selector, at: datetime, notes: list[str]) -> list[dict[str, Any]]:
    """The live decisions the retro is about, oldest first."""
    if selector.revision is not None:
        found = log.query(revision=selector.revision, until=at, limit=DECISION_LIMIT)
        if len(found) >= DECISION_LIMIT:
            notes.append(f"only the newest {DECISION_LIMIT} decisions of the revision were read")
    else:
        scanned = log.query(since=at - PIPELINE_LOOKBACK, until=at, limit=PIPELINE_SCAN)
        if len(scanned) >= PIPELINE_SCAN:
            notes.append(f"the pipeline was looked for among the log's newest {PIPELINE_SCAN} decisions only")
        found = [record for record in scanned if _pipeline_of(record) == selector.pipeline]
    replays = [record for record in found if record["request"].get("at") is not None]
    if replays:
        notes.append(f"{len(replays)} replayed decision(s) (a request with `at`: back-testing) left out")
    live = [record for record in found if record["request"].get("at") is None]
    return sorted(live, key=lambda record: (instant(record["decidedAt"]), record["id"]))


def _release_key(record: dict[str, Any]) -> tuple[str, str]:
    """(service, release) as `DecisionLog.releases` groups decisions: the revision, else the pipeline."""
    request = record["request"]
    service = record.get("service") or request.get("service") or record["slo"]
    return str(service), str(request.get("revision") or request.get("pipeline"))


def _window(records: list[dict[str, Any]], service: str, release: str, lead: timedelta) -> DeploymentWindow:
    """The release's deployment window, from its own decisions (up to `at`) as `releases` would span them."""
    last = records[-1]
    span = ReleaseSpan(
        release,
        instant(records[0]["decidedAt"]),
        instant(last["decidedAt"]),
        len(records),
        _pipeline_of(last),
        last["decision"],
    )
    (window,) = deployment_windows([span], service, lead)
    return window


def _overlaps(row: Rollup, spans: Sequence[Span]) -> bool:
    return any(start < row.end and end > row.start for start, end in spans)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _burn(bad: float, total: float, allowance: float) -> float | None:
    ratio = _ratio(bad, total)
    return None if ratio is None or allowance <= 0 else ratio / allowance


def compliance_period(declaration: Declaration, end: datetime) -> Span:
    """The SLO's compliance period holding `end`: the rolling window back from it, or its calendar period."""
    window = declaration.spec.window
    if window.rolling is not None:
        return end - window.rolling, end
    start = period_start(window, end)
    assert window.calendar is not None  # a window is rolling or calendar
    return start, period_start(window, start + CALENDAR_REACH[window.calendar.value])


def _links(declaration: Declaration, release: str) -> dict[str, str]:
    runbook = declaration.spec.alerting.runbook
    links = {
        "slo": f"/v1/slos/{declaration.name}",
        "burn": f"/v1/slos/{declaration.name}/burn",
        "decisions": "/v1/decisions?" + urlencode({"slo": declaration.name, "revision": release}),
        "grafanaDashboard": f"/d/{dashboard_uid(declaration.name)}",
    }
    return {**links, "runbook": str(runbook)} if runbook else links


@dataclass(frozen=True)
class _Hours:
    """Counted events of some rows: what every budget figure below is made of."""

    rows: tuple[Rollup, ...]

    @property
    def bad(self) -> float:
        return fsum(row.counted_bad_events or 0.0 for row in self.rows)

    @property
    def total(self) -> float:
        return fsum(row.counted_total_events or 0.0 for row in self.rows)

    @property
    def hours(self) -> float:
        return fsum((row.end - row.start).total_seconds() for row in self.rows) / 3600


def _with_data(rows: Sequence[Rollup]) -> list[Rollup]:
    return [row for row in rows if row.total_events is not None]


def slo_burn(
    declaration: Declaration,
    rows: Sequence[Rollup],
    window: DeploymentWindow,
    releases: Sequence[Span],
    at: datetime,
) -> dict[str, Any]:
    """One SLO's budget during the release (see the module's docstring); `rows`: its production subject's."""
    subject = production_subject(declaration)
    spans = [(window.start, window.end)]
    deployed = _Hours(tuple(row for row in _with_data(rows) if _overlaps(row, spans)))
    objective = deployed.rows[0].objective if deployed.rows else subject.objective
    allowance = error_budget(objective)
    by_start = {row.start: row for row in _with_data(rows)}
    background = _Hours(
        tuple(
            found
            for row in deployed.rows
            for days in range(1, BACKGROUND_DAYS + 1)
            if (found := by_start.get(row.start - days * DAY)) is not None and not _overlaps(found, releases)
        )
    )
    background_ratio = _ratio(background.bad, background.total)
    excess = None if background_ratio is None else max(0.0, deployed.bad - background_ratio * deployed.total)
    start, end = compliance_period(declaration, window.end)
    period = _Hours(tuple(row for row in _with_data(rows) if start <= row.start < end and row.start < at))
    period_hours = (end - start) / HOUR
    allowed = allowance * period.total * period_hours / period.hours if period.hours > 0 else 0.0
    shown = [row for row in rows if window.start - CHART_BEFORE <= row.start < min(window.end + CHART_AFTER, at)]
    return {
        "slo": declaration.name,
        "stage": subject.stage,
        "objective": objective,
        "window": declaration.spec.window.describe(),
        "deployment": {
            "start": deployed.rows[0].start.isoformat() if deployed.rows else None,
            "end": deployed.rows[-1].end.isoformat() if deployed.rows else None,
            "hours": len(deployed.rows),
            "events": deployed.total,
            "badEvents": deployed.bad,
            "errorRatio": _ratio(deployed.bad, deployed.total),
            "burnRate": _burn(deployed.bad, deployed.total, allowance),
        },
        "background": {
            "days": BACKGROUND_DAYS,
            "hours": len(background.rows),
            "events": background.total,
            "badEvents": background.bad,
            "errorRatio": background_ratio,
            "burnRate": _burn(background.bad, background.total, allowance),
        },
        "excessBadEvents": excess,
        "period": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "hours": period_hours,
            "hoursWithData": period.hours,
            "events": period.total,
            "allowedBadEvents": allowed,
        },
        "budgetShare": _ratio(deployed.bad, allowed),
        "excessBudgetShare": None if excess is None else _ratio(excess, allowed),
        "hourly": [
            {
                "start": row.start.isoformat(),
                "events": row.counted_total_events,
                "badEvents": row.counted_bad_events,
                "burnRate": None
                if row.total_events is None
                else _burn(row.counted_bad_events or 0.0, row.counted_total_events or 0.0, allowance),
                "deployment": _overlaps(row, spans),
            }
            for row in shown
        ],
        "links": _links(declaration, window.revision),
    }


def timeline_entry(record: dict[str, Any]) -> dict[str, Any]:
    """One decision as the timeline shows it: reasons without names, burn per window, the incident class."""
    measurement = record.get("measurement") or {}
    windows = sorted(measurement.get("windows", []), key=lambda w: w["window"])
    override = record["request"].get("breakGlass")
    overridden = next((r["values"].get("overridden") for r in record["reasons"] if r["code"] == "break-glass"), None)
    kind = classify(as_decision(record))
    return {
        "decisionId": record["id"],
        "decidedAt": instant(record["decidedAt"]).isoformat(),
        "slo": record["slo"],
        "stage": record.get("stage"),
        "outcome": record["decision"],
        "incident": None if kind is None else kind.value,
        "reasons": [
            {"code": r["code"], "message": blameless(r["message"], r.get("values", {}))} for r in record["reasons"]
        ],
        "burnRates": {format_duration(timedelta(seconds=w["window"])): w["burnRate"] for w in windows},
        "budgetRemaining": measurement.get("budgetRemaining"),
        "breakGlass": None if override is None else {"reason": override["reason"], "overridden": overridden},
    }


ATTRIBUTION_CODES = ("canary-worse", "canary-comparable", "canary-low-traffic", "background", "dependency")


def _attribution(records: list[dict[str, Any]]) -> dict[str, Any]:
    """How many decisions carried each attribution reason, and the dependencies named."""
    counts = {
        code: sum(1 for r in records if any(x["code"] == code for x in r["reasons"])) for code in ATTRIBUTION_CODES
    }
    named = {
        str(x["values"]["dependency"])
        for r in records
        for x in r["reasons"]
        if x["code"] == "dependency" and "dependency" in x.get("values", {})
    }
    return {**counts, "dependencies": sorted(named)}


def _companions(
    log: RetroLog, selector: Selector, groups: dict[tuple[str, str], list[dict[str, Any]]], at: datetime
) -> dict[str, list[tuple[str, str]]]:
    """For each pipeline seen, every release it gated: the group keys of a pipeline retro, else found in the log
    around the revision's decisions (a day either side)."""
    found: dict[str, set[tuple[str, str]]] = {}
    if selector.pipeline is not None:
        found[selector.pipeline] = set(groups)
        return {pipeline: sorted(keys) for pipeline, keys in found.items()}
    records = [record for group in groups.values() for record in group]
    pipelines = {p for record in records if (p := _pipeline_of(record)) is not None}
    if pipelines:
        since = min(instant(r["decidedAt"]) for r in records) - DAY
        until = min(max(instant(r["decidedAt"]) for r in records) + DAY, at)
        for record in log.query(since=since, until=until, limit=PIPELINE_SCAN):
            pipeline = _pipeline_of(record)
            if pipeline in pipelines and record["request"].get("at") is None:
                found.setdefault(pipeline, set()).add(_release_key(record))
    return {pipeline: sorted(keys) for pipeline, keys in sorted(found.items())}


@dataclass(frozen=True)
class RetroSources:
    """Where one report reads from, and as at when."""

    fleet: Fleet
    log: RetroLog
    read: RowReader
    at: datetime


def release_section(
    sources: RetroSources,
    key: tuple[str, str],
    records: list[dict[str, Any]],
    companions: dict[str, list[tuple[str, str]]],
) -> dict[str, Any]:
    """Everything about one release of one service."""
    fleet, log, read, at = sources.fleet, sources.log, sources.read, sources.at
    service, release = key
    declarations = [d for d in reported(fleet) if d.spec.service == service]
    lead = max((d.spec.effective_gate.analysis_window for d in declarations), default=DEFAULT_GATE.analysis_window)
    window = _window(records, service, release, lead)
    since = window.start - BACKGROUND_DAYS * DAY - lead
    spans = [(w.start, w.end) for w in deployment_windows(log.releases(service, since), service, lead)]
    periods = [compliance_period(d, window.end)[0] for d in declarations]
    earliest = min([*periods, since, window.start - CHART_BEFORE]) - HOUR  # a row starting before may overlap
    rows = read(earliest, at, [d.name for d in declarations])
    slos = [
        slo_burn(
            d,
            [row for row in rows if row.slo == d.name and row.stage == production_subject(d).stage],
            window,
            [*spans, (window.start, window.end)],
            at,
        )
        for d in declarations
    ]
    timeline = [timeline_entry(record) for record in records]
    pipelines = sorted({p for record in records if (p := _pipeline_of(record)) is not None})
    section: dict[str, Any] = {
        "service": service,
        "release": release,
        "revision": records[-1]["request"].get("revision"),
        "pipelines": pipelines,
        "start": window.start.isoformat(),
        "firstGate": timeline[0]["decidedAt"],
        "lastGate": timeline[-1]["decidedAt"],
        "decisions": len(records),
        "outcome": window.outcome,
        "rolledBack": window.outcome == "fail",
        "timeline": timeline,
        "rollbacks": [entry for entry in timeline if entry["incident"] == IncidentClass.DEPLOYMENT.value],
        "breakGlass": [entry for entry in timeline if entry["breakGlass"] is not None],
        "attribution": _attribution(records),
        "companions": [
            {"pipeline": pipeline, "service": other[0], "release": other[1]}
            for pipeline in pipelines
            for other in companions.get(pipeline, [])
            if other != key
        ],
        "slos": slos,
        "budgetShare": max((s["budgetShare"] for s in slos if s["budgetShare"] is not None), default=None),
        "detection": detection(fleet, records, window, lead),
    }
    section["postmortem"] = postmortem(section, {d.name: d for d in declarations})
    return section


def retro_report(
    fleet: Fleet,
    log: RetroLog,
    read: RowReader,
    at: datetime,
    *,
    revision: str | None = None,
    pipeline: str | None = None,
) -> dict[str, Any]:
    """The retrospective of a revision or a pipeline run (exactly one), as at `at`.

    Raises `RetroError` when the log has no live decision about it, and ValueError unless exactly one is given.
    """
    selector = Selector(revision, pipeline)
    notes: list[str] = []
    records = _decisions(log, selector, at.astimezone(UTC), notes)
    if not records:
        raise RetroError(f"no live gate decisions about {selector.describe()} up to {at.isoformat()}")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(_release_key(record), []).append(record)
    companions = _companions(log, selector, groups, at)
    sources = RetroSources(fleet, log, read, at)
    releases = [release_section(sources, key, group, companions) for key, group in sorted(groups.items())]
    shares = [r["budgetShare"] for r in releases if r["budgetShare"] is not None]
    report: dict[str, Any] = {
        "kind": "retro",
        "selector": selector.to_dict(),
        "generatedAt": at.isoformat(),
        "releases": releases,
        "summary": {
            "releases": len(releases),
            "decisions": len(records),
            "rolledBack": sum(1 for r in releases if r["rolledBack"]),
            "breakGlass": sum(len(r["breakGlass"]) for r in releases),
            "maxBudgetShare": max(shares, default=None),
            "postmortemRequired": any(r["postmortem"]["required"] for r in releases),
        },
        "notes": notes,
    }
    report["contentHash"] = "sha256:" + hashlib.sha256(canonical_json(report).encode()).hexdigest()
    return report
