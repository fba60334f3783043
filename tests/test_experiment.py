"""`sloplane experiment` against direct recomputations (issue 18, objective experiments).

- Decisions: a real SQLite decision log of `checkout` (99.9%, 7d, gate: burn at most 10x over 10m, 5% of the
  budget left; a page alert 1h/5m at 14.4x) holding a grid of 36 gates decided by the real pipeline, each from its
  own measurement, and the cases around them (a freeze, a break-glass, a replay, an error without a measurement,
  a pass under an older policy, a record the gate would not give again, a decision before the range, another SLO's).
  Each outcome under another objective is worked out here from the grid's numbers alone (budget = (100 − objective)
  ÷ 100; fail when the budget left is ≤ 0 or under 5%, the 10m burn above 10, or both alert windows above 14.4).
- Days: the same store's hourly rows of `checkout` (1,000 events an hour, a little background, spikes; one spike
  mostly excluded, hours without data, the objective 99.8 until 20 days before AT): each day's rolling 7 days summed
  here from the rows the test wrote.
- Calendar days: the shared known history (`tests/rollup_history.py`: rows rolled up from a real Prometheus, a
  calendar month in Europe/Berlin across the clock change and the month's end, a half-hour zone), each day's
  budget from the traffic model (`expected_counts`).
- Alerts: a real Prometheus with two days of `pay` traffic (99.5%, a page 1h/5m and a ticket 6h/30m), replayed
  minute by minute here from the traffic model under both objectives.
- The command, in process: JSON is the builder's dict, the tables read, refusals name the option (exit 2), a
  missing store or an unreachable Prometheus is exit 1.
"""

from __future__ import annotations

import dataclasses
import io
import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner, Result

from sloplane.cli import experiment as experiment_cli
from sloplane.cli.main import _consoles
from sloplane.core.schedules import merge_spans
from sloplane.evaluator.deciding.context import GateContext
from sloplane.evaluator.deciding.pipeline import DecisionPipeline
from sloplane.evaluator.governance.experiment import MAX_SPAN, experiment_report
from sloplane.evaluator.history.report_kinds import ReportOptionError
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import (
    BreakGlass,
    Decision,
    Freeze,
    GateRequest,
    Measurement,
    Outcome,
    Rollup,
    WindowMeasurement,
)
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, expected_counts, http_traffic
from sloplane.semantics.subjects import Fleet, subjects
from tests.evaluator_data import load_fleet
from tests.rollup_history import SINCE as HISTORY_SINCE
from tests.rollup_history import UNTIL as HISTORY_UNTIL
from tests.rollup_history import ZONES

pytest_plugins = ("tests.rollup_history",)

AT = datetime(2026, 3, 31, tzinfo=UTC)
RANGE = timedelta(days=30)
SINCE = AT - RANGE
HOUR, MINUTE, DAY = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)
MIN_BUDGET, MAX_BURN, PAGE_FACTOR = 5.0, 10.0, 14.4

FLEET = textwrap.dedent(
    f"""\
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {{name: checkout}}
    spec:
      service: checkout
      owners: {{team: payments}}
      objective: 99.9
      window: 7d
      sli: {{http: {{metric: http_requests_total, selector: {{job: checkout}}}}}}
      gate: {{maxBurnRate: {MAX_BURN}, analysisWindow: 10m, minBudgetRemaining: {MIN_BUDGET}}}
      alerting:
        windows:
          - {{tier: page, long: 1h, short: 5m, factor: {PAGE_FACTOR}}}
    ---
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {{name: other}}
    spec:
      service: other
      owners: {{team: payments}}
      objective: 99
      window: 7d
      sli: {{http: {{metric: http_requests_total, selector: {{job: other}}}}}}
    """
)

# --- the decisions -------------------------------------------------------------------------------------------------

PERIOD_RATIOS = (0.0001, 0.0004, 0.00075, 0.0012)
ANALYSIS_RATIOS = (0.002, 0.007, 0.02)
ALERT_RATIOS = ((0.001, 0.001), (0.01, 0.03), (0.02, 0.02))
"""(1h, 5m) error ratios."""
GRID = [(p, a, alert) for p in PERIOD_RATIOS for a in ANALYSIS_RATIOS for alert in ALERT_RATIOS]


