"""The reliability debt register (`kind: ReliabilityDebt`, issue 18): known violations, exceptions, and gaps in
instrumentation or monitoring, written in the same files as the SLOs they concern.

Why a kind of its own, beside the declarations: the Workbook's answer to an objective missed period after period is
either to loosen it or to put the reliability work on the backlog with an owner and a date. Written next to the
SLO, reviewed in the same pull request and validated by the same loader, the register is where `govern stale`
learns that a missed objective is known and owned, where `govern debt` finds items overdue or expired, and what
`archive` checks before an SLO is let go.

    apiVersion: sloplane.dev/v1alpha1
    kind: ReliabilityDebt
    metadata: {name: checkout-latency-db-pool}
    spec:
      slos: [checkout-latency]
      kind: known-violation            # exception | instrumentation | monitoring-gap
      owner: {name: Payments team, contact: "#payments"}
      cause: The connection pool saturates at peak.
      evidence: ["https://grafana.example/d/abc", "missed 2025-09 and 2025-10"]
      remediation: {plan: Pool per shard., tracker: "https://jira.example/PAY-12", due: 2025-12-15}
      opened: 2025-11-02
      revisit: 2026-01-15
      status: open                     # in-progress | resolved

An item is *open* until its status is `resolved`. It is *overdue* when its remediation's due date has passed and
it is still open, and *expired* when its revisit date has passed and it is still open: an exception accepted
until then must be looked at again, not left to stand by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from sloplane.declaration.diagnostics import Diagnostic, Loc, Severity, format_loc
from sloplane.declaration.model import Contact, Metadata
from sloplane.declaration.types import Name, SpecModel
from sloplane.declaration.validation import Locator

DEBT_KIND = "ReliabilityDebt"


def _link(value: str) -> str:
    if not value.startswith(("https://", "http://")) or any(character.isspace() for character in value):
        raise ValueError("give the tracker item's http(s) link, e.g. https://jira.example.com/browse/PAY-12")
    return value


Link = Annotated[str, AfterValidator(_link)]


class DebtKind(StrEnum):
    """What the debt is: a violation the owners know of, an accepted exception, or a gap in what is measured."""

    KNOWN_VIOLATION = "known-violation"
    EXCEPTION = "exception"
    INSTRUMENTATION = "instrumentation"
    MONITORING_GAP = "monitoring-gap"


class DebtStatus(StrEnum):
    """Open and in-progress items are open debt; resolved ones stay in the register as history."""

    OPEN = "open"
    IN_PROGRESS = "in-progress"
    RESOLVED = "resolved"


class Remediation(SpecModel):
    """The plan that pays the debt back: what will be done, where the work is tracked, and by when."""

    plan: str = Field(min_length=1)
    tracker: Link
    """The tracker item's link (an http(s) URL), so a reader reaches the work from the register."""
    due: date


class DebtSpec(SpecModel):
    """Everything about one item of reliability debt."""

    slos: list[Name] = Field(min_length=1)
    """The SLOs the debt concerns (names declared in the same files)."""
    kind: DebtKind
    owner: Contact
    cause: str = Field(min_length=1)
    evidence: list[str] = Field(min_length=1)
    """Links or facts that show the debt (dashboards, the periods missed, an incident)."""
    remediation: Remediation
    opened: date
    revisit: date
    """When the item must be looked at again; for an exception, when the acceptance ends."""
    status: DebtStatus = DebtStatus.OPEN

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.revisit < self.opened:
            raise ValueError(f"revisit ({self.revisit}) is before the item was opened ({self.opened})")
        if self.remediation.due < self.opened:
            raise ValueError(f"remediation.due ({self.remediation.due}) is before the item was opened ({self.opened})")
        if len(set(self.slos)) != len(self.slos):
            raise ValueError("'slos' names an SLO twice")
        return self

    @property
    def is_open(self) -> bool:
        """Open or in progress: the debt is still owed."""
        return self.status is not DebtStatus.RESOLVED

    def overdue(self, today: date) -> bool:
        """Still open after its remediation's due date."""
        return self.is_open and self.remediation.due < today

    def expired(self, today: date) -> bool:
        """Still open after its revisit date."""
        return self.is_open and self.revisit < today


class ReliabilityDebt(SpecModel):
    """A whole `ReliabilityDebt` document."""

    api_version: Literal["sloplane.dev/v1alpha1"]
    kind: Literal["ReliabilityDebt"]
    metadata: Metadata
    spec: DebtSpec

    @property
    def name(self) -> str:
        """The item's name, unique among the register's items."""
        return self.metadata.name


@dataclass(frozen=True)
class LoadedDebt:
    """A debt item and the source that locates its fields (for findings that point at lines)."""

    debt: ReliabilityDebt
    source: Locator

    @property
    def name(self) -> str:
        """The item's name."""
        return self.debt.name

    def diagnostic(self, loc: Loc, message: str, *, code: str = "invalid") -> Diagnostic:
        """An error about one of this item's fields, positioned in its source."""
        return Diagnostic(self.source.path, self.source.position(loc), format_loc(loc), message, Severity.ERROR, code)


def check_register(debts: list[LoadedDebt], declared: set[str]) -> list[Diagnostic]:
    """Cross-document checks: names unique among the items, and every SLO an item names declared (or at least
    written, valid or not, in the files read: an invalid SLO is reported where it is)."""
    found: list[Diagnostic] = []
    seen: dict[str, LoadedDebt] = {}
    for loaded in debts:
        first = seen.setdefault(loaded.name, loaded)
        if first is not loaded:
            where = f"{first.source.path}:{first.source.position(('metadata', 'name')).line}"
            message = f"reliability debt '{loaded.name}' is already declared at {where}"
            found.append(loaded.diagnostic(("metadata", "name"), message, code="duplicate"))
        for index, slo in enumerate(loaded.debt.spec.slos):
            if slo not in declared:
                message = f"no SLO named '{slo}' is declared in the files read"
                found.append(loaded.diagnostic(("spec", "slos", index), message, code="unknown-slo"))
    return found
