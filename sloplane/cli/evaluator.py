"""Asking the evaluator: `evaluate`, `gate` and `burn` (`decisions` is `cli.decisions`; `serve` and tokens `cli.serve`).

Registered on the `sloplane` app by `register`. Gate exit codes are the contract pipelines rely
on: 0 pass, 1 fail, 3 inconclusive, 2 error (usage errors exit 2 as well).
"""

from __future__ import annotations

import functools
import gc
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from rich.console import Console
from rich.table import Table

from sloplane.cli.backends import (
    DEFAULT_DATADOG_DELAY,
    DatadogDelayOption,
    DatadogOption,
    PrometheusOption,
    backends,
)
from sloplane.cli.common import (
    DEFAULT_DB,
    At,
    Consoles,
    Db,
    Format,
    OptionalPaths,
    Paths,
    RefusedError,
    Staleness,
    load_fleet,
    local_user,
    parse_instant,
    parse_window,
    store_missing,
    store_name,
)
from sloplane.core.durations import format_duration
from sloplane.core.serialize import pretty_json
from sloplane.declaration.policy import ChangeType, RiskLevel
from sloplane.declaration.validation import did_you_mean
from sloplane.evaluator.deciding.deployments import BurnSplitError
from sloplane.evaluator.measuring.backends.base import BackendError
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.model import BreakGlass, ChainReport, GateRequest, Measurement, Outcome, ReleaseSpan
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.chain import GENESIS
from sloplane.evaluator.storage.open import open_assessments, open_decision_log


def _identity() -> str:
    """Who breaks the glass from this machine (`freeze` and `incident` name people the same way)."""
    try:
        return local_user()
    except RefusedError as error:
        raise typer.BadParameter(str(error), param_hint="--break-glass") from None


def _delay(text: str) -> timedelta:
    """`--initial-delay`: a duration, or 0 / 0s for none."""
    return timedelta(0) if text.strip() in ("0", "0s") else parse_window(text, "--initial-delay")


GATE_HELP = (
    "Decide whether a deployment may proceed. Exit codes: 0 pass, 1 fail, 3 inconclusive, 2 error.\n\n"
    "With --prometheus the decision is made here and recorded in --db; with --evaluator it is asked of a "
    "running `sloplane serve`, which records it. --at replays the decision at a past instant, for "
    "back-testing a policy on history. --wait repeats inconclusive and error answers until pass or fail, "
    "or until --timeout."
)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.3%}"


def _burn(measurement: Measurement) -> str:
    first = next((w for w in measurement.windows if w.burn_rate is not None), None)
    if first is None or first.burn_rate is None:
        return "-"
    return f"{first.burn_rate:.2f}x ({format_duration(first.window)})"


def _data_state(measurement: Measurement) -> str:
    """Whether the numbers can be trusted: ok, stale, no data, or the backend error."""
    if measurement.error:
        return measurement.error
    if measurement.stale_seconds:
        return "stale"
    return "ok" if measurement.has_data else "no data"


def measurement_table(measurements: list[Measurement]) -> Table:
    """One row per subject: SLI over the period, budget left, burn rate, events, and whether data was there."""
    table = Table(title="measurements", title_justify="left")
    for column in (
        "slo",
        "stage",
        "source",
        "SLI (period)",
        "budget left",
        "burn (shortest window)",
        "events",
        "data",
    ):
        table.add_column(column, justify="left" if column in ("slo", "stage", "source", "data") else "right")
    for m in measurements:
        sli = None if m.period_error_ratio is None else 1 - m.period_error_ratio
        events = "-" if m.period_events is None else f"{m.period_events:,.0f}"
        row = (
            m.slo,
            m.stage or "-",
            m.source,
            _percent(sli),
            _percent(m.budget_remaining),
            _burn(m),
            events,
            _data_state(m),
        )
        table.add_row(*row)
    return table


def answer_lines(answer: dict[str, Any]) -> list[str]:
    """A gate answer for people: the decision, then each SLO's outcome and reasons."""
    lines = [f"decision: {answer.get('decision')}"]
    for decision in answer.get("decisions", []):
        where = decision.get("slo", "?") + (f" [{decision['stage']}]" if decision.get("stage") else "")
        lines.append(f"  {where}: {decision.get('decision')}")
        lines += [f"    - {reason.get('message')}" for reason in decision.get("reasons", [])]
    if not answer.get("decisions"):
        lines += [f"  - {reason.get('message')}" for reason in answer.get("reasons", [])]
    return lines


def _local(evaluator: Evaluator, request: GateRequest) -> dict[str, Any]:
    """Decide here (the evaluator records the decision)."""
    return evaluator.gate(request).to_dict()


