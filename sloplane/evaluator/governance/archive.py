"""Archiving an SLO (`sloplane archive NAME`, issue 18): what must hold first, what the archive holds, and the
deletion call for the series it leaves in Prometheus.

An SLO is archived only when every one of these holds; otherwise every one that does not is a blocker, and nothing
is written:

- `not-deprecated` / `already-archived`: its `spec.lifecycle` is `deprecated` (deprecated SLOs still render and
  gate, so users and pipelines have seen the warning).
- `deprecation-unrecorded`: when it was deprecated is known from the declaration itself: the newest `spec.history`
  entry (by date) whose `change` mentions deprecation (`deprecat…`, any case), e.g.
  `{date: 2026-10-01, author: ana, change: "lifecycle: deprecated", reason: "replaced by checkout-journey"}`.
  Why a history entry: it is the record the Workbook already asks for on every change (who, when, why), it lives in
  version control beside the lifecycle, and it names a date a reviewer can read; no hidden state is kept.
- `deprecation-period`: that date (midnight UTC) plus the deprecation period (`deprecated_for`, default 30 days) is
  not after `at`.
- `referenced`: no SLO that is not archived names it as a composite component (`spec.sli.composite.components`) or a
  gate dependency (`spec.gate.dependencies`): archiving it would leave them reading series that stop.
- `open-debt`: no open reliability debt about it (`open_debt`: SLO name → ids of its open debt items; the register
  is not read yet by default: `no_open_debt`, said as `debtRegister: "unavailable"`, as `govern stale` says it).
- `gated`: no live gate decision about it (replays, requests with `at`, are not use) decided in the deprecation
  period, from its deprecation to `at`: a pipeline still asks about it.
- `source`: its document is found in sloplane's own format and `lifecycle: archived` can be set in it by editing
  that one value (`archive_source.py`).

The archive (`files`, written by `archive_store.py` under `<name>/<archive id>/`, the id `at` as
`YYYYMMDDTHHMMSSZ`): `declaration.yaml` (the document as written), `rollups.jsonl` (every rollup row of the SLO, each
`Rollup.to_dict()`, by stage and hour), `decisions.jsonl` (every decision about it, in seq order, as
`sloplane export-decisions` writes them: `seq`, `prevHash`, `hash`, the record; `decisions`), and `manifest.json`
(each file's sha256, size and records, the archive's time, sloplane's version, the sources), written last.

The JSON (the dict `plan_archive` returns; `archived` and `location` set by `done` once written):

    {"kind": "archive", "slo", "at": ISO, "archiveId", "archived": bool, "location": str | null,
     "blockers": [{"rule", "message", "inputs": {...}}],            empty when it may be archived
     "checks": {"lifecycle",
                "deprecation": {"record": {"date", "author", "change", "reason"} | null, "since": ISO | null,
                                "period": "30d", "eligibleFrom": ISO | null},
                "referencedBy": [{"slo", "role": "composite component|dependency", "lifecycle"}],
                "openDebt": [id], "debtRegister": "read|unavailable",
                "liveDecisions": {"since": ISO | null, "until": ISO, "count", "last": ISO | null}},
     "declaration": {"path", "edit": "replaced|inserted", "line"} | null,     null when refused or not found
     "files": [{"name", "sha256", "bytes", "records"}],                      the manifest's, manifest.json last
     "seriesDeletion": {"matchers": [selector], "command": "curl …", "cleanTombstones": "curl …", "note"}}
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sloplane import __version__
from sloplane.core import names
from sloplane.core.durations import format_duration
from sloplane.core.serialize import pretty_json, wire_json
from sloplane.declaration.model import ChangeRecord, Declaration, Lifecycle
from sloplane.declaration.validation import did_you_mean
from sloplane.evaluator.governance.archive_source import SourceDocument, SourceEditError, read
from sloplane.evaluator.history.report_kinds import RowReader
from sloplane.semantics.subjects import Fleet

DEFAULT_DEPRECATION = timedelta(days=30)
DEFAULT_DEPRECATION_TEXT = format_duration(DEFAULT_DEPRECATION)
"""How long an SLO stays deprecated (rendered, gating, warning) before it may be archived."""
DEFAULT_PROMETHEUS = "http://PROMETHEUS:9090"
"""The placeholder the printed deletion call names when no Prometheus URL is given."""
DECLARATION, ROLLUPS, DECISIONS, MANIFEST = "declaration.yaml", "rollups.jsonl", "decisions.jsonl", "manifest.json"
EVERY_HOUR = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
"""The span every rollup row of the SLO starts in."""
_DEPRECATION = re.compile(r"deprecat", re.IGNORECASE)

DecisionLines = Callable[[str], Iterable[dict[str, Any]]]
"""SLO name → every decision about it, in seq order, as the log exports them (`export.export_line`)."""


class ArchiveError(Exception):
    """The SLO named is not in the fleet (the message suggests a near name)."""


def no_open_debt(slo: str) -> Sequence[str]:
    """The default debt register: none is read yet, so no SLO has open debt (the report says so)."""
    return ()


@dataclass(frozen=True)
class ArchivePlan:
    """What archiving would write: the report, the archive's files (none when refused) and the declaration's edit."""

    report: dict[str, Any]
    files: dict[str, str]
    source: SourceDocument | None
    archived_text: str | None
    """The declaration file's text with `lifecycle: archived`; None when refused."""

    @property
    def refused(self) -> bool:
        """Whether any blocker stands (then `files` is empty and nothing may be written)."""
        return bool(self.report["blockers"])


