"""The SLO declaration: models, loading with precise errors, checks and OpenSLO interchange.

This package is the only code that knows input formats; everything downstream works from
`Declaration` objects.
"""

from sloplane.spec.diagnostics import DeclarationError, Diagnostic, Position, Severity
from sloplane.spec.loader import LoadResult, load_declarations, load_paths
from sloplane.spec.model import API_VERSION, Declaration, Spec
from sloplane.spec.origin import LoadedSLO

__all__ = [
    "API_VERSION",
    "Declaration",
    "DeclarationError",
    "Diagnostic",
    "LoadResult",
    "LoadedSLO",
    "Position",
    "Severity",
    "Spec",
    "load_declarations",
    "load_paths",
]
