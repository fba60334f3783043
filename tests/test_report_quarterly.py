"""The quarterly review from rollups of the known history (`tests/rollup_history.py`) and rows this module writes,
with break-glass from decisions it records in a real SQLite decision log.

The history (25 October to 1 November 2025) lies wholly in 2025-Q4 in every zone; its three HTTP SLOs are given
different teams, tiers and reviews here, and four SLOs are added whose rows are written straight into the store
(`CONSTRUCTED`): a healthy one with the quarter before and an objective tightened mid-quarter, one over the
at-risk threshold, one that missed a month, one without rows. Every expected number is computed here, from the
traffic (`expected_counts`) or from the rows and decisions written here.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from math import fsum
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sloplane.cli.main import app
from sloplane.evaluator.governance.debt import open_debt_lookup
from sloplane.evaluator.governance.quarterly_findings import governance_agenda
from sloplane.evaluator.governance.stale import stale_report
from sloplane.evaluator.history import quarterly_breakglass
from sloplane.evaluator.history.periods import PeriodError, quarter
from sloplane.evaluator.history.quarterly import quarterly_report
from sloplane.evaluator.history.quarterly_agenda import AGENDA
from sloplane.evaluator.history.quarterly_files import QUARTERLY_COLUMNS, quarterly_file
from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.history.rollup import roll_up
from sloplane.evaluator.history.sla import SlaInputs, sla_report
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import BreakGlass, Decision, Reason, Rollup
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.sandbox import HttpTraffic, expected_counts
from sloplane.semantics.subjects import Fleet
from tests.browser import open_page, screenshot
from tests.evaluator_data import load_fleet, make_decision
from tests.rollup_history import EXCLUDED, SINCE, UNTIL
from tests.rollup_history import declarations as history_declarations

pytest_plugins = ("tests.browser", "tests.rollup_history")

GOLDEN = Path(__file__).parent / "golden" / "reports"
UPDATE = os.environ.get("SLOPLANE_UPDATE_GOLDEN") == "1"
AT = datetime(2026, 1, 7, 9, 0, tzinfo=UTC)
"""The review meeting: a week after the quarter ended."""
WEIGHTS = {"critical": 8, "high": 4, "medium": 2, "low": 1}
"""The documented tier weights of the score (quarterly.py)."""

# --- the fleet: the history's SLOs re-owned, and four more ------------------------------------------------------

OWNERSHIP = {
    # name: (team, tier, review block)
    "checkout": ("shop", "critical", "{last: 2025-06-01, next: 2025-12-01}"),  # overdue on AT's date
    "ledger": ("payments", "high", "{next: 2026-03-15}"),  # due before the end of 2026-Q1, never reviewed
    "search": ("sre", "medium", "{}"),  # never reviewed
    "ratio-only": ("sre", "low", "{last: 2025-09-01}"),  # reviewed, nothing scheduled
}
EXTRA = {
    # name: (team, tier, objective, review block)
    "pay-api": ("payments", "critical", 99.5, "{last: 2025-10-01, next: 2026-09-01}"),  # scheduled
    "pay-batch": ("payments", "medium", 99.9, "{last: 2025-07-01, next: 2026-01-03}"),  # overdue by 4 days
    "cart": ("shop", "low", 99.0, "{next: 2026-03-31}"),  # due on the horizon's last day
    "cart-legacy": ("shop", "medium", 99.5, "{last: 2024-01-01, next: 2026-04-01}"),  # scheduled: after the horizon
}


def fleet_text() -> str:
    text = history_declarations()
    for name, (team, tier, review) in OWNERSHIP.items():
        service = "search" if name == "ratio-only" else name
        before = f"metadata: {{name: {name}}}\nspec:\n  service: {service}\n  owners: {{team: sre}}\n"
        after = (
            f"metadata: {{name: {name}}}\nspec:\n  service: {service}\n  owners: {{team: {team}}}\n"
            f"  tier: {tier}\n  review: {review}\n"
        )
        assert before in text
        text = text.replace(before, after)
    for name, (team, tier, objective, review) in EXTRA.items():
        text += (
            "---\napiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\n"
            f"metadata: {{name: {name}}}\nspec:\n  service: {name}\n  owners: {{team: {team}}}\n  tier: {tier}\n"
            f"  review: {review}\n  objective: {objective}\n  window: 30d\n"
            f"  sli: {{http: {{metric: http_requests_total, selector: {{job: {name}}}}}}}\n"
        )
    return text


# --- rows written straight into the store (UTC hours) ------------------------------------------------------------


@dataclass(frozen=True)
class Hour:
    slo: str
    start: datetime
    bad: float
    total: float
    objective: float
    excluded_bad: float = 0.0
    excluded_total: float = 0.0

    def row(self) -> Rollup:
        return Rollup(
            self.slo, None, self.start, self.start + timedelta(hours=1), self.bad, self.total,
            self.excluded_bad, self.excluded_total, 30.0 if self.excluded_total else 0.0, self.objective,
            "sha256:test", "UTC", "prometheus",
        )  # fmt: skip


def _days(slo: str, month: tuple[int, int], count: int, hour: tuple[float, float, float]) -> list[Hour]:
    """One hour (12:00 UTC) on each of the month's first `count` days: bad, total events and the objective."""
    return [Hour(slo, datetime(*month, day, 12, tzinfo=UTC), *hour) for day in range(1, count + 1)]


