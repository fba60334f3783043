"""A Sloth SLO's alerting and SLO plugins as our `alerting`, `interval` and warnings (see `sloth`'s labels)."""

from __future__ import annotations

from typing import Any

from sloplane.core.durations import format_duration
from sloplane.declaration.checks import RESERVED_ALERT_LABELS
from sloplane.declaration.diagnostics import Loc
from sloplane.interop.sloth_fields import SloDraft, as_text, mapping_at, strings_at, warn_unknown
from sloplane.interop.sloth_windows import DEFAULT_WINDOWS

_SUBJECT_LABELS = frozenset({"slo", "service", "stage"})
_OURS_ON_ALERTS = RESERVED_ALERT_LABELS - _SUBJECT_LABELS
"""Labels sloplane sets on alerts that a tier's labels may still override (the routing labels Sloth users keep)."""
_INERT_PLUGINS = (
    "sloth.dev/core/debug/v1",
    "sloth.dev/core/noop/v1",
    "sloth.dev/contrib/denominator_corrected_rules/v1",
)
_DEFAULT_PLUGINS = ("sli_rules", "metadata_rules", "alert_rules", "validate")
_VICTORIA = "sloth.dev/contrib/validate_victoria_metrics/v1"
_RULE_INTERVALS = "sloth.dev/contrib/rule_intervals/v1"


def _tier(slo: SloDraft, alerting: dict[str, Any], key: str, ours: str, severity: str) -> dict[str, Any]:
    """One tier's `disable`, labels and annotations; `sloth_severity` keeps Sloth's routing label."""
    loc = slo.loc("alerting", key)
    tier = mapping_at(alerting.get(key), loc, key)
    warn_unknown(tier, ("disable", "labels", "annotations"), loc, slo.warnings)
    labels = {"sloth_severity": severity, **strings_at(tier.get("labels"), (*loc, "labels"), "labels")}
    annotations = strings_at(tier.get("annotations"), (*loc, "annotations"), "annotations")
    slo.origin(("spec", "alerting", ours), loc)
    return {"disabled": tier.get("disable") is True, "labels": labels, "annotations": annotations}


def alerting_of(slo: SloDraft, merged: dict[str, str], sloth_id: str) -> None:
    keys = slo.group.keys
    loc = slo.loc("alerting")
    alerting = mapping_at(slo.raw.get("alerting"), loc, "alerting")
    warn_unknown(alerting, ("name", "labels", "annotations", keys.page_alert, keys.ticket_alert), loc, slo.warnings)
    own = strings_at(alerting.get("labels"), (*loc, "labels"), "labels")
    for key in own:
        slo.origin(("spec", "alerting", "labels", key), (*loc, "labels", key))
    identity = {
        "sloth_id": sloth_id,
        "sloth_service": as_text(slo.group.spec.get("service")),
        "sloth_slo": as_text(slo.raw.get("name")),
    }
    labels = {**merged, **identity, **own}
    page = _tier(slo, alerting, keys.page_alert, "pageAlert", "page")
    ticket = _tier(slo, alerting, keys.ticket_alert, "ticketAlert", "ticket")
    for key in [key for key in labels if key in _OURS_ON_ALERTS]:
        value = labels.pop(key)
        for tier in (page, ticket):
            tier["labels"].setdefault(key, value)
    for key in (key for key in labels if key in _SUBJECT_LABELS):
        slo.warnings.append(
            (loc, f"label '{key}' is sloplane's own on every series: Sloth's value '{labels[key]}' is not kept")
        )
    result: dict[str, Any] = {
        "page": not page["disabled"],
        "ticket": not ticket["disabled"],
        "labels": {key: value for key, value in labels.items() if key not in _SUBJECT_LABELS},
        "annotations": strings_at(alerting.get("annotations"), (*loc, "annotations"), "annotations"),
        "pageAlert": {"labels": page["labels"], "annotations": page["annotations"]},
        "ticketAlert": {"labels": ticket["labels"], "annotations": ticket["annotations"]},
    }
    name = alerting.get("name")
    if name:
        result["name"] = as_text(name)
    elif result["page"] or result["ticket"]:
        slo.warnings.append(
            (loc, "Sloth requires 'alerting.name' for enabled alerts; imported with sloplane's default name")
        )
    windows = slo.group.windows
    if windows.period != DEFAULT_WINDOWS.period:
        slo.data["spec"]["window"] = format_duration(windows.period)
    if windows.declared():
        result["windows"] = windows.declared()
    slo.data["spec"]["alerting"] = result
    slo.origin(("spec", "alerting", "name"), (*loc, "name"))
    slo.origin(("spec", "alerting", "annotations"), (*loc, "annotations"))
    slo.origin(("spec", "alerting"), loc)


def apply_slo_plugins(slo: SloDraft, chain: list[tuple[Any, Loc]]) -> None:
    """SLO plugins: the rule interval is ours to keep; others that change the rules are reported."""
    for plugin, loc in chain:
        plugin_id = plugin.get("id") if isinstance(plugin, dict) else None
        if not isinstance(plugin_id, str) or plugin_id in _INERT_PLUGINS:
            continue
        if plugin_id.startswith("sloth.dev/core/") and any(part in plugin_id for part in _DEFAULT_PLUGINS):
            continue
        if plugin_id == _RULE_INTERVALS:
            config = plugin.get("config")
            interval = config.get("interval") if isinstance(config, dict) else None
            default = interval.get("default") if isinstance(interval, dict) else None
            if default:
                slo.data["spec"]["interval"] = as_text(default)
                slo.origin(("spec", "interval"), (*loc, "config", "interval", "default"))
            continue
        if plugin_id == _VICTORIA:  # MetricsQL: rules promtool and Prometheus refuse, so nothing to render
            slo.problems.append(((*loc, "id"), "queries are VictoriaMetrics MetricsQL, which sloplane cannot render"))
            continue
        message = f"SLO plugin '{plugin_id}' changes the rules Sloth generates; sloplane does not carry it over"
        slo.warnings.append(((*loc, "id"), message))


def plugin_chain(value: Any, loc: Loc) -> list[tuple[Any, Loc]]:
    plugins = value.get("chain") if isinstance(value, dict) else None
    return [(plugin, (*loc, "chain", i)) for i, plugin in enumerate(plugins)] if isinstance(plugins, list) else []
