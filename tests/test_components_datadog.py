"""Datadog children of the Pulumi components under the SDK's mocks: types, inputs built from the same request
bodies as `datadog/<slo>.json`, SLO ids as Outputs, the explicit provider, and nothing without the target."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pulumi
import pulumi_datadog
import pytest
import yaml

from sloplane.components import ServiceLevelObjective, SloFleet
from sloplane.declaration.model import Declaration
from sloplane.render.datadog import datadog_requests
from sloplane.render.datadog_pulumi import with_slo_ids
from tests.conftest import minimal, run_cli
from tests.pulumi_mocks import Recorder
from tests.test_component_evaluator import is_secret, unwrap_secret

SLO = "datadog:index/serviceLevelObjective:ServiceLevelObjective"
MONITOR = "datadog:index/monitor:Monitor"
CORRECTION = "datadog:index/sloCorrection:SloCorrection"
DOWNTIME = "datadog:index/downtimeSchedule:DowntimeSchedule"
DASHBOARD = "datadog:index/dashboardJson:DashboardJson"
API_KEY = "dd-api-0123456789abcdef"
APP_KEY = "dd-app-fedcba9876543210"

PAYMENTS = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: payments}
spec:
  service: payments
  tier: critical
  owners: {team: payments}
  objective: 99.95
  sli:
    ratio:
      errors: {datadog: 'sum:trace.http.request.errors{service:payments}.as_count()'}
      total: {datadog: 'sum:trace.http.request.hits{service:payments}.as_count()'}
  alerting: {runbook: 'https://runbooks.example.com/payments'}
  gate: {minBudgetRemaining: 25}
  exclusions:
    maintenance:
      - {name: nightly, schedule: '0 3 * * *', duration: 1h, timeZone: Europe/Berlin}
    windows:
      - {name: migration, start: '2026-12-10T22:00:00Z', end: '2026-12-11T02:00:00Z', reason: datacentre move}
  targets: [datadog]
"""
STAGED = (
    minimal()
    + "  stages:\n    - {name: canary, objective: 99, selector: {track: canary}}\n"
    + "    - {name: production, selector: {track: stable}}\n  targets: [datadog]\n"
)


def _provider() -> pulumi_datadog.Provider:
    return pulumi_datadog.Provider(
        "dd-prod", api_key=API_KEY, app_key=APP_KEY, api_url="https://api.datadoghq.eu", validate="false"
    )


def _component(text: str, name: str, **args: Any) -> ServiceLevelObjective:
    return ServiceLevelObjective(name, {"declaration": yaml.safe_load(text), **args})  # type: ignore[typeddict-item]


def _datadog(mocks: Recorder) -> list[tuple[str, str, dict[str, Any]]]:
    return [(t, n, inputs) for t, n, inputs in mocks.registered if t.startswith("datadog:")]


def _done(component: ServiceLevelObjective) -> pulumi.Output[list[Any]]:
    """Resolves once every child is registered."""
    return pulumi.Output.all(component.urn, component.datadog_slo_ids, *(r.urn for r in component.datadog.values()))


@pulumi.runtime.test
def test_an_slo_targeting_datadog_registers_every_request_as_a_datadog_resource(mocks: Recorder) -> Any:
    component = _component(PAYMENTS, "payments", datadog_provider=_provider())

    def check(values: list[Any]) -> None:
        _, ids, *_ = values
        assert ids == {"payments": "payments-datadog-slo-id"}
        names = {(t, n) for t, n, _ in _datadog(mocks)}
        assert names == {
            (SLO, "payments-datadog-slo"),
            (MONITOR, "payments-datadog-monitor-page-1h"),
            (MONITOR, "payments-datadog-monitor-page-6h"),
            (MONITOR, "payments-datadog-monitor-ticket-1d"),
            (MONITOR, "payments-datadog-monitor-ticket-2d"),  # the 3d/6h ticket, moved into 1h-48h
            (MONITOR, "payments-datadog-monitor-budget"),
            (CORRECTION, "payments-datadog-correction-1"),
            (CORRECTION, "payments-datadog-correction-2"),
            (DOWNTIME, "payments-datadog-downtime-1"),
            (DOWNTIME, "payments-datadog-downtime-2"),
            (DASHBOARD, "payments-datadog-dashboard"),
        }
        (slo,) = mocks.of_type(SLO).values()
        body = _bodies(PAYMENTS, "/api/v1/slo")[0]
        assert slo["query"] == body["query"] and slo["tags"] == body["tags"]
        assert slo["thresholds"] == [{"timeframe": "30d", "target": 99.95, "warning": 99.975}]

    return _done(component).apply(check)


