"""The quarterly review as files: CSV (one line per SLO: its quarter, months, the quarter before and its review)
and HTML (`templates/reports/quarterly.html`: the grid, the score and its inputs, the agenda, trends with an SVG
bar per month, reviews, break-glass). The grid, the score and the agenda are team-level: the JSON has them whole.

Numbers are formatted here, not in the template, so that the page and the CSV say the same figure.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from sloplane.core.templating import render
from sloplane.evaluator.history.quarterly_slo import AT_RISK, REVIEW_STATUSES
from sloplane.evaluator.history.report_files import count, csv_text, percent
from sloplane.evaluator.history.report_format import report_file
from sloplane.evaluator.history.svg import Bar, bar_chart

MONTH_COLUMNS = tuple(f"month_{n}{suffix}" for n in (1, 2, 3) for suffix in ("", "_sli", "_budget_used"))
QUARTERLY_COLUMNS = (
    "slo",
    "service",
    "team",
    "tier",
    "state",
    "period_start",
    "period_end",
    "time_zone",
    "objective",
    "events",
    "bad_events",
    "sli",
    "budget_used",
    "met",
    "missed_months",
    *MONTH_COLUMNS,
    "previous_sli",
    "previous_budget_used",
    "change_sli_points",
    "change_budget_used",
    "review_last",
    "review_next",
    "review_status",
    "hours_expected",
    "hours_with_data",
)
TREND_TOP = 1.5
"""Every SLO's bars on one scale, up to 150% of a month's budget (taller ones are clipped; the tooltip has the
figure), so that rows compare at a glance."""
STATE_WORDS = {"healthy": "Healthy", "at-risk": "At risk", "exhausted": "Exhausted", "no-data": "No data"}


def quarterly_csv(report: dict[str, Any]) -> str:
    """One line per SLO under a header row (`QUARTERLY_COLUMNS`), in the report's order (team, tier, name)."""
    return csv_text(QUARTERLY_COLUMNS, (_cells(line) for line in report["slos"]))


def _cells(line: dict[str, Any]) -> tuple[Any, ...]:
    period, previous, change, review = line["period"], line["previous"], line["change"], line["review"]
    months = [value for month in line["months"] for value in (month["label"], month["sli"], month["budgetUsed"])]
    return (
        line["slo"],
        line["service"],
        line["team"],
        line["tier"],
        line["state"],
        period["start"],
        period["end"],
        period["timeZone"],
        line["objective"],
        line["events"],
        line["badEvents"],
        line["sli"],
        line["budgetUsed"],
        line["met"],
        " ".join(line["missedMonths"]),
        *months,
        None if previous is None else previous["sli"],
        None if previous is None else previous["budgetUsed"],
        None if change is None else change["sliPoints"],
        None if change is None else change["budgetUsed"],
        review["last"],
        review["next"],
        review["status"],
        line["hours"]["expected"],
        line["hours"]["withData"],
    )


def _level(used: float | None) -> str:
    if used is None:
        return "nodata"
    return "bad" if used >= 1 else ("warn" if used >= AT_RISK else "good")


def _trend_chart(line: dict[str, Any]) -> str:
    """A bar per month: the share of its error budget the month used, against the whole budget (dashed)."""
    bars = []
    for month in line["months"]:
        used = month["budgetUsed"]
        if used is None:
            bars.append(Bar(None, "nodata", f"{month['label']}: no data"))
            continue
        tooltip = f"{month['label']}: SLI {percent(month['sli'])}, {percent(used, 1)} of the month's error budget used"
        bars.append(Bar(used, _level(used), tooltip))
    top = TREND_TOP
    label = f"{line['slo']}: error budget used per month of {line['period']['label']}"
    return bar_chart(bars, top=top, reference=1.0, label=label, css="trend")


def _points(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f} pp"


def _share_change(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f} pp"


def _cell_view(cell: dict[str, Any]) -> dict[str, Any]:
    chips = [
        {"state": state, "count": number, "word": STATE_WORDS[state]}
        for state, number in cell["counts"].items()
        if number
    ]
    return {"tier": cell["tier"], "chips": chips, "slos": ", ".join(cell["slos"])}


def _score_text(score: dict[str, Any]) -> str:
    return percent(score["value"], 1)


def _line_view(line: dict[str, Any]) -> dict[str, Any]:
    previous, change = line["previous"], line["change"]
    return {
        "line": line,
        "word": STATE_WORDS[line["state"]],
        "objective": f"{line['objective']:g}%",
        "sli": percent(line["sli"]),
        "budget_used": percent(line["budgetUsed"], 1),
        "level": _level(line["budgetUsed"]),
        "months": [
            {"label": month["label"], "sli": percent(month["sli"]), "used": percent(month["budgetUsed"], 1)}
            for month in line["months"]
        ],
        "previous_sli": "—" if previous is None else percent(previous["sli"]),
        "previous_used": "—" if previous is None else percent(previous["budgetUsed"], 1),
        "change_sli": _points(None if change is None else change["sliPoints"]),
        "change_used": _share_change(None if change is None else change["budgetUsed"]),
        "events": count(line["events"]),
        "chart": Markup(_trend_chart(line)),  # built from numbers, every text in it escaped (svg.py)
    }


def quarterly_html(report: dict[str, Any]) -> str:
    """The review as one self-contained HTML page."""
    grid = report["grid"]
    teams = [
        {
            "team": team["team"],
            "cells": [_cell_view(cell) for cell in team["cells"]],
            "score": _score_text(team["score"]),
            "score_inputs": f"{team['score']['numerator']} of {team['score']['denominator']}",
        }
        for team in grid["teams"]
    ]
    totals = [_cell_view({**cell, "slos": []}) for cell in grid["totals"]["cells"]]
    score = report["score"]
    lines = [_line_view(line) for line in report["slos"]]
    rank = {status: index for index, status in enumerate(REVIEW_STATUSES)}
    reviews = sorted(
        report["slos"],
        key=lambda line: (
            rank[line["review"]["status"]],
            -(line["review"]["daysOverdue"] or 0),
            line["team"],
            line["slo"],
        ),
    )
    return render(
        "reports/quarterly.html",
        report=report,
        teams=teams,
        totals=totals,
        score={
            "value": _score_text(score),
            "coverage": percent(score["coverage"], 0),
            "tiers": score["tiers"],
        },
        lines=lines,
        reviews=reviews,
        states=STATE_WORDS,
        at_risk=percent(AT_RISK, 0),
    )


def quarterly_file(report: dict[str, Any], output_format: str) -> str:
    """The quarterly review in `output_format` (one of `report_format.FORMATS`)."""
    return report_file(report, output_format, csv=quarterly_csv, html=quarterly_html)
