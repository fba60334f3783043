"""`sloplane render`: the file layout, atomicity, determinism, drift checks, and fleets at scale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from bench.fleet import write_fleet
from sloplane.interop import load_paths
from sloplane.render import bundle
from tests.conftest import EXAMPLES, minimal, run_cli

EXPECTED = {
    "alertmanager/alertmanager.yaml",
    "grafana/overview.json",
    *(f"grafana/{n}.json" for n in ("admin-console-probe", "checkout-availability", "checkout-deploy-success")),
    *(f"grafana/{n}.json" for n in ("payments-availability", "purchase-journey", "search-latency")),
    *(
        f"{kind}/{n}.{suffix}"
        for n in (
            "admin-console-probe",
            "checkout-availability",
            "checkout-deploy-success",
            "payments-availability",
            "purchase-journey",
        )
        for kind, suffix in (
            ("prometheus", "rules.yaml"),
            ("prometheus", "test.yaml"),
            ("kubernetes", "prometheusrule.yaml"),
        )
    ),
    "prometheus/search-latency.rules.yaml",
    "prometheus/search-latency.test.yaml",
    "kubernetes/search-latency.prometheusrule.yaml",
    # pipeline gates: every SLO whose targets include them (purchase-journey and payments list theirs)
    *(
        f"argo/{n}.{suffix}"
        for n in ("admin-console-probe", "checkout-availability", "checkout-deploy-success", "search-latency")
        for suffix in ("analysistemplate.yaml", "rollout-steps.yaml", "postsync-job.yaml", "syncfail-job.yaml")
    ),
    "argo/appproject-syncwindows.yaml",
    # payments-availability targets Datadog: its requests, and the overview of every Datadog SLO
    "datadog/payments-availability.json",
    "datadog/overview.json",
    *(
        f"spinnaker/{n}.webhook-stage.json"
        for n in ("admin-console-probe", "checkout-availability", "checkout-deploy-success", "search-latency")
    ),
    "spinnaker/checkout-availability.canary-config.json",  # the only staged one: Kayenta needs a canary scope
}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_writes_the_documented_layout(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("render", EXAMPLES, "--out", out)
    assert result.code == 0, result.stderr
    assert set(_tree(out)) == EXPECTED
    assert "checkout-availability" in result.stdout and "rendered" in result.stdout
    objects = list(yaml.safe_load_all((out / "kubernetes/admin-console-probe.prometheusrule.yaml").read_text()))
    assert [o["kind"] for o in objects] == ["PrometheusRule", "Probe"]
    assert json.loads((out / "grafana/overview.json").read_text())["uid"] == "sloplane-overview"


def test_render_is_deterministic_and_touches_nothing_unchanged(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli("render", EXAMPLES, "--out", first).code == 0
    assert run_cli("render", EXAMPLES, "--out", second).code == 0
    assert _tree(first) == _tree(second)
    again = run_cli("render", EXAMPLES, "--out", first)
    assert f"0 file(s) written, 0 removed, {len(EXPECTED)} unchanged" in again.stderr


def test_check_reports_drift_and_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("render", EXAMPLES, "--out", out).code == 0
    clean = run_cli("render", EXAMPLES, "--out", out, "--check")
    assert clean.code == 0 and "is up to date" in clean.stderr
    (out / "prometheus/search-latency.rules.yaml").write_text("groups: []\n")
    (out / "grafana/deleted-slo.json").write_text("{}")
    drift = run_cli("render", EXAMPLES, "--out", out, "--check")
    assert drift.code == 1
    assert f"would write {out / 'prometheus/search-latency.rules.yaml'}" in drift.stdout
    assert f"would remove {out / 'grafana/deleted-slo.json'}" in drift.stdout
    assert (out / "grafana/deleted-slo.json").exists()  # --check never writes
    fixed = run_cli("render", EXAMPLES, "--out", out)
    assert "1 file(s) written, 1 removed" in fixed.stderr and not (out / "grafana/deleted-slo.json").exists()


def test_bad_input_writes_nothing(tmp_path: Path, write: Any) -> None:
    out = tmp_path / "out"
    assert run_cli("render", EXAMPLES, "--out", out).code == 0
    before = _tree(out)
    broken = write("broken.yaml", minimal("extra").replace("99.9", "100"))
    failed = run_cli("render", EXAMPLES, broken, "--out", out)
    assert failed.code == 1 and "nothing done" in failed.stderr and "Traceback" not in failed.stderr
    assert _tree(out) == before


def test_a_large_fleet_renders_with_progress(tmp_path: Path) -> None:
    write_fleet(tmp_path / "fleet", 60, per_file=20)
    result = run_cli("render", tmp_path / "fleet", "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert len(list((tmp_path / "out" / "prometheus").glob("*.rules.yaml"))) == 60


def test_parallel_rendering_gives_the_same_bytes(tmp_path: Path, monkeypatch: Any) -> None:
    write_fleet(tmp_path / "fleet", 30, per_file=30)
    declarations = load_paths([tmp_path / "fleet"]).declarations
    serial = bundle.fleet_files(declarations)
    monkeypatch.setattr(bundle, "PARALLEL_FROM", 10)
    seen: list[str] = []
    parallel = bundle.fleet_files(declarations, progress=seen.append)
    assert parallel == serial
    assert sorted(seen) == sorted(d.name for d in declarations)
