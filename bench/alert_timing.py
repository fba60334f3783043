"""Measure when the rendered burn-rate alerts actually fire, beside when the budget math says.

Takes the hand-written promtool scenarios in tests/promtool/ (same input series), replaces their
assertions by a sweep that expects "not firing" at every minute, runs `promtool test rules`, and
reads the minutes at which the expectation failed: the alert's real firing times. Prints a
Markdown table for the README. Run: `.venv/bin/python -m bench.alert_timing`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from sloplane.core.budget import burn_rate_alerts
from sloplane.core.durations import format_duration, parse_duration
from sloplane.core.serialize import to_yaml
from sloplane.interop import load_paths
from sloplane.render.prometheus import rule_file

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "promtool"
PERIODS = ("30d", "28d", "7d")
_ONSET = re.compile(r"onset at (\d+)m|outage ends at (\d+)m")
_TIME = re.compile(r"time: ([0-9dhms]+),")
_WINDOW = re.compile(r'long_window="([^"]+)"')

# (scenario name prefix, error ratio, which alert of the table: index by speed, what is measured)
MEASURED: list[tuple[str, float, int, str]] = [
    ("full outage", 1.0, 0, "detect"),
    ("full outage", 1.0, 1, "detect"),
    ("2% errors", 0.02, 0, "detect"),
    ("1% errors", 0.01, 1, "detect"),
    ("0.5% errors", 0.005, 2, "detect"),
    ("a 30-minute full outage", 1.0, 0, "reset"),
]


def _sweep(test: dict[str, Any], start: int, stop: int) -> None:
    """Replace a test's checks by 'no burn-rate alert firing' at every minute in [start, stop]."""
    expr = 'ALERTS{alertname="SLOErrorBudgetBurn",alertstate="firing"}'
    test["promql_expr_test"] = [
        {"expr": expr, "eval_time": f"{minute}m", "exp_samples": []} for minute in range(start, stop + 1)
    ]


def _last_minute(test: dict[str, Any]) -> int:
    """The last minute with input samples (all series of a scenario are equally long)."""
    return min(_samples(series["values"]) for series in test["input_series"]) - 1


def _samples(notation: str) -> int:
    """How many samples promtool's series notation expands to (`axn` and `a+bxn` are n+1)."""
    return sum(int(token.rsplit("x", 1)[1]) + 1 if "x" in token else 1 for token in notation.split())


def _minutes(value: timedelta | None) -> str:
    """Minutes with three significant digits, the unit the measurements come in."""
    return "never" if value is None else f"{value / timedelta(minutes=1):.3g} min"


def _firing(output: str) -> dict[str, list[int]]:
    """Minutes at which each long window's alert was firing, from promtool's failure report."""
    found: dict[str, list[int]] = {}
    minute = -1
    for line in output.splitlines():
        time_match = _TIME.search(line)
        if time_match:
            minute = int(parse_duration(time_match.group(1)) / timedelta(minutes=1))
        elif line.strip().startswith("got:"):
            for window in _WINDOW.findall(line):
                found.setdefault(window, []).append(minute)
    return {window: sorted(set(minutes)) for window, minutes in found.items()}


def measure(period: str, workdir: Path) -> list[tuple[str, str, str, str]]:
    """Rows (scenario, alert, theory, measured) for one period's scenarios."""
    declaration = load_paths([SCENARIOS / f"slo-{period}.yaml"]).declarations[0]
    fleet = {declaration.name: declaration}
    (workdir / f"{declaration.name}.rules.yaml").write_text(to_yaml(rule_file(declaration, fleet)))
    source = yaml.safe_load((SCENARIOS / f"alerts-{period}.test.yaml").read_text())
    alerts = burn_rate_alerts(declaration.spec.window.period)
    rows = []
    for prefix, ratio, index, what in MEASURED:
        test = next(t for t in source["tests"] if t["name"].startswith(prefix))
        match = _ONSET.search(test["name"])
        assert match is not None, test["name"]
        moment = int(match.group(1) or match.group(2))
        _sweep(test, moment, _last_minute(test))
        document = {**source, "tests": [test]}
        path = workdir / f"sweep-{period}.test.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        completed = subprocess.run(
            ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
        )
        firing = _firing(completed.stdout + completed.stderr).get(format_duration(alerts[index].long_window), [])
        alert = alerts[index]
        if what == "detect":
            theory = _minutes(alert.detection_time(ratio, declaration.spec.objective))
            measured = f"{firing[0] - moment} min" if firing else "never"
        else:
            theory = _minutes(alert.reset_time(ratio, declaration.spec.objective))
            after = [minute for minute in range(moment, moment + 60) if minute not in firing]
            measured = f"{after[0] - moment} min" if after else "not within 1 h"
        rows.append((f"{prefix} ({what})", f"{alert.tier.value} {alert.name}", theory, measured))
    return rows


def main() -> None:
    if shutil.which("promtool") is None:
        raise SystemExit("promtool is not installed (make test installs it)")
    print("| SLO | scenario | alert | theory (`sloplane explain`) | measured (promtool, 1m evaluation) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for period in PERIODS:
            for scenario, alert, theory, measured in measure(period, Path(folder)):
                print(f"| 99.9% / {period} | {scenario} | {alert} | {theory} | {measured} |")


if __name__ == "__main__":
    main()
