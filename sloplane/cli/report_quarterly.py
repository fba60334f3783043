"""`sloplane report quarterly`: the quarterly review (the health grid, the roll-up score, trends, reviews,
break-glass per team, the agenda) from the rollups and the decision log.

Exit codes as every report's (`report.py`): 0 written; 1 the store could not be read; 2 usage (a quarter that is
none, a zone that would cut the rollups' hours in two).
"""

from __future__ import annotations

from typing import Annotated

import typer

from sloplane.cli.common import DEFAULT_DB, Consoles, Paths
from sloplane.cli.report_options import At, Db, Out, OutputFormat, Zone, build_report, write_report
from sloplane.evaluator.history.report_kinds import KINDS

Quarter = Annotated[str, typer.Option("--quarter", help="The quarter, YYYY-Qn.", show_default=False)]


def register(reports: typer.Typer, console: Consoles) -> None:
    """Add `report quarterly` to the `report` group."""

    @reports.command()
    def quarterly(
        paths: Paths,
        quarter_text: Quarter,
        db: Db = DEFAULT_DB,
        zone: Zone = None,
        output_format: OutputFormat = "html",
        out: Out = None,
        at: At = None,
    ) -> None:
        """The quarterly review: health by team and tier, a roll-up score with its inputs, each SLO's months and
        the change since the quarter before, reviews due, break-glass per team, and the meeting's agenda."""
        # why: the HTML templates load jinja2, which only this command needs (`evaluate` must start fast)
        from sloplane.evaluator.history.quarterly_files import quarterly_file

        options = {"quarter": quarter_text, "tz": zone}
        report = build_report(console, KINDS["quarterly"], paths, db, options, output_format, at)
        write_report(console, quarterly_file(report, output_format), out)
