"""The Alertmanager configuration: valid for amtool, routed as declared, maintenance windows as time intervals.

amtool (Alertmanager's own parser) is the judge of validity and routing; it is required, not
optional, because a configuration Alertmanager refuses would drop every alert on the floor.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloplane.core import names
from sloplane.core.serialize import to_yaml
from sloplane.declaration.model import Declaration
from sloplane.interop import load_paths
from sloplane.render.alertmanager import (
    UnsupportedScheduleError,
    alertmanager_config,
    cron_time_intervals,
    window_time_intervals,
)
from tests.conftest import EXAMPLES, minimal

HOUR = timedelta(hours=1)


# --- helpers --------------------------------------------------------------------------------


def _amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run amtool; its absence is a failure (the configuration would be unchecked)."""
    amtool = shutil.which("amtool")
    assert amtool is not None, "amtool is required: install Alertmanager's amtool (Debian: prometheus-alertmanager)"
    return subprocess.run([amtool, *map(str, args)], capture_output=True, text=True, timeout=30, check=False)


def _write(config: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "alertmanager.yaml"
    path.write_text(to_yaml(config), encoding="utf-8")
    return path


def _check_config(config: dict[str, Any], tmp_path: Path) -> None:
    result = _amtool("check-config", _write(config, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def _route_test(config_file: Path, **labels: str) -> str:
    """The receiver(s) amtool routes an alert with these labels to."""
    pairs = [f"{key}={value}" for key, value in labels.items()]
    result = _amtool("config", "routes", "test", f"--config.file={config_file}", *pairs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def _examples() -> list[Declaration]:
    result = load_paths([EXAMPLES])
    assert result.errors == []
    return result.declarations


def _with_examples(declaration: Declaration) -> list[Declaration]:
    """A declaration alongside the examples, replacing the example of the same name (names are unique)."""
    return [declaration, *(example for example in _examples() if example.name != declaration.name)]


def _declaration(name: str = "checkout-availability", team: str = "payments", **spec: Any) -> Declaration:
    data = yaml.safe_load(minimal(name))
    data["spec"]["owners"] = {"team": team}
    data["spec"].update(spec)
    return Declaration.model_validate(data)


def _routes(config: dict[str, Any], team: str) -> list[dict[str, Any]]:
    team_route = next(r for r in config["route"]["routes"] if r["matchers"] == [f'team="{team}"'])
    routes: list[dict[str, Any]] = team_route["routes"]
    return routes


def _slo_route(config: dict[str, Any], team: str, slo: str) -> dict[str, Any]:
    return next(r for r in _routes(config, team) if r["matchers"] == [f'slo="{slo}"'])


STAGED = {
    "stages": [{"name": "canary", "objective": 99.5}, {"name": "production"}],
    "exclusions": {
        "maintenance": [
            {"name": "weekly-db", "schedule": "0 3 * * SUN", "duration": "1h", "timeZone": "Europe/Berlin"},
            {"name": "canary-reset", "schedule": "30 22 * * FRI", "duration": "4h", "stages": ["canary"]},
        ],
        "windows": [
            {
                "name": "dc-move",
                "start": "2026-11-29T20:00:00+02:00",
                "end": "2026-11-30T06:30:00Z",
                "reason": "data-centre migration",
            }
        ],
        "emergencyChanges": [
            {
                "start": "2026-10-01T10:00:00Z",
                "end": "2026-10-01T11:00:00Z",
                "reason": "hotfix",
                "approver": "cto",
            }
        ],
    },
    "alerting": {
        "routing": {"deployment": "payments-releases", "background": "payments-oncall"},
        "deploymentSignal": 'sum(rollout_info{rollout="checkout",phase="Progressing"})',
    },
}


# --- the examples, through amtool ---------------------------------------------------------------


def test_examples_pass_amtool_check_config(tmp_path: Path) -> None:
    config = alertmanager_config(_examples())
    assert config["time_intervals"], "the examples declare a maintenance window; amtool must parse it"
    _check_config(config, tmp_path)


def test_deployment_breaches_reach_the_deployment_receiver(tmp_path: Path) -> None:
    path = _write(alertmanager_config(_examples()), tmp_path)
    labels = {"alertname": names.ALERT, "slo": "checkout-availability", "team": "payments", "severity": "page"}
    assert _route_test(path, **labels, during_deployment="true") == "payments-releases"
    assert _route_test(path, **labels, during_deployment="false") == "payments-oncall"
    assert _route_test(path, **labels, stage="canary", during_deployment="true") == "payments-releases"


def test_slos_without_receivers_and_unknown_alerts_reach_the_default(tmp_path: Path) -> None:
    path = _write(alertmanager_config(_examples()), tmp_path)
    assert _route_test(path, slo="search-latency", team="discovery", severity="ticket") == "sloplane-default"
    assert _route_test(path, alertname="Watchdog") == "sloplane-default"


def test_a_custom_default_receiver_is_declared_and_used(tmp_path: Path) -> None:
    config = alertmanager_config(_examples(), default_receiver="null")
    assert config["route"]["receiver"] == "null"
    assert {"name": "null"} in config["receivers"]
    _check_config(config, tmp_path)


def test_stage_scoped_windows_and_one_offs_pass_amtool(tmp_path: Path) -> None:
    config = alertmanager_config(_with_examples(_declaration(**STAGED)))
    _check_config(config, tmp_path)
    path = tmp_path / "alertmanager.yaml"
    common = {"slo": "checkout-availability", "team": "payments", "severity": "page"}
    assert _route_test(path, **common, stage="canary", during_deployment="true") == "payments-releases"
    assert _route_test(path, **common, stage="canary", during_deployment="false") == "payments-oncall"


def test_unusual_schedules_pass_amtool(tmp_path: Path) -> None:
    """Every shape the cron conversion produces is one Alertmanager accepts."""
    schedules = [
        ("0 3 L * *", "25h"),
        ("0 3 * * MON#2", "23h"),
        ("0 3 * * L5", "2d"),
        ("0 22 * 12 FRI", "4h"),
        ("0 22 30 * *", "4h"),
        ("0 3 1,15 * MON", "1h"),
        ("*/15 9-17 * * 1-5", "10m"),
        ("0 0 * * *", "9d"),
        ("0 3 31 2 *", "1h"),
    ]
    maintenance = [
        {"name": f"w{index}", "schedule": schedule, "duration": duration, "timeZone": "America/New_York"}
        for index, (schedule, duration) in enumerate(schedules)
    ]
    config = alertmanager_config([_declaration(exclusions={"maintenance": maintenance})])
    _check_config(config, tmp_path)


# --- the routing tree -----------------------------------------------------------------------------


def test_root_groups_by_alert_slo_stage_and_severity() -> None:
    route = alertmanager_config(_examples())["route"]
    assert route["receiver"] == "sloplane-default"
    assert route["group_by"] == ["alertname", "slo", "stage", "severity"]
    assert [r["matchers"] for r in route["routes"]] == [
        ['team="discovery"'],
        ['team="internal-tools"'],
        ['team="payments"'],
    ]
    assert all(r["continue"] is False for r in route["routes"])


def test_each_slo_routes_deployment_breaches_first_then_background() -> None:
    route = _slo_route(alertmanager_config(_examples()), "payments", "checkout-availability")
    assert route["receiver"] == "payments-oncall"
    assert route["continue"] is False
    first = route["routes"][0]
    assert first["matchers"] == ['during_deployment="true"']
    assert first["receiver"] == "payments-releases"
    assert first["continue"] is False
    assert "routes" not in _slo_route(alertmanager_config(_examples()), "payments", "checkout-deploy-success")


def test_slos_come_in_name_order_within_their_team() -> None:
    routes = _routes(alertmanager_config(_examples()), "payments")
    assert [r["matchers"] for r in routes] == [['slo="checkout-availability"'], ['slo="checkout-deploy-success"']]


def test_archived_slos_and_other_targets_get_no_route() -> None:
    archived = _declaration("old-checkout", lifecycle="archived", alerting={"routing": {"background": "gone"}})
    datadog_only = _declaration("dd-checkout", targets=["datadog"])
    silent = _declaration("quiet-checkout", alerting={"page": False, "ticket": False})
    kept = _declaration("checkout-availability")
    config = alertmanager_config([archived, datadog_only, silent, kept])
    assert [r["matchers"] for r in _routes(config, "payments")] == [['slo="checkout-availability"']]
    assert config["receivers"] == [{"name": "sloplane-default"}]


def test_receivers_are_deduplicated_sorted_stubs() -> None:
    first = _declaration("a-slo", alerting={"routing": {"deployment": "zeta", "background": "alpha"}})
    second = _declaration("b-slo", team="search", alerting={"routing": {"background": "alpha"}})
    config = alertmanager_config([second, first])
    assert config["receivers"] == [{"name": "alpha"}, {"name": "sloplane-default"}, {"name": "zeta"}]


def test_output_is_deterministic_whatever_the_input_order() -> None:
    declarations = _with_examples(_declaration(**STAGED))
    assert alertmanager_config(declarations) == alertmanager_config(list(reversed(declarations)))
    assert to_yaml(alertmanager_config(declarations)) == to_yaml(alertmanager_config(declarations))


def test_matcher_values_are_quoted() -> None:
    route = _slo_route(alertmanager_config(_examples()), "payments", "checkout-availability")
    assert route["matchers"] == ['slo="checkout-availability"']


# --- inhibition ----------------------------------------------------------------------------------


def test_a_page_inhibits_the_ticket_of_the_same_slo_and_stage() -> None:
    assert alertmanager_config(_examples())["inhibit_rules"] == [
        {
            "source_matchers": ['alertname="SLOErrorBudgetBurn"', 'severity="page"'],
            "target_matchers": ['alertname="SLOErrorBudgetBurn"', 'severity="ticket"'],
            "equal": ["slo", "stage"],
        }
    ]


def test_slos_that_name_their_tiers_alerts_get_an_inhibition_of_their_own(tmp_path: Path) -> None:
    """A migrated SLO pages as OrdersPage with severity critical: its page must still silence its ticket."""
    (tmp_path / "orders.yaml").write_text(
        minimal("orders-availability")
        + "  alerting:\n    pageAlert: {name: OrdersPage, labels: {severity: critical}}\n"
        + "    ticketAlert: {labels: {severity: warning}}\n"
    )
    result = load_paths([tmp_path / "orders.yaml"])
    assert result.errors == []
    config = alertmanager_config(_with_examples(*result.declarations))
    assert config["inhibit_rules"][1:] == [
        {
            "source_matchers": ['alertname="OrdersPage"', 'severity="critical"'],
            "target_matchers": ['alertname="SLOErrorBudgetBurn"', 'severity="warning"'],
            "equal": ["slo", "stage"],
        }
    ]
    _check_config(config, tmp_path)


# --- maintenance muting ------------------------------------------------------------------------------


def test_maintenance_windows_mute_their_slo_on_every_route() -> None:
    """Alertmanager does not inherit mute intervals, so the deployment child names them too."""
    config = alertmanager_config(_examples())
    route = _slo_route(config, "payments", "checkout-availability")
    name = "checkout-availability-weekly-db-maintenance"
    assert route["mute_time_intervals"] == [name]
    assert route["routes"][0]["mute_time_intervals"] == [name]
    assert [interval["name"] for interval in config["time_intervals"]] == [name]
    assert "mute_time_intervals" not in _slo_route(config, "payments", "checkout-deploy-success")


def test_stage_scoped_windows_mute_only_their_stage() -> None:
    config = alertmanager_config([_declaration(**STAGED)])
    route = _slo_route(config, "payments", "checkout-availability")
    everywhere = ["checkout-availability-weekly-db", "checkout-availability-dc-move"]
    canary = [*everywhere, "checkout-availability-canary-reset"]
    assert route["mute_time_intervals"] == everywhere
    deployment, stage = route["routes"]
    assert deployment["matchers"] == ['during_deployment="true"']
    assert deployment["mute_time_intervals"] == everywhere
    assert deployment["routes"] == [
        {
            "matchers": ['stage="canary"'],
            "receiver": "payments-releases",
            "continue": False,
            "mute_time_intervals": canary,
        }
    ]
    assert stage == {
        "matchers": ['stage="canary"'],
        "receiver": "payments-oncall",
        "continue": False,
        "mute_time_intervals": canary,
    }


def test_emergency_changes_are_not_muted() -> None:
    config = alertmanager_config([_declaration(**STAGED)])
    intervals = {interval["name"] for interval in config["time_intervals"]}
    assert intervals == {
        "checkout-availability-weekly-db",
        "checkout-availability-canary-reset",
        "checkout-availability-dc-move",
    }


def test_gate_freezes_are_not_muted() -> None:
    freeze = {"name": "black-friday", "schedule": "0 0 27 11 *", "duration": "4d"}
    config = alertmanager_config([_declaration(gate={"freezes": [freeze]})])
    assert config["time_intervals"] == []


def test_interval_names_stay_unique() -> None:
    """`a` + window `b-c` and `a-b` + window `c` would both be `a-b-c`; Alertmanager refuses duplicates."""
    window = {"schedule": "0 3 * * SUN", "duration": "1h"}
    first = _declaration("a", exclusions={"maintenance": [{"name": "b-c", **window}]})
    second = _declaration("a-b", exclusions={"maintenance": [{"name": "c", **window}]})
    config = alertmanager_config([first, second])
    assert [interval["name"] for interval in config["time_intervals"]] == ["a-b-c", "a-b-c-2"]
    assert _slo_route(config, "payments", "a-b")["mute_time_intervals"] == ["a-b-c-2"]


def test_windows_that_never_occur_are_left_out() -> None:
    never = {"name": "feb-31", "schedule": "0 3 31 2 *", "duration": "1h"}
    config = alertmanager_config([_declaration(exclusions={"maintenance": [never]})])
    assert config["time_intervals"] == []
    assert "mute_time_intervals" not in _slo_route(config, "payments", "checkout-availability")


# --- cron conversion ------------------------------------------------------------------------------------


def test_weekly_hour() -> None:
    assert cron_time_intervals("0 3 * * SUN", HOUR) == [
        {"times": [{"start_time": "03:00", "end_time": "04:00"}], "weekdays": ["sunday"], "location": "UTC"}
    ]


def test_time_zone_is_the_location() -> None:
    (entry,) = cron_time_intervals("0 3 * * SUN", HOUR, "Europe/Berlin")
    assert entry["location"] == "Europe/Berlin"


def test_a_window_past_midnight_continues_on_the_next_weekday() -> None:
    assert cron_time_intervals("30 22 * * FRI", 4 * HOUR) == [
        {"times": [{"start_time": "22:30", "end_time": "24:00"}], "weekdays": ["friday"], "location": "UTC"},
        {"times": [{"start_time": "00:00", "end_time": "02:30"}], "weekdays": ["saturday"], "location": "UTC"},
    ]


def test_saturday_night_continues_on_sunday() -> None:
    """Cron's week wraps from Saturday (6) to Sunday (0)."""
    second = cron_time_intervals("0 23 * * SAT", 2 * HOUR)[0]
    assert second == {
        "times": [{"start_time": "00:00", "end_time": "01:00"}],
        "weekdays": ["sunday"],
        "location": "UTC",
    }


def test_steps_give_one_range_per_start() -> None:
    (entry,) = cron_time_intervals("0 */6 * * *", timedelta(minutes=30))
    assert entry["times"] == [
        {"start_time": "00:00", "end_time": "00:30"},
        {"start_time": "06:00", "end_time": "06:30"},
        {"start_time": "12:00", "end_time": "12:30"},
        {"start_time": "18:00", "end_time": "18:30"},
    ]
    assert set(entry) == {"times", "location"}


def test_lists_and_ranges_of_minutes_and_hours() -> None:
    (entry,) = cron_time_intervals("0,30 9-10 * * *", timedelta(minutes=10))
    starts = [span["start_time"] for span in entry["times"]]
    assert starts == ["09:00", "09:30", "10:00", "10:30"]


def test_overlapping_starts_merge_into_one_range() -> None:
    (entry,) = cron_time_intervals("*/15 9 * * MON-FRI", timedelta(minutes=20))
    assert entry["times"] == [{"start_time": "09:00", "end_time": "10:05"}]
    assert entry["weekdays"] == ["monday:friday"]


def test_a_freeze_of_four_days_covers_whole_days_of_the_month() -> None:
    assert cron_time_intervals("0 0 27 11 *", timedelta(days=4), "America/New_York") == [
        {"days_of_month": ["27:30"], "months": ["november"], "location": "America/New_York"}
    ]


def test_a_long_weekly_window_has_full_days_in_between() -> None:
    entries = cron_time_intervals("0 22 * * FRI", timedelta(days=3))
    assert {"weekdays": ["sunday", "saturday"], "location": "UTC"} in entries
    assert {
        "times": [{"start_time": "00:00", "end_time": "22:00"}],
        "weekdays": ["monday"],
        "location": "UTC",
    } in entries
    assert len(entries) == 3


def test_a_window_of_a_week_or_more_mutes_all_the_time() -> None:
    assert cron_time_intervals("0 0 * * MON", timedelta(days=7)) == [{"location": "UTC"}]


def test_days_of_the_month_shift_into_the_next_month() -> None:
    entries = cron_time_intervals("0 22 31 * *", 4 * HOUR)
    after = next(e for e in entries if e["times"][0]["start_time"] == "00:00")
    assert after["days_of_month"] == ["1"]
    # the 1st after every month with a 31st: February after January, ... January after December
    assert after["months"] == ["january:february", "april", "june", "august:september", "november"]


def test_the_last_day_of_the_month_shifts_exactly() -> None:
    entries = cron_time_intervals("0 3 L * *", 25 * HOUR)
    assert entries == [
        {"times": [{"start_time": "03:00", "end_time": "24:00"}], "days_of_month": ["-1"], "location": "UTC"},
        {"times": [{"start_time": "00:00", "end_time": "04:00"}], "days_of_month": ["1"], "location": "UTC"},
    ]


def test_the_nth_weekday_is_a_week_of_days() -> None:
    (entry,) = cron_time_intervals("0 3 * * MON#2", HOUR)
    assert entry["weekdays"] == ["monday"]
    assert entry["days_of_month"] == ["8:14"]


def test_either_day_field_fires_when_both_are_restricted() -> None:
    entries = cron_time_intervals("0 3 1,15 * MON", HOUR)
    assert [{k: v for k, v in e.items() if k != "times"} for e in entries] == [
        {"weekdays": ["monday"], "location": "UTC"},
        {"days_of_month": ["1", "15"], "location": "UTC"},
    ]


def test_a_month_restricted_weekday_window_spills_into_the_next_month() -> None:
    entries = cron_time_intervals("0 22 * 12 FRI", 4 * HOUR)
    saturdays = [{k: v for k, v in e.items() if k != "times"} for e in entries if e["weekdays"] == ["saturday"]]
    assert {"weekdays": ["saturday"], "days_of_month": ["2:31"], "months": ["december"], "location": "UTC"} in saturdays
    assert {"weekdays": ["saturday"], "days_of_month": ["1"], "months": ["january"], "location": "UTC"} in saturdays


def test_random_schedules_are_refused() -> None:
    with pytest.raises(UnsupportedScheduleError, match="random"):
        cron_time_intervals("R 3 * * *", HOUR)


# --- one-off windows --------------------------------------------------------------------------------------


def test_a_one_off_window_over_two_days_is_split_per_day_in_utc() -> None:
    start = datetime(2026, 11, 29, 20, 0, tzinfo=timezone(timedelta(hours=2)))
    end = datetime(2026, 11, 30, 6, 30, tzinfo=UTC)
    assert window_time_intervals(start, end) == [
        {
            "times": [{"start_time": "18:00", "end_time": "24:00"}],
            "days_of_month": ["29"],
            "months": ["november"],
            "years": ["2026"],
            "location": "UTC",
        },
        {
            "times": [{"start_time": "00:00", "end_time": "06:30"}],
            "days_of_month": ["30"],
            "months": ["november"],
            "years": ["2026"],
            "location": "UTC",
        },
    ]


def test_full_days_of_a_one_off_window_merge() -> None:
    entries = window_time_intervals(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 4, 12, 0, tzinfo=UTC))
    assert entries[0] == {"days_of_month": ["1:3"], "months": ["march"], "years": ["2026"], "location": "UTC"}
    assert entries[1]["times"] == [{"start_time": "00:00", "end_time": "12:00"}]


def test_seconds_round_outwards_to_whole_minutes() -> None:
    (entry,) = window_time_intervals(
        datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC), datetime(2026, 3, 1, 10, 5, 1, tzinfo=UTC)
    )
    assert entry["times"] == [{"start_time": "10:00", "end_time": "10:06"}]
