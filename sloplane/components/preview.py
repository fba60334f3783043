"""An offline look at what a Pulumi program would register, using the Pulumi SDK's mocks.

This is *not* `pulumi preview`: no engine, no state, no providers, no cloud. The program runs
against mocks that record every resource registration (type, name, parent, inputs), which is
enough to review in a pull request what a change to the declarations adds or removes, where no
Pulumi CLI or credentials are at hand.
"""

from __future__ import annotations

import asyncio
import os
import runpy
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockMonitor

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass
class Registration:
    """One resource the program registered."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    provider: str | None = None
    """The explicit provider's resource name (`dd-prod`), None for a default provider or a component."""


@dataclass
class PreviewResult:
    """Registrations in order, and the stack's exported outputs."""

    resources: list[Registration] = field(default_factory=list)

    def children(self, parent: str | None) -> list[Registration]:
        """Resources whose parent is `parent` (None: the stack's direct children), by name then type.

        Registrations complete in no fixed order; sorting keeps the printed tree the same every run.
        """
        return sorted((r for r in self.resources if r.parent == parent), key=lambda r: (r.name, r.type))

    def counts(self) -> Counter[str]:
        """How many resources of each type."""
        return Counter(r.type for r in self.resources)


class _Mocks(pulumi.runtime.Mocks):
    """Resources get their name as id and their inputs as state; calls return nothing."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class _RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also remembering each registration's parent."""

    def __init__(self, mocks: pulumi.runtime.Mocks, result: PreviewResult) -> None:
        super().__init__(mocks)
        self._result = result
        self._stack_urn: str | None = None

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # untyped SDK
        if request.type == STACK_TYPE:
            self._stack_urn = response.urn
            return response
        parent = request.parent if request.parent and request.parent != self._stack_urn else None
        inputs = self.resources[response.urn].state if response.urn in self.resources else {}
        provider = provider_name(request.provider) if request.provider else None
        self._result.resources.append(
            Registration(response.urn, request.type, request.name, parent, bool(request.custom), dict(inputs), provider)
        )
        return response


def provider_name(reference: str) -> str:
    """A provider reference (`<urn>::<id>`, the URN ending `::<type>::<name>`) as the provider's name."""
    parts = reference.split("::")
    return parts[-2] if len(parts) >= 3 else reference


def program_path(project_dir: Path) -> tuple[str, Path]:
    """(project name, program entry file) from a folder's Pulumi.yaml."""
    project_file = project_dir / "Pulumi.yaml"
    project = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    main = project_dir / str(project.get("main", "."))
    entry = main / "__main__.py" if main.is_dir() else main
    if not entry.is_file():
        raise FileNotFoundError(f"{project_file}: program {entry} not found")
    return str(project.get("name", project_dir.name)), entry


def _quiet_abandoned_loops(unraisable: Any) -> None:
    """Drop the noise of event loops the Pulumi SDK opens per worker thread and never closes: collected
    at interpreter exit, they fail to close a self-pipe that is already gone. Anything else is shown."""
    where = getattr(unraisable.object, "__qualname__", "")
    if where == "BaseEventLoop.__del__":
        return
    sys.__unraisablehook__(unraisable)


def run_program(project_dir: Path, stack: str = "preview") -> PreviewResult:
    """Run the project's Python program under recording mocks and return what it registered.

    The program runs from its project folder, as Pulumi runs it, so relative paths read its own files."""
    project_dir = project_dir.resolve()
    project, entry = program_path(project_dir)
    result = PreviewResult()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = _Mocks()
    settings.ROOT.set(None)  # a fresh stack resource for this run
    monitor = _RecordingMonitor(mocks, result)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    sys.path.insert(0, str(entry.parent))
    caller = Path.cwd()
    os.chdir(project_dir)
    try:

        @pulumi.runtime.test  # type: ignore[untyped-decorator]  # waits for every registration to finish
        def run() -> None:
            runpy.run_path(str(entry), run_name="__main__")

        run()
    finally:
        os.chdir(caller)
        sys.path.remove(str(entry.parent))
        loop.close()
        sys.unraisablehook = _quiet_abandoned_loops
    return result
