"""Paths in, validated declarations and diagnostics out.

Files and folders (recursively, `*.yaml` / `*.yml`), several documents per file (or a document that
is a list of objects), our format and other tools' (OpenSLO, Sloth, Pyrra, slo-generator) side by
side, told apart by their own markers (`interop.formats`). Loading never raises for bad input: everything
wrong is a diagnostic with a position, so a command can report all problems at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sloplane.declaration.checks import check_renderable, run_checks
from sloplane.declaration.debt import DEBT_KIND, LoadedDebt, ReliabilityDebt, check_register
from sloplane.declaration.diagnostics import (
    DeclarationError,
    Diagnostic,
    Position,
    Severity,
    format_loc,
    sorted_diagnostics,
)
from sloplane.declaration.model import API_VERSION, KIND, Declaration
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.policy import TargetSystem
from sloplane.declaration.validation import did_you_mean, validate
from sloplane.declaration.yamlsource import SourceError, YamlDocument, YamlSyntaxError, read_documents, read_source
from sloplane.interop.formats import format_of
from sloplane.interop.openslo.importer import OPENSLO_API_VERSIONS
from sloplane.interop.translation import ForeignFormat

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadResult:
    """What loading found: the declarations that are valid, the reliability debt register's valid items, and every
    diagnostic."""

    slos: list[LoadedSLO] = field(default_factory=list)
    debts: list[LoadedDebt] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        """Findings that make the input unusable."""
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        """Lints."""
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    def failed(self, *, strict: bool = False) -> bool:
        """Whether a command should stop: any error, or any warning under --strict."""
        return bool(self.errors) or (strict and bool(self.warnings))

    @property
    def declarations(self) -> list[Declaration]:
        """The valid declarations, in input order."""
        return [slo.declaration for slo in self.slos]


def _file_error(path: str, message: str, code: str) -> Diagnostic:
    return Diagnostic(path, Position(1, 1), "", message, Severity.ERROR, code)


def _visible(path: Path, base: Path) -> bool:
    """Not hidden below `base`: a ConfigMap mounted as a folder keeps copies in `..<timestamp>/` folders,
    and editors and git keep dot-files; reading those would declare every SLO twice."""
    return not any(part.startswith(".") for part in path.relative_to(base).parts)


def expand_paths(paths: Iterable[Path], diagnostics: list[Diagnostic]) -> list[Path]:
    """Files as given, folders as every YAML file below them in name order (hidden files and folders skipped)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file() and _visible(p, path)
            )
            if not found:
                diagnostics.append(_file_error(str(path), "folder holds no *.yaml or *.yml files", "no-files"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            diagnostics.append(_file_error(str(path), "no such file or folder", "not-found"))
    return files


def read_yaml_files(files: Iterable[Path], diagnostics: list[Diagnostic]) -> list[YamlDocument]:
    """Every document of every file; unreadable files and YAML syntax errors become diagnostics."""
    documents: list[YamlDocument] = []
    for path in files:
        shown = str(path)
        try:
            text = read_source(path)
        except SourceError as error:
            diagnostics.append(_file_error(shown, str(error), "unreadable"))
            continue
        try:
            documents.extend(read_documents(shown, text))
        except YamlSyntaxError as error:
            field = format_loc(tuple(error.loc))
            diagnostics.append(Diagnostic(shown, error.position, field, error.message, Severity.ERROR, "yaml"))
    return documents


def _document_error(document: YamlDocument, loc: tuple[str, ...], message: str, code: str) -> Diagnostic:
    return Diagnostic(document.path, document.position(loc), ".".join(loc), message, Severity.ERROR, code)


@dataclass
class _Sorted:
    """Documents by format: ours, and each foreign format's in input order."""

    ours: list[YamlDocument] = field(default_factory=list)
    foreign: dict[ForeignFormat, list[YamlDocument]] = field(default_factory=dict)

    def all(self) -> list[YamlDocument]:
        return [*self.ours, *(document for documents in self.foreign.values() for document in documents)]


def _classify(
    documents: list[YamlDocument], diagnostics: list[Diagnostic], accepted: Collection[ForeignFormat] | None
) -> _Sorted:
    """Split documents (a sequence of objects counts as one document each) by the format their markers name.

    A foreign format outside `accepted` (when given) is an error naming the command that reads it.
    """
    found = _Sorted()
    known = [API_VERSION, *(version for version in OPENSLO_API_VERSIONS)]
    for document in (item for whole in documents for item in whole.items()):
        if not isinstance(document.data, dict):
            diagnostics.append(
                _document_error(
                    document,
                    (),
                    "a document must be a mapping with apiVersion, kind, metadata and spec (or a list of them)",
                    "shape",
                )
            )
            continue
        api_version = document.data.get("apiVersion")
        if api_version == API_VERSION:
            found.ours.append(document)
            continue
        foreign = format_of(document.data)
        if foreign is not None and (accepted is None or foreign in accepted):
            found.foreign.setdefault(foreign, []).append(document)
        elif foreign is not None:
            message = f"this is a {foreign.name} document: read it with `sloplane import {foreign.command}`"
            diagnostics.append(_document_error(document, (), message, "format"))
        elif api_version is None:
            diagnostics.append(_document_error(document, (), "missing 'apiVersion'", "missing"))
        else:
            hint = did_you_mean(str(api_version), known) or f" (expected one of: {', '.join(known)})"
            diagnostics.append(
                _document_error(document, ("apiVersion",), f"unknown apiVersion '{api_version}'{hint}", "api-version")
            )
    return found


def _validate_ours(documents: list[YamlDocument], result: LoadResult) -> None:
    """Our documents into `result`: SLOs and reliability debt items, each validated by its own model."""
    for document in documents:
        kind = document.data.get("kind")
        if kind == DEBT_KIND:
            debt, found = validate(ReliabilityDebt, document.data, document)
            result.diagnostics.extend(found)
            if debt is not None:
                result.debts.append(LoadedDebt(debt, document))
            continue
        if kind != KIND:
            message = f"kind '{kind}' is not known in {API_VERSION}; use {KIND} or {DEBT_KIND}"
            result.diagnostics.append(_document_error(document, ("kind",), message, "kind"))
            continue
        declaration, found = validate(Declaration, document.data, document)
        result.diagnostics.extend(found)
        if declaration is not None:
            result.slos.append(LoadedSLO(declaration, document, API_VERSION))


def _raw_name(document: YamlDocument) -> str | None:
    """The name a document claims, valid or not: references to it are not 'unknown'."""
    metadata = document.data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def load_paths(
    paths: Sequence[Path | str],
    *,
    today: date | None = None,
    renderable: Collection[TargetSystem] | None = None,
    formats: Collection[ForeignFormat] | None = None,
) -> LoadResult:
    """Load, validate and check every declaration under the given paths.

    With `renderable` (the targets the caller can render: `render.targets.rendered_targets()`), a
    declaration naming any other target is an error at that target's line. With `formats`, only
    those foreign formats are read (besides ours); a document in another is an error naming its
    command. Files that hold only objects an SLO refers to (an OpenSLO Service or DataSource) are
    valid and yield no declarations.
    """
    result = LoadResult()
    files = expand_paths([Path(p) for p in paths], result.diagnostics)
    documents = read_yaml_files(files, result.diagnostics)
    found = _classify(documents, result.diagnostics, formats)
    _validate_ours(found.ours, result)
    for foreign, foreign_documents in found.foreign.items():
        imported, diagnostics = foreign.read(foreign_documents)
        result.slos.extend(imported)
        result.diagnostics.extend(diagnostics)
    if not documents and not result.diagnostics:
        result.diagnostics.append(
            _file_error(", ".join(str(p) for p in paths) or "(no paths)", "no declarations found", "empty")
        )
    declared = {
        name
        for document in found.all()
        if (name := _raw_name(document)) is not None and document.data.get("kind") != DEBT_KIND
    } | {slo.name for slo in result.slos}
    result.diagnostics.extend(run_checks(result.slos, today=today or date.today(), declared=declared))
    result.diagnostics.extend(check_register(result.debts, declared))
    if renderable is not None:
        result.diagnostics.extend(check_renderable(result.slos, renderable))
    result.diagnostics = sorted_diagnostics(result.diagnostics)
    return result


def load_declarations(
    paths: Sequence[Path | str], *, strict: bool = False, renderable: Collection[TargetSystem] | None = None
) -> list[Declaration]:
    """The declarations under the paths, or DeclarationError listing everything wrong (see `load_paths`)."""
    result = load_paths(paths, renderable=renderable)
    if result.failed(strict=strict):
        raise DeclarationError(result.errors + (result.warnings if strict else []))
    return result.declarations
