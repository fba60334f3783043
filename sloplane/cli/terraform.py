"""`sloplane render --format terraform`: the module's files, and what it does not hold said as warnings.

Apart from `main` because the choices (dashboards as ConfigMaps or `grafana_dashboard`, Kubernetes
objects as `kubernetes_manifest` or GitOps files) are checked here, and the renderers behind it are
imported only when a module is asked for (they are slow to import).
"""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich.console import Console

from sloplane.declaration.model import Declaration
from sloplane.render.options import BundleOptions

DASHBOARDS = ("configmap", "grafana")
KUBERNETES = ("manifest", "files")
DASHBOARDS_HELP = (
    "With --format terraform: configmap (ConfigMaps for the Grafana sidecar) or grafana (grafana_dashboard)."
)
KUBERNETES_HELP = (
    "With --format terraform: manifest (kubernetes_manifest) or files "
    "(DIR/gitops/ YAML for Argo CD or Flux; the module needs no cluster to plan)."
)


def check_choices(dashboards: str, kubernetes: str, output_format: str = "terraform") -> None:
    """Refuse an unknown choice before anything is rendered (exit 2, naming the option), and a module choice
    given for plain files, where it would change nothing."""
    if output_format != "terraform" and (dashboards, kubernetes) != (DASHBOARDS[0], KUBERNETES[0]):
        option = "--dashboards" if dashboards != DASHBOARDS[0] else "--kubernetes"
        raise typer.BadParameter("only applies with --format terraform", param_hint=option)
    if dashboards not in DASHBOARDS:
        raise typer.BadParameter(f"use {' or '.join(DASHBOARDS)}", param_hint="--dashboards")
    if kubernetes not in KUBERNETES:
        raise typer.BadParameter(f"use {' or '.join(KUBERNETES)}", param_hint="--kubernetes")


def module_files(
    declarations: Sequence[Declaration], options: BundleOptions, dashboards: str, kubernetes: str, err: Console
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
        dashboards="grafana" if dashboards == "grafana" else "configmap",
        kubernetes="files" if kubernetes == "files" else "manifest",
    )
    files = serialize(module_documents(declarations, options, terraform))
    for line in omissions(declarations, terraform):
        err.print(f"warning: {line}", markup=False, soft_wrap=True)
    return files, (FOLDER, GITOPS_FOLDER)