def archive_id(at: datetime) -> str:
    """The archive's folder name: its UTC time, sortable, no characters a bucket key or a file name trips on."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def deprecation_record(declaration: Declaration) -> ChangeRecord | None:
    """The newest history entry whose change mentions deprecation (the last of a day's, when several)."""
    found = [entry for entry in declaration.spec.history if _DEPRECATION.search(entry.change)]
    return max(reversed(found), key=lambda entry: entry.date) if found else None


def _references(fleet: Fleet, name: str) -> list[dict[str, str]]:
    """SLOs not archived that name `name` as a composite component or a gate dependency."""
    found = []
    for other in sorted(fleet.values(), key=lambda declaration: declaration.name):
        spec = other.spec
        if other.name == name or spec.lifecycle is Lifecycle.ARCHIVED:
            continue
        composite = spec.sli.composite
        parts = [("composite component", ref.slo) for ref in (composite.components if composite else [])]
        parts += [("dependency", ref.slo) for ref in (spec.gate.dependencies if spec.gate else [])]
        for role in sorted({role for role, slo in parts if slo == name}):
            found.append({"slo": other.name, "role": role, "lifecycle": spec.lifecycle.value})
    return found


def _live_in(lines: Sequence[dict[str, Any]], since: datetime | None, until: datetime) -> dict[str, Any]:
    """Live decisions (no replay `at`) decided in [since, until]."""
    decided = []
    for line in lines:
        request = line.get("request")
        request = request if isinstance(request, dict) else {}
        if since is None or request.get("at") is not None or not isinstance(line.get("decidedAt"), str):
            continue
        try:
            when = datetime.fromisoformat(line["decidedAt"])
        except ValueError:
            continue
        if since <= when <= until:
            decided.append(when)
    last = max(decided).isoformat() if decided else None
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat(),
        "count": len(decided),
        "last": last,
    }


def _blocker(rule: str, message: str, **inputs: Any) -> dict[str, Any]:
    return {"rule": rule, "message": message, "inputs": inputs}


def _lifecycle_blockers(declaration: Declaration) -> list[dict[str, Any]]:
    lifecycle = declaration.spec.lifecycle
    if lifecycle is Lifecycle.ARCHIVED:
        return [_blocker("already-archived", "it is archived already", lifecycle=lifecycle.value)]
    if lifecycle is not Lifecycle.DEPRECATED:
        message = "its lifecycle is active: set `lifecycle: deprecated` (and record it in spec.history) first"
        return [_blocker("not-deprecated", message, lifecycle=lifecycle.value)]
    return []


def _deprecation(
    declaration: Declaration, at: datetime, period: timedelta
) -> tuple[dict[str, Any], datetime | None, list[dict[str, Any]]]:
    record = deprecation_record(declaration)
    checks: dict[str, Any] = {"record": None, "since": None, "period": format_duration(period), "eligibleFrom": None}
    if record is None:
        message = (
            "no spec.history entry says when it was deprecated: add one whose change mentions deprecation, e.g. "
            "{date: YYYY-MM-DD, author: …, change: 'lifecycle: deprecated', reason: …}"
        )
        return checks, None, [_blocker("deprecation-unrecorded", message)]
    since = datetime.combine(record.date, time(), UTC)
    eligible = since + period
    checks |= {"record": record.model_dump(mode="json", by_alias=True), "since": since.isoformat()}
    checks["eligibleFrom"] = eligible.isoformat()
    if eligible > at:
        message = (
            f"deprecated on {record.date}: the {format_duration(period)} deprecation period ends {eligible.isoformat()}"
        )
        blocker = _blocker("deprecation-period", message, since=since.isoformat(), eligibleFrom=eligible.isoformat())
        return checks, since, [blocker]
    return checks, since, []


def _promql_text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def series_deletion(name: str, prometheus: str = DEFAULT_PROMETHEUS) -> dict[str, Any]:
    """The Prometheus admin API calls that delete what the SLO's rules recorded — printed for a person, never run.

    Every series sloplane records is named `sloplane:…` and carries the SLO's `slo` label (`core/names.py`), and its
    burn-rate alert's `ALERTS`/`ALERTS_FOR_STATE` series carry it too; a name pattern takes every window the rules
    ever recorded, including windows an earlier version of the declaration had. `match[]` and the selectors are
    percent-encoded, so curl does not read the brackets as a glob.
    """
    slo = _promql_text(name)
    matchers = [
        f'{{__name__=~"{names.PREFIX}:.+",slo={slo}}}',
        f'{{__name__=~"ALERTS|ALERTS_FOR_STATE",alertname="{names.ALERT}",slo={slo}}}',
    ]
    base = prometheus.rstrip("/")
    query = urlencode([("match[]", matcher) for matcher in matchers], quote_via=quote, safe="")
    return {
        "matchers": matchers,
        "command": f"curl -X POST {shlex.quote(f'{base}/api/v1/admin/tsdb/delete_series?{query}')}",
        "cleanTombstones": f"curl -X POST {shlex.quote(f'{base}/api/v1/admin/tsdb/clean_tombstones')}",
        "note": (
            "run after the rules rendered without this SLO are deployed (else they record it again); Prometheus "
            "needs --web.enable-admin-api; the archive keeps its hourly rollups"
        ),
    }


