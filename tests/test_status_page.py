"""The status page: Statuspage's states from the burn-rate alerts, 90 daily bars, uptime, `status.json`, and
the page in a real browser, against a real Prometheus with the known history of `tests/rollup_history.py`."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sloplane.evaluator.history.rollup import roll_up
from sloplane.evaluator.history.status import DAYS, slo_state, status_page
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Exclusion, Measurement, Rollup, WindowMeasurement
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.sandbox import HttpTraffic, expected_counts
from sloplane.semantics.subjects import Fleet
from tests.browser import open_page, screenshot
from tests.conftest import run_cli
from tests.rollup_history import SINCE, UNTIL
from tests.rollup_history import declarations as declarations_text

pytest_plugins = ("tests.browser", "tests.rollup_history")

BURNING = datetime(2025, 10, 28, 12, 0, tzinfo=UTC)
"""Inside every service's second stretch (3.1–5.1% errors against a 0.5% budget: 6.2–10.2× the budget rate,
above the 6h/30m page alert's factor of 6)."""


@pytest.fixture(scope="module")
def rows(history_fleet: Fleet, history_prometheus: str) -> list[Rollup]:
    return roll_up(history_fleet, PrometheusBackend(history_prometheus), SINCE, UNTIL).rows


def _page(history_fleet: Fleet, history_prometheus: str, rows: list[Rollup], at: datetime) -> dict[str, Any]:
    measurements = Evaluator(history_fleet, PrometheusBackend(history_prometheus), _NoLog()).evaluate(at)
    return status_page(history_fleet, measurements, rows, at, name="example")


class _NoLog:
    """`evaluate` records nothing."""

    def append(self, decision: object) -> None:
        raise AssertionError("a status page records no decision")


def _component(page: dict[str, Any], service: str) -> dict[str, Any]:
    (found,) = [component for component in page["components"] if component["id"] == service]
    return found


def test_burning_services_are_a_partial_outage_and_the_page_says_major(
    history_fleet: Fleet, history_prometheus: str, rows: list[Rollup]
) -> None:
    page = _page(history_fleet, history_prometheus, rows, BURNING)
    assert page["status"] == {"indicator": "major", "description": "Partial System Outage"}
    for service in ("checkout", "ledger"):
        component = _component(page, service)
        assert component["status"] == "partial_outage", component["description"]
        assert "page" in component["sloplane"]["slos"][0]["why"] and "firing" in component["description"]
    search = _component(page, "search")  # search and the ratio-only SLO: the worst of the two
    states = {slo["slo"]: slo["state"] for slo in search["sloplane"]["slos"]}
    assert states["search"] == "partial_outage" and states["ratio-only"] == "degraded_performance"
    assert search["status"] == "partial_outage"


def test_after_the_burn_the_services_are_operational(
    history_fleet: Fleet, history_prometheus: str, rows: list[Rollup]
) -> None:
    page = _page(history_fleet, history_prometheus, rows, UNTIL)
    assert {c["id"]: c["status"] for c in page["components"]} == {
        "checkout": "operational",
        "ledger": "operational",
        "search": "degraded_performance",  # ratio-only has no data (errors_total does not exist): not "operational"
    }
    assert page["status"]["indicator"] == "minor"


def test_ninety_daily_bars_of_bad_against_allowed_and_the_uptime(
    history_fleet: Fleet, history_prometheus: str, rows: list[Rollup], history_traffic: dict[str, HttpTraffic]
) -> None:
    page = _page(history_fleet, history_prometheus, rows, UNTIL)
    checkout = _component(page, "checkout")["sloplane"]
    days = checkout["days"]
    assert len(days) == DAYS and days[-1]["day"] == "2025-11-01" and days[0]["day"] == "2025-08-04"
    assert all(day["events"] is None for day in days[:-8]), "no rows before the history: grey, not green"
    (october_30,) = [day for day in days if day["day"] == "2025-10-30"]
    bad, total = expected_counts(history_traffic["checkout"], datetime(2025, 10, 31, tzinfo=UTC), timedelta(days=1))
    assert abs(october_30["badEvents"] - bad) < 1e-9 * bad and abs(october_30["events"] - total) < 1e-9 * total
    assert abs(october_30["consumed"] - bad / (total * 0.005)) < 1e-9
    all_bad, all_total = expected_counts(history_traffic["checkout"], UNTIL, UNTIL - SINCE)
    assert abs(checkout["uptime"] - (1 - all_bad / all_total)) < 1e-12


