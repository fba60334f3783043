"""`sloplane govern stale` on constructed histories: rows written straight into a real SQLite rollup store and
decisions into a real SQLite decision log, declarations made to trigger each rule, and near-misses that must not.

`AT` is 2026-01-07 09:30 UTC: a monthly SLO's last three complete periods are 2025-10, 2025-11 and 2025-12 (UTC,
or its zone's), a 7-day rolling SLO's the three weeks ending at 09:00 (`AT` floored to the hour). Every expected
finding is worked out here, from the rows and decisions this module writes, in the comments beside them.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from sloplane.declaration.model import Window
from sloplane.evaluator.governance.debt import open_debt_lookup
from sloplane.evaluator.governance.stale import DEFAULT_CADENCE, StaleOptionError, parse_cadence, stale_report
from sloplane.evaluator.governance.stale_periods import last_periods, period_holding
from sloplane.evaluator.model import Rollup
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.feedback import SqliteFeedback, checked_report
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.semantics.subjects import Fleet
from tests.evaluator_data import load_fleet, make_decision
from tests.govern_cli import run_govern

AT = datetime(2026, 1, 7, 9, 30, tzinfo=UTC)
MONTHS = ((2025, 10), (2025, 11), (2025, 12))
"""The last three complete months at `AT`."""
FULL_OWNERS = (
    "{team: sre, dev: {name: Dev, contact: dev@example.com}, ops: {name: Ops, contact: ops@example.com}, "
    "product: {name: PM, contact: pm@example.com}}"
)

Row = tuple[float, float, float]
"""bad events, total events, objective in force."""
NORMAL: tuple[tuple[Row, ...], ...] = (((50, 10000, 99.0),),) * 3
"""A month of 10,000 events and 50 bad at 99%: half the budget (100 bad events) used, met, well measurable."""


@dataclass(frozen=True)
class Slo:
    """One declaration and its rows: `months` the rows of 2025-10, -11, -12 (each at 12:00 UTC on the 1st, 2nd,
    … of the month), `rows` any others (start, bad, total, objective)."""

    name: str
    tier: str = "medium"
    objective: float = 99.0
    review: str = "{last: 2025-12-20}"
    service: str | None = None
    owners: str = "{team: sre}"
    rationale: str = ""
    window: str = "{calendar: month}"
    lifecycle: str = "active"
    months: tuple[tuple[Row, ...], ...] = NORMAL
    rows: tuple[tuple[datetime, float, float, float], ...] = ()
    zone: str = "UTC"

    def yaml(self) -> str:
        rationale = f"  rationale: {self.rationale}\n" if self.rationale else ""
        return (
            "---\napiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\n"
            f"metadata: {{name: {self.name}}}\nspec:\n  service: {self.service or self.name}\n"
            f"  tier: {self.tier}\n  owners: {self.owners}\n{rationale}  review: {self.review}\n"
            f"  lifecycle: {self.lifecycle}\n  objective: {self.objective}\n  window: {self.window}\n"
            f"  sli: {{http: {{metric: http_requests_total, selector: {{job: {self.name}}}}}}}\n"
        )

    def rollups(self) -> list[Rollup]:
        found = [
            (datetime(*MONTHS[index], 1 + hour, 12, tzinfo=UTC), *row)
            for index, rows in enumerate(self.months)
            for hour, row in enumerate(rows)
        ]
        return [
            Rollup(self.name, None, start, start + timedelta(hours=1), bad, total, 0.0, 0.0, 0.0, objective,
                   "sha256:test", self.zone, "prometheus")
            for start, bad, total, objective in [*found, *self.rows]
        ]  # fmt: skip


def used(bad: float, total: float, objective: float) -> float:
    """Budget used, by hand: bad events over the bad events the objective allows."""
    return bad / (total * (100 - objective) / 100)


SLOS = [
    # never-burns: 5, 9.9 and 2 bad of 100 allowed: 5.0%, 9.9%, 2.0%, each under 10% → tighten
    Slo("quiet", months=(((5, 10000, 99.0),), ((9.9, 10000, 99.0),), ((2, 10000, 99.0),))),
    # near-miss: November used 10.0% exactly, which burns
    Slo("quiet-edge", months=(((5, 10000, 99.0),), ((10, 10000, 99.0),), ((2, 10000, 99.0),))),
    # zoned: Berlin's December holds the 1 December row (5 bad: 5%), not the one at 23:00 UTC on 31 December
    # (00:00 in Berlin on 1 January: the current period); cut in UTC December would have used 25% → tighten
    Slo(
        "quiet-berlin",
        window="{calendar: month, timeZone: Europe/Berlin}",
        zone="Europe/Berlin",
        months=(((5, 10000, 99.0),), ((5, 10000, 99.0),), ((5, 10000, 99.0),)),
        rows=((datetime(2025, 12, 31, 23, tzinfo=UTC), 20, 10000, 99.0),),
    ),
    # rolling 7d: weeks [12-17 09:00, 12-24 09:00), [12-24, 12-31 09:00), [12-31, 01-07 09:00): 1, 2, 3 bad of 100
    # allowed → tighten; the row at 09:00 on 7 January starts after the floored AT and is not counted
    Slo(
        "quiet-rolling",
        window="7d",
        review="{last: 2026-01-02}",  # its window: [12-26 00:00, 01-02 00:00), holding the 27 December row
        months=(),
        rows=(
            (datetime(2025, 12, 20, 12, tzinfo=UTC), 1, 10000, 99.0),
            (datetime(2025, 12, 27, 12, tzinfo=UTC), 2, 10000, 99.0),
            (datetime(2026, 1, 3, 12, tzinfo=UTC), 3, 10000, 99.0),
            (datetime(2026, 1, 7, 9, tzinfo=UTC), 90, 10000, 99.0),
        ),
    ),
    # chronically-missed: 150 and 200 bad of 100 allowed in October and December (SLI 98.5%, 98% < 99%) → open-debt
    Slo("missing", months=(((150, 10000, 99.0),), ((50, 10000, 99.0),), ((200, 10000, 99.0),))),
    # near-miss: missed once (October)
    Slo("missing-once", months=(((150, 10000, 99.0),), ((50, 10000, 99.0),), ((50, 10000, 99.0),))),
    # near-miss: missed October (at 99.5: 100 bad = SLI 99%) and November, but the objective changed (99.5 → 99)
    Slo("missing-changed", months=(((100, 10000, 99.5),), ((150, 10000, 99.0),), ((50, 10000, 99.0),))),
    # usage-drift: reviewed in October, 2 rows of 500 events (500 an hour); December 1 row of 1,005 → 2.01 → review
    Slo(
        "drift",
        objective=90.0,
        review="{last: 2025-10-10}",
        months=(((50, 500, 90.0), (0, 500, 90.0)), ((50, 1000, 90.0),), ((50, 1005, 90.0),)),
    ),
    # near-miss: December 1,000 an hour → 2.0 (the raw events ratio, 1.0, would say nothing either way)
    Slo(
        "drift-edge",
        objective=90.0,
        review="{last: 2025-10-10}",
        months=(((50, 500, 90.0), (0, 500, 90.0)), ((50, 1000, 90.0),), ((50, 1000, 90.0),)),
    ),
    # budget-too-small: December 1,999 events × 1% = 19.99 bad events allowed (< 20) → review
    Slo("tiny", months=(((5, 10000, 99.0),), ((50, 10000, 99.0),), ((11, 1999, 99.0),))),
    # near-miss: 2,000 × 1% = 20
    Slo("tiny-edge", months=(((50, 10000, 99.0),), ((50, 10000, 99.0),), ((11, 2000, 99.0),))),
    # no-data: rows in October only → no-data; never-burns, chronically-missed and usage-drift not checked
    Slo("silent", months=(((50, 10000, 99.0),),)),
    # review-overdue by cadence: critical, last reviewed 2025-12-07, 31 days before 2026-01-07 (> 30)
    Slo("late", tier="critical", review="{last: 2025-12-07}", owners=FULL_OWNERS, rationale="checkout pays"),
    # near-miss: 30 days ago, due today
    Slo("late-edge", tier="critical", review="{last: 2025-12-08}", owners=FULL_OWNERS, rationale="checkout pays"),
    # review-overdue: next review was 2026-01-06, one day before today
    Slo("past-next", tier="low", review="{last: 2025-12-01, next: 2026-01-06}"),
    # review-overdue: never reviewed (usage-drift not checked: nothing to compare with)
    Slo("never-reviewed", tier="low", review="{}"),
    # ownership-gap: high, a dev owner only, no rationale
    Slo("gap", tier="high", owners="{team: sre, dev: {name: Dev, contact: dev@example.com}}"),
    # near-miss: high with every owner and a rationale
    Slo("owned", tier="high", owners=FULL_OWNERS, rationale="customers see it"),
    # unused: service shop; shop-a gated 10 days ago; shop-b 90 days and 1 second ago (outside); shop-c only in a
    # replay; shop-d exactly 90 days ago (inside: the window includes its start) → shop-b and shop-c unused
    Slo("shop-a", service="shop"),
    Slo("shop-b", service="shop"),
    Slo("shop-c", service="shop"),
    Slo("shop-d", service="shop"),
    # near-miss: a service whose two SLOs nobody gated says nothing
    Slo("idle-a", service="idle"),
    Slo("idle-b", service="idle"),
    # archived: skipped (it would be no-data)
    Slo("gone", lifecycle="archived", months=()),
]

EXPECTED = {
    ("quiet", "never-burns", "tighten"),
    ("quiet-berlin", "never-burns", "tighten"),
    ("quiet-rolling", "never-burns", "tighten"),
    ("missing", "chronically-missed", "open-debt"),
    ("drift", "usage-drift", "review"),
    ("tiny", "budget-too-small", "review"),
    ("silent", "no-data", "review"),
    ("late", "review-overdue", "review"),
    ("past-next", "review-overdue", "review"),
    ("never-reviewed", "review-overdue", "review"),
    ("gap", "ownership-gap", "assign-owners"),
    ("shop-b", "unused", "review"),
    ("shop-c", "unused", "review"),
}
EXPECTED_NOT_CHECKED = {
    ("silent", "never-burns"),
    ("silent", "chronically-missed"),  # 0 missed, 2 periods without data: they could make two
    ("silent", "usage-drift"),  # no events in December
    ("never-reviewed", "usage-drift"),
}


def _records(log: SqliteDecisionLog) -> None:
    gated = {"shop-a": AT - timedelta(days=10), "shop-b": AT - timedelta(days=90, seconds=1)}
    gated["shop-d"] = AT - timedelta(days=90)
    for number, (slo, when) in enumerate(sorted(gated.items())):
        log.append(make_decision(number, slo=slo, decided_at=when))
    replay = make_decision(9, slo="shop-c", decided_at=AT - timedelta(days=5))
    log.append(replace(replay, request=replace(replay.request, at=AT - timedelta(days=30))))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Fleet]:
    folder = tmp_path_factory.mktemp("stale")
    db = folder / "sloplane.db"
    rollups = SqliteRollups(db)
    rollups.write([row for slo in SLOS for row in slo.rollups()], AT)
    rollups.close()
    log = SqliteDecisionLog(db)
    _records(log)
    log.close()
    declarations = folder / "slos"
    declarations.mkdir()
    fleet = load_fleet(declarations, "".join(slo.yaml() for slo in SLOS))
    return db, declarations, fleet


def _report(store: tuple[Path, Path, Fleet], **options: Any) -> dict[str, Any]:
    db, _, fleet = store
    rollups, log = SqliteRollups(db), SqliteDecisionLog(db)
    try:
        reader = lambda since, until, names: rollups.read(since=since, until=until, slos=names)  # noqa: E731
        return stale_report(fleet, reader, AT, log=log, **options)
    finally:
        rollups.close()
        log.close()


def test_each_rule_fires_where_built_and_not_on_its_near_miss(store: tuple[Path, Path, Fleet]) -> None:
    report = _report(store)
    assert {(f["slo"], f["rule"], f["action"]) for f in report["findings"]} == EXPECTED
    # without the support feedback store, blind spots are not checked (and said so)
    assert {(n["slo"], n["rule"]) for n in report["notChecked"]} == EXPECTED_NOT_CHECKED | {(None, "blind-spot")}
    assert report["summary"] == {
        rule: sum(1 for _, found, _ in EXPECTED if found == rule)
        for rule in ("review-overdue", "never-burns", "chronically-missed", "usage-drift", "budget-too-small",
                     "no-data", "unused", "ownership-gap", "blind-spot")
    }  # fmt: skip
    assert report["cadence"] == DEFAULT_CADENCE and report["at"] == AT.isoformat()
    # ordered by tier, SLO, rule: the critical `late` first, the low ones last
    tiers = ["critical", "high", "medium", "low"]
    order = [(tiers.index(f["tier"]), f["slo"]) for f in report["findings"]]
    assert order == sorted(order) and report["findings"][0]["slo"] == "late"
    # the log's span the unused rule read: shop-a's decision, shop-d's (exactly 90 days back) and shop-c's replay;
    # shop-b's is a second before it
    assert report["decisionLog"]["decisions"] == 3


def test_blind_spots_are_findings_of_their_services_after_each_tiers_slos(store: tuple[Path, Path, Fleet]) -> None:
    """The feedback rule's findings (per service, `slo` null) join the SLOs' in tier order; a service without SLOs
    (tier null) comes last. Their inputs are `feedback_blind_spots`' own (tested in tests/test_feedback.py)."""
    spot = {"slo": None, "team": "sre", "rule": "blind-spot", "action": "add-sli", "message": "m", "inputs": {}}
    spots = [spot | {"service": "nowhere", "tier": None}, spot | {"service": "late", "tier": "critical"}]
    report = _report(store, blind_spots=spots)
    rules = [(f["tier"], f["service"], f["rule"]) for f in report["findings"]]
    assert rules[-1] == (None, "nowhere", "blind-spot")
    critical = [entry for entry in rules if entry[0] == "critical"]
    assert critical[-1] == ("critical", "late", "blind-spot")  # after the critical SLOs' own findings
    assert report["summary"]["blind-spot"] == 2
    assert "blind-spot" not in {n["rule"] for n in report["notChecked"]}


