"""Release-aware decisions against a real Prometheus holding synthetic history.

One server, 26 hours of one-minute history. Each service is a scenario: a canary worse than
stable, one outage on both stages, a dependency outage, too little canary traffic, a healthy
service frozen by hand and by an incident, break-glass, and burn split by deployment windows.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from sloplane.declaration.policy import ChangeType
from sloplane.evaluator.http.auth import TokenStore
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import BreakGlass, Decision, GateRequest, Outcome
from sloplane.evaluator.server import ServerConfig, build_service
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, expected_counts, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.conftest import run_cli
from tests.evaluator_data import load_fleet
from tests.fake_http import EventReceiver, serve
from tests.servers import served_app

END = datetime(2024, 5, 1, tzinfo=UTC)
START = END - timedelta(hours=26)
BASE = 0.0005
HALF_HOUR = timedelta(minutes=30)


def _slo(name: str, extra: str = "", staged: bool = False) -> str:
    stages = (
        "stages:\n  - {name: canary, selector: {stage: canary}}\n  - {name: production, selector: {stage: stable}}\n"
        if staged
        else ""
    )
    body = f"service: {name}\nowners: {{team: sre}}\nobjective: 99.9\nwindow: 1d\n"
    body += f"sli: {{http: {{metric: http_requests_total, selector: {{job: {name}}}}}}}\n{stages}{extra}"
    header = f"apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: {name}}}\nspec:\n"
    return header + textwrap.indent(body, "  ")


FLEET = "---\n".join(
    [
        _slo("shop", staged=True),
        _slo("storm", staged=True),
        _slo("thin", staged=True),
        _slo("payments"),
        _slo("frontend", "gate: {dependencies: [payments]}\n"),
        _slo("calm"),
        _slo("release"),
        _slo("orders"),
        _slo("mended"),
    ]
)


def _ending(last: list[Segment], rate: float = 600.0) -> list[Segment]:
    tail = sum((s.duration for s in last), timedelta())
    return [Segment(END - START - tail, rate, BASE), *last]


DEPLOYED = END - timedelta(hours=3)
"""`release` is deployed (revision r7) at this time; the deployment errs for 20 minutes and is rolled back."""
SPIKE = END - timedelta(hours=6)
"""`release` has a 10-minute background spike here, with no deployment in progress."""


def _release() -> list[Segment]:
    return [
        Segment(SPIKE - START, 600.0, BASE),
        Segment(timedelta(minutes=10), 600.0, 0.2),
        Segment(DEPLOYED - SPIKE - timedelta(minutes=10), 600.0, BASE),
        Segment(timedelta(minutes=20), 600.0, 0.2),
        Segment(END - DEPLOYED - timedelta(minutes=20), 600.0, BASE),
    ]


def _traffic(job: str, segments: list[Segment], stage: str | None = None) -> HttpTraffic:
    labels = {"job": job} if stage is None else {"job": job, "stage": stage}
    return http_traffic(segments, start=START, labels=labels)


TRAFFIC = [
    _traffic("shop", _ending([]), "stable"),
    _traffic("shop", _ending([Segment(HALF_HOUR, 60.0, 0.05)], rate=60.0), "canary"),
    _traffic("storm", _ending([Segment(HALF_HOUR, 600.0, 1.0)]), "stable"),
    _traffic("storm", _ending([Segment(HALF_HOUR, 60.0, 1.0)], rate=60.0), "canary"),
    _traffic("thin", _ending([]), "stable"),
    _traffic("thin", _ending([], rate=1.0), "canary"),
    _traffic("payments", _ending([Segment(HALF_HOUR, 600.0, 1.0)])),
    _traffic("frontend", _ending([Segment(HALF_HOUR, 600.0, 0.5)])),
    _traffic("calm", _ending([])),
    _traffic("orders", _ending([Segment(HALF_HOUR, 600.0, 1.0)])),
    # an outage 2h30 to 2h before END spends the day's budget (1.08M bad of 51,840 allowed); quiet since
    _traffic("mended", _ending([Segment(HALF_HOUR, 600.0, 1.0), Segment(timedelta(hours=2), 600.0, BASE)])),
]
RELEASE = _traffic("release", _release())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), FLEET)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), [*TRAFFIC, RELEASE]) as sandbox:
        yield sandbox


@pytest.fixture
def controls(tmp_path: Path) -> Iterator[ReleaseControls]:
    store = ReleaseControls(tmp_path / "controls.db")
    yield store
    store.close()


@pytest.fixture
def evaluator(fleet: Fleet, prometheus: PrometheusSandbox, controls: ReleaseControls, tmp_path: Path) -> Evaluator:
    log = SqliteDecisionLog(tmp_path / "decisions.db")
    return Evaluator(fleet, PrometheusBackend(prometheus.url), log, controls=controls)


def _gate(evaluator: Evaluator, slo: str, stage: str | None = None, **fields: object) -> Decision:
    request = GateRequest(slo=slo, stage=stage, at=fields.pop("at", END), revision="r1", **fields)  # type: ignore[arg-type]
    (decision,) = evaluator.gate(request).decisions
    return decision


def _codes(decision: Decision) -> list[str]:
    return [reason.code for reason in decision.reasons]


def test_a_canary_worse_than_stable_fails_with_a_p_value(evaluator: Evaluator) -> None:
    decision = _gate(evaluator, "shop", "canary")
    assert decision.outcome is Outcome.FAIL
    worse = next(reason for reason in decision.reasons if reason.code == "canary-worse")
    values = worse.values
    assert values["p_value"] < 0.001
    assert values["canary_error_ratio"] == pytest.approx(0.05, rel=1e-9)
    assert values["baseline_error_ratio"] == pytest.approx(BASE, rel=1e-9)
    assert values["effect_burn_rate"] == pytest.approx((0.05 - BASE) / 0.001, rel=1e-9)
    assert values["canary_intervals"] == values["baseline_intervals"] == 10
    assert "background" not in _codes(decision)


def test_stable_is_not_compared_with_itself(evaluator: Evaluator) -> None:
    decision = _gate(evaluator, "shop", "production")
    assert decision.outcome is Outcome.PASS
    assert not {"canary-worse", "canary-comparable"} & set(_codes(decision))


def test_the_same_outage_on_both_stages_is_background_not_a_rollback(evaluator: Evaluator) -> None:
    decision = _gate(evaluator, "storm", "canary")
    assert decision.outcome is Outcome.INCONCLUSIVE
    codes = _codes(decision)
    assert "alert-active" in codes and "canary-comparable" in codes and codes[-1] == "background"
    assert decision.reasons[-1].values["baseline_stage"] == "production"


def test_a_dependency_outage_is_inconclusive_and_named(evaluator: Evaluator) -> None:
    decision = _gate(evaluator, "frontend")
    assert decision.outcome is Outcome.INCONCLUSIVE
    assert decision.reasons[-1].code == "dependency"
    assert decision.reasons[-1].values["dependency"] == "payments"
    assert "payments" in decision.reasons[-1].message
    before = _gate(evaluator, "frontend", at=END - timedelta(hours=2))  # both healthy then
    assert before.outcome is Outcome.PASS


def test_too_little_canary_traffic_is_inconclusive(evaluator: Evaluator) -> None:
    decision = _gate(evaluator, "thin", "canary")
    assert decision.outcome is Outcome.INCONCLUSIVE
    low = next(reason for reason in decision.reasons if reason.code == "canary-low-traffic")
    assert low.values["canary_events"] == pytest.approx(10.0)


def test_a_freeze_fails_a_healthy_slo_until_it_is_lifted(evaluator: Evaluator, controls: ReleaseControls) -> None:
    assert _gate(evaluator, "calm").outcome is Outcome.PASS
    freeze = controls.freeze("calm", "quarter-end close", "alice", at=END - timedelta(hours=1))
    decision = _gate(evaluator, "calm")
    assert decision.outcome is Outcome.FAIL and _codes(decision) == ["frozen"]
    assert decision.reasons[0].values["freeze"] == freeze.id and "quarter-end close" in decision.reasons[0].message
    assert _gate(evaluator, "calm", at=END - timedelta(hours=2)).outcome is Outcome.PASS  # replay: before it
    controls.lift(freeze.id, "alice", "close done", at=END - timedelta(minutes=30))
    assert _gate(evaluator, "calm").outcome is Outcome.PASS


def test_an_open_major_incident_freezes_every_gate(evaluator: Evaluator, controls: ReleaseControls) -> None:
    incident = controls.open_incident("checkout down", "major", "bob", at=END - timedelta(minutes=10))
    decision = _gate(evaluator, "calm")
    assert decision.outcome is Outcome.FAIL and decision.reasons[0].values["incident"] == incident.id
    controls.open_incident("slow search", "minor", "bob", at=END - timedelta(minutes=10))
    controls.open_incident("payments down", "major", "bob", services=["payments"], at=END - timedelta(minutes=10))
    controls.resolve_incident(incident.id, "bob", at=END - timedelta(minutes=5))
    assert _gate(evaluator, "calm").outcome is Outcome.PASS  # minor ones, and major ones of other services, do not


def test_break_glass_passes_and_is_recorded(evaluator: Evaluator) -> None:
    override = BreakGlass("rollback of the rollback: INC-7 fix", "carol")
    decision = _gate(evaluator, "shop", "canary", break_glass=override)
    assert decision.outcome is Outcome.PASS
    assert _codes(decision)[-1] == "break-glass" and "canary-worse" in _codes(decision)
    (recorded,) = evaluator.log.query(slo="shop", limit=1)
    assert recorded["decision"] == "pass"
    assert recorded["request"]["breakGlass"] == {"reason": "rollback of the rollback: INC-7 fix", "identity": "carol"}
    assert recorded["reasons"][-1]["values"]["overridden"] == "fail"


def test_a_spent_budget_lets_a_fix_through_as_a_recorded_exception(evaluator: Evaluator) -> None:
    feature = _gate(evaluator, "mended", change_type=ChangeType.FEATURE)
    assert feature.outcome is Outcome.FAIL
    assert "budget-exhausted" in _codes(feature) and "changes-restricted" in _codes(feature)
    assert not {"alert-active", "burn-rate"} & set(_codes(feature))  # the outage is over: only the budget fails
    fix = _gate(evaluator, "mended", change_type=ChangeType.FIX)
    assert fix.outcome is Outcome.PASS and "policy-exception" in _codes(fix)
    (recorded,) = evaluator.log.query(slo="mended", limit=1)
    assert recorded["decision"] == "pass" and recorded["request"]["changeType"] == "fix"
    exception = next(reason for reason in recorded["reasons"] if reason["code"] == "policy-exception")
    assert exception["values"]["overridden"] == "fail"
    assert _gate(evaluator, "orders", change_type=ChangeType.FIX).outcome is Outcome.FAIL  # still burning now


class Clock:
    """The evaluator's "now", moved by hand: gates asked at it are live, as a pipeline's are."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _gate_live(evaluator: Evaluator, clock: Clock, minutes_after_deploy: int, revision: str = "r7") -> None:
    clock.now = DEPLOYED + timedelta(minutes=minutes_after_deploy)
    evaluator.gate(GateRequest(slo="release", revision=revision))


