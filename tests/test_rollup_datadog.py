"""Hourly rollups of the SLIs the gate reads from Datadog, against the local Datadog API holding the very history
the backfilled Prometheus holds (`tests/rollup_history.py` through `tests/datadog_history.py`: a DST change, a
month boundary, a half-hour zone, an exclusion): every row equals the hand computation and Prometheus's row;
rate limits are waited out, a fault fails its subjects only, and the command and `serve` read Datadog."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from datadog_api_client.v2.model.timeseries_formula_query_request import TimeseriesFormulaQueryRequest

from sloplane.evaluator.history.job import SETTLE, roll_up_into
from sloplane.evaluator.history.periodic import PeriodicRollup
from sloplane.evaluator.history.rollup import RollupRun, roll_up
from sloplane.evaluator.history.rollup_datadog import MAX_POINTS
from sloplane.evaluator.http.auth import TokenStore
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts, RateLimits
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Rollup
from sloplane.evaluator.server import ServerConfig, build_service
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.sandbox import HttpTraffic, Segment, expected_counts, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.conftest import CliResult, run_cli
from tests.datadog_api import SCALAR, TIMESERIES, DatadogAPI, Fault, LoggedRequest, RateLimit
from tests.datadog_history import load_traffic
from tests.datadog_models import problems
from tests.evaluator_data import load_fleet
from tests.postgres import wait_until
from tests.rollup_history import END, EXCLUDED, SINCE, START, UNTIL, ZONES
from tests.rollup_history import declarations as declarations_text

pytest_plugins = ("tests.rollup_history",)

API_KEY, APP_KEY = "rollup-api-key", "rollup-app-key"
QUERY = "sum:http_requests.count{*}.as_count()"
TARGETED = declarations_text().replace("  sli: {http", "  targets: [datadog]\n  sli: {http")
"""The known history's SLOs, provisioned in Datadog: their gates read Datadog, and so do their rollups."""


def _api(traffic: dict[str, HttpTraffic], **options: object) -> DatadogAPI:
    api = DatadogAPI(api_key=API_KEY, app_key=APP_KEY, **options)  # type: ignore[arg-type]
    for one in traffic.values():
        load_traffic(api, one)
    return api


def _reader(api: DatadogAPI) -> DatadogCounts:
    """The gate's transport against `api`, with rate limits of its own (tests must not share them)."""
    return DatadogCounts(api.url, API_KEY, APP_KEY, limits=RateLimits())


@pytest.fixture(scope="module")
def datadog_fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("targeted"), TARGETED)


@pytest.fixture(scope="module")
def datadog_api(history_traffic: dict[str, HttpTraffic]) -> Iterator[DatadogAPI]:
    api = _api(history_traffic)
    api.start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def logged_run(
    datadog_fleet: Fleet, history_prometheus: str, datadog_api: DatadogAPI
) -> tuple[RollupRun, list[LoggedRequest]]:
    """Both backends given, as `serve` has them: the targeted SLOs are read from Datadog, what else from
    Prometheus; and what the run asked Datadog."""
    datadog_api.clear_log()
    run = roll_up(datadog_fleet, PrometheusBackend(history_prometheus), SINCE, UNTIL, datadog=_reader(datadog_api))
    return run, datadog_api.requests()


@pytest.fixture(scope="module")
def run(logged_run: tuple[RollupRun, list[LoggedRequest]]) -> RollupRun:
    return logged_run[0]


def _close(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is expected
    return abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))


def _order(row: Rollup) -> tuple[str, datetime]:
    return row.slo, row.start


def _counts(row: Rollup) -> tuple[float | None, ...]:
    return (row.bad_events, row.total_events, row.excluded_bad_events, row.excluded_total_events)


def _same_rows(actual: list[Rollup], expected: list[Rollup]) -> None:
    """The same hours, objectives and zones, and counts equal to 1e-9."""
    actual, expected = sorted(actual, key=_order), sorted(expected, key=_order)
    assert [(r.slo, r.start, r.end, r.objective, r.time_zone, r.excluded_minutes) for r in actual] == [
        (r.slo, r.start, r.end, r.objective, r.time_zone, r.excluded_minutes) for r in expected
    ]
    for mine, theirs in zip(actual, expected, strict=True):
        assert all(_close(a, b) for a, b in zip(_counts(mine), _counts(theirs), strict=True)), (mine, theirs)


