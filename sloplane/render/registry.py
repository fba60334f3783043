"""What a target system is to sloplane: the declaration's `targets` value, the folders it owns, its files, its children.

Every renderer module ends with one `Renderer` describing itself; `render.targets.RENDERERS` lists them,
and everything that renders iterates that list: `bundle` (the files `sloplane render` writes), the CLI
(which folders it owns, which targets a declaration may name) and the Pulumi components (which
children an SLO registers). Adding a target is a module that declares its `Renderer` and one line
in `RENDERERS`; nothing else branches on targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import TargetSystem
from sloplane.render.options import BundleOptions
from sloplane.semantics.subjects import Fleet, FleetLike

Document = tuple[str, Any]
"""A file's format ("yaml", "yaml-documents" or "json") and its data."""

ChildKind = Literal["custom-resource", "config-map"]
"""How a Pulumi component registers a child: a Kubernetes custom resource, or a ConfigMap."""


@dataclass(frozen=True)
class Child:
    """A Kubernetes object a Pulumi component registers for a target: the same dict `sloplane render` writes."""

    key: str
    """The component's `create` entry that switches it on or off (`prometheusRule`, `probe`, `dashboard`)."""
    suffix: str
    """The Pulumi resource name is `<component name>-<suffix>`: stable across runs."""
    kind: ChildKind
    object: dict[str, Any]


SloDocuments = Callable[[Declaration, FleetLike, BundleOptions], dict[str, Document]]
"""One SLO's files, by path under the output folder."""
FleetDocuments = Callable[[Sequence[Declaration], Fleet, BundleOptions], dict[str, Document]]
"""Files over every SLO that names the target (always called, the sequence possibly empty)."""
SloChildren = Callable[[Declaration, FleetLike, BundleOptions], list[Child]]
FleetChildren = Callable[[Sequence[Declaration], Fleet, BundleOptions], list[Child]]


def _no_children(*_: Any) -> list[Child]:
    return []


@dataclass(frozen=True)
class Renderer:
    """One target system (see the module docstring)."""

    target: TargetSystem
    folders: tuple[str, ...]
    """Folders under the output that this target owns: files there that are no longer rendered are removed."""
    slo_documents: SloDocuments
    fleet_documents: FleetDocuments | None = None
    child_keys: tuple[str, ...] = ()
    """The `create` entries of its per-SLO children, so that a fleet can ask for exactly these."""
    slo_children: SloChildren = _no_children
    fleet_children: FleetChildren = _no_children
    children_pending: str | None = None
    """Why the Pulumi components cannot register this target's objects yet: they refuse a declaration
    naming it with this message rather than register nothing for it."""
