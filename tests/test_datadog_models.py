"""The strict Datadog body checker against the real client models (no mocks).

Each valid body has the shape sloplane renders; each defect is one the lenient client models would let
through (or report without a usable path), and the test pins the exact JSON path the checker names.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.service_level_objective_request import ServiceLevelObjectiveRequest
from datadog_api_client.v1.model.slo_correction_create_request import SLOCorrectionCreateRequest
from datadog_api_client.v2.model.downtime_create_request import DowntimeCreateRequest
from datadog_api_client.v2.model.scalar_formula_query_request import ScalarFormulaQueryRequest

from tests.datadog_models import assert_valid, problems

Body = dict[str, Any]


def metric_slo() -> Body:
    """Ratio SLO as sloplane renders it: good/total counts, 7d and 30d thresholds."""
    return {
        "name": "checkout availability",
        "type": "metric",
        "description": "Non-5xx share of checkout requests",
        "query": {
            "numerator": "sum:http.requests{service:checkout,!status_class:5xx}.as_count()",
            "denominator": "sum:http.requests{service:checkout}.as_count()",
        },
        "thresholds": [
            {"timeframe": "7d", "target": 99.9, "warning": 99.95},
            {"timeframe": "30d", "target": 99.9},
        ],
        "tags": ["service:checkout", "managed-by:sloplane"],
    }


def time_slice_slo() -> Body:
    """Latency SLO counted in good minutes (p99 under 500 ms)."""
    return {
        "name": "checkout latency",
        "type": "time_slice",
        "sli_specification": {
            "time_slice": {
                "comparator": "<",
                "threshold": 0.5,
                "query_interval_seconds": 60,
                "query": {
                    "formulas": [{"formula": "query1"}],
                    "queries": [
                        {"data_source": "metrics", "name": "query1", "query": "p99:http.latency{service:checkout}"}
                    ],
                },
            }
        },
        "thresholds": [{"timeframe": "30d", "target": 99.5}],
    }


def burn_rate_monitor() -> Body:
    """Fast-burn page: 14.4x over 1h/5m on a 30d SLO."""
    return {
        "name": "checkout fast burn",
        "type": "slo alert",
        "query": 'burn_rate("abc123").over("30d").long_window("1h").short_window("5m") > 14.4',
        "message": "Burning budget fast @pagerduty-checkout",
        "priority": 1,
        "tags": ["service:checkout"],
        "options": {"thresholds": {"critical": 14.4}, "notify_no_data": False},
    }


def one_off_correction() -> Body:
    """A single maintenance window removed from the SLO (epoch seconds)."""
    return {
        "data": {
            "type": "correction",
            "attributes": {
                "slo_id": "abc123",
                "category": "Scheduled Maintenance",
                "start": 1767225600,
                "end": 1767232800,
                "description": "DB upgrade",
                "timezone": "UTC",
            },
        }
    }


def recurring_correction() -> Body:
    """A weekly maintenance window: rrule plus duration, no end."""
    return {
        "data": {
            "type": "correction",
            "attributes": {
                "slo_id": "abc123",
                "category": "Outside Business Hours",
                "start": 1767225600,
                "rrule": "FREQ=WEEKLY;INTERVAL=1;COUNT=10",
                "duration": 7200,
            },
        }
    }


def one_time_downtime() -> Body:
    """Mute checkout monitors for one window (UTC instants)."""
    return {
        "data": {
            "type": "downtime",
            "attributes": {
                "scope": "service:checkout",
                "monitor_identifier": {"monitor_tags": ["service:checkout"]},
                "schedule": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00Z"},
                "message": "DB upgrade",
                "notify_end_types": ["expired"],
            },
        }
    }


def recurring_downtime() -> Body:
    """Weekly downtime, local start time in its time zone."""
    return {
        "data": {
            "type": "downtime",
            "attributes": {
                "scope": "*",
                "monitor_identifier": {"monitor_id": 42},
                "schedule": {
                    "timezone": "Europe/Berlin",
                    "recurrences": [{"rrule": "FREQ=WEEKLY;BYDAY=SU", "duration": "2h", "start": "2026-01-04T02:00"}],
                },
            },
        }
    }


def dashboard() -> Body:
    """SLO summary widget plus a burn-rate timeseries with threshold markers."""
    return {
        "title": "checkout SLOs",
        "layout_type": "ordered",
        "description": "Managed by sloplane",
        "widgets": [
            {
                "definition": {
                    "type": "slo",
                    "view_type": "detail",
                    "slo_id": "abc123",
                    "time_windows": ["7d", "30d"],
                    "view_mode": "overall",
                    "show_error_budget": True,
                    "title": "checkout availability",
                }
            },
            {
                "definition": {
                    "type": "timeseries",
                    "title": "burn rate (1h)",
                    "requests": [{"q": "sum:http.errors{service:checkout}.as_count()", "display_type": "line"}],
                    "markers": [
                        {"value": "y = 14.4", "display_type": "error dashed", "label": "fast burn"},
                        {"value": "y = 6", "display_type": "warning dashed"},
                    ],
                }
            },
        ],
    }


def scalar_query() -> Body:
    """The evaluator's query: two counts over a window, in epoch milliseconds."""
    return {
        "data": {
            "type": "scalar_request",
            "attributes": {
                "from": 1767225600000,
                "to": 1767229200000,
                "queries": [
                    {"data_source": "metrics", "name": "good", "query": "sum:ok{*}.as_count()", "aggregator": "sum"},
                    {"data_source": "metrics", "name": "total", "query": "sum:all{*}.as_count()", "aggregator": "sum"},
                ],
                "formulas": [{"formula": "good / total"}],
            },
        }
    }


