"""Datadog requests as files: every body exactly what the official client's models accept, and the mapping.

`datadog/<slo>.json` lists the requests to send (SLO first, then what refers to its id). Each body is
checked strictly against `datadog-api-client` (unknown keys, bad enums, read-only fields and
out-of-range values the models let pass are refused by `tests.datadog_models`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.service_level_objective_request import ServiceLevelObjectiveRequest
from datadog_api_client.v1.model.slo_correction_create_request import SLOCorrectionCreateRequest
from datadog_api_client.v2.model.downtime_create_request import DowntimeCreateRequest

from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import TargetSystem
from sloplane.interop import LoadResult, load_paths
from sloplane.render.bundle import fleet_files
from sloplane.render.datadog import MONITOR_DEFAULTS, datadog_requests
from sloplane.render.datadog_dashboards import overview_request
from sloplane.render.datadog_pulumi import monitor_inputs
from tests.conftest import EXAMPLES, minimal, run_cli
from tests.datadog_models import assert_valid

MODELS = {
    "/api/v1/dashboard": Dashboard,
    "/api/v1/slo": ServiceLevelObjectiveRequest,
    "/api/v1/monitor": Monitor,
    "/api/v1/slo/correction": SLOCorrectionCreateRequest,
    "/api/v2/downtime": DowntimeCreateRequest,
}

FULL = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: payments-availability}
spec:
  service: payments
  tier: critical
  owners: {team: payments}
  objective: 99.95
  sli:
    ratio:
      errors: {datadog: 'sum:trace.http.request.errors{service:payments,env:prod}.as_count()'}
      total: {datadog: 'sum:trace.http.request.hits{service:payments,env:prod}.as_count()'}
  alerting:
    runbook: https://runbooks.example.com/payments
    routing: {background: "@pagerduty-payments"}
  gate: {minBudgetRemaining: 25}
  exclusions:
    maintenance:
      - {name: nightly, schedule: '0 3 * * *', duration: 1h, timeZone: Europe/Berlin}
      - {name: weekly-db, schedule: '30 2 * * 0', duration: 2h}
    windows:
      - {name: migration, start: '2026-12-10T22:00:00Z', end: '2026-12-11T02:00:00Z', reason: datacentre move}
    emergencyChanges:
      - {start: '2026-11-02T10:00:00Z', end: '2026-11-02T10:30:00Z', reason: hotfix, approver: cto, ticket: INC-7}
  targets: [datadog]
"""


def _load(text: str, tmp_path: Path, name: str = "slo.yaml") -> LoadResult:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_paths([path])


def _declaration(text: str, tmp_path: Path) -> Declaration:
    result = _load(text, tmp_path)
    assert result.errors == [], [d.render() for d in result.errors]
    (declaration,) = result.declarations
    return declaration


