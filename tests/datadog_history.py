"""Synthetic history in the local Datadog API, event for event the history the Prometheus sandbox holds.

A Prometheus counter sample at `t` has grown by the events of the step ending at `t`; Datadog files
events under the bucket of the minute they happened in, which starts at `t − step`. Loading each step's
increase at `t − step` makes Datadog's `[T − W, T)` hold exactly the steps Prometheus's `increase(x[W])`
at `T` counts (`(T − W, T]` by sample time): the one bucket-alignment difference between the two
backends, and with it accounted for they agree to 1e-9 (tests/test_evaluator_datadog.py).
"""

from __future__ import annotations

from sloplane.sandbox import Traffic
from sloplane.semantics.datadog import datadog_metric_name
from tests.datadog_api import DatadogAPI


def load_traffic(api: DatadogAPI, traffic: Traffic, metric: str | None = None) -> None:
    """Every counter series of `traffic` as Datadog counts (named as Datadog's OpenMetrics check names them)."""
    step = traffic.timeline.step.total_seconds()
    for series in traffic.series():
        if series.kind != "counter":
            raise ValueError(f"{series.name}: only counters have a Datadog count form here")
        points = [
            (at - step, value - previous)
            for (_, previous), (at, value) in zip(series.samples, series.samples[1:], strict=False)
            if value != previous
        ]
        api.add_series(metric or datadog_metric_name(series.name), dict(series.labels), points)
