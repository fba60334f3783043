"""Every target system sloplane renders for, in one list: what `bundle`, the CLI and the components iterate.

A target a declaration can name (`declaration.policy.TargetSystem`) but that has no `Renderer` here
is refused when declarations are loaded for rendering (`interop.load_paths(renderable=...)`), so a
`targets: [datadog]` is an error naming it, never zero files written in silence.
"""

from __future__ import annotations

from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import TargetSystem
from sloplane.render import alertmanager, argo_cd, argo_rollouts, datadog, grafana, prometheus, spinnaker
from sloplane.render.registry import Renderer

RENDERERS: tuple[Renderer, ...] = (
    prometheus.RENDERER,
    alertmanager.RENDERER,
    grafana.RENDERER,
    argo_rollouts.RENDERER,
    argo_cd.RENDERER,
    spinnaker.RENDERER,
    datadog.RENDERER,
)

MANAGED_FOLDERS: tuple[str, ...] = tuple(dict.fromkeys(folder for renderer in RENDERERS for folder in renderer.folders))
"""Folders under the output that sloplane owns: files there that it no longer renders are removed."""


def rendered_targets() -> frozenset[TargetSystem]:
    """The targets that have a renderer."""
    return frozenset(renderer.target for renderer in RENDERERS)


def renderers_of(declaration: Declaration) -> list[Renderer]:
    """The renderers of the targets a declaration names, in registry order."""
    named = set(declaration.spec.targets)
    return [renderer for renderer in RENDERERS if renderer.target in named]