def _by_path(requests: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [request["body"] for request in requests if request["path"] == path]


def test_every_request_body_is_exactly_what_the_datadog_models_accept(tmp_path: Path) -> None:
    requests = datadog_requests(_declaration(FULL, tmp_path))
    assert {request["path"] for request in requests} == set(MODELS)
    for request in requests:
        assert request["method"] == "POST"
        assert_valid(request["body"], MODELS[request["path"]])


API_COMPUTED = {"id", "author_handle", "author_name", "created_at", "modified_at", "url"}
"""Fields the Datadog API adds to a dashboard and the Terraform provider removes before comparing
(terraform-provider-datadog, resource_datadog_dashboard_json.go, `computedFields`)."""
NOT_ECHOED = {"is_read_only", "pause_auto_refresh"}
"""Fields the provider forces (`is_read_only`: false) or the API does not return (`pause_auto_refresh`):
either in a body is drift after every apply."""


def _nulls_and_keys(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, key) of every key of nested objects, and ("null", path) for every null."""
    found: list[tuple[str, str]] = []
    if value is None:
        found.append(("null", path))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.append((path, key))
            found += _nulls_and_keys(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _nulls_and_keys(item, f"{path}/{index}")
    return found


def test_dashboards_are_written_as_the_api_returns_them_so_terraform_shows_no_drift(tmp_path: Path) -> None:
    """The provider compares its normalisation of our JSON with its normalisation of the API's answer,
    and the API echoes what it was sent: anything it drops, adds or forces is a diff on every plan."""
    requests = datadog_requests(_declaration(FULL, tmp_path))
    examples = [d for d in load_paths([EXAMPLES]).declarations if TargetSystem.DATADOG in d.spec.targets]
    requests += [r for d in examples for r in datadog_requests(d)]
    dashboards = [r["body"] for r in requests if r["path"] == "/api/v1/dashboard"]
    dashboards.append(overview_request(examples)["body"])
    assert dashboards
    for body in dashboards:
        found = _nulls_and_keys(body)
        assert not [path for kind, path in found if kind == "null"], body["title"]
        assert not {key for path, key in found if path == ""} & (API_COMPUTED | NOT_ECHOED)
        widget_ids = [path for path, key in found if key == "id" and "/widgets/" in path]
        assert widget_ids == [], "widget ids are the API's"
        assert body["layout_type"] == "ordered" and body["reflow_type"] == "auto"
        assert body.get("tags", []) == sorted(body.get("tags", []))


def test_monitors_set_their_defaults_and_corrections_their_time_zone_explicitly(tmp_path: Path) -> None:
    """What the provider or the API would fill in is written down: an upstream default that changes is
    then a reviewed change, not drift (a one-off correction is read back with `timezone: UTC`)."""
    requests = datadog_requests(_declaration(FULL, tmp_path))
    monitors = _by_path(requests, "/api/v1/monitor")
    assert monitors and all(m["options"].items() >= MONITOR_DEFAULTS.items() for m in monitors)
    assert all(not {"on_missing_data", "no_data_timeframe"} & set(m["options"]) for m in monitors)
    corrections = [r["data"]["attributes"] for r in _by_path(requests, "/api/v1/slo/correction")]
    assert corrections and all(c["timezone"] for c in corrections)
    assert {c["timezone"] for c in corrections if "rrule" not in c} == {"UTC"}
    for body in monitors:
        inputs = monitor_inputs(body)
        assert {key: inputs[key] for key in MONITOR_DEFAULTS} == MONITOR_DEFAULTS


def test_the_slo_counts_good_events_as_total_minus_bad_with_its_tags_and_thresholds(tmp_path: Path) -> None:
    (slo,) = _by_path(datadog_requests(_declaration(FULL, tmp_path)), "/api/v1/slo")
    total = "sum:trace.http.request.hits{service:payments,env:prod}.as_count()"
    errors = "sum:trace.http.request.errors{service:payments,env:prod}.as_count()"
    assert slo["type"] == "metric"
    assert slo["query"] == {"numerator": f"{total} - {errors}", "denominator": total}
    assert slo["thresholds"] == [{"timeframe": "30d", "target": 99.95, "warning": 99.975}]
    assert slo["tags"] == ["service:payments", "team:payments", "tier:critical", "slo:payments-availability"]


def test_burn_rate_monitors_keep_the_workbook_pairs_and_move_the_3d_ticket_into_datadogs_range(
    tmp_path: Path,
) -> None:
    """Datadog's long window is 1h-48h: 3d/6h at 1 (10% of a 30d budget) becomes 48h/4h at 1.5."""
    monitors = _by_path(datadog_requests(_declaration(FULL, tmp_path)), "/api/v1/monitor")
    queries = [monitor["query"] for monitor in monitors]
    slo = "{{slo:payments-availability}}"
    assert queries == [
        f'burn_rate("{slo}").over("30d").long_window("1h").short_window("5m") > 14.4',
        f'burn_rate("{slo}").over("30d").long_window("6h").short_window("30m") > 6',
        f'burn_rate("{slo}").over("30d").long_window("1d").short_window("2h") > 3',
        f'burn_rate("{slo}").over("30d").long_window("2d").short_window("4h") > 1.5',
        f'error_budget("{slo}").over("30d") > 75',
    ]
    for monitor in monitors:  # the threshold is the number in the query
        assert monitor["query"].endswith(f"> {monitor['options']['thresholds']['critical']:g}")
    assert [monitor["priority"] for monitor in monitors] == [1, 1, 3, 3, 3]
    assert "https://runbooks.example.com/payments" in monitors[0]["message"]
    assert "@pagerduty-payments" in monitors[0]["message"] and "team payments" in monitors[0]["message"]
    assert "sloplane's 3d/6h at 1" in monitors[3]["message"]


def test_tiers_clamped_to_the_same_datadog_windows_are_one_monitor_with_an_exact_threshold(tmp_path: Path) -> None:
    """At 90d both tickets (3d/6h and 9d/18h) move to 48h/4h at the same budget share: one monitor, and its
    `critical` is exactly the number its query prints, however many digits the factor has."""
    text = FULL.replace("  objective: 99.95\n", "  objective: 99.95\n  window: 90d\n")
    monitors = _by_path(datadog_requests(_declaration(text, tmp_path)), "/api/v1/monitor")
    burns = [monitor["query"] for monitor in monitors if monitor["query"].startswith("burn_rate")]
    assert len(burns) == len(set(burns)) == 3
    assert sum('long_window("2d")' in query for query in burns) == 1
    for monitor in monitors:
        printed = monitor["query"].rsplit("> ", 1)[1]
        assert float(printed) == monitor["options"]["thresholds"]["critical"]


def test_exclusions_become_corrections_that_spend_no_budget_and_downtimes_that_mute(tmp_path: Path) -> None:
    requests = datadog_requests(_declaration(FULL, tmp_path))
    corrections = [body["data"]["attributes"] for body in _by_path(requests, "/api/v1/slo/correction")]
    nightly, weekly, migration, hotfix = corrections
    # 03:00 Berlin on 2024-01-01 (the rule's start) is 02:00 UTC; the rule has no trailing ';'
    assert nightly["rrule"] == "FREQ=DAILY;INTERVAL=1" and nightly["start"] == 1704074400
    assert nightly["duration"] == 3600 and nightly["timezone"] == "Europe/Berlin"
    assert weekly["rrule"] == "FREQ=WEEKLY;INTERVAL=1" and weekly["start"] == 1704594600  # Sunday 7 Jan 02:30 UTC
    assert (migration["start"], migration["end"]) == (1796940000, 1796954400)
    assert hotfix["category"] == "Other" and "approved by cto, INC-7" in hotfix["description"]
    assert all(c["slo_id"] == "{{slo:payments-availability}}" for c in corrections)
    downtimes = [body["data"]["attributes"] for body in _by_path(requests, "/api/v2/downtime")]
    assert [d["schedule"].get("recurrences", [{}])[0].get("duration") for d in downtimes] == ["1h", "2h", None]
    assert downtimes[2]["schedule"] == {"start": "2026-12-10T22:00:00+00:00", "end": "2026-12-11T02:00:00+00:00"}
    assert all(d["monitor_identifier"] == {"monitor_tags": ["slo:payments-availability"]} for d in downtimes)


def test_a_staged_slo_is_one_datadog_slo_per_stage_with_its_tags(tmp_path: Path) -> None:
    text = minimal() + "  stages:\n    - {name: canary, objective: 99, selector: {track: canary}}\n"
    text += "    - {name: production, selector: {track: stable}}\n  targets: [datadog]\n"
    requests = datadog_requests(_declaration(text, tmp_path))
    canary, production = _by_path(requests, "/api/v1/slo")
    assert "track:canary" in canary["query"]["denominator"] and "track:stable" in production["query"]["denominator"]
    assert canary["thresholds"][0]["target"] == 99 and "stage:canary" in canary["tags"]
    for request in requests:
        assert_valid(request["body"], MODELS[request["path"]])


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ("  window: 28d\n", 11, "rendered as 30d rolling for Datadog"),
        ("  window: {calendar: month}\n", 11, "rendered as 30d rolling for Datadog"),
    ],
)
def test_what_datadog_cannot_say_exactly_is_a_warning_at_its_line(
    extra: str, line: int, message: str, tmp_path: Path
) -> None:
    result = _load(minimal() + extra + "  targets: [datadog]\n", tmp_path)
    assert result.errors == []
    assert [(d.position.line, message in d.message) for d in result.warnings] == [(line, True)]


