"""`sloplane govern risk`: fleet risk per service and fleet-wide from each SLO's state now (measured as the gate
measures it, from `--prometheus`, `--datadog` or both), weighted by tier, in bands with advice — each with its rule
and inputs (`evaluator/governance/risk.py`).

Exit codes: 0 printed; 2 usage (no backend, a bad `--at`, `--format` or `--datadog`). A backend that cannot be read
is not an error: its SLOs have no data, and the report says so.
"""

from __future__ import annotations

import sys
from datetime import UTC
from typing import Annotated, Any

import typer
from rich.table import Table

from sloplane.cli.backends import (
    DEFAULT_DATADOG_DELAY,
    DatadogDelayOption,
    DatadogOption,
    PrometheusOption,
    backends,
)
from sloplane.cli.common import Consoles, Paths, load_fleet, parse_instant
from sloplane.cli.evaluator import NullLog
from sloplane.core.serialize import pretty_json
from sloplane.evaluator.governance.risk import RISKY, risk_report
from sloplane.evaluator.service import Evaluator

FORMATS = ("table", "json")

GovernFormat = Annotated[str, typer.Option("--format", help="table or json.")]
RiskAt = Annotated[
    str | None,
    typer.Option("--at", help="The states at this instant (default: now, to the fleet's evaluation interval)."),
]


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def risk_table(report: dict[str, Any]) -> Table:
    """One row per service: band, score, the share without data, and its SLOs at risk or exhausted."""
    table = Table(title=f"fleet risk at {report['at']}", title_justify="left")
    for column in ("service", "band", "score", "no data", "at risk or exhausted"):
        table.add_column(column, overflow="fold")
    for service in report["services"]:
        risky = [
            f"{slo['slo']} ({slo['tier']}) {slo['state']}" + (f" via {slo['via']}" if slo["via"] else "")
            for slo in service["slos"]
            if slo["state"] in RISKY
        ]
        table.add_row(
            service["service"], service["band"], _score(service["score"]), _score(service["noData"]), "\n".join(risky)
        )
    return table


def advice_lines(report: dict[str, Any]) -> list[str]:
    """Every piece of advice, one line each: the services' and then the fleet's."""
    lines = [
        f"{service['service']}: {advice['rule']}: {advice['message']}"
        for service in report["services"]
        for advice in service["advice"]
    ]
    fleet = report["fleet"]
    lines.append(f"fleet: {fleet['band']} ({_score(fleet['score'])} at risk, {_score(fleet['noData'])} without data)")
    lines += [f"fleet: {advice['rule']}: {advice['message']}" for advice in fleet["advice"]]
    return lines


def register(govern: typer.Typer, console: Consoles) -> None:
    """Add `govern risk` to the `govern` group."""

    @govern.command()
    def risk(
        paths: Paths,
        prometheus: PrometheusOption = None,
        datadog: DatadogOption = None,
        datadog_delay: DatadogDelayOption = DEFAULT_DATADOG_DELAY,
        at: RiskAt = None,
        output_format: GovernFormat = "table",
    ) -> None:
        """Fleet risk per service and fleet-wide: each SLO exhausted, at risk, without data or healthy (the worst of
        its own and its dependencies' and components'), weighted by tier, in bands with advice (canary-only
        releases, the policy's freeze) — each with its rule and inputs. A fleet-wide freeze is left to people."""
        if output_format not in FORMATS:
            raise typer.BadParameter(f"give one of {', '.join(FORMATS)}", param_hint="--format")
        if prometheus is None and datadog is None:
            raise typer.BadParameter("give --prometheus URL, --datadog SITE, or both", param_hint="--prometheus")
        moment = parse_instant(at)
        backend, counts = backends(prometheus, datadog, datadog_delay)
        fleet = load_fleet(console, paths)
        evaluator = Evaluator(fleet, backend, NullLog(), datadog=counts)
        instant = (moment or evaluator.now()).astimezone(UTC)
        report = risk_report(fleet, evaluator.evaluate(instant), instant)
        if output_format == "json":
            sys.stdout.write(pretty_json(report))
            return
        console.out.print(risk_table(report))
        for line in advice_lines(report):
            console.out.print(line, markup=False, soft_wrap=True)
