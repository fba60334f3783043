"""`sloplane render --format terraform`: the module's files, and what it does not hold said as warnings.

Apart from `main` because the choices (dashboards as ConfigMaps or `grafana_dashboard`, Kubernetes
objects as `kubernetes_manifest` or GitOps files, the evaluator's storage and chain key) are checked here,
and the renderers behind it are imported only when a module is asked for (they are slow to import).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import typer
from rich.console import Console

from sloplane.declaration.model import Declaration
from sloplane.render.options import BundleOptions

DASHBOARDS = ("configmap", "grafana")
KUBERNETES = ("manifest", "files")
EVALUATOR_STORAGE = ("volume", "postgres")
DASHBOARDS_HELP = (
    "With --format terraform: configmap (ConfigMaps for the Grafana sidecar) or grafana (grafana_dashboard)."
)
KUBERNETES_HELP = (
    "With --format terraform: manifest (kubernetes_manifest) or files "
    "(DIR/gitops/ YAML for Argo CD or Flux; the module needs no cluster to plan)."
)
EVALUATOR_STORAGE_HELP = (
    "With --format terraform: the evaluator's storage, volume (a PVC) or postgres (the module's sensitive "
    "variable evaluator_database_url, in a Secret; no PVC)."
)
EVALUATOR_CHAIN_KEY_HELP = (
    "With --format terraform: key the evaluator's hash chain (the module's sensitive variable evaluator_chain_key)."
)


@dataclass(frozen=True)
class ModuleChoices:
    """The module's choices as given, checked (`check_choices`), before the renderers are imported."""

    dashboards: str = DASHBOARDS[0]
    kubernetes: str = KUBERNETES[0]
    evaluator_storage: str = EVALUATOR_STORAGE[0]
    evaluator_chain_key: bool = False


def check_choices(output_format: str, choices: ModuleChoices) -> ModuleChoices:
    """Refuse an unknown format or choice before anything is rendered (exit 2, naming the option), and a module
    choice given for plain files, where it would change nothing."""
    if output_format not in ("files", "terraform"):
        raise typer.BadParameter("use files or terraform", param_hint="--format")
    if output_format != "terraform":
        given = {
            "--dashboards": choices.dashboards != DASHBOARDS[0],
            "--kubernetes": choices.kubernetes != KUBERNETES[0],
            "--evaluator-storage": choices.evaluator_storage != EVALUATOR_STORAGE[0],
            "--evaluator-chain-key": choices.evaluator_chain_key,
        }
        for option, changed in given.items():
            if changed:
                raise typer.BadParameter("only applies with --format terraform", param_hint=option)
    for option, value, allowed in (
        ("--dashboards", choices.dashboards, DASHBOARDS),
        ("--kubernetes", choices.kubernetes, KUBERNETES),
        ("--evaluator-storage", choices.evaluator_storage, EVALUATOR_STORAGE),
    ):
        if value not in allowed:
            raise typer.BadParameter(f"use {' or '.join(allowed)}", param_hint=option)
    return choices


def module_files(
    declarations: Sequence[Declaration], options: BundleOptions, choices: ModuleChoices, err: Console
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The files and the folders the command owns (`terraform/` and `gitops/`, so that switching between
    the variants leaves nothing behind)."""
    from sloplane.render.bundle import serialize  # deferred: the renderers are slow to import
    from sloplane.render.terraform import (  # deferred: as above
        FOLDER,
        GITOPS_FOLDER,
        TerraformOptions,
        module_documents,
        omissions,
    )

    terraform = TerraformOptions(
        dashboards="grafana" if choices.dashboards == "grafana" else "configmap",
        kubernetes="files" if choices.kubernetes == "files" else "manifest",
        evaluator_storage="postgres" if choices.evaluator_storage == "postgres" else "volume",
        evaluator_chain_key=choices.evaluator_chain_key,
    )
    files = serialize(module_documents(declarations, options, terraform))
    for line in omissions(declarations, terraform):
        err.print(f"warning: {line}", markup=False, soft_wrap=True)
    return files, (FOLDER, GITOPS_FOLDER)
