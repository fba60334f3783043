"""Hourly rollups against a real Prometheus with known history (`tests/rollup_history.py`: a DST change, a
month boundary, a half-hour zone, an exclusion): every row equals the hand computation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from sloplane.evaluator.history.job import FIRST_BACKFILL, SETTLE
from sloplane.evaluator.history.periodic import PeriodicRollup
from sloplane.evaluator.history.rollup import RollupRun, roll_up, targets
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Rollup
from sloplane.evaluator.service import policy_version
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.interop import load_paths
from sloplane.sandbox import HttpTraffic, expected_counts, free_port
from sloplane.semantics.subjects import Fleet
from tests.conftest import EXAMPLES, CliResult, run_cli
from tests.postgres import wait_until
from tests.rollup_history import END, EXCLUDED, MIDDLE, SINCE, START, UNTIL, ZONES
from tests.rollup_history import declarations as declarations_text
from tests.served_evaluator import running

pytest_plugins = ("tests.rollup_history",)


@pytest.fixture(scope="module")
def run(history_fleet: Fleet, history_prometheus: str) -> RollupRun:
    return roll_up(history_fleet, PrometheusBackend(history_prometheus), SINCE, UNTIL)


def _rows(run: RollupRun, slo: str) -> list[Rollup]:
    return [row for row in run.rows if row.slo == slo]


def _close(actual: float | None, expected: float) -> bool:
    return actual is not None and abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))


def test_every_row_is_the_hand_computed_hour(run: RollupRun, history_traffic: dict[str, HttpTraffic]) -> None:
    assert {row.slo for row in run.rows} == set(ZONES)
    for row in run.rows:
        bad, total = expected_counts(history_traffic[row.slo], row.end, row.end - row.start)
        assert _close(row.bad_events, bad), (row, bad)
        assert _close(row.total_events, total), (row, total)
        assert row.objective == 99.5 and row.stage is None and row.source == "prometheus"


def test_rows_are_the_zones_whole_hours(run: RollupRun) -> None:
    for slo, zone in ZONES.items():
        rows = _rows(run, slo)
        assert all(row.end - row.start == timedelta(hours=1) for row in rows)
        assert all(later.start == earlier.end for earlier, later in pairwise(rows))
        assert rows[0].start >= SINCE and rows[-1].end <= UNTIL
        wall = ZoneInfo(zone or "UTC")
        assert all(row.start.astimezone(wall).minute == 0 for row in rows)
        assert {row.time_zone for row in rows} == {zone or "UTC"}
    assert {row.start.minute for row in _rows(run, "ledger")} == {30}  # Kolkata's hours start at half past
    assert _rows(run, "ledger")[0].start == datetime(2025, 10, 25, 12, 30, tzinfo=UTC)


def test_a_berlin_day_with_the_clock_change_has_25_rows_and_a_month_is_cut_at_local_midnight(
    run: RollupRun, history_traffic: dict[str, HttpTraffic]
) -> None:
    berlin = ZoneInfo("Europe/Berlin")

    def day(row: Rollup) -> str:
        return row.start.astimezone(berlin).date().isoformat()

    rows = _rows(run, "checkout")
    assert sum(1 for row in rows if day(row) == "2025-10-26") == 25
    assert sum(1 for row in rows if day(row) == "2025-10-31") == 24
    october = [row for row in rows if row.start.astimezone(berlin).month == 10]
    assert october[-1].end == datetime(2025, 10, 31, 23, 0, tzinfo=UTC)  # 1 November, 00:00 in Berlin (CET)
    last_day = [row for row in rows if day(row) == "2025-10-31"]
    bad, total = expected_counts(history_traffic["checkout"], last_day[-1].end, timedelta(hours=24))
    assert _close(sum(row.bad_events or 0.0 for row in last_day), bad)
    assert _close(sum(row.total_events or 0.0 for row in last_day), total)


def test_an_excluded_half_hour_is_counted_apart(run: RollupRun, history_traffic: dict[str, HttpTraffic]) -> None:
    rows = _rows(run, "search")
    (excluded,) = [row for row in rows if row.excluded_minutes]
    assert excluded.start == datetime(2025, 10, 30, 10, tzinfo=UTC)
    assert excluded.end == datetime(2025, 10, 30, 11, tzinfo=UTC)
    assert excluded.excluded_minutes == 30
    bad, total = expected_counts(history_traffic["search"], EXCLUDED[1], EXCLUDED[1] - EXCLUDED[0])
    assert _close(excluded.excluded_bad_events, bad) and _close(excluded.excluded_total_events, total)
    whole_bad, whole_total = expected_counts(history_traffic["search"], excluded.end, timedelta(hours=1))
    assert _close(excluded.counted_bad_events, whole_bad - bad)
    assert _close(excluded.counted_total_events, whole_total - total)
    assert all(row.excluded_total_events == 0 for row in rows if row is not excluded)


def test_an_sli_without_event_counts_is_named_with_why(run: RollupRun, history_fleet: Fleet) -> None:
    assert "no event counts" in run.skipped["ratio-only"]
    assert not _rows(run, "ratio-only")
    assert {row.policy_version for row in _rows(run, "checkout")} == {policy_version(history_fleet["checkout"])}


def test_fleet_reads_are_a_few_range_queries(run: RollupRun) -> None:
    """One range query per grouped read (bad, total) and alignment of hours (:00 and :30), plus the
    exclusion's two instant reads."""
    assert run.queries == 2 * 2 + 2


