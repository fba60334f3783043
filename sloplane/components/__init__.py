"""Pulumi component resources: thin wrappers that register what the renderers produce."""

from sloplane.components.evaluator import EvaluatorArgs, EvaluatorDeployment, SloEvaluator, SloEvaluatorArgs
from sloplane.components.fleet import SloFleet, SloFleetArgs
from sloplane.components.slo import ServiceLevelObjective, ServiceLevelObjectiveArgs

__all__ = [
    "EvaluatorArgs",
    "EvaluatorDeployment",
    "ServiceLevelObjective",
    "ServiceLevelObjectiveArgs",
    "SloEvaluator",
    "SloEvaluatorArgs",
    "SloFleet",
    "SloFleetArgs",
]
