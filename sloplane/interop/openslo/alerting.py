"""OpenSLO alert policies as the SLO's own burn-rate alerts and receiver.

A burn-rate AlertCondition is one alert: `threshold` the factor, `lookbackWindow` the long window
(its short window a twelfth of it, the Workbook's ratio), `alertAfter` its `for:`, its severity the
tier. Conditions that are exactly the Workbook's rows for the period (what our export writes) keep
the default table, which follows the period if it changes. The first notification target names the
SLO's receiver. A policy or condition in a file not given is skipped with a warning; what does not
map (a condition that fires below a burn rate) is warned about, never silently dropped.

Separate from `slo` because alerting is its own part of an SLO and of the OpenSLO spec.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from sloplane.core.budget import burn_rate_alerts
from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.policy import AlertWindow
from sloplane.declaration.validation import did_you_mean
from sloplane.interop.openslo.catalog import Catalog
from sloplane.interop.openslo.models import OAlertConditionSpec, OAlertPolicySpec, OSLOSpec
from sloplane.interop.openslo.units import parse_shorthand, shorthand_to_duration

_PAGE_SEVERITIES = frozenset({"page", "critical", "sev1", "sev-1", "p1", "high", "urgent"})


def _unresolved(kind: str, name: str, catalog: Catalog) -> str:
    known = sorted(catalog.objects.get(kind, {}))
    return (
        f"refers to {kind} '{name}', which is in none of the files given{did_you_mean(name, known)}: "
        "its alerts are not imported (give its file too)"
    )


def _policies(
    spec: OSLOSpec, catalog: Catalog, warnings: list[tuple[Loc, str]]
) -> Iterator[tuple[Loc, OAlertPolicySpec]]:
    """Each alert policy of the SLO, inline or referenced, with where it is written.

    OpenSLO lets a policy live in another file; one that was not given is skipped with a warning
    (the SLO itself is complete without it), where an unknown SLI is an error.
    """
    for index, item in enumerate(spec.alert_policies):
        loc: Loc = ("spec", "alertPolicies", index)
        if item.spec is not None:
            yield loc, item.spec
            continue
        found = catalog.objects.get("AlertPolicy", {}).get(str(item.alert_policy_ref))
        if found is None:
            warnings.append((loc, _unresolved("AlertPolicy", str(item.alert_policy_ref), catalog)))
            continue
        yield loc, found.spec


def _conditions(
    policy: OAlertPolicySpec, loc: Loc, catalog: Catalog, warnings: list[tuple[Loc, str]]
) -> Iterator[tuple[Loc, OAlertConditionSpec]]:
    for position, condition in enumerate(policy.conditions):
        where: Loc = (*loc, "conditions", position)
        if condition.spec is not None:
            yield where, condition.spec
            continue
        found = catalog.objects.get("AlertCondition", {}).get(str(condition.condition_ref))
        if found is None:
            warnings.append((where, _unresolved("AlertCondition", str(condition.condition_ref), catalog)))
            continue
        yield where, found.spec


def _receiver(policy: OAlertPolicySpec) -> str | None:
    """The first notification target's name: the Alertmanager receiver sloplane routes the SLO to."""
    for target in policy.notification_targets:
        if target.target_ref is not None:
            return target.target_ref
        if target.metadata is not None:
            return target.metadata.name
    return None


def _workbook_rows(windows: list[dict[str, Any]], period: timedelta | None) -> bool:
    """Whether the conditions are exactly the Workbook's rows of their tiers for the period (what our
    export writes): then the SLO keeps the default table, which follows the period if it changes."""
    if period is None:
        return False
    tiers = {window["tier"] for window in windows}
    default = {
        (alert.tier.value, alert.long_window, alert.short_window, alert.factor, timedelta(0))
        for alert in burn_rate_alerts(period)
        if alert.tier.value in tiers
    }
    try:
        declared = {
            (
                w["tier"],
                (row := AlertWindow.model_validate(w)).long,
                row.reset_window,
                row.factor,
                row.for_ or timedelta(0),
            )
            for w in windows
        }
    except ValidationError:
        return False
    return declared == default and len(declared) == len(windows)


def _unmapped_switches(policy: OAlertPolicySpec, loc: Loc, warnings: list[tuple[Loc, str]]) -> None:
    """A policy's no-data and resolved notifications have no counterpart in burn-rate alerts: said, not dropped."""
    if policy.alert_when_no_data:
        warnings.append(
            (
                loc,
                "alertWhenNoData is not imported: burn-rate alerts only; the gate's onNoData decides releases",
            )
        )
    if policy.alert_when_resolved:
        warnings.append(
            (loc, "alertWhenResolved is not imported: resolved notifications are the receiver's send_resolved setting")
        )


def alerting_of(
    spec: OSLOSpec, catalog: Catalog, warnings: list[tuple[Loc, str]], period: timedelta | None
) -> dict[str, Any]:
    """Our `alerting` from the SLO's alert policies; {} (the Workbook's defaults) when it has none.

    A burn-rate condition is one alert: `threshold` the burn-rate factor, `lookbackWindow` the long
    window (the short one is a twelfth of it), `alertAfter` its `for:`; its severity picks the tier.
    The first notification target becomes the SLO's receiver. What does not map is warned about.
    """
    windows: list[dict[str, Any]] = []
    receivers: list[str] = []
    for loc, policy in _policies(spec, catalog, warnings):
        _unmapped_switches(policy, loc, warnings)
        receiver = _receiver(policy)
        if receiver is not None and receiver not in receivers:
            receivers.append(receiver)
        for where, found in _conditions(policy, loc, catalog, warnings):
            condition = found.condition
            if condition.op in ("lt", "lte"):
                warnings.append((where, f"a burn-rate condition with op '{condition.op}' never pages: not imported"))
                continue
            tier = "page" if found.severity.lower() in _PAGE_SEVERITIES else "ticket"
            window: dict[str, Any] = {
                "tier": tier,
                "long": shorthand_to_duration(condition.lookback_window, (*where, "condition", "lookbackWindow")),
                "factor": condition.threshold,
            }
            if condition.alert_after and parse_shorthand(condition.alert_after, where)[0] > 0:
                window["for"] = shorthand_to_duration(condition.alert_after, (*where, "condition", "alertAfter"))
            windows.append(window)
    if not windows:
        return {}
    alerting: dict[str, Any] = {
        "page": any(w["tier"] == "page" for w in windows),
        "ticket": any(w["tier"] == "ticket" for w in windows),
    }
    if not _workbook_rows(windows, period):
        alerting["windows"] = windows
    if receivers:
        alerting["routing"] = {"deployment": receivers[0], "background": receivers[0]}
        if len(receivers) > 1:
            warnings.append(
                (
                    ("spec", "alertPolicies"),
                    f"several notification targets ({', '.join(receivers)}): "
                    f"sloplane routes the SLO to one receiver, '{receivers[0]}'",
                )
            )
    return alerting