# --- the rows ---------------------------------------------------------------------------------------------------


def test_every_row_from_datadog_is_the_hand_computed_hour(
    run: RollupRun, history_traffic: dict[str, HttpTraffic]
) -> None:
    assert {row.slo for row in run.rows} == set(ZONES) and run.failed == {}
    for row in run.rows:
        bad, total = expected_counts(history_traffic[row.slo], row.end, row.end - row.start)
        assert _close(row.bad_events, bad), (row, bad)
        assert _close(row.total_events, total), (row, total)
        assert row.source == "datadog" and row.objective == 99.5 and row.stage is None
    assert "no event counts" in run.skipped["ratio-only"]


def test_the_rows_are_prometheus_rows_hour_for_hour(
    run: RollupRun, history_fleet: Fleet, history_prometheus: str
) -> None:
    """The same history read from the backfilled Prometheus (the untargeted declarations) gives the same rows."""
    from_prometheus = roll_up(history_fleet, PrometheusBackend(history_prometheus), SINCE, UNTIL)
    assert {row.source for row in from_prometheus.rows} == {"prometheus"}
    _same_rows(run.rows, from_prometheus.rows)


def test_rows_are_the_zones_whole_hours_across_the_clock_change_and_at_half_past(run: RollupRun) -> None:
    for slo, zone in ZONES.items():
        rows = sorted((row for row in run.rows if row.slo == slo), key=_order)
        assert all(row.end - row.start == timedelta(hours=1) for row in rows)
        assert all(later.start == earlier.end for earlier, later in pairwise(rows))
        assert all(row.start.astimezone(ZoneInfo(zone or "UTC")).minute == 0 for row in rows)
    berlin = ZoneInfo("Europe/Berlin")
    checkout = [row for row in run.rows if row.slo == "checkout"]
    assert sum(1 for row in checkout if row.start.astimezone(berlin).date().isoformat() == "2025-10-26") == 25
    assert {row.start.minute for row in run.rows if row.slo == "ledger"} == {30}


def test_an_excluded_half_hour_is_read_apart(run: RollupRun, history_traffic: dict[str, HttpTraffic]) -> None:
    (excluded,) = [row for row in run.rows if row.excluded_minutes]
    assert (excluded.slo, excluded.start, excluded.excluded_minutes) == ("search", EXCLUDED[0].replace(minute=0), 30)
    bad, total = expected_counts(history_traffic["search"], EXCLUDED[1], EXCLUDED[1] - EXCLUDED[0])
    assert _close(excluded.excluded_bad_events, bad) and _close(excluded.excluded_total_events, total)


