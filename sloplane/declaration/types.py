"""Field types shared by the declaration models: names, labels, durations, objectives, cron, zones.

Each type carries its own check and a message written for the person editing the YAML, so that the
models stay declarative and every error reads the same wherever the field appears.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from sloplane.core.durations import DurationError, format_duration, parse_duration
from sloplane.core.text import excerpt

_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PROMETHEUS_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class SpecModel(BaseModel):
    """Base of every declaration model: camelCase keys in YAML, unknown keys refused, immutable.

    Only the camelCase spelling is accepted, so `error_ratio` in a file is reported as unknown
    (with a did-you-mean) instead of silently meaning `errorRatio`.
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_alias=True,
        frozen=True,
        str_strip_whitespace=True,
    )


def with_string_shorthand(
    description: str,
) -> Any:
    """A `__get_pydantic_json_schema__` that also admits the model's one-string shorthand.

    Models whose before-validator turns a plain string into the full mapping (`window: 30d`,
    `dependencies: [name]`) must say so in the JSON Schema, or editors flag valid files.
    """

    def schema(cls: type[BaseModel], core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        full = handler(core_schema)
        return {"anyOf": [{"type": "string", "description": description}, full]}

    return classmethod(schema)


def _check_rfc1123_label(value: str) -> str:
    if len(value) > 63:
        raise ValueError(f"'{value}' is {len(value)} characters long; a name has at most 63")
    if not _RFC1123_LABEL.match(value):
        raise ValueError(
            f"'{value}' is not an RFC 1123 name: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _check_label_name(value: str) -> str:
    if not _PROMETHEUS_LABEL.match(value) or value.startswith("__"):
        raise ValueError(
            f"'{value}' is not a usable label name: letters, digits and '_', not starting with a digit or '__'"
        )
    return value


_DATADOG_TAG_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-/]{0,199}$")
_DATADOG_TAG_VALUE = re.compile(r"^[^\s,{}()!*?]+$")


def _check_datadog_tag_key(value: str) -> str:
    if not _DATADOG_TAG_KEY.match(value):
        raise ValueError(f"'{value}' is not a Datadog tag key: a letter, then letters, digits, '_', '.', '-' or '/'")
    return value


def _check_datadog_tag_value(value: str) -> str:
    if not _DATADOG_TAG_VALUE.match(value):
        raise ValueError(f"'{value}' is not a literal Datadog tag value: no spaces, commas, braces, '!', '*' or '?'")
    return value


def _check_metric_name(value: str) -> str:
    if not _METRIC_NAME.match(value):
        raise ValueError(f"'{value}' is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
    return value


def _parse_duration_field(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError("a duration must be positive")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 5m, 1h or 28d, got {type(value).__name__} {value!r}")
    try:
        return parse_duration(value)
    except DurationError as error:
        raise ValueError(str(error)) from None


def _check_objective(value: float) -> float:
    if not 0 < value < 100:
        raise ValueError(
            f"objective {value:g} must be strictly between 0 and 100 "
            "(a percentage; 100 would leave no error budget at all)"
        )
    return value


def _check_time_zone(value: str) -> str:
    """An IANA zone name. OSError too: zoneinfo opens a file named by the value, and a name longer than the file
    system allows (or with bytes it refuses) is an unknown zone like any other, not a fault."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = [zone for zone in sorted(available_timezones()) if zone.lower() == value.lower()]
        hint = f" (did you mean '{close[0]}'?)" if close else " (use an IANA name such as Europe/Berlin or UTC)"
        raise ValueError(f"unknown time zone '{excerpt(value)}'{hint}") from None
    return value


def _check_cron(value: str) -> str:
    fields = value.split()
    if any(field[:1] in ("R", "H") for field in fields):
        raise ValueError(f"'{value}': random or hashed cron fields (R, H) have no fixed time to plan around")
    if len(fields) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f"'{value}' is not a cron schedule: five fields, minute hour day-of-month month day-of-week "
            "(e.g. '0 2 * * SUN')"
        )
    return value


Name = Annotated[str, AfterValidator(_check_rfc1123_label)]
"""An RFC 1123 label: it becomes a Kubernetes object name, a rule group and a file name."""

LabelName = Annotated[str, AfterValidator(_check_label_name)]
"""A label key valid in Prometheus, Alertmanager and Datadog tags alike."""

MetricName = Annotated[str, AfterValidator(_check_metric_name)]

Labels = dict[LabelName, str]

DatadogTagKey = Annotated[str, AfterValidator(_check_datadog_tag_key)]
"""A Datadog tag key, which may hold dots (APM's `http.status_code`), unlike a Prometheus label."""
DatadogTags = dict[DatadogTagKey, Annotated[str, AfterValidator(_check_datadog_tag_value)]]

Duration = Annotated[
    timedelta,
    PlainValidator(_parse_duration_field),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$"}),
]
"""A Prometheus duration (`5m`, `1h30m`, `28d`), held as a timedelta, written back as text."""

Objective = Annotated[float, Field(strict=True), AfterValidator(_check_objective)]
"""A percentage strictly between 0 and 100 (99.9 means 99.9%)."""

Percent = Annotated[float, Field(strict=True, ge=0, le=100)]

TimeZone = Annotated[str, AfterValidator(_check_time_zone)]

CronSchedule = Annotated[str, AfterValidator(_check_cron)]

StrictBool = Annotated[bool, Field(strict=True)]

PositiveFloat = Annotated[float, Field(strict=True, gt=0)]
