"""Sloth import: Sloth's own examples, broken files of ours, the CLI, and alerts equivalent to Sloth's.

The corpus (`tests/data/corpus/sloth/MANIFEST.yaml`) says for every file where it came from and what
importing it must give. The migration test runs Sloth's generated rules and sloplane's rules for the
imported declarations side by side in promtool, on the same raw counters.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloplane.core.budget import Tier
from sloplane.core.serialize import to_yaml
from sloplane.declaration.model import Declaration
from sloplane.interop import load_paths
from sloplane.interop.pyrra import FORMAT as PYRRA
from sloplane.render.prometheus import rule_file
from sloplane.semantics.subjects import Fleet
from tests.conftest import run_cli

CORPUS = Path(__file__).parent / "data" / "corpus" / "sloth"
MANIFEST: dict[str, Any] = yaml.safe_load((CORPUS / "MANIFEST.yaml").read_text())
ENTRIES = MANIFEST["files"]


def _promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False, timeout=300
    )


def _entries(verdict: str) -> list[Any]:
    return [pytest.param(entry, id=entry["file"]) for entry in ENTRIES if entry["verdict"] == verdict]


def test_manifest_lists_every_file_with_its_origin() -> None:
    listed = {entry["file"] for entry in ENTRIES} | {entry["file"] for entry in MANIFEST["generated"]}
    present = {str(path.relative_to(CORPUS)) for path in CORPUS.rglob("*.y*ml") if path.name != "MANIFEST.yaml"}
    assert listed == present
    for entry in [*ENTRIES, *MANIFEST["generated"]]:
        assert entry["license"] == "Apache-2.0"
        assert entry["origin"] == "sloplane" or entry["origin"].startswith("github.com/slok/sloth@")


def _rendered(declarations: list[Declaration], folder: Path) -> list[Path]:
    fleet = Fleet(declarations)
    files = []
    for declaration in declarations:
        path = folder / f"{declaration.name}.rules.yaml"
        path.write_text(to_yaml(rule_file(declaration, fleet)))
        files.append(path)
    return files


@pytest.mark.parametrize("entry", _entries("valid"))
def test_valid_file_imports_and_renders_promtool_clean_rules(entry: dict[str, Any], tmp_path: Path) -> None:
    result = load_paths([CORPUS / entry["file"]])
    assert result.errors == [], [d.render() for d in result.errors]
    assert len(result.slos) == entry["slos"]
    for expected in entry.get("warnings", []):
        assert any(
            d.position.line == expected["line"] and d.field == expected["field"] and expected["message"] in d.message
            for d in result.warnings
        ), (expected, [d.render() for d in result.warnings])
    if result.slos:
        checked = _promtool("check", "rules", *_rendered(result.declarations, tmp_path), cwd=tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("entry", _entries("invalid"))
def test_invalid_file_reports_every_problem_at_its_line(entry: dict[str, Any]) -> None:
    result = load_paths([CORPUS / entry["file"]])
    found = [(d.position.line, d.field, d.message) for d in result.errors]
    for expected in entry["errors"]:
        assert any(
            line == expected["line"] and field == expected["field"] and expected["message"] in message
            for line, field, message in found
        ), (expected, found)
    assert len(found) == len(entry["errors"]), found
    assert len(result.slos) == entry["slos"]


def test_mapping_keeps_labels_routing_and_windows() -> None:
    """Labels Sloth put on its alerts reach ours; a 28d AlertWindows document brings Sloth's own table."""
    result = load_paths([CORPUS / "in-base.yaml", CORPUS / "windows-google-28d.yaml"])
    assert result.errors == []
    spec = {slo.name: slo.declaration for slo in result.slos}["svc01-slo1"].spec
    document = yaml.safe_load((CORPUS / "in-base.yaml").read_text())
    sloth = document["slos"][0]
    assert spec.window.period == timedelta(days=28)
    assert spec.alerting.name == sloth["alerting"]["name"]
    assert (
        spec.alerting.labels.items() >= {**document["labels"], **sloth["labels"], **sloth["alerting"]["labels"]}.items()
    )
    assert spec.alerting.labels["sloth_id"] == "svc01-slo1"
    assert spec.alerting.page_alert.labels.items() >= sloth["alerting"]["page_alert"]["labels"].items()
    assert spec.alerting.ticket_alert.labels["sloth_severity"] == "ticket"
    windows = yaml.safe_load((CORPUS / "windows-google-28d.yaml").read_text())["spec"]
    declared = {(w.tier.value, w.long, w.short): w.factor for w in spec.alerting.windows}
    for tier in ("page", "ticket"):
        for speed in ("quick", "slow"):
            row = windows[tier][speed]
            long, short = _hours(row["longWindow"]), _hours(row["shortWindow"])
            factor = row["errorBudgetPercent"] / 100 * (timedelta(days=28) / long)
            assert math.isclose(declared[(tier, long, short)], factor, rel_tol=1e-9)
    no_alerts = load_paths([CORPUS / "no-alerts.yml"]).slos[0].declaration.spec.alerting
    assert (no_alerts.page, no_alerts.ticket) == (False, False)


