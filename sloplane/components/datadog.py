"""Registering the renderers' Datadog children as pulumi-datadog resources, through an explicit provider.

The renderer (`render.datadog_pulumi`) says what each resource is and which SLO ids its inputs wait
for; this module only puts the ids in, as Outputs: a monitor's query, a correction's `slo_id` and a
dashboard's SLO widgets are built from the `id` of the SLO resource registered before them, so Pulumi
orders the creations and nothing is sent with a placeholder.

Every Datadog resource goes through the provider the caller gives (`datadog_provider`, or a datadog
provider in the `provider`/`providers` resource options, or one inherited from a parent). Without one
the components refuse: a default provider would read `DD_API_KEY`/`DD_APP_KEY` from whatever
environment runs `pulumi up` and create the objects in that organisation, which is never a choice to
make silently. Keys never pass through sloplane: the provider (which marks them secret itself) holds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_datadog

from sloplane.core.serialize import to_json
from sloplane.render.datadog_pulumi import slo_refs_in, with_slo_ids
from sloplane.render.registry import Child, DatadogType

PACKAGE = "datadog"
RESOURCES: dict[DatadogType, type[pulumi.CustomResource]] = {
    "ServiceLevelObjective": pulumi_datadog.ServiceLevelObjective,
    "Monitor": pulumi_datadog.Monitor,
    "SloCorrection": pulumi_datadog.SloCorrection,
    "DowntimeSchedule": pulumi_datadog.DowntimeSchedule,
    "DashboardJson": pulumi_datadog.DashboardJson,
}
PROVIDER_ARG = "datadog_provider"


def explicit_provider(args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> pulumi.ProviderResource | None:
    """The Datadog provider a component was given: its `datadog_provider` argument, else a datadog
    provider in its resource options (`provider`, `providers`) or its parent's; None when there is none."""
    given = args.get(PROVIDER_ARG)
    if given is not None:
        if not isinstance(given, pulumi.ProviderResource) or given.package != PACKAGE:
            raise pulumi.RunError(f"{PROVIDER_ARG} must be a pulumi_datadog.Provider")
        return given
    if opts is None:
        return None
    if opts.provider is not None and opts.provider.package == PACKAGE:
        return opts.provider
    providers = opts.providers
    by_package = {p.package: p for p in providers} if isinstance(providers, Sequence) else dict(providers or {})
    if PACKAGE in by_package:
        return by_package[PACKAGE]
    return opts.parent.get_provider(f"{PACKAGE}:index:Monitor") if opts.parent is not None else None


def missing_provider(owner: str) -> pulumi.RunError:
    """The error of Datadog objects without a provider to create them with."""
    return pulumi.RunError(
        f"{owner}: targets datadog: pass {PROVIDER_ARG} (a pulumi_datadog.Provider, its keys as secrets) "
        "or a datadog provider in the resource options; sloplane never falls back to a default provider"
    )


def require_provider(
    owner: str, children: Sequence[Child], provider: pulumi.ProviderResource | None
) -> pulumi.ProviderResource | None:
    """The provider when there are Datadog children to register (an error when there is none); else None."""
    if not any(child.kind == "datadog" for child in children):
        return None
    if provider is None:
        raise missing_provider(owner)
    return provider


def check_slo_refs(owner: str, children: Sequence[Child]) -> None:
    """Refuse a `create` list that keeps a child but drops the SLO whose id it needs (before registering)."""
    created = {child.datadog.ref for child in children if child.datadog is not None and child.datadog.ref}
    for child in children:
        if child.datadog is None:
            continue
        missing = [ref for ref in child.datadog.slo_refs if ref not in created]
        if missing:
            raise pulumi.RunError(f"{owner}: create: '{child.key}' needs the Datadog SLO {missing[0]} (datadogSlo)")


class DatadogChildren:
    """Registers one component's Datadog children in order, remembering each SLO's id for the later ones."""

    def __init__(self, provider: pulumi.ProviderResource) -> None:
        self.provider = provider
        self.slo_ids: dict[str, pulumi.Output[str]] = {}
        """Each SLO's id by its ref (`slo` or `slo/stage`)."""

    def register(self, name: str, child: Child, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
        """The child as its pulumi-datadog resource, its placeholders replaced by the ids of the SLOs before it."""
        spec = child.datadog
        if spec is None:
            raise ValueError(f"child {child.suffix} is not a Datadog resource")
        missing = [ref for ref in spec.slo_refs if ref not in self.slo_ids]
        if missing:
            raise pulumi.RunError(f"{name}: the Datadog SLO {missing[0]} is not registered before it")
        inputs: dict[str, Any] = {}
        for key, value in child.object.items():
            inputs[key] = self._resolved(value, slo_refs_in(value), key in spec.json_inputs)
        options = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(provider=self.provider))
        resource = RESOURCES[spec.type](name, opts=options, **inputs)
        if spec.ref is not None:
            self.slo_ids[spec.ref] = resource.id
        return resource

    def _resolved(self, value: Any, refs: Sequence[str], encode: bool) -> Any:
        """A plain value where it names no SLO, else an Output made once the ids are known."""
        if not refs:
            return to_json(value) if encode else value
        ids = [self.slo_ids[ref] for ref in refs]

        def fill(known: list[str]) -> Any:
            filled = with_slo_ids(value, dict(zip(refs, known, strict=True)))
            return to_json(filled) if encode else filled

        return pulumi.Output.all(*ids).apply(fill)