VALID: list[tuple[Callable[[], Body], type]] = [
    (metric_slo, ServiceLevelObjectiveRequest),
    (time_slice_slo, ServiceLevelObjectiveRequest),
    (burn_rate_monitor, Monitor),
    (one_off_correction, SLOCorrectionCreateRequest),
    (recurring_correction, SLOCorrectionCreateRequest),
    (one_time_downtime, DowntimeCreateRequest),
    (recurring_downtime, DowntimeCreateRequest),
    (dashboard, Dashboard),
    (scalar_query, ScalarFormulaQueryRequest),
]


@pytest.mark.parametrize(("make", "model"), VALID, ids=[m.__name__ for m, _ in VALID])
def test_valid_bodies_pass(make: Callable[[], Body], model: type) -> None:
    """No false alarms on the bodies sloplane actually renders."""
    assert problems(make(), model) == []
    assert_valid(make(), model)


def edited(make: Callable[[], Body], edit: Callable[[Body], object]) -> Body:
    """A fresh body with one defect applied (the edit mutates it in place)."""
    body = copy.deepcopy(make())
    edit(body)
    return body


def _drop(d: Body, key: str) -> None:
    del d[key]


# (case id, body, model, the finding's path prefix, a word the message must contain)
DEFECTS: list[tuple[str, Body, type, str, str]] = [
    (
        "unknown key at top",
        edited(metric_slo, lambda b: b.update(owner="team-a")),
        ServiceLevelObjectiveRequest,
        "$.owner:",
        "unknown key",
    ),
    (
        "unknown key nested",
        edited(metric_slo, lambda b: b["query"].update(junk=1)),
        ServiceLevelObjectiveRequest,
        "$.query.junk:",
        "unknown key",
    ),
    (
        "unknown key inside a oneOf member",
        edited(dashboard, lambda b: b["widgets"][1]["definition"]["markers"][0].update(colour="red")),
        Dashboard,
        "$.widgets[1].definition.markers[0].colour:",
        "unknown key",
    ),
    (
        "bad SLO timeframe",
        edited(metric_slo, lambda b: b["thresholds"][1].update(timeframe="28d")),
        ServiceLevelObjectiveRequest,
        "$.thresholds[1].timeframe:",
        "'28d' is not one of",
    ),
    (
        "bad monitor type",
        edited(burn_rate_monitor, lambda b: b.update(type="slo-alert")),
        Monitor,
        "$.type:",
        "'slo-alert' is not one of",
    ),
    (
        "bad correction category",
        edited(one_off_correction, lambda b: b["data"]["attributes"].update(category="Maintenance")),
        SLOCorrectionCreateRequest,
        "$.data.attributes.category:",
        "'Maintenance' is not one of",
    ),
    (
        "bad time window inside a widget oneOf",
        edited(dashboard, lambda b: b["widgets"][0]["definition"].update(time_windows=["7d", "28d"])),
        Dashboard,
        "$.widgets[0].definition.time_windows[1]:",
        "'28d' is not one of",
    ),
    (
        "unknown widget type",
        edited(dashboard, lambda b: b["widgets"][0]["definition"].update(type="slo_summary")),
        Dashboard,
        "$.widgets[0].definition.type:",
        "'slo_summary' is not one of",
    ),
    (
        "bad interval inside the SLI oneOf",
        edited(time_slice_slo, lambda b: b["sli_specification"]["time_slice"].update(query_interval_seconds=120)),
        ServiceLevelObjectiveRequest,
        "$.sli_specification.time_slice.query_interval_seconds:",
        "120 is not one of",
    ),
    (
        "missing required field inside the SLI oneOf",
        edited(time_slice_slo, lambda b: _drop(b["sli_specification"]["time_slice"], "comparator")),
        ServiceLevelObjectiveRequest,
        "$.sli_specification.time_slice:",
        "missing required field 'comparator'",
    ),
    (
        "critical threshold as a string",
        edited(burn_rate_monitor, lambda b: b["options"]["thresholds"].update(critical="14.4")),
        Monitor,
        "$.options.thresholds.critical:",
        "float",
    ),
    (
        "target as a string inside a list",
        edited(metric_slo, lambda b: b["thresholds"][0].update(target="99.9")),
        ServiceLevelObjectiveRequest,
        "$.thresholds[0].target:",
        "float",
    ),
    (
        "missing required field at top",
        edited(metric_slo, lambda b: _drop(b, "name")),
        ServiceLevelObjectiveRequest,
        "$:",
        "missing required field 'name'",
    ),
    (
        "missing required field nested",
        edited(metric_slo, lambda b: _drop(b["query"], "denominator")),
        ServiceLevelObjectiveRequest,
        "$.query:",
        "missing required field 'denominator'",
    ),
    (
        "missing required field in a list item",
        edited(metric_slo, lambda b: _drop(b["thresholds"][1], "target")),
        ServiceLevelObjectiveRequest,
        "$.thresholds[1]:",
        "missing required field 'target'",
    ),
    (
        "read-only id in a monitor request",
        edited(burn_rate_monitor, lambda b: b.update(id=123, overall_state="OK")),
        Monitor,
        "$.id:",
        "read-only",
    ),
    (
        "priority out of range",
        edited(burn_rate_monitor, lambda b: b.update(priority=9)),
        Monitor,
        "$.priority:",
        "not in 1..5",
    ),
    (
        "target with too many decimals",
        edited(metric_slo, lambda b: b["thresholds"][0].update(target=99.99999, warning=99.999999)),
        ServiceLevelObjectiveRequest,
        "$.thresholds[0].target:",
        "more than 3 decimals",
    ),
    (
        "target of 100",
        edited(metric_slo, lambda b: b["thresholds"][1].update(target=100)),
        ServiceLevelObjectiveRequest,
        "$.thresholds[1].target:",
        "not in (0, 100)",
    ),
    (
        "warning equal to target",
        edited(metric_slo, lambda b: b["thresholds"][0].update(warning=99.9)),
        ServiceLevelObjectiveRequest,
        "$.thresholds[0].warning:",
        "greater than target",
    ),
    (
        "warning below target",
        edited(metric_slo, lambda b: b["thresholds"][0].update(warning=99.5)),
        ServiceLevelObjectiveRequest,
        "$.thresholds[0].warning:",
        "greater than target",
    ),
    (
        "custom timeframe in a create request",
        edited(metric_slo, lambda b: b["thresholds"][0].update(timeframe="custom")),
        ServiceLevelObjectiveRequest,
        "$.thresholds[0].timeframe:",
        "'custom'",
    ),
    (
        "correction rrule without duration",
        edited(recurring_correction, lambda b: _drop(b["data"]["attributes"], "duration")),
        SLOCorrectionCreateRequest,
        "$.data.attributes.duration:",
        "required with 'rrule'",
    ),
    (
        "correction with both slo_id and slo_query",
        edited(one_off_correction, lambda b: b["data"]["attributes"].update(slo_query="sum:x{*}")),
        SLOCorrectionCreateRequest,
        "$.data.attributes:",
        "exactly one of",
    ),
    (
        "downtime duration not like 2h",
        edited(
            recurring_downtime,
            lambda b: b["data"]["attributes"]["schedule"]["recurrences"][0].update(duration="2 hours"),
        ),
        DowntimeCreateRequest,
        "$.data.attributes.schedule.recurrences[0].duration:",
        "does not match",
    ),
    (
        "downtime one-time start with an offset",
        edited(
            one_time_downtime, lambda b: b["data"]["attributes"]["schedule"].update(start="2026-01-01T01:00:00+01:00")
        ),
        DowntimeCreateRequest,
        "$.data.attributes.schedule.start:",
        "UTC offset zero",
    ),
    (
        "scalar from as a float",
        edited(scalar_query, lambda b: b["data"]["attributes"].update({"from": 1.5})),
        ScalarFormulaQueryRequest,
        "$.data.attributes.from:",
        "int",
    ),
]


