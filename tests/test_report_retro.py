"""The deployment retrospective from gates really run against a real Prometheus with known history.

Nine and a half days of one-minute history for two services. `checkout` (unstaged, no runbook, no routing) is
released twice: v2 (pipeline deploy-7) errs at 2% for two hours, its gates fail, a break-glass lets it on, a
last gate fails and it is rolled back — its hours use about a quarter of the 7-day budget (a postmortem is
required); v3 (deploy-8) errs for half an hour and is rolled back after 20 minutes — about 6% (offered). `search`
(canary and production stages, a runbook and routes) is released as s5 in the same pipeline run as v2: its
thin canary cannot be compared at first, then both stages suffer the same outage (background, inconclusive).
The gates are asked through the evaluator with its clock moved (live decisions, as a pipeline's), the rows
rolled up from the same Prometheus, and every number is checked against `expected_counts` of the traffic.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sloplane.core.budget import burn_rate_alerts
from sloplane.evaluator.history.periods import month, quarter
from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.history.retro import RetroError, compliance_period, retro_report
from sloplane.evaluator.history.retro_files import retro_file, retro_postmortem_markdown
from sloplane.evaluator.history.retro_postmortem import TOPICS
from sloplane.evaluator.history.rollup import roll_up
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import BreakGlass, GateRequest
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, expected_counts, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.browser import open_page, screenshot
from tests.conftest import CliResult, run_cli
from tests.evaluator_data import load_fleet

pytest_plugins = ("tests.browser",)

START = datetime(2025, 6, 1, tzinfo=UTC)
END = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
AT = END
BASE = 0.0001
RATE = 600.0
"""Events per minute of every stable stage."""
V2 = (datetime(2025, 6, 8, 9, 0, tzinfo=UTC), datetime(2025, 6, 8, 11, 0, tzinfo=UTC))
"""checkout v2 errs at 2% between these instants."""
V3 = (datetime(2025, 6, 9, 9, 0, tzinfo=UTC), datetime(2025, 6, 9, 9, 30, tzinfo=UTC))
OUTAGE = (datetime(2025, 6, 8, 9, 30, tzinfo=UTC), datetime(2025, 6, 8, 10, 0, tzinfo=UTC))
"""Both stages of search fail 20% of requests: a shared problem, not the release."""
CANARY_GROWS = datetime(2025, 6, 8, 9, 20, tzinfo=UTC)
"""search's canary takes 5 requests a minute until here (too few to compare), 60 after."""
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
BREAK_GLASS_BY = "dana"
OWNER = "Erin Example"

FLEET = textwrap.dedent(
    f"""\
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {{name: checkout}}
    spec:
      service: checkout
      owners: {{team: payments, dev: {{name: {OWNER}, contact: erin@example.com}}}}
      objective: 99.9
      window: 7d
      sli: {{http: {{metric: http_requests_total, selector: {{job: checkout}}}}}}
    ---
    apiVersion: sloplane.dev/v1alpha1
    kind: ServiceLevelObjective
    metadata: {{name: search}}
    spec:
      service: search
      owners: {{team: discovery}}
      objective: 99.9
      window: 7d
      sli: {{http: {{metric: http_requests_total, selector: {{job: search}}}}}}
      stages:
        - {{name: canary, selector: {{stage: canary}}}}
        - {{name: production, selector: {{stage: stable}}}}
      alerting:
        runbook: https://runbooks.example.com/search
        routing: {{deployment: search-oncall, background: platform-oncall}}
    """
)


def _segments(changes: list[tuple[datetime, float, float]]) -> list[Segment]:
    """Segments from (from, events per minute, error ratio) change points, the last running to END."""
    bounds = [when for when, _, _ in changes[1:]] + [END]
    return [Segment(until - when, rate, ratio) for (when, rate, ratio), until in zip(changes, bounds, strict=True)]


CHECKOUT = http_traffic(
    _segments(
        [(START, RATE, BASE), (V2[0], RATE, 0.02), (V2[1], RATE, BASE), (V3[0], RATE, 0.02), (V3[1], RATE, BASE)]
    ),
    start=START,
    labels={"job": "checkout"},
)
SEARCH = http_traffic(
    _segments([(START, RATE, BASE), (OUTAGE[0], RATE, 0.2), (OUTAGE[1], RATE, BASE)]),
    start=START,
    labels={"job": "search", "stage": "stable"},
)
CANARY = http_traffic(
    _segments([(START, 5.0, BASE), (CANARY_GROWS, 60.0, BASE), (OUTAGE[0], 60.0, 0.2), (OUTAGE[1], 60.0, BASE)]),
    start=START,
    labels={"job": "search", "stage": "canary"},
)


