"""The platform report from decisions recorded by really running gates against a real Prometheus while a
dependency burns: every number counted here from the decisions the gates returned and wrote; its files (golden),
its command's refusals, and the page in a real browser.

`payments` fails completely for an hour. `frontend` and `mobile` declare it a dependency and err a little at the
same time (over their `maxBurnRate`): their gates are held (`dependency`: inconclusive rather than a rollback)
until their own errors stop. `search` errs too but depends on nothing: a plain fail, held by no-one.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sloplane.evaluator.history.oncall_files import platform_file
from sloplane.evaluator.history.platform import PlatformError, check_service, platform_report
from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Decision, GateRequest, Outcome
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.sandbox import PrometheusSandbox, Segment, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.browser import open_page
from tests.conftest import CliResult, run_cli
from tests.evaluator_data import load_fleet

pytest_plugins = ("tests.browser",)

GOLDEN = Path(__file__).parent / "golden" / "reports"
UPDATE = os.environ.get("SLOPLANE_UPDATE_GOLDEN") == "1"

END = datetime(2024, 5, 1, tzinfo=UTC)
START = END - timedelta(hours=26)
OUTAGE = END - timedelta(hours=4)
"""`payments` fails every request for an hour from here."""
UNTIL = OUTAGE + timedelta(hours=2)
MINUTES = timedelta(minutes=1)


def _slo(name: str, service: str, objective: float, gate: str = "") -> str:
    body = (
        f"service: {service}\nowners: {{team: {service}-team}}\nobjective: {objective}\nwindow: 30d\n"
        f"sli: {{http: {{metric: http_requests_total, selector: {{job: {name}}}}}}}\n{gate}"
    )
    header = f"apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: {name}}}\nspec:\n"
    return header + textwrap.indent(body, "  ")


DEPENDENT = "gate: {dependencies: [payments], maxBurnRate: 2}\n"
FLEET = "---\n".join(
    [
        _slo("payments", "payments", 99.9),
        _slo("frontend", "web", 99, DEPENDENT),
        _slo("mobile", "mobile", 99, DEPENDENT),
        _slo("search", "search", 99, "gate: {maxBurnRate: 2}\n"),
    ]
)

ERRORS = {  # job: (from, for, error ratio) over a clean 0.0005
    "payments": (OUTAGE, timedelta(hours=1), 1.0),
    "frontend": (OUTAGE, timedelta(hours=1), 0.05),
    "mobile": (OUTAGE + timedelta(minutes=10), timedelta(minutes=30), 0.05),
    "search": (OUTAGE, timedelta(hours=1), 0.05),
}


def _traffic(job: str) -> Any:
    start, length, ratio = ERRORS[job]
    segments = [
        Segment(start - START, 600.0, 0.0005),
        Segment(length, 600.0, ratio),
        Segment(END - start - length, 600.0, 0.0005),
    ]
    return http_traffic(segments, start=START, labels={"job": job})


GATES: list[tuple[timedelta, str, str | None]] = [
    # (minutes after the outage began, SLO, revision): the gates each pipeline asked, in order
    (timedelta(minutes=20), "frontend", "r1"),
    (timedelta(minutes=20), "mobile", "m1"),
    (timedelta(minutes=20), "search", "s1"),
    (timedelta(minutes=20), "payments", "p1"),
    (timedelta(minutes=30), "frontend", "r1"),
    (timedelta(minutes=30), "frontend", "r2"),
    (timedelta(minutes=50), "mobile", "m1"),
    (timedelta(minutes=75), "frontend", "r1"),
    (timedelta(minutes=75), "payments", "p1"),
]


@dataclass(frozen=True)
class Recorded:
    """The log the gates wrote, and the decisions they returned (what the hand counts start from)."""

    path: Path
    decisions: list[Decision]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), FLEET)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet) -> Iterator[Recorded]:
    folder = tmp_path_factory.mktemp("platform")
    with PrometheusSandbox(folder / "prometheus", [_traffic(job) for job in ERRORS]) as sandbox:
        now = [OUTAGE]
        log = SqliteDecisionLog(folder / "decisions.db")
        evaluator = Evaluator(fleet, PrometheusBackend(sandbox.url), log, clock=lambda: now[0])
        decisions = []
        for after, slo, revision in GATES:
            now[0] = OUTAGE + after
            (decision,) = evaluator.gate(GateRequest(slo=slo, revision=revision, pipeline=f"{slo}-ci")).decisions
            decisions.append(decision)
        now[0] = OUTAGE + timedelta(minutes=80)  # a back-test of the outage: held, but held nothing back
        replay = GateRequest(slo="frontend", revision="r9", at=OUTAGE + timedelta(minutes=20))
        (replayed,) = evaluator.gate(replay).decisions
        assert _held(replayed), "the replay would count, were replays not left out"
        log.close()
        yield Recorded(folder / "decisions.db", decisions)


def _held(decision: Decision) -> bool:
    return any(reason.code == "dependency" and reason.values["dependency"] == "payments" for reason in decision.reasons)


def _report(fleet: Fleet, recorded: Recorded, since: datetime | None = OUTAGE) -> dict[str, Any]:
    log = SqliteDecisionLog(recorded.path)
    try:
        return platform_report(fleet, log, "payments", since=since, until=UNTIL, at=UNTIL)
    finally:
        log.close()


@pytest.fixture(scope="module")
def report(fleet: Fleet, recorded: Recorded) -> dict[str, Any]:
    return _report(fleet, recorded)


def _consumer(report: dict[str, Any], slo: str) -> dict[str, Any]:
    (found,) = [line for line in report["consumers"] if line["slo"] == slo]
    return found


def test_the_gates_did_what_the_scenario_says(recorded: Recorded) -> None:
    """The fixture's premise, from the decisions themselves: what is held, what fails, what passes."""
    outcomes = [(d.slo, d.request.revision, d.outcome, _held(d)) for d in recorded.decisions]
    assert outcomes == [
        ("frontend", "r1", Outcome.INCONCLUSIVE, True),
        ("mobile", "m1", Outcome.INCONCLUSIVE, True),
        ("search", "s1", Outcome.FAIL, False),
        ("payments", "p1", Outcome.FAIL, False),
        ("frontend", "r1", Outcome.INCONCLUSIVE, True),
        ("frontend", "r2", Outcome.INCONCLUSIVE, True),
        ("mobile", "m1", Outcome.PASS, False),
        ("frontend", "r1", Outcome.PASS, False),
        ("payments", "p1", Outcome.FAIL, False),
    ]


