"""Cross-document checks and lints, each pointing at the right line."""

from datetime import date
from pathlib import Path
from typing import Any

from sloplane.declaration import Severity
from sloplane.interop import load_paths
from tests.conftest import minimal

TODAY = date(2026, 11, 26)


def _load(*paths: Path) -> Any:
    return load_paths(list(paths), today=TODAY)


def _findings(result: Any) -> list[tuple[str, int, str, str]]:
    return [(d.severity.value, d.position.line, d.field, d.message) for d in result.diagnostics]


def test_duplicate_names_across_files_point_at_the_second(write: Any) -> None:
    first = write("a.yaml", minimal("x"))
    second = write("b.yaml", minimal("x"))
    result = _load(first, second)
    (finding,) = result.diagnostics
    assert finding.path == str(second) and finding.position.line == 4
    assert f"first declared at {first}:4" in finding.message


def test_unknown_references_get_a_did_you_mean(write: Any) -> None:
    path = write(
        "a.yaml",
        minimal("checkout-availability")
        + "---\n"
        + minimal("journey").replace(
            "  sli:\n    http: {metric: http_requests_total, selector: {job: checkout}}\n",
            "  sli:\n    composite:\n      components:"
            " [{slo: checkout-availabilty}, {slo: checkout-availability, stage: canary}]\n",
        ),
    )
    messages = {(line, message) for _, line, _, message in _findings(_load(path))}
    assert (
        22,
        "composite component refers to unknown SLO 'checkout-availabilty' (did you mean 'checkout-availability'?)",
    ) in messages
    assert (22, "stage 'canary': SLO 'checkout-availability' declares no stages") in messages


def test_composite_cycles_are_found(write: Any) -> None:
    def composite(name: str, parts: str) -> str:
        return minimal(name).replace(
            "    http: {metric: http_requests_total, selector: {job: checkout}}\n",
            f"    composite: {{components: [{parts}]}}\n",
        )

    path = write("a.yaml", composite("a", "b, c") + "---\n" + composite("b", "a, c") + "---\n" + minimal("c"))
    cycles = [d for d in _load(path).diagnostics if d.code == "cycle"]
    assert len(cycles) == 1 and "a -> b -> a" in cycles[0].message


def test_lints_are_warnings(write: Any) -> None:
    path = write(
        "a.yaml",
        """\
        apiVersion: sloplane.dev/v1alpha1
        kind: ServiceLevelObjective
        metadata: {name: lint-me}
        spec:
          service: s
          owners: {team: t}
          objective: 90
          review: {next: 2026-01-01}
          interval: 10m
          sli:
            ratio:
              errors: {prometheus: 'sum(rate(x[5m]))'}
              total: {prometheus: 'sum(rate(x[5m]))'}
        """,
    )
    result = _load(path)
    assert result.errors == []
    codes = sorted(d.code for d in result.warnings)
    assert codes == [
        "lint/interval",
        "lint/no-window",
        "lint/no-window",
        "lint/review-overdue",
        "lint/same-query",
        "lint/unreachable-tier",
    ]
    assert all(d.severity is Severity.WARNING for d in result.warnings)
    assert result.failed() is False and result.failed(strict=True) is True
    unreachable = next(d for d in result.warnings if d.code == "lint/unreachable-tier")
    assert unreachable.position.line == 7 and "144%" in unreachable.message


def test_stage_objectives_are_linted_too(write: Any) -> None:
    text = minimal() + "  stages: [{name: canary, objective: 92}, {name: production}]\n"
    result = _load(write("a.yaml", text))
    (finding,) = result.warnings
    assert finding.field == "spec.stages[0].objective" and finding.position.line == 11


def test_switched_off_tiers_are_not_linted(write: Any) -> None:
    text = minimal(objective=90) + "  alerting: {page: false}\n"
    assert _load(write("a.yaml", text)).diagnostics == []


def test_targets_need_a_backend_the_sli_can_be_read_from(write: Any) -> None:
    text = minimal().replace(
        "    http: {metric: http_requests_total, selector: {job: checkout}}\n",
        "    latency: {metric: rpc_duration_seconds, threshold: 250ms}\n  targets: [prometheus, datadog]\n",
    )
    (finding,) = _load(write("a.yaml", text)).errors
    assert finding.field == "spec.targets[1]" and "needs a datadog query" in finding.message


def test_staged_handwritten_queries_need_the_selector_placeholder(write: Any) -> None:
    text = minimal().replace(
        "    http: {metric: http_requests_total, selector: {job: checkout}}\n",
        "    raw: {errorRatio: {prometheus: 'sum(rate(e[{{window}}])) / sum(rate(t[{{window}}]))'}}\n"
        "  stages: [{name: canary, selector: {track: canary}}, {name: production}]\n",
    )
    (finding,) = _load(write("a.yaml", text)).errors
    assert finding.code == "stage-selector" and finding.field == "spec.sli.raw.errorRatio.prometheus"


def test_references_to_invalid_documents_are_not_reported_twice(write: Any) -> None:
    broken = minimal("payments").replace("objective: 99.9", "objective: 100")
    dependent = minimal("checkout") + "  gate: {dependencies: [payments]}\n"
    result = _load(write("a.yaml", broken + "---\n" + dependent))
    assert [d.field for d in result.errors] == ["spec.objective"]


def test_deployment_routing_without_a_signal_is_linted(write: Any) -> None:
    text = minimal() + "  alerting: {routing: {deployment: releases, background: oncall}}\n"
    (finding,) = _load(write("a.yaml", text)).warnings
    assert finding.code == "lint/deployment-routing" and finding.field == "spec.alerting.routing.deployment"


def test_random_cron_fields_are_refused(write: Any) -> None:
    text = minimal() + "  exclusions: {maintenance: [{name: m, schedule: 'R 2 * * *', duration: 1h}]}\n"
    (finding,) = _load(write("a.yaml", text)).errors
    assert "random or hashed cron fields" in finding.message and finding.position.line == 11
