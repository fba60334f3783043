"""The sloplane Pulumi plugin: hosts ServiceLevelObjective, SloFleet, SloEvaluator and DeploymentGate."""

from pathlib import Path

from sloplane.provider.host import serve

if __name__ == "__main__":
    serve(Path(__file__).resolve().parent)
