"""google/slo-generator `sre.google.com/v2` SLO configs (the Prometheus backend).

Being built (issue 12): documents are recognised so that every command can name the format; the
translation into declarations is not written yet and each document is reported as such.
"""

from __future__ import annotations

from typing import Any

from sloplane.declaration.diagnostics import Diagnostic
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.translation import ForeignFormat, diagnostic_at

API_VERSION = "sre.google.com/v2"


def detects(data: dict[str, Any]) -> bool:
    """slo-generator's own marker: its apiVersion."""
    return data.get("apiVersion") == API_VERSION


def read(documents: list[YamlDocument]) -> tuple[list[LoadedSLO], list[Diagnostic]]:
    """Not built yet: each document gets an error saying so."""
    message = "slo-generator import is not built yet (issue 12)"
    return [], [diagnostic_at(d, (), message, code="slo-generator") for d in documents]


FORMAT = ForeignFormat(name="slo-generator", command="slo-generator", detects=detects, read=read)