def _finding(report: dict[str, Any], slo: str, rule: str) -> dict[str, Any]:
    return next(f for f in report["findings"] if f["slo"] == slo and f["rule"] == rule)


def test_the_inputs_are_the_hand_computed_numbers(store: tuple[Path, Path, Fleet]) -> None:
    report = _report(store)
    quiet = _finding(report, "quiet", "never-burns")["inputs"]
    assert [p["label"] for p in quiet["periods"]] == ["2025-10", "2025-11", "2025-12"]
    assert [p["budgetUsed"] for p in quiet["periods"]] == pytest.approx([used(b, 10000, 99.0) for b in (5, 9.9, 2)])
    berlin = _finding(report, "quiet-berlin", "never-burns")["inputs"]["periods"][-1]
    assert berlin["start"] == "2025-11-30T23:00:00+00:00" and berlin["badEvents"] == 5
    rolling = _finding(report, "quiet-rolling", "never-burns")["inputs"]["periods"]
    assert [p["end"] for p in rolling] == [
        f"{day}T09:00:00+00:00" for day in ("2025-12-24", "2025-12-31", "2026-01-07")
    ]
    assert [p["badEvents"] for p in rolling] == [1, 2, 3]
    missing = _finding(report, "missing", "chronically-missed")
    assert missing["inputs"]["missed"] == 2 and missing["inputs"]["debtRegister"] == "unavailable"
    assert "debt register" in missing["message"]
    drift = _finding(report, "drift", "usage-drift")["inputs"]
    assert drift["reviewEventsPerHour"] == 1000 / 2 and drift["eventsPerHour"] == 1005
    assert drift["ratio"] == pytest.approx(1005 / 500)
    assert drift["reviewPeriod"]["label"] == "2025-10"
    assert _finding(report, "tiny", "budget-too-small")["inputs"]["allowedBadEvents"] == pytest.approx(19.99)
    assert _finding(report, "silent", "no-data")["inputs"]["period"]["label"] == "2025-12"
    late = _finding(report, "late", "review-overdue")["inputs"]
    assert late["daysSinceLast"] == (date(2026, 1, 7) - date(2025, 12, 7)).days and late["reason"] == "cadence"
    assert _finding(report, "past-next", "review-overdue")["inputs"]["daysPastNext"] == 1
    assert _finding(report, "never-reviewed", "review-overdue")["inputs"]["reason"] == "never-reviewed"
    assert _finding(report, "gap", "ownership-gap")["inputs"]["missing"] == ["ops", "product", "rationale"]
    shop = _finding(report, "shop-b", "unused")["inputs"]
    assert [s["slo"] for s in shop["gatedSiblings"]] == ["shop-a", "shop-d"]
    assert shop["gatedSiblings"][1]["lastGate"] == (AT - timedelta(days=90)).isoformat()