class Clock:
    """The evaluator's "now", moved by hand: gates asked at it are live, as a pipeline's are."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


GATES: list[tuple[datetime, dict[str, Any]]] = [
    (V2[0] + timedelta(minutes=5), {"slo": "checkout", "revision": "v2", "pipeline": "deploy-7"}),
    (V2[0] + timedelta(minutes=10), {"slo": "search", "stage": "canary", "revision": "s5", "pipeline": "deploy-7"}),
    (V2[0] + timedelta(minutes=25), {"slo": "checkout", "revision": "v2", "pipeline": "deploy-7"}),
    (
        V2[0] + timedelta(minutes=35),
        {
            "slo": "checkout",
            "revision": "v2",
            "pipeline": "deploy-7",
            "break_glass": BreakGlass("promo launch: roll forward with the fix", BREAK_GLASS_BY),
        },
    ),
    (V2[0] + timedelta(minutes=45), {"slo": "search", "stage": "canary", "revision": "s5", "pipeline": "deploy-7"}),
    (V2[0] + timedelta(minutes=75), {"slo": "search", "stage": "production", "revision": "s5", "pipeline": "deploy-7"}),
    (V2[1] - timedelta(minutes=5), {"slo": "checkout", "revision": "v2", "pipeline": "deploy-7"}),
    (V3[0] + timedelta(minutes=5), {"slo": "checkout", "revision": "v3", "pipeline": "deploy-8"}),
    (V3[0] + timedelta(minutes=15), {"slo": "checkout", "revision": "v3", "pipeline": "deploy-8"}),
]
"""When each gate is asked, and what about."""
REPLAY = (V3[0] + timedelta(minutes=60), {"slo": "checkout", "revision": "v3", "at": V3[0] + timedelta(minutes=10)})
"""A back-test of v3 asked later: recorded, never part of the release."""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), FLEET)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), [CHECKOUT, SEARCH, CANARY]) as sandbox:
        yield sandbox.url


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet, prometheus: str) -> Path:
    """One SQLite file with the gates' decisions (ids numbered, so the golden files are stable) and the rows."""
    db = tmp_path_factory.mktemp("db") / "decisions.db"
    numbers = itertools.count(1)
    clock = Clock()
    with pytest.MonkeyPatch.context() as patch, SqliteDecisionLog(db) as log:
        numbered = SimpleNamespace(uuid4=lambda: SimpleNamespace(hex=f"d{next(numbers):03d}"))
        patch.setattr("sloplane.evaluator.service.uuid", numbered)
        evaluator = Evaluator(fleet, PrometheusBackend(prometheus), log, clock=clock)
        for when, fields in [*GATES, REPLAY]:
            clock.now = when
            evaluator.gate(GateRequest(**fields))
    store = SqliteRollups(db)
    try:
        store.write(roll_up(fleet, PrometheusBackend(prometheus), START + HOUR, END).rows, AT)
    finally:
        store.close()
    return db


def _report(fleet: Fleet, database: Path, **selector: str) -> dict[str, Any]:
    store = SqliteRollups(database)
    try:
        with SqliteDecisionLog(database) as log:
            return retro_report(
                fleet, log, lambda since, until, slos: store.read(since=since, until=until, slos=slos), AT, **selector
            )
    finally:
        store.close()


@pytest.fixture(scope="module")
def reports(fleet: Fleet, database: Path) -> dict[str, dict[str, Any]]:
    """The retro of each revision, and of pipeline run deploy-7."""
    found = {revision: _report(fleet, database, revision=revision) for revision in ("v2", "v3", "s5")}
    return {**found, "deploy-7": _report(fleet, database, pipeline="deploy-7")}


@pytest.fixture(scope="module")
def recorded(database: Path) -> list[dict[str, Any]]:
    """Every decision the test wrote, as the log keeps it."""
    with SqliteDecisionLog(database) as log:
        return log.query(limit=100)


def _release(report: dict[str, Any], service: str) -> dict[str, Any]:
    (found,) = [release for release in report["releases"] if release["service"] == service]
    return found


def _close(actual: object, expected: float) -> bool:
    return isinstance(actual, float) and abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))