def hand_outcome(
    objective: float, period: float, analysis: float, alert: tuple[float, float], max_burn: float = MAX_BURN
) -> str:
    """The gate's rules for this declaration (`max_burn`: the policy's maximum burn), from the numbers alone."""
    budget = (100 - objective) / 100
    remaining = 1 - period / budget
    failed = (
        remaining <= 0
        or remaining * 100 < MIN_BUDGET
        or analysis / budget > max_burn
        or (alert[0] / budget > PAGE_FACTOR and alert[1] / budget > PAGE_FACTOR)
    )
    return "fail" if failed else "pass"


def _measurement(when: datetime, period: float, analysis: float, alert: tuple[float, float]) -> Measurement:
    budget = 0.001  # 99.9%, as the gate measured
    windows = [(timedelta(minutes=5), alert[1]), (timedelta(minutes=10), analysis), (HOUR, alert[0])]
    return Measurement(
        slo="checkout",
        stage=None,
        objective=99.9,
        at=when,
        period_start=when - 7 * DAY,
        windows=tuple(WindowMeasurement(length, ratio, ratio / budget, 6e4, ratio * 6e4) for length, ratio in windows),
        period_error_ratio=period,
        period_events=1e7,
        period_bad_events=period * 1e7,
        budget_remaining=1 - period / budget,
    )


def _gate(
    fleet: Fleet,
    number: int,
    when: datetime,
    numbers: tuple[float, float, tuple[float, float]],
    *,
    slo: str = "checkout",
    stage: str | None = None,
    freeze: bool = False,
    glass: bool = False,
    replay: bool = False,
) -> Decision:
    """A decision the real pipeline makes from these numbers, as the gate records it."""
    declaration = fleet[slo]
    request = GateRequest(
        slo=slo,
        stage=stage,
        revision=f"r{number:03d}",
        pipeline="build",
        at=when - DAY if replay else None,
        break_glass=BreakGlass("hotfix", "dana") if glass else None,
    )
    freezes = [Freeze("f-1", "checkout", "release train", "sre", when - HOUR)] if freeze else []
    measurement = dataclasses.replace(_measurement(when, *numbers), slo=slo, stage=stage)
    (subject,) = [s for s in subjects(declaration) if s.stage == stage]
    context = GateContext(declaration, subject, request, measurement, freezes=freezes)
    outcome = DecisionPipeline().decide(context)
    policy = context.policy.model_dump(mode="json", by_alias=True)
    return Decision(
        id=f"d-{number:03d}",
        outcome=outcome,
        slo=slo,
        service=declaration.spec.service,
        stage=stage,
        decided_at=when,
        reasons=tuple(context.reasons),
        request=request,
        measurement=measurement,
        policy={**policy, "declared": True},
        policy_version="sha256:test",
    )


def grid_time(index: int) -> datetime:
    return SINCE + timedelta(hours=17 * index + 3, minutes=11)


FROZEN = (0.0001, 0.002, (0.001, 0.001))
"""Healthy numbers, frozen: fails under every objective."""
GLASS = (0.0004, 0.007, (0.001, 0.001))
"""A breach at 99.95 (burn 14x), none at 99.9 or 99.5: the break-glass passes it anyway."""
BREACH = (0.0004, 0.02, (0.001, 0.001))
"""Burn 20x at 99.9: failed by the declared gate, passed under an older policy (maxBurnRate 30)."""
OLDER_MAX_BURN = 30.0


