"""Impact assessments (`sloplane assess`): every rule of `governance/assessment.py` on constructed inputs with its
near miss — the SLOs reached through dependencies and composites, budget and outage shares, detection times,
overlaps with freezes (recorded and scheduled), incidents and maintenance in a real controls store, the change
failure rate from a real decision log, canary and rollback, approvers, the verdict — every expected number
computed here by hand; then the command against a real Prometheus with known traffic, `--record` into the
assessments store and the gate's `coverage` of what it recorded.

Hand arithmetic used throughout: every SLO is 99.5% over 30 days, so its budget is 30 × 24 × 60 × 0.005 = 216
minutes of total outage, and an outage of N minutes costs N ÷ 216 of it. The Workbook's alerts spend a fixed share
of that budget before they fire (2% and 5% page, 10% and 10% ticket), so a total outage is detected after
share × 216 minutes: 4.32, 10.8, 21.6 and 21.6 minutes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner, Result

from sloplane.cli import assess
from sloplane.cli.main import _consoles
from sloplane.evaluator.governance.assessment import assessment_report
from sloplane.evaluator.history.report_kinds import ReportOptionError
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Measurement, Outcome, Reason
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.assessments import coverage
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.evaluator.storage.open import open_assessments
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, expected_counts, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.evaluator_data import load_fleet, make_decision

AT = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
"""A Wednesday; the last sample of the known traffic, and the instant every assessment is made at."""
HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)
WINDOW = (AT + HOUR, AT + 2 * HOUR)
BUDGET_MINUTES = 30 * 24 * 60 * (1 - 0.995)
DETECTION_SECONDS = [share * BUDGET_MINUTES * 60 for share in (0.02, 0.05, 0.10, 0.10)]
"""Page 1h/5m, page 6h/30m, ticket 1d/2h, ticket 3d/6h: each fires once its share of the budget is spent."""
CONTACTS = (
    "dev: {name: Ada, contact: ada@shop.example}, ops: {name: Oncall, contact: '#ops'}, "
    "product: {name: Pat, contact: pat@shop.example}"
)
STAGES = (
    "  stages:\n    - {name: canary, selector: {stage: canary}}\n    - {name: production, selector: {stage: stable}}\n"
)


def _slo(name: str, service: str, tier: str, sli: str, *, extra: str = "", owners: str = "") -> str:
    return (
        "apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\n"
        f"metadata: {{name: {name}}}\nspec:\n  service: {service}\n  tier: {tier}\n"
        f"  owners: {{team: shop{', ' + owners if owners else ''}}}\n"
        f"  objective: 99.5\n  window: 30d\n  sli: {sli}\n" + extra
    )


def _http(job: str) -> str:
    return f"{{http: {{metric: http_requests_total, selector: {{job: {job}}}}}}}"


MAINTENANCE = textwrap.indent(
    textwrap.dedent(
        """\
        exclusions:
          maintenance: [{name: nightly, schedule: "0 2 * * *", duration: 30m}]
          windows: [{name: db-migration, start: "2026-03-05T03:00:00Z", end: "2026-03-05T04:00:00Z", reason: schema}]
        gate:
          freezes: [{name: friday, schedule: "0 18 * * 5", duration: 2h}]
        """
    ),
    "  ",
)
FLEET = "---\n".join(
    [
        _slo("checkout-api", "checkout", "critical", _http("checkout"), extra=STAGES, owners=CONTACTS),
        _slo(
            "checkout-latency",
            "checkout",
            "high",
            _http("checkout-latency"),
            extra=MAINTENANCE,
            owners="dev: {name: Ada, contact: ada@shop.example}",
        ),
        _slo("old-checkout", "checkout", "critical", _http("old"), extra="  lifecycle: archived\n"),
        _slo("retired", "retired", "low", _http("retired"), extra="  lifecycle: archived\n"),
        _slo("storefront", "web", "high", _http("web"), extra="  gate: {dependencies: [checkout-api]}\n"),
        _slo("journey", "web", "medium", "{composite: {components: [storefront, docs]}}"),
        _slo("docs", "docs", "low", _http("docs")),
        _slo(
            "bare",
            "bare",
            "low",
            _http("bare"),
            extra="  targets: [prometheus]\n  gate: {freezeOnBudgetExhausted: false}\n",
        ),
        _slo(
            "queue",
            "queue",
            "low",
            _http("queue"),
            extra=STAGES + "  alerting: {page: false}\n  gate: {mode: async, analysis: {dryRun: true}}\n",
            owners="dev: {name: Quinn, contact: quinn@shop.example}",
        ),
    ]
)
PRODUCTION = {"checkout-api": "production", "queue": "production"}
HEALTHY = {
    "checkout-api": 0.8,
    "checkout-latency": 0.9,
    "storefront": 0.5,
    "journey": 0.6,
    "docs": 1.0,
    "bare": 0.7,
    "queue": 0.7,
}


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet")
    load_fleet(folder, FLEET)
    return folder


@pytest.fixture(scope="module")
def fleet(fleet_dir: Path) -> Fleet:
    return load_fleet(fleet_dir, FLEET)


def _measurements(remaining: dict[str, float | None]) -> list[Measurement]:
    """One measurement per SLO named, at AT, with that budget left (None: a backend error)."""
    return [
        Measurement(
            slo=slo,
            stage=PRODUCTION.get(slo),
            objective=99.5,
            at=AT,
            period_start=AT - 30 * 24 * HOUR,
            budget_remaining=left,
            error=None if left is not None else "prometheus unreachable",
        )
        for slo, left in remaining.items()
    ]


class _NoControls:
    def freezes(self, **_: Any) -> list[Any]:
        return []

    def incidents(self, **_: Any) -> list[Any]:
        return []


def _no_rows(since: datetime, until: datetime, names: list[str]) -> list[Any]:
    return []


def build(
    fleet: Fleet,
    service: str = "checkout",
    risk: str = "low",
    *,
    window: tuple[datetime, datetime] = WINDOW,
    remaining: dict[str, float | None] | None = None,
    controls: Any = None,
    log: Any = None,
    outage: timedelta | None = None,
) -> dict[str, Any]:
    return assessment_report(
        fleet,
        service,
        risk,
        window,
        AT,
        measurements=_measurements(HEALTHY if remaining is None else remaining),
        controls=controls or _NoControls(),
        log=log,
        rows=_no_rows,
        outage=outage,
    )


def _rules(found: list[dict[str, Any]]) -> list[str]:
    return [item["rule"] for item in found]


def _slo_entry(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [slo for slo in report["slos"] if slo["slo"] == name]
    return found


# --- what a change reaches, and what an outage costs ----------------------------------------------------------------


def test_the_slos_affected_are_the_services_own_then_consumers_through_dependencies_and_composites(
    fleet: Fleet,
) -> None:
    report = build(fleet)
    reached = [(slo["slo"], slo["relation"], slo["via"]) for slo in report["slos"]]
    assert reached == [
        ("checkout-api", "own", None),
        ("checkout-latency", "own", None),
        ("storefront", "dependency", "checkout-api"),
        ("journey", "component", "storefront"),
    ], "archived old-checkout and unrelated docs are not reached; journey through storefront"
    assert build(fleet, "docs")["slos"][0]["slo"] == "docs"
    assert [slo["slo"] for slo in build(fleet, "docs")["slos"]] == ["docs", "journey"]


def test_budget_left_and_the_outages_share_are_the_hand_computation(fleet: Fleet) -> None:
    remaining = {"checkout-api": 0.8, "checkout-latency": 0.05, "storefront": 0.1, "journey": None}
    report = build(fleet, risk="high", remaining=remaining)
    assert report["outage"] == {"minutes": 30.0, "defaulted": True}, "high risk: 30 minutes by default"
    share = 30 / BUDGET_MINUTES
    for name, left in remaining.items():
        slo = _slo_entry(report, name)
        assert slo["budgetMinutes"] == pytest.approx(BUDGET_MINUTES)
        assert slo["periodMinutes"] == 30 * 24 * 60
        assert slo["outageShare"] == pytest.approx(share)
        assert slo["budgetRemaining"] == left
        if left is None:
            assert (slo["remainingAfter"], slo["exhausts"]) == (None, False)
            assert slo["why"] == "no data: prometheus unreachable"
        else:
            assert slo["remainingAfter"] == pytest.approx(left - share)
            assert slo["exhausts"] is (share >= left)
    assert [slo["exhausts"] for slo in report["slos"]] == [False, True, True, False]
    conditions = [c for c in report["conditions"] if c["rule"] == "outage-exhausts"]
    assert [c["inputs"]["slo"] for c in conditions] == ["checkout-latency", "storefront"]
    assert report["verdict"] == "proceed-with-conditions"


def test_default_outages_by_risk(fleet: Fleet) -> None:
    minutes = {risk: build(fleet, risk=risk)["outage"]["minutes"] for risk in ("low", "medium", "high", "critical")}
    assert minutes == {"low": 5, "medium": 15, "high": 30, "critical": 60}
    assert build(fleet, outage=timedelta(minutes=7))["outage"] == {"minutes": 7, "defaulted": False}


def test_an_outage_exhausting_a_critical_slo_defers_and_a_minute_less_does_not(fleet: Fleet) -> None:
    """checkout-api has 80% left: 172.8 minutes of its 216. 173 minutes exhaust it; 172 do not."""
    over = build(fleet, outage=timedelta(minutes=173))
    assert _slo_entry(over, "checkout-api")["outageShare"] == pytest.approx(173 / 216)
    assert over["verdict"] == "defer"
    assert _rules(over["reasons"]) == ["outage-exhausts-critical"]
    assert over["reasons"][0]["inputs"]["slo"] == "checkout-api"
    under = build(fleet, outage=timedelta(minutes=172))
    assert "outage-exhausts-critical" not in _rules(under["reasons"])
    assert _slo_entry(under, "checkout-api")["exhausts"] is False


def test_a_spent_budget_defers_when_the_gate_freezes_on_it(fleet: Fleet) -> None:
    spent = build(fleet, remaining={**HEALTHY, "checkout-latency": -0.02})
    assert "budget-exhausted" in _rules(spent["reasons"])
    assert spent["verdict"] == "defer"
    not_freezing = build(fleet, "bare", remaining={**HEALTHY, "bare": 0.0})
    assert _rules(not_freezing["reasons"]) == [], "bare's gate does not freeze on an exhausted budget"
    assert "outage-exhausts" in _rules(not_freezing["conditions"]), "but any outage exhausts a spent budget"


# --- detection ---------------------------------------------------------------------------------------------------


def test_detection_times_are_explains_for_a_total_outage(fleet: Fleet) -> None:
    slo = _slo_entry(build(fleet), "checkout-api")
    assert [(a["tier"], a["windows"], a["enabled"]) for a in slo["detection"]] == [
        ("page", "1h/5m", True),
        ("page", "6h/30m", True),
        ("ticket", "1d/2h", True),
        ("ticket", "3d/6h", True),
    ]
    assert [a["seconds"] for a in slo["detection"]] == pytest.approx(DETECTION_SECONDS)
    assert slo["firstPageSeconds"] == pytest.approx(DETECTION_SECONDS[0])
    assert slo["firstTicketSeconds"] == pytest.approx(DETECTION_SECONDS[2])


def test_an_outage_shorter_than_the_first_page_is_watched_by_hand(fleet: Fleet) -> None:
    """The first page comes after 4.32 minutes: a 5-minute outage is seen, a 4-minute one is not."""
    assert "slow-detection" not in _rules(build(fleet, outage=timedelta(minutes=5))["conditions"])
    short = build(fleet, outage=timedelta(minutes=4))
    slow = [c for c in short["conditions"] if c["rule"] == "slow-detection"]
    assert [c["inputs"]["slo"] for c in slow] == ["checkout-api", "checkout-latency"]
    assert slow[0]["inputs"]["firstPageSeconds"] == pytest.approx(DETECTION_SECONDS[0])
    paging_off = build(fleet, "queue")
    assert _slo_entry(paging_off, "queue")["firstPageSeconds"] is None
    assert "slow-detection" in _rules(paging_off["conditions"]), "no page tier: never detected by a page"


# --- overlaps ----------------------------------------------------------------------------------------------------


@pytest.fixture
def controls(tmp_path: Path) -> Iterator[ReleaseControls]:
    with ReleaseControls(tmp_path / "controls.db") as store:
        yield store


def test_a_recorded_freeze_or_a_major_incident_during_the_window_defers(
    fleet: Fleet, controls: ReleaseControls
) -> None:
    start, end = WINDOW
    frozen = controls.freeze("checkout", "peak", "ops", at=start - HOUR, until=start + 10 * MINUTE)
    controls.freeze("web", "their own", "ops", at=start - HOUR)  # another service
    lifted = controls.freeze(None, "all", "ops", at=start - 2 * HOUR)
    controls.lift(lifted.id, "ops", "over", at=start)  # lifted as the window opens: not in force during it
    controls.freeze("checkout", "later", "ops", at=end)  # created as the window closes
    major = controls.open_incident("payments down", "major", "ops", services=["checkout"], at=start - 2 * HOUR)
    minor = controls.open_incident("slow images", "minor", "ops", at=start + 30 * MINUTE)  # names no service: all
    resolved = controls.open_incident("old", "major", "ops", services=["checkout"], at=start - 3 * HOUR)
    controls.resolve_incident(resolved.id, "ops", at=start)
    controls.open_incident("elsewhere", "major", "ops", services=["web"], at=start)
    controls.open_incident("after", "major", "ops", services=["checkout"], at=end)
    report = build(fleet, controls=controls)
    overlaps = report["overlaps"]
    assert [f["id"] for f in overlaps["freezes"]] == [frozen.id]
    assert overlaps["freezes"][0]["end"] == (start + 10 * MINUTE).isoformat()
    assert [i["id"] for i in overlaps["incidents"]] == [major.id, minor.id]
    assert overlaps["incidents"][0]["end"] is None, "open: taken to stay open"
    assert _rules(report["reasons"]) == ["freeze", "major-incident"]
    assert "minor-incident" in _rules(report["conditions"])
    assert report["verdict"] == "defer"
    assert _rules(build(fleet, "docs", controls=controls)["reasons"]) == []


def test_a_scheduled_freeze_defers_a_window_it_reaches_and_not_one_ending_as_it_opens(fleet: Fleet) -> None:
    """checkout-latency's gate freezes Fridays 18:00 to 20:00 UTC; AT is a Wednesday."""
    friday = datetime(2026, 3, 6, 18, 0, tzinfo=UTC)
    before = build(fleet, window=(friday - HOUR, friday))
    assert before["overlaps"]["scheduledFreezes"] == []
    reaching = build(fleet, window=(friday - HOUR, friday + MINUTE))
    assert reaching["overlaps"]["scheduledFreezes"] == [
        {
            "slo": "checkout-latency",
            "name": "friday",
            "start": friday.isoformat(),
            "end": (friday + 2 * HOUR).isoformat(),
        }
    ]
    assert _rules(reaching["reasons"]) == ["freeze"]
    inside = build(fleet, window=(friday + HOUR, friday + 90 * MINUTE))
    assert len(inside["overlaps"]["scheduledFreezes"]) == 1, "open at the window's start"


