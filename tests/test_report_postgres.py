"""Every report kind from a PostgreSQL store gives the bytes it gives from SQLite: the same rollups and decisions
written to both (`serve` with replicas keeps them in PostgreSQL; a report must not depend on which)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest

from sloplane.evaluator.history.report_kinds import KINDS
from sloplane.evaluator.history.rollup import roll_up
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import BreakGlass, Decision, Outcome, Reason, Rollup
from sloplane.evaluator.storage.open import open_decision_log, open_rollups
from sloplane.semantics.subjects import Fleet
from tests.conftest import run_cli
from tests.evaluator_data import make_decision
from tests.rollup_history import MIDDLE, SINCE, UNTIL
from tests.rollup_history import declarations as declarations_text

pytest_plugins = ("tests.postgres", "tests.rollup_history")

AT = UNTIL.isoformat()
QUERIES = {
    "sla": ["--month", "2025-10"],
    "budget": ["--week", "2025-W44"],
    "quarterly": ["--quarter", "2025-Q4"],
    "retro": ["--revision", "v7"],
    "platform": ["--service", "checkout"],
}
"""Each kind that reads the store (oncall reads Prometheus alone)."""


def _decisions() -> list[Decision]:
    """A release of checkout gated three times (one break-glass), and search held back by checkout twice."""
    made = []
    for number, outcome in enumerate((Outcome.PASS, Outcome.FAIL, Outcome.PASS), start=1):
        decision = make_decision(
            number,
            slo="checkout",
            stage=None,
            outcome=outcome,
            revision="v7",
            decided_at=MIDDLE + timedelta(hours=number),
        )
        if number == 3:
            glass = BreakGlass(reason="roll forward with the fix", identity="release-bot")
            decision = dataclasses.replace(decision, request=dataclasses.replace(decision.request, break_glass=glass))
        made.append(decision)
    for number in (4, 5):
        held = make_decision(
            number, slo="search", stage=None, revision="s2", decided_at=MIDDLE + timedelta(hours=number)
        )
        reason = Reason("dependency", "checkout is burning its budget", {"dependency": "checkout", "burn_rate": 20.0})
        made.append(dataclasses.replace(held, outcome=Outcome.INCONCLUSIVE, reasons=(reason,)))
    return made


def _fill(target: str | Path, rows: list[Rollup]) -> None:
    """The rows and the decisions in the store at `target`. No freeze: its id is drawn at random, so the two
    stores' reports would differ in it (the budget report's freezes: tests/test_report_budget.py)."""
    store = open_rollups(target)
    try:
        store.write(rows, UNTIL)
    finally:
        store.close()
    log = open_decision_log(target)
    try:
        for decision in _decisions():
            log.append(decision)
    finally:
        log.close()


@pytest.fixture(scope="module")
def rows(history_fleet: Fleet, history_prometheus: str) -> list[Rollup]:
    rolled = roll_up(history_fleet, PrometheusBackend(history_prometheus), SINCE, UNTIL)
    assert rolled.rows and not rolled.failed
    return rolled.rows


@pytest.fixture(scope="module")
def declarations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slos") / "slos.yaml"
    path.write_text(declarations_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sqlite(tmp_path_factory: pytest.TempPathFactory, rows: list[Rollup]) -> Path:
    db = tmp_path_factory.mktemp("sqlite") / "decisions.db"
    _fill(db, rows)
    return db


@pytest.fixture
def postgres(postgres_url: str, rows: list[Rollup]) -> str:
    _fill(postgres_url, rows)
    return postgres_url


def test_every_kind_that_reads_the_store_is_compared() -> None:
    assert set(QUERIES) == set(KINDS) - {"oncall"}


def test_each_report_is_the_same_from_either_store(declarations: Path, sqlite: Path, postgres: str) -> None:
    for kind, options in QUERIES.items():
        for output_format in ("json", "csv", "html"):
            common = ["report", kind, declarations, *options, "--format", output_format, "--at", AT]
            from_sqlite = run_cli(*common, "--db", sqlite)
            from_postgres = run_cli(*common, "--db", postgres)
            assert from_sqlite.code == 0, (kind, from_sqlite.stderr)
            assert from_postgres.code == 0, (kind, from_postgres.stderr)
            assert from_postgres.stdout == from_sqlite.stdout, (kind, output_format)
    # and the stores were not empty: the reports saw the decisions written to both
    quarterly = run_cli(
        "report", "quarterly", declarations, *QUERIES["quarterly"], "--format", "json", "--at", AT, "--db", postgres
    )
    assert sum(team["decisions"] for team in json.loads(quarterly.stdout)["breakGlass"]["teams"]) == 1
    platform = run_cli(
        "report", "platform", declarations, *QUERIES["platform"], "--format", "csv", "--at", AT, "--db", postgres
    )
    assert platform.stdout.count("\n") == 2  # the header and search, held by checkout
