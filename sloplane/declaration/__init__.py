"""The SLO declaration: the typed model, YAML reading with positions, validation, checks and lints.

Everything downstream works from `Declaration` objects; reading files in any format (ours,
OpenSLO) is `sloplane.interop`'s job.
"""

from sloplane.declaration.diagnostics import DeclarationError, Diagnostic, Position, Severity
from sloplane.declaration.model import API_VERSION, Declaration, Spec
from sloplane.declaration.origin import LoadedSLO

__all__ = [
    "API_VERSION",
    "Declaration",
    "DeclarationError",
    "Diagnostic",
    "LoadedSLO",
    "Position",
    "Severity",
    "Spec",
]
