"""The SLA report from rollups of a real Prometheus with known history: every number equals the hand computation.

The history of `tests/rollup_history.py` (October 2025's last week and November's first hour, across the end of
summer time): October is reported in each SLO's zone — Europe/Berlin's month ends at 23:00 UTC on the 31st,
Asia/Kolkata's at 18:30 UTC, UTC's at midnight — so the month boundary, the 25-hour day and the half-hour zone
each decide which rows count.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sloplane.core.serialize import pretty_json
from sloplane.evaluator.history import sla
from sloplane.evaluator.history.periods import Period, PeriodError, month, quarter, week
from sloplane.evaluator.history.report_files import sla_file
from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.history.rollup import roll_up
from sloplane.evaluator.history.sla import SlaInputs, sla_report, slo_zone
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Decision, Rollup
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.sandbox import HttpTraffic, expected_counts
from sloplane.semantics.subjects import Fleet
from tests.browser import open_page, screenshot
from tests.conftest import run_cli
from tests.evaluator_data import load_fleet, make_decision
from tests.rollup_history import EXCLUDED, SINCE, UNTIL
from tests.rollup_history import declarations as declarations_text

pytest_plugins = ("tests.browser", "tests.rollup_history")

AT = datetime(2025, 11, 3, 9, 0, tzinfo=UTC)
RELEASE = (datetime(2025, 10, 30, 9, 35, tzinfo=UTC), datetime(2025, 10, 30, 12, 5, tzinfo=UTC))
"""When revision v2 of `search` was gated live: its window starts the analysis window (10m) before."""


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory, history_fleet: Fleet, history_prometheus: str) -> list[Rollup]:
    """The history's rows, as a store reads them back."""
    run = roll_up(history_fleet, PrometheusBackend(history_prometheus), SINCE, UNTIL)
    store = SqliteRollups(tmp_path_factory.mktemp("store") / "decisions.db")
    try:
        store.write(run.rows, AT)
        return store.read(since=SINCE - timedelta(days=40), until=UNTIL + timedelta(days=40))
    finally:
        store.close()


def _release_gates() -> list[Decision]:
    """Three live gates of `search` v2 between RELEASE's bounds."""
    return [
        replace(make_decision(number, slo="search", revision="v2", decided_at=when), service="search")
        for number, when in enumerate((RELEASE[0], RELEASE[0] + timedelta(hours=1), RELEASE[1]), start=1)
    ]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteDecisionLog]:
    with SqliteDecisionLog(tmp_path_factory.mktemp("log") / "decisions.db") as decisions:
        for decision in _release_gates():
            decisions.append(decision)
        yield decisions


def _october(fleet: Fleet, zone: str | None = None) -> dict[str, Period]:
    return {name: month("2025-10", zone or slo_zone(fleet[name])) for name in fleet}


@pytest.fixture(scope="module")
def report(history_fleet: Fleet, rows: list[Rollup], log: SqliteDecisionLog) -> dict[str, object]:
    return sla_report(SlaInputs(history_fleet, rows, _october(history_fleet), AT, log), "2025-10")


def _line(report: dict[str, object], slo: str) -> dict[str, object]:
    lines = report["slos"]
    assert isinstance(lines, list)
    (found,) = [line for line in lines if line["slo"] == slo]
    return found


def _close(actual: object, expected: float) -> bool:
    return isinstance(actual, float) and abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))


FIRST_ROW = {"checkout": SINCE, "ledger": SINCE + timedelta(minutes=30), "search": SINCE}
MONTH_END = {
    "checkout": datetime(2025, 10, 31, 23, 0, tzinfo=UTC),
    "ledger": datetime(2025, 10, 31, 18, 30, tzinfo=UTC),
    "search": datetime(2025, 11, 1, 0, 0, tzinfo=UTC),
}


