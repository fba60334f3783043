"""How a burn-rate alert of an SLO is known to the systems that read it: its name and its severity.

The rules name each tier's alerts (`alerting.name`, `pageAlert.name`, default SLOErrorBudgetBurn)
and may give a tier its own `severity` (a Sloth migration keeps `severity: critical`). Alertmanager
inhibition, Grafana's alert panels and the generated promtool tests must match exactly those, so
they all ask here rather than assuming the default name and `page`/`ticket`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sloplane.core import names
from sloplane.core.budget import Tier
from sloplane.declaration.model import Declaration
from sloplane.semantics.promql import quote


@dataclass(frozen=True, order=True)
class AlertIdentity:
    """What a tier's alerts carry: `alertname` and `severity`."""

    name: str
    severity: str


def alert_identity(declaration: Declaration, tier: Tier) -> AlertIdentity:
    """The name and severity of one tier's alerts of an SLO."""
    alerting = declaration.spec.alerting
    severity = alerting.tier_alert(tier).labels.get("severity", tier.value)
    return AlertIdentity(alerting.alert_name(tier, names.ALERT), severity)


def alert_names(declarations: Iterable[Declaration]) -> list[str]:
    """Every alert name the SLOs' enabled tiers use, sorted (the default name when none are enabled)."""
    found = {
        alert_identity(declaration, tier).name
        for declaration in declarations
        for tier in declaration.spec.alerting.enabled_tiers()
    }
    return sorted(found) or [names.ALERT]


def alertname_matchers(alert_name_list: list[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """PromQL matchers for any of the names: an equality for one (the common case), a regex for several."""
    if len(alert_name_list) == 1:
        return {"alertname": alert_name_list[0]}, ()
    return {}, (f"alertname=~{quote('|'.join(alert_name_list))}",)
