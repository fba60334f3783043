"""The review meeting's agenda: ordered items, each with the facts that put it there.

Each source is a small function from the report built so far (its `slos`, `breakGlass`, `reviews`) to items; the
agenda is the sources' items in the order of `AGENDA`, numbered. Another source (governance findings, issue 18)
is one more function passed to `quarterly_report(..., agenda=(*AGENDA, governance))`.

The order is the order a review spends its time in: budgets spent first (the error-budget policy applies),
then objectives missed in a month, budgets nearly spent, reviews overdue, reviews to schedule, break-glass, and
SLOs without data (a measurement that broke, or an SLO nobody uses). Within a source: the most critical tier
first, then the worst numbers, then by name.

An item: `kind`, `team`, `slo` (none for a team's item), `title` (one sentence with the numbers, for people)
and `facts` (the same numbers unformatted, for tools).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sloplane.declaration.model import Criticality
from sloplane.evaluator.history.quarterly_slo import (
    AT_RISK,
    AT_RISK_STATE,
    DUE,
    EXHAUSTED_STATE,
    NEVER,
    NO_DATA,
    OVERDUE,
)

AgendaItem = dict[str, Any]
AgendaSource = Callable[[Mapping[str, Any]], list[AgendaItem]]
TIER_RANK = {tier.value: rank for rank, tier in enumerate(Criticality)}
"""critical 0 … low 3: the order tiers are listed in."""


def _percent(value: float | None, digits: int = 1) -> str:
    return "no data" if value is None else f"{value * 100:.{digits}f}%"


def _times(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"


def _lines(report: Mapping[str, Any], state: str) -> list[dict[str, Any]]:
    return [line for line in report["slos"] if line["state"] == state]


def _item(
    kind: str, line: Mapping[str, Any] | None, title: str, facts: dict[str, Any], team: str | None = None
) -> AgendaItem:
    return {
        "kind": kind,
        "team": line["team"] if line is not None else team,
        "slo": line["slo"] if line is not None else None,
        "title": title,
        "facts": facts,
    }


def _slo_facts(line: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "tier": line["tier"],
        "objective": line["objective"],
        "sli": line["sli"],
        "budgetUsed": line["budgetUsed"],
        "badEvents": line["badEvents"],
        "events": line["events"],
        "previousBudgetUsed": None if line["previous"] is None else line["previous"]["budgetUsed"],
    }


def _worst_first(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(lines, key=lambda line: (TIER_RANK[line["tier"]], -(line["budgetUsed"] or 0.0), line["slo"]))


def exhausted(report: Mapping[str, Any]) -> list[AgendaItem]:
    """SLOs whose quarter spent its error budget."""
    return [
        _item(
            "exhausted",
            line,
            f"{line['slo']} ({line['tier']}) spent its error budget: {_percent(line['budgetUsed'])} used, "
            f"SLI {_percent(line['sli'], 3)} against {line['objective']:g}%",
            _slo_facts(line),
        )
        for line in _worst_first(_lines(report, EXHAUSTED_STATE))
    ]


def missed(report: Mapping[str, Any]) -> list[AgendaItem]:
    """SLOs with budget left over the quarter that missed their objective in a month of it."""
    items = []
    for line in _worst_first([line for line in _lines(report, AT_RISK_STATE) if line["missedMonths"]]):
        months = [month for month in line["months"] if month["met"] is False]
        said = ", ".join(
            f"{month['label']} (SLI {_percent(month['sli'], 3)} against {month['objective']:g}%)" for month in months
        )
        facts = _slo_facts(line) | {
            "months": [{key: month[key] for key in ("label", "objective", "sli", "budgetUsed")} for month in months]
        }
        items.append(_item("missed", line, f"{line['slo']} ({line['tier']}) missed its objective in {said}", facts))
    return items


def at_risk(report: Mapping[str, Any]) -> list[AgendaItem]:
    """SLOs that met every month but used `AT_RISK` or more of the quarter's budget."""
    return [
        _item(
            "at-risk",
            line,
            f"{line['slo']} ({line['tier']}) used {_percent(line['budgetUsed'])} of its error budget "
            f"(at risk from {_percent(AT_RISK, 0)})",
            _slo_facts(line) | {"threshold": AT_RISK},
        )
        for line in _worst_first([line for line in _lines(report, AT_RISK_STATE) if not line["missedMonths"]])
    ]


