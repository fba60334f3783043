"""`sloplane govern …`: findings that keep the objectives honest (issue 18), each with the rule that produced it.

Each command lives in its own module (`govern_*.py`) and registers on the group made here, so that they read
alike (`--db`, `--at`, `--format table|json`) and a new one needs no change to the others.
"""

from __future__ import annotations

import typer

from sloplane.cli import govern_debt, govern_delivery, govern_risk, govern_stale
from sloplane.cli.common import Consoles


def register(app: typer.Typer, console: Consoles) -> None:
    """Add the `govern` group to the `sloplane` app."""
    govern = typer.Typer(
        help="Governance: stale SLOs, the reliability debt register, delivery figures, fleet risk, with advice (each "
        "finding with its rule).",
        no_args_is_help=True,
    )
    app.add_typer(govern, name="govern")
    govern_stale.register(govern, console)
    govern_delivery.register(govern, console)
    govern_risk.register(govern, console)
    govern_debt.register(govern, console)