def test_each_consumer_counted_from_the_records(report: dict[str, Any], recorded: Recorded) -> None:
    for slo in ("frontend", "mobile"):
        mine = [d for d in recorded.decisions if d.slo == slo]
        held = [d for d in mine if _held(d)]
        line = _consumer(report, slo)
        assert line["decisionsHeld"] == len(held)
        assert line["revisionsHeld"] == len({d.request.revision for d in held})
        assert line["firstHeld"] == min(d.decided_at for d in held).isoformat()
        assert line["lastHeld"] == max(d.decided_at for d in held).isoformat()
        minutes = 0.0
        for revision in {d.request.revision for d in held}:
            first = min(d.decided_at for d in held if d.request.revision == revision)
            passes = [d.decided_at for d in mine if d.request.revision == revision and d.outcome is Outcome.PASS]
            minutes += ((min(passes) if passes else UNTIL) - first) / MINUTES
        assert line["minutesHeld"] == minutes
        assert line["dependencies"] == ["payments"] and line["service"] == recorded_service(slo)
    assert [line["slo"] for line in report["consumers"]] == ["frontend", "mobile"], "most time held first"
    assert report["totals"]["decisionsHeld"] == sum(1 for d in recorded.decisions if _held(d))


def recorded_service(slo: str) -> str:
    return {"frontend": "web", "mobile": "mobile"}[slo]


def test_holds_end_at_a_pass_or_at_the_end(report: dict[str, Any], recorded: Recorded) -> None:
    holds = {hold["release"]: hold for hold in _consumer(report, "frontend")["holds"]}
    r1_pass = next(d.decided_at for d in recorded.decisions if d.request.revision == "r1" and d.outcome is Outcome.PASS)
    assert holds["r1"]["passed"] and holds["r1"]["end"] == r1_pass.isoformat()
    assert not holds["r2"]["passed"] and holds["r2"]["end"] == UNTIL.isoformat()
    assert holds["r1"]["decisionsHeld"] == 2 and holds["r2"]["decisionsHeld"] == 1


