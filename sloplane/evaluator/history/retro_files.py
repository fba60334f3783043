"""The retro as files: HTML (`templates/reports/retro.html`), CSV (the timeline, one line per decision), JSON
(the report's own shape, `history.retro`), and the postmortem draft as Markdown (`reports/retro_postmortem.md`).

Why the draft is Markdown: it is pasted into whatever the team writes postmortems in (a wiki, a Google Doc, a
pull request), and every one of those reads Markdown. The Markdown template is not autoescaped (only `.html`
ones are), so every value from the log or a declaration goes through `markdown_text` here: a revision or a
reason could otherwise open a table cell, a link or raw HTML.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup

from sloplane.core.durations import human_duration
from sloplane.core.templating import render
from sloplane.evaluator.history.report_files import count, csv_text, percent
from sloplane.evaluator.history.report_format import report_file
from sloplane.evaluator.history.svg import Bar, bar_chart

TIMELINE_COLUMNS = (
    "service",
    "release",
    "decided_at",
    "slo",
    "stage",
    "outcome",
    "incident",
    "reasons",
    "burn_rates",
    "budget_remaining",
    "break_glass_reason",
    "decision_id",
)
BURN_TOP = 2.0
"""The hourly chart's scale reaches at least twice the allowed rate, so that a calm day reads as calm."""
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
"""What could start emphasis, code, a link, raw HTML or a table cell inside a line (`(` is harmless once `[` is
escaped; `#`, `+` and `-` only matter at a line's start, where no value is placed)."""
DETECTED_BY = {
    "failing-gate": "a gate that failed on a breach",
    "burn-above-factor": "a decision showing an alert's burn",
}


def retro_csv(report: dict[str, Any]) -> str:
    """One line per decision of every release, oldest first, under a header row (`TIMELINE_COLUMNS`)."""
    return csv_text(
        TIMELINE_COLUMNS,
        (
            (
                release["service"],
                release["release"],
                entry["decidedAt"],
                entry["slo"],
                entry["stage"],
                entry["outcome"],
                entry["incident"],
                " ".join(reason["code"] for reason in entry["reasons"]),
                " ".join(f"{window}={rate}" for window, rate in entry["burnRates"].items() if rate is not None),
                entry["budgetRemaining"],
                None if entry["breakGlass"] is None else entry["breakGlass"]["reason"],
                entry["decisionId"],
            )
            for release in report["releases"]
            for entry in release["timeline"]
        ),
    )


def _clock(text: str | None) -> str:
    """`2025-06-08 09:05 UTC`: instants as people read them in a timeline."""
    return "—" if text is None else datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M UTC")


def _seconds(value: float | None) -> str:
    return "—" if value is None else human_duration(timedelta(seconds=value))


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _hourly_chart(slo: dict[str, Any]) -> str:
    bars = []
    for hour in slo["hourly"]:
        when = _clock(hour["start"])
        if hour["burnRate"] is None:
            bars.append(Bar(None, "nodata", f"{when}: no data"))
            continue
        part = "the release's hours" if hour["deployment"] else "background"
        events = f"{count(hour['badEvents'])} bad of {count(hour['events'])} events"
        tooltip = f"{when}: {events}, burn {_rate(hour['burnRate'])} ({part})"
        bars.append(Bar(hour["burnRate"], "deploy" if hour["deployment"] else "good", tooltip))
    top = max([BURN_TOP, *(bar.value for bar in bars if bar.value is not None)])
    label = f"{slo['slo']}: burn rate per hour around the release (dashed: the allowed rate)"
    return bar_chart(bars, top=top, reference=1.0, label=label)


def _slo_view(slo: dict[str, Any]) -> dict[str, Any]:
    deployment, background = slo["deployment"], slo["background"]
    return {
        "slo": slo,
        "share": percent(slo["budgetShare"], 1),
        "excess_share": percent(slo["excessBudgetShare"], 1),
        "bad": count(deployment["badEvents"]),
        "events": count(deployment["events"]),
        "excess": count(slo["excessBadEvents"]),
        "allowed": count(slo["period"]["allowedBadEvents"]),
        "burn": _rate(deployment["burnRate"]),
        "background_burn": _rate(background["burnRate"]),
        "chart": Markup(_hourly_chart(slo)),  # built from numbers, every text in it escaped (svg.py)
    }


