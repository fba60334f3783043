"""`sloplane report retro`: the deployment retrospective of one revision or one pipeline run, and its blameless
postmortem draft.

Exit codes: 0 written; 1 the store could not be read, or it holds no live decision about the revision or
pipeline (nothing to look back on: `sloplane decisions` lists what there is); 2 usage (neither or both of
--revision and --pipeline, a --format that is none). `--postmortem FILE` writes the draft as Markdown beside the
report (the file a team pastes into its postmortem document), whether or not one is required; the message on
standard error says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sloplane.cli.common import DEFAULT_DB, Consoles, Paths
from sloplane.cli.report_options import At, Db, Out, OutputFormat, build_report, write_report
from sloplane.evaluator.history.report_kinds import KINDS

Revision = Annotated[str | None, typer.Option("--revision", help="The revision (image tag, commit) to look back on.")]
Pipeline = Annotated[str | None, typer.Option("--pipeline", help="Or the pipeline run, with every release it gated.")]
Postmortem = Annotated[
    Path | None,
    typer.Option("--postmortem", help="Also write the blameless postmortem draft (Markdown) to this file."),
]


def register(reports: typer.Typer, console: Consoles) -> None:
    """Add `report retro`."""

    @reports.command()
    def retro(
        paths: Paths,
        db: Db = DEFAULT_DB,
        revision: Revision = None,
        pipeline: Pipeline = None,
        output_format: OutputFormat = "html",
        out: Out = None,
        at: At = None,
        postmortem: Postmortem = None,
    ) -> None:
        """A release looked back on: the gates with their reasons and burn, the budget its hours used against the
        background, rollbacks and break-glass, detection against the alerts' theory, links, and the questions
        for a blameless postmortem (required when it used 20% of a budget or more)."""
        # why: the HTML and Markdown templates load jinja2; only this command needs them (`evaluate` must start
        # fast: tests/test_cli_startup.py)
        from sloplane.evaluator.history.retro_files import retro_file, retro_postmortem_markdown

        options = {"revision": revision, "pipeline": pipeline}
        report = build_report(console, KINDS["retro"], paths, db, options, output_format, at)
        write_report(console, retro_file(report, output_format), out)
        if postmortem is not None:
            write_report(console, retro_postmortem_markdown(report), postmortem)
            state = "required" if report["summary"]["postmortemRequired"] else "offered, not required"
            console.err.print(f"a postmortem is {state}", markup=False)