def _special(fleet: Fleet) -> list[Decision]:
    when = SINCE + timedelta(days=29, hours=5)
    older = _gate(fleet, 904, when + 4 * MINUTE, BREACH)
    older_policy = {**older.policy, "maxBurnRate": OLDER_MAX_BURN}
    stale = _gate(fleet, 905, when + 5 * MINUTE, BREACH)
    return [
        _gate(fleet, 900, when, FROZEN, freeze=True),
        _gate(fleet, 901, when + MINUTE, GLASS, glass=True),
        _gate(fleet, 902, when + 2 * MINUTE, BREACH, replay=True),
        dataclasses.replace(
            _gate(fleet, 903, when + 3 * MINUTE, FROZEN), outcome=Outcome.ERROR, reasons=(), measurement=None
        ),
        # decided then under maxBurnRate 30: the replay must judge it by that policy
        dataclasses.replace(older, outcome=Outcome.PASS, reasons=(), policy=older_policy),
        # recorded a pass the gate's rules do not give for these numbers (a rule changed since): not reproduced
        dataclasses.replace(stale, outcome=Outcome.PASS, reasons=()),
        _gate(fleet, 906, SINCE - HOUR, BREACH),  # before the range
        _gate(fleet, 907, when + 7 * MINUTE, BREACH, slo="other"),  # another SLO
    ]


# --- the rows ------------------------------------------------------------------------------------------------------

EVENTS, BACKGROUND = 1000.0, 0.2
ROWS_FROM = AT - 40 * DAY
OBJECTIVE_CHANGE = AT - 20 * DAY
"""Rows before it were rolled up with 99.8, from it with 99.9."""
SPIKES = {
    SINCE + 5 * DAY + 14 * HOUR: (150.0, 0.0),  # a 7d window holding it: 183.6 bad, over 99.9's 168 but in 99.8's
    SINCE + 15 * DAY + 9 * HOUR: (60.0, 0.0),  # 93.6: over 99.95's 84 only
    SINCE + 22 * DAY + 2 * HOUR: (200.0, 160.0),  # 160 of them excluded: 73.6 counted, exhausting nothing
    SINCE + 25 * DAY + 20 * HOUR: (300.0, 0.0),  # 333.6: over 99.9's 168, inside 99.5's 840
}
NO_DATA = {SINCE + 10 * DAY + hour * HOUR for hour in range(3)}


def _rows() -> list[Rollup]:
    rows = []
    start = ROWS_FROM
    while start < AT:
        objective = 99.8 if start < OBJECTIVE_CHANGE else 99.9
        bad, excluded = SPIKES.get(start, (0.0, 0.0))
        if start in NO_DATA:
            row = Rollup("checkout", None, start, start + HOUR, None, None, 0.0, 0.0, 0.0, objective, "v", "UTC", "p")
        else:
            row = Rollup(
                "checkout",
                None,
                start,
                start + HOUR,
                BACKGROUND + bad,
                EVENTS,
                excluded,
                100.0 if excluded else 0.0,
                6.0 if excluded else 0.0,
                objective,
                "v",
                "UTC",
                "prometheus",
            )
        rows.append(row)
        start += HOUR
    return rows


def hand_days(objective: float) -> dict[str, tuple[bool, bool]]:
    """Each UTC day of the range: (exhausted under the rows' objective, under `objective`), from `_rows`' inputs."""
    found = {}
    for index in range(RANGE.days):
        end = SINCE + (index + 1) * DAY
        bad = total = 0.0
        first_objective = None
        hour = end - 7 * DAY
        while hour < end:
            first_objective = first_objective or (99.8 if hour < OBJECTIVE_CHANGE else 99.9)
            if hour not in NO_DATA:
                spike, excluded = SPIKES.get(hour, (0.0, 0.0))
                bad += BACKGROUND + spike - excluded
                total += EVENTS - (100.0 if excluded else 0.0)
            hour += HOUR
        assert first_objective is not None
        old = bad / (total * (100 - first_objective) / 100)
        new = bad / (total * (100 - objective) / 100)
        assert abs(old - 1) > 1e-6 and abs(new - 1) > 1e-6  # no day decided by rounding
        found[(end - DAY).date().isoformat()] = (old >= 1, new >= 1)
    return found


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet")
    load_fleet(folder, FLEET)
    return folder


@pytest.fixture(scope="module")
def fleet(fleet_dir: Path) -> Fleet:
    return load_fleet(fleet_dir, FLEET)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet) -> Path:
    db = tmp_path_factory.mktemp("db") / "decisions.db"
    store = SqliteRollups(db)
    try:
        store.write(_rows(), AT)
    finally:
        store.close()
    with SqliteDecisionLog(db) as log:
        for index, numbers in enumerate(GRID):
            log.append(_gate(fleet, index, grid_time(index), numbers))
        for decision in _special(fleet):
            log.append(decision)
    return db