def _entry_view(entry: dict[str, Any]) -> dict[str, Any]:
    burn = [f"{window} {rate:.2f}×" for window, rate in entry["burnRates"].items() if rate is not None]
    return {
        "entry": entry,
        "when": _clock(entry["decidedAt"]),
        "burn": ", ".join(burn) or "—",
        "budget": percent(entry["budgetRemaining"], 1),
    }


def _detection_view(found: dict[str, Any]) -> dict[str, Any]:
    return {
        "found": found,
        "measured": _seconds(found["measured"]),
        "fastest": _seconds(found["fastest"]),
        "lead": _seconds(found["lead"]),
        "burn": _rate(found["burnRate"]),
        "theory": [{**t, "time": _seconds(t["detection"])} for t in found["theory"]],
    }


def _release_view(release: dict[str, Any]) -> dict[str, Any]:
    return {
        "release": release,
        "share": percent(release["budgetShare"], 1),
        "start": _clock(release["start"]),
        "first": _clock(release["firstGate"]),
        "last": _clock(release["lastGate"]),
        "slos": [_slo_view(slo) for slo in release["slos"]],
        "timeline": [_entry_view(entry) for entry in release["timeline"]],
        "detection": _detection_view(release["detection"]),
    }


def retro_html(report: dict[str, Any]) -> str:
    """The retro as one self-contained HTML page."""
    views = [_release_view(release) for release in report["releases"]]
    return render("reports/retro.html", report=report, views=views)


def retro_file(report: dict[str, Any], output_format: str) -> str:
    """The retro in `output_format` (one of `report_format.FORMATS`)."""
    return report_file(report, output_format, csv=retro_csv, html=retro_html)


def markdown_text(value: object) -> str:
    """A value as literal Markdown text on one line: its special characters escaped, line breaks as spaces."""
    text = "—" if value is None else str(value)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _markdown_release(release: dict[str, Any]) -> dict[str, Any]:
    view = _release_view(release)
    md = markdown_text
    return {
        "required": release["postmortem"]["required"],
        "title": md(f"{release['service']} {release['release']}"),
        "why": md(release["postmortem"]["why"]),
        "service": md(release["service"]),
        "pipelines": md(", ".join(release["pipelines"]) or "—"),
        "start": md(view["start"]),
        "first": md(view["first"]),
        "last": md(view["last"]),
        "outcome": md(release["outcome"]),
        "rolled_back": "yes" if release["rolledBack"] else "no",
        "break_glass": len(release["breakGlass"]),
        "slos": [
            {
                "slo": md(s["slo"]["slo"]),
                "share": md(s["share"]),
                "excess_share": md(s["excess_share"]),
                "bad": md(s["bad"]),
                "events": md(s["events"]),
                "burn": md(s["burn"]),
                "background_burn": md(s["background_burn"]),
                "runbook": md(s["slo"]["links"].get("runbook", "none declared")),
                "dashboard": md(s["slo"]["links"]["grafanaDashboard"]),
            }
            for s in view["slos"]
        ],
        "detection": {key: md(value) for key, value in view["detection"].items() if isinstance(value, str)},
        "detected_by": DETECTED_BY.get(
            release["detection"]["by"], "no decision (no gate failed, no alert's burn seen)"
        ),
        "timeline": [
            {
                "when": md(e["when"]),
                "slo": md(e["entry"]["slo"]),
                "stage": md(e["entry"]["stage"]),
                "outcome": md(e["entry"]["outcome"]),
                "codes": md(", ".join(r["code"] for r in e["entry"]["reasons"])),
                "burn": md(e["burn"]),
            }
            for e in view["timeline"]
        ],
        "prompts": [
            # the question is sloplane's own sentence (its `code` spans kept); the fact quotes the log: escaped
            {"topic": p["topic"], "question": p["question"], "because": md(p["because"])}
            for p in release["postmortem"]["prompts"]
        ],
    }


def retro_postmortem_markdown(report: dict[str, Any]) -> str:
    """The blameless postmortem draft of every release in the report, as Markdown."""
    releases = [_markdown_release(release) for release in report["releases"]]
    return render("reports/retro_postmortem.md", report=report, releases=releases, selector=report["selector"])
