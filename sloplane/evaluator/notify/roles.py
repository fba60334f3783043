"""Escalation by ownership: who an incident is for, by role, and the rule that says so.

The receivers file's `roles` (see `config.py`) turns routing by incident class into routing to owners:

* a deployment-attributed breach goes to the SLO's **dev** owner (rule `deployment-attributed`): the release
  is the likely cause and its authors roll it back;
* a background breach goes to the SLO's **ops** owner (rule `background`): rolling back will not help;
* a breach the gate attributed to a declared dependency (a `dependency` reason naming the dependency's
  SLO) goes to the **ops** owner of the dependency's declaration (rule `dependency`), who can fix it, on one
  dedup key per dependency (`sloplane/dependency/<slo>`), so every consumer's report lands on one incident;
* an exhausted budget (a `budget-exhausted` reason) also goes to the SLO's **product** owner (rule
  `budget-exhausted`), who owns the error budget policy's consequences; when the breach is attributed to
  dependencies all owned by other teams, the rule is `budget-spent-by-dependency` and the notification says
  so: the Workbook's "a team may continue shipping when another team's failure spent the budget" applies, and
  the gate does not apply it by itself (below), so the product owner is told how to (a break-glass naming it).

Every route carries its role, rule, team, owner contact and where its receiver came from, and the
notification carries them as `routing` (`routed_notice`), so a receiver can tell why it was told.

Whether the exemption belongs in the gate as well: not as a rule over one decision. The gate sees a
dependency only while it burns now, and then already answers `inconclusive` (never a rollback, never a
pass: a release cannot be judged during a dependency's outage). Once the dependency has recovered the
budget stays spent and the gate cannot tell from the present who spent it; exempting the team then needs
the period's bad events attributed over time (rollups or the decision log), which a decision step does
not have. So the exemption is told to the product owner here, and `budget_exemption` stays a pure
function of reasons and the fleet that a history-aware step could call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sloplane.declaration.model import Contact, Declaration
from sloplane.evaluator.notify.classify import Incident, IncidentClass
from sloplane.evaluator.notify.config import ReceiversConfig, RoleReceivers, Roles
from sloplane.evaluator.notify.events import SUMMARY_LIMIT, Notice

BUDGET_EXHAUSTED = "budget-exhausted"
DEPENDENCY = "dependency"


class Role(StrEnum):
    """The owner an incident is routed to (`spec.owners`' dev, ops and product)."""

    DEV = "dev"
    OPS = "ops"
    PRODUCT = "product"


class Rule(StrEnum):
    """Why a route was chosen."""

    DEPLOYMENT = "deployment-attributed"
    BACKGROUND = "background"
    DEPENDENCY = "dependency"
    BUDGET_EXHAUSTED = "budget-exhausted"
    BUDGET_SPENT_BY_DEPENDENCY = "budget-spent-by-dependency"


_CLASS_DEFAULT = {Role.DEV: "deployment", Role.OPS: "background"}
"""The pre-roles `defaults` key each role falls back to; product has none."""


@dataclass(frozen=True)
class Exemption:
    """An exhausted budget spent by other teams' dependencies: their failure, not this team's releases."""

    team: str
    """The team whose budget is spent."""
    dependencies: tuple[tuple[str, str], ...]
    """(dependency SLO, its owning team) the breach is attributed to, all of other teams."""

    def sentence(self) -> str:
        """What the product owner is told."""
        spent_by = ", ".join(f"'{slo}' of team {team}" for slo, team in self.dependencies)
        return (
            f"the budget was spent by the dependency {spent_by}: under the error budget policy team {self.team} may "
            "continue shipping (another team's failure spent the budget); the gate holds releases while the "
            "dependency burns and, once it recovers, keeps failing budget-exhausted until the product owner lets "
            "each release through with a break-glass naming this exemption"
        )

    def to_json(self) -> dict[str, Any]:
        """As notifications carry it."""
        return {
            "team": self.team,
            "dependencies": [{"slo": slo, "team": team} for slo, team in self.dependencies],
            "policyExempts": True,
            "gateExempts": False,
        }


def attributed_dependencies(reasons: Iterable[Mapping[str, Any]]) -> list[str]:
    """The dependency SLOs `dependency` reasons name (their value is `slo` or `slo/stage`), first seen first."""
    named = [str(r.get("values", {}).get(DEPENDENCY) or "") for r in reasons if r.get("code") == DEPENDENCY]
    return list(dict.fromkeys(key.split("/", 1)[0] for key in named if key))


def budget_exemption(
    slo: str, reasons: Iterable[Mapping[str, Any]], fleet: Mapping[str, Declaration]
) -> Exemption | None:
    """The Workbook's exemption for one decision's reasons, or None.

    It applies when the budget is exhausted and the breach is attributed to dependencies every one of which
    another team owns (`spec.owners.team`); a dependency of the same team, or one the fleet does not declare,
    means this team may have spent the budget itself, and the freeze stands.
    """
    listed = list(reasons)
    declaration = fleet.get(slo)
    if declaration is None or not any(r.get("code") == BUDGET_EXHAUSTED for r in listed):
        return None
    team = declaration.spec.owners.team
    owners: list[tuple[str, str]] = []
    for name in attributed_dependencies(listed):
        depended = fleet.get(name)
        if depended is None or depended.spec.owners.team == team:
            return None
        owners.append((name, depended.spec.owners.team))
    return Exemption(team, tuple(owners)) if owners else None


@dataclass(frozen=True)
class RoleRoute:
    """One notification an incident gives: to whom, in which role, by which rule."""

    receiver: str | None
    """None: neither the declaration, the role nor `defaults` names one (counted as unrouted)."""
    role: Role
    rule: Rule
    team: str
    """The team whose role holder this is (the dependency's team for `dependency`)."""
    slo: str
    """The SLO whose owners these are (the dependency's SLO for `dependency`)."""
    via: str | None
    """Where the receiver came from: `spec.alerting.routing.deployment`, `roles.dev.teams.checkout`,
    `roles.ops.default`, `defaults.background`."""
    owner: Contact | None
    """The declaration's contact for the role, when it names one."""
    why: str
    dedup_key: str
    held: bool = False
    """The incident's own route, held for grouping as before (deployment incidents with a release)."""
    exemption: Exemption | None = None

    def to_json(self) -> dict[str, Any]:
        """The `routing` object of the notification."""
        return {
            "role": self.role.value,
            "rule": self.rule.value,
            "team": self.team,
            "slo": self.slo,
            "receiver": self.receiver,
            "receiverFrom": self.via,
            "owner": None if self.owner is None else {"name": self.owner.name, "contact": self.owner.contact},
            "why": self.why,
            "exemption": None if self.exemption is None else self.exemption.to_json(),
        }


def _receiver(
    role: Role, declaration: Declaration, config: ReceiversConfig, roles: Roles
) -> tuple[str | None, str | None]:
    """(receiver, where it came from): the SLO's declared routing, the role's team, its default, `defaults`."""
    kind = _CLASS_DEFAULT.get(role)
    if kind is not None:
        declared = getattr(declaration.spec.alerting.routing, kind)
        if declared is not None:
            return declared, f"spec.alerting.routing.{kind}"
    by_role: RoleReceivers = getattr(roles, role.value)
    found = by_role.for_team(declaration.spec.owners.team)
    if found is not None:
        return found[0], f"roles.{role.value}.{found[1]}"
    if kind is not None and getattr(config.defaults, kind) is not None:
        return getattr(config.defaults, kind), f"defaults.{kind}"
    return None, None


def _route(
    role: Role, rule: Rule, declaration: Declaration, config: ReceiversConfig, *, why: str, dedup_key: str, **more: Any
) -> RoleRoute:
    receiver, via = _receiver(role, declaration, config, config.roles or Roles())
    owners = declaration.spec.owners
    return RoleRoute(
        receiver=receiver,
        role=role,
        rule=rule,
        team=owners.team,
        slo=declaration.name,
        via=via,
        owner=getattr(owners, role.value),
        why=why,
        dedup_key=dedup_key,
        **more,
    )


def role_routes(incident: Incident, fleet: Mapping[str, Declaration], config: ReceiversConfig) -> list[RoleRoute]:
    """Every route an incident takes by ownership role (see the module docstring); pure.

    An SLO the fleet does not declare has no owners to route to: no routes (the notifier then routes it by
    class, as without roles). A dependency the fleet does not declare falls back to the SLO's own ops.
    """
    declaration = fleet.get(incident.slo)
    if declaration is None:
        return []
    team = declaration.spec.owners.team
    routes: list[RoleRoute] = []
    if incident.kind is IncidentClass.DEPLOYMENT:
        routes.append(
            _route(
                Role.DEV,
                Rule.DEPLOYMENT,
                declaration,
                config,
                why=f"the breach is attributed to release {incident.release or 'in progress'}: its developers act",
                dedup_key=incident.dedup_key,
                held=incident.group is not None,
            )
        )
    else:
        depended = [(name, fleet.get(name)) for name in attributed_dependencies(incident.reasons)]
        for name, dependency in depended:
            if dependency is not None:
                routes.append(
                    _route(
                        Role.OPS,
                        Rule.DEPENDENCY,
                        dependency,
                        config,
                        why=f"SLO '{incident.slo}' of team {team} breaches and the gate attributes it to dependency "
                        f"'{name}' of team {dependency.spec.owners.team}",
                        dedup_key=f"sloplane/dependency/{name}",
                    )
                )
        if not any(dependency is not None for _, dependency in depended):
            routes.append(
                _route(
                    Role.OPS,
                    Rule.BACKGROUND,
                    declaration,
                    config,
                    why="the breach is not attributed to a release: its operators look; rolling back will not help",
                    dedup_key=incident.dedup_key,
                )
            )
    if any(reason.get("code") == BUDGET_EXHAUSTED for reason in incident.reasons):
        exemption = budget_exemption(incident.slo, incident.reasons, fleet)
        why = f"the error budget of SLO '{incident.slo}' is exhausted: " + (
            exemption.sentence() if exemption is not None else "the error budget policy's release freeze applies"
        )
        routes.append(
            _route(
                Role.PRODUCT,
                Rule.BUDGET_EXHAUSTED if exemption is None else Rule.BUDGET_SPENT_BY_DEPENDENCY,
                declaration,
                config,
                why=why,
                dedup_key=f"sloplane/{incident.service}/budget-exhausted",
                exemption=exemption,
            )
        )
    return routes


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def routed_notice(notice: Notice, route: RoleRoute) -> Notice:
    """A notice as sent on one route: its dedup key, a summary that says the role, and `routing` in the details
    (PagerDuty's `custom_details.routing`, each webhook incident's `routing`)."""
    routing = route.to_json()
    if route.role is Role.PRODUCT:
        summary = f"[product · {route.rule.value}] {notice.component}: {route.why}"
        severity = "warning"  # the budget's owner decides on the policy; nothing to roll back this minute
    else:
        summary = f"[{route.role.value} · {route.rule.value}] {notice.summary}"
        severity = notice.severity
    return replace(
        notice,
        dedup_key=route.dedup_key,
        summary=_clip(summary),
        severity=severity,
        custom_details={**notice.custom_details, "routing": routing},
        incidents=[{**member, "routing": routing} for member in notice.incidents],
    )


def war_room_routed(notice: Notice) -> Notice:
    """A war room's notice under roles: its members' held routes are all their dev owners'."""
    routing = {
        "role": Role.DEV.value,
        "rule": Rule.DEPLOYMENT.value,
        "why": "several services fail on one release: one war room for the developers of each",
    }
    return replace(
        notice,
        custom_details={**notice.custom_details, "routing": routing},
        incidents=[{**member, "routing": routing} for member in notice.incidents],
    )
