"""The SLO declaration (`apiVersion: sloplane.dev/v1alpha1`, `kind: ServiceLevelObjective`).

One document per objective. The models are the typed form every other part of sloplane works
from; they check shape and single-document invariants. Checks that need field positions or other
documents (references, lints) live in `sloplane.declaration.checks`.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import Field, StrictBool, model_validator

from sloplane.core.budget import (
    BurnRateAlert,
    DeclaredAlert,
    burn_rate_alerts,
    declared_burn_rate_alerts,
    error_budget,
)
from sloplane.core.durations import format_duration
from sloplane.declaration.policy import (
    DEFAULT_GATE,
    DEFAULT_TARGETS,
    Alerting,
    Exclusions,
    GatePolicy,
    Stage,
    TargetSystem,
)
from sloplane.declaration.sli import SLI
from sloplane.declaration.types import Duration, Name, Objective, Percent, SpecModel, TimeZone, with_string_shorthand

API_VERSION = "sloplane.dev/v1alpha1"
KIND = "ServiceLevelObjective"
MIN_ROLLING_WINDOW = timedelta(days=1)


class Criticality(StrEnum):
    """Service criticality: drives review cadence and how strict default policies are."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Lifecycle(StrEnum):
    """Active SLOs are rendered and gate; deprecated ones still render but warn; archived ones do neither."""

    ACTIVE = "active"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"


class CalendarUnit(StrEnum):
    """Calendar-aligned periods; budgets reset at the start of each."""

    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


NOMINAL_CALENDAR_PERIOD = {
    CalendarUnit.WEEK: timedelta(days=7),
    CalendarUnit.MONTH: timedelta(days=30),
    CalendarUnit.QUARTER: timedelta(days=90),
}
"""Lengths used to scale alert windows for calendar periods, whose real length varies."""


class Window(SpecModel):
    """The compliance period: rolling (`30d`) or calendar-aligned (`{calendar: month, timeZone: ...}`)."""

    rolling: Duration | None = None
    calendar: CalendarUnit | None = None
    time_zone: TimeZone | None = None

    __get_pydantic_json_schema__ = with_string_shorthand("a rolling window, e.g. 30d")

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, data: Any) -> Any:
        return {"rolling": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.rolling is None) == (self.calendar is None):
            raise ValueError("give exactly one of 'rolling' (e.g. 30d) or 'calendar' (week, month, quarter)")
        if self.rolling is not None:
            if self.time_zone is not None:
                raise ValueError("'timeZone' applies to calendar windows only")
            if self.rolling < MIN_ROLLING_WINDOW:
                raise ValueError("a rolling window shorter than 1d leaves no room for burn-rate alerting")
        return self

    @property
    def period(self) -> timedelta:
        """The period's length (nominal for calendar windows: week 7d, month 30d, quarter 90d)."""
        if self.rolling is not None:
            return self.rolling
        assert self.calendar is not None
        return NOMINAL_CALENDAR_PERIOD[self.calendar]

    def describe(self) -> str:
        """'30d rolling' or 'calendar month (Europe/London)': how alerts, dashboards and `explain` name it."""
        if self.rolling is not None:
            return f"{format_duration(self.rolling)} rolling"
        assert self.calendar is not None
        return f"calendar {self.calendar.value} ({self.time_zone or 'UTC'})"


class BudgetingMethod(StrEnum):
    """Occurrences: bad events over all events. Timeslices: bad slices of time over all slices."""

    OCCURRENCES = "occurrences"
    TIMESLICES = "timeslices"


class Timeslice(SpecModel):
    """A slice of time is good when its own SLI reaches `target` percent."""

    window: Duration = timedelta(minutes=1)
    target: Percent


class Contact(SpecModel):
    """A named person or rota and how to reach them (email, chat channel, pager URL)."""

    name: str = Field(min_length=1)
    contact: str = Field(min_length=1)


class Owners(SpecModel):
    """Who answers for the SLO: the owning team and its dev, ops and product owners."""

    team: Name
    dev: Contact | None = None
    ops: Contact | None = None
    product: Contact | None = None


class ChangeRecord(SpecModel):
    """One entry of the SLO's change history, for audits and post-incident reviews."""

    date: date
    author: str = Field(min_length=1)
    change: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class Review(SpecModel):
    """When the target was last reviewed with stakeholders and when it is due again."""

    last: date | None = None
    next: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.last is not None and self.next is not None and self.next < self.last:
            raise ValueError(f"next review ({self.next}) is before the last one ({self.last})")
        return self


class StatusPage(SpecModel):
    """How the SLO appears on the status page `serve` publishes (`/status`, `/status.json`).

    Why opt-in: `serve --public-status` shows the page without a token, and an objective's name, its service and
    its state are internal facts until the owning team decides they are the customers' too.
    """

    public: StrictBool = False
    """Shown on the public status page (`serve --public-status`); every SLO is on the page a `read` token sees."""


