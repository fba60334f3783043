"""What happens around the indicator: stages, exclusions, alerting and the deployment gate policy."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from sloplane.core.budget import Tier
from sloplane.core.durations import format_duration
from sloplane.core.instants import Instant
from sloplane.declaration.sli import SLORef
from sloplane.declaration.types import (
    CronSchedule,
    Duration,
    Labels,
    Name,
    Objective,
    Percent,
    PositiveFloat,
    SpecModel,
    StrictBool,
    TimeZone,
)


def _check_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value


Url = Annotated[str, AfterValidator(_check_url)]

AlertName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""What Prometheus accepts as an alert's name: any label value (Sloth users have `my-service-high-burn`)."""


class Stage(SpecModel):
    """A deployment stage (canary, production, ...) with its own objective and extra selector labels."""

    name: Name
    objective: Objective | None = None
    """Defaults to the SLO's objective; canaries often get a looser one."""
    selector: Labels = Field(default_factory=dict)
    """Labels that pick this stage's traffic, added to every query (`{{selector}}` in hand-written ones)."""
    production: StrictBool = False
    """Marks the production stage; default: the stage named `production`, else the last one."""
    counts_toward_production: StrictBool = False
    """Whether this pre-production stage's events also count in the production SLO's budget."""


class RecurringWindow(SpecModel):
    """A window that repeats on a cron schedule, in a time zone (maintenance, release freezes)."""

    name: Name
    schedule: CronSchedule
    duration: Duration
    time_zone: TimeZone = "UTC"
    stages: list[Name] = Field(default_factory=list)
    """Stages the window applies to; empty means all."""


