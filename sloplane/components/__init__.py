"""Pulumi component resources: thin wrappers that register what the renderers produce."""

from sloplane.components.fleet import SloFleet, SloFleetArgs
from sloplane.components.slo import ServiceLevelObjective, ServiceLevelObjectiveArgs

__all__ = ["ServiceLevelObjective", "ServiceLevelObjectiveArgs", "SloFleet", "SloFleetArgs"]
