"""Sloth SLO specs (`version: prometheus/v1`) and its `sloth.slok.dev/v1` PrometheusServiceLevel CRD.

Being built (issue 12): documents are recognised so that every command can name the format; the
translation into declarations is not written yet and each document is reported as such.
"""

from __future__ import annotations

from typing import Any

from sloplane.declaration.diagnostics import Diagnostic
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.translation import ForeignFormat, diagnostic_at

SPEC_VERSION = "prometheus/v1"
CRD_API_VERSION = "sloth.slok.dev/v1"
CRD_KIND = "PrometheusServiceLevel"


def detects(data: dict[str, Any]) -> bool:
    """Sloth's own markers: the spec's `version`, or the CRD's apiVersion."""
    return data.get("version") == SPEC_VERSION or data.get("apiVersion") == CRD_API_VERSION


def read(documents: list[YamlDocument]) -> tuple[list[LoadedSLO], list[Diagnostic]]:
    """Not built yet: each document gets an error saying so."""
    return [], [diagnostic_at(d, (), "Sloth import is not built yet (issue 12)", code="sloth") for d in documents]


FORMAT = ForeignFormat(name="Sloth", command="sloth", detects=detects, read=read)