CONSTRUCTED: list[Hour] = [
    # pay-api, healthy: the quarter before (Q3) at 99.5; Q4 begins at 99.0, tightened to 99.5 in November
    *_days("pay-api", (2025, 7), 10, (10, 10_000, 99.5)),
    *_days("pay-api", (2025, 8), 10, (10, 10_000, 99.5)),
    *_days("pay-api", (2025, 9), 10, (10, 10_000, 99.5)),
    *_days("pay-api", (2025, 10), 10, (20, 10_000, 99.0)),
    *_days("pay-api", (2025, 11), 9, (5, 10_000, 99.5)),
    Hour("pay-api", datetime(2025, 11, 20, 12, tzinfo=UTC), 50, 10_000, 99.5, excluded_bad=45, excluded_total=1_000),
    *_days("pay-api", (2025, 12), 5, (5, 10_000, 99.5)),
    # pay-batch, at risk by its budget: 80% of each month's budget at 99.9, every month met
    *_days("pay-batch", (2025, 10), 4, (20, 25_000, 99.9)),
    *_days("pay-batch", (2025, 11), 4, (20, 25_000, 99.9)),
    *_days("pay-batch", (2025, 12), 4, (20, 25_000, 99.9)),
    # cart, at risk by a missed month: October spends 150% of its budget, the quarter 17%
    *_days("cart", (2025, 10), 1, (150, 10_000, 99.0)),
    *_days("cart", (2025, 11), 10, (10, 10_000, 99.0)),
    *_days("cart", (2025, 12), 10, (10, 10_000, 99.0)),
]


# --- decisions recorded in the log -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    number: int
    slo: str
    at: datetime
    glass: bool = False
    override: bool = False
    replay: bool = False
    revision: str = "v1"
    reason: str = "a fix"

    def decision(self) -> Decision:
        base = make_decision(self.number, slo=self.slo, stage=None, revision=self.revision, decided_at=self.at)
        request = base.request
        reasons = base.reasons
        if self.glass:
            request = replace(request, break_glass=BreakGlass(self.reason, f"oncall-{self.slo}"))
            code = "break-glass" if self.override else "break-glass-unused"
            reasons = (Reason(code, f"break-glass ({code})", {}),)
        if self.replay:
            request = replace(request, at=self.at - timedelta(days=1))
        return replace(base, request=request, reasons=reasons, service=self.slo)


GATES = [
    Gate(1, "checkout", datetime(2025, 9, 30, 22, 30, tzinfo=UTC), glass=True, override=True),  # Berlin's Q4 already
    Gate(2, "checkout", datetime(2025, 11, 10, 9, 0, tzinfo=UTC), glass=True, override=True, revision="v7"),
    Gate(3, "checkout", datetime(2025, 11, 10, 9, 5, tzinfo=UTC), glass=True, revision="v7"),  # not needed
    Gate(4, "checkout", datetime(2025, 11, 10, 9, 10, tzinfo=UTC)),
    Gate(
        5,
        "pay-api",
        datetime(2025, 12, 20, 15, 0, tzinfo=UTC),
        glass=True,
        override=True,
        revision="v3",
        reason="<script>alert(1)</script> & co",
    ),
    Gate(6, "pay-api", datetime(2025, 12, 21, 15, 0, tzinfo=UTC), glass=True, override=True, replay=True),
    Gate(7, "cart", datetime(2025, 9, 15, 8, 0, tzinfo=UTC), glass=True, override=True),  # Q3
    Gate(8, "checkout", datetime(2026, 1, 2, 8, 0, tzinfo=UTC), glass=True, override=True),  # Q1 of 2026
    Gate(9, "gone", datetime(2025, 10, 5, 8, 0, tzinfo=UTC), glass=True, override=True),  # no longer declared
    Gate(10, "pay-batch", datetime(2025, 10, 6, 8, 0, tzinfo=UTC)),
    Gate(11, "pay-api", datetime(2026, 1, 8, 8, 0, tzinfo=UTC), glass=True, override=True),  # after AT
]
QUARTER_START = {"checkout": datetime(2025, 9, 30, 22, 0, tzinfo=UTC)}
"""Where 2025-Q4 starts for each SLO whose zone is not UTC (checkout: Europe/Berlin)."""