def build(fleet: Fleet, database: Path, objective: float, **options: Any) -> dict[str, Any]:
    store = SqliteRollups(database)
    try:
        with SqliteDecisionLog(database) as log:
            return experiment_report(
                fleet,
                log,
                lambda since, until, names: store.read(since=since, until=until, slos=names),
                AT,
                slo="checkout",
                objective=objective,
                since=options.pop("since", RANGE),
                **options,
            )
    finally:
        store.close()


@pytest.fixture(scope="module", params=[99.95, 99.5])
def experiment(request: pytest.FixtureRequest, fleet: Fleet, database: Path) -> tuple[float, dict[str, Any]]:
    return request.param, build(fleet, database, request.param)


# --- decisions -----------------------------------------------------------------------------------------------------


def test_the_grid_was_recorded_as_the_hand_rules_decide_it(database: Path) -> None:
    with SqliteDecisionLog(database) as log:
        recorded = {r["id"]: r["decision"] for r in log.query(slo="checkout", limit=1000)}
    for index, numbers in enumerate(GRID):
        assert recorded[f"d-{index:03d}"] == hand_outcome(99.9, *numbers)
    assert {hand_outcome(99.9, *numbers) for numbers in GRID} == {"pass", "fail"}


def test_flipped_decisions_equal_the_hand_recomputation(experiment: tuple[float, dict[str, Any]]) -> None:
    objective, report = experiment
    decisions = report["decisions"]
    expected = {
        f"d-{index:03d}": (hand_outcome(99.9, *numbers), hand_outcome(objective, *numbers))
        for index, numbers in enumerate(GRID)
        if hand_outcome(99.9, *numbers) != hand_outcome(objective, *numbers)
    }
    assert expected, "the grid must flip something under either objective"
    older = hand_outcome(objective, *BREACH, max_burn=OLDER_MAX_BURN)  # judged by the policy it was decided under
    if older != "pass":
        expected["d-904"] = ("pass", older)
    assert {flip["id"]: (flip["old"], flip["new"]) for flip in decisions["flipped"]} == expected
    assert decisions["passToFail"] == sum(1 for old, new in expected.values() if (old, new) == ("pass", "fail"))
    assert decisions["failToPass"] == sum(1 for old, new in expected.values() if (old, new) == ("fail", "pass"))
    assert decisions["otherChanges"] == 0
    # the grid, the freeze, the break-glass and the older policy replayed; the stale record not reproduced
    assert decisions["replayed"] == len(GRID) + 4
    assert decisions["unchanged"] == len(GRID) + 3 - len(expected)
    assert [entry["id"] for entry in decisions["notReproduced"]] == ["d-905"]
    assert decisions["replaysLeftOut"] == 1
    assert decisions["notReplayable"] == {"no measurement recorded": 1}
    flipped = [f["id"] for f in decisions["flipped"]]
    assert flipped == sorted(flipped)  # oldest first (the grid is in time order)
    for flip in decisions["flipped"]:
        index = int(flip["id"][2:])
        if index < len(GRID):
            assert flip["decidedAt"] == grid_time(index).isoformat()
        codes = {reason["code"] for reason in flip["reasons"]}
        assert (
            "budget-exhausted" in codes or "budget-low" in codes or "burn-rate" in codes or "alert-active" in codes
        ) == (flip["new"] == "fail")


def test_a_tighter_objective_fails_and_a_looser_one_passes(experiment: tuple[float, dict[str, Any]]) -> None:
    objective, report = experiment
    decisions = report["decisions"]
    if objective > 99.9:
        assert decisions["passToFail"] > 0 and decisions["failToPass"] == 0
    else:
        assert decisions["failToPass"] > 0 and decisions["passToFail"] == 0