@pytest.mark.parametrize("slo", ["checkout", "ledger", "search"])
def test_each_slos_month_is_the_hand_computed_one(
    report: dict[str, object], history_traffic: dict[str, HttpTraffic], slo: str
) -> None:
    line = _line(report, slo)
    end, first = MONTH_END[slo], FIRST_ROW[slo]
    bad, total = expected_counts(history_traffic[slo], end, end - first)
    if slo == "search":  # the excluded half hour is taken out
        excluded_bad, excluded_total = expected_counts(history_traffic[slo], EXCLUDED[1], EXCLUDED[1] - EXCLUDED[0])
        bad, total = bad - excluded_bad, total - excluded_total
        assert _close(line["excludedEvents"], excluded_total) and line["excludedMinutes"] == 30
        (exclusion,) = line["exclusions"]
        assert exclusion["category"] == "window" and exclusion["reason"] == "Planned failover drill."
    assert _close(line["events"], total) and _close(line["badEvents"], bad)
    achieved = 1 - bad / total
    assert _close(line["achieved"], achieved)
    assert line["met"] is (achieved * 100 >= 99.5) and line["objective"] == 99.5
    assert _close(line["budgetUsed"], bad / (total * 0.005))
    minutes = (end - first).total_seconds() / 60
    assert _close(line["badMinutes"], (1 - achieved) * minutes) and _close(line["allowedBadMinutes"], 0.005 * minutes)
    assert line["hours"]["rolledUp"] == line["hours"]["withData"] == (end - first) // timedelta(hours=1)


def test_the_berlin_october_has_745_hours_and_31_days(report: dict[str, object]) -> None:
    line = _line(report, "checkout")
    assert line["hours"]["expected"] == 31 * 24 + 1
    assert len(line["daily"]) == 31 and line["daily"][0]["day"] == "2025-10-01"
    berlin = ZoneInfo("Europe/Berlin")
    assert datetime.fromisoformat(line["period"]["start"]).astimezone(berlin).hour == 0
    assert line["period"]["end"] == MONTH_END["checkout"].isoformat()


def test_the_deployment_share_is_the_bad_events_of_the_releases_hours(
    report: dict[str, object], rows: list[Rollup]
) -> None:
    line = _line(report, "search")
    window = (RELEASE[0] - timedelta(minutes=10), RELEASE[1])
    hours = [r for r in rows if r.slo == "search" and r.start < window[1] and r.end > window[0]]
    assert [r.start.hour for r in hours] == [9, 10, 11, 12]
    deployed = sum(r.counted_bad_events or 0.0 for r in hours)
    assert _close(line["deploymentBadEvents"], deployed)
    assert _close(line["deploymentShare"], deployed / line["badEvents"])
    assert _line(report, "checkout")["deploymentShare"] == 0.0


def test_the_evidence_names_the_queries_versions_and_log_range(report: dict[str, object]) -> None:
    evidence = report["evidence"]
    assert evidence["decisionLog"] == {"decisions": 3, "firstSeq": 1, "lastSeq": 3}
    assert evidence["rollupRows"] == sum(_line(report, slo)["hours"]["rolledUp"] for slo in FIRST_ROW)
    assert _line(report, "ledger")["queries"] == [
        'sum by (job) (increase(http_requests_total{code=~"5..",job=~"ledger"}[1h]))',
        'sum by (job) (increase(http_requests_total{job=~"ledger"}[1h]))',
    ]
    assert evidence["contentHash"].startswith("sha256:") and len(evidence["contentHash"]) == 71
    assert report["summary"] == {
        "slos": 4,
        "met": sum(1 for slo in FIRST_ROW if _line(report, slo)["met"]),
        "missed": sum(1 for slo in FIRST_ROW if _line(report, slo)["met"] is False),
        "noData": 1,
    }


def test_the_same_inputs_give_the_same_bytes_and_a_changed_row_another_hash(
    history_fleet: Fleet, rows: list[Rollup], log: SqliteDecisionLog, report: dict[str, object]
) -> None:
    again = sla_report(SlaInputs(history_fleet, rows, _october(history_fleet), AT, log), "2025-10")
    assert again == report
    changed = [replace(rows[0], bad_events=(rows[0].bad_events or 0.0) + 1.0), *rows[1:]]
    other = sla_report(SlaInputs(history_fleet, changed, _october(history_fleet), AT, log), "2025-10")
    assert other["evidence"]["contentHash"] != report["evidence"]["contentHash"]