def test_open_debt_and_a_cadence_silence_their_findings(store: tuple[Path, Path, Fleet]) -> None:
    report = _report(store, open_debt=lambda slo: slo == "missing", cadence={"critical": 31})
    found = {(f["slo"], f["rule"]) for f in report["findings"]}
    assert found == {(slo, rule) for slo, rule, _ in EXPECTED} - {
        ("missing", "chronically-missed"),
        ("late", "review-overdue"),
    }
    # a register was read: a miss without debt says so
    report = _report(store, open_debt=lambda slo: False)
    assert _finding(report, "missing", "chronically-missed")["inputs"]["debtRegister"] == "read"


def test_without_a_log_unused_is_not_checked(store: tuple[Path, Path, Fleet]) -> None:
    db, _, fleet = store
    rollups = SqliteRollups(db)
    try:
        reader = lambda since, until, names: rollups.read(since=since, until=until, slos=names)  # noqa: E731
        report = stale_report(fleet, reader, AT)
    finally:
        rollups.close()
    assert not [f for f in report["findings"] if f["rule"] == "unused"]
    assert {"slo": None, "tier": None, "rule": "unused", "reason": "no decision log was given"} in report["notChecked"]
    assert report["decisionLog"] is None


def test_weeks_and_quarters_are_cut_as_the_reports_cut_them() -> None:
    # AT is a Wednesday of ISO week 2026-W02 (1 January 2026 is a Thursday: W01 began on 29 December)
    weekly = Window.model_validate({"calendar": "week", "timeZone": "UTC"})
    assert [p.label for p in last_periods(weekly, AT)] == ["2025-W51", "2025-W52", "2026-W01"]
    quarterly = Window.model_validate({"calendar": "quarter"})
    assert [p.label for p in last_periods(quarterly, AT)] == ["2025-Q2", "2025-Q3", "2025-Q4"]
    assert period_holding(quarterly, date(2025, 8, 1)).label == "2025-Q3"