def test_resuming_gives_the_rows_of_one_run(history_fleet: Fleet, history_prometheus: str, run: RollupRun) -> None:
    backend = PrometheusBackend(history_prometheus)
    first = roll_up(history_fleet, backend, SINCE, MIDDLE)
    resume = {(row.slo, row.stage): row.end for row in first.rows}
    second = roll_up(history_fleet, backend, SINCE, UNTIL, resume)
    assert sorted(first.rows + second.rows, key=_order) == sorted(run.rows, key=_order)


def _order(row: Rollup) -> tuple[str, datetime]:
    return row.slo, row.start


def test_a_range_prometheus_has_no_data_for_gives_rows_without_counts(
    history_fleet: Fleet, history_prometheus: str
) -> None:
    before = roll_up(
        history_fleet, PrometheusBackend(history_prometheus), START - timedelta(hours=3), START - timedelta(hours=1)
    )
    assert before.rows and all(row.bad_events is None and row.total_events is None for row in before.rows)


# --- `sloplane rollup`, as a user runs it ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def declarations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("declarations")
    (folder / "fleet.yaml").write_text(declarations_text())
    return folder


def _stored(db: Path) -> list[Rollup]:
    store = SqliteRollups(db)
    try:
        return store.read(since=START - timedelta(days=1), until=END + timedelta(days=1))
    finally:
        store.close()


def _rollup(folder: Path, prometheus: str, db: Path, since: datetime | None, until: datetime, *more: str) -> CliResult:
    """`sloplane rollup` as a user runs it, over [since, until] (since None: from where each SLO stopped)."""
    span = ([] if since is None else ["--from", since.isoformat()]) + ["--to", until.isoformat()]
    return run_cli("rollup", folder, "--prometheus", prometheus, "--db", db, *span, *more)


def test_the_command_writes_the_rows_and_a_second_run_changes_nothing(
    declarations: Path, history_prometheus: str, run: RollupRun, tmp_path: Path
) -> None:
    db = tmp_path / "state" / "decisions.db"
    first = _rollup(declarations, history_prometheus, db, SINCE, UNTIL, "--format", "json")
    assert first.code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["rows"] == len(run.rows) and summary["failed"] == {}
    assert "no event counts" in summary["skipped"]["ratio-only"]
    stored = _stored(db)
    assert sorted(stored, key=_order) == sorted(run.rows, key=_order)
    again = _rollup(declarations, history_prometheus, db, SINCE, UNTIL)
    assert again.code == 0, again.stderr
    assert f"rolled up {len(run.rows)} hourly rows for 3 subjects" in again.stdout
    assert _stored(db) == stored


