"""The OpenSLO objects present in a set of documents, by kind and name, and references between them.

OpenSLO spreads one SLO over several objects (an SLO names its SLI by `indicatorRef`, a metric its
DataSource by `dataSourceRef`, an SLO its AlertPolicy by `alertPolicyRef`), possibly across files.
Everything that translates an SLO needs to look those references up, so parsing the documents into a
catalog, and the error that points at a field sloplane cannot take, live here below the translation
modules (`indicators`, `slo`) and the entry point (`importer`), which all import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sloplane.declaration.diagnostics import Diagnostic, Loc, Position, Severity
from sloplane.declaration.validation import did_you_mean, validate
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop import translation
from sloplane.interop.openslo.models import SPEC_MODELS, OEnvelope
from sloplane.interop.openslo.v1alpha import V1ALPHA, as_v1, renamed_fields
from sloplane.interop.translation import ImportProblemError

__all__ = ["Catalog", "ImportProblemError", "ParsedObject", "diagnostic_at", "parse_documents"]


@dataclass
class ParsedObject:
    """A parsed OpenSLO object with the document it came from."""

    document: YamlDocument
    envelope: OEnvelope
    spec: Any


@dataclass
class Catalog:
    """OpenSLO objects by kind and name, for resolving references across documents and files."""

    objects: dict[str, dict[str, ParsedObject]] = field(default_factory=dict)

    def get(self, kind: str, name: str, loc: Loc) -> ParsedObject:
        found = self.objects.get(kind, {}).get(name)
        if found is None:
            known = sorted(self.objects.get(kind, {}))
            raise ImportProblemError(loc, f"refers to unknown {kind} '{name}'{did_you_mean(name, known)}")
        return found


def diagnostic_at(document: YamlDocument, loc: Loc, message: str, severity: Severity = Severity.ERROR) -> Diagnostic:
    """A diagnostic at a field of an OpenSLO document (an error unless told otherwise)."""
    return translation.diagnostic_at(document, loc, message, severity, "openslo")


def parse_documents(documents: list[YamlDocument], diagnostics: list[Diagnostic]) -> Catalog:
    """The objects of the documents that validate; what does not validate, or repeats a name, goes to diagnostics."""
    catalog = Catalog()
    for document in (_as_v1(document, diagnostics) for document in documents):
        envelope, found = validate(OEnvelope, document.data, document)
        diagnostics.extend(found)
        spec = _spec(document, diagnostics)  # checked even when the envelope is not: every problem in one run
        if envelope is None or spec is None:
            continue
        by_name = catalog.objects.setdefault(envelope.kind, {})
        if envelope.metadata.name in by_name:
            first = by_name[envelope.metadata.name].document
            # A Service is only a name to us: a repeated one is a slip, not a conflict.
            severity = Severity.WARNING if envelope.kind == "Service" else Severity.ERROR
            diagnostics.append(
                diagnostic_at(
                    document,
                    ("metadata", "name"),
                    f"duplicate {envelope.kind} '{envelope.metadata.name}' "
                    f"(first at {first.path}:{first.position(('metadata', 'name')).line})",
                    severity,
                )
            )
            continue
        by_name[envelope.metadata.name] = ParsedObject(document, envelope, spec)
    return catalog


def _as_v1(document: YamlDocument, diagnostics: list[Diagnostic]) -> YamlDocument:
    """A v1alpha document as v1 data (`v1alpha.as_v1`), still located in the file as written."""
    if document.data.get("apiVersion") != V1ALPHA:
        return document
    warnings: list[tuple[Loc, str]] = []
    converted = replace(document, data=as_v1(document.data, warnings), renamed=renamed_fields(document.data))
    diagnostics.extend(diagnostic_at(document, loc, message, Severity.WARNING) for loc, message in warnings)
    return converted


def _spec(document: YamlDocument, diagnostics: list[Diagnostic]) -> Any:
    """The document's spec validated by its kind, when the kind is known and the spec is a mapping."""
    spec_model = SPEC_MODELS.get(str(document.data.get("kind")))
    data = document.data.get("spec", {})
    if spec_model is None or not isinstance(data, dict):
        return None
    spec, found = validate(spec_model, data, _PrefixedLocator(document, ("spec",)))
    diagnostics.extend(found)
    return spec


class _PrefixedLocator:
    """Positions for a model validated from a sub-tree of a document."""

    def __init__(self, document: YamlDocument, prefix: Loc) -> None:
        self.path = document.path
        self._document = document
        self._prefix = prefix

    def position(self, loc: Loc, *, key: bool = False) -> Position:
        return self._document.position((*self._prefix, *loc), key=key)