def _hours(text: str) -> timedelta:
    units = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
    return int(text[:-1]) * units[text[-1]]


def test_rates_become_counts_only_where_exact() -> None:
    imported = load_paths([CORPUS / "kubernetes-apiserver.yml", CORPUS / "ours-irate.yml"])
    ratios = {slo.name: slo.declaration.spec.sli.ratio for slo in imported.slos}
    latency = ratios["k8s-apiserver-requests-latency"]
    assert latency is not None and latency.errors is not None and latency.errors.prometheus is not None
    assert "rate(" not in latency.errors.prometheus and latency.errors.prometheus.count("increase(") == 2
    kept = ratios["edge-requests"]
    assert kept is not None and kept.total.prometheus == "sum(irate(edge_requests_total[{{window}}]))"


def test_cli_writes_declarations_that_load_again_identically(tmp_path: Path) -> None:
    sources = [CORPUS / "kubernetes-apiserver.yml", CORPUS / "in-base.yaml", CORPUS / "windows-google-28d.yaml"]
    imported = {slo.name: slo.declaration for slo in load_paths(sources).slos}
    ran = run_cli("import", "sloth", *sources, "--out", tmp_path / "out")
    assert ran.code == 0, ran.stderr
    again = load_paths([tmp_path / "out"])
    assert again.errors == []
    assert {slo.name: slo.declaration for slo in again.slos} == imported


def test_pyrra_command_names_the_sloth_command() -> None:
    result = load_paths([CORPUS / "getting-started.yml"], formats=[PYRRA])
    assert [d.message for d in result.errors] == ["this is a Sloth document: read it with `sloplane import sloth`"]
    ran = run_cli("import", "pyrra", CORPUS / "k8s-getting-started.yml")
    assert ran.code == 1 and "sloplane import sloth" in ran.stderr


# --- migration equivalence -------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """Raw counters both rule files read for one SLO: all events, and the bad ones among them."""

    ok: str
    """Series counting good events (or, with `total`, all of them)."""
    bad: str
    total: bool = False
    """True for a histogram: `ok` is the count (all events) and `bad` the fast bucket (good events)."""

    def series(self, events: list[int], bad: list[int]) -> dict[str, list[int]]:
        if self.total:
            return {self.ok: events, self.bad: [e - b for e, b in zip(events, bad, strict=True)]}
        return {self.ok: [e - b for e, b in zip(events, bad, strict=True)], self.bad: bad}


HTTP = Feed(
    'http_request_duration_seconds_count{job="myservice",code="200",f1="v1",f2="v2"}',
    'http_request_duration_seconds_count{job="myservice",code="500",f1="v1",f2="v2"}',
)
APISERVER = Feed('apiserver_request_total{code="200"}', 'apiserver_request_total{code="500"}')
APISERVER_LATENCY = Feed(
    'apiserver_request_duration_seconds_count{verb="GET"}',
    'apiserver_request_duration_seconds_bucket{verb="GET",le="0.4"}',
    total=True,
)


@dataclass(frozen=True)
class Case:
    """A Sloth example, the rules Sloth generated for it, and the counters each of its SLOs reads."""

    generated: str
    sources: tuple[str, ...]
    feeds: dict[str, Feed]


CASES = [
    Case("getting-started.yml", ("getting-started.yml",), {"myservice-requests-availability": HTTP}),
    Case("plugin-getting-started.yml", ("plugin-getting-started.yml",), {"myservice-requests-availability": HTTP}),
    Case(
        "kubernetes-apiserver.yml",
        ("kubernetes-apiserver.yml",),
        {"k8s-apiserver-requests-availability": APISERVER, "k8s-apiserver-requests-latency": APISERVER_LATENCY},
    ),
    Case("in-base-28d.yml", ("in-base.yaml", "windows-google-28d.yaml"), {"svc01-slo1": HTTP}),
    Case("in-base-custom-windows-7d.yml", ("in-base.yaml", "windows-7d.yaml"), {"svc01-slo1": HTTP}),
]


