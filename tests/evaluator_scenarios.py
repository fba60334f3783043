"""The scenarios the evaluator is tested on, one service each: the same history is loaded into a real
Prometheus (tests/test_evaluator_prometheus.py) and into the local Datadog API
(tests/test_evaluator_datadog.py), so both backends are held to the same hand computations.

Eight days of one-minute history: healthy, a 30-minute full outage at the end, an eight-hour slow
burn at 8x, a quiet service (2 requests a minute), a nightly maintenance window with an outage
inside it, one SLO whose recording rules are deployed, and a weighted composite.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

from sloplane.sandbox import HttpTraffic, Segment, http_traffic

START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(days=8)
RATE = 600.0
BASE = 0.0005
DAY = timedelta(days=1)


def _declaration(name: str, extra: str = "", objective: float = 99.9) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: sloplane.dev/v1alpha1
        kind: ServiceLevelObjective
        metadata: {{name: {name}}}
        spec:
          service: {name}
          owners: {{team: sre}}
          objective: {objective}
          window: 7d
          sli: {{http: {{metric: http_requests_total, selector: {{job: {name}}}}}}}
        """
    ) + textwrap.indent(textwrap.dedent(extra), "  ")


FLEET = "---\n".join(
    [
        _declaration("healthy"),
        _declaration("outage"),
        _declaration("slow"),
        _declaration("quiet", "gate: {minEvents: 100}\n"),
        _declaration(
            "maintained", "exclusions: {maintenance: [{name: nightly, schedule: '0 3 * * *', duration: 1h}]}\n"
        ),
        _declaration("recorded"),
        textwrap.dedent(
            """\
            apiVersion: sloplane.dev/v1alpha1
            kind: ServiceLevelObjective
            metadata: {name: journey}
            spec:
              service: journey
              owners: {team: sre}
              objective: 99
              window: 7d
              sli: {composite: {method: weighted, components: [{slo: healthy, weight: 1}, {slo: slow, weight: 3}]}}
            """
        ),
    ]
)


def _ending(last: list[Segment], total: timedelta = END - START) -> list[Segment]:
    """Baseline traffic, then the given segments at the end of the history."""
    tail = sum((s.duration for s in last), timedelta())
    return [Segment(total - tail, RATE, BASE), *last]


def _maintained() -> list[Segment]:
    """Baseline, with a one-hour full outage inside the nightly maintenance window of day 6."""
    outage_start = START + timedelta(days=6, hours=3)
    return [
        Segment(outage_start - START, RATE, BASE),
        Segment(timedelta(hours=1), RATE, 1.0),
        Segment(END - outage_start - timedelta(hours=1), RATE, BASE),
    ]


TRAFFIC: dict[str, HttpTraffic] = {
    name: http_traffic(segments, start=START, labels={"job": name})
    for name, segments in {
        "healthy": _ending([]),
        "outage": _ending([Segment(timedelta(minutes=30), RATE, 1.0)]),
        "slow": _ending([Segment(timedelta(hours=8), RATE, 0.008)]),
        "quiet": [Segment(END - START, 2.0, 0.0)],
        "maintained": _maintained(),
        "recorded": _ending([]),
    }.items()
}