def test_an_objective_tightened_mid_month_applies_from_the_next(history_fleet: Fleet, rows: list[Rollup]) -> None:
    moved = datetime(2025, 10, 28, 0, 0, tzinfo=UTC)
    tightened = [replace(row, objective=99.9) if row.start >= moved else row for row in rows]
    line = _line(sla_report(SlaInputs(history_fleet, tightened, _october(history_fleet), AT), "2025-10"), "search")
    assert line["objective"] == 99.5
    assert line["objectiveChanges"] == [{"from": moved.isoformat(), "objective": 99.9}]
    assert line["deploymentShare"] is None, "no decision log given: no share claimed"


def test_a_zone_that_would_cut_rows_in_two_is_refused(history_fleet: Fleet, rows: list[Rollup]) -> None:
    with pytest.raises(PeriodError, match="ledger's rollups are cut at 30 past the UTC hour"):
        sla_report(SlaInputs(history_fleet, rows, _october(history_fleet, "Europe/Berlin"), AT), "2025-10")


@pytest.mark.parametrize(
    ("make", "text", "zone", "start", "end"),
    [
        (
            month,
            "2025-03",
            "Europe/Berlin",
            datetime(2025, 2, 28, 23, tzinfo=UTC),
            datetime(2025, 3, 31, 22, tzinfo=UTC),
        ),
        (quarter, "2025-Q4", "UTC", datetime(2025, 10, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        (
            week,
            "2025-W44",
            "Asia/Kolkata",
            datetime(2025, 10, 26, 18, 30, tzinfo=UTC),
            datetime(2025, 11, 2, 18, 30, tzinfo=UTC),
        ),
        (month, "2025-12", "America/Havana", datetime(2025, 12, 1, 5, tzinfo=UTC), datetime(2026, 1, 1, 5, tzinfo=UTC)),
    ],
)
def test_periods_are_cut_at_local_midnight(make: object, text: str, zone: str, start: datetime, end: datetime) -> None:
    assert callable(make)
    period = make(text, zone)
    assert (period.start, period.end) == (start, end)


@pytest.mark.parametrize(
    ("make", "text"), [(month, "2025-13"), (quarter, "2025-Q5"), (week, "2025-W54"), (month, "10/2025")]
)
def test_a_period_that_is_none_is_said_so(make: object, text: str) -> None:
    assert callable(make)
    with pytest.raises(PeriodError, match=f"'{text}' is not"):
        make(text, "UTC")


# --- the files: golden, reviewed like code --------------------------------------------------------------------

GOLDEN = Path(__file__).parent / "golden" / "reports"
UPDATE = os.environ.get("SLOPLANE_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("output_format", FORMATS)
def test_each_format_is_its_golden_file(report: dict[str, object], output_format: str) -> None:
    """Review a change with `SLOPLANE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report_sla.py` and `git diff`."""
    written = sla_file(report, output_format)
    golden = GOLDEN / f"sla-2025-10.{output_format}"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(written, encoding="utf-8")
    assert written == golden.read_text(encoding="utf-8")


def test_the_csv_has_a_header_and_a_line_per_slo_with_the_json_numbers(report: dict[str, object]) -> None:
    rows = list(csv.DictReader(io.StringIO(sla_file(report, "csv"))))
    assert [row["slo"] for row in rows] == ["checkout", "ledger", "ratio-only", "search"]
    for row in rows:
        line = _line(report, row["slo"])
        assert row["events"] == ("" if line["events"] is None else str(line["events"]))
        assert row["met"] == {True: "true", False: "false", None: ""}[line["met"]]


def test_the_html_escapes_what_declarations_say(history_fleet: Fleet, rows: list[Rollup]) -> None:
    hostile = load_fleet(
        Path(tempfile.mkdtemp()),
        declarations_text().replace("Planned failover drill.", "<script>alert(1)</script> & co"),
    )
    page = sla_file(sla_report(SlaInputs(hostile, rows, _october(hostile), AT), "2025-10"), "html")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', ""), "nothing fetched from anywhere"


# --- `sloplane report sla`, as a user runs it, and the page in a real browser ---------------------------------


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, rows: list[Rollup]) -> Path:
    """One SQLite file with the rollups and the same gates, as `serve` keeps them."""
    db = tmp_path_factory.mktemp("db") / "decisions.db"
    with SqliteDecisionLog(db) as decisions:
        for decision in _release_gates():
            decisions.append(decision)
    store = SqliteRollups(db)
    try:
        store.write(rows, AT)
    finally:
        store.close()
    return db


@pytest.fixture(scope="module")
def declarations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("declarations")
    (folder / "fleet.yaml").write_text(declarations_text())
    return folder


def test_the_command_writes_what_the_report_says(
    declarations: Path, database: Path, report: dict[str, object], tmp_path: Path
) -> None:
    out = tmp_path / "reports" / "sla.json"
    result = run_cli(
        "report",
        "sla",
        declarations,
        "--db",
        database,
        "--month",
        "2025-10",
        "--format",
        "json",
        "--at",
        AT.isoformat(),
        "--out",
        out,
    )
    assert result.code == 0, result.stderr
    assert json.loads(out.read_text()) == json.loads(pretty_json(report))
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == ["sla.json"]


def test_the_page_reads_in_a_browser_with_and_without_javascript(
    declarations: Path, database: Path, tmp_path: Path, browser: Any, browser_without_javascript: Any
) -> None:
    out = tmp_path / "sla.html"
    result = run_cli(
        "report", "sla", declarations, "--db", database, "--month", "2025-10", "--at", AT.isoformat(), "--out", out
    )
    assert result.code == 0, result.stderr
    page = open_page(browser, out)
    assert page.problems() == []
    assert page.count("section.slo") == 4
    assert page.count("section.slo svg.chart rect") == 4 * 31, "a bar per day of October, per SLO"
    assert page.count("span.state.missed") == 2 * 3 and page.count("span.state.nodata") == 2
    fills = set(page.colours("svg.chart rect.bad", "fill"))
    assert fills == {"#cf222e"} and set(page.colours("svg.chart rect.good", "fill")) == {"#1a7f37"}
    assert page.count("script") == 0
    screenshot(browser, "sla-2025-10")
    plain = open_page(browser_without_javascript, out)
    assert "SLA report 2025-10" in plain.text() and "97.696%" in plain.text()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--month", "2025-13"], "'2025-13' is not a month"),
        (["--month", "2025-10", "--quarter", "2025-Q4"], "give exactly one of month (YYYY-MM) or quarter"),
        (["--month", "2025-10", "--tz", "Europe/Berlinn"], "Europe/Berlin"),
        (["--month", "2025-10", "--tz", "Europe/Berlin"], "ledger's rollups are cut at 30 past the UTC hour"),
        (["--month", "2025-10", "--format", "pdf"], "give one of html, csv, json"),
    ],
)
def test_usage_errors_name_the_option_and_write_nothing(
    declarations: Path, database: Path, arguments: list[str], message: str, tmp_path: Path
) -> None:
    result = run_cli("report", "sla", declarations, "--db", database, "--out", tmp_path / "sla.html", *arguments)
    assert result.code == 2 and message in " ".join(result.stderr.split()), result.stderr
    assert list(tmp_path.iterdir()) == []


def test_reading_rows_a_few_slos_at_a_time_gives_the_same_report(
    history_fleet: Fleet,
    rows: list[Rollup],
    log: SqliteDecisionLog,
    report: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`sla_report`'s `read`: the rows of a batch of SLOs at a time (here one), so memory stays bounded."""
    monkeypatch.setattr(sla, "BATCH", 1)
    asked: list[list[str]] = []

    def read(names: list[str]) -> list[Rollup]:
        asked.append(names)
        return [row for row in rows if row.slo in names]

    inputs = SlaInputs(history_fleet, [], _october(history_fleet), AT, log)
    assert sla.sla_report(inputs, "2025-10", read) == report
    assert asked == [["checkout"], ["ledger"], ["ratio-only"], ["search"]]