def _hours(traffic: HttpTraffic, first: datetime, hours: int) -> tuple[float, float]:
    """(bad, total) events of `hours` whole hours from `first`, from the segments."""
    return expected_counts(traffic, first + hours * HOUR, hours * HOUR)


def _check_budget(slo: dict[str, Any], traffic: HttpTraffic, first: datetime, hours: int, background: list[datetime]):
    """The release's rows, the background's and the period's, each against the hand computation."""
    bad, total = _hours(traffic, first, hours)
    assert slo["deployment"]["hours"] == hours and slo["deployment"]["start"] == first.isoformat()
    assert _close(slo["deployment"]["badEvents"], bad) and _close(slo["deployment"]["events"], total)
    background_bad = sum(_hours(traffic, day, 1)[0] for day in background)
    background_total = sum(_hours(traffic, day, 1)[1] for day in background)
    assert slo["background"]["hours"] == len(background)
    assert _close(slo["background"]["badEvents"], background_bad)
    assert _close(slo["background"]["events"], background_total)
    assert _close(slo["excessBadEvents"], bad - background_bad / background_total * total)
    end = datetime.fromisoformat(slo["period"]["end"])
    last_row = end.replace(minute=0)  # the 7-day window back from the release's end: 168 rows, to its hour
    period_bad, period_total = _hours(traffic, last_row - 167 * HOUR, 168)
    assert slo["period"]["hoursWithData"] == slo["period"]["hours"] == 168
    assert _close(slo["period"]["events"], period_total)
    allowed = 0.001 * period_total
    assert _close(slo["period"]["allowedBadEvents"], allowed)
    assert _close(slo["budgetShare"], bad / allowed)
    assert period_bad > 0
    return bad / allowed


