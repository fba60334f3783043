"""The known history the rollup, SLA report and status page tests share, as a pytest plugin.

October 2025's last week and November's first hour, across the end of European summer time (2025-10-26, a
25-hour day in Europe/Berlin) and a month boundary, for three zones: Europe/Berlin (whole-hour offsets),
Asia/Kolkata (+05:30: its hours start at half past UTC's) and UTC. Error ratios change at instants that are
not on the hour, so neighbouring rows differ; an exclusion window covers half an hour of `search`; a
ratio-only SLI has no event counts. Test modules load it with `pytest_plugins = ("tests.rollup_history",)`
and ask for `history_traffic`, `history_fleet` and `history_prometheus` (the sandbox's URL), each built once
per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sloplane.evaluator.history.rollup import roll_up
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.evaluator_data import load_fleet

START = datetime(2025, 10, 25, 10, 7, tzinfo=UTC)
END = datetime(2025, 11, 1, 2, 0, tzinfo=UTC)
SINCE = datetime(2025, 10, 25, 12, 0, tzinfo=UTC)
UNTIL = datetime(2025, 11, 1, 1, 0, tzinfo=UTC)
MIDDLE = datetime(2025, 10, 28, 5, 0, tzinfo=UTC)
"""Where a first run stops, for the runs that go on from it."""
EXCLUDED = (datetime(2025, 10, 30, 10, 20, tzinfo=UTC), datetime(2025, 10, 30, 10, 50, tzinfo=UTC))

ZONES = {"checkout": "Europe/Berlin", "ledger": "Asia/Kolkata", "search": None}
"""Each SLO's calendar zone (None: a rolling window, cut in UTC)."""


def segments(index: int) -> list[Segment]:
    """Three stretches whose changes fall between hours (at :07 and :43), different per service."""
    first = timedelta(days=2, hours=3, minutes=36)
    second = timedelta(days=1, hours=19, minutes=0)
    rest = END - START - first - second
    return [
        Segment(first, 40.0 + index, 0.002 * (index + 1)),
        Segment(second, 90.5, 0.031 + 0.01 * index),
        Segment(rest, 17.25 * (index + 1), 0.0005),
    ]


def traffic_by_job() -> dict[str, HttpTraffic]:
    return {
        job: http_traffic(segments(index), start=START, labels={"job": job}, bad_code="503")
        for index, job in enumerate(ZONES)
    }


def declarations() -> str:
    documents = []
    for job, zone in ZONES.items():
        window = f"{{calendar: month, timeZone: {zone}}}" if zone else "30d"
        exclusion = ""
        if job == "search":
            start, end = (instant.isoformat().replace("+00:00", "Z") for instant in EXCLUDED)
            exclusion = (
                "  exclusions:\n    windows:\n"
                f"      - {{name: failover-drill, start: {start}, end: {end}, reason: Planned failover drill.}}\n"
            )
        documents.append(
            "apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\n"
            f"metadata: {{name: {job}}}\nspec:\n  service: {job}\n  owners: {{team: sre}}\n  objective: 99.5\n"
            f"  window: {window}\n  sli: {{http: {{metric: http_requests_total, selector: {{job: {job}}}}}}}\n"
            + exclusion
        )
    documents.append(  # a ratio-only SLI: no event counts, so not rolled up
        "apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\n"
        "metadata: {name: ratio-only}\nspec:\n  service: search\n  owners: {team: sre}\n  objective: 99\n"
        "  window: 30d\n  sli:\n    raw:\n      errorRatio:\n"
        "        prometheus: 'sum(rate(errors_total[{{window}}])) / sum(rate(requests_total[{{window}}]))'\n"
    )
    return "---\n".join(documents)


@pytest.fixture(scope="module")
def history_traffic() -> dict[str, HttpTraffic]:
    return traffic_by_job()


@pytest.fixture(scope="module")
def history_fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), declarations())


@pytest.fixture(scope="module")
def history_prometheus(
    tmp_path_factory: pytest.TempPathFactory, history_traffic: dict[str, HttpTraffic]
) -> Iterator[str]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), list(history_traffic.values())) as sandbox:
        yield sandbox.url


@pytest.fixture(scope="module")
def history_database(tmp_path_factory: pytest.TempPathFactory, history_fleet: Fleet, history_prometheus: str) -> Path:
    """The history's rows and a freeze of `search` (three hours before UNTIL), in one SQLite file as `serve`
    keeps them: what the budget report and `/v1/reports` read."""
    db = tmp_path_factory.mktemp("db") / "decisions.db"
    store = SqliteRollups(db)
    try:
        store.write(roll_up(history_fleet, PrometheusBackend(history_prometheus), SINCE, UNTIL).rows, UNTIL)
    finally:
        store.close()
    with ReleaseControls(db) as controls:
        controls.freeze("search", "failover drill follow-up", "sre", at=UNTIL - timedelta(hours=3))
    return db