def reviews_overdue(report: Mapping[str, Any]) -> list[AgendaItem]:
    """SLOs whose declared review date has passed, longest overdue first."""
    late = [line for line in report["slos"] if line["review"]["status"] == OVERDUE]
    late.sort(key=lambda line: (-line["review"]["daysOverdue"], TIER_RANK[line["tier"]], line["slo"]))
    return [
        _item(
            "review-overdue",
            line,
            f"{line['slo']} ({line['tier']}): review was due on {line['review']['next']} "
            f"({line['review']['daysOverdue']} days ago)",
            {"tier": line["tier"], **line["review"]},
        )
        for line in late
    ]


def reviews_to_schedule(report: Mapping[str, Any]) -> list[AgendaItem]:
    """One item per team: its SLOs due for review by the horizon, and those never reviewed."""
    items = []
    horizon = report["reviews"]["horizon"]
    for team in sorted({line["team"] for line in report["slos"]}):
        due = [line["slo"] for line in report["slos"] if line["team"] == team and line["review"]["status"] == DUE]
        never = [line["slo"] for line in report["slos"] if line["team"] == team and line["review"]["status"] == NEVER]
        if not due and not never:
            continue
        parts = [f"{len(due)} due by {horizon}"] if due else []
        parts += [f"{len(never)} never reviewed"] if never else []
        title = f"team {team}: schedule reviews, {' and '.join(parts)}"
        items.append(
            _item("reviews-to-schedule", None, title, {"due": due, "neverReviewed": never, "horizon": horizon}, team)
        )
    return items


def break_glass_teams(report: Mapping[str, Any]) -> list[AgendaItem]:
    """Teams that broke the glass in the quarter, most overrides first."""
    glass = report["breakGlass"]
    if glass is None:
        return []
    teams = [team for team in glass["teams"] if team["decisions"] > 0]
    teams.sort(key=lambda team: (-team["overrides"], -team["decisions"], team["team"] is None, team["team"] or ""))
    items = []
    for team in teams:
        who = f"team {team['team']}" if team["team"] is not None else "SLOs no longer declared"
        title = (
            f"{who}: break-glass overrode the gate {_times(team['overrides'], 'time')} "
            f"({_times(team['decisions'], 'decision')}, {_times(team['releases'], 'release')})"
        )
        facts = {key: team[key] for key in ("decisions", "overrides", "releases", "slos", "identities", "reasons")}
        items.append(_item("break-glass", None, title, facts, team["team"]))
    return items


def no_data(report: Mapping[str, Any]) -> list[AgendaItem]:
    """SLOs that counted no events in the quarter."""
    lines = sorted(_lines(report, NO_DATA), key=lambda line: (TIER_RANK[line["tier"]], line["slo"]))
    return [
        _item(
            "no-data",
            line,
            f"{line['slo']} ({line['tier']}) counted no events in the quarter "
            f"({line['hours']['withData']} of {line['hours']['expected']} hours with data)",
            {"tier": line["tier"], "hours": line["hours"]},
        )
        for line in lines
    ]


AGENDA: tuple[AgendaSource, ...] = (
    exhausted,
    missed,
    at_risk,
    reviews_overdue,
    reviews_to_schedule,
    break_glass_teams,
    no_data,
)
"""The agenda's sources, in the order their items are listed."""


def agenda(report: Mapping[str, Any], sources: Sequence[AgendaSource] = AGENDA) -> list[AgendaItem]:
    """Every source's items in order, numbered from 1."""
    items = [item for source in sources for item in source(report)]
    return [{"position": position, **item} for position, item in enumerate(items, start=1)]
