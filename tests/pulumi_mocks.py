"""Pulumi SDK mocks for component tests: a fresh event loop and a recorder per test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_datadog
from pulumi.runtime import settings


@dataclass
class Recorder(pulumi.runtime.Mocks):
    """Every registration (type, name, inputs), in order, and the explicit provider of each resource."""

    registered: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    providers: dict[str, str] = field(default_factory=dict)
    """Resource name -> its provider reference (`<provider urn>::<provider id>`), for those given one."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append((args.typ, args.name, dict(args.inputs)))
        if args.provider:
            self.providers[args.name] = args.provider
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        """Inputs of every resource of one type, by resource name."""
        return {name: inputs for t, name, inputs in self.registered if t == typ}


def recording_mocks() -> Iterator[Recorder]:
    """Fresh loop, fresh stack, recording mocks (the SDK keeps state on all three)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    settings.ROOT.set(None)
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="sloplane-test", stack="test", preview=False)
    yield recorder
    loop.close()


def datadog_provider(name: str = "datadog") -> pulumi_datadog.Provider:
    """An explicit Datadog provider for components given a fleet that targets Datadog (under mocks)."""
    return pulumi_datadog.Provider(name, api_key="mock-api-key", app_key="mock-app-key")