def _in_quarter(gate: Gate) -> bool:
    start = QUARTER_START.get(gate.slo, datetime(2025, 10, 1, tzinfo=UTC))
    end = datetime(2025, 12, 31, 23, 0, tzinfo=UTC) if gate.slo == "checkout" else datetime(2026, 1, 1, tzinfo=UTC)
    return start <= gate.at < end and gate.at < AT


# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), fleet_text())


@pytest.fixture(scope="module")
def history_rows(history_fleet: Fleet, history_prometheus: str) -> list[Rollup]:
    return roll_up(history_fleet, PrometheusBackend(history_prometheus), SINCE, UNTIL).rows


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, history_rows: list[Rollup]) -> Path:
    """The history's rows, the constructed ones and the gates, in one SQLite file as `serve` keeps them."""
    db = tmp_path_factory.mktemp("db") / "decisions.db"
    store = SqliteRollups(db)
    try:
        store.write([*history_rows, *(hour.row() for hour in CONSTRUCTED)], AT)
    finally:
        store.close()
    with SqliteDecisionLog(db) as log:
        for gate in GATES:
            log.append(gate.decision())
    return db


def _build(fleet: Fleet, database: Path, **options: Any) -> dict[str, Any]:
    store = SqliteRollups(database)
    try:
        with SqliteDecisionLog(database) as log:
            return quarterly_report(
                fleet,
                options.pop("label", "2025-Q4"),
                options.pop("at", AT),
                lambda names, since, until: store.read(since=since, until=until, slos=names),
                log=log,
                **options,
            )
    finally:
        store.close()


@pytest.fixture(scope="module")
def report(fleet: Fleet, database: Path) -> dict[str, Any]:
    return _build(fleet, database)


@pytest.fixture(scope="module")
def governed(fleet: Fleet, database: Path) -> dict[str, Any]:
    """The review as the command and `/v1/reports/quarterly` build it: with governance's findings after the
    review's own items (no register, no support feedback in this store: stale findings only)."""
    store = SqliteRollups(database)
    try:
        with SqliteDecisionLog(database) as log:
            rows = lambda since, until, names: store.read(since=since, until=until, slos=names)  # noqa: E731
            extras = governance_agenda(rows, feedback=lambda *_: [])("2025-Q4", AT, fleet, log)
    finally:
        store.close()
    return _build(fleet, database, agenda_sources=(*AGENDA, *extras))


def test_governance_findings_follow_the_reviews_own_agenda(
    fleet: Fleet, database: Path, report: dict[str, Any], governed: dict[str, Any]
) -> None:
    """Every `govern stale` finding at the quarter's end, but the two the review lists itself, joins the agenda
    after the review's own items, in the findings' order, with its rule and inputs."""
    own = len(report["agenda"])
    assert governed["agenda"][:own] == report["agenda"]
    store = SqliteRollups(database)
    try:
        with SqliteDecisionLog(database) as log:
            rows = lambda since, until, names: store.read(since=since, until=until, slos=names)  # noqa: E731
            stale = stale_report(fleet, rows, AT, log=log, open_debt=open_debt_lookup([]), blind_spots=[])
    finally:
        store.close()
    expected = [f for f in stale["findings"] if f["rule"] not in {"review-overdue", "no-data"}]
    assert expected, "the store's history gives stale findings to put on the agenda"
    added = governed["agenda"][own:]
    assert [(item["kind"], item["slo"]) for item in added] == [(f"stale-{f['rule']}", f["slo"]) for f in expected]
    assert [item["facts"]["inputs"] for item in added] == [f["inputs"] for f in expected]
    assert [item["position"] for item in added] == list(range(own + 1, own + 1 + len(added)))


