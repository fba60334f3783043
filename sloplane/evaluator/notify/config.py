"""The receivers file of `sloplane serve --receivers FILE`: where incidents go and how hard to try.

::

    receivers:
      payments-oncall:
        pagerduty: {routingKey: R0UT1NGKEY, url: https://events.pagerduty.com/v2/enqueue}
        webhook: {url: https://chat.example/hooks/slo, headers: {Authorization: Bearer ...}}
    defaults: {deployment: payments-oncall, background: payments-oncall}
    grouping: {wait: 30s, window: 15m, minServices: 2}
    retry: {initial: 1s, max: 5m, maxAttempts: 0}   # 0: retry forever
    roles:                                          # optional: routing by ownership role (`roles.py`)
      dev: {default: dev-oncall, teams: {checkout: checkout-dev}}
      ops: {default: sre}
      product: {teams: {checkout: checkout-pm}}

Without `roles`, incidents route by class exactly as before: the SLO's `spec.alerting.routing`, else
`defaults`. With it, each incident is routed to owners by role (`roles.role_routes`): the SLO's declared
routing still wins for its dev (deployment) and ops (background) receivers, then the role's receiver
for the owning team (`spec.owners.team`), then the role's `default`, then `defaults` (dev as
deployment, ops as background; product has no class to fall back on).

Parsed with the declaration models' conventions (camelCase keys, unknown keys refused) and reported
the same way (`file:line:column: error: field: message`), so a typo in the file that decides who
gets paged is caught at start-up with a pointer to the line, not discovered during an incident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from sloplane.declaration.diagnostics import Diagnostic, Position, Severity
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import Url
from sloplane.declaration.types import Duration, Name, SpecModel
from sloplane.declaration.validation import did_you_mean, validate
from sloplane.declaration.yamlsource import SourceError, YamlSyntaxError, read_documents, read_source

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

NonEmpty = Annotated[str, Field(min_length=1)]


class ReceiversFileError(Exception):
    """The receivers file is missing, malformed, or names receivers that do not exist."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class PagerDuty(SpecModel):
    """A PagerDuty Events API v2 integration (the service's routing key)."""

    routing_key: NonEmpty
    url: Url = PAGERDUTY_EVENTS_URL
    """Overridable for EU accounts, proxies and tests."""


class Webhook(SpecModel):
    """Any HTTP endpoint that takes the documented `sloplane.incident` JSON body."""

    url: Url
    headers: dict[str, str] = Field(default_factory=dict)


class Receiver(SpecModel):
    """One named destination; incidents go to every channel it has."""

    pagerduty: PagerDuty | None = None
    webhook: Webhook | None = None

    @model_validator(mode="after")
    def _has_a_channel(self) -> Self:
        if self.pagerduty is None and self.webhook is None:
            raise ValueError("a receiver needs 'pagerduty', 'webhook' or both")
        return self


class Defaults(SpecModel):
    """Receivers for declarations that name none in `spec.alerting.routing`."""

    deployment: str | None = None
    background: str | None = None


class Grouping(SpecModel):
    """Turning many services failing on one release into one war room instead of a page storm."""

    wait: Duration = timedelta(seconds=30)
    """How long a deployment-related failure is held to see whether other services join it."""
    window: Duration = timedelta(minutes=15)
    """Failures this close together on one revision or pipeline count as one incident; also the
    span within which repeats of one dedup key are suppressed."""
    min_services: int = Field(default=2, ge=2, strict=True)