def test_what_datadog_cannot_say_at_all_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = minimal(objective=99.9995) + "  exclusions:\n    maintenance:\n"
    text += "".join(f"      - {{name: d{i}, schedule: '0 {i} * * *', duration: 10m}}\n" for i in range(3))
    text += "      - {name: last, schedule: '0 1 L * *', duration: 10m}\n  targets: [datadog]\n"
    errors = sorted((d.position.line, d.message) for d in _load(text, tmp_path).errors)
    assert [line for line, _ in errors] == [8, 11, 16]
    assert "at most 3 decimals: 99.9995" in errors[0][1]
    assert "at most 2 daily corrections per SLO; these exclusions need 3" in errors[1][1]
    assert "Datadog corrections repeat by RRULE" in errors[2][1]


def test_render_writes_one_file_per_slo_in_the_datadog_folder(tmp_path: Path) -> None:
    declaration = _declaration(FULL, tmp_path)
    files = fleet_files([declaration])
    assert sorted(name for name in files if name.startswith("datadog/")) == [
        "datadog/overview.json",
        "datadog/payments-availability.json",
    ]
    (overview,) = json.loads(files["datadog/overview.json"])["requests"]
    assert_valid(overview["body"], Dashboard)
    assert [w["definition"]["requests"][0]["query"]["query_string"] for w in overview["body"]["widgets"]] == [
        "team:payments"
    ]
    assert json.loads(files["datadog/payments-availability.json"])["requests"] == datadog_requests(declaration)