REFUSAL_DETAIL_LIMIT = 300
"""How much of the evaluator's `detail` a refused gate prints (it says why: scope, service, team)."""


def _refusal_detail(response: requests.Response) -> str:
    """The evaluator's reason for a refusal (`{"detail": ...}`), so a pipeline's log says why, bounded; empty when
    the answer has none (a proxy's HTML page)."""
    try:
        answer = response.json()
    except ValueError:
        return ""
    detail = answer.get("detail") if isinstance(answer, dict) else None
    return "" if detail is None else str(detail)[:REFUSAL_DETAIL_LIMIT]


def _remote(url: str, token: str | None, request: GateRequest, timeout: float = 30.0) -> dict[str, Any]:
    """Ask a running evaluator; any transport problem is an `error` answer, not an exception."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {key: value for key, value in request.to_dict().items() if value is not None and key != "requestedBy"}
    if request.break_glass is not None:  # the evaluator records the token's name as the identity
        body["breakGlass"] = {"reason": request.break_glass.reason}
    try:
        response = requests.post(f"{url.rstrip('/')}/v1/gates/evaluate", json=body, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        return {"decision": "error", "reasons": [{"message": f"evaluator unreachable: {type(error).__name__}"}]}
    if response.status_code != 200:
        message = f"evaluator answered HTTP {response.status_code}"
        detail = _refusal_detail(response)
        return {"decision": "error", "reasons": [{"message": f"{message}: {detail}" if detail else message}]}
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        return {"decision": "error", "reasons": [{"message": "evaluator answered with something that is not JSON"}]}
    return answer


def _outcome(answer: dict[str, Any]) -> Outcome:
    value = answer.get("decision")
    return Outcome(value) if value in {o.value for o in Outcome} else Outcome.ERROR


@dataclass(frozen=True)
class GateCall:
    """How to ask: decide here against Prometheus, or ask a running evaluator."""

    ask: Callable[[GateRequest], dict[str, Any]]
    wait: bool
    timeout: timedelta
    poll: timedelta
    initial_delay: timedelta = timedelta(0)
    """Wait this long before the first question: a release just synced has had no traffic to judge yet."""


def run_gate(call: GateCall, request: GateRequest, err: Console) -> dict[str, Any]:
    """Ask once, or (with --wait) until pass or fail or the timeout; returns the last answer.

    The initial delay counts towards the timeout, so `--timeout` bounds the whole step.
    """
    deadline = time.monotonic() + call.timeout.total_seconds()
    if call.initial_delay > timedelta(0) and request.at is None:
        err.print(f"waiting {format_duration(call.initial_delay)} for the release to take traffic", markup=False)
        time.sleep(call.initial_delay.total_seconds())
    while True:
        answer = call.ask(request)
        outcome = _outcome(answer)
        finished = outcome in (Outcome.PASS, Outcome.FAIL) or not call.wait or request.at is not None
        if finished or time.monotonic() + call.poll.total_seconds() > deadline:
            return answer
        err.print(f"{outcome.value}; asking again in {format_duration(call.poll)}", markup=False)
        time.sleep(call.poll.total_seconds())


class NullLog:
    """A decision log that keeps nothing: `evaluate` decides nothing, so it records nothing."""

    def append(self, decision: Any) -> None:
        return None

    def query(self, **_: Any) -> list[dict[str, Any]]:
        return []

    def count(self) -> int:
        return 0

    def releases(self, service: str, since: datetime) -> list[ReleaseSpan]:
        return []

    def problem(self) -> str | None:
        return None

    def check_writable(self) -> None:
        return None

    def verify(self) -> ChainReport:
        return ChainReport(0, GENESIS, None)


@contextmanager
def _without_collector() -> Iterator[None]:
    """The cyclic garbage collector off while a one-shot command works.

    A fleet's declarations, plans and measurements are hundreds of thousands of objects that live
    until the command ends; each full collection walks all of them and frees next to nothing. At
    1,000 SLOs that was some 15% of `evaluate`'s CPU, for 5% more peak memory (97 to 102 MB).
    Reference counting still frees everything that is not in a cycle. On leaving (a command run in
    a test's process), what was made is frozen, so the first collection after does not walk it all.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _evaluate(
    console: Consoles,
    paths: list[Path],
    metrics: tuple[PrometheusBackend | None, DatadogCounts | None],
    at: str | None,
    output: str,
    staleness: str,
) -> None:
    moment = parse_instant(at)
    bound = parse_window(staleness, "--staleness")
    prometheus, datadog = metrics
    evaluator = Evaluator(load_fleet(console, paths), prometheus, NullLog(), staleness=bound, datadog=datadog)
    measurements = evaluator.evaluate(moment)
    if output == "json":
        sys.stdout.write(pretty_json([m.to_dict() for m in measurements]))
    else:
        console.out.print(measurement_table(measurements))


