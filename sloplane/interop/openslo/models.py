"""OpenSLO documents as read: one lenient model set for `openslo/v1` and `openslo.com/v2alpha`.

The two versions differ mostly in names (`indicator` vs `sli`, `metricSource` vs `dataSourceRef`,
`service` vs the Go SDK's `serviceRef`); both spellings are accepted in both versions so that
files written by either SDK load. Unknown keys are still refused, with a did-you-mean, except inside
the vendor-specific `spec` of a metric source and `connectionDetails`, which OpenSLO leaves open.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel


class OpenSLOModel(BaseModel):
    """Base: camelCase keys, unknown keys refused; a key written with no value (`alertPolicies:`) is as if
    not written, as the spec's optional fields allow."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, validate_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


_RFC1123_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class OMetadata(OpenSLOModel):
    """Object metadata; v1 labels may hold lists of strings. Names are RFC 1123 labels, as the spec and
    the reference validators (oslo, the Go SDK) require."""

    name: str

    @field_validator("name")
    @classmethod
    def _rfc1123(cls, value: str) -> str:
        if len(value) > 63 or not re.match(_RFC1123_NAME, value):
            raise ValueError(f"'{value}' is not an RFC 1123 name (at most 63 lowercase letters, digits and '-')")
        return value

    display_name: str | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class OMetricSource(OpenSLOModel):
    """v1: where a query runs (`type` or a DataSource ref) and the vendor-specific `spec`."""

    metric_source_ref: str | None = None
    type: str | None = None
    spec: dict[str, Any]


class ODataSourceSpec(OpenSLOModel):
    """A DataSource's spec, as its own object or inline (v2alpha `dataSourceSpec`)."""

    description: str | None = None
    type: str
    connection_details: Any = None


class OMetric(OpenSLOModel):
    """One metric slot (good, bad, total, raw, thresholdMetric) in either version's shape."""

    metric_source: OMetricSource | None = None
    data_source_ref: str | None = None
    data_source_spec: ODataSourceSpec | None = None
    spec: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        if (self.metric_source is None) == (self.spec is None):
            raise ValueError("give either 'metricSource' (openslo/v1) or 'spec' with a data source (v2alpha)")
        return self


class ORatioMetric(OpenSLOModel):
    """good or bad over total, or a precomputed raw ratio."""

    counter: bool = False
    good: OMetric | None = None
    bad: OMetric | None = None
    total: OMetric | None = None
    raw_type: Literal["success", "failure"] | None = None
    raw: OMetric | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.raw is not None:
            if self.good or self.bad or self.total:
                raise ValueError("'raw' excludes 'good', 'bad' and 'total'")
            if self.raw_type is None:
                raise ValueError("'raw' needs 'rawType' (success or failure)")
        elif self.total is None or (self.good is None) == (self.bad is None):
            raise ValueError("give 'total' and exactly one of 'good' or 'bad' (or 'raw' with 'rawType')")
        return self


class OSLISpec(OpenSLOModel):
    """An indicator: a threshold metric or a ratio metric."""

    description: str | None = None
    threshold_metric: OMetric | None = None
    ratio_metric: ORatioMetric | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.threshold_metric is None) == (self.ratio_metric is None):
            raise ValueError("give exactly one of 'thresholdMetric' or 'ratioMetric'")
        return self


class OInlineSLI(OpenSLOModel):
    """An SLI written inside an SLO or objective."""

    metadata: OMetadata | None = None
    spec: OSLISpec


class OCalendar(OpenSLOModel):
    """Calendar alignment of a time window."""

    start_time: str | datetime | date | None = None
    time_zone: str = "UTC"


class OTimeWindow(OpenSLOModel):
    """`duration` with `isRolling`, or `calendar` for calendar-aligned periods."""

    duration: str
    is_rolling: bool | None = None
    calendar: OCalendar | None = None


class OObjective(OpenSLOModel):
    """One objective; a composite SLO gives each its own indicator and weight."""

    display_name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    op: Literal["lte", "gte", "lt", "gt"] | None = None
    value: float | None = None
    target: float | None = Field(default=None, ge=0, lt=1)
    target_percent: float | None = Field(default=None, ge=0, lt=100)
    time_slice_target: float | None = Field(default=None, gt=0, le=1)
    time_slice_window: str | int | float | None = None
    indicator: OInlineSLI | None = None
    indicator_ref: str | None = None
    sli: OInlineSLI | None = None
    sli_ref: str | None = None
    composite_weight: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.target is None) == (self.target_percent is None):
            raise ValueError("give exactly one of 'target' (0-1) or 'targetPercent' (0-100)")
        return self