def _line(report: dict[str, Any], slo: str) -> dict[str, Any]:
    (found,) = [line for line in report["slos"] if line["slo"] == slo]
    return found


def _close(actual: float | None, expected: float) -> bool:
    return actual is not None and abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))


def _state(used: float | None, months_missed: bool) -> str:
    """The documented rule, applied to the hand-computed numbers."""
    if used is None:
        return "no-data"
    if used >= 1:
        return "exhausted"
    return "at-risk" if used >= 0.75 or months_missed else "healthy"


# --- the history's SLOs: the quarter and its months against the traffic ------------------------------------------

LAST_ROW_END = {"checkout": UNTIL, "ledger": UNTIL - timedelta(minutes=30), "search": UNTIL}
FIRST_ROW = {"checkout": SINCE, "ledger": SINCE + timedelta(minutes=30), "search": SINCE}
OCTOBER_END = {
    "checkout": datetime(2025, 10, 31, 23, 0, tzinfo=UTC),  # midnight in Berlin (winter time again)
    "ledger": datetime(2025, 10, 31, 18, 30, tzinfo=UTC),  # midnight in Kolkata
    "search": datetime(2025, 11, 1, 0, 0, tzinfo=UTC),
}


def _counted(traffic: HttpTraffic, slo: str, start: datetime, end: datetime) -> tuple[float, float]:
    bad, total = expected_counts(traffic, end, end - start)
    if slo == "search" and start <= EXCLUDED[0] and EXCLUDED[1] <= end:  # the excluded half hour is taken out
        excluded_bad, excluded_total = expected_counts(traffic, EXCLUDED[1], EXCLUDED[1] - EXCLUDED[0])
        bad, total = bad - excluded_bad, total - excluded_total
    return bad, total


@pytest.mark.parametrize("slo", ["checkout", "ledger", "search"])
def test_the_quarter_and_its_months_are_the_hand_computed_ones(
    report: dict[str, Any], history_traffic: dict[str, HttpTraffic], slo: str
) -> None:
    line = _line(report, slo)
    traffic, first, last, october_end = history_traffic[slo], FIRST_ROW[slo], LAST_ROW_END[slo], OCTOBER_END[slo]
    bad, total = _counted(traffic, slo, first, last)
    assert _close(line["events"], total) and _close(line["badEvents"], bad)
    assert _close(line["sli"], 1 - bad / total) and _close(line["budgetUsed"], bad / (total * 0.005))
    assert line["hours"]["withData"] == (last - first) // timedelta(hours=1)
    october, november, december = line["months"]
    months = []
    for month, (start, end) in ((october, (first, october_end)), (november, (october_end, last))):
        month_bad, month_total = _counted(traffic, slo, start, end)
        assert _close(month["events"], month_total) and _close(month["badEvents"], month_bad)
        assert _close(month["budgetUsed"], month_bad / (month_total * 0.005))
        months.append(month_bad / month_total > 0.005)
    assert december["events"] == 0 and december["sli"] is None and december["met"] is None
    assert [m["label"] for m in line["months"]] == ["2025-10", "2025-11", "2025-12"]
    assert line["previous"] is None and line["change"] is None  # nothing rolled up in Q3
    assert line["state"] == _state(bad / (total * 0.005), any(months))


def test_the_quarter_agrees_with_the_sla_reports_quarter(
    fleet: Fleet, history_rows: list[Rollup], report: dict[str, Any]
) -> None:
    """The same rule as `report sla --quarter`, so the review and the SLA report never disagree."""
    periods = {name: quarter("2025-Q4", line["period"]["timeZone"]) for name in fleet for line in [_line(report, name)]}
    rows = [*history_rows, *(hour.row() for hour in CONSTRUCTED)]
    sla = sla_report(SlaInputs(fleet, rows, periods, AT), "2025-Q4")
    for sla_line in sla["slos"]:
        line = _line(report, sla_line["slo"])
        assert (line["met"], line["objective"], line["events"]) == (
            sla_line["met"],
            sla_line["objective"],
            sla_line["events"],
        )
        assert line["budgetUsed"] == sla_line["budgetUsed"]


# --- the constructed SLOs: trends, objective changes, exclusions, states ---------------------------------------


def _sums(slo: str, start: datetime, end: datetime) -> tuple[float, float, float | None]:
    """Counted bad and total events of the constructed rows in [start, end), and the first row's objective."""
    inside = [hour for hour in CONSTRUCTED if hour.slo == slo and start <= hour.start < end]
    bad = fsum(hour.bad - hour.excluded_bad for hour in inside)
    total = fsum(hour.total - hour.excluded_total for hour in inside)
    return bad, total, inside[0].objective if inside else None


