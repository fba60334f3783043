"""Grafana dashboards: panels, PromQL that parses and reads only recorded series, thresholds, stages."""

import json
from datetime import timedelta
from typing import Any

import promql_parser
import pytest
import yaml

from sloplane.core import names
from sloplane.core.budget import WORKBOOK_PERIOD, burn_rate_alerts
from sloplane.core.durations import format_duration
from sloplane.declaration.model import Declaration
from sloplane.interop import load_paths
from sloplane.render.grafana import dashboard, overview
from sloplane.render.options import RenderOptions
from sloplane.render.prometheus import dashboard_url, rule_file
from sloplane.semantics.recording import recorded_windows
from sloplane.semantics.subjects import Fleet, production_subject
from tests.conftest import EXAMPLES, minimal

Dashboard = dict[str, Any]

LONG_NAME = "checkout-availability-for-the-european-storefront-api"
"""Long enough that `names.dashboard_uid` shortens it with a hash."""


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    result = load_paths([EXAMPLES])
    assert result.diagnostics == []
    return {declaration.name: declaration for declaration in result.declarations}


@pytest.fixture(scope="module")
def dashboards(fleet: Fleet) -> dict[str, Dashboard]:
    return {name: dashboard(declaration, fleet) for name, declaration in fleet.items()}


def _declaration(name: str, **spec: Any) -> Declaration:
    data = yaml.safe_load(minimal(name=name))
    data["spec"].update(spec)
    return Declaration.model_validate(data)


def _panels(board: Dashboard) -> dict[str, Dashboard]:
    return {panel["title"]: panel for panel in board["panels"]}


def _exprs(board: Dashboard) -> list[str]:
    """Every PromQL query of a dashboard: panel targets and annotations."""
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    return exprs + [annotation["expr"] for annotation in board["annotations"].get("list", [])]


def _parse(expr: str) -> promql_parser.Expr:
    return promql_parser.parse(expr.replace("$stage", "canary").replace("$__rate_interval", "5m"))


def _selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(_parse(expr), visit)
    return found


def _matchers(selector: promql_parser.VectorSelector) -> dict[str, str]:
    return {matcher.name: matcher.value for matcher in selector.matchers.matchers}


def _metric_names(expr: str) -> set[str]:
    return {selector.name for selector in _selectors(expr) if selector.name}


