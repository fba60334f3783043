"""Pyrra import: Pyrra's own examples load, render rules promtool accepts, and count events as events.

The corpus (`tests/data/corpus/pyrra/`, listed in its MANIFEST.yaml with each file's origin) holds
Pyrra's examples and test configs and a few files of our own; invalid ones list every error they
must report, by line, in one run.
"""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloplane.core import names
from sloplane.core.budget import Tier
from sloplane.core.durations import parse_duration
from sloplane.core.serialize import to_yaml
from sloplane.declaration.diagnostics import Diagnostic, Severity
from sloplane.declaration.model import Declaration
from sloplane.interop import LoadResult, load_paths, pyrra
from sloplane.render.prometheus import rule_file
from sloplane.semantics.recording import own_windows
from tests.conftest import run_cli

CORPUS = Path(__file__).parent / "data" / "corpus" / "pyrra"
MANIFEST: list[dict[str, Any]] = yaml.safe_load((CORPUS / "MANIFEST.yaml").read_text())["files"]
VALID = [entry for entry in MANIFEST if entry["verdict"] == "valid"]
INVALID = [entry for entry in MANIFEST if entry["verdict"] == "invalid"]
ORIGIN = re.compile(r"^github\.com/pyrra-dev/pyrra@[0-9a-f]{40}:\S+$")

PYRRA_28D_TABLE = [
    ("page", "1h", "5m", 14.0, "2m"),
    ("page", "6h", "30m", 7.0, "15m"),
    ("ticket", "1d", "2h", 2.0, "1h"),
    ("ticket", "4d", "6h", 1.0, "3h"),
]
"""Pyrra's table for a 28-day window, as its `slo/rules.go` comments state each row (critical rows page)."""


def _load(*relative: str) -> LoadResult:
    return load_paths([CORPUS / path for path in relative])


def _declarations(*relative: str) -> dict[str, Declaration]:
    result = _load(*relative)
    assert result.errors == [], [d.render() for d in result.errors]
    return {declaration.name: declaration for declaration in result.declarations}


def _line_of(path: Path, text: str, after: int = 0) -> int:
    """The 1-based line where `text` first appears at or after line `after`."""
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if number >= after and text in line)


def _promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False)


def _alerts(declaration: Declaration, fleet: dict[str, Declaration]) -> list[dict[str, Any]]:
    return [rule for group in rule_file(declaration, fleet)["groups"] for rule in group["rules"] if "alert" in rule]


def test_the_manifest_lists_every_corpus_file_with_its_origin() -> None:
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.yaml") if p.name != "MANIFEST.yaml"}
    assert {entry["file"] for entry in MANIFEST} == on_disk
    for entry in MANIFEST:
        assert entry["origin"] == "sloplane" or ORIGIN.match(entry["origin"]), entry
        assert entry["license"] == "Apache-2.0" and entry["note"]
        assert (entry["verdict"] == "invalid") == bool(entry.get("errors")), entry["file"]
    kinds = {
        kind
        for entry in VALID
        for doc in yaml.safe_load_all((CORPUS / entry["file"]).read_text())
        if doc
        for kind in doc["spec"]["indicator"]
    }
    assert kinds == {"ratio", "latency", "latencyNative", "bool_gauge"}


