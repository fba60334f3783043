"""`sloplane govern delivery` on a constructed decision log and constructed rollup rows, against a hand count.

Five services over the 90 days before AT, each written to show one thing (every figure expected below is counted
from the lists in this file, not from the builder):
- checkout (unstaged): 20 deployments, 3 failed on a breach — 15%, not above the threshold: no advice. Also a
  retried revision (counted once), a revision first gated before the window (not counted), replays (left out,
  a replayed fail of a counted revision does not fail it), a fail on a freeze (not a change failure), two
  deployments on one day.
- search (canary and production stages): 25 deployments, 4 failed — 16%: `smaller-batches`. One failure is a
  break-glass that overrode the breach, one is never restored; a canary fail and a canary-only release are not
  deployments' failures.
- cart: 10 deployments (exactly the minimum), none failed, one budget-heavy (a near miss of two): budget to
  spare, `deploy-more-often`.
- pay: 9 deployments (one short) with its budget spent: `insufficient-data` and nothing else.
- ledger: 12 deployments, two budget-heavy (a third just under 20%) and its budget spent: `smaller-batches` and
  `budget-exhausted`.
Rows: 1,000 events an hour for every SLO's production subject, bad events only in the hours of `SPIKES`.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from typer.testing import CliRunner

from sloplane.cli.govern_delivery import DEFAULT_SINCE_TEXT
from sloplane.cli.main import app
from sloplane.core.durations import parse_duration
from sloplane.evaluator.governance.delivery import DEFAULT_SINCE, delivery_report
from sloplane.evaluator.history.report_kinds import ReportOptionError
from sloplane.evaluator.model import BreakGlass, Decision, Outcome, Reason, Rollup
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.semantics.subjects import Fleet
from tests.conftest import run_cli
from tests.evaluator_data import load_fleet, make_decision

AT = datetime(2026, 3, 31, tzinfo=UTC)
SINCE = AT - timedelta(days=90)
WEEKS = 90 / 7
EVENTS = 1000.0
ALLOWED = 0.001 * EVENTS * 168
"""Allowed bad events of a 7-day period of 99.9% with 1,000 events every hour."""
HOUR = timedelta(hours=1)


def day(number: int, hour: int = 10, minute: int = 30) -> datetime:
    return SINCE + timedelta(days=number, hours=hour, minutes=minute)


FLEET = textwrap.dedent(
    """\
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {name: checkout}
    spec:
      service: checkout
      owners: {team: payments}
      objective: 99.9
      window: 7d
      sli: {http: {metric: http_requests_total, selector: {job: checkout}}}
    ---
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {name: search}
    spec:
      service: search
      owners: {team: discovery}
      objective: 99.9
      window: 7d
      sli: {http: {metric: http_requests_total, selector: {job: search}}}
      stages:
        - {name: canary, selector: {stage: canary}}
        - {name: production, selector: {stage: stable}}
    """
) + "".join(
    textwrap.dedent(
        f"""\
        ---
        apiVersion: sloplane.dev/v1alpha1
        kind: ServiceLevelObjective
        metadata: {{name: {name}}}
        spec:
          service: {name}
          owners: {{team: money}}
          objective: 99.9
          window: 7d
          sli: {{http: {{metric: http_requests_total, selector: {{job: {name}}}}}}}
        """
    )
    for name in ("cart", "pay", "ledger")
)
PRODUCTION = {"checkout": None, "search": "production", "cart": None, "pay": None, "ledger": None}


@dataclass(frozen=True)
class Gate:
    """One decision to record: `kind` pass, breach (a fail on a burn-rate breach), frozen (a fail on a freeze),
    glass (a break-glass that overrode a breach)."""

    service: str
    revision: str
    at: datetime
    kind: str = "pass"
    stage: str | None = None
    replay: bool = False
    pipeline: str = "build-7"

    def decision(self, number: int) -> Decision:
        outcome = Outcome.FAIL if self.kind in ("breach", "frozen") else Outcome.PASS
        base = make_decision(
            number, slo=self.service, stage=self.stage, outcome=outcome, revision=self.revision, decided_at=self.at
        )
        request = replace(base.request, pipeline=self.pipeline)
        reasons = base.reasons
        if self.kind == "breach":
            reasons = (Reason("burn-rate", "burn rate 20x over 1h", {"burnRate": 20.0}),)
        elif self.kind == "frozen":
            reasons = (Reason("frozen", "a freeze is in force", {}),)
        elif self.kind == "glass":
            reasons = (
                Reason("burn-rate", "burn rate 20x over 1h", {"burnRate": 20.0}),
                Reason("break-glass", "break-glass by dana overrides 'fail': a fix", {"overridden": "fail"}),
            )
            request = replace(request, break_glass=BreakGlass("a fix", "dana"))
        if self.replay:
            request = replace(request, at=self.at - timedelta(days=1))
        return replace(base, service=self.service, reasons=reasons, request=request)


def _production(service: str, revision: str, at: datetime, kind: str = "pass", **more: Any) -> Gate:
    return Gate(service, revision, at, kind, stage=PRODUCTION[service], **more)


# --- the history --------------------------------------------------------------------------------------------------

CHECKOUT_DAYS = {i: 4 * i - 2 for i in range(1, 21)}
CHECKOUT_DAYS[7] = CHECKOUT_DAYS[6]  # c07 on c06's day, later
CHECKOUT_FAILED = {3: 30, 8: 90, 13: 240}
"""Failed deployment → minutes until a retry of the same revision passed (restored)."""
SEARCH_FAILED = {4: 60, 9: 120, 14: 45, 25: None}
SEARCH_GLASS = 14
CART_DAYS = {i: 8 * i for i in range(1, 10)} | {10: 85}
PAY_DAYS = {i: 9 * i for i in range(1, 10)}
LEDGER_DAYS = {i: 7 * i - 3 for i in range(1, 13)}
SPIKES: dict[tuple[str, datetime], float] = {
    ("cart", day(85, 10, 0)): 40.0,  # k10's hour: 23.8% of a budget, inside the current period
    ("pay", day(86, 3, 0)): 200.0,  # no deployment: the budget is spent
    ("ledger", day(11, 10, 0)): 40.0,  # l02
    ("ledger", day(32, 10, 0)): 40.0,  # l05
    ("ledger", day(53, 10, 0)): 33.0,  # l08: 19.6%, not heavy
    ("ledger", day(87, 3, 0)): 200.0,
}


def _gates() -> list[Gate]:
    gates: list[Gate] = []
    for i, number in CHECKOUT_DAYS.items():
        when = day(number, 15) if i == 7 else day(number)
        revision = f"c{i:02d}"
        if i in CHECKOUT_FAILED:
            gates.append(_production("checkout", revision, when, "breach"))
            gates.append(
                _production("checkout", revision, when + timedelta(minutes=CHECKOUT_FAILED[i]), pipeline="build-8")
            )
        else:
            gates.append(_production("checkout", revision, when))
    gates += [
        _production("checkout", "c05", day(CHECKOUT_DAYS[5], 10, 35), pipeline="build-8"),  # a retry: once
        _production("checkout", "old", SINCE - timedelta(days=2)),  # first gated before the window
        _production("checkout", "old", day(1)),
        _production("checkout", "replayed", day(30, 12), "breach", replay=True),
        _production("checkout", "c10", day(CHECKOUT_DAYS[10], 12), "breach", replay=True),
        _production("checkout", "c11", day(CHECKOUT_DAYS[11], 10, 35), "frozen"),
    ]
    for i in range(1, 26):
        when, revision = day(3 * i + 1), f"s{i:02d}"
        canary = "breach" if i == 7 else "pass"  # a canary stopping nothing in production is no change failure
        gates.append(Gate("search", revision, when - timedelta(minutes=10), canary, stage="canary"))
        if i in SEARCH_FAILED:
            gates.append(_production("search", revision, when, "glass" if i == SEARCH_GLASS else "breach"))
            minutes = SEARCH_FAILED[i]
            if minutes is not None:
                gates.append(_production("search", revision, when + timedelta(minutes=minutes), pipeline="build-8"))
        else:
            gates.append(_production("search", revision, when))
    gates.append(Gate("search", "canary-only", day(50, 16), "breach", stage="canary"))
    for service, days in (("cart", CART_DAYS), ("pay", PAY_DAYS), ("ledger", LEDGER_DAYS)):
        gates += [_production(service, f"{service[0]}{i:02d}", day(number)) for i, number in days.items()]
    return gates


GATES = _gates()


def _rows() -> list[Rollup]:
    rows = []
    for service, stage in PRODUCTION.items():
        start = SINCE - timedelta(days=10)
        while start < AT:
            bad = SPIKES.get((service, start), 0.0)
            rows.append(
                Rollup(service, stage, start, start + HOUR, bad, EVENTS, 0.0, 0.0, 0.0, 99.9, "v1", "UTC", "prometheus")
            )
            start += HOUR
    return rows


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet")
    load_fleet(folder, FLEET)
    return folder


@pytest.fixture(scope="module")
def fleet(fleet_dir: Path) -> Fleet:
    return load_fleet(fleet_dir, FLEET)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("db") / "decisions.db"
    store = SqliteRollups(db)
    try:
        store.write(_rows(), AT)
    finally:
        store.close()
    with SqliteDecisionLog(db) as log:
        for number, gate in enumerate(GATES, start=1):
            log.append(gate.decision(number))
    return db


def _build(fleet: Fleet, database: Path, **options: Any) -> dict[str, Any]:
    store = SqliteRollups(database)
    try:
        with SqliteDecisionLog(database) as log:
            return delivery_report(
                fleet, log, lambda since, until, names: store.read(since=since, until=until, slos=names), AT, **options
            )
    finally:
        store.close()


@pytest.fixture(scope="module")
def report(fleet: Fleet, database: Path) -> dict[str, Any]:
    return _build(fleet, database)


def _service(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [entry for entry in report["services"] if entry["service"] == name]
    return found


def _p90(values: list[float]) -> float:
    return sorted(values)[math.ceil(0.9 * len(values)) - 1]


# --- the figures ------------------------------------------------------------------------------------------------


def test_checkout_counts_retries_once_and_leaves_out_replays_and_earlier_releases(report: dict[str, Any]) -> None:
    checkout = _service(report, "checkout")
    restores = [minutes * 60.0 for minutes in CHECKOUT_FAILED.values()]
    assert checkout["deployments"] == len(CHECKOUT_DAYS)
    assert [entry["release"] for entry in checkout["budgetShares"]] == [f"c{i:02d}" for i in sorted(CHECKOUT_DAYS)]
    assert checkout["failed"] == len(CHECKOUT_FAILED)
    assert checkout["changeFailureRate"] == pytest.approx(3 / 20)
    assert checkout["timeToRestore"] == {
        "median": median(restores),
        "p90": _p90(restores),
        "samples": 3,
        "unrestored": 0,
    }
    assert [f["release"] for f in checkout["failures"]] == [f"c{i:02d}" for i in sorted(CHECKOUT_FAILED)]
    assert checkout["deployDays"] == len(set(CHECKOUT_DAYS.values())) == 19
    assert checkout["deployDaysPerWeek"] == pytest.approx(19 / WEEKS)
    assert checkout["advice"] == []  # 15% is not above 15%
    assert any("replayed" in note and "checkout" in note for note in report["notes"])


def test_search_counts_production_only_and_a_break_glass_as_failed(report: dict[str, Any]) -> None:
    search = _service(report, "search")
    restores = [minutes * 60.0 for minutes in SEARCH_FAILED.values() if minutes is not None]
    assert search["deployments"] == 25
    assert search["failed"] == len(SEARCH_FAILED) == 4
    assert "s07" not in [f["release"] for f in search["failures"]]  # its canary failed, production did not
    assert search["changeFailureRate"] == pytest.approx(4 / 25)
    assert search["timeToRestore"] == {
        "median": median(restores),
        "p90": _p90(restores),
        "samples": 3,
        "unrestored": 1,
    }
    (item,) = search["advice"]
    assert item["rule"] == "smaller-batches"
    assert item["inputs"]["changeFailureRate"] == pytest.approx(0.16)
    assert item["inputs"]["budgetHeavyDeployments"] == 0
    assert "deploy less" not in item["message"].replace("deploying less often", "")


def test_budget_shares_equal_the_rows_hand_count(report: dict[str, Any]) -> None:
    for name, days in (("cart", CART_DAYS), ("pay", PAY_DAYS), ("ledger", LEDGER_DAYS)):
        entry = _service(report, name)
        expected = [SPIKES.get((name, day(number, 10, 0)), 0.0) / ALLOWED for number in days.values()]
        assert [s["budgetShare"] for s in entry["budgetShares"]] == pytest.approx(expected)
        assert entry["budgetHeavyDeployments"] == sum(1 for share in expected if share >= 0.2)
    assert _service(report, "ledger")["budgetHeavyDeployments"] == 2
    assert _service(report, "cart")["budgetHeavyDeployments"] == 1


def test_advice_rules_and_their_near_misses(report: dict[str, Any]) -> None:
    cart, pay, ledger = (_service(report, name) for name in ("cart", "pay", "ledger"))
    (item,) = cart["advice"]  # 10 deployments, one heavy: stable with budget to spare
    assert item["rule"] == "deploy-more-often"
    assert item["inputs"]["budgetUsed"] == pytest.approx(40.0 / ALLOWED)
    assert item["inputs"]["changeFailureRate"] == 0.0
    (item,) = pay["advice"]  # 9 deployments: nothing but insufficient data, though the budget is spent
    assert item["rule"] == "insufficient-data"
    assert item["inputs"] == {"deployments": 9, "minimum": 10}
    assert pay["budget"][0]["exhausted"] is True
    assert [entry["rule"] for entry in ledger["advice"]] == ["smaller-batches", "budget-exhausted"]
    exhausted = ledger["advice"][1]
    assert exhausted["inputs"]["enforced"] is False
    assert "changeType" in exhausted["message"]
    (spent,) = exhausted["inputs"]["slos"]
    assert spent["budgetUsed"] == pytest.approx(200.0 / ALLOWED)


def test_fleet_totals(report: dict[str, Any]) -> None:
    deployments = [
        *(day(n).date() for n in CHECKOUT_DAYS.values()),
        *(day(3 * i + 1).date() for i in range(1, 26)),
        *(day(n).date() for d in (CART_DAYS, PAY_DAYS, LEDGER_DAYS) for n in d.values()),
    ]
    fleet = report["fleet"]
    assert fleet["deployments"] == len(deployments) == 76
    assert fleet["failed"] == 7
    assert fleet["changeFailureRate"] == pytest.approx(7 / 76)
    restores = [m * 60.0 for m in [*CHECKOUT_FAILED.values(), *SEARCH_FAILED.values()] if m is not None]
    assert fleet["timeToRestore"] == {
        "median": median(restores),
        "p90": _p90(restores),
        "samples": 6,
        "unrestored": 1,
    }
    assert fleet["deployDaysPerWeek"] == pytest.approx(len(set(deployments)) / WEEKS)
    assert fleet["advice"] == {
        "budget-exhausted": 1,
        "deploy-more-often": 1,
        "insufficient-data": 1,
        "smaller-batches": 2,
    }


def test_one_service_and_a_shorter_window(fleet: Fleet, database: Path) -> None:
    found = _build(fleet, database, service="cart", since=timedelta(days=30))
    assert [entry["service"] for entry in found["services"]] == ["cart"]
    inside = [n for n in CART_DAYS.values() if day(n) >= AT - timedelta(days=30)]
    assert found["services"][0]["deployments"] == len(inside)
    assert found["services"][0]["advice"][0]["rule"] == "insufficient-data"
    with pytest.raises(ReportOptionError) as refused:
        _build(fleet, database, service="nowhere")
    assert refused.value.option == "service"


# --- the command ------------------------------------------------------------------------------------------------


def _invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(app, ["govern", "delivery", *map(str, args)])  # the real `sloplane`, in process


def test_sloplane_govern_lists_its_commands() -> None:
    shown = run_cli("govern", "--help")
    assert shown.code == 0 and all(command in shown.stdout for command in ("stale", "delivery", "risk"))


def test_command_json_is_the_builders_dict(fleet_dir: Path, database: Path, report: dict[str, Any]) -> None:
    result = _invoke(fleet_dir, "--db", database, "--at", AT.isoformat(), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(json.dumps(report))


def test_command_table_names_rules_and_inputs(fleet_dir: Path, database: Path) -> None:
    result = _invoke(fleet_dir, "--db", database, "--at", AT.isoformat())
    assert result.exit_code == 0, result.output
    for text in ("checkout", "search", "fleet", "[smaller-batches]", "[budget-exhausted]", "[deploy-more-often]"):
        assert text in result.stdout
    assert "inputs: deployments=9, minimum=10" in result.stdout


def test_command_refuses_a_bad_since_and_a_missing_store(fleet_dir: Path, tmp_path: Path) -> None:
    result = _invoke(fleet_dir, "--db", tmp_path / "none.db", "--since", "ninety days")
    assert result.exit_code == 2
    assert "--since" in result.stderr
    result = _invoke(fleet_dir, "--db", tmp_path / "none.db", "--format", "csv")
    assert result.exit_code == 2
    assert "--format" in result.stderr
    result = _invoke(fleet_dir, "--db", tmp_path / "none.db")
    assert result.exit_code == 1
    assert "no decision log" in result.stderr
    assert "Traceback" not in result.output


def test_the_commands_default_span_is_the_builders() -> None:
    """The command spells the default as text so that it need not import the builder when `sloplane` starts."""
    assert parse_duration(DEFAULT_SINCE_TEXT) == DEFAULT_SINCE
