"""Fleet risk (`sloplane govern risk`) against a real Prometheus with two days of known traffic: SLOs in every state,
a dependency and a composite taking their part's worst state, scores and bands against a hand computation, each
advice rule with its near miss, and the command (json, table, usage errors)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import Result

from sloplane.core.serialize import pretty_json
from sloplane.evaluator.governance.risk import band, own_state, risk_report
from sloplane.evaluator.governance.risk_now import BAND_NAMES, FleetRiskNow
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import Measurement
from sloplane.evaluator.service import Evaluator
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, expected_counts, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.evaluator_data import load_fleet
from tests.govern_cli import run_govern

END = datetime(2025, 11, 3, 12, 0, tzinfo=UTC)
"""The last sample, and the instant the risk is asked at."""
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
RATE = 100.0
OBJECTIVE = 99.0
BUDGET = 1 - OBJECTIVE / 100
PAGE_FACTOR = 14.4
"""The Workbook's fastest page (1h long, 5m short window) for a 30-day period: 2% of the budget in an hour."""
WEIGHTS = {"critical": 8, "high": 4, "medium": 2, "low": 1}

TRAFFIC = {
    "clean": [Segment(2 * DAY, RATE, 0.001)],
    "burst": [Segment(2 * DAY - HOUR, RATE, 0.0), Segment(HOUR, RATE, 0.2)],  # the last hour at 20× the budget
    "spent": [Segment(DAY, RATE, 0.016), Segment(DAY, RATE, 0.0)],  # 80% of the budget a day ago, quiet since
    "exhausted": [Segment(DAY, RATE, 0.03), Segment(DAY, RATE, 0.0)],  # 150% a day ago, quiet since
}

SLOS = {  # name: (service, tier, job, extra spec)
    "catalog": ("catalog", "critical", "clean", ""),
    "catalog-images": ("catalog", "low", "spent", ""),
    "docs": ("docs", "low", "clean", ""),
    "search": ("search", "high", "burst", ""),
    "ledger": ("payments", "critical", "spent", ""),
    "payments-db": ("payments", "high", "exhausted", ""),
    "frontend": ("web", "critical", "clean", "  gate: {dependencies: [payments-db]}\n"),
    "web-probe": ("web", "low", "absent", ""),
    "journey": ("web", "medium", None, ""),
    "reports": ("reports", "low", "exhausted", "  gate: {freezeOnBudgetExhausted: false}\n"),
}


def declarations() -> str:
    documents = []
    for name, (service, tier, job, extra) in SLOS.items():
        sli = (
            "{composite: {components: [docs, search]}}"
            if job is None
            else f"{{http: {{metric: http_requests_total, selector: {{job: {job}}}}}}}"
        )
        documents.append(
            "apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\n"
            f"metadata: {{name: {name}}}\nspec:\n  service: {service}\n  tier: {tier}\n"
            "  owners: {team: shop}\n"
            f"  objective: {OBJECTIVE}\n  window: 30d\n  sli: {sli}\n" + extra
        )
    return "---\n".join(documents)


@pytest.fixture(scope="module")
def traffic() -> dict[str, HttpTraffic]:
    return {job: http_traffic(segments, end=END, labels={"job": job}) for job, segments in TRAFFIC.items()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fleet")


@pytest.fixture(scope="module")
def fleet(folder: Path) -> Fleet:
    return load_fleet(folder, declarations())


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, traffic: dict[str, HttpTraffic]) -> Iterator[str]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), list(traffic.values())) as sandbox:
        yield sandbox.url


@pytest.fixture(scope="module")
def measurements(fleet: Fleet, prometheus: str) -> list[Measurement]:
    return Evaluator(fleet, PrometheusBackend(prometheus), _NoLog()).evaluate(END)


@pytest.fixture(scope="module")
def report(fleet: Fleet, measurements: list[Measurement]) -> dict[str, Any]:
    return risk_report(fleet, measurements, END)


class _NoLog:
    def append(self, decision: object) -> None:
        raise AssertionError("risk records no decision")


# --- the hand computation -----------------------------------------------------------------------------------------


def _ratio(traffic: HttpTraffic, window: timedelta) -> float:
    bad, total = expected_counts(traffic, END, window)
    return bad / total


def _hand_own(ratios: dict[timedelta, float]) -> str:
    """An SLO's own state from its error ratios over the period (30d) and the fastest page's windows."""
    remaining = 1 - ratios[timedelta(days=30)] / BUDGET
    paging = all(ratios[window] / BUDGET > PAGE_FACTOR for window in (HOUR, timedelta(minutes=5)))
    if remaining <= 0:
        return "exhausted"
    return "at-risk" if paging or remaining < 0.25 else "healthy"