@pulumi.runtime.test
def test_monitors_query_the_slo_id_output_with_a_string_critical_equal_to_the_querys_number(mocks: Recorder) -> Any:
    component = _component(PAYMENTS, "payments", datadog_provider=_provider())

    def check(_: Any) -> None:
        monitors = mocks.of_type(MONITOR)
        assert len(monitors) == 5
        for name, monitor in monitors.items():
            assert monitor["type"] == "slo alert"
            assert re.match(r'(burn_rate|error_budget)\("payments-datadog-slo-id"\)\.over\("30d"\)', monitor["query"])
            assert "{{slo:" not in monitor["query"], name
            assert monitor["validate"] is False, "the query names an id unknown at plan time"
            critical = monitor["monitorThresholds"]["critical"]
            assert isinstance(critical, str) and monitor["query"].endswith(f"> {critical}"), name
        assert monitors["payments-datadog-monitor-page-1h"]["monitorThresholds"] == {"critical": "14.4"}
        assert monitors["payments-datadog-monitor-page-1h"]["priority"] == "1"
        assert monitors["payments-datadog-monitor-ticket-2d"]["priority"] == "3"
        budget = monitors["payments-datadog-monitor-budget"]
        assert budget["query"] == 'error_budget("payments-datadog-slo-id").over("30d") > 75'
        files = {body["name"]: body for body in _bodies(PAYMENTS, "/api/v1/monitor")}
        for monitor in monitors.values():
            assert monitor["message"] == files[monitor["name"]]["message"]
            assert (
                float(monitor["monitorThresholds"]["critical"])
                == files[monitor["name"]]["options"]["thresholds"]["critical"]
            )

    return _done(component).apply(check)


@pulumi.runtime.test
def test_corrections_take_the_slo_id_and_downtimes_mute_the_monitors_by_tag(mocks: Recorder) -> Any:
    component = _component(PAYMENTS, "payments", datadog_provider=_provider())

    def check(_: Any) -> None:
        corrections = mocks.of_type(CORRECTION)
        nightly, migration = corrections["payments-datadog-correction-1"], corrections["payments-datadog-correction-2"]
        assert nightly["sloId"] == migration["sloId"] == "payments-datadog-slo-id"
        assert nightly["rrule"] == "FREQ=DAILY;INTERVAL=1" and nightly["duration"] == 3600
        assert nightly["start"] == 1704074400 and nightly["timezone"] == "Europe/Berlin"
        assert (migration["start"], migration["end"]) == (1796940000, 1796954400)
        downtimes = mocks.of_type(DOWNTIME)
        recurring, one_time = downtimes["payments-datadog-downtime-1"], downtimes["payments-datadog-downtime-2"]
        for downtime in (recurring, one_time):
            assert downtime["scope"] == "*" and downtime["monitorIdentifier"] == {"monitorTags": ["slo:payments"]}
        assert recurring["recurringSchedule"] == {
            "timezone": "Europe/Berlin",
            "recurrences": [{"rrule": "FREQ=DAILY;INTERVAL=1", "duration": "1h", "start": "2024-01-01T03:00"}],
        }
        assert one_time["oneTimeSchedule"] == {"start": "2026-12-10T22:00:00+00:00", "end": "2026-12-11T02:00:00+00:00"}

    return _done(component).apply(check)


@pulumi.runtime.test
def test_the_dashboard_is_the_files_dashboard_with_the_slo_ids_in(mocks: Recorder) -> Any:
    component = _component(PAYMENTS, "payments", datadog_provider=_provider())

    def check(_: Any) -> None:
        (dashboard,) = mocks.of_type(DASHBOARD).values()
        (body,) = _bodies(PAYMENTS, "/api/v1/dashboard")
        assert json.loads(dashboard["dashboard"]) == with_slo_ids(body, {"payments": "payments-datadog-slo-id"})
        assert json.loads(dashboard["dashboard"])["widgets"][0]["definition"]["slo_id"] == "payments-datadog-slo-id"

    return _done(component).apply(check)


