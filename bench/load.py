"""Load and validate 2,000 generated declarations; print wall time and peak memory.

Goal (issue 2): under 1 s. Run: `.venv/bin/python -m bench.load [COUNT]`.
Time is measured without tracing; peak Python memory in a second, traced run (tracing slows it).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench.fleet import write_fleet
from sloplane.interop import load_paths


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as folder:
        for layout, per_file in (("one file per SLO", 1), ("100 documents per file", 100)):
            root = Path(folder) / layout.replace(" ", "-")
            write_fleet(root, count, per_file)
            load_paths([root])  # warm the file cache and imports
            timings = []
            for _ in range(3):
                started = time.perf_counter()
                result = load_paths([root])
                timings.append(time.perf_counter() - started)
            assert len(result.slos) == count and not result.errors, result.errors[:3]
            tracemalloc.start()
            load_paths([root])
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            best = min(timings)
            print(
                f"{layout:>24}: {count} declarations in {best:.3f} s best of 3 "
                f"({count / best:,.0f}/s, median {sorted(timings)[1]:.3f} s), "
                f"peak traced Python memory {peak / 2**20:.1f} MiB"
            )
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
