"""Render 2,000 SLOs to every output; print SLOs per second, peak memory, and render/serialise ratio.

Goals (issue 3): 2,000 SLOs in under 2 s; the whole render no more than 1.5x the time of only
serialising the same output; a fleet of 500 SLOs registering under Pulumi mocks in under 10 s.
Run: `.venv/bin/python -m bench.render [COUNT]`.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

from bench.fleet import fleet, write_fleet
from sloplane.components.preview import run_program
from sloplane.declaration.model import Declaration
from sloplane.render.bundle import fleet_documents, fleet_files, serialize

MOCKED_FLEET = 500


def _best(action: object, repeat: int = 3) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return min(timings)


def _mocked_registration(count: int) -> float:
    """Seconds for the SloFleet component to register `count` SLOs under the SDK's mocks."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_fleet(root / "slos", count, per_file=50)
        (root / "Pulumi.yaml").write_text("name: bench\nruntime: python\n")
        (root / "__main__.py").write_text(
            textwrap.dedent(
                """
                from sloplane.components import SloFleet
                SloFleet("bench", {"path": "%s"})
                """
                % (root / "slos")
            )
        )
        started = time.perf_counter()
        result = run_program(root)
        elapsed = time.perf_counter() - started
    print(f"mocked registration: {count} SLOs -> {len(result.resources)} resources in {elapsed:.2f} s")
    return elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    declarations = [Declaration.model_validate(data) for data in fleet(count)]
    fleet_files(declarations[:50])  # warm imports and caches
    parallel = _best(lambda: fleet_files(declarations))
    serial = _best(lambda: serialize(fleet_documents(declarations)))
    documents = fleet_documents(declarations)
    serialising = _best(lambda: serialize(documents))
    files = fleet_files(declarations)
    size = sum(len(text) for text in files.values())
    tracemalloc.start()
    serialize(fleet_documents(declarations))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cores = os.cpu_count()
    print(f"render: {count} SLOs -> {len(files)} files ({size / 2**20:.1f} MiB), best of 3:")
    print(f"        {parallel:.2f} s on {cores} cores ({count / parallel:,.0f} SLOs/s), {serial:.2f} s on one")
    print(f"        peak traced memory (one process) {peak / 2**20:.0f} MiB")
    ratio = serial / serialising
    print(f"        serialising alone {serialising:.2f} s; render / serialise (one process) = {ratio:.2f}")
    _mocked_registration(MOCKED_FLEET)
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
