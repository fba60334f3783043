"""google/slo-generator configs through the real loader, renderer, CLI and evaluator.

The corpus (tests/data/corpus/slo-generator/, described by its MANIFEST.yaml) holds slo-generator's
own Prometheus samples and shared config, samples of other backends (refused at `spec.backend`), and
files written here. Valid files import with no error and render rules promtool accepts; invalid
ones report every expected problem at its line in one load. The import keeps the meaning: over the
same Prometheus, sloplane's evaluator and slo-generator's own Prometheus backend compute the same SLI.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sloplane.core.serialize import to_yaml
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.measuring.measure import Measurer
from sloplane.interop import load_paths
from sloplane.interop.formats import by_command
from sloplane.render.prometheus import rule_file
from sloplane.sandbox import PrometheusSandbox, Segment, expected_counts, http_traffic
from sloplane.semantics.subjects import Fleet
from tests.conftest import ROOT, run_cli

CORPUS = Path(__file__).parent / "data" / "corpus" / "slo-generator"
MANIFEST: list[dict[str, Any]] = yaml.safe_load((CORPUS / "MANIFEST.yaml").read_text())["files"]
VALID = [entry for entry in MANIFEST if entry["verdict"] == "valid"]
INVALID = [entry for entry in MANIFEST if entry["verdict"] == "invalid"]
PEER_PYTHON = ROOT / "bench" / ".slo-generator-venv" / "bin" / "python"
RATIO_SAMPLE = "slo_prom_metrics_availability_ratio.yaml"


def _paths(entry: dict[str, Any]) -> list[Path]:
    """The file, and the shared config it is read with (as `slo-generator compute -c` would)."""
    config = [CORPUS / entry["config"]] if "config" in entry else []
    return [*config, CORPUS / entry["file"]]


def _ids(entry: dict[str, Any]) -> str:
    return str(entry["file"]).removesuffix(".yaml")


def test_the_manifest_describes_every_file_and_where_it_came_from() -> None:
    listed = {entry["file"] for entry in MANIFEST}
    assert listed == {path.name for path in CORPUS.glob("*.yaml")} - {"MANIFEST.yaml"}
    upstream = [entry for entry in MANIFEST if str(entry["origin"]).startswith("github.com/google/slo-generator@")]
    assert len(upstream) >= 10
    for entry in upstream:
        commit, path = str(entry["origin"]).split("@", 1)[1].split(":", 1)
        assert len(commit) == 40 and path.startswith("samples/") and entry["license"] == "Apache-2.0"
    prometheus_samples = [e for e in upstream if "/prometheus/" in e["origin"]]
    assert len(prometheus_samples) == 4 and all(e["verdict"] == "valid" for e in prometheus_samples)
    assert all(entry["expect"] for entry in INVALID)


def test_the_loader_hands_slo_configs_and_the_shared_config_to_the_importer() -> None:
    importer = by_command("slo-generator")
    config = yaml.safe_load((CORPUS / "config.yaml").read_text())
    sample = yaml.safe_load((CORPUS / RATIO_SAMPLE).read_text())
    assert importer.detects(config) and importer.detects(sample)
    assert not importer.detects({"apiVersion": "sloplane.dev/v1alpha1", "backends": {}})


@pytest.mark.parametrize("entry", VALID, ids=_ids)
def test_valid_files_import_without_errors(entry: dict[str, Any]) -> None:
    result = load_paths(_paths(entry))
    assert result.errors == [], [d.render() for d in result.errors]
    mine = [slo for slo in result.slos if slo.source.path == str(CORPUS / entry["file"])]
    assert len(mine) == len(result.slos) == entry["slos"]


def test_imported_rules_pass_promtool(tmp_path: Path) -> None:
    """Every valid file's rules, checked by one promtool run (keeps the test fast)."""
    files: list[Path] = []
    for entry in VALID:
        declarations = load_paths(_paths(entry)).declarations
        fleet = Fleet(declarations)
        for declaration in declarations:
            path = tmp_path / f"{_ids(entry)}-{declaration.name}.rules.yaml"
            path.write_text(to_yaml(rule_file(declaration, fleet)))
            files.append(path)
    assert len(files) == sum(entry["slos"] for entry in VALID)
    checked = subprocess.run(
        ["promtool", "check", "rules", *map(str, files)], capture_output=True, text=True, check=False, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("entry", INVALID, ids=_ids)
def test_invalid_files_report_every_problem_at_its_line(entry: dict[str, Any]) -> None:
    result = load_paths(_paths(entry))
    assert result.failed()
    path = str(CORPUS / entry["file"])
    found = [(d.position.line, d.message) for d in result.errors if d.path == path]
    for expected in entry["expect"]:
        assert any(line == expected["line"] and expected["message"] in message for line, message in found), (
            expected,
            found,
        )
    assert len(found) == len(entry["expect"]), found


def test_the_cli_refuses_an_invalid_file_with_lines_and_no_traceback() -> None:
    entry = next(e for e in INVALID if e["file"] == "invalid-spec.yaml")
    result = run_cli("import", "slo-generator", *_paths(entry))
    assert result.code == 1
    assert "Traceback" not in result.stdout + result.stderr
    for expected in entry["expect"]:
        assert f"invalid-spec.yaml:{expected['line']}:" in result.stderr and expected["message"] in result.stderr


def test_imported_declarations_written_by_the_cli_load_again_identically(tmp_path: Path) -> None:
    inputs = [CORPUS / "config.yaml", CORPUS / RATIO_SAMPLE, CORPUS / "sloplane-checkout.yaml"]
    inputs.append(CORPUS / "slo_prom_metrics_latency_distribution_cut.yaml")
    out = tmp_path / "declarations"
    result = run_cli("import", "slo-generator", *inputs, "--out", out)
    assert result.code == 0, result.stderr
    imported = {slo.name: slo.declaration for slo in load_paths(inputs).slos}
    reloaded = load_paths([out])
    assert reloaded.errors == []
    assert {slo.name: slo.declaration for slo in reloaded.slos} == imported
    assert len(imported) == 5


def test_a_missing_shared_config_keeps_default_alerts_with_a_warning() -> None:
    result = load_paths([CORPUS / RATIO_SAMPLE])
    assert result.errors == []
    (slo,) = result.slos
    assert slo.declaration.spec.alerting.windows == []
    assert any("config.yaml, which was not given" in d.message for d in result.warnings)


def test_the_policy_becomes_page_windows_and_the_period() -> None:
    result = load_paths([CORPUS / "config.yaml", CORPUS / RATIO_SAMPLE])
    spec = result.slos[0].declaration.spec
    steps = yaml.safe_load((CORPUS / "config.yaml").read_text())["error_budget_policies"]["default"]["steps"]
    paging = [(timedelta(seconds=s["window"]), float(s["burn_rate_threshold"])) for s in steps if s["alert"]]
    assert [(w.long, w.factor) for w in spec.alerting.windows] == paging
    assert {w.tier.value for w in spec.alerting.windows} == {"page"} and not spec.alerting.ticket
    assert spec.window.rolling == max(timedelta(seconds=s["window"]) for s in steps if s["burn_rate_threshold"] <= 1)
    assert spec.objective == 99.9  # goal 0.999 x 100, exactly
    informational = [d for d in result.warnings if "alert: false" in d.message]
    assert len(informational) == sum(1 for s in steps if not s["alert"])


def test_names_owners_and_services_come_from_the_labels(write: Any) -> None:
    path = write(
        "slo.yaml",
        """\
        apiVersion: sre.google.com/v2
        kind: ServiceLevelObjective
        metadata:
          name: Not_A_Name
          labels: {service_name: Web Shop, feature_name: cart, slo_name: availability}
        spec:
          description: x
          backend: prometheus
          method: good_bad_ratio
          service_level_indicator: {filter_good: 'a_total{code="200"}', filter_valid: a_total}
          goal: 0.99
        """,
    )
    result = load_paths([path])
    (slo,) = result.slos
    assert slo.name == "web-shop-cart-availability"
    assert slo.declaration.spec.service == "web-shop"
    assert slo.declaration.spec.owners.team == "unassigned"
    owners = [d for d in result.warnings if "team=<name>" in d.message]
    assert owners and owners[0].position.line == 5


# --- the meaning: sloplane's evaluator and slo-generator on one Prometheus --------------------------

START = datetime(2024, 5, 1, tzinfo=UTC)
AT = START + timedelta(hours=4)
"""The evaluation instant: history runs on for 10 minutes after it, so both tools read inside the data."""
PEER_SCRIPT = textwrap.dedent(
    """\
    import json, sys
    import requests
    from slo_generator.backends.prometheus import PrometheusBackend

    url, at, window, config = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])

    class PinnedClient:
        # slo-generator's Prometheus client sends no time; this one asks at the test's instant.
        def query(self, metric):
            return requests.get(url + "/api/v1/query", params={"query": metric, "time": at}, timeout=30).text

    good, bad = PrometheusBackend(client=PinnedClient()).good_bad_ratio(int(at), window, config)
    print(json.dumps([good, bad]))
    """
)


def _peer_counts(url: str, window: timedelta, config: dict[str, Any]) -> tuple[float, float]:
    """slo-generator's own good_bad_ratio (its Prometheus backend, in its venv) at AT, unrounded.

    Its report rounds good / (good + bad) to six decimals; the backend's counts are compared instead.
    Without the venv (bench/evaluator.py makes it), its documented query is sent by hand:
    `sum(increase(<filter>[<window>s]))`, bad = valid - good.
    """
    seconds = int(window.total_seconds())
    if PEER_PYTHON.exists():
        argv = [str(PEER_PYTHON), "-c", PEER_SCRIPT, url, str(AT.timestamp()), str(seconds), json.dumps(config)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        good, bad = json.loads(done.stdout)
        return float(good), float(bad)
    measurement = config["spec"]["service_level_indicator"]

    def count(selector: str) -> float:
        query = f"sum(increase({selector}[{seconds}s]))"
        params: dict[str, str | float] = {"query": query, "time": AT.timestamp()}
        answer = requests.get(f"{url}/api/v1/query", params=params, timeout=30).json()
        return float(answer["data"]["result"][0]["value"][1])

    good = count(measurement["filter_good"])
    return good, count(measurement["filter_valid"]) - good


def test_the_evaluator_computes_the_sli_slo_generator_computes(tmp_path: Path) -> None:
    sample = yaml.safe_load((CORPUS / RATIO_SAMPLE).read_text())
    segments = [
        Segment(timedelta(hours=3), 600.0, 0.0005),
        Segment(timedelta(minutes=40), 600.0, 0.04),
        Segment(timedelta(minutes=30), 600.0, 0.002),
    ]
    traffic = http_traffic(
        segments, start=START, metric="prometheus_http_requests_total", labels={"handler": "/metrics"}
    )
    declarations = load_paths([CORPUS / "config.yaml", CORPUS / RATIO_SAMPLE]).declarations
    fleet = Fleet(declarations)
    window = timedelta(hours=1)
    with PrometheusSandbox(tmp_path / "prometheus", [traffic]) as sandbox:
        measurer = Measurer(fleet, PrometheusBackend(sandbox.url), analysis_windows=(window,))
        targets = [target for d in declarations for target in measurer.declared_subjects(d)]
        (measurement,) = measurer.measure(targets, AT).values()
        good, bad = _peer_counts(sandbox.url, window, sample)
    measured = measurement.window(window)
    assert measured is not None and measured.error_ratio is not None
    ours = 1 - measured.error_ratio
    theirs = good / (good + bad)
    hand_bad, hand_total = expected_counts(traffic, AT, window)
    assert ours == pytest.approx(theirs, abs=1e-9, rel=1e-9)
    assert ours == pytest.approx(1 - hand_bad / hand_total, abs=1e-9, rel=1e-9)
    assert 0.96 < ours < 0.99  # the window straddles the 4% burn: a wrong window would read another SLI