class Retry(SpecModel):
    """Exponential backoff with jitter for receivers that are down or overloaded."""

    initial: Duration = timedelta(seconds=1)
    max: Duration = timedelta(minutes=5)
    max_attempts: int = Field(default=0, ge=0, strict=True)
    """0 retries forever: an incident notification is never given up on silently."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max < self.initial:
            raise ValueError("'max' must not be shorter than 'initial'")
        return self


class RoleReceivers(SpecModel):
    """Where one ownership role's notifications go: per owning team, else the role's default."""

    default: NonEmpty | None = None
    teams: dict[Name, NonEmpty] = Field(default_factory=dict)
    """`spec.owners.team` -> receiver; a team not listed gets `default`."""

    def for_team(self, team: str) -> tuple[str, str] | None:
        """(receiver, the file's key that chose it) for a team, or None when the role names none for it."""
        if team in self.teams:
            return self.teams[team], f"teams.{team}"
        if self.default is not None:
            return self.default, "default"
        return None


class Roles(SpecModel):
    """Receivers by ownership role: dev (releases), ops (running it), product (the budget's owner)."""

    dev: RoleReceivers = Field(default_factory=RoleReceivers)
    ops: RoleReceivers = Field(default_factory=RoleReceivers)
    product: RoleReceivers = Field(default_factory=RoleReceivers)

    def named(self) -> list[tuple[tuple[str, ...], str]]:
        """Every receiver the roles name, with where: (("dev", "teams", "checkout"), "checkout-dev")."""
        found: list[tuple[tuple[str, ...], str]] = []
        for role in ("dev", "ops", "product"):
            receivers: RoleReceivers = getattr(self, role)
            if receivers.default is not None:
                found.append(((role, "default"), receivers.default))
            found += [((role, "teams", team), name) for team, name in receivers.teams.items()]
        return found


class ReceiversConfig(SpecModel):
    """The whole receivers file."""

    receivers: dict[NonEmpty, Receiver] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    grouping: Grouping = Field(default_factory=Grouping)
    retry: Retry = Field(default_factory=Retry)
    roles: Roles | None = None
    """Routing by ownership role; None (absent) routes by incident class as before."""

    def role_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """(field path, message) for each role naming a receiver the file does not define."""
        if self.roles is None:
            return []
        known = sorted(self.receivers)
        return [
            (("roles", *where), f"unknown receiver '{name}'{did_you_mean(name, known)}")
            for where, name in self.roles.named()
            if name not in self.receivers
        ]

    def unowned_teams(self, teams: set[str]) -> list[str]:
        """`roles.<role>.teams.<team>` keys naming a team no declaration owns (`teams`): routes nothing would ever
        take, most likely a misspelt team, said rather than ignored."""
        if self.roles is None:
            return []
        return [
            f"roles.{role}.teams.{team}"
            for role in ("dev", "ops", "product")
            for team in getattr(self.roles, role).teams
            if team not in teams
        ]

    @field_validator("defaults")
    @classmethod
    def _defaults_exist(cls, defaults: Defaults, info: ValidationInfo) -> Defaults:
        known = sorted(info.data.get("receivers") or {})
        for kind in ("deployment", "background"):
            name = getattr(defaults, kind)
            if name is not None and name not in known:
                raise ValueError(f"'{kind}' names unknown receiver '{name}'{did_you_mean(name, known)}")
        return defaults


@dataclass(frozen=True)
class Routes:
    """The receiver each SLO's incidents go to, by kind; None means the SLO notifies nobody."""

    deployment: str | None
    background: str | None

    def for_kind(self, kind: str) -> str | None:
        """The receiver for `deployment` or `background` incidents."""
        return self.deployment if kind == "deployment" else self.background


def _file_error(path: str, message: str, position: Position | None = None) -> ReceiversFileError:
    where = position or Position(1, 1)
    return ReceiversFileError([Diagnostic(path, where, "", message, Severity.ERROR, "receivers").render()])


def load_receivers(path: str | Path) -> ReceiversConfig:
    """Read and validate a receivers file; ReceiversFileError lists every problem with its line."""
    shown = str(path)
    try:
        text = read_source(Path(path))
    except SourceError as error:
        raise _file_error(shown, f"receivers file: {error}") from None
    try:
        documents = read_documents(shown, text)
    except YamlSyntaxError as error:
        raise _file_error(shown, error.message, error.position) from None
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        raise _file_error(
            shown, "expected one YAML mapping with 'receivers' (and optionally defaults, grouping, retry, roles)"
        )
    document = documents[0]
    config, diagnostics = validate(ReceiversConfig, document.data, document)
    if config is None:
        raise ReceiversFileError([diagnostic.render() for diagnostic in diagnostics])
    problems = [
        Diagnostic(shown, document.position(loc), ".".join(loc), message, Severity.ERROR, "receivers").render()
        for loc, message in config.role_problems()
    ]
    if problems:
        raise ReceiversFileError(problems)
    return config


def resolve_routes(fleet: Mapping[str, Declaration], config: ReceiversConfig) -> dict[str, Routes]:
    """Each SLO's receivers: its declared routing, else the file's defaults.

    Raises ReceiversFileError naming every SLO that routes to a receiver the file does not define,
    at start-up: finding out when the first incident is dropped would be too late.
    """
    routes: dict[str, Routes] = {}
    problems: list[str] = []
    known = sorted(config.receivers)
    for name, declaration in sorted(fleet.items()):
        routing = declaration.spec.alerting.routing
        chosen = Routes(
            routing.deployment or config.defaults.deployment, routing.background or config.defaults.background
        )
        for kind, receiver in (("deployment", routing.deployment), ("background", routing.background)):
            if receiver is not None and receiver not in config.receivers:
                hint = did_you_mean(receiver, known) or f" (known receivers: {', '.join(known) or 'none'})"
                problems.append(f"SLO '{name}': spec.alerting.routing.{kind}: unknown receiver '{receiver}'{hint}")
        routes[name] = chosen
    if problems:
        raise ReceiversFileError(problems)
    return routes