def test_maintenance_and_excluded_windows_overlapping_are_conditions_clipped_to_the_window(fleet: Fleet) -> None:
    start, end = datetime(2026, 3, 5, 1, 45, tzinfo=UTC), datetime(2026, 3, 5, 3, 15, tzinfo=UTC)
    report = build(fleet, window=(start, end))
    assert _slo_entry(report, "checkout-latency")["maintenance"] == [
        {
            "kind": "maintenance",
            "name": "nightly",
            "start": datetime(2026, 3, 5, 2, 0, tzinfo=UTC).isoformat(),
            "end": datetime(2026, 3, 5, 2, 30, tzinfo=UTC).isoformat(),
            "reason": "",
        },
        {
            "kind": "window",
            "name": "db-migration",
            "start": datetime(2026, 3, 5, 3, 0, tzinfo=UTC).isoformat(),
            "end": end.isoformat(),
            "reason": "schema",
        },
    ]
    assert _rules(report["conditions"]).count("maintenance") == 2
    assert all(slo["maintenance"] == [] for slo in build(fleet)["slos"]), "13:00 to 14:00 overlaps none"


# --- change failure rate -------------------------------------------------------------------------------------------


def _log(path: Path, deployments: int, failed: int) -> SqliteDecisionLog:
    """`deployments` revisions of checkout-api gated in production over the last weeks, `failed` of them on a
    burn-rate breach (a deployment-related failure)."""
    SqliteRollups(path).close()
    log = SqliteDecisionLog(path)
    for number in range(1, deployments + 1):
        when = AT - timedelta(days=2 * number)
        failing = number <= failed
        decision = make_decision(
            number,
            slo="checkout-api",
            stage="production",
            outcome=Outcome.FAIL if failing else Outcome.PASS,
            revision=f"r{number:02d}",
            decided_at=when,
        )
        if failing:
            decision = replace(decision, reasons=(Reason("burn-rate", "burn rate 20x over 1h", {"burnRate": 20.0}),))
        log.append(replace(decision, service="checkout"))
    return log


