"""Pyrra's `pyrra.dev/v1alpha1` ServiceLevelObjective.

Being built (issue 12): documents are recognised so that every command can name the format; the
translation into declarations is not written yet and each document is reported as such.
"""

from __future__ import annotations

from typing import Any

from sloplane.declaration.diagnostics import Diagnostic
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.translation import ForeignFormat, diagnostic_at

API_VERSION = "pyrra.dev/v1alpha1"


def detects(data: dict[str, Any]) -> bool:
    """Pyrra's own marker: its apiVersion."""
    return data.get("apiVersion") == API_VERSION


def read(documents: list[YamlDocument]) -> tuple[list[LoadedSLO], list[Diagnostic]]:
    """Not built yet: each document gets an error saying so."""
    return [], [diagnostic_at(d, (), "Pyrra import is not built yet (issue 12)", code="pyrra") for d in documents]


FORMAT = ForeignFormat(name="Pyrra", command="pyrra", detects=detects, read=read)