def test_the_providers_own_gates_meanwhile(report: dict[str, Any], recorded: Recorded) -> None:
    payments = [d for d in recorded.decisions if d.slo == "payments"]
    assert report["provider"] == {
        "decisions": len(payments),
        "outcomes": dict(Counter(d.outcome.value for d in payments)),
    }
    (r1,) = [hold for hold in _consumer(report, "frontend")["holds"] if hold["release"] == "r1"]
    start, end = datetime.fromisoformat(r1["start"]), datetime.fromisoformat(r1["end"])
    during = Counter(d.outcome.value for d in payments if start <= d.decided_at <= end)
    assert r1["providerDecisions"] == dict(during) and sum(during.values()) == 2
    burns = [
        reason.values["burn_rate"]
        for d in recorded.decisions
        if d.slo == "frontend"
        for reason in d.reasons
        if reason.code == "dependency"
    ]
    assert _consumer(report, "frontend")["peakDependencyBurnRate"] == max(burns)


def test_replays_and_other_services_hold_nothing(report: dict[str, Any], fleet: Fleet, recorded: Recorded) -> None:
    assert "r9" not in {hold["release"] for line in report["consumers"] for hold in line["holds"]}
    assert "search" not in {line["slo"] for line in report["consumers"]}
    log = SqliteDecisionLog(recorded.path)
    try:
        other = platform_report(fleet, log, "web", since=None, until=UNTIL, at=UNTIL)
    finally:
        log.close()
    assert other["consumers"] == [] and other["providerSlos"] == ["frontend"]
    assert other["totals"]["decisionsRead"] == len(recorded.decisions), "the replay is not read"


def test_a_span_leaves_out_what_lies_outside(fleet: Fleet, recorded: Recorded) -> None:
    later = _report(fleet, recorded, since=OUTAGE + timedelta(minutes=25))
    frontend = _consumer(later, "frontend")
    assert frontend["decisionsHeld"] == 2 and frontend["firstHeld"] == (OUTAGE + timedelta(minutes=30)).isoformat()
    assert [line["slo"] for line in later["consumers"]] == ["frontend"], "mobile's hold began before"


def test_an_unknown_service_is_named_with_the_closest(fleet: Fleet) -> None:
    with pytest.raises(PlatformError, match="did you mean 'payments'") as raised:
        check_service(fleet, "paymnets")
    assert raised.value.option == "service"


@pytest.mark.parametrize("output_format", FORMATS)
def test_each_format_is_its_golden_file(report: dict[str, Any], output_format: str) -> None:
    """Review a change with `SLOPLANE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report_platform.py` and `git diff`."""
    written = platform_file(report, output_format)
    golden = GOLDEN / f"platform-payments.{output_format}"
    if UPDATE:
        golden.write_text(written, encoding="utf-8")
    assert written == golden.read_text(encoding="utf-8")


def run_report(*args: str | Path) -> CliResult:
    return run_cli("report", "platform", *args)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = tmp_path_factory.mktemp("declarations")
    (found / "fleet.yaml").write_text(FLEET)
    return found


@pytest.fixture(scope="module")
def browsers(browser: Any, browser_without_javascript: Any) -> tuple[Any, Any]:
    return browser, browser_without_javascript


def test_the_command_writes_the_report_and_the_page_reads_in_a_browser(
    folder: Path, recorded: Recorded, report: dict[str, Any], tmp_path: Path, browsers: tuple[Any, Any]
) -> None:
    common = [folder, "--db", recorded.path, "--service", "payments", "--from", OUTAGE.isoformat()]
    common += ["--to", UNTIL.isoformat(), "--at", UNTIL.isoformat()]
    as_json = run_report(*common, "--format", "json")
    assert as_json.code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == json.loads(platform_file(report, "json"))
    page_file = tmp_path / "platform.html"
    assert run_report(*common, "--out", page_file).code == 0
    browser, without_javascript = browsers
    page = open_page(browser, page_file)
    assert page.problems() == [] and page.count("script") == 0
    assert page.count("tr.consumer") == 2 and page.count("svg rect.held") == 2 and page.count("tr.hold") == 3
    page.screenshot("platform")
    assert "not passed by" in open_page(without_javascript, page_file).text()


def test_the_command_refuses_an_unknown_service_and_a_missing_log(folder: Path, tmp_path: Path) -> None:
    unknown = run_report(folder, "--db", tmp_path / "none.db", "--service", "paymnets")
    assert unknown.code == 2 and "--service" in unknown.stderr and "payments" in unknown.stderr
    missing = run_report(folder, "--db", tmp_path / "none.db", "--service", "payments")
    assert missing.code == 1 and "no decision log" in missing.stderr and "Traceback" not in missing.stderr