def test_without_from_each_slo_goes_on_from_its_last_row(
    declarations: Path, history_prometheus: str, run: RollupRun, tmp_path: Path
) -> None:
    db = tmp_path / "decisions.db"
    assert _rollup(declarations, history_prometheus, db, SINCE, MIDDLE).code == 0
    resumed = _rollup(declarations, history_prometheus, db, None, UNTIL)
    assert resumed.code == 0, resumed.stderr
    assert sorted(_stored(db), key=_order) == sorted(run.rows, key=_order)


def test_a_changed_objective_does_not_rewrite_the_past(
    declarations: Path, history_prometheus: str, tmp_path: Path
) -> None:
    db = tmp_path / "decisions.db"
    assert _rollup(declarations, history_prometheus, db, SINCE, MIDDLE).code == 0
    tightened = tmp_path / "tightened"
    tightened.mkdir()
    (tightened / "fleet.yaml").write_text(declarations_text().replace("objective: 99.5", "objective: 99.9"))
    again = _rollup(tightened, history_prometheus, db, SINCE, UNTIL)
    assert again.code == 0, again.stderr
    rows = [row for row in _stored(db) if row.slo == "checkout"]
    assert {row.objective for row in rows if row.end <= MIDDLE} == {99.5}
    assert {row.objective for row in rows if row.start >= MIDDLE} == {99.9}


def test_an_unreachable_prometheus_fails_by_subject_and_exits_1(declarations: Path, tmp_path: Path) -> None:
    result = _rollup(declarations, f"http://127.0.0.1:{free_port()}", tmp_path / "decisions.db", SINCE, UNTIL)
    assert result.code == 1
    assert "failed: checkout: Prometheus could not be read" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--from", "2025-10-30T00:00:00Z", "--to", "2025-10-29T00:00:00Z"], "--from must be before --to"),
        (["--from", "yesterday"], "is not an RFC 3339 time"),
        (["--to", "2025-10-30T00:00:00"], "has no time zone"),
    ],
)
def test_bad_times_are_usage_errors_and_write_nothing(
    declarations: Path, arguments: list[str], message: str, tmp_path: Path
) -> None:
    result = run_cli(
        "rollup", declarations, "--prometheus", "http://127.0.0.1:9", "--db", tmp_path / "x.db", *arguments
    )
    assert result.code == 2 and message in " ".join(result.stderr.split())
    assert list(tmp_path.iterdir()) == []


# --- `serve`'s periodic rollup -------------------------------------------------------------------------------


def test_a_round_goes_on_from_the_last_row_and_a_second_writes_nothing_new(
    history_fleet: Fleet, history_prometheus: str, run: RollupRun, tmp_path: Path
) -> None:
    store = SqliteRollups(tmp_path / "decisions.db")
    later = UNTIL + SETTLE
    job = PeriodicRollup(
        store, history_fleet, PrometheusBackend(history_prometheus), interval=timedelta(hours=1), clock=lambda: later
    )
    try:
        first = job.roll_up_once().as_series()
        stored = store.read(since=UNTIL - timedelta(days=30), until=UNTIL)
        assert first["rounds"] == 1 and first["rows"] == len(stored) and first["failed_subjects"] == 0
        assert first["last_success_timestamp_seconds"] == later.timestamp()
        # 14 days back the first time: hours before the history have no data, the rest are the hand-checked rows
        assert min(row.start for row in stored) <= UNTIL - FIRST_BACKFILL + timedelta(hours=1)
        assert all(row.total_events is None for row in stored if row.end <= START)
        assert sorted((row for row in stored if row.start >= SINCE), key=_order) == sorted(run.rows, key=_order)
        second = job.roll_up_once().as_series()
        assert second["rounds"] == 2 and second["rows"] == first["rows"]
    finally:
        job.close()


