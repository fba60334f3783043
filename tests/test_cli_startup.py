"""What `sloplane evaluate` (and `gate`, `burn`) load to start: their own app, no renderer, no web stack, no Pulumi.

Start-up is most of what a pipeline's `sloplane evaluate` of a small fleet costs, so these commands
run in an app of their own (`cli.evaluator.own_app`); it must be the same commands as in the
whole app, to the letter of their help.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sloplane.cli import evaluator
from sloplane.cli import main as cli
from sloplane.sandbox import free_port
from tests.conftest import ROOT

SLO = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: checkout}
spec:
  service: checkout
  owners: {team: sre}
  objective: 99.9
  window: 30d
  sli: {http: {metric: http_requests_total, selector: {job: checkout}}}
"""


def test_the_evaluator_commands_are_what_the_evaluator_registers() -> None:
    registered = typer.Typer()
    evaluator.register(registered, cli._consoles)
    commands = typer.main.get_command(registered)
    assert isinstance(commands, typer.core.TyperGroup)
    names = set(commands.list_commands(typer.Context(commands)))
    assert names == evaluator.COMMANDS


@pytest.mark.parametrize("command", sorted(evaluator.COMMANDS))
def test_their_own_app_offers_exactly_what_the_whole_app_does(command: str) -> None:
    runner = CliRunner()
    whole = runner.invoke(cli.app, [command, "--help"], terminal_width=100)
    own = runner.invoke(evaluator.own_app(cli.APP_SETTINGS, cli._consoles), [command, "--help"], terminal_width=100)
    assert whole.exit_code == own.exit_code == 0
    assert own.output == whole.output


def test_evaluate_loads_no_renderer_server_or_pulumi(tmp_path: Path) -> None:
    (tmp_path / "slo.yaml").write_text(SLO)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing answers: every measurement is an error, printed
    script = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: sys.stderr.write(json.dumps(sorted(sys.modules))))\n"
        "from sloplane.cli.main import main\n"
        "main()\n"
    )
    arguments = ["evaluate", str(tmp_path / "slo.yaml"), "--prometheus", closed, "--format", "json"]
    completed = subprocess.run(
        [sys.executable, "-c", script, *arguments], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    (measurement,) = json.loads(completed.stdout)
    assert measurement["slo"] == "checkout" and "unavailable" in measurement["error"]
    loaded = set(json.loads(completed.stderr))
    for heavy in ("sloplane.render.targets", "sloplane.evaluator.server", "fastapi", "uvicorn", "pulumi", "jinja2"):
        assert heavy not in loaded