@dataclass(frozen=True)
class Scenario:
    """Constant traffic, then `burn` times the budget's error ratio for a while (after clean history)."""

    name: str
    step: timedelta
    clean: timedelta
    burn: float
    incident: timedelta
    after: timedelta

    def steps(self, span: timedelta) -> int:
        return round(span / self.step)

    @property
    def onset(self) -> timedelta:
        return self.clean

    @property
    def end(self) -> timedelta:
        return self.clean + self.incident + self.after

    def bad_ratio(self, objective: float) -> float:
        return min(1.0, self.burn * (100 - objective) / 100)


EVENTS_PER_STEP = 100_000
SCENARIOS = [
    Scenario("healthy", timedelta(minutes=30), timedelta(days=1), 0.4, timedelta(days=1), timedelta(0)),
    Scenario(
        "full-outage", timedelta(minutes=1), timedelta(minutes=65), 1000, timedelta(minutes=15), timedelta(minutes=45)
    ),
    Scenario("slow-burn", timedelta(minutes=30), timedelta(days=3), 5, timedelta(hours=20), timedelta(0)),
]
"""Healthy spends 0.4x the budget from the start: no alert of either may fire. A full outage must page
within a minute (1m steps, so the 5m windows count). A slow burn of 5x is a ticket for a 30d period,
after 3d of clean history (the longest window), at 30m steps: the 5m windows then hold a single
sample and stay empty on both sides, and promtool stays fast (it costs a few ms per step)."""


def _counter(increments: list[int]) -> str:
    """promtool series notation for a counter growing by `increments[i]` at step i+1, in constant runs."""
    runs: list[tuple[int, int]] = []
    for value in increments:
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    parts, total = ["0"], 0
    for value, count in runs:
        start = total + value
        parts.append(f"{start}+{value}x{count - 1}")
        total += value * count
    return " ".join(parts)


def _increments(scenario: Scenario, objective: float) -> tuple[list[int], list[int]]:
    bad_now = round(EVENTS_PER_STEP * scenario.bad_ratio(objective))
    clean = scenario.steps(scenario.clean)
    incident = scenario.steps(scenario.incident)
    after = scenario.steps(scenario.after)
    healthy_bad = bad_now if scenario.name == "healthy" else 0
    events = [EVENTS_PER_STEP] * (clean + incident + after)
    bad = [healthy_bad] * clean + [bad_now] * incident + [healthy_bad] * after
    return events, bad


def _alert(sloth_id: str, name: str, tier: Tier, sloth: bool) -> str:
    origin = 'long_window=""' if sloth else 'long_window!=""'
    return (
        f'max(ALERTS{{alertstate="firing",alertname="{name}",sloth_id="{sloth_id}",'
        f'sloth_severity="{tier.value}",{origin}}})'
    )


UNKNOWN = "not predicted"


def _expected_first(declaration: Declaration, scenario: Scenario, tier: Tier) -> timedelta | str | None:
    """When the tier must first fire, from sloplane's budget math: onset + detection, on the next step.

    Healthy traffic burns at a constant 0.4x from the start, so nothing fires. After an onset the
    arithmetic holds for windows inside the clean history; a longer window (short history inflates its
    ratio) can only fire earlier, so the prediction stands when it is already the first step after the
    onset, and is not made otherwise (the runs are still compared step by step).
    """
    objective = declaration.spec.objective
    alerts = [alert for alert in declaration.spec.burn_rate_alerts() if alert.tier is tier]
    if scenario.name == "healthy":
        assert all(alert.factor > scenario.burn for alert in alerts)
        return None
    covered = [alert for alert in alerts if alert.long_window <= scenario.clean]
    times = [alert.detection_time(scenario.bad_ratio(objective), objective) for alert in covered]
    found = [time for time in times if time is not None and time < scenario.incident]
    first = scenario.onset + scenario.step * math.ceil(min(found) / scenario.step) if found else None
    if len(covered) < len(alerts) and first != scenario.onset + scenario.step:
        return UNKNOWN
    return first


def _seconds(value: timedelta | str | None) -> int:
    assert isinstance(value, timedelta)
    return int(value.total_seconds())


def _groups(path: Path) -> list[str]:
    return [group["name"] for group in yaml.safe_load(path.read_text())["groups"]]


