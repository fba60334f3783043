"""Where a running server spends its CPU: py-spy's samples while load runs, summed by function.

Why py-spy and not cProfile: `sloplane serve` decides on uvicorn's worker threads (the gate route
runs in the thread pool), which cProfile in the main thread never sees, and a deterministic profiler
slows each Python call several times, distorting exactly the small functions a warm decision is
made of. py-spy samples every thread from outside, pausing the server only for the moment it reads
the stacks (`RATE`), so the server runs nearly as fast as unprofiled. Still, the figures of a
profiled run are not reported as latency: the profile only says *where* the time goes.

Two views, each of its own run of the same load: `--gil` samples only the thread holding the
GIL, which is where the server's Python CPU goes; without it py-spy samples every thread it judges
busy, which also counts threads waiting for a lock or inside SQLite's commit (the GIL released):
where requests spend their time rather than the CPU. Each is summed as self (the function on top of
the stack), self by line, and inclusive (the function anywhere in the stack, once per sample;
sloplane's functions only), as a share of the samples. Read the layers first: single functions and
lines moved by 10-25% of the samples from one run to the next here (py-spy 0.4 on Python 3.11, a
shared two-core machine), while the split between the event loop and the thread pool held, and agreed
with the per-thread CPU `bench.gate_load` reads from /proc. py-spy is not a project dependency: give
its path (`pip install py-spy` anywhere).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOP = 15
RATE = 200
"""Samples a second. Each pauses the server for a moment (py-spy's default, blocking): without the pause
stacks are read while they change, and single lines showed 15-25% of the samples that a blocking run of
the same load did not confirm."""
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?P<line>:\d+)?\)$")
"""One frame of py-spy's raw (collapsed) format: `function (path/to/file.py:line)`."""


def _where(frame: str, line: bool = False) -> str:
    """`function (file)` (with `:line` when asked), the path shortened after site-packages or the repo."""
    found = FRAME.match(frame.strip())
    if found is None:
        return frame.strip()
    file = found["file"] + ((found["line"] or "") if line else "")
    for marker in ("site-packages/", "/sloplane/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1] if marker != "/sloplane/" else "sloplane/" + file.split(marker, 1)[1]
            break
    return f"{found['function']} ({file})"


def summarise(collapsed: str, title: str, top: int = TOP) -> list[str]:
    """Lines of the top functions by self and by inclusive samples."""
    own: Counter[str] = Counter()
    lines_own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_where(frame) for frame in stack.split(";") if FRAME.match(frame.strip())]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        lines_own[_where(stack.rsplit(";", 1)[-1], line=True)] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return [f"{title}: no samples"]
    lines = [f"{title}: {total:,} samples", "  by thread and layer:", *layers(collapsed)]
    lines.append("  self (on top of the stack):")
    lines += [f"    {count / total:6.1%}  {name}" for name, count in own.most_common(top)]
    lines.append("  self by line (a C call such as SQLite's shows as the Python line calling it):")
    lines += [f"    {count / total:6.1%}  {name}" for name, count in lines_own.most_common(top // 2)]
    lines.append("  inclusive (anywhere in the stack), sloplane's own functions:")
    ours = [(name, count) for name, count in inclusive.most_common() if "(sloplane/" in name]
    lines += [f"    {count / total:6.1%}  {name}" for name, count in ours[:top]]
    return lines


LAYERS = (
    ("worker threads: Evaluator.gate -> decision log append", ("_Gate.answer", "DecisionLog.append")),
    ("worker threads: Evaluator.gate, the rest (measuring from cache, deciding)", ("_Gate.answer", "Evaluator.gate")),
    ("worker threads: answering, the rest (counting, the answer's JSON)", ("_Gate.answer",)),
    ("worker threads: the rest (thread-pool hand-off, idle waits)", ("thread.py",)),
    ("event loop: inside the application (RequestGuard, middleware, routing, FastAPI)", ("RequestGuard",)),
    ("event loop: outside it (uvicorn's protocol, uvloop)", ("Runner.run",)),
)
"""Where a sample is, by thread and layer: the first whose markers are all in its stack."""


def layers(collapsed: str) -> list[str]:
    """Shares of the samples by thread and layer (`LAYERS`), the rest as `elsewhere`."""
    counts: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            layer = next((name for name, markers in LAYERS if all(m in stack for m in markers)), "elsewhere")
            counts[layer] += int(count_text)
    total = sum(counts.values()) or 1
    return [f"    {counts[name] / total:6.1%}  {name}" for name in [*(name for name, _ in LAYERS), "elsewhere"]]


VIEWS: tuple[tuple[str, list[str]], ...] = (
    ("CPU: the thread holding the GIL (Python's own work)", ["--gil"]),
    ("busy threads: also waits py-spy counts as busy (locks, SQLite's commit and fsync)", []),
)
"""Two views, one run each: what burns the CPU, and where requests spend their time."""


def profile_summary(
    py_spy: str, pid: int, seconds: float, load: Callable[[], Any], prepare: Callable[[], Any] = lambda: None
) -> list[str]:
    """Sample `pid` for `seconds` in each view while `load()` runs, after `prepare()` (once per view: two
    blocking recorders cannot attach to one process at once); the summaries, or why there are none."""
    binary = shutil.which(py_spy)
    if binary is None:
        return [f"profile: not taken, {py_spy!r} not found (pip install py-spy; --py-spy PATH)"]
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sloplane-profile-") as folder:
        for index, (title, flags) in enumerate(VIEWS):
            prepare()
            output = Path(folder) / f"samples-{index}.txt"
            command = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
            command += ["--format", "raw", "--rate", str(RATE), "--output", str(output), *flags]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            load()
            _, errors = process.communicate(timeout=seconds + 60)
            if process.returncode != 0 or not output.exists():
                lines.append(f"profile: py-spy exited {process.returncode}: {errors.strip()[-500:]}")
            else:
                lines += summarise(output.read_text(), f"profile of the server, {title}")
    return lines
