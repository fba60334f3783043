"""A throw-away local Prometheus holding synthetic history whose numbers are known exactly.

The runtime evaluator's integration tests compare its numbers with hand computations to 1e-9,
`make demo` shows a synthetic day that contains an incident, and benchmarks need a real backend.
All three need a real Prometheus (the evaluator's PromQL must meet a real engine) and history that
is simple enough to compute by hand. So traffic is a list of `Segment`s (constant events per step
and error ratio), a `Traffic` turns them into series of one SLI kind's shape, `expected_counts`
computes the hand numbers from the same segments (never from Prometheus), and `PrometheusSandbox`
writes the series as OpenMetrics, turns them into TSDB blocks with promtool and serves them.

The parts live in their own modules so that each can be read (and changed) without the others, and
so that only the server runs processes and opens ports. Each imports only those below it:

- `timeline`: segments laid out on the step grid, and the exact counter arithmetic;
- `openmetrics`: the `Series` every part exchanges, and the OpenMetrics writer for promtool;
- `traffic`: the SLI shapes (http, latency, probe, rollout) and `expected_counts`;
- `server`: `PrometheusSandbox`, which prepares TSDB blocks and runs the prometheus binary.

This package re-exports their public names, so `from sloplane.sandbox import X` is all callers need.
"""

from __future__ import annotations

from sloplane.sandbox.openmetrics import BLOCK_SECONDS, Series, write_openmetrics, write_openmetrics_blocks
from sloplane.sandbox.server import PrometheusSandbox, Sample, SandboxError, free_port
from sloplane.sandbox.timeline import STEP, PerStep, Segment, Timeline, aligned_now
from sloplane.sandbox.traffic import (
    HttpTraffic,
    LatencyTraffic,
    ProbeTraffic,
    RolloutTraffic,
    Traffic,
    expected_counts,
    http_traffic,
    incident_day,
    latency_traffic,
    le_label,
    probe_traffic,
    rollout_traffic,
    traffic_series,
)

__all__ = [
    "BLOCK_SECONDS",
    "STEP",
    "HttpTraffic",
    "LatencyTraffic",
    "PerStep",
    "ProbeTraffic",
    "PrometheusSandbox",
    "RolloutTraffic",
    "Sample",
    "SandboxError",
    "Segment",
    "Series",
    "Timeline",
    "Traffic",
    "aligned_now",
    "expected_counts",
    "free_port",
    "http_traffic",
    "incident_day",
    "latency_traffic",
    "le_label",
    "probe_traffic",
    "rollout_traffic",
    "traffic_series",
    "write_openmetrics",
    "write_openmetrics_blocks",
]