@pytest.fixture
def clock() -> Clock:
    return Clock(END)


@pytest.fixture
def live(fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path, clock: Clock) -> Evaluator:
    """An evaluator whose clock the test moves: its gates are live decisions at those times."""
    return Evaluator(
        fleet, PrometheusBackend(prometheus.url), SqliteDecisionLog(tmp_path / "decisions.db"), clock=clock
    )


def test_burn_during_a_deployment_is_reported_apart_from_background(live: Evaluator, clock: Clock) -> None:
    for minutes in (5, 15):  # the pipeline gates r7 twice while it errs; the second gate fails
        _gate_live(live, clock, minutes)
    evaluator = live
    split = evaluator.deployment_burn("release", END)
    lead = timedelta(minutes=10)  # the analysis window before the first gate
    window_start, window_end = DEPLOYED + timedelta(minutes=5) - lead, DEPLOYED + timedelta(minutes=15)
    deployed_bad, deployed_all = expected_counts(RELEASE, window_end, window_end - window_start)
    period_bad, period_all = expected_counts(RELEASE, END, timedelta(days=1))
    (window, bad, total) = split.deployments[0]
    assert (window.revision, window.outcome, window.decisions) == ("r7", "fail", 2)
    assert bad == pytest.approx(deployed_bad, rel=1e-9) and total == pytest.approx(deployed_all, rel=1e-9)
    assert split.bad_events == pytest.approx(period_bad, rel=1e-9)
    assert split.background_bad_events == pytest.approx(period_bad - deployed_bad, rel=1e-9)
    report = split.to_dict()
    assert report["deploymentBudgetConsumed"] == pytest.approx(deployed_bad / (0.001 * period_all), rel=1e-9)
    assert report["deployments"][0]["rolledBack"] is True