@pytest.mark.parametrize(
    ("deployments", "failed", "sufficient", "condition"),
    [(10, 2, True, True), (20, 3, True, False), (9, 3, False, False)],
    ids=["20-percent-above", "15-percent-not-above", "too-few"],
)
def test_the_change_failure_rate_over_15_percent_is_a_condition(
    fleet: Fleet, tmp_path: Path, deployments: int, failed: int, *, sufficient: bool, condition: bool
) -> None:
    with _log(tmp_path / "decisions.db", deployments, failed) as log:
        report = build(fleet, log=log)
    delivery = report["delivery"]
    assert (delivery["deployments"], delivery["failed"]) == (deployments, failed)
    assert delivery["changeFailureRate"] == pytest.approx(failed / deployments)
    assert delivery["sufficient"] is sufficient
    assert delivery["above"] is condition
    assert ("change-failure-rate" in _rules(report["conditions"])) is condition


def test_without_a_decision_log_the_change_failure_rate_is_unknown(fleet: Fleet) -> None:
    assert build(fleet)["delivery"] is None


# --- canary, rollback, approvers -------------------------------------------------------------------------------------


def test_canary_and_rollback_follow_stages_mode_targets_and_dry_run(fleet: Fleet) -> None:
    checkout = build(fleet, risk="medium")["safeguards"]
    assert (checkout["canary"], checkout["rollback"]) == (True, True)
    api = checkout["slos"][0]
    assert api["stagesBeforeProduction"] == ["canary"] and api["mode"] == "blocking" and api["argoRollouts"]
    queue = build(fleet, "queue", risk="medium")
    assert (queue["safeguards"]["canary"], queue["safeguards"]["rollback"]) == (False, False), "async, dry run"
    assert queue["safeguards"]["slos"][0]["stagesBeforeProduction"] == ["canary"]
    bare = build(fleet, "bare", risk="medium")
    assert (bare["safeguards"]["canary"], bare["safeguards"]["rollback"]) == (False, False), "no stages, no Argo"
    assert {"no-canary", "no-rollback"} <= set(_rules(bare["conditions"]))
    assert not {"no-canary", "no-rollback"} & set(_rules(build(fleet, "bare", risk="low")["conditions"]))