class OCondition(OpenSLOModel):
    """A burn-rate condition."""

    kind: Literal["burnrate"] = "burnrate"
    op: Literal["lte", "gte", "lt", "gt"] | None = None
    threshold: float
    lookback_window: str
    alert_after: str | None = None


class OAlertConditionSpec(OpenSLOModel):
    """When to alert and how loudly."""

    description: str | None = None
    severity: str
    condition: OCondition


class OInline(OpenSLOModel):
    """Fields shared by inline objects and references inside alert policies."""

    kind: str | None = None
    metadata: OMetadata | None = None


class OConditionItem(OInline):
    """A condition in a policy: a reference or an inline AlertCondition."""

    condition_ref: str | None = None
    spec: OAlertConditionSpec | None = None

    @model_validator(mode="after")
    def _ref_or_inline(self) -> Self:
        if (self.condition_ref is None) == (self.spec is None):
            raise ValueError("give exactly one of 'conditionRef' or an inline AlertCondition 'spec'")
        return self


class ONotificationTargetSpec(OpenSLOModel):
    """Where an alert goes (free text: email, slack, pagerduty, ...)."""

    target: str
    description: str | None = None


class ONotificationItem(OInline):
    """A notification target in a policy: a reference or inline."""

    target_ref: str | None = None
    spec: ONotificationTargetSpec | None = None


class OAlertPolicySpec(OpenSLOModel):
    """An alert policy: one condition and where it notifies."""

    description: str | None = None
    alert_when_no_data: bool = False
    alert_when_resolved: bool = False
    alert_when_breaching: bool = False
    conditions: list[OConditionItem] = Field(min_length=1)
    notification_targets: list[ONotificationItem] = Field(default_factory=list)


class OAlertPolicyItem(OInline):
    """An alert policy in an SLO: a reference or inline."""

    alert_policy_ref: str | None = None
    spec: OAlertPolicySpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"alertPolicyRef": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _ref_or_inline(self) -> Self:
        if (self.alert_policy_ref is None) == (self.spec is None):
            raise ValueError("give exactly one of 'alertPolicyRef' or an inline AlertPolicy 'spec'")
        return self


class OSLOSpec(OpenSLOModel):
    """An SLO: service, indicator (inline or by reference), window, budgeting, objectives."""

    description: str | None = None
    service: str | None = None
    service_ref: str | None = None
    indicator: OInlineSLI | None = None
    indicator_ref: str | None = None
    sli: OInlineSLI | None = None
    sli_ref: str | None = None
    time_window: list[OTimeWindow] = Field(default_factory=list, max_length=1)
    budgeting_method: Literal["Occurrences", "Timeslices", "RatioTimeslices"]
    objectives: list[OObjective] = Field(min_length=1)
    alert_policies: list[OAlertPolicyItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _service(self) -> Self:
        if (self.service is None) == (self.service_ref is None):
            raise ValueError("give 'service' (or the Go SDK's 'serviceRef')")
        return self


class OServiceSpec(OpenSLOModel):
    """A service; only its description is defined."""

    description: str | None = None


class OEnvelope(OpenSLOModel):
    """apiVersion, kind, metadata; the spec is validated by kind."""

    api_version: str
    kind: Literal["SLO", "SLI", "DataSource", "Service", "AlertPolicy", "AlertCondition", "AlertNotificationTarget"]
    metadata: OMetadata
    spec: dict[str, Any] = Field(default_factory=dict)
    """Optional for objects that need none (a Service written as its name alone)."""


SPEC_MODELS: dict[str, type[OpenSLOModel]] = {
    "SLO": OSLOSpec,
    "SLI": OSLISpec,
    "DataSource": ODataSourceSpec,
    "Service": OServiceSpec,
    "AlertPolicy": OAlertPolicySpec,
    "AlertCondition": OAlertConditionSpec,
    "AlertNotificationTarget": ONotificationTargetSpec,
}