@pytest.mark.parametrize(
    ("text", "words"),
    [("urgent=3d", "not a tier"), ("critical=36h", "whole number of days"), ("critical", "TIER=DURATION"),
     ("low=1d,low=2d", "twice"), ("high=soon", "not a duration")],
)  # fmt: skip
def test_a_bad_cadence_is_refused_by_name(text: str, words: str) -> None:
    with pytest.raises(StaleOptionError, match=words):
        parse_cadence(text)
    assert parse_cadence("critical=2w, low=1y") == DEFAULT_CADENCE | {"critical": 14, "low": 365}


# --- the command ------------------------


def _run(*args: str | Path, out: io.StringIO | None = None) -> Result:
    return run_govern("stale", *args, out=out)


def test_the_command_prints_the_builders_json(store: tuple[Path, Path, Fleet]) -> None:
    db, declarations, _ = store
    result = _run(declarations, "--db", db, "--at", AT.isoformat(), "--format", "json")
    assert result.exit_code == 0, result.output
    # the command reads the register in the declarations' files (here none: every finding says it was read) and the
    # support feedback in the store (here none: blind spots checked, none found)
    expected = _report(store, open_debt=open_debt_lookup([]), blind_spots=[])
    assert json.loads(result.stdout) == json.loads(json.dumps(expected))