def burn_table(report: dict[str, Any]) -> Table:
    """Each deployment window's share of the budget, then the total in deployments and the background."""
    table = Table(title=f"{report['slo']}: budget burned since {report['periodStart']}")
    for column in ("revision", "window", "last decision", "bad events", "budget"):
        table.add_column(column, justify="right" if column in ("bad events", "budget") else "left")
    for window in report["deployments"]:
        span = f"{window['start']} .. {window['end']}"
        outcome = window["outcome"] + (" (rolled back)" if window["rolledBack"] else "")
        table.add_row(window["revision"], span, outcome, f"{window['badEvents']:g}", _percent(window["budgetConsumed"]))
    table.add_section()
    table.add_row(
        "in deployments", "", "", f"{report['deploymentBadEvents']:g}", _percent(report["deploymentBudgetConsumed"])
    )
    table.add_row(
        "background", "", "", f"{report['backgroundBadEvents']:g}", _percent(report["backgroundBudgetConsumed"])
    )
    table.add_row("total", "", "", f"{report['badEvents']:g}", _percent(report["budgetConsumed"]))
    return table


COMMANDS = frozenset({"evaluate", "gate", "burn"})
"""What `register` adds (tests/test_cli_startup.py checks that they agree)."""


def own_app(settings: Mapping[str, Any], console: Consoles) -> typer.Typer:
    """An app of these commands alone, made with the `sloplane` app's settings, for `cli.main.main` to run.

    Typer works out every command's options from its signature each time an app runs: 20 ms for
    all of `sloplane`'s, for a pipeline's `evaluate` or `gate` that uses three.
    """
    alone = typer.Typer(**settings)

    @alone.callback()
    def evaluator_commands() -> None:
        """A group, as the whole app is (of one command alone, Typer would make the command the app)."""

    register(alone, console)
    return alone