def test_a_burn_rate_flip_names_the_burn_under_the_new_objective(fleet: Fleet, database: Path) -> None:
    report = build(fleet, database, 99.95)
    index = GRID.index((0.0001, 0.007, (0.001, 0.001)))  # 7x at 99.9, 14x at 99.95
    (flip,) = [f for f in report["decisions"]["flipped"] if f["id"] == f"d-{index:03d}"]
    (burn,) = [r for r in flip["reasons"] if r["code"] == "burn-rate"]
    assert burn["values"]["burn_rate"] == pytest.approx(0.007 / 0.0005)
    assert flip["oldReasons"] and "burn-rate" not in flip["oldReasons"]


def test_replays_records_nothing(fleet: Fleet, database: Path) -> None:
    with SqliteDecisionLog(database) as log:
        before = log.query(limit=1000)
    build(fleet, database, 99.95)
    with SqliteDecisionLog(database) as log:
        assert log.query(limit=1000) == before


STAGED = textwrap.dedent(
    """\
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {name: search}
    spec:
      service: search
      owners: {team: discovery}
      objective: 99.9
      window: 7d
      sli: {http: {metric: http_requests_total, selector: {job: search}}}
      gate: {maxBurnRate: 10, analysisWindow: 10m}
      stages:
        - {name: canary, objective: 99.9, selector: {track: canary}}
        - {name: production, selector: {track: stable}}
    """
)


def test_a_stage_with_its_own_objective_keeps_it(tmp_path: Path) -> None:
    """The canary declares 99.9 itself: the experiment moves the SLO's objective, which production follows."""
    fleet = load_fleet(tmp_path, STAGED)
    numbers = (0.0001, 0.007, (0.001, 0.001))  # 7x at 99.9 passes; 14x at 99.95 fails the 10x maximum
    db = tmp_path / "decisions.db"
    with SqliteDecisionLog(db) as log:
        log.append(_gate(fleet, 1, SINCE + DAY, numbers, slo="search", stage="canary"))
        log.append(_gate(fleet, 2, SINCE + 2 * DAY, numbers, slo="search", stage="production"))
        report = experiment_report(fleet, log, lambda *_: [], AT, slo="search", objective=99.95, since=RANGE)
    assert hand_outcome(99.9, *numbers) == "pass" and hand_outcome(99.95, *numbers) == "fail"
    assert [(f["id"], f["stage"], f["old"], f["new"]) for f in report["decisions"]["flipped"]] == [
        ("d-002", "production", "pass", "fail")
    ]
    assert report["decisions"]["unchanged"] == 1
    assert report["subjects"] == [
        {"stage": "canary", "production": False, "objective": 99.9, "experimentObjective": 99.9},
        {"stage": "production", "production": True, "objective": 99.9, "experimentObjective": 99.95},
    ]
    assert report["days"]["stage"] == "production" and report["days"]["noData"] == RANGE.days
    assert "stages declaring their own objective keep it: canary" in report["notes"]


# --- days ----------------------------------------------------------------------------------------------------------


def test_days_exhausted_equal_the_hand_sums(experiment: tuple[float, dict[str, Any]]) -> None:
    objective, report = experiment
    days = report["days"]
    expected = hand_days(objective)
    assert [day["day"] for day in days["days"]] == list(expected)
    assert {day["day"]: (day["exhausted"], day["experimentExhausted"]) for day in days["days"]} == expected
    assert days["exhausted"] == sum(old for old, _ in expected.values())
    assert days["experimentExhausted"] == sum(new for _, new in expected.values())
    assert days["changed"] == [day for day, (old, new) in expected.items() if old != new]
    assert days["changed"], "each objective must change some day"


def test_days_judge_by_the_objective_in_force_and_leave_exclusions_out(fleet: Fleet, database: Path) -> None:
    days = {day["day"]: day for day in build(fleet, database, 99.95)["days"]["days"]}
    spike = (SINCE + 5 * DAY).date().isoformat()
    assert days[spike]["objective"] == 99.8  # the window's first row was rolled up with 99.8
    assert days[spike]["exhausted"] is False  # 183.6 bad events: over 99.9's budget, not 99.8's
    excluded = (SINCE + 22 * DAY).date().isoformat()
    assert days[excluded]["badEvents"] == pytest.approx(7 * 24 * BACKGROUND + 40.0)
    assert days[excluded]["experimentExhausted"] is False


