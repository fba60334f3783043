"""`sloplane govern COMMAND` run in process, its table printed into a wide console the test can read."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console
from typer.testing import CliRunner, Result

from sloplane.cli import govern
from sloplane.cli.main import _consoles


def run_govern(command: str, *args: str | Path, out: io.StringIO | None = None) -> Result:
    """The `govern` group as `sloplane` registers it; with `out`, the commands print their tables there (250
    columns: a table a test reads whole)."""
    consoles = _consoles if out is None else replace(_consoles, out=Console(file=out, width=250))
    app = typer.Typer()
    govern.register(app, consoles)
    return CliRunner().invoke(app, ["govern", command, *map(str, args)])