@pytest.mark.parametrize("entry", VALID, ids=[entry["file"] for entry in VALID])
def test_valid_files_import_and_render_rules_promtool_accepts(entry: dict[str, Any], tmp_path: Path) -> None:
    path = CORPUS / entry["file"]
    result = load_paths([path])
    assert result.errors == [], [d.render() for d in result.errors]
    assert len(result.slos) == entry["slos"]
    assert {slo.source_format for slo in result.slos} == {pyrra.API_VERSION}
    line_count = len(path.read_text().splitlines())
    for warning in result.warnings:
        assert warning.path == str(path) and 1 <= warning.position.line <= line_count, warning.render()
    fleet = {declaration.name: declaration for declaration in result.declarations}
    files = []
    for name, declaration in fleet.items():
        (tmp_path / f"{name}.rules.yaml").write_text(to_yaml(rule_file(declaration, fleet)))
        files.append(f"{name}.rules.yaml")
    checked = _promtool("check", "rules", *files, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _matches(error: Diagnostic, expected: dict[str, Any]) -> bool:
    return (error.position.line, error.field) == (expected["line"], expected["field"]) and expected[
        "message"
    ] in error.message


@pytest.mark.parametrize("entry", INVALID, ids=[entry["file"] for entry in INVALID])
def test_invalid_files_report_every_problem_by_line_in_one_run(entry: dict[str, Any]) -> None:
    result = _load(entry["file"])
    assert len(result.slos) == entry["slos"]
    unexpected = [e.render() for e in result.errors if not any(_matches(e, x) for x in entry["errors"])]
    missing = [x for x in entry["errors"] if not any(_matches(e, x) for e in result.errors)]
    assert (unexpected, missing) == ([], [])
    assert all(error.path == str(CORPUS / entry["file"]) for error in result.errors)


def test_the_cli_writes_declarations_that_load_again_identically(tmp_path: Path) -> None:
    sources = [
        "own/alerting-options.yaml",
        "testdata/types-test-examples.yaml",
        "examples/nginx.yaml",
        "examples/caddy-response-latency.yaml",
        "examples/prometheus-probe-success.yaml",
        "examples/pyrra-connect-latency.yaml",
    ]
    imported = run_cli("import", "pyrra", *(CORPUS / s for s in sources), "--out", tmp_path / "out")
    assert imported.code == 0, imported.stderr
    again = load_paths([tmp_path / "out"])
    assert again.errors == [] and {slo.source_format for slo in again.slos} == {"sloplane.dev/v1alpha1"}
    written = {d.name: d for d in again.declarations}
    assert written == _declarations(*sources)
    assert len(written) == sum(entry["slos"] for entry in MANIFEST if entry["file"] in sources)


def test_grouping_cannot_be_kept_and_says_so_at_its_line() -> None:
    path = CORPUS / "examples" / "pyrra-connect-errors.yaml"
    result = load_paths([path])
    (warning,) = [w for w in result.warnings if w.field == "spec.indicator.ratio.grouping"]
    assert warning.position.line == _line_of(path, "grouping:")
    assert "service, method" in warning.message and "per group" in warning.message
    (declaration,) = result.declarations
    assert declaration.spec.sli.ratio is not None and "by (" not in str(declaration.spec.sli.ratio)


def test_each_indicator_kind_counts_what_pyrra_divides() -> None:
    fleet = _declarations("examples/caddy-response-latency.yaml", "examples/prometheus-probe-success.yaml")
    fleet |= _declarations("examples/pyrra-connect-latency.yaml", "testdata/types-test-examples.yaml")
    fleet |= _declarations("examples/thanos-http.yaml")
    caddy = fleet["caddy-response-latency"].spec.sli.ratio  # regex matchers: a ratio of bucket over count
    assert caddy is not None and caddy.good is not None
    assert caddy.good.prometheus == (
        'sum(increase(caddy_http_response_duration_seconds_bucket{job="caddy",handler="subroute",code!~"5..",'
        'le="0.05"}[{{window}}]))'
    )
    thanos = fleet["thanos-query"].spec.sli.ratio
    assert thanos is not None and thanos.errors is not None and thanos.errors.prometheus is not None
    assert thanos.errors.prometheus.startswith("sum(increase(http_requests_total{") and "rate(" not in str(thanos)
    latency = fleet["grpc-latency"].spec.sli.latency  # a plain selector: our latency SLI, le="0.6" is 600ms
    assert latency is not None and latency.threshold == timedelta(seconds=0.6)
    assert latency.metric == "grpc_server_handling_seconds" and latency.selector["grpc_method"] == "Write"
    probe = fleet["prometheus-blackbox-probe-success"].spec.sli.probe
    assert probe is not None and probe.metric == "probe_success" and probe.selector == {}
    native = fleet["pyrra-connect-latency"].spec.sli.ratio
    assert native is not None and native.errors is not None and native.errors.prometheus is not None
    seconds = parse_duration("200ms").total_seconds()
    assert f"histogram_fraction(0, {seconds!r}, sum(increase(" in native.errors.prometheus
    assert native.total.prometheus is not None and native.total.prometheus.startswith("histogram_count(sum(increase(")


def test_pyrra_burn_rate_table_is_written_out_and_reaches_the_alerts() -> None:
    fleet = _declarations("examples/nginx.yaml")
    declaration = fleet["nginx-api-errors"]  # 4w, 99.9
    windows = declaration.spec.alerting.windows
    table = [(w.tier.value, w.long, w.reset_window, w.factor, w.for_) for w in windows]
    assert table == [
        (tier, parse_duration(long), parse_duration(short), factor, parse_duration(pending))
        for tier, long, short, factor, pending in PYRRA_28D_TABLE
    ]
    budget = (100 - 99.9) / 100
    alerts = _alerts(declaration, fleet)
    assert [(a["labels"]["long_window"], a["labels"]["short_window"], a["for"]) for a in alerts] == [
        (long, short, pending) for _, long, short, _, pending in PYRRA_28D_TABLE
    ]
    for alert, (tier, *_, factor, _) in zip(alerts, PYRRA_28D_TABLE, strict=True):
        assert alert["alert"] == "ErrorBudgetBurn"
        assert alert["labels"]["severity"] == ("critical" if tier == "page" else "warning")
        assert float(alert["expr"].rsplit("> ", 1)[1]) == pytest.approx(factor * budget, rel=1e-12)


def test_a_window_of_twice_28_days_doubles_every_duration_of_the_table(tmp_path: Path) -> None:
    text = (CORPUS / "examples" / "pyrra-filesystem-errors.yaml").read_text().replace("window: 1w", "window: 8w")
    (tmp_path / "slo.yaml").write_text(text)
    result = load_paths([tmp_path / "slo.yaml"])
    (declaration,) = result.declarations
    assert [(w.long, w.reset_window, w.for_) for w in declaration.spec.alerting.windows] == [
        (2 * parse_duration(long), 2 * parse_duration(short), 2 * parse_duration(pending))
        for _, long, short, _, pending in PYRRA_28D_TABLE
    ]


def test_alerting_options_map_to_tiers_names_and_labels() -> None:
    path = CORPUS / "own" / "alerting-options.yaml"
    result = load_paths([path])
    slos = {d.name: d.spec for d in result.declarations}
    latency = slos["checkout-latency"]
    assert (latency.service, latency.owners.team, latency.alerting.name) == (
        "checkout",
        "payments",
        "CheckoutBudgetBurn",
    )
    assert latency.alerting.page_alert.labels == {"severity": "page"}
    assert latency.alerting.labels == {"channel": "#payments"}
    assert latency.alerting.annotations == {"runbook": "https://runbooks.example.com/checkout"}
    assert latency.sli.latency is not None and latency.sli.latency.threshold == timedelta(milliseconds=250)
    assert slos["checkout-quiet"].alerting.enabled_tiers() == ()
    assert slos["checkout-errors"].alerting.enabled_tiers() == ()
    assert slos["checkout-errors"].objective == 99.95
    assert slos["checkout-probe"].alerting.enabled_tiers() == (Tier.PAGE, Tier.TICKET)
    assert all(w.short is not None and w.short >= timedelta(minutes=1) for w in slos["checkout-probe"].alerting.windows)
    absent = [w for w in result.warnings if "absent alert" in w.message]
    # Pyrra's absent alert is on unless `absent: false`, even with burn-rate alerts disabled
    quiet = _line_of(path, "name: checkout-quiet")
    assert [w.position.line for w in absent] == [
        _line_of(path, "spec:", _line_of(path, "name: checkout-probe")),
        _line_of(path, "alerting:", quiet),
    ]
    clamped = [w for w in result.warnings if "under a minute" in w.message]
    assert [w.position.line for w in clamped] == [_line_of(path, "window: 1d")]


def test_service_and_owner_fall_back_with_warnings_naming_the_label() -> None:
    path = CORPUS / "examples" / "prometheus-operator.yaml"
    result = load_paths([path])
    (declaration,) = result.declarations
    assert (declaration.spec.service, declaration.spec.owners.team) == ("monitoring", pyrra.UNASSIGNED_TEAM)
    messages = {w.field: w for w in result.warnings if w.severity is Severity.WARNING}
    assert "pyrra.dev/team" in messages["metadata.labels"].message
    assert messages["metadata.namespace"].position.line == _line_of(path, "namespace: monitoring")
    parca = _declarations("examples/parca-grpc-queryrange-errors.yaml")["parca-grpc-queryrange-errors"]
    assert parca.spec.owners.team == "parca"


SERIES_PER_MINUTE = {"success": 990, "error": 10}
"""Requests per minute of the counter's two series: 1,000 in all, 1% errors."""


def test_imported_event_counts_are_counts_in_promtool(tmp_path: Path) -> None:
    """A counter growing 1,000 requests a minute: 60,000 events in the period after an hour, 600 bad."""
    fleet = _declarations("examples/pyrra-kubernetes-errors.yaml")
    (declaration,) = fleet.values()
    name = declaration.name
    base = min(own_windows(declaration))
    minutes = 60
    total_per_minute = sum(SERIES_PER_MINUTE.values())
    expected = {
        names.EVENTS_PERIOD: total_per_minute * minutes,
        names.windowed(names.EVENTS, base): total_per_minute * base / timedelta(minutes=1),
        names.windowed(names.BAD_EVENTS, base): SERIES_PER_MINUTE["error"] * base / timedelta(minutes=1),
        names.ERROR_RATIO_PERIOD: SERIES_PER_MINUTE["error"] / total_per_minute,
    }
    (tmp_path / "slo.rules.yaml").write_text(to_yaml(rule_file(declaration, fleet)))
    series = [
        {
            "series": f'controller_runtime_reconcile_total{{controller="servicelevelobjective",result="{result}"}}',
            "values": f"0+{per_minute}x{minutes + 10}",
        }
        for result, per_minute in SERIES_PER_MINUTE.items()
    ]
    tests = [
        {
            "expr": f'count(abs({series_name}{{slo="{name}"}} - {value!r}) / {value!r} < 1e-9)',
            "eval_time": f"{minutes}m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
        for series_name, value in expected.items()
    ]
    test_file = {
        "rule_files": ["slo.rules.yaml"],
        "evaluation_interval": "1m",
        "group_eval_order": [names.rule_group(name), names.budget_group(name)],
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "slo.test.yaml").write_text(to_yaml(test_file))
    tested = _promtool("test", "rules", "slo.test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert expected[names.EVENTS_PERIOD] == 60_000