def test_a_fleet_week_is_one_timeseries_request_per_bucket_width(
    logged_run: tuple[RollupRun, list[LoggedRequest]],
) -> None:
    """Hourly buckets for Berlin and UTC (one `by {job}` request for both), half-hour buckets for Kolkata, and
    the exclusion's one scalar request; every body is Datadog's own request model."""
    run, logged = logged_run
    series = [entry for entry in logged if entry.endpoint == TIMESERIES]
    assert len(series) == 2 and len([entry for entry in logged if entry.endpoint == SCALAR]) == 1
    assert run.queries == 3
    widths = {}
    for entry in series:
        assert problems(entry.body, TimeseriesFormulaQueryRequest) == []
        attributes = entry.body["data"]["attributes"]
        queries = [query["query"] for query in attributes["queries"]]
        widths[attributes["interval"] // 1000] = queries
        assert all(query.endswith(f".rollup(sum, {attributes['interval'] // 1000})") for query in queries)
    assert set(widths) == {3600, 1800}
    assert any("by {job}" in query for query in widths[3600])
    assert all("job:ledger" in query for query in widths[1800])


def test_a_long_backfill_stays_under_datadogs_points_per_series(
    datadog_fleet: Fleet, datadog_api: DatadogAPI, run: RollupRun
) -> None:
    """Seventy days of hours are split into requests of at most `MAX_POINTS` buckets, so Datadog never widens
    them; and an answer it did widen is refused, never summed into the wrong hours."""
    since = UNTIL - timedelta(days=70)
    datadog_api.clear_log()
    long = roll_up(datadog_fleet, None, since, UNTIL, datadog=_reader(datadog_api))
    assert long.failed == {}
    series = datadog_api.requests(TIMESERIES)
    points = [(e.body["data"]["attributes"]["to"] - e.body["data"]["attributes"]["from"]) for e in series]
    assert len(series) == 2 + 3  # 1,680 hourly buckets in two requests, 3,360 half-hour buckets in three
    assert (
        max(span // entry.body["data"]["attributes"]["interval"] for span, entry in zip(points, series, strict=True))
        <= MAX_POINTS
    )
    _same_rows([row for row in long.rows if row.start >= SINCE], run.rows)
    assert all(row.total_events is None for row in long.rows if row.end <= START)
    datadog_api.max_points = 100
    try:
        widened = roll_up(datadog_fleet, None, SINCE, UNTIL, datadog=_reader(datadog_api))
    finally:
        datadog_api.max_points = 1500
    assert widened.rows == [] and set(widened.failed) == set(ZONES)
    assert "other buckets than the 3600 s asked" in widened.failed["checkout"]


def test_a_zone_whose_clock_moves_half_an_hour_has_a_90_minute_row(tmp_path: Path) -> None:
    """Lord Howe Island goes from +10:30 to +11:00 at 02:00 on 5 October 2025: the row from 01:00 to 03:00 is
    90 minutes, read from half-hour buckets."""
    start = datetime(2025, 10, 4, 12, tzinfo=UTC)
    traffic = {"island": http_traffic([Segment(timedelta(hours=8), 30.0, 0.02)], start=start, labels={"job": "island"})}
    fleet = load_fleet(
        tmp_path,
        "apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {name: island}\nspec:\n"
        "  service: island\n  owners: {team: sre}\n  objective: 99\n"
        "  window: {calendar: month, timeZone: Australia/Lord_Howe}\n  targets: [datadog]\n"
        "  sli: {http: {metric: http_requests_total, selector: {job: island}}}\n",
    )
    api = _api(traffic)
    with api as url:
        island = roll_up(
            fleet,
            None,
            datetime(2025, 10, 4, 13, tzinfo=UTC),
            datetime(2025, 10, 4, 19, tzinfo=UTC),
            datadog=DatadogCounts(url, API_KEY, APP_KEY, limits=RateLimits()),
        )
    assert island.failed == {} and island.rows
    (long,) = [row for row in island.rows if row.end - row.start != timedelta(hours=1)]
    local = ZoneInfo("Australia/Lord_Howe")
    assert (long.start.astimezone(local).hour, long.end.astimezone(local).hour) == (1, 3)
    assert long.end - long.start == timedelta(minutes=90)
    assert [entry.body["data"]["attributes"]["interval"] for entry in api.requests(TIMESERIES)] == [1_800_000]
    for row in island.rows:
        bad, total = expected_counts(traffic["island"], row.end, row.end - row.start)
        assert _close(row.bad_events, bad) and _close(row.total_events, total), row


# --- rate limits and faults -------------------------------------------------------------------------------------


def test_a_rate_limited_rollup_waits_and_completes(
    history_traffic: dict[str, HttpTraffic], datadog_fleet: Fleet, run: RollupRun
) -> None:
    """One timeseries request a second, that second's already spent by someone else: the rollup is answered 429
    with Datadog's headers, waits for the reset, sends nothing before it, and completes its rows."""
    api = _api(history_traffic, limits={TIMESERIES: RateLimit("query_timeseries_public", 1, 1)})
    spent = {
        "data": {
            "type": "timeseries_request",
            "attributes": {"from": 0, "to": 60_000, "queries": [{"data_source": "metrics", "query": QUERY}]},
        }
    }
    with api as url:
        time.sleep(1.02 - time.time() % 1)  # just after a window starts, so that the rollup's first falls in it
        headers = {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY}
        assert requests.post(f"{url}/api/v2/query/timeseries", json=spent, headers=headers, timeout=5).ok
        limited = roll_up(datadog_fleet, None, SINCE, UNTIL, datadog=_reader(api))
    assert [entry.status for entry in api.requests(TIMESERIES)].count(429) >= 1
    assert api.sent_during_backoff() == []
    assert limited.failed == {}
    _same_rows(limited.rows, run.rows)


def test_a_fault_mid_run_fails_its_subjects_and_the_next_run_fills_their_hours(
    datadog_fleet: Fleet, datadog_api: DatadogAPI, run: RollupRun, tmp_path: Path
) -> None:
    """Two weeks, the first week's hourly request refused: Berlin's and UTC's SLOs fail with why and are not
    rolled up past the gap, Kolkata's are written; the next run resumes each from its last row."""
    store = SqliteRollups(tmp_path / "decisions.db")
    try:
        datadog_api.fail(TIMESERIES, Fault.errors_list(["Query timed out"]), times=1)
        first = roll_up_into(store, datadog_fleet, None, SINCE - timedelta(days=7), UNTIL, datadog=_reader(datadog_api))
        assert set(first.failed) == {"checkout", "search"}
        assert "Datadog could not be read" in first.failed["checkout"] and "Query timed out" in first.failed["checkout"]
        assert {row.slo for row in store.read(since=SINCE - timedelta(days=8), until=UNTIL)} == {"ledger"}
        second = roll_up_into(store, datadog_fleet, None, None, UNTIL, datadog=_reader(datadog_api))
        assert second.failed == {}
        stored = store.read(since=SINCE, until=UNTIL)
    finally:
        store.close()
    _same_rows([row for row in stored if row.start >= SINCE], run.rows)


# --- `sloplane rollup` ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def targeted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("declarations")
    (folder / "fleet.yaml").write_text(TARGETED)
    return folder


def _rollup(folder: Path, db: Path, *backends: str) -> CliResult:
    return run_cli(
        "rollup",
        folder,
        *backends,
        "--db",
        db,
        "--from",
        SINCE.isoformat(),
        "--to",
        UNTIL.isoformat(),
        "--format",
        "json",
    )


@pytest.fixture
def datadog_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys where `evaluate` and `serve` take them from: the environment, never an option."""
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)


@pytest.mark.usefixtures("datadog_keys")
def test_the_command_reads_datadog_with_the_keys_from_the_environment(
    targeted: Path, history_prometheus: str, datadog_api: DatadogAPI, run: RollupRun, tmp_path: Path
) -> None:
    db = tmp_path / "decisions.db"
    result = _rollup(targeted, db, "--prometheus", history_prometheus, "--datadog", datadog_api.url)
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == len(run.rows) and summary["failed"] == {} and summary["queries"] == 3
    store = SqliteRollups(db)
    try:
        stored = store.read(since=START - timedelta(days=1), until=END + timedelta(days=1))
    finally:
        store.close()
    assert sorted(stored, key=_order) == sorted(run.rows, key=_order)
    datadog_api.fail(TIMESERIES, Fault.errors_list(["Query timed out"]), times=1)
    failed = _rollup(targeted, tmp_path / "again.db", "--datadog", datadog_api.url)
    assert failed.code == 1
    assert json.loads(failed.stdout)["failed"]["checkout"].startswith("Datadog could not be read")
    assert (
        "read from Prometheus, and this rollup has no Prometheus" in json.loads(failed.stdout)["skipped"]["ratio-only"]
    )


def test_without_the_keys_or_any_backend_the_command_is_a_usage_error(
    targeted: Path, datadog_api: DatadogAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DD_API_KEY", raising=False)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    keyless = _rollup(targeted, tmp_path / "x.db", "--datadog", datadog_api.url)
    assert keyless.code == 2
    assert "Invalid value for --datadog: set DD_API_KEY to read from Datadog" in _words(keyless.stderr)
    neither = _rollup(targeted, tmp_path / "x.db")
    assert neither.code == 2 and "give --prometheus URL, --datadog SITE, or both" in _words(neither.stderr)
    assert "Traceback" not in keyless.stderr + neither.stderr
    assert list(tmp_path.iterdir()) == []


def _words(message: str) -> str:
    """A message without the box typer draws around it."""
    return " ".join(message.replace("│", " ").split())


# --- `serve`'s periodic rollup ----------------------------------------------------------------------------------


def test_a_periodic_round_reads_datadog(
    datadog_fleet: Fleet, datadog_api: DatadogAPI, run: RollupRun, tmp_path: Path
) -> None:
    store = SqliteRollups(tmp_path / "decisions.db")
    job = PeriodicRollup(
        store,
        datadog_fleet,
        None,
        interval=timedelta(hours=1),
        clock=lambda: UNTIL + SETTLE,
        datadog=_reader(datadog_api),
    )
    try:
        stats = job.roll_up_once()
        assert stats.failed_subjects == 0 and stats.last_error is None and stats.rows > 0
        stored = store.read(since=SINCE, until=UNTIL)
    finally:
        job.close()
    _same_rows([row for row in stored if row.start >= SINCE], run.rows)


def test_serve_with_datadog_rolls_up_from_it_on_the_leader(
    datadog_fleet: Fleet, datadog_api: DatadogAPI, tmp_path: Path
) -> None:
    """`serve --datadog` without Prometheus: the leader's round reads Datadog with a transport of its own."""
    made: list[float] = []

    def transport(timeout: float) -> DatadogCounts:
        made.append(timeout)
        return DatadogCounts(datadog_api.url, API_KEY, APP_KEY, timeout=timeout, limits=RateLimits())

    config = ServerConfig(
        None, tmp_path / "decisions.db", TokenStore([]), datadog=transport, rollup_interval=timedelta(hours=1)
    )
    datadog_api.clear_log()
    service = build_service(datadog_fleet, config)
    service.start()
    try:
        wait_until(lambda: service.rollup is not None and service.rollup.stats.last_success is not None, 30.0)
        assert service.rollup is not None
        stats = service.rollup.stats
        assert stats.failed_subjects == 0 and stats.rows > 0, stats
    finally:
        service.close()
    assert 60.0 in made  # the rollup's own transport, with the rollup's timeout
    assert datadog_api.requests(TIMESERIES)
    store = SqliteRollups(tmp_path / "decisions.db")
    try:
        rows = store.read(since=datetime.now(UTC) - timedelta(days=15), until=datetime.now(UTC))
    finally:
        store.close()
    assert rows and {row.source for row in rows} == {"datadog"}


@pytest.mark.usefixtures("datadog_keys")
def test_the_status_page_reads_datadog_alone_for_states_and_bars(
    targeted: Path, datadog_api: DatadogAPI, run: RollupRun, tmp_path: Path
) -> None:
    """`sloplane status --datadog` without Prometheus or a store: the states as the gate reads them, the bars
    from the hours read from Datadog now, equal to the rows of both backends day by day."""
    out = tmp_path / "status"
    result = run_cli("status", targeted, "--datadog", datadog_api.url, "--at", UNTIL.isoformat(), "--out", out)
    assert result.code == 0, result.stderr
    page = json.loads((out / "status.json").read_text())
    assert page["components"], page
    for component in page["components"]:
        slos = {entry["slo"] for entry in component["sloplane"]["slos"]}
        own = [row for row in run.rows if row.slo in slos and row.total_events]
        for day in component["sloplane"]["days"]:
            start = datetime.fromisoformat(day["day"]).replace(tzinfo=UTC)
            inside = [row for row in own if start <= row.start < start + timedelta(days=1)]
            if not inside or start < SINCE:  # the run's rows begin at SINCE, the page reads 90 days back
                continue
            expected = sum(row.counted_total_events or 0.0 for row in inside)
            assert _close(day["events"], expected), (component["id"], day["day"])
        assert any(day["events"] for day in component["sloplane"]["days"]) == bool(own)
