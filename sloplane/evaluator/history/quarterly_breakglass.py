"""Break-glass per team over a quarter, from the decision log: how often each team let a release through against
its own gate, who did, and why.

What counts (each decision the log recorded, decided inside its SLO's quarter and before the report's `at`):
- a decision whose request carried `breakGlass` (its `request.breakGlass`, reason and identity): `decisions`;
- of those, the ones where the override changed the outcome (a `break-glass` reason; `break-glass-unused`
  says the gate passed on its own): `overrides` — the number a review asks about;
- `releases`: the distinct releases (service and revision, else pipeline) they were for — a request for a whole
  service records one decision per SLO, so decisions overstate how often someone broke the glass;
- replays (a request with `at`, back-testing) are left out, as `releases()` leaves them out of deployment history;
- the team is the SLO's `owners.team` in the declarations read; decisions about SLOs no longer declared are
  counted under team none, so nothing recorded disappears from the review.

How the log is read: the stores answer `query` newest first up to a `limit`, and `span` counts a range. The
quarter is cut in halves until each part holds at most `READ_CAP` decisions, each read with `limit` = its count:
memory stays bounded and nothing is cut off by a limit. A store method returning only the decisions with
`breakGlass` would spare reading the rest (the log has no column for it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from sloplane.evaluator.history.periods import Period

READ_CAP = 5_000
"""Decisions read at a time."""
_TICK = timedelta(microseconds=1)
"""`query`'s `until` is inclusive, `span`'s exclusive; the stores keep microseconds."""


class DecisionReader(Protocol):
    """What the quarterly report reads of the decision log (both stores have it)."""

    def span(self, since: datetime, until: datetime) -> tuple[int, int | None, int | None]: ...

    def query(
        self, *, since: datetime | None = None, until: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...


def decisions_between(log: DecisionReader, since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
    """Every decision decided in [since, until), newest first within each part read."""
    count, _, _ = log.span(since, until)
    if count == 0:
        return
    if count <= READ_CAP or until - since <= _TICK * 2:
        yield from log.query(since=since, until=until - _TICK, limit=count)
        return
    middle = since + (until - since) / 2
    yield from decisions_between(log, middle, until)
    yield from decisions_between(log, since, middle)


def _release(record: Mapping[str, Any]) -> str:
    request = record.get("request") or {}
    name = request.get("revision") or request.get("pipeline") or record.get("id")
    return f"{record.get('service') or request.get('service') or ''}/{name}"


def _overrode(record: Mapping[str, Any]) -> bool:
    return any(reason.get("code") == "break-glass" for reason in record.get("reasons") or ())


def _inside(record: Mapping[str, Any], periods: Mapping[str, Period], bounds: tuple[datetime, datetime]) -> bool:
    decided = datetime.fromisoformat(record["decidedAt"])
    period = periods.get(record["slo"])
    start, end = (period.start, period.end) if period is not None else bounds
    return start <= decided < end


def _tally() -> dict[str, Any]:
    return {"decisions": 0, "overrides": 0, "releases": set(), "slos": set(), "identities": set(), "reasons": set()}


def break_glass(
    log: DecisionReader, teams: Mapping[str, str], periods: Mapping[str, Period], at: datetime
) -> dict[str, Any]:
    """Per team (`teams`: SLO name → its team; every team listed, none without break-glass left out), from the
    decisions in each SLO's `periods` before `at`."""
    since = min(period.start for period in periods.values())
    until = min(max(period.end for period in periods.values()), at)
    found: dict[str | None, dict[str, Any]] = {team: _tally() for team in sorted(set(teams.values()))}
    read = 0
    for record in decisions_between(log, since, until) if since < until else ():
        read += 1
        request = record.get("request") or {}
        glass = request.get("breakGlass")
        if glass is None or request.get("at") is not None or not _inside(record, periods, (since, until)):
            continue
        team = teams.get(record["slo"])
        counts = found.setdefault(team, _tally())
        counts["decisions"] += 1
        counts["overrides"] += _overrode(record)
        counts["releases"].add(_release(record))
        counts["slos"].add(record["slo"])
        counts["identities"].add(str(glass.get("identity") or ""))
        counts["reasons"].add(str(glass.get("reason") or ""))
    named = sorted(team for team in found if team is not None)
    order: list[str | None] = [*named, *([None] if None in found else [])]
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "decisionsRead": read,
        "teams": [
            {
                "team": team,
                "decisions": found[team]["decisions"],
                "overrides": found[team]["overrides"],
                "releases": len(found[team]["releases"]),
                "slos": sorted(found[team]["slos"]),
                "identities": sorted(found[team]["identities"]),
                "reasons": sorted(found[team]["reasons"]),
            }
            for team in order
        ],
    }