def _release_hours(first_gate: datetime, last_gate: datetime) -> tuple[datetime, int]:
    """The whole hours overlapping [first gate − the 10-minute analysis window, last gate]."""
    start = (first_gate - timedelta(minutes=10)).replace(minute=0)
    return start, int((last_gate - start) // HOUR) + 1


def test_a_release_that_used_a_quarter_of_the_budget_requires_a_postmortem(reports: dict[str, Any]) -> None:
    release = _release(reports["v2"], "checkout")
    first, hours = _release_hours(V2[0] + timedelta(minutes=5), V2[1] - timedelta(minutes=5))
    background = [first + hour * HOUR - days * DAY for days in range(1, 8) for hour in range(hours)]
    share = _check_budget(release["slos"][0], CHECKOUT, first, hours, background)
    assert share >= 0.2 and release["budgetShare"] == release["slos"][0]["budgetShare"]
    assert release["postmortem"]["required"] is True and reports["v2"]["summary"]["postmortemRequired"] is True
    assert "at least 20%" in release["postmortem"]["why"]


def test_a_smaller_release_is_offered_a_draft_and_its_background_leaves_the_other_release_out(
    reports: dict[str, Any],
) -> None:
    release = _release(reports["v3"], "checkout")
    first, hours = _release_hours(V3[0] + timedelta(minutes=5), V3[0] + timedelta(minutes=15))
    v2_first, v2_count = _release_hours(V2[0] + timedelta(minutes=5), V2[1] - timedelta(minutes=5))
    v2_hours = [v2_first + hour * HOUR for hour in range(v2_count)]  # the rows overlapping v2's window
    background = [first + hour * HOUR - days * DAY for days in range(1, 8) for hour in range(hours)]
    background = [start for start in background if start not in v2_hours]
    assert len(background) == 7 * hours - 2
    share = _check_budget(release["slos"][0], CHECKOUT, first, hours, background)
    assert _close(release["slos"][0]["background"]["errorRatio"], BASE), "v2's 2% hours are not background"
    assert share < 0.2 and release["postmortem"]["required"] is False
    assert "offered, not required" in release["postmortem"]["why"]
    assert reports["v3"]["notes"] == ["1 replayed decision(s) (a request with `at`: back-testing) left out"]
    assert release["decisions"] == 2, "the replay is not part of the release"


def test_rollbacks_and_break_glass_are_the_recorded_ones(
    reports: dict[str, Any], recorded: list[dict[str, Any]]
) -> None:
    for revision in ("v2", "v3"):
        release = _release(reports[revision], "checkout")
        mine = sorted(
            (r for r in recorded if r["request"]["revision"] == revision and r["request"].get("at") is None),
            key=lambda r: r["decidedAt"],
        )
        assert [entry["decisionId"] for entry in release["timeline"]] == [r["id"] for r in mine]
        fails = [r["id"] for r in mine if r["decision"] == "fail"]
        assert [entry["decisionId"] for entry in release["rollbacks"]] == fails and fails
        assert release["rolledBack"] is (mine[-1]["decision"] == "fail") is True
    release = _release(reports["v2"], "checkout")
    (override,) = [r for r in recorded if r["request"].get("breakGlass")]
    (entry,) = release["breakGlass"]
    assert entry["decisionId"] == override["id"] and entry["outcome"] == "pass"
    assert entry["breakGlass"] == {"reason": override["request"]["breakGlass"]["reason"], "overridden": "fail"}
    assert reports["v2"]["summary"]["breakGlass"] == 1
    assert BREAK_GLASS_BY in json.dumps(override), "the log keeps the name"
    for report in reports.values():
        for text in (json.dumps(report), retro_file(report, "html"), retro_postmortem_markdown(report)):
            assert BREAK_GLASS_BY not in text, "the retro does not"


def _theory(ratio: float) -> float:
    """The fastest enabled alert's detection time (seconds) at a constant error ratio, by hand from the table:
    the long window's ratio, error ratio × t ÷ long, passes factor × (1 − objective) at t = long × that ÷ ratio."""
    return min(
        alert.long_window.total_seconds() * alert.factor * 0.001 / ratio
        for alert in burn_rate_alerts(timedelta(days=7))
        if alert.factor * 0.001 < ratio
    )


@pytest.mark.parametrize(
    ("revision", "failed_at", "late"),
    [("v2", V2[0] + timedelta(minutes=25), True), ("v3", V3[0] + timedelta(minutes=15), False)],
)
def test_detection_is_the_first_failing_gate_against_the_theory(
    reports: dict[str, Any], revision: str, failed_at: datetime, late: bool
) -> None:
    found = _release(reports[revision], "checkout")["detection"]
    start = datetime.fromisoformat(found["releaseStart"])
    assert found["by"] == "failing-gate" and found["detectedAt"] == failed_at.isoformat()
    assert found["measured"] == (failed_at - start).total_seconds()
    assert _close(found["errorRatio"], 0.02), "2% over the analysis window when it failed"
    assert _close(found["fastest"], _theory(0.02))
    assert found["late"] is late is (found["measured"] > _theory(0.02) + 600)


def test_a_breach_both_stages_share_is_attributed_to_the_background(reports: dict[str, Any]) -> None:
    release = _release(reports["s5"], "search")
    assert release["attribution"]["background"] == 1 and release["attribution"]["canary-low-traffic"] == 1
    assert [entry["outcome"] for entry in release["timeline"]] == ["inconclusive", "inconclusive", "pass"]
    assert release["rollbacks"] == [] and release["rolledBack"] is False
    first, hours = _release_hours(V2[0] + timedelta(minutes=10), V2[0] + timedelta(minutes=75))
    background = [first + hour * HOUR - days * DAY for days in range(1, 8) for hour in range(hours)]
    assert _check_budget(release["slos"][0], SEARCH, first, hours, background) >= 0.2
    found = release["detection"]
    assert found["by"] == "burn-above-factor" and found["stage"] == "canary"
    assert _close(found["errorRatio"], 0.2) and _close(found["fastest"], _theory(0.2)) and found["late"] is True


def test_a_pipeline_run_gathers_its_releases(reports: dict[str, Any]) -> None:
    pipeline = reports["deploy-7"]
    assert pipeline["selector"] == {"pipeline": "deploy-7"}
    assert [(r["service"], r["release"]) for r in pipeline["releases"]] == [("checkout", "v2"), ("search", "s5")]
    assert _release(pipeline, "checkout") == _release(reports["v2"], "checkout")
    assert _release(pipeline, "search") == _release(reports["s5"], "search")
    assert pipeline["summary"]["decisions"] == sum(1 for _, fields in GATES if fields.get("pipeline") == "deploy-7")


EXPECTED_TOPICS = {
    # v2: found 30 min in while the alerts allow ~10 (+10 of slack); unstaged and over 20%; deploy-7 also gated s5;
    # deployment breaches without a declared route; no runbook, and a break-glass
    "v2": ["detection", "canary-size", "batch-size", "routing", "runbook", "runbook"],
    # v3: found in time, under 20%, alone in deploy-8: only the missing route and runbook
    "v3": ["routing", "runbook"],
    # s5: burn seen late; a thin canary; deploy-7 also gated v2; the baseline breaching too; routes and runbook declared
    "s5": ["detection", "canary-size", "batch-size", "undeclared-dependency"],
}
PERSONAL = re.compile(
    r"\b(who|whom|whose|person|people|someone|somebody|engineer|operator|blame|fault|mistake)\b", re.IGNORECASE
)


@pytest.mark.parametrize("revision", ["v2", "v3", "s5"])
def test_each_prompt_is_about_a_process_and_says_which_fact_raised_it(
    reports: dict[str, Any], fleet: Fleet, revision: str
) -> None:
    (release,) = reports[revision]["releases"]
    prompts = release["postmortem"]["prompts"]
    assert [prompt["topic"] for prompt in prompts] == EXPECTED_TOPICS[revision]
    assert {prompt["topic"] for prompt in prompts} <= set(TOPICS)
    for prompt in prompts:
        text = f"{prompt['question']} {prompt['because']}"
        assert not PERSONAL.search(text), text
        assert BREAK_GLASS_BY not in text and OWNER not in text and "Erin" not in text
        assert prompt["because"], "every prompt states its fact"
    facts = " ".join(prompt["because"] for prompt in prompts)
    if "batch-size" in EXPECTED_TOPICS[revision]:
        assert "deploy-7" in facts
    if "routing" in EXPECTED_TOPICS[revision]:
        assert fleet["checkout"].spec.alerting.routing.deployment is None and "alerting.routing.deployment" in facts


def test_a_revision_without_decisions_is_said_so(fleet: Fleet, database: Path) -> None:
    with pytest.raises(RetroError, match="no live gate decisions about revision 'v9'"):
        _report(fleet, database, revision="v9")
    with pytest.raises(ValueError, match="exactly one"):
        _report(fleet, database, revision="v2", pipeline="deploy-7")


def test_the_same_inputs_give_the_same_report(fleet: Fleet, database: Path, reports: dict[str, Any]) -> None:
    assert _report(fleet, database, revision="v2") == reports["v2"]
    assert reports["v2"]["contentHash"] != reports["v3"]["contentHash"]


# --- the files: golden, reviewed like code --------------------------------------------------------------------

GOLDEN = Path(__file__).parent / "golden" / "reports"
UPDATE = os.environ.get("SLOPLANE_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("output_format", [*FORMATS, "md"])
def test_each_format_is_its_golden_file(reports: dict[str, Any], output_format: str) -> None:
    """Review a change with `SLOPLANE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report_retro.py` and `git diff`."""
    report = reports["deploy-7"]
    written = retro_postmortem_markdown(report) if output_format == "md" else retro_file(report, output_format)
    golden = GOLDEN / f"retro-deploy-7.{output_format}"
    if UPDATE:
        golden.write_text(written, encoding="utf-8")
    assert written == golden.read_text(encoding="utf-8")


def test_the_csv_is_the_timeline_with_the_json_numbers(reports: dict[str, Any]) -> None:
    report = reports["deploy-7"]
    rows = list(csv.DictReader(io.StringIO(retro_file(report, "csv"))))
    entries = [entry for release in report["releases"] for entry in release["timeline"]]
    assert [row["decision_id"] for row in rows] == [entry["decisionId"] for entry in entries]
    for row, entry in zip(rows, entries, strict=True):
        assert row["outcome"] == entry["outcome"] and row["reasons"].split() == [r["code"] for r in entry["reasons"]]
        assert row["budget_remaining"] == str(entry["budgetRemaining"])


def test_the_draft_escapes_what_the_log_says(reports: dict[str, Any]) -> None:
    report = json.loads(json.dumps(reports["v2"]))
    report["releases"][0]["breakGlass"][0]["breakGlass"]["reason"] = "| <b>x</b> [link](http://evil)"
    report["releases"][0]["postmortem"]["prompts"][-1]["because"] = "| <b>x</b> [link](http://evil)"
    draft = retro_postmortem_markdown(report)
    assert "<b>" not in draft and "[link](" not in draft and r"\| \<b\>x\</b\> \[link\](http://evil)" in draft
    page = retro_file(report, "html")
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


# --- `sloplane report retro`, as a user runs it, and the page in a real browser -------------------------------


def _command(*arguments: str | Path) -> CliResult:
    return run_cli("report", "retro", *arguments)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, database: Path) -> list[str | Path]:
    """The declarations and the store, as the command's first arguments."""
    folder = tmp_path_factory.mktemp("declarations")
    (folder / "fleet.yaml").write_text(FLEET)
    return [folder, "--db", database]


def test_the_command_writes_the_report_and_the_draft(
    stored: list[str | Path], reports: dict[str, Any], tmp_path: Path
) -> None:
    out, draft = tmp_path / "retro.json", tmp_path / "postmortem.md"
    common = [*stored, "--at", AT.isoformat()]
    result = _command(*common, "--revision", "v2", "--format", "json", "--out", out, "--postmortem", draft)
    assert result.code == 0, result.stderr
    assert json.loads(out.read_text()) == reports["v2"]
    assert draft.read_text() == retro_postmortem_markdown(reports["v2"])
    assert "a postmortem is required" in result.stderr
    offered = _command(*common, "--revision", "v3", "--format", "csv", "--postmortem", tmp_path / "v3.md")
    assert offered.code == 0 and "a postmortem is offered, not required" in offered.stderr
    assert offered.stdout == retro_file(reports["v3"], "csv")


@pytest.mark.parametrize(
    "case",
    [
        ([], 2, "give exactly one of revision R or pipeline P"),
        (["--revision", "v2", "--pipeline", "deploy-7"], 2, "give exactly one of revision R or pipeline P"),
        (["--revision", "v2", "--format", "pdf"], 2, "give one of html, csv, json"),
        (["--revision", "v9"], 1, "no live gate decisions about revision 'v9'"),
        (["--pipeline", "deploy-9"], 1, "no live gate decisions about pipeline 'deploy-9'"),
    ],
)
def test_bad_requests_say_why_and_write_nothing(
    stored: list[str | Path], tmp_path: Path, case: tuple[list[str], int, str]
) -> None:
    arguments, code, message = case
    result = _command(*stored, "--out", tmp_path / "retro.html", *arguments)
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # rich's error box, unwrapped
    assert result.code == code and message in said, result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_the_page_reads_in_a_browser_with_and_without_javascript(
    stored: list[str | Path],
    reports: dict[str, Any],
    tmp_path: Path,
    browser: Any,
    browser_without_javascript: Any,
) -> None:
    out = tmp_path / "retro.html"
    result = _command(*stored, "--pipeline", "deploy-7", "--at", AT.isoformat(), "--out", out)
    assert result.code == 0, result.stderr
    report = reports["deploy-7"]
    page = open_page(browser, out)
    assert page.problems() == [] and page.count("script") == 0
    assert page.count("section.release") == 2
    assert page.count("tr.decision") == report["summary"]["decisions"]
    hours = sum(len(slo["hourly"]) for release in report["releases"] for slo in release["slos"])
    assert page.count("svg.chart rect") == hours, "a bar per hour around each release"
    deployed = sum(h["deployment"] for release in report["releases"] for slo in release["slos"] for h in slo["hourly"])
    assert page.count("svg.chart rect.deploy") == deployed and set(page.colours("svg.chart rect.deploy")) == {"#8250df"}
    assert page.count("li.prompt") == sum(len(r["postmortem"]["prompts"]) for r in report["releases"])
    screenshot(browser, "retro-deploy-7")
    plain = open_page(browser_without_javascript, out).text()
    assert "Postmortem required" in plain and "promo launch: roll forward with the fix" in plain


@pytest.mark.parametrize(
    ("window", "end", "expected"),
    [
        ("{calendar: month, timeZone: Europe/Berlin}", datetime(2025, 10, 31, 23, 30, tzinfo=UTC), "2025-11"),
        ("{calendar: month, timeZone: Europe/Berlin}", datetime(2025, 10, 31, 22, 30, tzinfo=UTC), "2025-10"),
        ("{calendar: quarter, timeZone: UTC}", datetime(2025, 12, 31, 23, 59, tzinfo=UTC), "2025-Q4"),
    ],
)
def test_a_calendar_slos_budget_is_its_period_holding_the_release(
    tmp_path: Path, window: str, end: datetime, expected: str
) -> None:
    """The period a release's share is taken of: the calendar month or quarter of the SLO's zone holding its end."""
    text = FLEET.split("---\n")[0].replace("window: 7d", f"window: {window}")
    declaration = load_fleet(tmp_path, text)["checkout"]
    zone = declaration.spec.window.time_zone or "UTC"
    period = (quarter if "Q" in expected else month)(expected, zone)
    assert compliance_period(declaration, end) == (period.start, period.end)