def _utc(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("slo", ["pay-api", "pay-batch", "cart"])
def test_each_month_the_quarter_before_and_the_change_are_the_rows_sums(report: dict[str, Any], slo: str) -> None:
    line = _line(report, slo)
    bad, total, objective = _sums(slo, _utc(2025, 10), _utc(2026, 1))
    assert objective is not None
    used = bad / (total * (100 - objective) / 100)
    assert line["objective"] == objective and _close(line["events"], total) and _close(line["budgetUsed"], used)
    missed = []
    for month, number in zip(line["months"], (10, 11, 12), strict=True):
        month_bad, month_total, month_objective = _sums(slo, _utc(2025, number), _utc(2025, number + 1))
        assert month["objective"] == month_objective
        month_used = month_bad / (month_total * (100 - month_objective) / 100)
        assert _close(month["budgetUsed"], month_used) and _close(month["sli"], 1 - month_bad / month_total)
        if month_used > 1:
            missed.append(month["label"])
    assert line["missedMonths"] == missed
    assert line["state"] == _state(used, bool(missed))
    before_bad, before_total, before_objective = _sums(slo, _utc(2025, 7), _utc(2025, 10))
    if before_objective is None:
        assert line["previous"] is None and line["change"] is None
        return
    before_used = before_bad / (before_total * (100 - before_objective) / 100)
    assert _close(line["previous"]["budgetUsed"], before_used)
    sli, before_sli = 1 - bad / total, 1 - before_bad / before_total
    assert _close(line["change"]["sliPoints"], (sli - before_sli) * 100)
    assert _close(line["change"]["budgetUsed"], used - before_used)


def test_the_objective_is_the_one_in_force_at_each_periods_start(report: dict[str, Any]) -> None:
    line = _line(report, "pay-api")  # October's rows at 99.0, November's at 99.5
    assert line["objective"] == 99.0 and [m["objective"] for m in line["months"]] == [99.0, 99.5, 99.5]
    assert line["objectiveChanges"] == [{"from": "2025-11-01T12:00:00+00:00", "objective": 99.5}]
    assert line["previous"]["objective"] == 99.5


def test_an_slo_without_rows_has_no_data(report: dict[str, Any]) -> None:
    for slo in ("cart-legacy", "ratio-only"):
        line = _line(report, slo)
        assert line["state"] == "no-data" and line["events"] == 0 and line["met"] is None
        assert line["hours"] == {"expected": 92 * 24, "withData": 0}  # UTC: no clock change


# --- the grid and the score ------------------------------------------------------------------------------------


def test_the_grid_counts_every_state_by_team_and_tier(report: dict[str, Any]) -> None:
    lines = report["slos"]
    assert {line["state"] for line in lines} == {"healthy", "at-risk", "exhausted", "no-data"}
    grid = report["grid"]
    assert grid["tiers"] == ["critical", "high", "medium", "low"]
    assert [team["team"] for team in grid["teams"]] == ["payments", "shop", "sre"]
    for team in grid["teams"]:
        for cell in team["cells"]:
            inside = [line for line in lines if line["team"] == team["team"] and line["tier"] == cell["tier"]]
            assert sorted(cell["slos"]) == sorted(line["slo"] for line in inside)
            for state in grid["states"]:
                assert cell["counts"][state] == sum(1 for line in inside if line["state"] == state)
    assert sum(team["counts"]["exhausted"] for team in grid["teams"]) == grid["totals"]["counts"]["exhausted"]
    assert report["summary"]["slos"] == len(OWNERSHIP) + len(EXTRA)
    assert grid["teams"][0]["cells"][0]["counts"]["healthy"] == 1  # payments × critical: pay-api


def test_the_score_is_the_tier_weighted_share_met(report: dict[str, Any]) -> None:
    lines = [line for line in report["slos"] if line["met"] is not None]
    met = [line for line in lines if line["budgetUsed"] <= 1]  # SLI ≥ objective ⇔ budget used ≤ 100%
    numerator = sum(WEIGHTS[line["tier"]] for line in met)
    denominator = sum(WEIGHTS[line["tier"]] for line in lines)
    score = report["score"]
    assert (score["numerator"], score["denominator"]) == (numerator, denominator)
    assert _close(score["value"], numerator / denominator)
    assert _close(score["coverage"], len(lines) / len(report["slos"]))
    assert score["weights"] == WEIGHTS
    assert [(tier["tier"], tier["met"]) for tier in score["tiers"]] == [
        (tier, sum(1 for line in met if line["tier"] == tier)) for tier in WEIGHTS
    ]
    payments = [line for line in lines if line["team"] == "payments"]
    team_score = report["grid"]["teams"][0]["score"]
    assert team_score["denominator"] == sum(WEIGHTS[line["tier"]] for line in payments)


# --- reviews ---------------------------------------------------------------------------------------------------


def test_review_status_classes(report: dict[str, Any]) -> None:
    today = AT.date()  # 09:00 UTC: the same date in every zone here
    expected = {
        "checkout": ("overdue", (today - date(2025, 12, 1)).days),
        "pay-batch": ("overdue", (today - date(2026, 1, 3)).days),
        "ledger": ("due", None),
        "cart": ("due", None),  # on the horizon: 2026-Q1's last day
        "search": ("never-reviewed", None),
        "ratio-only": ("unscheduled", None),
        "pay-api": ("scheduled", None),
        "cart-legacy": ("scheduled", None),  # a day after the horizon
    }
    assert {
        line["slo"]: (line["review"]["status"], line["review"]["daysOverdue"]) for line in report["slos"]
    } == expected
    assert report["reviews"]["horizon"] == "2026-03-31"
    assert report["reviews"]["counts"]["overdue"] == 2


# --- break-glass -----------------------------------------------------------------------------------------------


def _expected_glass(fleet: Fleet) -> dict[str | None, dict[str, Any]]:
    teams = {name: fleet[name].spec.owners.team for name in fleet}
    found: dict[str | None, dict[str, Any]] = {}
    for gate in GATES:
        if not gate.glass or gate.replay or not _in_quarter(gate):
            continue
        counts = found.setdefault(teams.get(gate.slo), {"decisions": 0, "overrides": 0, "releases": set()})
        counts["decisions"] += 1
        counts["overrides"] += gate.override
        counts["releases"].add((gate.slo, gate.revision))
    return found


def test_break_glass_is_counted_per_team_over_each_slos_quarter(fleet: Fleet, report: dict[str, Any]) -> None:
    expected = _expected_glass(fleet)
    glass = report["breakGlass"]
    by_team = {team["team"]: team for team in glass["teams"]}
    assert set(by_team) == {"payments", "shop", "sre", None}
    for team, row in by_team.items():
        counts = expected.get(team, {"decisions": 0, "overrides": 0, "releases": set()})
        assert (row["decisions"], row["overrides"], row["releases"]) == (
            counts["decisions"],
            counts["overrides"],
            len(counts["releases"]),
        )
    assert by_team["shop"]["identities"] == ["oncall-checkout"] and by_team[None]["slos"] == ["gone"]
    kolkata_start = datetime(2025, 9, 30, 18, 30, tzinfo=UTC)  # the earliest quarter start: ledger's
    in_range = [g for g in GATES if kolkata_start <= g.at < datetime(2026, 1, 1, tzinfo=UTC)]
    assert glass["decisionsRead"] == len(in_range)


def test_break_glass_read_in_small_parts_is_the_same(
    fleet: Fleet, database: Path, report: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quarterly_breakglass, "READ_CAP", 2)
    assert _build(fleet, database)["breakGlass"] == report["breakGlass"]


# --- the agenda ------------------------------------------------------------------------------------------------


def test_the_agenda_puts_spent_budgets_first_and_missing_data_last(report: dict[str, Any]) -> None:
    exhausted = [line["slo"] for line in report["slos"] if line["state"] == "exhausted"]
    rank = {tier: index for index, tier in enumerate(WEIGHTS)}
    exhausted.sort(key=lambda slo: (rank[_line(report, slo)["tier"]], -_line(report, slo)["budgetUsed"]))
    expected = [
        *(("exhausted", slo) for slo in exhausted),
        ("missed", "cart"),  # October missed, the quarter within budget
        ("at-risk", "pay-batch"),  # 80% used, every month met
        ("review-overdue", "checkout"),  # 37 days before pay-batch's 4
        ("review-overdue", "pay-batch"),
        ("reviews-to-schedule", "payments"),  # ledger due
        ("reviews-to-schedule", "shop"),  # cart due
        ("reviews-to-schedule", "sre"),  # search never reviewed
        ("break-glass", "shop"),  # two overrides
        ("break-glass", "payments"),  # one override; a tie with the undeclared SLO, named teams first
        ("break-glass", None),
        ("no-data", "cart-legacy"),  # medium before low
        ("no-data", "ratio-only"),
    ]
    assert [(item["kind"], item["slo"] or item["team"]) for item in report["agenda"]] == expected
    assert [item["position"] for item in report["agenda"]] == list(range(1, len(expected) + 1))
    first = report["agenda"][0]
    assert first["facts"]["budgetUsed"] == _line(report, first["slo"])["budgetUsed"]
    missed = next(item for item in report["agenda"] if item["kind"] == "missed")
    assert [month["label"] for month in missed["facts"]["months"]] == ["2025-10"] and "2025-10" in missed["title"]


def test_the_agenda_takes_more_sources(fleet: Fleet, database: Path) -> None:
    def governance(report: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"kind": "governance", "team": None, "slo": None, "title": "a finding", "facts": {}}]

    built = _build(fleet, database, agenda_sources=(governance,))
    assert [item["kind"] for item in built["agenda"]] == ["governance"]


