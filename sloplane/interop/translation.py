"""What every importer of another tool's format shares: a translation, where its fields came from, and
how it becomes a validated declaration with diagnostics positioned in the file the user wrote.

An importer (OpenSLO, Sloth, Pyrra, slo-generator) writes our declaration as plain data and records,
for each of our fields, the field of its own document it was made from. Validation then runs on our
model, and every problem is reported at the user's line, not at a declaration they never saw.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sloplane.declaration.diagnostics import Diagnostic, Loc, Position, Severity, format_loc
from sloplane.declaration.model import Declaration
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.validation import validate
from sloplane.declaration.yamlsource import YamlDocument

UNASSIGNED_TEAM = "unassigned"
"""The owner of an imported SLO whose file names none (with a warning saying which label to set)."""
OWNER_LABELS = ("team", "owner", "owners", "squad", "owning-team")
"""Labels teams use to say who owns an SLO, in the order importers read them: none of the formats has an
owner field. An importer may put its tool's own labels first (`pyrra.dev/team`)."""
_RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NOT_NAME = re.compile(r"[^a-z0-9]+")


def is_name(text: str) -> bool:
    """Whether `text` is an RFC 1123 name (what sloplane's names must be)."""
    return _RFC1123.match(text) is not None


def as_name(text: str) -> str:
    """The RFC 1123 name closest to `text`: lowercase, other characters as '-', at most 63 ('' if none is left)."""
    return _NOT_NAME.sub("-", text.lower()).strip("-")[:63].rstrip("-")


def owner_label(labels: Mapping[str, object], first: Sequence[str] = ()) -> str | None:
    """The first owner label (`first`, then `OWNER_LABELS`) that has a value, if any."""
    return next((key for key in (*first, *OWNER_LABELS) if labels.get(key)), None)


class ImportProblemError(Exception):
    """Something in a document of another format that sloplane cannot take, at a field of that document."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def diagnostic_at(
    document: YamlDocument, loc: Loc, message: str, severity: Severity = Severity.ERROR, code: str = "import"
) -> Diagnostic:
    """A diagnostic at a field of a document in another format (an error unless told otherwise)."""
    return Diagnostic(document.path, document.position(loc), format_loc(loc), message, severity, code)


class TranslatedSource:
    """Locates fields of an imported declaration in the document they came from."""

    def __init__(self, document: YamlDocument, mapping: list[tuple[Loc, Loc]], fallback: Loc = ("spec",)) -> None:
        self.path = document.path
        self._document = document
        self._mapping = mapping
        self._fallback = fallback

    def position(self, loc: Loc, *, key: bool = False) -> Position:
        """The foreign field our field was made from (longest declared prefix first), else the fallback."""
        for ours, theirs in self._mapping:
            if loc[: len(ours)] == ours:
                return self._document.position(theirs, key=key)
        return self._document.position(self._fallback, key=True)


@dataclass
class SliTranslation:
    """Our `sli` made from one indicator of another format, where its parts came from, and what went wrong."""

    sli: dict[str, Any] | None = None
    mapping: list[tuple[Loc, Loc]] = field(default_factory=list)
    warnings: list[tuple[Loc, str]] = field(default_factory=list)
    errors: list[tuple[Loc, str]] = field(default_factory=list)


@dataclass
class Translation:
    """One declaration made from a foreign document, before validation.

    `mapping` pairs our field paths with theirs, most specific first; `warnings` are (their field,
    message) for what was mapped approximately or not at all.
    """

    data: dict[str, Any]
    document: YamlDocument
    mapping: list[tuple[Loc, Loc]] = field(default_factory=list)
    warnings: list[tuple[Loc, str]] = field(default_factory=list)
    fallback: Loc = ("spec",)


def validated(
    translations: Iterable[Translation], source_format: str, code: str = "import"
) -> tuple[list[LoadedSLO], list[Diagnostic]]:
    """Validate translations as declarations; every diagnostic at the foreign field it came from."""
    slos: list[LoadedSLO] = []
    diagnostics: list[Diagnostic] = []
    for translation in translations:
        document = translation.document
        for loc, message in translation.warnings:
            diagnostics.append(diagnostic_at(document, loc, message, Severity.WARNING, code))
        source = TranslatedSource(document, translation.mapping, translation.fallback)
        declaration, found = validate(Declaration, translation.data, source)
        diagnostics.extend(found)
        if declaration is not None:
            slos.append(LoadedSLO(declaration, source, source_format))
    return slos, list(dict.fromkeys(diagnostics))


Importer = Callable[[list[YamlDocument]], tuple[list[LoadedSLO], list[Diagnostic]]]
"""Documents of one format in, declarations and diagnostics out; never raises for bad input."""


@dataclass(frozen=True)
class ForeignFormat:
    """Another tool's format: how to recognise its documents and how to import them.

    `detects` sees a document's data (a mapping) and answers from the format's own markers
    (`apiVersion`/`kind`, Sloth's `version: prometheus/v1`), so the loader can hand each document
    to its importer and name the format where it is not accepted.
    """

    name: str
    """As people write it: `Sloth`, `Pyrra`, `slo-generator`, `OpenSLO`."""
    command: str
    """The `sloplane import <command>` that reads it."""
    detects: Callable[[dict[str, Any]], bool]
    read: Importer
    documents: str = ""
    """What its files hold, for `sloplane import <command> --help`."""
