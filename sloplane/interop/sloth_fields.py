"""Sloth documents as data: their two spellings, reading fields safely, and one SLO under translation.

Shared by `sloth` (identity, owner, SLI) and `sloth_alerting` (alerting and SLO plugins), which
translate the parts of one Sloth SLO into our declaration and record where each field came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.validation import did_you_mean
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.sloth_windows import Windows
from sloplane.interop.translation import ImportProblemError

WINDOW = re.compile(r"\{\{\s*\.?window\s*\}\}")
"""Sloth's window placeholder, spaced as its own check allows (`{{ .window }}`)."""
SPEC_VERSION = "prometheus/v1"
CRD_API_VERSION = "sloth.slok.dev/v1"


@dataclass(frozen=True)
class Keys:
    """Field spellings: the spec file's snake_case or the CRD's camelCase."""

    root: Loc
    error_query: str
    total_query: str
    error_ratio_query: str
    page_alert: str
    ticket_alert: str
    slo_plugins: str


SPEC_KEYS = Keys((), "error_query", "total_query", "error_ratio_query", "page_alert", "ticket_alert", "slo_plugins")
CRD_KEYS = Keys(("spec",), "errorQuery", "totalQuery", "errorRatioQuery", "pageAlert", "ticketAlert", "sloPlugins")


def mapping_at(value: Any, loc: Loc, what: str) -> dict[str, Any]:
    """A mapping field (absent is empty), or a problem at its line."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ImportProblemError(loc, f"'{what}' must be a mapping")
    return value


def as_text(value: Any) -> str:
    """A scalar as Sloth reads it into a string field: `true`, `0.2` and `90` as written."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def strings_at(value: Any, loc: Loc, what: str) -> dict[str, str]:
    found = mapping_at(value, loc, what)
    for key, item in found.items():
        if isinstance(item, dict | list):
            raise ImportProblemError((*loc, key), f"'{what}.{key}' must be a single value")
    return {str(key): "" if item is None else as_text(item) for key, item in found.items()}


def warn_unknown(data: dict[str, Any], known: tuple[str, ...], loc: Loc, warnings: list[tuple[Loc, str]]) -> None:
    """Sloth ignores fields it does not know; say so, since a misspelt one silently changes the alerts."""
    for key in data:
        if key not in known:
            hint = did_you_mean(str(key), list(known))
            warnings.append(((*loc, key), f"unknown field '{key}' is ignored, as Sloth ignores it{hint}"))


@dataclass
class Group:
    """What a Sloth document's SLOs share: the service, its labels and the plugin chain, and where they are."""

    document: YamlDocument
    keys: Keys
    spec: dict[str, Any]
    labels: dict[str, str]
    windows: Windows

    def loc(self, *parts: str | int) -> Loc:
        return (*self.keys.root, *parts)

    @property
    def source_format(self) -> str:
        """How the SLOs' origin is named: the CRD's apiVersion or the spec's version."""
        return CRD_API_VERSION if self.keys is CRD_KEYS else SPEC_VERSION


@dataclass
class SloDraft:
    """One SLO under translation: our data, where each field came from, and what went wrong."""

    group: Group
    index: int
    raw: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    mapping: list[tuple[Loc, Loc]] = field(default_factory=list)
    warnings: list[tuple[Loc, str]] = field(default_factory=list)
    problems: list[tuple[Loc, str]] = field(default_factory=list)
    own_labels: dict[str, str] = field(default_factory=dict)

    def loc(self, *parts: str | int) -> Loc:
        return self.group.loc("slos", self.index, *parts)

    def origin(self, ours: Loc, theirs: Loc) -> None:
        self.mapping.append((ours, theirs))