def test_the_table_names_every_finding(store: tuple[Path, Path, Fleet]) -> None:
    db, declarations, _ = store
    out = io.StringIO()
    result = _run(declarations, "--db", db, "--at", AT.isoformat(), "--cadence", "critical=31d", out=out)
    assert result.exit_code == 0, result.output
    lines = out.getvalue().splitlines()
    for slo, rule, action in EXPECTED - {("late", "review-overdue", "review")}:
        assert any(slo in line.split() and rule in line and action in line for line in lines), (slo, rule)
    assert not any("late" in line.split() and "review-overdue" in line for line in lines)
    assert f"{len(EXPECTED) - 1} findings" in out.getvalue()
    assert "not checked: silent no-data" not in out.getvalue() and "not checked: silent usage-drift" in out.getvalue()


def test_the_command_refuses_bad_options_and_a_missing_store(store: tuple[Path, Path, Fleet], tmp_path: Path) -> None:
    db, declarations, _ = store
    refused = _run(declarations, "--db", db, "--cadence", "urgent=3d")
    assert refused.exit_code == 2 and "--cadence" in refused.output and "urgent" in refused.output
    refused = _run(declarations, "--db", db, "--format", "html")
    assert refused.exit_code == 2 and "--format" in refused.output
    refused = _run(declarations, "--db", db, "--at", "yesterday-ish")
    assert refused.exit_code == 2 and "--at" in refused.output
    missing = _run(declarations, "--db", tmp_path / "none.db")
    assert missing.exit_code == 1 and "no rollups at" in missing.output
    assert not (tmp_path / "none.db").exists()