@pulumi.runtime.test
def test_every_datadog_child_goes_through_the_explicit_provider_whose_keys_are_secret(mocks: Recorder) -> Any:
    provider = _provider()
    component = _component(PAYMENTS, "payments", datadog_provider=provider)

    def check(values: list[Any]) -> None:
        provider_urn, *_ = values
        datadog = _datadog(mocks)
        assert len(datadog) == 11
        for _, name, inputs in datadog:
            assert mocks.providers[name] == f"{provider_urn}::dd-prod-id", name
            text = json.dumps(inputs)
            assert API_KEY not in text and APP_KEY not in text, f"a key leaked into {name}"
        (registered,) = mocks.of_type("pulumi:providers:datadog").values()
        assert unwrap_secret(registered["apiKey"]) == API_KEY and unwrap_secret(registered["appKey"]) == APP_KEY
        assert not is_secret(registered["apiUrl"])

    return pulumi.Output.all(provider.urn, _done(component)).apply(check)


@pulumi.runtime.test
def test_a_provider_in_the_resource_options_is_used_too(mocks: Recorder) -> Any:
    provider = _provider()
    component = ServiceLevelObjective(
        "payments", {"declaration": yaml.safe_load(PAYMENTS)}, pulumi.ResourceOptions(providers=[provider])
    )

    def check(values: list[Any]) -> None:
        provider_urn, *_ = values
        datadog = _datadog(mocks)
        assert datadog and all(mocks.providers[name] == f"{provider_urn}::dd-prod-id" for _, name, _ in datadog)

    return pulumi.Output.all(provider.urn, _done(component)).apply(check)


@pulumi.runtime.test
def test_a_staged_slo_is_one_datadog_slo_per_stage_each_monitored_by_its_own_id(mocks: Recorder) -> Any:
    component = _component(STAGED, "checkout", datadog_provider=_provider())

    def check(values: list[Any]) -> None:
        _, ids, *_ = values
        assert ids == {
            "checkout-availability/canary": "checkout-datadog-slo-canary-id",
            "checkout-availability/production": "checkout-datadog-slo-production-id",
        }
        slos = mocks.of_type(SLO)
        assert set(slos) == {"checkout-datadog-slo-canary", "checkout-datadog-slo-production"}
        assert "stage:canary" in slos["checkout-datadog-slo-canary"]["tags"]
        assert "track:stable" in slos["checkout-datadog-slo-production"]["query"]["denominator"]
        monitors = mocks.of_type(MONITOR)
        assert monitors, "each stage has its burn-rate monitors"
        for name, monitor in monitors.items():
            stage = "canary" if name.startswith("checkout-datadog-monitor-canary-") else "production"
            assert f'burn_rate("checkout-datadog-slo-{stage}-id")' in monitor["query"], name
        (dashboard,) = mocks.of_type(DASHBOARD).values()
        widgets = json.loads(dashboard["dashboard"])["widgets"]
        assert {w["definition"].get("slo_id") for w in widgets} >= set(ids.values())

    return _done(component).apply(check)


@pulumi.runtime.test
def test_a_declaration_without_the_datadog_target_registers_no_datadog_resource(mocks: Recorder) -> Any:
    component = _component(minimal() + "  targets: [prometheus]\n", "rules-only")

    def check(values: list[Any]) -> None:
        assert values[0][1] == {}
        assert _datadog(mocks) == [] and component.datadog == {}
        assert [t for t, _, _ in mocks.registered if t.startswith("kubernetes:")] == [
            "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
        ]

    assert component.rule is not None
    return pulumi.Output.all(_done(component), component.rule.urn).apply(check)


@pulumi.runtime.test
def test_create_switches_datadog_children_but_never_keeps_one_without_its_slo(mocks: Recorder) -> Any:
    with pytest.raises(pulumi.RunError, match=r"create: 'datadogMonitors' needs the Datadog SLO payments"):
        _component(PAYMENTS, "refused", datadog_provider=_provider(), create=["datadogMonitors"])
    component = _component(
        PAYMENTS, "payments", datadog_provider=_provider(), create=["datadogSlo", "datadogDowntimes"]
    )

    def check(_: Any) -> None:
        assert {t for t, _, _ in _datadog(mocks)} == {SLO, DOWNTIME}

    return _done(component).apply(check)