# --- calendar days from the shared history ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def history_report(history_fleet: Fleet, history_database: Path) -> dict[str, dict[str, Any]]:
    found = {}
    store = SqliteRollups(history_database)
    try:
        with SqliteDecisionLog(history_database) as log:
            for slo in ZONES:
                found[slo] = experiment_report(
                    history_fleet,
                    log,
                    lambda since, until, names: store.read(since=since, until=until, slos=names),
                    HISTORY_UNTIL,
                    slo=slo,
                    objective=99.9,
                    since=HISTORY_UNTIL - HISTORY_SINCE,
                )
    finally:
        store.close()
    return found


@pytest.mark.parametrize("slo", list(ZONES))
def test_calendar_and_rolling_days_equal_the_traffic_model(
    slo: str,
    history_report: dict[str, dict[str, Any]],
    history_traffic: dict[str, HttpTraffic],
    history_fleet: Fleet,
    history_database: Path,
) -> None:
    """Each day's budget used from the traffic itself: the events from the rows' first hour (or the period's
    start, whichever is later) to the day's end (or the rows' last whole hour), at 99.5 and 99.9. `search`'s
    excluded half hour is taken out by the rows, so it is compared on days before it only."""
    report = history_report[slo]
    days = report["days"]["days"]
    assert days and report["days"]["timeZone"] == (ZONES[slo] or "UTC")
    assert report["alerts"]["replayed"] is False and "--prometheus" in report["alerts"]["why"]
    window = history_fleet[slo].spec.window
    store = SqliteRollups(history_database)
    try:
        rows = store.read(since=HISTORY_SINCE - DAY, until=HISTORY_UNTIL, slos=[slo])
    finally:
        store.close()
    for day in days:
        end = datetime.fromisoformat(day["end"])
        start = max(rows[0].start, datetime.fromisoformat(day["periodStart"]))
        counted_end = min(end, rows[-1].end)  # the rows' last whole hour (ledger's hours end at :30)
        if window.rolling is not None:
            assert datetime.fromisoformat(day["periodStart"]) == end - window.rolling
        else:  # the calendar month holding the day, cut at the zone's midnight
            local = datetime.fromisoformat(day["periodStart"]).astimezone(ZoneInfo(ZONES[slo] or "UTC"))
            assert (local.day, local.hour, local.minute) == (1, 0, 0)
        if slo == "search" and end > datetime(2025, 10, 30, 10, 20, tzinfo=UTC):
            continue
        bad, total = expected_counts(history_traffic[slo], counted_end, counted_end - start)
        assert day["events"] == pytest.approx(total)
        assert day["badEvents"] == pytest.approx(bad)
        assert day["budgetUsed"] == pytest.approx(bad / (total * 0.005))
        assert day["experimentBudgetUsed"] == pytest.approx(bad / (total * 0.001))
        assert day["exhausted"] == (bad / (total * 0.005) >= 1)
        assert day["experimentExhausted"] == (bad / (total * 0.001) >= 1)


# --- alerts on a real Prometheus -----------------------------------------------------------------------------------

ALERT_START = datetime(2026, 2, 1, tzinfo=UTC)
ALERT_END = ALERT_START + 2 * DAY
ALERT_AT = ALERT_END - HOUR
ALERT_RANGE = timedelta(hours=36)
PAY = textwrap.dedent(
    """\
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {name: pay}
    spec:
      service: pay
      owners: {team: money}
      objective: 99.5
      window: 7d
      sli: {http: {metric: http_requests_total, selector: {job: pay}}}
      alerting:
        windows:
          - {tier: page, long: 1h, short: 5m, factor: 14.4}
          - {tier: ticket, long: 6h, short: 30m, factor: 6}
    """
)
PAY_PAIRS = (("page", HOUR, 5 * MINUTE, 14.4), ("ticket", 6 * HOUR, 30 * MINUTE, 6.0))


