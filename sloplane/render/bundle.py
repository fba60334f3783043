"""Everything `sloplane render` writes, as file paths and text, computed in memory first.

Nothing is written until every file of the fleet has rendered, so an error leaves the output
folder as it was. Which files an SLO gets follows its `targets`; archived SLOs get none. Large
fleets render in forked worker processes (each SLO's files depend only on the fleet), and the
output is the same bytes either way.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from sloplane.core.serialize import to_json, to_yaml, to_yaml_documents
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.render.options import BundleOptions
from sloplane.render.registry import Document
from sloplane.render.targets import MANAGED_FOLDERS, RENDERERS, renderers_of
from sloplane.semantics.recording import recorded_windows
from sloplane.semantics.subjects import Fleet, FleetLike

__all__ = ["MANAGED_FOLDERS", "BundleOptions", "Document", "active", "fleet_documents", "fleet_files", "serialize"]


def active(declarations: Sequence[Declaration]) -> list[Declaration]:
    """Declarations that render: all but archived ones, in name order."""
    return sorted((d for d in declarations if d.spec.lifecycle is not Lifecycle.ARCHIVED), key=lambda d: d.name)


def slo_documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    """The files of one SLO as data, by path relative to the output folder: each named target's."""
    documents: dict[str, Document] = {}
    for renderer in renderers_of(declaration):
        documents.update(renderer.slo_documents(declaration, fleet, options))
    return documents


def fleet_documents(
    declarations: Sequence[Declaration],
    options: BundleOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Document]:
    """Every file for a fleet as data: per-SLO files, the Alertmanager configuration and the overview."""
    options = options or BundleOptions()
    fleet = Fleet(declarations)
    rendered = active(declarations)
    documents: dict[str, Document] = {}
    for declaration in rendered:
        documents.update(slo_documents(declaration, fleet, options))
        if progress is not None:
            progress(declaration.name)
    documents.update(_fleet_wide_documents(rendered, fleet, options))
    return dict(sorted(documents.items()))


def _fleet_wide_documents(rendered: list[Declaration], fleet: Fleet, options: BundleOptions) -> dict[str, Document]:
    """Each target's files over every rendered SLO that names it (Alertmanager, the overview, sync windows)."""
    documents: dict[str, Document] = {}
    for renderer in RENDERERS:
        if renderer.fleet_documents is not None:
            named = [d for d in rendered if renderer.target in d.spec.targets]
            documents.update(renderer.fleet_documents(named, fleet, options))
    return documents


def serialize(documents: dict[str, Document]) -> dict[str, str]:
    """File text for each document (rule files first, so PrometheusRules can reuse their text)."""
    texts: dict[str, str] = {}
    written: dict[int, str] = {}
    for path, (kind, data) in documents.items():
        if kind == "yaml":
            texts[path] = written[id(data)] = to_yaml(data)
    for path, (kind, data) in documents.items():
        if kind == "yaml-documents":
            texts[path] = to_yaml_documents(data, written)
        elif kind == "json":
            texts[path] = to_json(data)
        elif kind == "text":
            texts[path] = data
    return dict(sorted(texts.items()))


PARALLEL_FROM = 200
"""Fleets this large render in worker processes, one per core (rendering is per SLO, independent)."""

_worker_state: tuple[Fleet, BundleOptions] | None = None
"""The fleet a forked worker renders from (set before forking, so it is inherited, not pickled)."""


def _render_chunk(names: list[str]) -> dict[str, str]:
    assert _worker_state is not None
    fleet, options = _worker_state
    documents: dict[str, Document] = {}
    for name in names:
        documents.update(slo_documents(fleet[name], fleet, options))
    return serialize(documents)


def _workers(count: int) -> int:
    if count < PARALLEL_FROM or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(os.cpu_count() or 1, 8)


def fleet_files(
    declarations: Sequence[Declaration],
    options: BundleOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Every file for a fleet, as text by path; large fleets render on every core."""
    global _worker_state  # noqa: PLW0603 - handed to forked workers by inheritance
    options = options or BundleOptions()
    rendered = active(declarations)
    workers = _workers(len(rendered))
    if workers == 1:
        return serialize(fleet_documents(declarations, options, progress))
    fleet = Fleet(declarations)
    recorded_windows(fleet)  # computed once here, inherited by every worker
    names = [declaration.name for declaration in rendered]
    chunks = [names[start : start + 50] for start in range(0, len(names), 50)]
    texts: dict[str, str] = {}
    _worker_state = (fleet, options)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for chunk, files in zip(chunks, pool.map(_render_chunk, chunks), strict=True):
                texts.update(files)
                if progress is not None:
                    for name in chunk:
                        progress(name)
    finally:
        _worker_state = None
    texts.update(serialize(_fleet_wide_documents(rendered, fleet, options)))
    return dict(sorted(texts.items()))