RECEIVERS = """\
receivers:
  oncall:
    pagerduty: {{routingKey: oncall-key, url: "{base}/v2/enqueue"}}
defaults: {{deployment: oncall, background: oncall}}
grouping: {{wait: 200ms, window: 15m, minServices: 2}}
retry: {{initial: 50ms, max: 200ms}}
"""


def test_three_services_failing_on_one_revision_open_one_war_room_that_freezes_every_gate(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    receiver = EventReceiver()
    with serve(receiver) as base:
        receivers = tmp_path / "receivers.yaml"
        receivers.write_text(RECEIVERS.format(base=base))
        config = ServerConfig(prometheus.url, tmp_path / "decisions.db", TokenStore([]), receivers=receivers)
        service = build_service(fleet, config)
        service.start()
        try:
            for slo, stage in (("payments", None), ("orders", None), ("shop", "canary")):
                request = GateRequest(slo=slo, stage=stage, at=END, revision="r42", pipeline="deploy-9")
                assert service.evaluator.gate(request).outcome is Outcome.FAIL
            assert service.notifier is not None and service.notifier.flush(10, include_held=True)
            (event,) = receiver.events("/v2/enqueue")
            assert event["dedup_key"] == "sloplane/war-room/revision/r42"
            assert event["routing_key"] == "oncall-key" and event["event_action"] == "trigger"
            (incident,) = service.controls.open_major_incidents(datetime.now(UTC))
            assert incident.title == "3 services failing on revision r42: orders, payments, shop"
            assert incident.key == "sloplane/war-room/revision/r42" and incident.services == ()
            frozen = service.evaluator.gate(GateRequest(slo="calm", revision="r43")).decisions[0]
            assert frozen.outcome is Outcome.FAIL and frozen.reasons[0].values["incident"] == incident.id
            with served_app(service.app) as url:
                metrics = requests.get(f"{url}/metrics", timeout=10).text
            assert 'sloplane_notifications{state="delivered"} 1.0' in metrics
            assert 'sloplane_notifications{state="dead"} 0.0' in metrics
            assert "sloplane_major_incidents_open 1.0" in metrics and "sloplane_freezes_active 0.0" in metrics
        finally:
            service.close()


def test_defect_4_replayed_gates_never_move_the_deployment_split(live: Evaluator, clock: Clock) -> None:
    """Issue 10, defect 4: two backdated gates (a gate token's `at`) used to add a deployment window."""
    for minutes in (5, 15):
        _gate_live(live, clock, minutes)
    before = live.deployment_burn("release", END).to_dict()
    clock.now = END
    for hours in (6, 5):  # replays over the background spike, with a revision that was never deployed
        live.gate(GateRequest(slo="release", revision="r-backdated", at=SPIKE + timedelta(minutes=hours)))
    after = live.deployment_burn("release", END).to_dict()
    assert after == before
    assert [window["revision"] for window in after["deployments"]] == ["r7"]
    assert live.log.count() == 4  # the replays are recorded all the same


def test_the_burn_command_prints_the_same_split(
    live: Evaluator, clock: Clock, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    for minutes in (5, 15):
        _gate_live(live, clock, minutes)
    evaluator = live
    expected = evaluator.deployment_burn("release", END).to_dict()
    (tmp_path / "fleet.yaml").write_text(FLEET)
    arguments = ["burn", tmp_path / "fleet.yaml", "--prometheus", prometheus.url, "--db", tmp_path / "decisions.db"]
    shown = run_cli(*arguments, "--slo", "release", "--at", END.isoformat(), "--format", "json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout) == expected
    table = run_cli(*arguments, "--slo", "release", "--at", END.isoformat())
    assert table.code == 0 and "r7" in table.stdout and "rolled back" in table.stdout
    unknown = run_cli(*arguments, "--slo", "relase")
    assert unknown.code == 2 and "did you mean 'release'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_break_glass_from_the_command_line_names_the_person(
    prometheus: PrometheusSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fleet.yaml").write_text(FLEET)
    monkeypatch.setenv("SLOPLANE_USER", "dana")
    arguments = ["gate", tmp_path / "fleet.yaml", "--slo", "shop", "--stage", "canary", "--at", END.isoformat()]
    arguments += ["--prometheus", prometheus.url, "--db", tmp_path / "cli.db", "--format", "json"]
    refused = run_cli(*arguments)
    assert refused.code == 1  # the canary is worse than stable
    forced = run_cli(*arguments, "--break-glass", "customer escalation CS-81")
    assert forced.code == 0, forced.stderr
    answer = json.loads(forced.stdout)
    assert answer["decisions"][0]["request"]["breakGlass"] == {
        "reason": "customer escalation CS-81",
        "identity": "dana",
    }
    empty = run_cli(*arguments, "--break-glass", " ")
    assert empty.code == 2 and "give a reason" in empty.stderr


def test_async_gates_record_and_return_while_blocking_ones_give_the_verdict(
    prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    (tmp_path / "fleet.yaml").write_text(FLEET)
    arguments = ["gate", tmp_path / "fleet.yaml", "--slo", "orders", "--at", END.isoformat(), "--revision", "r5"]
    arguments += ["--prometheus", prometheus.url, "--db", tmp_path / "cli.db", "--format", "json"]
    recorded = run_cli(*arguments, "--async")
    assert recorded.code == 0 and json.loads(recorded.stdout)["decision"] == "fail"
    assert SqliteDecisionLog(tmp_path / "cli.db").query(revision="r5", limit=5)[0]["decision"] == "fail"
    assert run_cli(*arguments).code == 1
    both = run_cli(*arguments, "--async", "--wait")
    assert both.code == 2 and "--async" in both.stderr and "Traceback" not in both.stderr