def test_approvers_follow_the_documented_table_named_from_the_highest_tiers_owners(fleet: Fleet) -> None:
    """The table, as the module documents it: a critical tier needs dev and ops at a low risk, and the product owner
    too from a medium risk; a low tier needs dev alone up to a medium risk, and ops too at a high one."""
    low = build(fleet, risk="low")["approvers"]
    assert (low["tier"], low["roles"], low["missing"]) == ("critical", ["dev", "ops"], [])
    assert [(p["role"], p["name"], p["slo"]) for p in low["people"]] == [
        ("dev", "Ada", "checkout-api"),
        ("ops", "Oncall", "checkout-api"),
    ], "Ada named once, from the critical SLO"
    medium = build(fleet, risk="medium")["approvers"]
    assert medium["roles"] == ["dev", "ops", "product"]
    assert medium["people"][-1] == {
        "role": "product",
        "name": "Pat",
        "contact": "pat@shop.example",
        "slo": "checkout-api",
    }
    bare_medium = build(fleet, "bare", risk="medium")
    assert bare_medium["approvers"]["roles"] == ["dev"]
    bare_high = build(fleet, "bare", risk="high")
    assert (bare_high["approvers"]["roles"], bare_high["approvers"]["missing"]) == (["dev", "ops"], ["dev", "ops"])
    missing = [c["inputs"]["role"] for c in bare_high["conditions"] if c["rule"] == "approver-missing"]
    assert missing == ["dev", "ops"]


