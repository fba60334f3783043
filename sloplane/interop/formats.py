"""The formats of other tools sloplane reads, in the order their markers are tried.

The loader asks `format_of` for every document that is not ours, so one folder may hold OpenSLO,
Sloth, Pyrra and slo-generator files side by side; `sloplane import <command>` reads one of them and
names the right command when given another.
"""

from __future__ import annotations

from typing import Any

from sloplane.interop import pyrra, slo_generator, sloth
from sloplane.interop.openslo import importer as openslo
from sloplane.interop.translation import ForeignFormat

FOREIGN_FORMATS: tuple[ForeignFormat, ...] = (openslo.FORMAT, sloth.FORMAT, pyrra.FORMAT, slo_generator.FORMAT)


def format_of(data: dict[str, Any]) -> ForeignFormat | None:
    """The foreign format whose markers the document carries, if any."""
    return next((found for found in FOREIGN_FORMATS if found.detects(data)), None)


def by_command(command: str) -> ForeignFormat:
    """The format `sloplane import <command>` reads."""
    return next(found for found in FOREIGN_FORMATS if found.command == command)
