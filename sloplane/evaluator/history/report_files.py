"""Reports as files people open: HTML (jinja2, autoescaped, inline CSS, SVG charts, no JavaScript, printable),
CSV (a header row, one line per SLO) and JSON (the report's own shape, documented where it is built).

Why the numbers are formatted here and not in the template: the same figure must read the same in the HTML
and the CSV, and a template full of format expressions is hard to review as the page it makes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from markupsafe import Markup

from sloplane.core.serialize import pretty_json
from sloplane.core.templating import render
from sloplane.evaluator.history.report_format import report_file
from sloplane.evaluator.history.svg import Bar, bar_chart, line_chart

SLA_COLUMNS = (
    "slo",
    "service",
    "team",
    "tier",
    "period_start",
    "period_end",
    "time_zone",
    "objective",
    "achieved",
    "met",
    "events",
    "bad_events",
    "budget_used",
    "bad_minutes",
    "allowed_bad_minutes",
    "excluded_events",
    "excluded_minutes",
    "exclusions",
    "deployment_share",
    "hours_expected",
    "hours_with_data",
    "policy_versions",
)


def plain_cell(value: Any) -> str:
    """A CSV cell: empty for none, numbers as Python writes them (exact enough to recompute), booleans as words;
    text that a spreadsheet would run as a formula (starting `=`, `+`, `-`, `@`, a tab or a carriage return: a
    revision or a break-glass reason is anyone's text) behind a `'`, as OWASP's CSV-injection advice has it; a
    carriage return as a line feed, which the writer quotes (a bare one would end the row in a reader)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return str(value)
    text = "'" + value if value.startswith(FORMULA_STARTS) else value
    return text.replace("\r\n", "\n").replace("\r", "\n")  # a line break the writer quotes (it knows only \n)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A header row, then each row's cells as `plain_cell` writes them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([plain_cell(value) for value in row] for row in rows)
    return buffer.getvalue()


def sla_csv(report: dict[str, Any]) -> str:
    """One line per SLO under a header row (`SLA_COLUMNS`)."""
    return csv_text(SLA_COLUMNS, (_sla_cells(line) for line in report["slos"]))


def _sla_cells(line: dict[str, Any]) -> tuple[Any, ...]:
    period = line["period"]
    return (
        line["slo"],
        line["service"],
        line["team"],
        line["tier"],
        period["start"],
        period["end"],
        period["timeZone"],
        line["objective"],
        line["achieved"],
        line["met"],
        line["events"],
        line["badEvents"],
        line["budgetUsed"],
        line["badMinutes"],
        line["allowedBadMinutes"],
        line["excludedEvents"],
        line["excludedMinutes"],
        "; ".join(f"{e['category']}:{e['name']}" for e in line["exclusions"]),
        line["deploymentShare"],
        line["hours"]["expected"],
        line["hours"]["withData"],
        " ".join(line["policyVersions"]),
    )


def percent(value: float | None, digits: int = 3) -> str:
    """`99.953%`; an em dash for none."""
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def count(value: float | None) -> str:
    """`17,280` (or `12.5` when not whole); an em dash for none."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def minutes(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} min"


def _daily_chart(line: dict[str, Any]) -> str:
    allowance = (100 - line["objective"]) / 100
    bars = []
    for day in line["daily"]:
        if not day["events"]:
            bars.append(Bar(None, "nodata", f"{day['day']}: no data"))
            continue
        rate = day["badEvents"] / day["events"] / allowance if allowance > 0 else 0.0
        tooltip = (
            f"{day['day']}: SLI {percent(day['sli'])}, {count(day['badEvents'])} bad of {count(day['events'])} "
            f"events ({rate:.2f}× the allowed rate)"
        )
        bars.append(Bar(rate, "good" if rate <= 1 else "bad", tooltip))
    top = max([2.0, *(bar.value for bar in bars if bar.value is not None)])
    return bar_chart(bars, top=top, reference=1.0, label=f"{line['slo']}: bad events per day against the allowed rate")


def _burn_chart(line: dict[str, Any]) -> str:
    allowance = (100 - line["objective"]) / 100
    budget = line["events"] * allowance
    spent = 0.0
    points: list[float | None] = []
    tooltips = []
    for day in line["daily"]:
        spent += day["badEvents"]
        left = None if budget <= 0 else 1 - spent / budget
        points.append(left)
        tooltips.append(f"after {day['day']}: {percent(left, 1)} of the period's error budget left")
    return line_chart(points, tooltips=tooltips, label=f"{line['slo']}: error budget left, day by day")


def sla_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    views = [
        {
            "line": line,
            "achieved": percent(line["achieved"]),
            "objective": f"{line['objective']:g}%",
            "budget_used": percent(line["budgetUsed"], 1),
            "bad_minutes": minutes(line["badMinutes"]),
            "allowed_bad_minutes": minutes(line["allowedBadMinutes"]),
            "events": count(line["events"]),
            "bad_events": count(line["badEvents"]),
            "excluded_events": count(line["excludedEvents"]),
            "excluded_minutes": minutes(line["excludedMinutes"]),
            "deployment_share": percent(line["deploymentShare"], 2),
            "state": "nodata" if line["met"] is None else ("met" if line["met"] else "missed"),
            "daily_chart": Markup(_daily_chart(line)),  # built from numbers, every text in it escaped (svg.py)
            "burn_chart": Markup(_burn_chart(line)),
        }
        for line in report["slos"]
    ]
    return render("reports/sla.html", report=report, views=views, evidence=pretty_json(report["evidence"]))


def sla_file(report: dict[str, Any], output_format: str) -> str:
    """The SLA report in `output_format` (one of `report_format.FORMATS`)."""
    return report_file(report, output_format, csv=sla_csv, html=sla_html)


STATE_WORDS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
}
BURN_LIMIT = 10.0
"""A day that burned the budget more than this many times faster than allowed is red, not amber."""


def _status_bars(component: dict[str, Any]) -> str:
    bars = []
    for day in component["sloplane"]["days"]:
        consumed = day["consumed"]
        if consumed is None:
            bars.append(Bar(1.0, "nodata", f"{day['day']}: no data"))  # full height, grey: a day like any other
            continue
        sli = None if not day["events"] else 1 - day["badEvents"] / day["events"]
        css = "good" if consumed <= 1 else ("warn" if consumed <= BURN_LIMIT else "bad")
        tooltip = (
            f"{day['day']}: {percent(sli)} good, {count(day['badEvents'])} bad of {count(day['events'])} events "
            f"({consumed:.2f}× the allowed rate)"
        )
        bars.append(Bar(1.0, css, tooltip))
    return bar_chart(bars, top=1.0, label=f"{component['name']}: the last {len(bars)} days", css="bars")


def status_html(page: dict[str, Any]) -> str:
    """The status page as one self-contained HTML page."""
    views = [
        {
            "component": component,
            "state": STATE_WORDS[component["status"]],
            "uptime": percent(component["sloplane"]["uptime"]),
            "first_day": component["sloplane"]["days"][0]["day"] if component["sloplane"]["days"] else "",
            "bars": Markup(_status_bars(component)),  # built from numbers, every text in it escaped (svg.py)
        }
        for component in page["components"]
    ]
    return render("reports/status.html", page=page, views=views)


def status_files(page: dict[str, Any]) -> dict[str, str]:
    """`index.html` and `status.json` (Statuspage's summary shape), for a folder a web server serves."""
    return {"index.html": status_html(page), "status.json": pretty_json(page)}


BUDGET_COLUMNS = (
    "slo",
    "service",
    "team",
    "tier",
    "objective",
    "period_start",
    "period_end",
    "budget_remaining",
    "events",
    "bad_events",
    "week_budget_used",
    "week_burn_rate",
    "hours_to_exhaustion",
    "freezes",
)


def budget_csv(report: dict[str, Any]) -> str:
    """One line per SLO, least budget left first, under a header row (`BUDGET_COLUMNS`)."""
    return csv_text(BUDGET_COLUMNS, (_budget_cells(line) for line in report["slos"]))


def _budget_cells(line: dict[str, Any]) -> tuple[Any, ...]:
    week = line["week"]
    return (
        line["slo"],
        line["service"],
        line["team"],
        line["tier"],
        line["objective"],
        line["period"]["start"],
        line["period"]["end"],
        line["budgetRemaining"],
        line["events"],
        line["badEvents"],
        week["budgetUsed"],
        week["burnRate"],
        line["hoursToExhaustion"],
        "; ".join(freeze["reason"] for freeze in line["freezes"]),
    )


def _hours(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} h"
    return f"{value:,.0f} h" if value < 48 else f"{value / 24:,.1f} days"


def budget_html(report: dict[str, Any]) -> str:
    """The budget report as one self-contained HTML page."""
    views = []
    for line in report["slos"]:
        left = line["budgetRemaining"]
        level = "ok" if left is not None and left > 0.5 else ("warn" if left is not None and left > 0 else "bad")
        views.append(
            {
                "line": line,
                "objective": f"{line['objective']:g}%",
                "left": percent(left, 1),
                "level": level,
                "width": f"{max(0.0, min(left or 0.0, 1.0)) * 100:.1f}",
                "week_used": percent(line["week"]["budgetUsed"], 1),
                "burn": "—" if line["week"]["burnRate"] is None else f"{line['week']['burnRate']:.2f}×",
                "exhaustion": _hours(line["hoursToExhaustion"]),
            }
        )
    return render("reports/budget.html", report=report, views=views)


def budget_file(report: dict[str, Any], output_format: str) -> str:
    """The budget report in `output_format` (one of `report_format.FORMATS`)."""
    return report_file(report, output_format, csv=budget_csv, html=budget_html)