def register(app: typer.Typer, console: Consoles) -> None:
    """Add `evaluate`, `gate` and `burn` to the `sloplane` app."""

    @app.command()
    def evaluate(
        paths: Paths,
        prometheus: PrometheusOption = None,
        datadog: DatadogOption = None,
        datadog_delay: DatadogDelayOption = DEFAULT_DATADOG_DELAY,
        at: At = None,
        output_format: Format = "table",
        staleness: Staleness = "5m",
    ) -> None:
        """Measure every SLO now (or --at): SLI per window and over the period, budget left, burn rates."""
        with _without_collector():
            _evaluate(console, paths, backends(prometheus, datadog, datadog_delay), at, output_format, staleness)

    @app.command(help=GATE_HELP)
    def gate(
        paths: OptionalPaths = None,
        slo: Annotated[str | None, typer.Option(help="The SLO to gate on.")] = None,
        service: Annotated[str | None, typer.Option(help="Or: every SLO of this service.")] = None,
        stage: Annotated[str | None, typer.Option(help="Stage (default: production).")] = None,
        revision: Annotated[str | None, typer.Option(help="Commit or image digest being deployed.")] = None,
        pipeline: Annotated[str | None, typer.Option(help="CI/CD pipeline or run id.")] = None,
        rollout: Annotated[str | None, typer.Option(help="Argo Rollout name.")] = None,
        prometheus: Annotated[str | None, typer.Option(help="Decide here, reading this Prometheus.")] = None,
        datadog: DatadogOption = None,
        datadog_delay: DatadogDelayOption = DEFAULT_DATADOG_DELAY,
        evaluator: Annotated[str | None, typer.Option(help="Or ask a running evaluator (sloplane serve).")] = None,
        token: Annotated[str | None, typer.Option(envvar="SLOPLANE_TOKEN", help="Token for --evaluator.")] = None,
        at: At = None,
        wait: Annotated[bool, typer.Option("--wait", help="Ask again until pass or fail (or --timeout).")] = False,
        initial_delay: Annotated[
            str, typer.Option(help="Wait this long before the first question (counts towards --timeout).")
        ] = "0s",
        record_only: Annotated[
            bool,
            typer.Option(
                "--async",
                help="Record the deployment with one decision and exit 0 (2 if the evaluator cannot decide); "
                "a later `sloplane gate --wait` decides.",
            ),
        ] = False,
        timeout: Annotated[str, typer.Option(help="How long --wait waits.")] = "10m",
        poll: Annotated[str, typer.Option(help="Pause between attempts with --wait.")] = "30s",
        break_glass: Annotated[
            str | None,
            typer.Option(
                "--break-glass",
                metavar="REASON",
                help="Let the release through whatever the gate finds; recorded with REASON and who you are "
                "($SLOPLANE_USER or the OS user; the token's name with --evaluator, which needs scope admin).",
            ),
        ] = None,
        change_type: Annotated[
            ChangeType | None,
            typer.Option(
                "--change-type",
                help="What the deployment changes. While the budget is spent, the policy's reliabilityChanges (fix, "
                "reliability, security by default) pass when the budget is all that fails them (recorded).",
                show_default=False,
            ),
        ] = None,
        risk: Annotated[
            RiskLevel | None,
            typer.Option(
                "--risk",
                help="How risky the release is (the policy's requireAssessment asks from a level).",
                show_default=False,
            ),
        ] = None,
        assessment: Annotated[
            str | None,
            typer.Option(
                "--assessment",
                metavar="ID",
                help="The impact assessment covering it (`sloplane assess --record`).",
                show_default=False,
            ),
        ] = None,
        db: Db = DEFAULT_DB,
        output_format: Format = "text",
    ) -> None:
        local_backends = prometheus is not None or datadog is not None
        if local_backends == (evaluator is not None):
            raise typer.BadParameter("give --prometheus and/or --datadog to decide here, or --evaluator to ask one")
        if (slo is None) == (service is None):
            raise typer.BadParameter("give exactly one of --slo or --service")
        if wait and record_only:
            raise typer.BadParameter("--wait blocks until a verdict and --async never does: give one")
        override = None
        if break_glass is not None:
            if not break_glass.strip():
                raise typer.BadParameter("give a reason", param_hint="--break-glass")
            override = BreakGlass(break_glass.strip(), _identity())
        request = GateRequest(
            slo,
            service,
            stage,
            revision,
            pipeline,
            rollout,
            parse_instant(at),
            "cli",
            override,
            change_type,
            risk,
            assessment,
        )
        ask: Callable[[GateRequest], dict[str, Any]]
        if local_backends:
            if not paths:
                raise typer.BadParameter("give the declarations (PATHS) to decide here with --prometheus/--datadog")
            reader, counts = backends(prometheus, datadog, datadog_delay)
            fleet = load_fleet(console, paths)
            asks = any(d.spec.effective_gate.require_assessment is not None for d in fleet.values())
            store = open_assessments(db) if asks else None  # opened only when a policy reads it
            local = Evaluator(fleet, reader, open_decision_log(db), datadog=counts, assessments=store)
            ask = functools.partial(_local, local)
        else:
            assert evaluator is not None
            ask = functools.partial(_remote, evaluator, token)
        call = GateCall(
            ask,
            wait,
            parse_window(timeout, "--timeout"),
            parse_window(poll, "--poll"),
            _delay(initial_delay),
        )
        answer = run_gate(call, request, console.err)
        if output_format == "json":
            sys.stdout.write(pretty_json(answer))
        else:
            for line in answer_lines(answer):
                console.out.print(line, markup=False, soft_wrap=True)
        outcome = _outcome(answer)
        raise typer.Exit(outcome.exit_code if not record_only or outcome is Outcome.ERROR else 0)

    _register_report_commands(app, console)


def _register_report_commands(app: typer.Typer, console: Consoles) -> None:
    """`burn`: where the budget went (`decisions`, what was decided, is `cli.decisions`)."""

    @app.command()
    def burn(
        paths: Paths,
        slo: Annotated[str, typer.Option(help="The SLO to report on.")],
        prometheus: PrometheusOption = None,
        datadog: DatadogOption = None,
        datadog_delay: DatadogDelayOption = DEFAULT_DATADOG_DELAY,
        db: Db = DEFAULT_DB,
        at: At = None,
        output_format: Format = "table",
    ) -> None:
        """Budget burned during deployments (from the decision log) apart from background burn, this period."""
        fleet = load_fleet(console, paths)
        if slo not in fleet:
            raise typer.BadParameter(f"unknown SLO '{slo}'{did_you_mean(slo, sorted(fleet))}", param_hint="--slo")
        if store_missing(db):
            console.err.print(f"no decision log at {store_name(db)}", markup=False)
            raise typer.Exit(1)
        reader, counts = backends(prometheus, datadog, datadog_delay)
        evaluator = Evaluator(fleet, reader, open_decision_log(db), datadog=counts)
        try:
            split = evaluator.deployment_burn(slo, parse_instant(at))
        except (BurnSplitError, BackendError) as error:
            console.err.print(f"cannot split the burn of {slo}: {error}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        if output_format == "json":
            sys.stdout.write(pretty_json(split.to_dict()))
        else:
            console.out.print(burn_table(split.to_dict()))