def _recorded(declaration: Declaration, fleet: Fleet) -> set[str]:
    return {
        rule["record"]
        for group in rule_file(declaration, fleet)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def _variables(board: Dashboard) -> dict[str, Dashboard]:
    return {variable["name"]: variable for variable in board["templating"]["list"]}


def _threshold_values(panel: Dashboard) -> list[float]:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[0]["value"] is None
    return [step["value"] for step in steps[1:]]


def _enabled_factors(declaration: Declaration) -> list[float]:
    tiers = set(declaration.spec.alerting.enabled_tiers())
    return sorted({alert.factor for alert in burn_rate_alerts(declaration.spec.window.period) if alert.tier in tiers})


def test_a_dashboard_per_slo_identified_by_its_uid_and_tagged(fleet: Fleet, dashboards: dict[str, Dashboard]) -> None:
    for name, board in dashboards.items():
        spec = fleet[name].spec
        assert board["uid"] == names.dashboard_uid(name)
        assert board["title"] == name
        assert {"sloplane", spec.service, spec.owners.team, spec.tier.value} <= set(board["tags"])
        assert isinstance(board["schemaVersion"], int)
        datasource = _variables(board)["datasource"]
        assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_panels_of_an_event_based_slo(dashboards: dict[str, Dashboard]) -> None:
    board = dashboards["checkout-availability"]
    assert [(panel["id"], panel["type"], panel["title"]) for panel in board["panels"]] == [
        (1, "stat", "Objective"),
        (2, "stat", "SLI over 30d"),
        (3, "stat", "Error budget remaining"),
        (4, "stat", "Burn rate (now)"),
        (5, "stat", "Events in 30d"),
        (6, "timeseries", "SLI (5m) vs objective"),
        (7, "timeseries", "Error budget remaining"),
        (8, "timeseries", "Burn rate per alert window"),
        (9, "state-timeline", "Burn-rate alerts"),
    ]
    stats = [panel for panel in board["panels"] if panel["type"] == "stat"]
    assert [panel["gridPos"]["w"] for panel in stats] == [5, 5, 5, 5, 4]
    budget = stats[2]["fieldConfig"]["defaults"]
    assert budget["unit"] == "percentunit"
    assert [(step["value"], step["color"]) for step in budget["thresholds"]["steps"]] == [
        (None, "red"),
        (0.0, "orange"),
        (0.25, "green"),
    ]


def test_composite_slos_have_no_event_count_and_keep_their_panel_ids(dashboards: dict[str, Dashboard]) -> None:
    board = dashboards["purchase-journey"]
    ids = {panel["title"]: panel["id"] for panel in board["panels"]}
    assert not any(title.startswith("Events") for title in ids)
    assert ids["Burn rate per alert window"] == 8
    assert [panel["gridPos"]["w"] for panel in board["panels"] if panel["type"] == "stat"] == [6, 6, 6, 6]


def test_every_query_parses(fleet: Fleet, dashboards: dict[str, Dashboard]) -> None:
    boards = [*dashboards.values(), overview(list(fleet.values()), fleet)]
    exprs = [expr for board in boards for expr in _exprs(board)]
    assert exprs
    for expr in exprs:
        _parse(expr)


def test_queries_read_only_series_the_prometheus_rules_record(fleet: Fleet, dashboards: dict[str, Dashboard]) -> None:
    for name, board in dashboards.items():
        declaration = fleet[name]
        allowed = _recorded(declaration, fleet) | {"ALERTS"}
        signal = declaration.spec.alerting.deployment_signal
        if signal is not None:
            allowed |= _metric_names(signal)
        for expr in _exprs(board):
            assert _metric_names(expr) <= allowed, expr


def test_queries_select_the_subject_and_filter_by_stage_only_when_staged(
    fleet: Fleet, dashboards: dict[str, Dashboard]
) -> None:
    for name, board in dashboards.items():
        declaration = fleet[name]
        staged = bool(declaration.spec.stages)
        signal = declaration.spec.alerting.deployment_signal
        for expr in _exprs(board):
            if signal is not None and expr == f"({signal}) > 0":
                continue
            for selector in _selectors(expr):
                matchers = _matchers(selector)
                assert matchers["slo"] == name and matchers["service"] == declaration.spec.service, expr
                assert matchers.get("stage") == ("canary" if staged else None), expr


def test_a_staged_slo_has_a_stage_variable_on_its_production_stage(
    fleet: Fleet, dashboards: dict[str, Dashboard]
) -> None:
    variables = _variables(dashboards["checkout-availability"])
    assert list(variables) == ["datasource", "stage"]
    stage = variables["stage"]
    assert (stage["type"], stage["query"]) == ("custom", "canary,production")
    assert stage["current"]["value"] == production_subject(fleet["checkout-availability"]).stage == "production"
    assert [option["value"] for option in stage["options"]] == ["canary", "production"]
    for name, board in dashboards.items():
        if not fleet[name].spec.stages:
            assert "stage" not in _variables(board)
            assert all("$stage" not in expr for expr in _exprs(board))


def test_burn_rate_thresholds_are_the_budget_modules_factors(fleet: Fleet, dashboards: dict[str, Dashboard]) -> None:
    for name, board in dashboards.items():
        declaration = fleet[name]
        panels = _panels(board)
        factors = _enabled_factors(declaration)
        assert _threshold_values(panels["Burn rate per alert window"]) == factors
        assert _threshold_values(panels["Burn rate (now)"]) == factors
    assert _enabled_factors(fleet["checkout-availability"]) == [1.0, 3.0, 6.0, 14.4]
    assert _enabled_factors(fleet["admin-console-probe"]) == [1.0, 3.0]  # no page tier


def test_burn_rate_is_drawn_for_every_recorded_alert_window(fleet: Fleet, dashboards: dict[str, Dashboard]) -> None:
    windows = recorded_windows(fleet)
    for name, board in dashboards.items():
        declaration = fleet[name]
        alerts = burn_rate_alerts(declaration.spec.window.period)
        expected = sorted({w for alert in alerts for w in (alert.long_window, alert.short_window)} & set(windows[name]))
        targets = _panels(board)["Burn rate per alert window"]["targets"]
        assert [target["legendFormat"] for target in targets] == [format_duration(w) for w in expected]
        for target, window in zip(targets, expected, strict=True):
            assert _metric_names(target["expr"]) == {names.windowed(names.ERROR_RATIO, window), names.ERROR_BUDGET}


def test_the_sli_is_drawn_at_the_shortest_recorded_window(fleet: Fleet, dashboards: dict[str, Dashboard]) -> None:
    sli = _panels(dashboards["checkout-deploy-success"])["SLI (5m) vs objective"]
    assert {name for target in sli["targets"] for name in _metric_names(target["expr"])} == {
        names.windowed(names.ERROR_RATIO, timedelta(minutes=5)),
        names.OBJECTIVE,
    }


def test_alert_state_and_annotations(fleet: Fleet, dashboards: dict[str, Dashboard]) -> None:
    checkout = dashboards["checkout-availability"]
    alerts = _panels(checkout)["Burn-rate alerts"]
    assert alerts["type"] == "state-timeline"
    selector = _selectors(alerts["targets"][0]["expr"])[0]
    assert selector.name == "ALERTS"
    assert _matchers(selector)["alertname"] == names.ALERT
    annotations = {annotation["name"]: annotation for annotation in checkout["annotations"]["list"]}
    signal = fleet["checkout-availability"].spec.alerting.deployment_signal
    assert annotations["Deployments"]["expr"] == f"({signal}) > 0"
    assert _metric_names(annotations["Burn-rate alerts"]["expr"]) == {"ALERTS"}
    search = dashboards["search-latency"]
    assert [annotation["name"] for annotation in search["annotations"]["list"]] == ["Burn-rate alerts"]


def test_rendering_is_deterministic(fleet: Fleet) -> None:
    declarations = list(fleet.values())
    for declaration in declarations:
        first, second = dashboard(declaration, fleet), dashboard(declaration, fleet)
        assert first == second
        assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert json.dumps(overview(declarations, fleet), sort_keys=True) == json.dumps(
        overview(declarations, fleet), sort_keys=True
    )


def test_panels_have_unique_ids_and_do_not_overlap(fleet: Fleet, dashboards: dict[str, Dashboard]) -> None:
    for board in [*dashboards.values(), overview(list(fleet.values()), fleet)]:
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids))
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            area = {
                (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & area, panel["title"]
            cells |= area


def test_links_use_the_configured_grafana_url(fleet: Fleet) -> None:
    board = dashboard(fleet["checkout-availability"], fleet, RenderOptions(grafana_url="https://grafana.example.com/"))
    urls = [link["url"] for link in board["links"]]
    assert urls == [
        f"https://grafana.example.com/d/{names.OVERVIEW_UID}",
        "https://runbooks.example.com/checkout/availability",
    ]


def test_overview_covers_every_slo_by_team_and_service(fleet: Fleet) -> None:
    board = overview(list(fleet.values()), fleet)
    assert board["uid"] == names.OVERVIEW_UID
    variables = _variables(board)
    assert list(variables) == ["datasource", "team", "service"]
    assert variables["team"]["query"] == f"label_values({names.INFO}, team)"
    panels = _panels(board)
    assert (panels["SLOs"]["type"], panels["Error budget remaining per SLO"]["type"]) == ("table", "timeseries")
    recorded = set().union(*(_recorded(declaration, fleet) for declaration in fleet.values()))
    for expr in _exprs(board):
        assert _metric_names(expr) <= recorded | {"ALERTS"}, expr
    for target in panels["SLOs"]["targets"]:
        assert names.INFO in _metric_names(target["expr"])
        assert "group_left(team, tier, dashboard)" in target["expr"]
        info = next(selector for selector in _selectors(target["expr"]) if selector.name == names.INFO)
        assert set(_matchers(info)) == {"team", "service"}
        assert target["format"] == "table"


def test_overview_links_reach_every_slo_dashboard(fleet: Fleet) -> None:
    """Short names follow the uid pattern in PromQL; hashed uids of long names are written in."""
    long = _declaration(LONG_NAME)
    declarations = [*fleet.values(), long]
    board = overview(declarations, fleet | {LONG_NAME: long}, RenderOptions(grafana_url="https://g.example.com"))
    table = _panels(board)["SLOs"]
    expr = table["targets"][0]["expr"]
    assert '"dashboard", "slo-$1", "slo", "(.+)"' in expr
    for declaration in declarations:
        uid = names.dashboard_uid(declaration.name)
        assert uid == f"slo-{declaration.name}" or f'"dashboard", "{uid}", "slo", "{declaration.name}"' in expr
    assert names.dashboard_uid(LONG_NAME) != f"slo-{LONG_NAME}"
    url = table["fieldConfig"]["defaults"]["links"][0]["url"]
    fields = {"dashboard": names.dashboard_uid(LONG_NAME), "slo": LONG_NAME, "stage": "canary"}
    for field, value in fields.items():
        url = url.replace(f"${{__data.fields.{field}}}", value)
    assert url == dashboard_url(LONG_NAME, RenderOptions(grafana_url="https://g.example.com"), "canary") + (
        "&${__url_time_range}"
    )


def test_archived_slos_render_but_are_left_out_of_the_overview(fleet: Fleet) -> None:
    archived = _declaration(LONG_NAME, lifecycle="archived")
    assert dashboard(archived, {LONG_NAME: archived})["uid"] == names.dashboard_uid(LONG_NAME)
    board = overview([*fleet.values(), archived], fleet)
    assert names.dashboard_uid(LONG_NAME) not in json.dumps(board)
    assert f"({len(fleet)} declared)" in board["description"]


def test_overview_budget_colours_follow_the_workbook_factors(fleet: Fleet) -> None:
    table = _panels(overview(list(fleet.values()), fleet))["SLOs"]
    burn = next(o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Burn rate")
    thresholds = next(p["value"] for p in burn["properties"] if p["id"] == "thresholds")
    assert [step["value"] for step in thresholds["steps"][1:]] == sorted(
        {alert.factor for alert in burn_rate_alerts(WORKBOOK_PERIOD)}
    )
