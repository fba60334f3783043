"""The weekly budget report from rollups of the known history (`tests/rollup_history.py`): its numbers against
the hand computation, its order, its freezes, its files (golden), and the page in a real browser."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sloplane.evaluator.history.budget import budget_report
from sloplane.evaluator.history.report_files import budget_file
from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.model import Rollup
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.sandbox import HttpTraffic, expected_counts
from sloplane.semantics.subjects import Fleet
from tests.browser import open_page
from tests.conftest import run_cli
from tests.rollup_history import EXCLUDED, SINCE, UNTIL
from tests.rollup_history import declarations as declarations_text

pytest_plugins = ("tests.browser", "tests.rollup_history")

GOLDEN = Path(__file__).parent / "golden" / "reports"
UPDATE = os.environ.get("SLOPLANE_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def database(history_database: Path) -> Path:
    return history_database


@pytest.fixture(scope="module")
def report(history_fleet: Fleet, database: Path) -> dict[str, Any]:
    store = SqliteRollups(database)
    try:
        with ReleaseControls(database) as controls:
            return budget_report(
                history_fleet, UNTIL, lambda names: store.read(since=SINCE, until=UNTIL, slos=names), controls
            )
    finally:
        store.close()


def _line(report: dict[str, Any], slo: str) -> dict[str, Any]:
    (found,) = [line for line in report["slos"] if line["slo"] == slo]
    return found


def _close(actual: float | None, expected: float) -> bool:
    return actual is not None and abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))


def test_a_rolling_slo_is_judged_over_its_window_and_the_week(
    report: dict[str, Any], history_traffic: dict[str, HttpTraffic]
) -> None:
    line = _line(report, "search")  # 30d rolling: the whole history; the week too
    bad, total = expected_counts(history_traffic["search"], UNTIL, UNTIL - SINCE)
    excluded_bad, excluded_total = expected_counts(history_traffic["search"], EXCLUDED[1], EXCLUDED[1] - EXCLUDED[0])
    bad, total = bad - excluded_bad, total - excluded_total
    assert _close(line["badEvents"], bad) and _close(line["events"], total)
    assert _close(line["budgetRemaining"], 1 - bad / (total * 0.005))
    assert _close(line["week"]["burnRate"], bad / total / 0.005)
    assert _close(line["week"]["budgetUsed"], bad / (total * 0.005))
    assert line["hoursToExhaustion"] == 0.0, "overspent: no time left"
    assert [freeze["reason"] for freeze in line["freezes"]] == ["failover drill follow-up"]


def test_a_calendar_slo_is_judged_over_its_month_so_far(
    report: dict[str, Any], history_traffic: dict[str, HttpTraffic]
) -> None:
    line = _line(report, "checkout")  # November in Berlin began at 23:00 UTC: two hours so far
    assert line["period"]["start"] == "2025-10-31T23:00:00+00:00"
    bad, total = expected_counts(history_traffic["checkout"], UNTIL, timedelta(hours=2))
    assert _close(line["badEvents"], bad) and _close(line["events"], total)
    left = 1 - bad / (total * 0.005)
    assert _close(line["budgetRemaining"], left)
    week_bad, _ = expected_counts(history_traffic["checkout"], UNTIL, UNTIL - SINCE)
    hours = (UNTIL - SINCE) / timedelta(hours=1)
    assert _close(line["hoursToExhaustion"], (total * 0.005 - bad) / (week_bad / hours))
    assert line["freezes"] == []


def test_least_budget_first_and_no_data_last(report: dict[str, Any]) -> None:
    order = [line["slo"] for line in report["slos"]]
    assert order[-1] == "ratio-only" and _line(report, "ratio-only")["budgetRemaining"] is None
    left = [line["budgetRemaining"] for line in report["slos"][:-1]]
    assert left == sorted(left)
    assert report["summary"]["frozen"] == 2 and report["summary"]["noData"] == 1  # both SLOs of service search


@pytest.mark.parametrize("output_format", FORMATS)
def test_each_format_is_its_golden_file(history_fleet: Fleet, database: Path, output_format: str) -> None:
    """Review a change with `SLOPLANE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report_budget.py` and `git diff`.

    Without the controls: a freeze's id is new on every run, and the golden bytes must not be."""
    store = SqliteRollups(database)
    try:
        plain = budget_report(history_fleet, UNTIL, lambda names: store.read(since=SINCE, until=UNTIL, slos=names))
    finally:
        store.close()
    written = budget_file(plain, output_format)
    golden = GOLDEN / f"budget-2025-11-01.{output_format}"
    if UPDATE:
        golden.write_text(written, encoding="utf-8")
    assert written == golden.read_text(encoding="utf-8")


def test_the_command_writes_the_report_and_the_page_reads_in_a_browser(
    database: Path, report: dict[str, Any], tmp_path: Path, browser: Any, browser_without_javascript: Any
) -> None:
    folder = tmp_path / "declarations"
    folder.mkdir()
    (folder / "fleet.yaml").write_text(declarations_text())
    common = ["report", "budget", folder, "--db", database, "--at", UNTIL.isoformat()]
    as_json = run_cli(*common, "--format", "json")
    assert as_json.code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == json.loads(budget_file(report, "json"))
    page_file = tmp_path / "budget.html"
    assert run_cli(*common, "--out", page_file).code == 0
    page = open_page(browser, page_file)
    assert page.problems() == [] and page.count("script") == 0
    assert page.count("tr.slo") == 4 and page.count(".gauge span.bad") >= 1
    assert "failover drill follow-up" in open_page(browser_without_javascript, page_file).text()


def test_rows_before_at_only(history_fleet: Fleet, report: dict[str, Any]) -> None:
    """`at` on a whole hour: the hour that starts there is not counted yet."""
    later: list[Rollup] = []
    assert budget_report(history_fleet, UNTIL, lambda names: later)["slos"][0]["events"] == 0.0
    assert report["at"] == UNTIL.isoformat() and datetime.fromisoformat(report["week"]["start"]) == UNTIL - timedelta(
        days=7
    )