def test_the_command_reads_blind_spots_from_the_stores_support_feedback(
    store: tuple[Path, Path, Fleet], tmp_path: Path
) -> None:
    """A report of `late`'s service that monitoring missed, started within 90 days of `AT`, is a blind-spot finding;
    one started before the span is not (each report counts in the span its problem started)."""
    shared, declarations, _ = store
    db = tmp_path / "sloplane.db"
    shutil.copy(shared, db)  # the module's store stays as the other tests read it
    with SqliteFeedback(db) as feedback:
        for began in (AT - timedelta(days=10), AT - timedelta(days=100)):
            hour, later = began + timedelta(hours=1), began + timedelta(hours=2)
            fields = {"impact": "slow", "ticket": "T-9", "reported_by": "support", "received_at": later}
            report = checked_report(service="late", start=began, end=hour, **fields)
            feedback.add(report, {"verdict": "missed", "blindSpot": "measured-fine"})
    result = _run(declarations, "--db", db, "--at", AT.isoformat(), "--format", "json")
    assert result.exit_code == 0, result.output
    (spot,) = [f for f in json.loads(result.stdout)["findings"] if f["rule"] == "blind-spot"]
    assert (spot["service"], spot["action"], spot["inputs"]["missed"]) == ("late", "add-sli", 1)
    out = io.StringIO()
    assert _run(declarations, "--db", db, "--at", AT.isoformat(), out=out).exit_code == 0
    assert "service late" in out.getvalue()