def _pay_segments() -> list[Segment]:
    """A sharp incident (pages under either objective) and a slow one (a ticket under 99.9 only)."""
    return [
        Segment(timedelta(hours=18, minutes=7), 600.0, 0.0005),
        Segment(timedelta(minutes=30), 600.0, 0.2),
        Segment(timedelta(hours=6, minutes=23), 600.0, 0.0005),
        Segment(timedelta(hours=4), 600.0, 0.012),
        Segment(ALERT_END - ALERT_START - timedelta(hours=29), 600.0, 0.0005),
    ]


@pytest.fixture(scope="module")
def pay_traffic() -> HttpTraffic:
    return http_traffic(_pay_segments(), start=ALERT_START, labels={"job": "pay"})


@pytest.fixture(scope="module")
def pay_prometheus(tmp_path_factory: pytest.TempPathFactory, pay_traffic: HttpTraffic) -> Iterator[str]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), [pay_traffic]) as sandbox:
        yield sandbox.url


@pytest.fixture(scope="module")
def pay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pay")
    load_fleet(folder, PAY)
    return folder


@pytest.fixture(scope="module")
def pay_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("paydb") / "decisions.db"
    SqliteRollups(db).close()
    with SqliteDecisionLog(db):
        pass
    return db


def _hand_hours(traffic: HttpTraffic, objective: float, since: datetime, until: datetime) -> dict[str, float]:
    """Hours each tier fired: both windows' error ratios above factor × budget, minute by minute (no `for`)."""
    budget = (100 - objective) / 100
    hours = {}
    for tier, long, short, factor in PAY_PAIRS:
        threshold = factor * budget
        spans, started, at = [], None, since - MINUTE
        while at < until:
            held = True
            for window in (long, short):
                bad, total = expected_counts(traffic, at, window)
                ratio = bad / total
                assert abs(ratio - threshold) > 1e-9, (tier, at, ratio)
                held = held and ratio > threshold
            if held and started is None:
                started = at
            elif not held and started is not None:
                spans.append((started, at))
                started = None
            at += MINUTE
        if started is not None:
            spans.append((started, until))
        inside = [(max(s, since), min(e, until)) for s, e in merge_spans(spans) if e > since]
        hours[tier] = sum((e - s).total_seconds() for s, e in inside) / 3600
    return hours


def test_alert_hours_equal_the_minute_by_minute_replay(
    pay_dir: Path, pay_db: Path, pay_prometheus: str, pay_traffic: HttpTraffic
) -> None:
    fleet = load_fleet(pay_dir, PAY)
    store = SqliteRollups(pay_db)
    try:
        with SqliteDecisionLog(pay_db) as log:
            report = experiment_report(
                fleet,
                log,
                lambda since, until, names: store.read(since=since, until=until, slos=names),
                ALERT_AT,
                slo="pay",
                objective=99.9,
                since=ALERT_RANGE,
                backend=PrometheusBackend(pay_prometheus),
            )
    finally:
        store.close()
    alerts = report["alerts"]
    assert alerts["replayed"] is True and alerts["notReplayed"] == {}
    old = _hand_hours(pay_traffic, 99.5, ALERT_AT - ALERT_RANGE, ALERT_AT)
    new = _hand_hours(pay_traffic, 99.9, ALERT_AT - ALERT_RANGE, ALERT_AT)
    tiers = {tier["tier"]: tier for tier in alerts["tiers"]}
    assert set(tiers) == {"page", "ticket"}
    for tier in ("page", "ticket"):
        assert tiers[tier]["hours"] == pytest.approx(old[tier])
        assert tiers[tier]["experimentHours"] == pytest.approx(new[tier])
    assert old["ticket"] == 0 < new["ticket"]  # the slow burn tickets only under 99.9
    assert 0 < old["page"] < new["page"]
    (pair,) = tiers["page"]["alerts"]
    assert pair["threshold"] == pytest.approx(14.4 * 0.005)
    assert pair["experimentThreshold"] == pytest.approx(14.4 * 0.001)