@pulumi.runtime.test
def test_datadog_children_without_an_explicit_provider_are_refused_before_anything_is_registered(
    mocks: Recorder, tmp_path: Path
) -> None:
    with pytest.raises(pulumi.RunError, match=r"payments: targets datadog: pass datadog_provider"):
        _component(PAYMENTS, "payments")
    (tmp_path / "payments.yaml").write_text(PAYMENTS, encoding="utf-8")
    with pytest.raises(pulumi.RunError, match=r"payments: targets datadog: pass datadog_provider"):
        SloFleet("fleet", {"path": str(tmp_path)})
    with pytest.raises(pulumi.RunError, match=r"datadog_provider must be a pulumi_datadog.Provider"):
        _component(PAYMENTS, "payments", datadog_provider="dd-prod")
    assert mocks.registered == []


@pulumi.runtime.test
def test_a_fleet_passes_its_provider_to_every_slo_and_adds_the_overview(mocks: Recorder, tmp_path: Path) -> Any:
    (tmp_path / "payments.yaml").write_text(PAYMENTS, encoding="utf-8")
    (tmp_path / "checkout.yaml").write_text(STAGED, encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(minimal("rules-only") + "  targets: [prometheus]\n", encoding="utf-8")
    provider = _provider()
    fleet = SloFleet("fleet", {"path": str(tmp_path), "datadog_provider": provider})

    def check(values: list[Any]) -> None:
        provider_urn, *_ = values
        slos = mocks.of_type(SLO)
        assert set(slos) == {
            "fleet-payments-datadog-slo",
            "fleet-checkout-availability-datadog-slo-canary",
            "fleet-checkout-availability-datadog-slo-production",
        }
        overview = mocks.of_type(DASHBOARD)["fleet-datadog-overview"]
        assert [w["definition"]["type"] for w in json.loads(overview["dashboard"])["widgets"]] == ["slo_list"]
        assert not any(name.startswith("rules-only-datadog") for _, name, _ in _datadog(mocks))
        assert all(mocks.providers[name] == f"{provider_urn}::dd-prod-id" for _, name, _ in _datadog(mocks))

    children = [fleet.urn, *(slo.urn for slo in fleet.slos.values())]
    children += [r.urn for slo in fleet.slos.values() for r in slo.datadog.values()]
    children += [r.urn for r in fleet.fleet_children.values()]
    return pulumi.Output.all(provider.urn, *children).apply(check)


def test_sloplane_preview_shows_the_datadog_children_and_their_provider(tmp_path: Path) -> None:
    (tmp_path / "payments.yaml").write_text(PAYMENTS, encoding="utf-8")
    (tmp_path / "Pulumi.yaml").write_text("name: dd\nruntime: python\n", encoding="utf-8")
    program = f"""\
        import pulumi_datadog
        from sloplane.components import ServiceLevelObjective

        provider = pulumi_datadog.Provider("dd-prod", api_key="k", app_key="a")
        declaration = {str(tmp_path / "payments.yaml")!r}
        ServiceLevelObjective("payments", {{"declaration": declaration, "datadog_provider": provider}})
        """
    (tmp_path / "__main__.py").write_text(textwrap.dedent(program), encoding="utf-8")
    result = run_cli("preview", tmp_path)
    assert result.code == 0, result.stderr
    assert f"{SLO}  payments-datadog-slo  (provider dd-prod)" in result.stdout
    assert f"{MONITOR}  payments-datadog-monitor-page-1h  (provider dd-prod)" in result.stdout
    assert f"{DASHBOARD}  payments-datadog-dashboard  (provider dd-prod)" in result.stdout
    assert "13 resources" in result.stdout  # the provider, the component and its 11 Datadog children


def _bodies(text: str, path: str) -> list[dict[str, Any]]:
    """The request bodies `sloplane render` writes for a declaration, for one API path."""
    declaration = Declaration.model_validate(yaml.safe_load(text))
    return [request["body"] for request in datadog_requests(declaration) if request["path"] == path]
