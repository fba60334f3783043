"""Findings about declarations, each pinned to `path:line:column` and a field path.

Errors stop a command; warnings (lints) are printed and only stop it under `--strict`. Every part of
loading reports through this one shape so the CLI, the Pulumi components and the tests read them
the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

Loc = tuple[str | int, ...]
"""A path into a document: ('spec', 'stages', 0, 'name')."""


class Severity(StrEnum):
    """Errors make a declaration unusable; warnings are lints."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Position:
    """1-based line and column in a file."""

    line: int
    column: int


def format_loc(loc: Loc) -> str:
    """('spec', 'stages', 0, 'name') -> 'spec.stages[0].name'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class Diagnostic:
    """One finding: where, which field, what is wrong, how serious."""

    path: str
    position: Position
    field: str
    message: str
    severity: Severity = Severity.ERROR
    code: str = "invalid"

    def render(self) -> str:
        """`file.yaml:12:5: error: spec.objective: objective 100 must be ...`."""
        where = f"{self.path}:{self.position.line}:{self.position.column}"
        field = f"{self.field}: " if self.field else ""
        return f"{where}: {self.severity.value}: {field}{self.message}"


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """File order, then line order: how people read a list of problems."""
    return sorted(diagnostics, key=lambda d: (d.path, d.position, d.field, d.message))


class DeclarationError(Exception):
    """Raised by APIs that need valid declarations (components, renderers) when loading found errors."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))
