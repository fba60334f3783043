"""OpenSLO (v1 and v2alpha) documents into sloplane declarations: the entry points.

`import_openslo` collects the OpenSLO objects in a set of documents (`catalog`), turns every SLO
into declarations (`slo`, which reads indicators through `indicators`), lets our own
`sloplane.dev/<field>` annotations override the native fields, and validates the result with each
diagnostic positioned at the OpenSLO field the declaration field came from (`TranslatedSource`).
`native_declarations` is the same translation without the annotations, for the exporter's diff.

The translation itself lives in the modules named above; this module keeps the public names
(`import_openslo`, `OPENSLO_API_VERSIONS`, and those the exporter uses) so callers import one place.
"""

from __future__ import annotations

from typing import Any

from sloplane.declaration.diagnostics import Diagnostic, Position, Severity
from sloplane.declaration.model import Declaration
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.validation import validate
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.openslo.catalog import ImportProblemError, diagnostic_at, parse_documents
from sloplane.interop.openslo.slo import (
    ANNOTATION_PREFIX,
    DISPLAY_NAME_ANNOTATION,
    Converted,
    apply_annotations,
    as_data,
    convert_slo,
    objective_problems,
)
from sloplane.interop.openslo.units import parse_shorthand, shorthand_to_duration
from sloplane.interop.translation import UNASSIGNED_TEAM, ForeignFormat, TranslatedSource

__all__ = [
    "ANNOTATION_PREFIX",
    "DISPLAY_NAME_ANNOTATION",
    "OPENSLO_API_VERSIONS",
    "OPENSLO_V1",
    "OPENSLO_V2ALPHA",
    "UNASSIGNED_TEAM",
    "Converted",
    "ImportProblemError",
    "TranslatedSource",
    "apply_annotations",
    "as_data",
    "convert_slo",
    "import_openslo",
    "native_declarations",
    "parse_shorthand",
    "shorthand_to_duration",
]

OPENSLO_V1 = "openslo/v1"
OPENSLO_V2ALPHA = "openslo.com/v2alpha"
OPENSLO_API_VERSIONS = ("openslo/v1alpha", OPENSLO_V1, OPENSLO_V2ALPHA, "openslo/v2alpha")


def import_openslo(documents: list[YamlDocument]) -> tuple[list[LoadedSLO], list[Diagnostic]]:
    """Our declarations from OpenSLO documents, with diagnostics positioned in those documents."""
    diagnostics: list[Diagnostic] = []
    catalog = parse_documents(documents, diagnostics)
    slos: list[LoadedSLO] = []
    for item in catalog.objects.get("SLO", {}).values():
        problems = objective_problems(item, catalog)
        if problems:
            diagnostics.extend(diagnostic_at(item.document, problem.loc, problem.message) for problem in problems)
            continue
        try:
            converted_all = list(convert_slo(item, catalog))
            for converted in converted_all:
                apply_annotations(converted)
        except ImportProblemError as problem:
            diagnostics.append(diagnostic_at(item.document, problem.loc, problem.message))
            continue
        for converted in converted_all:
            source = TranslatedSource(item.document, converted.mapping)
            for loc, message in converted.warnings:
                diagnostics.append(diagnostic_at(item.document, loc, message, Severity.WARNING))
            declaration, found = validate(Declaration, converted.data, source)
            diagnostics.extend(found)
            if declaration is not None:
                slos.append(LoadedSLO(declaration, source, item.envelope.api_version))
    return slos, _unique(diagnostics)


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Warnings repeat when one OpenSLO SLO yields several declarations; keep each once."""
    return list(dict.fromkeys(diagnostics))


def native_declarations(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Declaration data from OpenSLO documents *without* our annotations (used by export's diff)."""
    fake = [YamlDocument(path="<export>", index=i, data=data, start=Position(1, 1)) for i, data in enumerate(documents)]
    catalog = parse_documents(fake, [])
    result: dict[str, dict[str, Any]] = {}
    for item in catalog.objects.get("SLO", {}).values():
        try:
            for converted in convert_slo(item, catalog):
                result[converted.data["metadata"]["name"]] = converted.data
        except ImportProblemError:
            continue
    return result


def detects(data: dict[str, Any]) -> bool:
    """OpenSLO's marker: one of its apiVersions."""
    return data.get("apiVersion") in OPENSLO_API_VERSIONS


FORMAT = ForeignFormat(
    name="OpenSLO",
    command="openslo",
    detects=detects,
    read=import_openslo,
    documents="OpenSLO v1alpha / v1 / v2alpha (and sloplane) files",
)