def test_status_json_has_statuspages_summary_shape(
    history_fleet: Fleet, history_prometheus: str, rows: list[Rollup]
) -> None:
    page = _page(history_fleet, history_prometheus, rows, BURNING)
    assert set(page) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    assert set(page["page"]) == {"id", "name", "url", "time_zone", "updated_at"}
    statuspage_component = {
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "position",
        "description",
        "showcase",
        "start_date",
        "group_id",
        "page_id",
        "group",
        "only_show_if_degraded",
    }
    for component in page["components"]:
        assert statuspage_component <= set(component)
        assert component["status"] in {
            "operational",
            "degraded_performance",
            "partial_outage",
            "major_outage",
            "under_maintenance",
        }
    assert page["status"]["indicator"] in {"none", "minor", "major", "critical"}


def _measurement(error_ratio: float, burn: float, exclusions: tuple[Exclusion, ...] = ()) -> Measurement:
    windows = tuple(
        WindowMeasurement(length, error_ratio, burn, 1000.0, 1000.0 * error_ratio)
        for length in (
            timedelta(minutes=5),
            timedelta(minutes=30),
            timedelta(hours=1),
            timedelta(hours=2),
            timedelta(hours=6),
            timedelta(days=1),
            timedelta(days=3),
        )
    )
    return Measurement(
        slo="checkout",
        stage=None,
        objective=99.5,
        at=BURNING,
        period_start=BURNING - timedelta(days=30),
        windows=windows,
        period_events=1e6,
        period_bad_events=1e6 * error_ratio,
        exclusions=exclusions,
    )


@pytest.mark.parametrize(
    ("measurement", "state"),
    [
        (_measurement(0.0001, 0.02), "operational"),
        (_measurement(0.02, 4.0), "degraded_performance"),
        (_measurement(0.09, 18.0), "partial_outage"),
        (_measurement(0.6, 120.0), "major_outage"),
        (
            _measurement(
                0.6,
                120.0,
                (
                    Exclusion(
                        "maintenance", "db", BURNING - timedelta(minutes=5), BURNING + timedelta(minutes=5), "upgrade"
                    ),
                ),
            ),
            "under_maintenance",
        ),
        (None, "degraded_performance"),
    ],
)
def test_each_state_comes_from_its_rule(history_fleet: Fleet, measurement: Measurement | None, state: str) -> None:
    assert slo_state(history_fleet["checkout"], measurement, BURNING).state == state


def test_a_composite_has_a_ratio_and_no_events_of_its_own_and_is_judged_by_its_alerts(history_fleet: Fleet) -> None:
    """A composite's measurement (`source: composite`) has the period's ratio but no events: that is data."""
    composite = dataclasses.replace(
        _measurement(0.09, 18.0), period_events=None, period_bad_events=None, period_error_ratio=0.09
    )
    assert slo_state(history_fleet["checkout"], composite, BURNING).state == "partial_outage"
    nothing = dataclasses.replace(composite, period_error_ratio=None)
    assert slo_state(history_fleet["checkout"], nothing, BURNING).state == "degraded_performance"


def test_the_command_writes_the_page_that_reads_in_a_browser(
    history_prometheus: str, rows: list[Rollup], tmp_path: Path, browser: Any, browser_without_javascript: Any
) -> None:
    db = tmp_path / "state" / "decisions.db"
    store = SqliteRollups(db)
    try:
        store.write(rows, UNTIL)
    finally:
        store.close()
    with ReleaseControls(db) as controls:
        controls.open_incident("checkout errors after v2", "major", "on-call", services=["checkout"], at=BURNING)
    folder = tmp_path / "status"
    (tmp_path / "declarations").mkdir()
    (tmp_path / "declarations" / "fleet.yaml").write_text(declarations_text())
    result = run_cli(
        "status",
        tmp_path / "declarations",
        "--prometheus",
        history_prometheus,
        "--db",
        db,
        "--at",
        BURNING.isoformat(),
        "--out",
        folder,
        "--name",
        "example",
    )
    assert result.code == 0, result.stderr
    assert sorted(path.name for path in folder.iterdir()) == ["index.html", "status.json"]
    summary = json.loads((folder / "status.json").read_text())
    assert summary["status"]["indicator"] == "major"
    assert [incident["name"] for incident in summary["incidents"]] == ["checkout errors after v2"]
    page = open_page(browser, folder / "index.html")
    assert page.problems() == []
    assert page.count("section.component") == 3
    assert page.count("section.component svg.bars rect") == 3 * DAYS
    assert set(page.colours("svg.bars rect.nodata", "fill")) == {"#8c959f"}
    assert (
        page.count("svg.bars rect.good") + page.count("svg.bars rect.warn") + page.count("svg.bars rect.bad") == 3 * 4
    )
    assert page.count("script") == 0
    screenshot(browser, "status-page")
    plain = open_page(browser_without_javascript, folder / "index.html")
    assert "Partial System Outage" in plain.text() and "checkout errors after v2" in plain.text()