# --- options and the command ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"slo": "nobody"}, "slo"),
        ({"objective": 100.0}, "objective"),
        ({"objective": 0.0}, "objective"),
        ({"since": MAX_SPAN + DAY}, "since"),
        ({"since": timedelta(0)}, "since"),
    ],
)
def test_the_builder_refuses_options_by_name(
    fleet: Fleet, database: Path, options: dict[str, Any], option: str
) -> None:
    arguments: dict[str, Any] = {"slo": "checkout", "objective": 99.95, "since": RANGE, **options}
    with pytest.raises(ReportOptionError) as raised:
        experiment_report(fleet, None, lambda *_: [], AT, **arguments)  # type: ignore[arg-type]
    assert raised.value.option == option


def run_experiment(*args: str | Path, out: io.StringIO | None = None) -> Result:
    """`experiment` registered as `sloplane` will register it, in process."""
    consoles = _consoles if out is None else dataclasses.replace(_consoles, out=Console(file=out, width=250))
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The test's `sloplane`."""

    experiment_cli.register(app, consoles)
    return CliRunner().invoke(app, ["experiment", *map(str, args)])


def test_command_json_is_the_builders_dict(fleet_dir: Path, fleet: Fleet, database: Path) -> None:
    result = run_experiment(
        fleet_dir, "--slo", "checkout", "--objective", "99.95", "--since", "30d", "--db", database,
        "--at", AT.isoformat(), "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(json.dumps(build(fleet, database, 99.95)))


def test_command_table_reads(fleet_dir: Path, fleet: Fleet, database: Path) -> None:
    out = io.StringIO()
    result = run_experiment(
        fleet_dir, "--slo", "checkout", "--objective", "99.95", "--since", "30d", "--db", database,
        "--at", AT.isoformat(), out=out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.getvalue()
    report = build(fleet, database, 99.95)
    decisions, days = report["decisions"], report["days"]
    assert f"pass→fail {decisions['passToFail']}, fail→pass {decisions['failToPass']}" in text
    assert f"{days['exhausted']} of {len(days['days'])}, would be {days['experimentExhausted']}" in text
    assert all(flip["id"] in text for flip in decisions["flipped"])
    assert "alerts not replayed: no --prometheus given" in text


def test_command_replays_alerts_with_prometheus(pay_dir: Path, pay_db: Path, pay_prometheus: str) -> None:
    out = io.StringIO()
    result = run_experiment(
        pay_dir, "--slo", "pay", "--objective", "99.9", "--since", "36h", "--db", pay_db,
        "--prometheus", pay_prometheus, "--at", ALERT_AT.isoformat(), out=out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Hours each alert tier fired" in out.getvalue()
    assert "pay" in out.getvalue() and "ticket" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("--slo", "nobody"), "--slo"),
        (("--objective", "100"), "--objective"),
        (("--objective", "-1"), "--objective"),
        (("--since", "ninety days"), "--since"),
        (("--since", "401d"), "--since"),
        (("--format", "csv"), "--format"),
        (("--at", "yesterday"), "--at"),
    ],
)
def test_command_refuses_bad_input_naming_the_option(
    fleet_dir: Path, database: Path, args: tuple[str, ...], option: str
) -> None:
    defaults = {"--slo": "checkout", "--objective": "99.95", "--since": "30d"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    flat = [part for name, value in {**defaults, **given}.items() for part in (name, value)]
    result = run_experiment(fleet_dir, *flat, "--db", database)
    assert result.exit_code == 2, result.output
    assert option in result.stderr
    assert "Traceback" not in result.output


def test_command_exits_1_on_a_missing_store_or_unreachable_prometheus(
    fleet_dir: Path, database: Path, tmp_path: Path
) -> None:
    base = ("--slo", "checkout", "--objective", "99.95", "--at", AT.isoformat())
    result = run_experiment(fleet_dir, *base, "--db", tmp_path / "none.db")
    assert result.exit_code == 1
    assert "no decision log" in result.stderr
    result = run_experiment(fleet_dir, *base, "--db", database, "--prometheus", "http://127.0.0.1:9")
    assert result.exit_code == 1, result.output
    assert "Prometheus" in result.stderr
    assert "Traceback" not in result.output