def test_explain_shows_where_the_datadog_monitor_windows_moved(tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(FULL, encoding="utf-8")
    table = run_cli("explain", path)
    assert table.code == 0 and "3d/6h (Datadog: 2d/4h at 1.5x)" in table.stdout
    (objective,) = json.loads(run_cli("explain", path, "--format", "json").stdout)
    moved = [alert["datadog"] for alert in objective["alerts"] if alert["datadog"]["moved"]]
    assert moved == [{"longWindow": "2d", "shortWindow": "4h", "burnRate": 1.5, "moved": True}]


def test_the_dashboard_shows_the_slo_and_each_monitors_burn_with_its_threshold_and_deployments(tmp_path: Path) -> None:
    (dashboard,) = _by_path(datadog_requests(_declaration(FULL, tmp_path)), "/api/v1/dashboard")
    slo_widget, burn = (widget["definition"] for widget in dashboard["widgets"])
    assert slo_widget["slo_id"] == "{{slo:payments-availability}}" and slo_widget["show_error_budget"] is True
    assert [marker["value"] for marker in burn["markers"]] == ["y = 14.4", "y = 6", "y = 3", "y = 1.5"]
    first = burn["requests"][0]
    assert first["formulas"] == [{"formula": "bad / total / 0.0005", "alias": "burn rate over 1h"}]
    assert first["queries"][1]["query"].endswith(".as_count().rollup(sum, 3600)")
    assert burn["events"] == [{"q": "tags:deployment,service:payments"}]


def test_declared_alert_names_labels_and_annotations_reach_the_monitors(tmp_path: Path) -> None:
    text = FULL.replace(
        '    routing: {background: "@pagerduty-payments"}\n',
        '    routing: {background: "@pagerduty-payments"}\n    labels: {channel: payments}\n'
        "    annotations: {dashboard: https://grafana.example.com/d/payments}\n"
        "    pageAlert: {name: PaymentsPage, labels: {severity: critical}, annotations: {playbook: pb-7}}\n",
    )
    monitors = _by_path(datadog_requests(_declaration(text, tmp_path)), "/api/v1/monitor")
    page, ticket = monitors[0], monitors[2]
    assert page["name"].startswith("PaymentsPage [page] payments-availability:")
    assert {"severity:critical", "channel:payments"} <= set(page["tags"]) and "severity:ticket" in ticket["tags"]
    assert "playbook: pb-7" in page["message"] and "playbook" not in ticket["message"]
    assert "dashboard: https://grafana.example.com/d/payments" in ticket["message"]
    for monitor in monitors:
        assert_valid(monitor, Monitor)


def test_what_datadog_objects_cannot_carry_is_said_not_dropped(tmp_path: Path) -> None:
    text = minimal() + "  budgetingMethod: timeslices\n  timeslice: {window: 1m, target: 95}\n"
    text += "  alerting:\n    deploymentSignal: sum(rollout_info)\n"
    text += "    routing: {deployment: '@deploys', background: '@oncall'}\n"
    text += "  stages:\n    - {name: canary, countsTowardProduction: true}\n    - {name: production}\n"
    text += "  targets: [datadog]\n"
    result = _load(text, tmp_path)
    assert result.errors == []
    found = {d.field for d in result.warnings if d.code == "lint/datadog-not-rendered"}
    assert found == {
        "spec.budgetingMethod",
        "spec.alerting.deploymentSignal",
        "spec.alerting.routing.deployment",
        "spec.stages[0].countsTowardProduction",
    }


def test_the_http_shorthand_says_its_datadog_metric_tags_and_status_tag(tmp_path: Path) -> None:
    """APM's trace metrics have their own names and tags: one declaration reads both backends."""
    text = minimal().replace(
        "http: {metric: http_requests_total, selector: {job: checkout}}",
        "http: {metric: http_requests_total, selector: {job: checkout}, datadogMetric: trace.http.request.hits,"
        " datadogTags: {service: checkout, env: prod}, datadogStatusTag: http.status_code}",
    )
    assert "datadogTags" in text
    declaration = _declaration(text, tmp_path)
    (slo,) = _by_path(datadog_requests(declaration), "/api/v1/slo")
    total = "sum:trace.http.request.hits{env:prod,service:checkout}.as_count()"
    errors = "sum:trace.http.request.hits{env:prod,service:checkout,http.status_code:5*}.as_count()"
    assert slo["query"] == {"numerator": f"{total} - {errors}", "denominator": total}
    refused = _load(text.replace("datadogStatusTag: http.status_code", "datadogStatusTag: 'bad tag'"), tmp_path)
    assert [d.field for d in refused.errors] == ["spec.sli.http.datadogStatusTag"]