def test_work_after_a_round_runs_with_its_instant_and_its_faults_are_logged_not_raised(
    history_fleet: Fleet, history_prometheus: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`after_round` (serve: support feedback classified again once its hours are rolled up) runs after each
    round with the round's settled instant; a fault in it is logged and the next round runs it again."""
    seen: list[datetime] = []

    def after(until: datetime) -> None:
        seen.append(until)
        if len(seen) == 1:
            raise RuntimeError("store away")

    later = UNTIL + SETTLE
    job = PeriodicRollup(SqliteRollups(tmp_path / "decisions.db"), history_fleet, PrometheusBackend(history_prometheus),
                         interval=timedelta(hours=1), clock=lambda: later, after_round=after)  # fmt: skip
    try:
        job.roll_up_once()
        job.roll_up_once()
    finally:
        job.close()
    assert seen == [UNTIL, UNTIL]
    assert "after the rollup: RuntimeError: store away" in caplog.text


def test_a_round_that_cannot_read_prometheus_is_counted_not_raised(history_fleet: Fleet, tmp_path: Path) -> None:
    store = SqliteRollups(tmp_path / "decisions.db")
    job = PeriodicRollup(
        store,
        history_fleet,
        PrometheusBackend(f"http://127.0.0.1:{free_port()}", timeout=1),
        interval=timedelta(hours=1),
    )
    try:
        stats = job.roll_up_once()
        assert stats.failed_subjects == 3 and stats.last_success is None
        assert stats.last_error is not None and "Prometheus could not be read" in stats.last_error
        assert "last_success_timestamp_seconds" not in stats.as_series()
    finally:
        job.close()


def test_serve_rolls_up_on_the_leader_and_shows_it_in_metrics(history_prometheus: str, tmp_path: Path) -> None:
    with running(tmp_path, history_prometheus, rollup_interval=timedelta(hours=1)) as served:
        wait_until(lambda: served.service.rollup is not None and served.service.rollup.stats.rounds >= 1, 30.0)
        metrics = requests.get(f"{served.url}/metrics", headers=served.headers("read"), timeout=10).text
        assert "sloplane_rollup_rounds 1.0" in metrics
        assert "sloplane_rollup_failed_subjects 0.0" in metrics
    store = SqliteRollups(tmp_path / "decisions.db")
    try:
        assert store.latest(), "the leader's round wrote rows into the decision log's file"
    finally:
        store.close()


DATADOG_ONLY = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: traces-only}
spec:
  service: traces
  owners: {team: sre}
  objective: 99.9
  sli:
    ratio:
      errors: {datadog: "sum:trace.http.request.errors{service:traces}.as_count()"}
      total: {datadog: "sum:trace.http.request.hits{service:traces}.as_count()"}
  targets: [datadog]
"""


@pytest.mark.parametrize("datadog", [False, True])
def test_what_cannot_be_rolled_up_from_prometheus_says_why(tmp_path: Path, datadog: bool) -> None:
    """A composite, an SLI only Datadog measures, and one the gate reads from Datadog when it has it (the
    example payments SLO targets Datadog): left out with why, never read from Prometheus beside the gate."""
    for example in EXAMPLES.glob("*.yaml"):
        (tmp_path / example.name).write_text(example.read_text())
    (tmp_path / "traces.yaml").write_text(DATADOG_ONLY)
    result = load_paths([tmp_path])
    assert result.errors == [], [error.render() for error in result.errors]
    chosen, skipped = targets(Fleet(result.declarations), SINCE, UNTIL, datadog=datadog)
    assert skipped["purchase-journey"].startswith("a composite")
    assert skipped["traces-only"].startswith("read from Datadog")
    if datadog:
        assert skipped["payments-availability"].startswith("read from Datadog")
    else:
        assert "payments-availability" in {target.key for target in chosen}
    assert "checkout-availability/production" in {target.key for target in chosen}
