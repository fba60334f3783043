"""The three formats every report is written in, and the one way a report becomes one of them.

Apart from `report_files` so that the command line can check `--format` without loading jinja2 (which only the
HTML needs; `evaluate` must start fast).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sloplane.core.serialize import pretty_json

FORMATS = ("html", "csv", "json")

Writer = Callable[[dict[str, Any]], str]


def report_file(report: dict[str, Any], output_format: str, *, csv: Writer, html: Writer) -> str:
    """The report as CSV or HTML through the report's own writers, or as its own JSON shape (sorted keys,
    indented, byte-stable): every report's JSON is the dict its builder returns."""
    if output_format == "csv":
        return csv(report)
    if output_format == "json":
        return pretty_json(report)
    if output_format == "html":
        return html(report)
    raise ValueError(f"unknown report format {output_format!r}: give one of {', '.join(FORMATS)}")
