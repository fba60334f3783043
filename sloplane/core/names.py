"""Names of everything sloplane records in Prometheus, and of the objects it creates.

Rules, dashboards, the evaluator and the generated tests all read these series, so their names are
defined once. Every series carries the subject's labels: `slo`, `service`, and `stage` if staged.

| series | meaning |
|---|---|
| `sloplane:bad_events:increase<w>` | bad events counted over the shortest window w (event-based SLIs) |
| `sloplane:events:increase<w>` | all events counted over the shortest window w |
| `sloplane:error_ratio:rate<w>` | error ratio over w (every SLI kind, composites included) |
| `sloplane:bad_slices:slice<w>` | timeslice budgeting: 1 for a slice that missed its target, else 0, once per slice |
| `sloplane:error_ratio:period` | error ratio over the whole period (a true ratio of events, or of slices) |
| `sloplane:events:period` | events in the period (event-based SLIs) |
| `sloplane:objective:ratio` | the objective as a ratio (0.999) |
| `sloplane:error_budget:ratio` | the error budget as a ratio (0.001) |
| `sloplane:error_budget_remaining:ratio` | share of the period's budget left (1 untouched, < 0 overspent) |
| `sloplane:burn_rate:current` | burn rate over the shortest window |
| `sloplane:burn_rate:period` | burn rate over the period |
| `sloplane:slo:info` | always 1; labels carry team, tier, objective, period, SLI kind |
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sloplane.core.durations import format_duration

PREFIX = "sloplane"
ARGO_EVENTS_METRIC = "rollout_events_total"
"""Argo Rollouts' event counter, by `reason` (deployment SLIs read it)."""
SLOPLANE_DECISIONS_METRIC = "sloplane_gate_decisions_total"
"""The evaluator's own decision counter, by `decision` (its /metrics; deployment SLIs read it)."""
BAD_EVENTS = "sloplane:bad_events:increase"
EVENTS = "sloplane:events:increase"
ERROR_RATIO = "sloplane:error_ratio:rate"
BAD_SLICES = "sloplane:bad_slices:slice"
ERROR_RATIO_PERIOD = "sloplane:error_ratio:period"
EVENTS_PERIOD = "sloplane:events:period"
OBJECTIVE = "sloplane:objective:ratio"
ERROR_BUDGET = "sloplane:error_budget:ratio"
BUDGET_REMAINING = "sloplane:error_budget_remaining:ratio"
BURN_RATE_CURRENT = "sloplane:burn_rate:current"
BURN_RATE_PERIOD = "sloplane:burn_rate:period"
INFO = "sloplane:slo:info"
ALERT = "SLOErrorBudgetBurn"
"""One alert name; the window pair, severity and subject are labels, so each pair resets on its own."""

GRAFANA_UID_LENGTH = 40
KUBERNETES_NAME_LENGTH = 63
"""DNS labels, and label values such as a Job's `job-name`, hold at most 63 characters."""


def windowed(series: str, window: timedelta) -> str:
    """`sloplane:error_ratio:rate` + 1h -> `sloplane:error_ratio:rate1h`."""
    return f"{series}{format_duration(window)}"


def rule_group(slo: str) -> str:
    """The rule group with an SLO's window recordings and alerts."""
    return f"{PREFIX}-{slo}"


def budget_group(slo: str) -> str:
    """The rule group with an SLO's period and budget series (heavier, evaluated separately)."""
    return f"{PREFIX}-{slo}-budget"


def prometheus_rule(slo: str) -> str:
    """The Kubernetes name of an SLO's PrometheusRule."""
    return f"{PREFIX}-{slo}"


def dashboard_uid(slo: str) -> str:
    """A stable Grafana uid (at most 40 characters): the name, shortened with a hash when long."""
    uid = f"slo-{slo}"
    if len(uid) <= GRAFANA_UID_LENGTH:
        return uid
    digest = hashlib.sha256(slo.encode()).hexdigest()[:8]
    return f"{uid[: GRAFANA_UID_LENGTH - 9]}-{digest}"


def kubernetes_name(name: str) -> str:
    """`name` if it fits a DNS label, else shortened with a stable hash so long SLO names stay distinct."""
    if len(name) <= KUBERNETES_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: KUBERNETES_NAME_LENGTH - 9].rstrip('-')}-{digest}"


OVERVIEW_UID = "sloplane-overview"
