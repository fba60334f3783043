"""A validated declaration together with where it came from, so later checks can point at lines."""

from __future__ import annotations

from dataclasses import dataclass

from sloplane.declaration.diagnostics import Diagnostic, Loc, Severity, format_loc
from sloplane.declaration.model import Declaration
from sloplane.declaration.validation import Locator


@dataclass(frozen=True)
class LoadedSLO:
    """A declaration, the source that locates its fields, and the format it was written in."""

    declaration: Declaration
    source: Locator
    source_format: str

    @property
    def name(self) -> str:
        """The SLO's name."""
        return self.declaration.name

    def diagnostic(
        self,
        loc: Loc,
        message: str,
        *,
        severity: Severity = Severity.ERROR,
        code: str = "invalid",
        key: bool = False,
    ) -> Diagnostic:
        """A finding about one of this declaration's fields, positioned in its source."""
        return Diagnostic(
            path=self.source.path,
            position=self.source.position(loc, key=key),
            field=format_loc(loc),
            message=message,
            severity=severity,
            code=code,
        )
