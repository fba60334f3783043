"""The root Pulumi project, its example program, and `sloplane preview` (the program under mocks)."""

import shutil
from collections import Counter
from pathlib import Path

import yaml

from sloplane.components.preview import run_program
from tests.conftest import ROOT, run_cli


def test_pulumi_yaml_points_at_the_example_program() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert (ROOT / project["main"] / "__main__.py").is_file()


def test_the_example_program_registers_the_fleet_under_mocks() -> None:
    result = run_program(ROOT)
    assert result.counts() == Counter(
        {
            "sloplane:index:ServiceLevelObjective": 6,
            "kubernetes:monitoring.coreos.com/v1:PrometheusRule": 6,
            "kubernetes:core/v1:ConfigMap": 7,
            "kubernetes:monitoring.coreos.com/v1:Probe": 1,
            "sloplane:index:SloFleet": 1,
            # checkout-availability declares a gate: its AnalysisTemplates per stage, and the fleet's one
            # AppProject patch for its freeze
            "sloplane:index:DeploymentGate": 2,
            "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate": 2,
            "kubernetes:argoproj.io/v1alpha1:AppProjectPatch": 1,
            # payments-availability targets Datadog: its SLO, four burn-rate monitors and dashboard, the
            # fleet's Datadog overview, all through the program's one explicit Datadog provider
            "pulumi:providers:datadog": 1,
            "datadog:index/serviceLevelObjective:ServiceLevelObjective": 1,
            "datadog:index/monitor:Monitor": 4,
            "datadog:index/dashboardJson:DashboardJson": 2,
        }
    )
    provider, fleet = sorted(result.children(None), key=lambda r: r.type)
    assert fleet.type == "sloplane:index:SloFleet" and fleet.name == "examples"
    assert provider.type == "pulumi:providers:datadog"
    slos = [r for r in result.children(fleet.urn) if r.type == "sloplane:index:ServiceLevelObjective"]
    assert sorted(r.name for r in slos) == [  # qualified by the fleet: two fleets may hold one SLO
        "examples-admin-console-probe",
        "examples-checkout-availability",
        "examples-checkout-deploy-success",
        "examples-payments-availability",
        "examples-purchase-journey",
        "examples-search-latency",
    ]
    probe = next(r.urn for r in slos if r.name == "examples-admin-console-probe")
    probe_children = {r.type for r in result.children(probe)}
    assert probe_children == {
        "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
        "kubernetes:monitoring.coreos.com/v1:Probe",
        "kubernetes:core/v1:ConfigMap",
    }
    rule = next(r for r in result.resources if r.name == "examples-search-latency-rules")
    assert rule.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_preview_command_prints_the_tree_and_says_it_is_not_pulumi_preview() -> None:
    result = run_cli("preview", ROOT)
    assert result.code == 0, result.stderr
    assert "sloplane:index:SloFleet  examples" in result.stdout
    assert "kubernetes:monitoring.coreos.com/v1:PrometheusRule  examples-search-latency-rules" in result.stdout
    assert "34 resources" in result.stdout
    assert (
        "datadog:index/monitor:Monitor  examples-payments-availability-datadog-monitor-page-1h  (provider datadog)"
        in (result.stdout)
    )
    assert "Traceback" not in result.stderr and "Error" not in result.stderr, result.stderr
    help_text = run_cli("preview", "--help")
    assert "not `pulumi preview`" in help_text.stdout.replace("\n", " ").replace("  ", " ")


def test_preview_of_a_folder_without_a_project_is_an_error(tmp_path: object) -> None:
    result = run_cli("preview", tmp_path)
    assert result.code == 1 and "Pulumi.yaml" in result.stderr and "Traceback" not in result.stderr


def test_preview_runs_the_program_from_its_project_folder_as_pulumi_does(tmp_path: Path) -> None:
    """A program reading a relative path (a declarations folder, a key file) works from any caller's folder."""
    project = tmp_path / "stack"
    (project / "slos").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "slos" / "search-latency.yaml", project / "slos" / "search-latency.yaml")
    (project / "Pulumi.yaml").write_text("name: relative\nruntime: python\n")
    (project / "__main__.py").write_text(
        "from sloplane.components import SloFleet\n\nSloFleet('team', {'path': 'slos', 'namespace': 'shop'})\n"
    )
    result = run_cli("preview", project, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "kubernetes:monitoring.coreos.com/v1:PrometheusRule  team-search-latency-rules" in result.stdout