# --- determinism, periods, zones ------------------------------------------------------------------------------


def test_a_quarter_so_far_counts_hours_before_at(fleet: Fleet, database: Path) -> None:
    at = datetime(2025, 11, 15, tzinfo=UTC)
    built = _build(fleet, database, at=at)
    assert built["complete"] is False
    bad, total, _ = _sums("cart", _utc(2025, 10), at)
    assert _close(_line(built, "cart")["events"], total) and _close(_line(built, "cart")["badEvents"], bad)
    assert _line(built, "cart-legacy")["hours"]["expected"] == (at - _utc(2025, 10)) // timedelta(hours=1)


def test_a_bad_quarter_and_a_zone_that_cuts_rows_in_two_are_refused(fleet: Fleet, database: Path) -> None:
    with pytest.raises(PeriodError, match="'2025-Q5' is not a quarter"):
        _build(fleet, database, label="2025-Q5")
    with pytest.raises(PeriodError, match="ledger's rollups are cut at 30 past the UTC hour"):
        _build(fleet, database, time_zone="UTC")


def test_tz_cuts_every_slos_quarter_in_that_zone(tmp_path: Path, database: Path, report: dict[str, Any]) -> None:
    """The constructed SLOs (UTC hours, rows at noon) in Europe/Berlin: the quarter starts at 22:00 UTC on 30
    September (summer time) and ends at 23:00 UTC on 31 December; every row still falls inside."""
    extras = load_fleet(tmp_path, fleet_text().split("---\n", len(OWNERSHIP))[-1])
    assert sorted(extras) == sorted(EXTRA)
    berlin = _build(extras, database, time_zone="Europe/Berlin")
    assert berlin["timeZone"] == "Europe/Berlin"
    for line in berlin["slos"]:
        assert line["period"]["start"] == "2025-09-30T22:00:00+00:00"
        assert line["period"]["end"] == "2025-12-31T23:00:00+00:00"
        assert line["hours"]["expected"] == 92 * 24 + 1  # the 25-hour day in October
        assert (line["events"], line["badEvents"]) == (
            _line(report, line["slo"])["events"],
            _line(report, line["slo"])["badEvents"],
        )