def _hand_states(traffic: dict[str, HttpTraffic]) -> dict[str, tuple[str, str, str | None]]:
    """Each SLO's (state, own, via), by hand: own states from the traffic, parts' worst by reading the table."""
    windows = (timedelta(days=30), HOUR, timedelta(minutes=5))
    ratios = {job: {w: _ratio(t, w) for w in windows} for job, t in traffic.items()}
    own = {name: _hand_own(ratios[job]) for name, (_, _, job, _) in SLOS.items() if job in ratios}
    own["web-probe"] = "no-data"
    own["journey"] = _hand_own({w: (ratios["clean"][w] + ratios["burst"][w]) / 2 for w in windows})  # weighted 1:1
    states = {name: (state, state, None) for name, state in own.items()}
    states["frontend"] = (own["payments-db"], own["frontend"], "payments-db")
    states["journey"] = (own["search"], own["journey"], "search")
    return states


def _hand_score(slos: list[tuple[str, str]]) -> tuple[float | None, str, float]:
    """(score, band, no-data share) from (tier, state) pairs: risky weight ÷ weight with data."""
    total = sum(WEIGHTS[tier] for tier, _ in slos)
    blind = sum(WEIGHTS[tier] for tier, state in slos if state == "no-data")
    risky = sum(WEIGHTS[tier] for tier, state in slos if state in ("at-risk", "exhausted"))
    score = risky / (total - blind) if total > blind else None
    named = (
        "unknown"
        if score is None
        else "severe"
        if score >= 0.5
        else "high"
        if score >= 0.25
        else "elevated"
        if score >= 0.1
        else "low"
    )
    return score, named, blind / total