def test_a_change_with_everything_in_place_proceeds(fleet: Fleet) -> None:
    report = build(fleet, risk="low")
    assert (report["verdict"], report["reasons"], report["conditions"]) == ("proceed", [], [])


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"service": "nobody"}, "service"),
        ({"service": "retired"}, "service"),
        ({"risk": "extreme"}, "risk"),
        ({"window": (AT, AT)}, "window"),
        ({"outage": timedelta(0)}, "outage"),
    ],
)
def test_bad_options_are_refused_by_name(fleet: Fleet, options: dict[str, Any], option: str) -> None:
    with pytest.raises(ReportOptionError) as refused:
        build(fleet, **options)
    assert refused.value.option == option


# --- the command, against a real Prometheus ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traffic() -> dict[str, HttpTraffic]:
    """checkout-api's production traffic: 0.1% errors for two days (a fifth of the budget's ratio)."""
    return {
        "stable": http_traffic(
            [Segment(2 * 24 * HOUR, 100.0, 0.001)], end=AT, labels={"job": "checkout", "stage": "stable"}
        )
    }


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, traffic: dict[str, HttpTraffic]) -> Iterator[str]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), list(traffic.values())) as sandbox:
        yield sandbox.url


def run_assess(*args: str | Path, out: io.StringIO | None = None) -> Result:
    """`assess` registered on an app of its own as `sloplane` will register it (a callback keeps it a subcommand)."""
    consoles = _consoles if out is None else dataclasses.replace(_consoles, out=Console(file=out, width=250))
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """sloplane"""

    assess.register(app, consoles)
    return CliRunner().invoke(app, ["assess", *map(str, args)])