def test_the_same_inputs_give_the_same_bytes(fleet: Fleet, database: Path, report: dict[str, Any]) -> None:
    again = _build(fleet, database)
    assert again == report and report["contentHash"].startswith("sha256:")


# --- the files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", FORMATS)
def test_each_format_is_its_golden_file(report: dict[str, Any], output_format: str) -> None:
    """Review a change with `SLOPLANE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report_quarterly.py`, `git diff`."""
    written = quarterly_file(report, output_format)
    golden = GOLDEN / f"quarterly-2025-Q4.{output_format}"
    if UPDATE:
        golden.write_text(written, encoding="utf-8")
    assert written == golden.read_text(encoding="utf-8")


def test_the_csv_has_a_line_per_slo_with_its_months(report: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(quarterly_file(report, "csv"))))
    assert list(rows[0]) == list(QUARTERLY_COLUMNS) and [row["slo"] for row in rows] == [
        line["slo"] for line in report["slos"]
    ]
    cart = next(row for row in rows if row["slo"] == "cart")
    assert cart["state"] == "at-risk" and cart["missed_months"] == "2025-10" and cart["month_1"] == "2025-10"
    assert float(cart["month_1_budget_used"]) == _line(report, "cart")["months"][0]["budgetUsed"]


def test_the_html_escapes_what_the_log_says(report: dict[str, Any]) -> None:
    page = quarterly_file(report, "html")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page  # gate 5's reason
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', ""), "nothing fetched from anywhere"


