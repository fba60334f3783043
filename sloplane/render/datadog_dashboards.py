"""Datadog dashboards as `POST /api/v1/dashboard` bodies: one per SLO and an overview of the fleet.

The per-SLO dashboard shows, for each subject (the SLO, or each stage): Datadog's own SLO widget
(status and error budget over 7, 30 and 90 days), the burn rate over each monitor's long window with
its threshold drawn as a marker, and deployments as event overlays (events tagged `deployment` and the
service), so a burn can be read against the release that caused it. The overview lists the SLOs by
team (an SLO list widget per team, over the `team:<team>` tag sloplane puts on each SLO).
It is separate from `datadog` (SLOs, monitors, exclusions) because it is presentation, not policy.

The bodies are written as the API returns them, so that `datadog_dashboard_json` (Terraform, and
pulumi-datadog bridged from it) shows no drift after apply: the provider compares its normalised JSON
(sorted keys; `id`, `author_*`, `created_at`, `modified_at`, `url` and widget ids removed) with the API's
answer, and the API echoes what it was sent. So a body holds no null, no `is_read_only` (the provider
forces it to false), no `pause_auto_refresh` (not echoed), no widget ids, and says `reflow_type`
(echoed only when sent) rather than leave it to the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sloplane.core.budget import error_budget
from sloplane.core.durations import format_duration
from sloplane.declaration.datadog_limits import monitor_windows, timeframe_period
from sloplane.declaration.model import Declaration
from sloplane.semantics.datadog import datadog_queries
from sloplane.semantics.subjects import Subject, subjects

Request = dict[str, Any]
WIDTH = 12
"""Dashboards use Datadog's 12-column grid."""


def _slo_widget(subject: Subject, placeholder: str) -> dict[str, Any]:
    return {
        "definition": {
            "type": "slo",
            "title": f"{subject.key}: status and error budget",
            "view_type": "detail",
            "slo_id": placeholder,
            "time_windows": ["7d", "30d", "90d"],
            "show_error_budget": True,
            "view_mode": "overall",
        }
    }


def _burn_widget(declaration: Declaration, subject: Subject) -> dict[str, Any] | None:
    """Burn rate over each monitor's long window, its threshold a marker; None without event counts."""
    stage = declaration.spec.stage(subject.stage) if subject.stage is not None else None
    counts = datadog_queries(declaration.spec.sli, dict(stage.selector) if stage is not None else {})
    if counts is None:
        return None
    period = timeframe_period(declaration.spec)
    tiers = set(declaration.spec.alerting.enabled_tiers())
    budget = error_budget(subject.objective)
    requests: list[dict[str, Any]] = []
    markers: list[dict[str, Any]] = []
    for alert in declaration.spec.burn_rate_alerts():
        if alert.tier not in tiers or not alert.can_fire(subject.objective):
            continue
        windows = monitor_windows(alert, period)
        seconds = int(windows.long_window.total_seconds())
        name = format_duration(windows.long_window)
        bad = counts.errors if counts.errors is not None else f"{counts.total} - {counts.good}"
        queries = [
            {"data_source": "metrics", "name": "bad", "query": f"{bad}.rollup(sum, {seconds})"},
            {"data_source": "metrics", "name": "total", "query": f"{counts.total}.rollup(sum, {seconds})"},
        ]
        formula = {"formula": f"bad / total / {budget:g}", "alias": f"burn rate over {name}"}
        requests.append(
            {"queries": queries, "formulas": [formula], "response_format": "timeseries", "display_type": "line"}
        )
        markers.append(
            {"value": f"y = {windows.factor:g}", "display_type": "error dashed", "label": f"{alert.tier.value} {name}"}
        )
    if not requests:
        return None
    service = declaration.spec.service
    return {
        "definition": {
            "type": "timeseries",
            "title": f"{subject.key}: burn rate by monitor window",
            "requests": requests,
            "markers": markers,
            "events": [{"q": f"tags:deployment,service:{service}"}],
            "show_legend": True,
        }
    }


def dashboard_request(declaration: Declaration, placeholders: dict[str, str]) -> Request:
    """The SLO's dashboard; `placeholders` maps each subject's key to where its SLO id goes."""
    widgets: list[dict[str, Any]] = []
    for subject in subjects(declaration):
        widgets.append(_slo_widget(subject, placeholders[subject.key]))
        burn = _burn_widget(declaration, subject)
        if burn is not None:
            widgets.append(burn)
    spec = declaration.spec
    body = {
        "title": f"SLO {declaration.name}",
        "description": f"{spec.service}, team {spec.owners.team}: {spec.window.describe()} objective (sloplane)",
        "layout_type": "ordered",
        "reflow_type": "auto",
        "widgets": widgets,
        "tags": [f"team:{spec.owners.team}"],
    }
    return {"ref": f"{declaration.name}/dashboard", "method": "POST", "path": "/api/v1/dashboard", "body": body}


def overview_request(declarations: Sequence[Declaration]) -> Request:
    """Every Datadog SLO sloplane renders, in one list (their `slo:<name>` tags), one widget per team."""
    teams = sorted({declaration.spec.owners.team for declaration in declarations})
    widgets = [
        {
            "definition": {
                "type": "slo_list",
                "title": f"team {team}",
                "requests": [
                    {
                        "request_type": "slo_list",
                        "query": {"query_string": f"team:{team}", "limit": 100},
                    }
                ],
            }
        }
        for team in teams
    ]
    body = {
        "title": "SLOs (sloplane)",
        "description": "Every SLO sloplane renders for Datadog, by team.",
        "layout_type": "ordered",
        "reflow_type": "auto",
        "widgets": widgets,
    }
    return {"ref": "overview", "method": "POST", "path": "/api/v1/dashboard", "body": body}
