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
"""A file's format ("yaml", "yaml-documents", "json", or "text" for a string written as it is) and its data."""

ChildKind = Literal["custom-resource", "config-map", "datadog"]
"""How a Pulumi component registers a child: a Kubernetes custom resource, a ConfigMap, or a
pulumi-datadog resource (what it is and which SLO ids it needs: `Child.datadog`)."""

DatadogType = Literal["ServiceLevelObjective", "Monitor", "SloCorrection", "DowntimeSchedule", "DashboardJson"]
"""The pulumi-datadog classes sloplane registers."""


@dataclass(frozen=True)
class DatadogResource:
    """What a Datadog child is beyond its inputs: the objects refer to each other by ids Datadog gives
    only when it creates them, so a child says which SLO it is and which SLOs' ids its inputs hold."""

    type: DatadogType
    ref: str | None = None
    """An SLO's name for the children that refer to it (`slo` or `slo/stage`): its id replaces `{{slo:<ref>}}`."""
    slo_refs: tuple[str, ...] = ()
    """The SLOs whose ids stand as placeholders in the inputs: the child is built from their ids."""
    json_inputs: tuple[str, ...] = ()
    """Inputs the resource takes as JSON text (a DashboardJson's `dashboard`): serialised once the ids are in."""


@dataclass(frozen=True)
class Child:
    """What a Pulumi component registers for a target: the same data `sloplane render` writes.

    A Kubernetes child's `object` is the object's dict; a Datadog child's is the resource's inputs as
    pulumi-datadog's keyword arguments (snake_case, nested arguments as dicts), built from the request
    bodies the files hold, so the files and the stack never disagree.
    """

    key: str
    """The component's `create` entry that switches it on or off (`prometheusRule`, `probe`, `dashboard`)."""
    suffix: str
    """The Pulumi resource name is `<component name>-<suffix>`: stable across runs."""
    kind: ChildKind
    object: dict[str, Any]
    datadog: DatadogResource | None = None
    """For the `datadog` kind (and only for it): which resource, and the SLO ids it needs."""

    def __post_init__(self) -> None:
        """A Datadog child without its resource type (or a Kubernetes one with one) is a renderer's bug."""
        if (self.kind == "datadog") != (self.datadog is not None):
            raise ValueError(f"child {self.suffix}: kind {self.kind!r} and its Datadog description disagree")


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