# --- the command, and the page in a real browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def declarations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("declarations")
    (folder / "fleet.yaml").write_text(fleet_text())
    return folder


def _run(*args: str | Path) -> Any:
    return CliRunner().invoke(app, ["report", "quarterly", *map(str, args)])  # the real `sloplane`, in process


def test_the_command_writes_what_the_builder_says(declarations: Path, database: Path, governed: dict[str, Any]) -> None:
    result = _run(declarations, "--db", database, "--quarter", "2025-Q4", "--at", AT.isoformat(), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(quarterly_file(governed, "json"))


@pytest.mark.parametrize(
    ("args", "option", "message"),
    [
        (["--quarter", "2025-Q5"], "--quarter", "'2025-Q5' is not a quarter"),
        (["--quarter", "2025-10"], "--quarter", "'2025-10' is not a quarter"),
        (["--quarter", "2025-Q4", "--format", "pdf"], "--format", "give one of html, csv, json"),
        (["--quarter", "2025-Q4", "--tz", "UTC"], "--tz", "ledger's rollups are cut at 30"),
    ],
)
def test_bad_usage_exits_2_naming_the_option(
    declarations: Path, database: Path, args: list[str], option: str, message: str
) -> None:
    result = _run(declarations, "--db", database, *args)
    flat = " ".join(result.stderr.split())
    assert result.exit_code == 2 and message in flat and option in flat, result.stderr
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output


def test_a_missing_store_exits_1(declarations: Path, tmp_path: Path) -> None:
    result = _run(declarations, "--db", tmp_path / "nothing.db", "--quarter", "2025-Q4")
    assert result.exit_code == 1 and "no rollups at" in result.stderr and "sloplane rollup" in result.stderr
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert not (tmp_path / "nothing.db").exists(), "a report never creates the store it reads"


def test_the_page_reads_in_a_browser(
    declarations: Path,
    database: Path,
    governed: dict[str, Any],
    browser: Any,
    browser_without_javascript: Any,
) -> None:
    page_file = declarations.parent / "quarterly.html"
    result = _run(declarations, "--db", database, "--quarter", "2025-Q4", "--at", AT.isoformat(), "--out", page_file)
    assert result.exit_code == 0, result.output
    page = open_page(browser, page_file)
    assert page.problems() == [] and page.count("script") == 0
    teams, tiers = len(governed["grid"]["teams"]), len(governed["grid"]["tiers"])
    assert page.count("table.grid td.cell") == teams * tiers
    chips = sum(1 for team in governed["grid"]["teams"] for cell in team["cells"] for n in cell["counts"].values() if n)
    assert page.count("table.grid tbody .chip") == chips
    assert page.count("svg.trend") == len(governed["slos"])
    assert page.count("svg.trend rect") == 3 * len(governed["slos"])
    assert page.count("svg.trend rect.bad") >= 1 and page.count("svg.trend rect.warn") >= 1
    assert page.count("ol.agenda li") == len(governed["agenda"])
    screenshot(browser, "quarterly")
    text = open_page(browser_without_javascript, page_file).text()
    assert "Quarterly review 2025-Q4" in text and governed["agenda"][0]["title"] in text


def test_governance_findings_cover_only_the_reports_own_fleet(fleet: Fleet, database: Path) -> None:
    """A limited token's review is built over its own SLOs and decisions: governance's findings follow them, never
    another team's (the sources are the report's, not the server's whole fleet)."""
    teams = sorted({fleet[name].spec.owners.team for name in fleet})
    store = SqliteRollups(database)
    try:
        with SqliteDecisionLog(database) as log:
            rows = lambda since, until, names: store.read(since=since, until=until, slos=names)  # noqa: E731
            agenda = governance_agenda(rows, feedback=lambda *_: [])
            whole = [item for source in agenda("2025-Q4", AT, fleet, log) for item in source({})]
            for team in teams:
                own = Fleet([fleet[name] for name in fleet if fleet[name].spec.owners.team == team])
                items = [item for source in agenda("2025-Q4", AT, own, log) for item in source({})]
                assert {item["slo"] for item in items} <= set(own)
                assert items == [item for item in whole if item["slo"] in own]
    finally:
        store.close()
    assert whole, "the history gives findings to share out"
