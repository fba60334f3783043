"""A shadow objective (`spec.shadow`, issue 18): validated with the declaration, rendered as dry-run analysis
metrics beside the real ones (checked against Argo Rollouts' CRD), and decided beside every real gate decision on a
real Prometheus, recorded in the same record and never acting.

The traffic: 0.5% errors steadily for a day. Against 99% that is half the budget's pace (burn 0.5: pass); against
the shadow's 99.9 it is 5× (the budget spent: fail). Every expected number is worked out here from that rate.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloplane.declaration.model import Declaration
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import GateRequest, Outcome
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.assessments import SqliteAssessments
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.interop.loader import load_paths
from sloplane.render.argo_rollouts import SHADOW_PREFIX, analysis_template
from sloplane.render.pipelines import PipelineOptions
from sloplane.sandbox import PrometheusSandbox, Segment, http_traffic
from sloplane.semantics.subjects import Fleet, subjects
from tests.conftest import run_cli
from tests.evaluator_data import load_fleet
from tests.kube import crd_errors

END = datetime(2024, 5, 1, tzinfo=UTC)
START = END - timedelta(hours=26)
ERRORS = 0.005


def _slo(shadow: str = "shadow: {objective: 99.9}", provider: str = "prometheus") -> str:
    return textwrap.dedent(f"""\
        apiVersion: sloplane.dev/v1alpha1
        kind: ServiceLevelObjective
        metadata: {{name: shop}}
        spec:
          service: shop
          owners: {{team: sre}}
          objective: 99.0
          window: 1d
          sli: {{http: {{metric: http_requests_total, selector: {{job: shop}}}}}}
          gate: {{analysis: {{provider: {provider}}}}}
          {shadow}
        """)


def _declaration(text: str) -> Declaration:
    return Declaration.model_validate(yaml.safe_load(text))


@pytest.mark.parametrize(
    ("shadow", "field", "fragment"),
    [
        ("shadow: {}", "spec.shadow", "a shadow tries an 'objective', a 'gate' policy, or both"),
        ("shadow: {objective: 100}", "spec.shadow.objective", ""),
        ("shadow: {objective: 99.9, gate: {minBudget: 3}}", "spec.shadow.gate.minBudget", ""),
    ],
)
def test_a_bad_shadow_is_named_by_line_and_field(tmp_path: Path, shadow: str, field: str, fragment: str) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(_slo(shadow))
    (error,) = load_paths([path]).errors
    assert (error.field, error.position.line) == (field, 11) and fragment in error.message


def test_the_analysis_template_runs_the_shadows_metrics_in_dry_run() -> None:
    declaration = _declaration(_slo())
    (subject,) = subjects(declaration)
    template = analysis_template(declaration, subject, {}, PipelineOptions())
    plain = analysis_template(_declaration(_slo(shadow="")), subject, {}, PipelineOptions())
    metrics = template["spec"]["metrics"]
    real = [metric for metric in metrics if not metric["name"].startswith(SHADOW_PREFIX)]
    shadow = [metric for metric in metrics if metric["name"].startswith(SHADOW_PREFIX)]
    assert real == plain["spec"]["metrics"], "the real metrics are the declaration's own"
    assert [m["name"] for m in shadow] == [SHADOW_PREFIX + m["name"] for m in real]
    assert template["spec"]["dryRun"] == [{"metricName": f"{SHADOW_PREFIX}.*"}] and "dryRun" not in plain["spec"]
    budget = {m["name"]: m["provider"]["prometheus"]["query"] for m in metrics}
    assert "/ 0.01" in budget["budget-remaining"] or "0.01" in budget["budget-remaining"]
    assert budget[SHADOW_PREFIX + "budget-remaining"] != budget["budget-remaining"]  # read against 99.9
    assert "0.001" in budget[SHADOW_PREFIX + "budget-remaining"]
    assert crd_errors(template, "argo-rollouts.analysis-template-crd.yaml") == []


def test_the_web_provider_has_no_second_gate_metric() -> None:
    declaration = _declaration(_slo(provider="web"))
    (subject,) = subjects(declaration)
    template = analysis_template(declaration, subject, {}, PipelineOptions())
    assert [m["name"] for m in template["spec"]["metrics"]] == ["sloplane-gate"] and "dryRun" not in template["spec"]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    traffic = http_traffic([Segment(END - START, 100.0, ERRORS)], start=START, labels={"job": "shop"})
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), [traffic]) as sandbox:
        yield sandbox


@pytest.fixture
def evaluator(prometheus: PrometheusSandbox, tmp_path: Path) -> Iterator[Evaluator]:
    fleet: Fleet = load_fleet(tmp_path, _slo())
    log = SqliteDecisionLog(tmp_path / "decisions.db")
    yield Evaluator(fleet, PrometheusBackend(prometheus.url), log)
    log.close()


def test_the_shadow_decides_beside_the_real_decision_and_never_acts(evaluator: Evaluator) -> None:
    (decision,) = evaluator.gate(GateRequest(slo="shop", at=END, revision="r1")).decisions
    assert decision.outcome is Outcome.PASS
    shadow = decision.shadow
    assert shadow is not None and shadow.outcome is Outcome.FAIL and shadow.objective == 99.9
    measured = decision.measurement
    assert measured is not None and measured.period_error_ratio == pytest.approx(ERRORS, rel=1e-6)
    assert measured.budget_remaining == pytest.approx(1 - ERRORS / 0.01, rel=1e-6)  # half the budget left
    by_code = {reason.code: reason for reason in shadow.reasons}
    assert by_code["budget-exhausted"].values["budget_remaining"] == pytest.approx(1 - ERRORS / 0.001, rel=1e-6)
    assert "budget-exhausted" not in {reason.code for reason in decision.reasons}
    (recorded,) = evaluator.log.query(slo="shop", limit=1)
    assert recorded["decision"] == "pass" and recorded["shadow"]["decision"] == "fail"
    assert recorded["shadow"]["objective"] == 99.9 and recorded["shadow"]["policyVersion"] != recorded["policyVersion"]
    assert evaluator.log.verify().intact


def test_a_shadow_policy_alone_keeps_the_objective(prometheus: PrometheusSandbox, tmp_path: Path) -> None:
    """A shadow that tries only a policy (a 60% minimum of budget left) decides at the declared objective."""
    fleet = load_fleet(tmp_path, _slo("shadow: {gate: {minBudgetRemaining: 60}}"))
    with SqliteDecisionLog(tmp_path / "decisions.db") as log:
        evaluator = Evaluator(fleet, PrometheusBackend(prometheus.url), log)
        (decision,) = evaluator.gate(GateRequest(slo="shop", at=END)).decisions
    assert decision.outcome is Outcome.PASS and decision.shadow is not None
    assert (decision.shadow.objective, decision.shadow.outcome) == (99.0, Outcome.FAIL)
    assert decision.shadow.reasons[0].code == "budget-low"
    policy: dict[str, Any] = decision.shadow.policy
    assert policy["minBudgetRemaining"] == 60


def test_the_decisions_command_shows_the_shadow_beside_the_outcome(evaluator: Evaluator, tmp_path: Path) -> None:
    evaluator.gate(GateRequest(slo="shop", at=END, revision="r2"))
    listed = run_cli("decisions", "--db", str(tmp_path / "decisions.db"))
    assert listed.code == 0, listed.stderr
    assert "pass (shadow: fail)" in listed.stdout


def test_a_shadow_that_requires_an_assessment_reads_the_store(prometheus: PrometheusSandbox, tmp_path: Path) -> None:
    """Trying `requireAssessment` in the shadow reads the assessments as the real gate would: the shadow fails
    `assessment-missing` for a release that names none (not "this evaluator keeps none"), the real gate passes."""
    fleet = load_fleet(tmp_path, _slo("shadow: {gate: {requireAssessment: high}}"))
    with SqliteDecisionLog(tmp_path / "d.db") as log, SqliteAssessments(tmp_path / "d.db") as store:
        evaluator = Evaluator(fleet, PrometheusBackend(prometheus.url), log, assessments=store)
        (decision,) = evaluator.gate(GateRequest(slo="shop", at=END)).decisions
    assert decision.outcome is Outcome.PASS and decision.shadow is not None
    (first, *_) = decision.shadow.reasons
    assert (decision.shadow.outcome, first.code) == (Outcome.FAIL, "assessment-missing")
    assert "keeps none" not in first.message