def _jsonl(records: Iterable[dict[str, Any]]) -> tuple[str, int]:
    lines = [wire_json(record).decode() + "\n" for record in records]
    return "".join(lines), len(lines)


def _entry(name: str, text: str, records: int) -> dict[str, Any]:
    data = text.encode()
    return {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "records": records}


def _files(
    name: str, source: SourceDocument, rows: RowReader, lines: Sequence[dict[str, Any]], manifest: dict[str, Any]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The archive's files, the manifest last (it lists the others' hashes)."""
    rollups, rollup_count = _jsonl(row.to_dict() for row in rows(*EVERY_HOUR, [name]))
    decisions, decision_count = _jsonl(lines)
    files = {DECLARATION: source.document_text(), ROLLUPS: rollups, DECISIONS: decisions}
    counts = {DECLARATION: 1, ROLLUPS: rollup_count, DECISIONS: decision_count}
    entries = [_entry(file, text, counts[file]) for file, text in files.items()]
    files[MANIFEST] = pretty_json({**manifest, "files": entries})
    return files, [*entries, _entry(MANIFEST, files[MANIFEST], 1)]


def plan_archive(
    fleet: Fleet,
    name: str,
    paths: Sequence[Path],
    rows: RowReader,
    at: datetime,
    *,
    decisions: DecisionLines,
    deprecated_for: timedelta = DEFAULT_DEPRECATION,
    open_debt: Callable[[str], Sequence[str]] = no_open_debt,
    prometheus: str = DEFAULT_PROMETHEUS,
    store: str = "",
) -> ArchivePlan:
    """Whether `name` may be archived at `at`, and what would be written (see the module's docstring).

    `paths`: the declaration files and folders (the SLO's document is found there); `rows`: the rollup store's
    read; `decisions`: the log's exported lines about an SLO; `store`: how the manifest names the store.
    Raises ArchiveError when `name` is not in the fleet.
    """
    if name not in fleet:
        raise ArchiveError(f"no SLO named '{name}' in {', '.join(map(str, paths))}{did_you_mean(name, list(fleet))}")
    declaration = fleet[name]
    identifier = archive_id(at)
    blockers = _lifecycle_blockers(declaration)
    deprecation, since, late = _deprecation(declaration, at, deprecated_for)
    blockers += late
    referenced = _references(fleet, name)
    if referenced:
        who = ", ".join(f"{entry['slo']} ({entry['role']})" for entry in referenced)
        blockers.append(_blocker("referenced", f"still referenced by {who}", referencedBy=referenced))
    debt = list(open_debt(name))
    if debt:
        blockers.append(_blocker("open-debt", f"open reliability debt: {', '.join(debt)}", openDebt=debt))
    lines = list(decisions(name))
    live = _live_in(lines, since, at)
    if live["count"]:
        message = f"{live['count']} live gate decision(s) since its deprecation, the last at {live['last']}"
        blockers.append(_blocker("gated", message, **live))
    source: SourceDocument | None = None
    edit = None
    try:
        source = read(list(paths), name)
        edit = source.archived_edit()
    except SourceEditError as error:
        blockers.append(_blocker("source", str(error)))
    report: dict[str, Any] = {
        "kind": "archive",
        "slo": name,
        "at": at.isoformat(),
        "archiveId": identifier,
        "archived": False,
        "location": None,
        "blockers": blockers,
        "checks": {
            "lifecycle": declaration.spec.lifecycle.value,
            "deprecation": deprecation,
            "referencedBy": referenced,
            "openDebt": debt,
            "debtRegister": "unavailable" if open_debt is no_open_debt else "read",
            "liveDecisions": live,
        },
        "declaration": None,
        "files": [],
        "seriesDeletion": series_deletion(name, prometheus),
    }
    if blockers or source is None or edit is None:
        return ArchivePlan(report, {}, source, None)
    manifest = {
        "kind": "sloplane-archive",
        "slo": name,
        "archiveId": identifier,
        "archivedAt": at.isoformat(),
        "sloplaneVersion": __version__,
        "sources": {"paths": [str(path) for path in paths], "declaration": str(source.path), "store": store},
        "deprecation": deprecation,
    }
    files, entries = _files(name, source, rows, lines, manifest)
    report["declaration"] = {"path": str(source.path), "edit": edit.kind, "line": edit.line}
    report["files"] = entries
    return ArchivePlan(report, files, source, edit.text)


def done(report: dict[str, Any], location: str) -> dict[str, Any]:
    """The report once the archive is written to `location` and the declaration edited."""
    return {**report, "archived": True, "location": location}
