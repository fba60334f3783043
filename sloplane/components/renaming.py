"""Renaming a component without replacing what it registered: every resource under it gets an alias.

Pulumi URNs carry the parent's type but not its name, so two `SloFleet`s holding the same SLO would
register the same URNs, unless each fleet's SLO components are named after the fleet too. Existing
stacks registered them under the SLO's name alone; an alias from the old name to the new one, for the
component and for every resource below it (whose names start with the component's), keeps those
stacks' objects in place instead of deleting and recreating them.
"""

import pulumi


def aliased_from(current: str, former: str) -> pulumi.ResourceTransformation:
    """A transformation giving each resource named `current…` the alias `former…` (same parent chain)."""

    def alias(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not args.name.startswith(current):
            return None
        old = former + args.name[len(current) :]
        extra = pulumi.ResourceOptions(aliases=[pulumi.Alias(name=old)])
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(args.opts, extra))

    return alias
