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
from pulumi.errors import InputPropertiesError, InputPropertyError
from pulumi.provider import ConstructResult, main
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.server import ComponentInitError

from sloplane.components import ServiceLevelObjective, SloEvaluator, SloFleet
from sloplane.components.gate import DeploymentGate
from sloplane.components.plain import NotPlainError

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


class SloplaneProvider(ComponentProvider):
    """Pulumi's component provider, except that a user's mistake reaches them as an input error.

    The SDK wraps everything a component raises in `ComponentInitError`, which the engine shows with a
    Python stack trace. sloplane's components raise `RunError` (a bad declaration, a missing provider)
    and `InputPropertyError` for what the user got wrong; those are re-raised as the input errors the
    provider protocol has (`InputPropertiesError`, a gRPC InvalidArgument with the message and, where
    known, the property), so another language's program shows one line. A real fault keeps its trace.
    """

    def __init__(self, version: str) -> None:
        super().__init__(COMPONENTS, NAME, None, version)
        if self.schema is not None:
            self.schema = json.dumps(with_inherited_descriptions(json.loads(self.schema)))

    def construct(
        self, name: str, resource_type: str, inputs: Any, options: pulumi.ResourceOptions | None = None
    ) -> ConstructResult:
        """Construct the component; user errors as input errors (see the class docstring)."""
        try:
            return super().construct(name, resource_type, inputs, options)
        except ComponentInitError as error:
            raise user_error(error.inner) or error from None


INHERITED = {
    f"{NAME}:index:SloEvaluator": f"{NAME}:index:EvaluatorDeployment",
    f"{NAME}:index:DeploymentGate": f"{NAME}:index:DeploymentGateSettings",
}
"""Components whose arguments extend a settings type: the analyzer reads a TypedDict's own attribute
docstrings only, so their inherited inputs would be undocumented in the registry."""


def with_inherited_descriptions(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with each component input that lacks a description given its settings type's."""
    for resource, settings in INHERITED.items():
        documented = schema.get("types", {}).get(settings, {}).get("properties", {})
        for key, prop in schema.get("resources", {}).get(resource, {}).get("inputProperties", {}).items():
            if not prop.get("description") and documented.get(key, {}).get("description"):
                prop["description"] = documented[key]["description"]
    return schema


def user_error(error: BaseException) -> InputPropertiesError | None:
    """The input error to show for a component's exception, or None when it is not the user's doing."""
    if isinstance(error, InputPropertiesError):
        return error
    if isinstance(error, InputPropertyError):
        reason = f"{error.property_path}: {error.reason}"
        return InputPropertiesError(reason, [{"property_path": error.property_path, "reason": error.reason}])
    if isinstance(error, NotPlainError):
        return InputPropertiesError(str(error), [{"property_path": error.property_path, "reason": error.reason}])
    if isinstance(error, pulumi.RunError):
        return InputPropertiesError(str(error), [])
    return None


def schema(version: str | None = None) -> dict[str, Any]:
    """The package schema the plugin serves (`GetSchema`), as data."""
    provider = SloplaneProvider(version or package_version())
    if provider.schema is None:
        raise RuntimeError("Pulumi's component analyzer produced no schema")
    found: dict[str, Any] = json.loads(provider.schema)
    return found


def serve(plugin_dir: Path, args: list[str]) -> None:
    """Host every component until the engine stops the plugin (`args`: the engine address and flags, as the
    engine passes them after the plugin folder)."""
    main(SloplaneProvider(plugin_version(plugin_dir)), args)