@pytest.mark.parametrize(("body", "model", "path", "word"), [d[1:] for d in DEFECTS], ids=[d[0] for d in DEFECTS])
def test_defect_is_reported_at_its_path(body: Body, model: type, path: str, word: str) -> None:
    """Each defect yields a finding that starts with its precise path and says what is wrong."""
    found = problems(body, model)
    assert any(p.startswith(path + " ") and word in p for p in found), found


def test_all_problems_are_reported_at_once() -> None:
    """Several defects in one body give one finding each, so a single run shows the whole fix."""
    body = edited(metric_slo, lambda b: b.update(extra=1))
    body["thresholds"][1]["timeframe"] = "28d"
    body["thresholds"][0]["warning"] = 99.0
    found = problems(body, ServiceLevelObjectiveRequest)
    assert sorted(p.split(":")[0] for p in found) == ["$.extra", "$.thresholds[0].warning", "$.thresholds[1].timeframe"]


def test_read_only_fields_are_allowed_outside_requests() -> None:
    """`request=False` checks a stored/response body, where `id` and `overall_state` belong."""
    body = edited(burn_rate_monitor, lambda b: b.update(id=123, overall_state="OK"))
    assert problems(body, Monitor, request=False) == []
    assert [p.split(":")[0] for p in problems(body, Monitor)] == ["$.id", "$.overall_state"]


def test_assert_valid_lists_every_problem() -> None:
    """The assertion message carries the findings, not just a count."""
    body = edited(burn_rate_monitor, lambda b: b.update(priority=0, type="slo-alert"))
    with pytest.raises(AssertionError, match=r"2 problem\(s\) against Monitor") as info:
        assert_valid(body, Monitor)
    assert "$.priority: 0 is not in 1..5" in str(info.value)
    assert "$.type: 'slo-alert'" in str(info.value)


def test_body_is_not_mutated() -> None:
    """The checker deserializes a copy: the rendered body a caller goes on to compare stays as it was."""
    body = dashboard()
    before = copy.deepcopy(body)
    problems(body, Dashboard)
    assert body == before