def _test_group(
    case: Case, scenario: Scenario, declarations: dict[str, Declaration]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One promtool test group for a scenario, and when it expects each tier to fire (for the report)."""
    series: dict[str, list[int]] = {}
    for slo, feed in case.feeds.items():
        series |= feed.series(*_increments(scenario, declarations[slo].spec.objective))
    end = int(scenario.end.total_seconds())
    step = int(scenario.step.total_seconds())
    window = f"[{end}s:{step}s]"
    tests: list[dict[str, Any]] = []
    expected: dict[str, Any] = {}
    for slo in case.feeds:
        spec = declarations[slo].spec
        name = spec.alerting.name
        assert name is not None
        for tier in spec.alerting.enabled_tiers():
            theirs, ours = _alert(slo, name, tier, True), _alert(slo, name, tier, False)
            differ = f"sum_over_time((({theirs} or vector(0)) != bool ({ours} or vector(0))){window})"
            tests.append({"expr": differ, "eval_time": f"{end}s", "exp_samples": [{"labels": "{}", "value": 0}]})
            first = _expected_first(declarations[slo], scenario, tier)
            shown = first - scenario.onset if isinstance(first, timedelta) else first
            expected[f"{slo} {tier.value}"] = shown
            if first == UNKNOWN:
                continue
            for alert in (theirs, ours):
                fired = f"min_over_time(timestamp({alert}){window})"
                samples = [] if first is None else [{"labels": "{}", "value": _seconds(first)}]
                tests.append({"expr": fired, "eval_time": f"{end}s", "exp_samples": samples})
    group = {
        "name": f"{case.generated} {scenario.name}",
        "interval": f"{step}s",
        "input_series": [{"series": key, "values": _counter(values)} for key, values in series.items()],
        "promql_expr_test": tests,
    }
    return group, expected


@pytest.mark.parametrize("case", [pytest.param(case, id=case.generated) for case in CASES])
def test_migrated_alerts_fire_when_sloths_fire(case: Case, tmp_path: Path) -> None:
    """sloplane's alerts for the imported SLOs fire at the same evaluation steps as Sloth's generated ones.

    Both rule files run in one promtool test on the same counters: a healthy service (0.4x the budget),
    a full outage and a slow burn (5x). For every alerting SLO and tier, the test asserts that Sloth's
    alert and ours are firing at exactly the same steps over the whole run (their disagreement summed
    over every step is 0), and that both first fire when sloplane's budget math says (onset plus the
    detection time of the tier's fastest alert, on the next evaluation step), or never.

    Differences that do not show here, by construction: Sloth's alerts read ratios recorded by another
    rule group, so in a real Prometheus they can lag one evaluation interval behind (the test orders
    the groups so that they do not: `group_eval_order`); Sloth's thresholds are factor x
    0.0009999999999999432 (1 - 0.999 in floats) where ours are the rounded 0.0144, which differ only for
    an error ratio equal to the threshold within 1e-13; and Sloth's period ratio (SLO budget
    dashboards, not alerts) averages 5m ratios where ours divides events by events.
    """
    sources = [CORPUS / source for source in case.sources]
    imported = load_paths(sources)
    assert imported.errors == []
    declarations = {slo.name: slo.declaration for slo in imported.slos}
    sloth_rules = CORPUS / "_gen" / case.generated
    ours = tmp_path / "sloplane.rules.yaml"
    fleet = Fleet(declarations.values())
    ours.write_text(to_yaml({"groups": [g for d in declarations.values() for g in rule_file(d, fleet)["groups"]]}))
    (tmp_path / "sloth.rules.yaml").write_text(sloth_rules.read_text())
    order = [*_groups(sloth_rules), *_groups(ours)]
    report, files = {}, []
    for scenario in SCENARIOS:
        group, report[scenario.name] = _test_group(case, scenario, declarations)
        test_file = {
            "rule_files": ["sloth.rules.yaml", "sloplane.rules.yaml"],
            "evaluation_interval": group["interval"],
            "group_eval_order": order,
            "tests": [group],
        }
        files.append(f"{scenario.name}.test.yaml")
        (tmp_path / files[-1]).write_text(to_yaml(test_file))
    fired = [first for expected in report.values() for first in expected.values() if isinstance(first, timedelta)]
    assert fired, "the scenarios must make some alert fire, or equivalence says nothing"
    ran = _promtool("test", "rules", *files, cwd=tmp_path)
    assert ran.returncode == 0, f"{report}\n{ran.stdout}{ran.stderr}"
