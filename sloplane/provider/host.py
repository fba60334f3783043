"""The sloplane Pulumi plugin: which components it hosts, under which name and version, and their schema.

`provider/__main__.py` (the plugin folder `pulumi package add` installs) calls `serve`; the engine
starts it as `python <plugin dir> <engine address>` and talks to it over gRPC. The schema is inferred
by Pulumi's component analyzer from the components' TypedDict arguments and docstrings, so the
components keep their annotations evaluated (no postponed annotations) and their types within what the
analyzer understands. `provider/schema.json` is the checked-in copy (`make schema` writes it; a test
fails when it drifts).
"""

import importlib.metadata
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pulumi
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.experimental.host import component_provider_host

from sloplane.components import ServiceLevelObjective, SloEvaluator, SloFleet
from sloplane.components.gate import DeploymentGate

NAME = "sloplane"
COMPONENTS: list[type[pulumi.ComponentResource]] = [ServiceLevelObjective, SloFleet, SloEvaluator, DeploymentGate]
_RELEASE_TAG = re.compile(r"^v(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$")


def package_version() -> str:
    """The installed package's version (pyproject's), the version the checked-in schema carries."""
    return importlib.metadata.version(NAME)


def plugin_version(plugin_dir: Path | None = None) -> str:
    """A `vX.Y.Z` git tag on the plugin's checkout (a git-sourced `pulumi package add …@vX.Y.Z`), else the
    package's version."""
    if plugin_dir is not None:
        try:
            tag = subprocess.run(
                ["git", "-C", str(plugin_dir), "describe", "--tags", "--exact-match"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            tag = ""
        found = _RELEASE_TAG.match(tag)
        if found:
            return found.group(1)
    return package_version()


def schema(version: str | None = None) -> dict[str, Any]:
    """The package schema the plugin serves (`GetSchema`), as data."""
    provider = ComponentProvider(COMPONENTS, NAME, None, version or package_version())
    if provider.schema is None:
        raise RuntimeError("Pulumi's component analyzer produced no schema")
    found: dict[str, Any] = json.loads(provider.schema)
    return found


def serve(plugin_dir: Path) -> None:
    """Host every component until the engine stops the plugin."""
    component_provider_host(COMPONENTS, NAME, version=plugin_version(plugin_dir))