def test_the_command_prints_the_builders_dict_with_the_budget_measured_as_the_gate_does(
    fleet_dir: Path, fleet: Fleet, prometheus: str, traffic: dict[str, HttpTraffic], tmp_path: Path
) -> None:
    db = tmp_path / "decisions.db"
    window = f"{WINDOW[0].isoformat()}/{WINDOW[1].isoformat()}"
    common = (fleet_dir, "--service", "checkout", "--risk", "high", "--prometheus", prometheus, "--db", db)
    result = run_assess(*common, "--at", AT.isoformat(), "--window", window, "--format", "json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    bad, total = expected_counts(traffic["stable"], AT, 30 * 24 * HOUR)
    assert _slo_entry(printed, "checkout-api")["budgetRemaining"] == pytest.approx(1 - (bad / total) / 0.005)
    measurements = Evaluator(fleet, PrometheusBackend(prometheus), _NoLog()).evaluate(AT)
    expected = assessment_report(
        fleet,
        "checkout",
        "high",
        WINDOW,
        AT,
        measurements=measurements,
        controls=_NoControls(),
        log=None,
        rows=_no_rows,
    )
    assert printed == json.loads(json.dumps(expected))
    assert "no decision log at" in result.stderr and not db.exists(), "nothing is created without --record"

    recorded = run_assess(*common, "--at", AT.isoformat(), "--window", window, "--format", "json", "--record")
    assert recorded.exit_code == 0, recorded.output
    kept = json.loads(recorded.stdout)
    with open_assessments(db) as store:
        assert store.get(kept["id"]) == kept
        assert {k: v for k, v in kept.items() if k not in ("id", "recordedAt")} == printed
        answer = coverage(store, kept["id"], "checkout", WINDOW[0])
    assert printed["verdict"] == "proceed-with-conditions", "checkout-latency has no traffic: no data"
    assert _rules(printed["conditions"]) == ["no-data"]
    assert (answer.covered, answer.code) == (True, None), answer.message


def test_the_table_names_the_verdict_and_each_finding(fleet_dir: Path, prometheus: str, tmp_path: Path) -> None:
    out = io.StringIO()
    result = run_assess(
        fleet_dir, "--service", "checkout", "--risk", "high", "--prometheus", prometheus,
        "--db", tmp_path / "decisions.db", "--at", AT.isoformat(), "--outage", "4m", "--record", out=out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.getvalue()
    assert "checkout at high risk" in text and "4 min outage" in text
    assert "checkout-api" in text and "dependency of checkout-api" in text
    assert "change failure rate: unknown (no decision log)" in text
    assert "verdict: proceed-with-conditions" in text
    assert "condition: [slow-detection]" in text, "4 minutes: before the first page"
    assert "recorded as asm-" in text


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("--risk", "extreme"), "--risk"),
        (("--risk", "low", "--window", "2026-03-04T13:00:00Z"), "--window"),
        (("--risk", "low", "--window", "2026-03-04T13:00:00Z/2026-03-04T12:00:00Z"), "--window"),
        (("--risk", "low", "--outage", "soon"), "--outage"),
        (("--risk", "low", "--outage", "0m"), "--outage"),
        (("--risk", "low", "--format", "csv"), "--format"),
    ],
)
def test_usage_errors_name_the_option(
    fleet_dir: Path, prometheus: str, tmp_path: Path, args: tuple[str, ...], option: str
) -> None:
    result = run_assess(
        fleet_dir, "--service", "checkout", "--prometheus", prometheus, "--db", tmp_path / "d.db", *args
    )
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert "Traceback" not in result.output


def test_an_unknown_service_or_no_backend_is_a_usage_error(fleet_dir: Path, prometheus: str, tmp_path: Path) -> None:
    unknown = run_assess(
        fleet_dir, "--service", "nobody", "--risk", "low", "--prometheus", prometheus, "--db", tmp_path / "d.db"
    )
    assert unknown.exit_code == 2 and "--service" in unknown.output and "nobody" in unknown.output
    blind = run_assess(fleet_dir, "--service", "checkout", "--risk", "low", "--db", tmp_path / "d.db")
    assert blind.exit_code == 2 and "--prometheus" in blind.output


def test_a_store_that_cannot_be_read_exits_1_with_one_line(fleet_dir: Path, prometheus: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    result = run_assess(
        fleet_dir,
        "--service",
        "checkout",
        "--risk",
        "low",
        "--prometheus",
        prometheus,
        "--db",
        broken,
        "--at",
        AT.isoformat(),
    )
    assert result.exit_code == 1, result.output
    assert str(broken) in result.stderr and "Traceback" not in result.output


class _NoLog:
    def append(self, decision: object) -> None:
        raise AssertionError("an assessment records no decision")
