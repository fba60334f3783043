"""The sloplane Pulumi plugin: hosts ServiceLevelObjective, SloFleet, SloEvaluator and DeploymentGate."""

import sys
from pathlib import Path

from sloplane.provider.host import serve

if __name__ == "__main__":
    serve(Path(__file__).resolve().parent, sys.argv[1:])
