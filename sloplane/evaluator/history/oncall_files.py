"""The on-call and platform reports as files: CSV (a header row, one line per page or ticket; per hold) and HTML
(jinja2, autoescaped, inline CSS, an SVG chart, no JavaScript); JSON is each report's own dict.

Apart from `report_files` (the SLA, budget and status files) so that each report kind keeps its writers beside
its own template; the formatting helpers are shared from there, so a figure reads the same in every report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from markupsafe import Markup

from sloplane.core.templating import render
from sloplane.evaluator.history.hours import zone
from sloplane.evaluator.history.report_files import count, csv_text, minutes
from sloplane.evaluator.history.report_format import report_file
from sloplane.evaluator.history.svg import Bar, bar_chart

ONCALL_COLUMNS = (
    "kind",
    "slo",
    "stage",
    "service",
    "team",
    "alertname",
    "start",
    "end",
    "minutes",
    "windows",
    "peak_burn_rate",
    "started_before",
    "ongoing",
    "shift_start",
    "runbook",
)


def oncall_csv(report: dict[str, Any]) -> str:
    """One line per page, then per ticket, in time order, under a header row (`ONCALL_COLUMNS`)."""
    shifts = report["shifts"]
    rows = []
    for kind, deliveries in (("page", report["pages"]), ("ticket", report["tickets"])):
        for line in deliveries:
            shift = None if line["shift"] is None else shifts[line["shift"]]["start"]
            rows.append(
                (
                    kind,
                    line["slo"],
                    line["stage"],
                    line["service"],
                    line["team"],
                    line["alertname"],
                    line["start"],
                    line["end"],
                    line["minutes"],
                    " ".join(line["windows"]),
                    line["peakBurnRate"],
                    line["startedBefore"],
                    line["ongoing"],
                    shift,
                    line["runbook"],
                )
            )
    return csv_text(ONCALL_COLUMNS, rows)


def _local(instant: str, zone_name: str) -> str:
    """`2025-10-26 03:25` in the report's zone: how an on-call engineer remembers a night."""
    return datetime.fromisoformat(instant).astimezone(zone(zone_name)).strftime("%Y-%m-%d %H:%M")


def _burn(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}×"


def _shift_chart(report: dict[str, Any]) -> str:
    target = report["shift"]["target"]
    bars = [
        Bar(
            float(shift["pages"]),
            "bar over" if shift["overTarget"] else "bar ok",
            f"{_local(shift['start'], report['timeZone'])}: {shift['pages']} page{'' if shift['pages'] == 1 else 's'} "
            f"(target {target}), "
            f"{minutes(shift['pagingMinutes'])} paging",
        )
        for shift in report["shifts"]
    ]
    top = max([float(target) + 1, *(bar.value or 0.0 for bar in bars)])
    return bar_chart(bars, top=top, reference=float(target), label="Pages per shift against the target")


def _delivery_views(report: dict[str, Any], deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    zone_name = report["timeZone"]
    return [
        {
            "line": line,
            "subject": line["slo"] if line["stage"] is None else f"{line['slo']}/{line['stage']}",
            "start": ("before " if line["startedBefore"] else "") + _local(line["start"], zone_name),
            "end": _local(line["end"], zone_name) + (" (still firing)" if line["ongoing"] else ""),
            "minutes": minutes(line["minutes"]),
            "burn": _burn(line["peakBurnRate"]),
        }
        for line in deliveries
    ]


def oncall_html(report: dict[str, Any]) -> str:
    """The on-call report as one self-contained HTML page."""
    zone_name = report["timeZone"]
    shifts = [
        {
            "shift": shift,
            "start": _local(shift["start"], zone_name),
            "end": _local(shift["end"], zone_name),
            "paging": minutes(shift["pagingMinutes"]),
        }
        for shift in report["shifts"]
    ]
    return render(
        "reports/oncall.html",
        report=report,
        shifts=shifts,
        pages=_delivery_views(report, report["pages"]),
        tickets=_delivery_views(report, report["tickets"]),
        chart=Markup(_shift_chart(report)),  # built from numbers, every text in it escaped (svg.py)
        paging=minutes(report["totals"]["pagingMinutes"]),
        muted=minutes(report["totals"]["mutedMinutes"]),
        start=_local(report["from"], zone_name),
        end=_local(report["to"], zone_name),
    )


def oncall_file(report: dict[str, Any], output_format: str) -> str:
    """The on-call report in `output_format` (one of `report_format.FORMATS`)."""
    return report_file(report, output_format, csv=oncall_csv, html=oncall_html)


PLATFORM_COLUMNS = (
    "consumer_service",
    "consumer_slo",
    "team",
    "stage",
    "release",
    "start",
    "end",
    "passed",
    "minutes",
    "decisions_held",
    "peak_dependency_burn_rate",
    "provider_decisions",
)


def platform_csv(report: dict[str, Any]) -> str:
    """One line per hold (a consumer's stage and release held back), under a header row (`PLATFORM_COLUMNS`)."""
    rows = [
        (
            line["service"],
            line["slo"],
            line["team"],
            hold["stage"],
            hold["release"],
            hold["start"],
            hold["end"],
            hold["passed"],
            hold["minutes"],
            hold["decisionsHeld"],
            hold["peakDependencyBurnRate"],
            " ".join(f"{outcome}:{number}" for outcome, number in hold["providerDecisions"].items()),
        )
        for line in report["consumers"]
        for hold in line["holds"]
    ]
    return csv_text(PLATFORM_COLUMNS, rows)


def _held_chart(report: dict[str, Any]) -> str:
    bars = [
        Bar(line["minutesHeld"], "bar held", f"{line['slo']}: {minutes(line['minutesHeld'])} held")
        for line in report["consumers"]
    ]
    top = max([1.0, *(bar.value or 0.0 for bar in bars)])
    return bar_chart(bars, top=top, label=f"Time each consumer was held by {report['service']}")


def platform_html(report: dict[str, Any]) -> str:
    """The platform report as one self-contained HTML page."""
    views = [
        {
            "line": line,
            "held": minutes(line["minutesHeld"]),
            "burn": _burn(line["peakDependencyBurnRate"]),
            "first": _local(line["firstHeld"], "UTC"),
            "last": _local(line["lastHeld"], "UTC"),
            "holds": [
                {
                    "hold": hold,
                    "start": _local(hold["start"], "UTC"),
                    "end": _local(hold["end"], "UTC"),
                    "minutes": minutes(hold["minutes"]),
                    "burn": _burn(hold["peakDependencyBurnRate"]),
                    "provider": ", ".join(f"{n} {o}" for o, n in hold["providerDecisions"].items()) or "none recorded",
                }
                for hold in line["holds"]
            ],
        }
        for line in report["consumers"]
    ]
    return render(
        "reports/platform.html",
        report=report,
        views=views,
        chart=Markup(_held_chart(report)),  # built from numbers, every text in it escaped (svg.py)
        held=minutes(report["totals"]["minutesHeld"]),
        decisions=count(report["totals"]["decisionsRead"]),
        start=None if report["from"] is None else _local(report["from"], "UTC"),
        end=_local(report["to"], "UTC"),
    )


def platform_file(report: dict[str, Any], output_format: str) -> str:
    """The platform report in `output_format` (one of `report_format.FORMATS`)."""
    return report_file(report, output_format, csv=platform_csv, html=platform_html)