class Shadow(SpecModel):
    """A candidate objective or gate policy tried beside the declared ones, without consequence (A/B of a policy
    change): rendered as dry-run analysis metrics (Argo Rollouts' `dryRun`), and decided beside every real gate
    decision, recorded in the same record as its `shadow`, never gating, alerting or notifying.

    Why in the declaration, not a flag: the change to try is reviewed where the objective lives, and once its
    shadow decisions have been compared with the real ones (`sloplane decisions`, the decision log), adopting it is
    moving these values one level up.
    """

    objective: Objective | None = None
    """The objective to try (stages with their own objective keep it)."""
    gate: GatePolicy | None = None
    """The gate policy to try, whole (the declared one, or the defaults, otherwise)."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.objective is None and self.gate is None:
            raise ValueError("a shadow tries an 'objective', a 'gate' policy, or both")
        return self


class Metadata(SpecModel):
    """Identity: the SLO's name (RFC 1123, unique in the fleet), labels and annotations."""

    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Spec(SpecModel):
    """Everything about one objective."""

    service: Name
    description: str = ""
    tier: Criticality = Criticality.MEDIUM
    owners: Owners
    rationale: str = ""
    history: list[ChangeRecord] = Field(default_factory=list)
    review: Review = Field(default_factory=Review)
    status_page: StatusPage = Field(default_factory=StatusPage)
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    sli: SLI
    objective: Objective
    window: Window = Field(default_factory=lambda: Window(rolling=timedelta(days=30)))
    budgeting_method: BudgetingMethod = BudgetingMethod.OCCURRENCES
    timeslice: Timeslice | None = None
    interval: Duration = timedelta(minutes=1)
    """How often the SLI is evaluated (rule interval, evaluator cache lifetime)."""
    stages: list[Stage] = Field(default_factory=list)
    exclusions: Exclusions = Field(default_factory=Exclusions)
    alerting: Alerting = Field(default_factory=Alerting)
    gate: GatePolicy | None = None
    shadow: Shadow | None = None
    """A candidate objective or gate policy decided beside the real ones, without consequence."""
    targets: list[TargetSystem] = Field(default_factory=lambda: list(DEFAULT_TARGETS), min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.budgeting_method is BudgetingMethod.TIMESLICES and self.timeslice is None:
            raise ValueError("budgetingMethod 'timeslices' needs a 'timeslice' (window and target)")
        if self.budgeting_method is BudgetingMethod.OCCURRENCES and self.timeslice is not None:
            raise ValueError("'timeslice' only applies with budgetingMethod 'timeslices'")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("'targets' lists a target twice")
        return self

    def burn_rate_alerts(self) -> tuple[BurnRateAlert, ...]:
        """The SLO's burn-rate alerts: `alerting.windows` as declared, else the Workbook's scaled to the period.

        Every renderer, the evaluator and `explain` ask here, so a declared table reaches them all.
        """
        if not self.alerting.windows:
            return burn_rate_alerts(self.window.period)
        declared = tuple(
            DeclaredAlert(window.tier, window.long, window.reset_window, window.factor, window.for_ or timedelta(0))
            for window in self.alerting.windows
        )
        return declared_burn_rate_alerts(self.window.period, declared)

    @property
    def effective_gate(self) -> GatePolicy:
        """The declared gate policy, or the documented defaults."""
        return self.gate if self.gate is not None else DEFAULT_GATE

    @property
    def error_budget(self) -> float:
        """Allowed error ratio over the period."""
        return error_budget(self.objective)

    def stage(self, name: str) -> Stage | None:
        """The stage of that name, if declared."""
        return next((stage for stage in self.stages if stage.name == name), None)

    @property
    def production_stage(self) -> Stage | None:
        """The stage marked production, else the one named `production`, else the last; None if unstaged."""
        if not self.stages:
            return None
        marked = [stage for stage in self.stages if stage.production]
        if marked:
            return marked[0]
        return self.stage("production") or self.stages[-1]

    def shadowed(self) -> Spec | None:
        """The spec as the shadow would have it (its objective and gate policy in place, no shadow), or None."""
        if self.shadow is None:
            return None
        update: dict[str, Any] = {"shadow": None}
        if self.shadow.objective is not None:
            update["objective"] = self.shadow.objective
        if self.shadow.gate is not None:
            update["gate"] = self.shadow.gate
        return self.model_copy(update=update)

    def stage_objective(self, stage: Stage | None) -> float:
        """A stage's objective, falling back to the SLO's."""
        if stage is not None and stage.objective is not None:
            return stage.objective
        return self.objective


class Declaration(SpecModel):
    """A whole document: `apiVersion`, `kind`, `metadata` and `spec`."""

    api_version: Literal["sloplane.dev/v1alpha1"]
    kind: Literal["ServiceLevelObjective"]
    metadata: Metadata
    spec: Spec

    @property
    def name(self) -> str:
        """The SLO's unique name."""
        return self.metadata.name

    def shadowed(self) -> Declaration | None:
        """The declaration as its shadow would have it (`Spec.shadowed`), or None without a shadow."""
        spec = self.spec.shadowed()
        return None if spec is None else self.model_copy(update={"spec": spec})
