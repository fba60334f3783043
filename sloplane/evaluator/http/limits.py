"""What a token limited to services or teams may reach: which SLOs, which services, which controls.

A limited token (`auth.TokenEntry.services`/`teams`) reaches an SLO when the SLO's `spec.service` is
one of its services or its `spec.owners.team` one of its teams. Everything else follows from that,
decided here once so that every route refuses alike:

- **acting on a service** (a gate for every SLO of it, a freeze, an incident) needs the service to be
  one of the token's services, or every SLO declared for it to be within its teams: a freeze stops
  every SLO of the service, so one team may not freeze a service another team's SLOs share;
- **seeing a service** (a freeze or an incident in a list) needs it named by the token, or one SLO of
  it within its teams;
- **every service at once** (a global freeze or incident, lifting or resolving one) needs a token
  that is not limited: nobody's CI runner may stop everybody's releases;
- a name that is declared nowhere is not within any limit: a limited token is refused for it as for
  another team's SLO (and is never told which names exist through a "did you mean"); the caller's
  name is repeated as a bounded `repr`, so a control character in it reaches no log line raw.

Pure: summaries in (`GateService.slos()`: name, service, team), refusals out. The routes turn a
`Refusal` into a 403 and count it by its `reason` (`sloplane_auth_refusals_total`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sloplane.core.text import excerpt
from sloplane.evaluator.http.auth import Principal


class RefusalReason(StrEnum):
    """Why a request was refused: the label of `sloplane_auth_refusals_total` (a closed set, so no label
    value comes from a caller)."""

    UNAUTHENTICATED = "unauthenticated"
    """No token, or one the tokens files do not know (401)."""
    SCOPE = "scope"
    """The token lacks the scope the route needs."""
    OTHER_SLO = "other-slo"
    """An SLO of a service and team the token is not limited to."""
    OTHER_SERVICE = "other-service"
    """A service that is not (wholly) the token's."""
    UNDECLARED = "undeclared"
    """An SLO or service declared nowhere, asked about with a limited token."""
    EVERY_SERVICE = "every-service"
    """A freeze or incident covering every service, asked for with a limited token."""


@dataclass(frozen=True)
class Refusal:
    """A 403: the counter's reason and the sentence the caller reads."""

    reason: RefusalReason
    detail: str


class Ownership:
    """Each declared SLO's service and team, and each service's SLOs: what limits are checked against."""

    def __init__(self, summaries: Iterable[Mapping[str, object]]) -> None:
        self._owner: dict[str, tuple[str, str]] = {}
        self._by_service: dict[str, list[str]] = {}
        for summary in summaries:
            name, service, team = (
                str(summary["name"]),
                str(summary.get("service") or ""),
                str(summary.get("team") or ""),
            )
            self._owner[name] = (service, team)
            self._by_service.setdefault(service, []).append(name)

    def owner(self, slo: str) -> tuple[str, str] | None:
        """(service, team) of a declared SLO; None for a name declared nowhere."""
        return self._owner.get(slo)

    def service_of(self, slo: str) -> str | None:
        """A declared SLO's service."""
        owner = self._owner.get(slo)
        return None if owner is None else owner[0]

    def slos_of(self, service: str) -> list[str]:
        """The SLOs declared for a service (none: not a declared service)."""
        return self._by_service.get(service, [])

    def slos_of_teams(self, teams: Iterable[str]) -> list[str]:
        """The SLOs these teams own, by name."""
        wanted = frozenset(teams)
        return sorted(name for name, (_, team) in self._owner.items() if team in wanted)


def reaches_slo(principal: Principal, owners: Ownership, slo: str) -> bool:
    """Whether the token may see and act on this SLO."""
    if not principal.limited:
        return True
    owner = owners.owner(slo)
    return owner is not None and (owner[0] in principal.services or owner[1] in principal.teams)


def sees_service(principal: Principal, owners: Ownership, service: str) -> bool:
    """Whether a freeze or incident of this service belongs in the token's lists."""
    if not principal.limited or service in principal.services:
        return True
    return any(reaches_slo(principal, owners, slo) for slo in owners.slos_of(service))


def acts_on_service(principal: Principal, owners: Ownership, service: str) -> bool:
    """Whether the token may gate, freeze or open an incident for the whole service (a declared one: a gate
    of an undeclared service would answer with a "did you mean" naming others)."""
    if not principal.limited:
        return True
    declared = owners.slos_of(service)
    if not declared:
        return False
    return service in principal.services or all(reaches_slo(principal, owners, slo) for slo in declared)


def _limited(principal: Principal) -> str:
    return f"token '{principal.name}' is limited to {principal.limits_text()}"


def slo_refusal(principal: Principal, owners: Ownership, slo: str) -> Refusal | None:
    """Why the token may not see or act on this SLO, or None when it may."""
    if reaches_slo(principal, owners, slo):
        return None
    owner = owners.owner(slo)
    if owner is None:
        detail = f"{_limited(principal)}; no SLO {excerpt(slo)!r} is declared, so it is not one of its SLOs"
        return Refusal(RefusalReason.UNDECLARED, detail)
    service, team = owner
    detail = f"{_limited(principal)}; SLO '{slo}' belongs to service '{service}' (team '{team}')"
    return Refusal(RefusalReason.OTHER_SLO, detail)


def service_refusal(principal: Principal, owners: Ownership, service: str, *, acting: bool = True) -> Refusal | None:
    """Why the token may not act on (or, `acting=False`, see) this service, or None when it may."""
    allowed = acts_on_service if acting else sees_service
    if allowed(principal, owners, service):
        return None
    declared = owners.slos_of(service)
    if not declared:
        detail = f"{_limited(principal)}; no SLO is declared for service {excerpt(service)!r}"
        return Refusal(RefusalReason.UNDECLARED, detail)
    others = [slo for slo in declared if not reaches_slo(principal, owners, slo)]
    teams = sorted({owner[1] for slo in others if (owner := owners.owner(slo)) is not None})
    detail = (
        f"{_limited(principal)}; service '{service}' is not one of its services"
        f" and has SLOs of team{'s' if len(teams) > 1 else ''} {', '.join(repr(team) for team in teams)}"
    )
    return Refusal(RefusalReason.OTHER_SERVICE, detail)


def services_refusal(principal: Principal, owners: Ownership, services: Sequence[str], action: str) -> Refusal | None:
    """Why the token may not do `action` (`freezing`, `opening an incident for`) to `services` (none: every
    service), or None when it may."""
    if not principal.limited:
        return None
    if not services:
        detail = f"{_limited(principal)}; {action} every service needs a token that is not limited"
        return Refusal(RefusalReason.EVERY_SERVICE, detail)
    for service in services:
        refusal = service_refusal(principal, owners, service)
        if refusal is not None:
            return Refusal(refusal.reason, f"{refusal.detail}, so {action} it is refused")
    return None


def sees_services(principal: Principal, owners: Ownership, services: Sequence[str]) -> bool:
    """Whether a freeze or incident covering `services` (none: every service, which covers the token's own
    too) belongs in the token's lists."""
    return not services or any(sees_service(principal, owners, service) for service in services)