def _require_order(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")


class OneOffWindow(SpecModel):
    """A single planned window, e.g. a data-centre migration."""

    name: Name
    start: Instant
    end: Instant
    reason: str = Field(min_length=1)
    stages: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _require_order(self.start, self.end)
        return self


class EmergencyChange(SpecModel):
    """An emergency change taken out of the budget, with who approved it and why (for audits)."""

    start: Instant
    end: Instant
    reason: str = Field(min_length=1)
    approver: str = Field(min_length=1)
    ticket: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _require_order(self.start, self.end)
        return self


class Exclusions(SpecModel):
    """Time taken out of the error budget, so planned work does not erode trust in the SLO."""

    maintenance: list[RecurringWindow] = Field(default_factory=list)
    windows: list[OneOffWindow] = Field(default_factory=list)
    emergency_changes: list[EmergencyChange] = Field(default_factory=list)


class Routing(SpecModel):
    """Alertmanager receivers: breaches during a deployment go to one, background ones to another."""

    deployment: str | None = None
    background: str | None = None


class TierAlert(SpecModel):
    """One tier's alert as the people who route it know it: its name, and labels and annotations of its own.

    Teams coming from Sloth route on per-tier alert names and labels (`severity: critical`, a
    PagerDuty routing key, a Slack channel); saying them here keeps that routing through a migration.
    """

    name: AlertName | None = None
    """The alert's name; default `alerting.name`, else SLOErrorBudgetBurn."""
    labels: Labels = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class AlertWindow(SpecModel):
    """One burn-rate alert written out instead of the Workbook's table (what an OpenSLO AlertCondition,
    a slo-generator policy step or a team's own table says): fire when both windows burn faster than
    `factor`, for at least `for`."""

    tier: Tier
    long: Duration
    short: Duration | None = None
    """The reset window; default one twelfth of `long` in whole minutes (the Workbook's ratio), at least 1m."""
    factor: PositiveFloat
    """The burn rate both windows must exceed (1 spends the budget in exactly one period)."""
    for_: Duration | None = Field(default=None, alias="for")
    """How long the condition must hold before the alert fires (Prometheus `for:`)."""

    @model_validator(mode="after")
    def _short_inside_long(self) -> Self:
        if self.long < MIN_ALERT_WINDOW:
            raise ValueError(f"'long' must be at least {format_duration(MIN_ALERT_WINDOW)}")
        if self.short is not None and not MIN_ALERT_WINDOW <= self.short <= self.long:
            raise ValueError(f"'short' must be between {format_duration(MIN_ALERT_WINDOW)} and 'long'")
        return self

    @property
    def reset_window(self) -> timedelta:
        """The short window, declared or derived."""
        if self.short is not None:
            return self.short
        return max(MIN_ALERT_WINDOW, timedelta(minutes=round(self.long / timedelta(minutes=12))))


MIN_ALERT_WINDOW = timedelta(minutes=1)


class Alerting(SpecModel):
    """Burn-rate alert tiers and where they go."""

    page: StrictBool = True
    ticket: StrictBool = True
    name: AlertName | None = None
    """The alerts' name (default SLOErrorBudgetBurn); `pageAlert.name` / `ticketAlert.name` win over it."""
    labels: Labels = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    page_alert: TierAlert = Field(default_factory=TierAlert)
    ticket_alert: TierAlert = Field(default_factory=TierAlert)
    windows: list[AlertWindow] = Field(default_factory=list)
    """The burn-rate alerts, when not the SRE Workbook's four (scaled to the period)."""
    runbook: Url | None = None
    routing: Routing = Field(default_factory=Routing)
    deployment_signal: str | None = None
    """PromQL that is > 0 while a rollout is in progress; alerts then say whether they fired during one."""

    def enabled_tiers(self) -> tuple[Tier, ...]:
        """The tiers switched on, in severity order."""
        return tuple(tier for tier in Tier if getattr(self, tier.value))

    def tier_alert(self, tier: Tier) -> TierAlert:
        """The per-tier name, labels and annotations of one tier."""
        return self.page_alert if tier is Tier.PAGE else self.ticket_alert

    def alert_name(self, tier: Tier, default: str) -> str:
        """The name a tier's alerts carry: the tier's own, the SLO's, else `default`."""
        return self.tier_alert(tier).name or self.name or default


class GateMode(StrEnum):
    """Blocking: the pipeline waits for a verdict. Async: it records the deployment and moves on."""

    BLOCKING = "blocking"
    ASYNC = "async"


class NoDataOutcome(StrEnum):
    """The decision when the SLI has no data at all."""

    INCONCLUSIVE = "inconclusive"
    PASS = "pass"
    FAIL = "fail"


class BackendErrorPolicy(StrEnum):
    """The decision when the metrics backend cannot be read."""

    FAIL_CLOSED = "failClosed"
    FAIL_OPEN = "failOpen"


class Attribution(SpecModel):
    """How a canary stage is compared with the stage it will replace, to tell a bad release from a bad day.

    The test runs on per-interval error ratios (one value per `step` over `window`), one-sided
    Mann-Whitney U: it assumes no distribution, so bursty errors do not fool it as a pooled
    proportion test would. A canary fails only when it is both significantly worse (`p < alpha`)
    and worse by at least `minEffect`, measured in burn-rate units of the canary's budget, so a
    real but negligible difference never rolls a release back.
    """

    enabled: StrictBool = True
    baseline: Name | None = None
    """The stage compared against; default: the production stage."""
    alpha: float = Field(default=0.01, gt=0, lt=0.5, strict=True)
    min_effect: PositiveFloat = 1.0
    """The canary's mean error ratio must exceed the baseline's by this many budget burn rates."""
    min_canary_events: int = Field(default=100, ge=0, strict=True)
    """Fewer canary events than this over the window: inconclusive (never a pass by default)."""
    min_intervals: int = Field(default=5, ge=3, strict=True)
    """Intervals with traffic needed on each side for the test to say anything."""
    window: Duration | None = None
    """Default: the gate's analysis window."""
    step: Duration | None = None
    """Default: the SLO's evaluation interval."""


class AnalysisProvider(StrEnum):
    """Where an Argo Rollouts analysis reads its verdict."""

    PROMETHEUS = "prometheus"
    """Burn-rate queries straight against Prometheus (no evaluator needed)."""
    WEB = "web"
    """The evaluator's gate API: the full release-aware decision (freezes, attribution, ...)."""
    DATADOG = "datadog"
    """Datadog metric queries (v2, formula) straight against Datadog: no evaluator needed."""


class Analysis(SpecModel):
    """How deployment systems run this gate: provider and schedule; unset numbers follow `mode`.

    Blocking (a canary step waits for the verdict): measure every `interval` (the SLO's interval,
    at least 1m) after an `initialDelay` of one analysis window (the new version needs traffic),
    `count` measurements spanning the analysis window; the first failure aborts, two
    inconclusive results pause for a human. Async (background analysis for the whole rollout):
    every 5m until the rollout ends, two failures abort, inconclusive results never pause it.
    """

    provider: AnalysisProvider = AnalysisProvider.PROMETHEUS
    interval: Duration | None = None
    count: int | None = Field(default=None, ge=1, strict=True)
    initial_delay: Duration | None = None
    failure_limit: int | None = Field(default=None, ge=0, strict=True)
    inconclusive_limit: int | None = Field(default=None, ge=0, strict=True)
    consecutive_error_limit: int | None = Field(default=None, ge=0, strict=True)
    dry_run: StrictBool = False
    """Measure and report, never abort a rollout (Argo's dryRun for every metric)."""
    cluster_scoped: StrictBool = False
    """Render a ClusterAnalysisTemplate instead of a namespaced AnalysisTemplate."""


class ChangeType(StrEnum):
    """What a deployment changes, as the pipeline declares it on the gate request (`changeType`).

    Why the gate asks: the Workbook's error budget policy halts changes while the budget is spent, except those that
    restore reliability — a fix, reliability work, a security patch (curriculum module 6's reliability windows).
    """

    FEATURE = "feature"
    FIX = "fix"
    RELIABILITY = "reliability"
    SECURITY = "security"


DEFAULT_RELIABILITY_CHANGES = (ChangeType.FIX, ChangeType.RELIABILITY, ChangeType.SECURITY)


class RiskLevel(StrEnum):
    """How risky a change is, as its owners judge it (`sloplane assess --risk`, `risk` on the gate request)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for low … 3 for critical: levels compare by rank."""
        return list(RiskLevel).index(self)


class GatePolicy(SpecModel):
    """How deployments are judged against this SLO.

    The defaults are also what an SLO without a `gate` gets: fail while a page-tier burn is active or
    the budget is exhausted, pass otherwise; no data is inconclusive, a backend error fails closed.
    """

    mode: GateMode = GateMode.BLOCKING
    min_budget_remaining: Percent = 0.0
    """Percent of the period's budget that must be left to deploy; 0 only refuses an exhausted budget."""
    max_burn_rate: PositiveFloat | None = None
    """Highest burn rate tolerated during analysis, over `analysisWindow`."""
    analysis_window: Duration = timedelta(minutes=10)
    min_events: int = Field(default=0, ge=0, strict=True)
    """Fewer events than this in the analysis window makes the decision inconclusive."""
    on_no_data: NoDataOutcome = NoDataOutcome.INCONCLUSIVE
    on_backend_error: BackendErrorPolicy = BackendErrorPolicy.FAIL_CLOSED
    rollback_on: Tier = Tier.PAGE
    """An active burn-rate alert of this tier (or louder) fails the gate and rolls back."""
    dependencies: list[SLORef] = Field(default_factory=list)
    """SLOs whose own outage makes a breach here external: inconclusive instead of a rollback."""
    freeze_on_major_incident: StrictBool = True
    """An open major incident (`sloplane incident open`, or a war room opened by the notifier) fails every gate."""
    freeze_on_budget_exhausted: StrictBool = True
    """Any SLO of the service with its budget spent freezes the service's releases (break-glass still works)."""
    require_assessment: RiskLevel | None = None
    """Releases at this risk or above must name an impact assessment (`sloplane assess --record`, `POST
    /v1/assessments`) recorded for the service, whose window holds the gate's instant and whose verdict is not
    defer; a request that declares no `risk` counts as at this level (the risk is the assessment's to state, not
    the absence of one). Otherwise the gate fails `assessment-missing` (or `-unknown`, `-other-service`,
    `-outside-window`, `-deferred`)."""
    reliability_changes: list[ChangeType] = Field(default_factory=lambda: list(DEFAULT_RELIABILITY_CHANGES))
    """Change types that pass while the budget is spent, when the budget is all that fails them (a policy
    exception, recorded as one); `[]` lets none through. Burn, alerts and a worse canary still stop them."""
    freezes: list[RecurringWindow] = Field(default_factory=list)
    """Scheduled release freezes (e.g. Friday afternoons, peak season)."""
    attribution: Attribution = Field(default_factory=Attribution)
    """Canary versus baseline, for staged SLOs gated on a non-production stage."""
    analysis: Analysis = Field(default_factory=Analysis)
    """How Argo Rollouts, Spinnaker and CI run this gate."""


DEFAULT_GATE = GatePolicy()
"""The documented policy for SLOs that declare none."""


class TargetSystem(StrEnum):
    """A system sloplane renders for."""

    PROMETHEUS = "prometheus"
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    DATADOG = "datadog"
    ARGO_ROLLOUTS = "argoRollouts"
    ARGO_CD = "argoCD"
    SPINNAKER = "spinnaker"


DEFAULT_TARGETS = (
    TargetSystem.PROMETHEUS,
    TargetSystem.ALERTMANAGER,
    TargetSystem.GRAFANA,
    TargetSystem.ARGO_ROLLOUTS,
    TargetSystem.ARGO_CD,
    TargetSystem.SPINNAKER,
)
"""Every SLO gets its rules, alerts, dashboards and pipeline gates unless it lists its targets."""