def _service(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [service for service in report["services"] if service["service"] == name]
    return found


def _rules(entry: dict[str, Any]) -> list[str]:
    return [advice["rule"] for advice in entry["advice"]]


# --- states, parts, scores ----------------------------------------------------------------------------------------


def test_every_state_is_measured_and_the_parts_give_their_worst(
    report: dict[str, Any], traffic: dict[str, HttpTraffic]
) -> None:
    hand = _hand_states(traffic)
    assert {own for _, own, _ in hand.values()} == {"healthy", "at-risk", "exhausted", "no-data"}
    found = {slo["slo"]: (slo["state"], slo["own"], slo["via"]) for s in report["services"] for slo in s["slos"]}
    assert found == hand
    slos = {slo["slo"]: slo for s in report["services"] for slo in s["slos"]}
    assert slos["frontend"]["state"] == "exhausted" and slos["frontend"]["own"] == "healthy"
    assert "payments-db is exhausted" in slos["frontend"]["why"]
    assert slos["frontend"]["parts"] == [
        {"slo": "payments-db", "stage": None, "relation": "dependency", "state": "exhausted"}
    ]
    assert slos["journey"]["state"] == "at-risk" and slos["journey"]["own"] == "healthy"
    journey_parts = [(p["slo"], p["relation"]) for p in slos["journey"]["parts"]]
    assert journey_parts == [("docs", "component"), ("search", "component")]
    assert slos["search"]["alert"] is not None and "page" in slos["search"]["alert"]
    assert slos["ledger"]["alert"] is None and "below 25%" in slos["ledger"]["why"]
    for name in ("catalog", "ledger", "payments-db", "search"):
        job = SLOS[name][2]
        assert job is not None
        expected = 1 - _ratio(traffic[job], timedelta(days=30)) / BUDGET
        assert slos[name]["budgetRemaining"] == pytest.approx(expected, rel=1e-9)
        assert slos[name]["weight"] == WEIGHTS[SLOS[name][1]]


def test_scores_and_bands_per_service_and_fleet_wide_equal_the_hand_computation(
    report: dict[str, Any], traffic: dict[str, HttpTraffic]
) -> None:
    hand = _hand_states(traffic)
    assert report["weights"] == WEIGHTS
    services = sorted({service for service, _, _, _ in SLOS.values()})
    assert [s["service"] for s in report["services"]] == services
    for service in services:
        pairs = [(tier, hand[name][0]) for name, (owner, tier, _, _) in SLOS.items() if owner == service]
        score, named, blind = _hand_score(pairs)
        entry = _service(report, service)
        assert (entry["score"], entry["band"]) == (pytest.approx(score), named), service
        assert entry["noData"] == pytest.approx(blind)
    score, named, blind = _hand_score([(tier, hand[name][0]) for name, (_, tier, _, _) in SLOS.items()])
    fleet = report["fleet"]
    assert (fleet["score"], fleet["band"], fleet["noData"]) == (pytest.approx(score), named, pytest.approx(blind))
    assert fleet["weight"]["total"] == sum(WEIGHTS[tier] for _, tier, _, _ in SLOS.values())
    assert {_service(report, s)["band"] for s in services} >= {"low", "elevated", "severe"}


def test_own_state_thresholds_and_their_near_misses(fleet: Fleet) -> None:
    declaration = fleet["catalog"]

    def measured(remaining: float | None, error: str | None = None) -> Measurement:
        ratio = None if remaining is None else (1 - remaining) * BUDGET
        return Measurement(
            slo="catalog", stage=None, objective=OBJECTIVE, at=END, period_start=END - timedelta(days=30),
            period_error_ratio=ratio, period_events=None if ratio is None else 1000.0, budget_remaining=remaining,
            error=error,
        )  # fmt: skip

    assert own_state(declaration, measured(0.25), END).state == "healthy"  # 25% left is not at risk
    assert own_state(declaration, measured(0.2499), END).state == "at-risk"
    assert own_state(declaration, measured(0.0001), END).state == "at-risk"
    assert own_state(declaration, measured(0.0), END).state == "exhausted"  # nothing left is exhausted
    assert own_state(declaration, measured(None), END).state == "no-data"
    assert own_state(declaration, measured(None, "connection refused"), END).why == "no data: connection refused"
    assert own_state(declaration, None, END).state == "no-data"


def test_band_thresholds_and_their_near_misses() -> None:
    assert [band(s) for s in (0.0, 0.0999, 0.1, 0.2499, 0.25, 0.4999, 0.5, 1.0)] == [
        "low", "low", "elevated", "elevated", "high", "high", "severe", "severe",
    ]  # fmt: skip
    assert band(None) == "unknown"


# --- advice -------------------------------------------------------------------------------------------------------


def test_canary_only_from_elevated_and_not_at_low(report: dict[str, Any]) -> None:
    catalog = _service(report, "catalog")  # 1 of 9 at risk: elevated, just past 0.1
    assert catalog["band"] == "elevated" and _rules(catalog) == ["canary-only"]
    inputs = catalog["advice"][0]["inputs"]
    assert inputs["from"] == 0.1 and inputs["score"] == pytest.approx(1 / 9)
    assert [s["slo"] for s in inputs["slos"]] == ["catalog-images"]
    docs = _service(report, "docs")
    assert docs["band"] == "low" and docs["advice"] == []


def test_the_policy_freeze_only_for_an_own_exhausted_budget_the_policy_freezes_on(report: dict[str, Any]) -> None:
    payments = _service(report, "payments")
    assert _rules(payments) == ["canary-only", "policy-freeze"]
    freeze = payments["advice"][1]
    assert [s["slo"] for s in freeze["inputs"]["slos"]] == ["payments-db"]
    assert freeze["inputs"]["policy"] == "freezeOnBudgetExhausted" and "payments-db" in freeze["message"]
    web = _service(report, "web")  # frontend is exhausted only through payments-db: payments' freeze, not web's
    assert "policy-freeze" not in _rules(web) and web["band"] == "severe"
    reports = _service(report, "reports")  # exhausted, but its policy does not freeze
    assert _rules(reports) == ["canary-only"]
    assert reports["advice"][0]["inputs"]["slos"][0]["state"] == "exhausted"


def test_restore_data_names_the_slo_without_data(report: dict[str, Any]) -> None:
    web = _service(report, "web")
    assert _rules(web) == ["canary-only", "restore-data"]
    assert [s["slo"] for s in web["advice"][1]["inputs"]["slos"]] == ["web-probe"]
    others = [s for s in report["services"] if s["service"] != "web"]
    assert all("restore-data" not in _rules(s) for s in others)


def test_a_fleet_wide_freeze_is_a_human_decision_at_severe_and_not_said_at_high(
    report: dict[str, Any], fleet: Fleet, measurements: list[Measurement]
) -> None:
    assert report["fleet"]["band"] == "severe"
    (advice,) = report["fleet"]["advice"]
    assert advice["rule"] == "fleet-freeze-is-human" and "human decision" in advice["message"]
    assert advice["inputs"]["exhausted"] == ["frontend", "payments-db", "reports"]
    assert advice["inputs"]["servicesByBand"]["severe"] == ["payments", "reports", "search", "web"]
    smaller = Fleet(fleet[name] for name in ("catalog", "docs", "catalog-images", "search"))  # 5 of 14: high
    high = risk_report(smaller, measurements, END)["fleet"]
    assert high["band"] == "high" and high["score"] == pytest.approx(5 / 14) and high["advice"] == []


def test_a_dependency_cycle_ends_where_it_closes(tmp_path: Path, measurements: list[Measurement]) -> None:
    head = "metadata: {name: payments-db}\nspec:\n"
    text = declarations().replace(head, head + "  gate: {dependencies: [frontend]}\n")
    cyclic = load_fleet(tmp_path, text)
    slos = {slo["slo"]: slo for s in risk_report(cyclic, measurements, END)["services"] for slo in s["slos"]}
    assert [p["slo"] for p in slos["payments-db"]["parts"]] == ["frontend"]
    assert (slos["payments-db"]["state"], slos["payments-db"]["via"]) == ("exhausted", None)
    assert (slos["frontend"]["state"], slos["frontend"]["via"]) == ("exhausted", "payments-db")


# --- the command ----------------------------


def _run(*args: str | Path, out: io.StringIO | None = None) -> Result:
    return run_govern("risk", *args, out=out)


def test_the_command_prints_the_builders_json(folder: Path, prometheus: str, report: dict[str, Any]) -> None:
    result = _run(folder, "--prometheus", prometheus, "--at", END.isoformat(), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(pretty_json(report))


def test_the_table_names_bands_and_advice(folder: Path, prometheus: str) -> None:
    out = io.StringIO()
    result = _run(folder, "--prometheus", prometheus, "--at", END.isoformat(), out=out)
    assert result.exit_code == 0, result.output
    text = out.getvalue()
    for words in ("payments", "severe", "elevated", "frontend (critical) exhausted via payments-db",
                  "payments: policy-freeze", "fleet: fleet-freeze-is-human"):  # fmt: skip
        assert words in text, words


@pytest.mark.parametrize(
    ("args", "option"),
    [((), "--prometheus"), (("--prometheus", "http://127.0.0.1:1", "--format", "csv"), "--format")],
)
def test_usage_errors_name_the_option(folder: Path, args: tuple[str, ...], option: str) -> None:
    result = _run(folder, *args)
    assert result.exit_code == 2 and option in result.output, result.output


def test_serve_exports_the_risk_as_metrics_worked_out_once_per_instant(
    fleet: Fleet, prometheus: str, report: dict[str, Any]
) -> None:
    """`/metrics`' risk series are the report's numbers (the hand-computed ones above), each band one series; the
    fleet is measured once per evaluation instant however often it is scraped."""
    clock = [END]
    evaluator = Evaluator(fleet, PrometheusBackend(prometheus), _NoLog(), clock=lambda: clock[0])
    asked: list[datetime] = []

    def evaluate(at: datetime) -> list[Measurement]:
        asked.append(at)
        return evaluator.evaluate(at)

    metrics = EvaluatorMetrics()
    metrics.watch_risk(FleetRiskNow(fleet, evaluate, evaluator.now), BAND_NAMES)
    risk = ("sloplane_fleet_risk", "sloplane_service_risk")
    samples = {}
    for _ in range(3):
        families = text_string_to_metric_families(metrics.render()[0].decode())
        found = [sample for family in families for sample in family.samples if sample.name.startswith(risk)]
        samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value for sample in found}
    assert asked == [END]
    fleet_entry = report["fleet"]
    assert samples[("sloplane_fleet_risk_score", ())] == pytest.approx(fleet_entry["score"])
    assert samples[("sloplane_fleet_risk_no_data", ())] == pytest.approx(fleet_entry["noData"])
    current = [labels for (name, labels), value in samples.items() if name == "sloplane_fleet_risk_band" and value]
    assert current == [(("band", fleet_entry["band"]),)]
    for service in report["services"]:
        bands = {dict(labels)["band"]: value for (name, labels), value in samples.items()
                 if name == "sloplane_service_risk_band" and dict(labels)["service"] == service["service"]}  # fmt: skip
        assert bands == {band: float(band == service["band"]) for band in BAND_NAMES}
        if service["score"] is not None:
            key = ("sloplane_service_risk_score", (("service", service["service"]),))
            assert samples[key] == pytest.approx(service["score"])
    clock[0] = END + timedelta(minutes=1)  # the next evaluation instant: worked out again
    metrics.render()
    assert asked == [END, END + timedelta(minutes=1)]
