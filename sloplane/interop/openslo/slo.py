"""One OpenSLO SLO as the sloplane declarations it becomes, before they are validated.

Mapping, in short:
- each objective becomes one SLO (`<name>-<objective>` when there are several); an SLO whose
  objectives carry their own indicators is a composite: one weighted composite SLO over one SLO per
  objective, or over an existing SLO that uses the same indicator on its own;
- the indicator becomes our `sli` (see `indicators`); timeWindow becomes our window (rolling, or a
  calendar week, month or quarter), budgetingMethod Timeslices our timeslice budgeting;
- alert policies switch the page/ticket tiers by their conditions' severities;
- labels (the `team` label is the owner) and annotations are kept; what OpenSLO cannot say travels
  in `sloplane.dev/<field>` annotations (written by our export) and wins over the native fields,
  so import(export(x)) == x.

It is separate from `importer` so that the entry points (which collect documents, validate and
position diagnostics) stay apart from the field-by-field translation, and from `indicators` so that
metric sources and query text stay apart from objectives, windows, alerting and metadata.
"""

from __future__ import annotations

import copy as copy_module
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.model import API_VERSION, KIND, Spec, Window
from sloplane.declaration.validation import did_you_mean
from sloplane.interop.openslo.alerting import alerting_of
from sloplane.interop.openslo.catalog import Catalog, ImportProblemError, ParsedObject
from sloplane.interop.openslo.indicators import find_indicator, sli_of, targets_for
from sloplane.interop.openslo.models import (
    OObjective,
    OSLISpec,
    OSLOSpec,
    OTimeWindow,
)
from sloplane.interop.openslo.units import shorthand_to_duration
from sloplane.interop.translation import OWNER_LABELS, UNASSIGNED_TEAM, as_name, owner_label

ANNOTATION_PREFIX = "sloplane.dev/"
DISPLAY_NAME_ANNOTATION = ANNOTATION_PREFIX + "display-name"

_CALENDAR_UNITS = {"1w": "week", "1M": "month", "1Q": "quarter"}


def _percent(objective: OObjective) -> float:
    if objective.target_percent is not None:
        return objective.target_percent
    assert objective.target is not None
    return float(Decimal(repr(objective.target)) * 100)


def _calendar_start(window: OTimeWindow, unit: str, warnings: list[tuple[Loc, str]]) -> None:
    """sloplane's calendar periods start at midnight on a Monday, a month's or a quarter's first day, in the
    window's time zone; a startTime that says otherwise is warned about (never silently moved)."""
    start = window.calendar.start_time if window.calendar else None
    if start is None:
        return
    text = str(start)
    try:
        instant = datetime.fromisoformat(text) if not isinstance(start, datetime) else start
    except ValueError:
        warnings.append((_START_LOC, f"startTime '{text}' is not a date and time: periods start as sloplane's do"))
        return
    if isinstance(instant, date) and not isinstance(instant, datetime):
        instant = datetime(instant.year, instant.month, instant.day)
    aligned = instant.time() == time(0) and (
        (unit == "week" and instant.weekday() == 0)
        or (unit == "month" and instant.day == 1)
        or (unit == "quarter" and instant.day == 1 and instant.month in (1, 4, 7, 10))
    )
    if not aligned:
        warnings.append(
            (
                _START_LOC,
                f"startTime '{text}' is not the start of a {unit}: sloplane's calendar {unit}s start at midnight "
                f"on their first day ({'Monday' if unit == 'week' else 'the 1st'}) in the window's time zone",
            )
        )


_START_LOC: Loc = ("spec", "timeWindow", 0, "calendar", "startTime")


def _window(windows: list[OTimeWindow], warnings: list[tuple[Loc, str]]) -> dict[str, Any] | str | None:
    if not windows:
        return None
    window = windows[0]
    loc: Loc = ("spec", "timeWindow", 0, "duration")
    rolling = window.is_rolling if window.is_rolling is not None else window.calendar is None
    if rolling:
        return shorthand_to_duration(window.duration, loc)
    unit = _CALENDAR_UNITS.get(window.duration.strip())
    if unit is None:
        raise ImportProblemError(loc, f"calendar window '{window.duration}' is not supported: use 1w, 1M or 1Q")
    time_zone = window.calendar.time_zone if window.calendar else "UTC"
    _calendar_start(window, unit, warnings)
    return {"calendar": unit, "timeZone": time_zone}


def _period(window: dict[str, Any] | str | None) -> timedelta | None:
    """The period our window data will have (None when it does not validate: the error comes later)."""
    try:
        return Window.model_validate(window if window is not None else "30d").period
    except ValidationError:
        return None


def _labels(raw: dict[str, str | list[str]], warnings: list[tuple[Loc, str]]) -> dict[str, str]:
    """One value per label: a list of one is that value; several are joined with commas, with a warning."""
    labels: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            labels[key] = value
        elif len(value) == 1:
            labels[key] = value[0]
        else:
            labels[key] = ",".join(value)
            warnings.append(
                (
                    ("metadata", "labels", key),
                    f"label '{key}' has {len(value)} values; sloplane keeps labels as one "
                    f"value, so it is '{labels[key]}'",
                )
            )
    return labels


def _owner(raw: dict[str, str | list[str]]) -> tuple[str, str] | None:
    """(label, team) from the first owner label present; a list's first value."""
    key = owner_label(raw)
    if key is None:
        return None
    value = raw[key]
    return key, value if isinstance(value, str) else value[0]


@dataclass
class Converted:
    """One declaration made from OpenSLO, before validation, with its field map and warnings."""

    data: dict[str, Any]
    mapping: list[tuple[Loc, Loc]]
    warnings: list[tuple[Loc, str]]
    source: ParsedObject


def _objective_fields(
    spec: OSLOSpec, objective: OObjective, index: int
) -> tuple[dict[str, Any], list[tuple[Loc, Loc]]]:
    loc: Loc = ("spec", "objectives", index)
    fields: dict[str, Any] = {"objective": _percent(objective)}
    if spec.budgeting_method == "RatioTimeslices":
        raise ImportProblemError(
            ("spec", "budgetingMethod"), "RatioTimeslices is not supported: use Occurrences or Timeslices"
        )
    if spec.budgeting_method == "Timeslices":
        if objective.time_slice_target is None or objective.time_slice_window is None:
            raise ImportProblemError(loc, "Timeslices needs 'timeSliceTarget' and 'timeSliceWindow' on each objective")
        window = objective.time_slice_window
        window_text = f"{int(window)}m" if isinstance(window, int | float) else shorthand_to_duration(window, loc)
        fields["budgetingMethod"] = "timeslices"
        fields["timeslice"] = {
            "window": window_text,
            "target": float(Decimal(repr(objective.time_slice_target)) * 100),
        }
    return fields, [(("spec", "objective"), loc), (("spec", "timeslice"), loc)]


def _base(
    item: ParsedObject, catalog: Catalog, warnings: list[tuple[Loc, str]]
) -> tuple[dict[str, Any], list[tuple[Loc, Loc]]]:
    spec: OSLOSpec = item.spec
    metadata = item.envelope.metadata
    labels = _labels(metadata.labels, warnings)
    owner = _owner(metadata.labels)
    annotations = dict(metadata.annotations)
    if metadata.display_name:
        annotations[DISPLAY_NAME_ANNOTATION] = metadata.display_name
    service_key = "service" if spec.service is not None else "serviceRef"
    data_spec: dict[str, Any] = {
        "service": spec.service or spec.service_ref,
        "owners": {"team": owner[1] if owner else UNASSIGNED_TEAM},
    }
    if owner is not None and isinstance(metadata.labels[owner[0]], list) and len(metadata.labels[owner[0]]) > 1:
        warnings.append((("metadata", "labels", owner[0]), f"several owners: '{owner[1]}', the first, owns the SLO"))
    if spec.description:
        data_spec["description"] = spec.description
    window = _window(spec.time_window, warnings)
    if window is not None:
        data_spec["window"] = window
    alerting = alerting_of(spec, catalog, warnings, _period(window))
    if alerting:
        data_spec["alerting"] = alerting
    data = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": metadata.name, "labels": labels, "annotations": annotations},
        "spec": data_spec,
    }
    mapping: list[tuple[Loc, Loc]] = [
        (("metadata",), ("metadata",)),
        (("spec", "service"), ("spec", service_key)),
        (("spec", "description"), ("spec", "description")),
        (("spec", "window"), ("spec", "timeWindow")),
        (("spec", "budgetingMethod"), ("spec", "budgetingMethod")),
        (("spec", "owners"), ("metadata", "labels", owner[0]) if owner else ("metadata", "name")),
        (("spec", "alerting"), ("spec", "alertPolicies")),
    ]
    return data, mapping


def _keep_objective_display_name(
    data: dict[str, Any], display_name: str, index: int, warnings: list[tuple[Loc, str]]
) -> None:
    """A lone objective's displayName names the SLO when the SLO has none; otherwise it is said to be dropped.

    (With several objectives it names each declaration: `<slo>-<display name>`.)"""
    annotations = data["metadata"]["annotations"]
    if DISPLAY_NAME_ANNOTATION not in annotations:
        annotations[DISPLAY_NAME_ANNOTATION] = display_name
    elif annotations[DISPLAY_NAME_ANNOTATION] != display_name:
        loc: Loc = ("spec", "objectives", index, "displayName")
        warnings.append((loc, f"objective displayName '{display_name}' is not kept: the SLO's own displayName is"))


def _named(base: dict[str, Any], name: str) -> dict[str, Any]:
    """A deep copy of the shared fields under another name."""
    copy: dict[str, Any] = copy_module.deepcopy(base)
    copy["metadata"]["name"] = name
    return copy


def _objective_name(base_name: str, objective: OObjective, index: int) -> str:
    suffix = as_name(objective.display_name or "") or str(index + 1)
    return f"{base_name}-{suffix}"[:63].rstrip("-")


def _standalone_sli_users(catalog: Catalog) -> dict[str, str]:
    """SLI name -> the SLO that uses it alone with a single objective (so composites can refer to it)."""
    users: dict[str, str] = {}
    for name, item in catalog.objects.get("SLO", {}).items():
        spec: OSLOSpec = item.spec
        ref = spec.indicator_ref or spec.sli_ref
        if ref is not None and len(spec.objectives) == 1:
            users.setdefault(ref, name)
    return users


def convert_slo(item: ParsedObject, catalog: Catalog) -> Iterator[Converted]:
    """The declarations one OpenSLO SLO becomes (one per objective, or a composite and its parts)."""
    spec: OSLOSpec = item.spec
    warnings: list[tuple[Loc, str]] = []
    base, base_mapping = _base(item, catalog, warnings)
    name = item.envelope.metadata.name
    if _owner(item.envelope.metadata.labels) is None and not _has_annotation(item, "owners"):
        warnings.append(
            (
                ("metadata", "name"),
                f"no owning team: OpenSLO has no owner field; set the label team=<name> "
                f"(or {', '.join(OWNER_LABELS[1:])}) (imported as '{UNASSIGNED_TEAM}')",
            )
        )
    if _has_annotation(item, "sli"):
        # Our own export: the annotation carries the SLI, the first objective its target.
        data = _named(base, name)
        fields, mapping = _objective_fields(spec, spec.objectives[0], 0)
        data["spec"].update(fields)
        yield Converted(data, [*mapping, *base_mapping], warnings, item)
        return
    shared = find_indicator(
        spec.indicator or spec.sli,
        spec.indicator_ref or spec.sli_ref,
        catalog,
        ("spec", "indicator" if spec.indicator else "sli"),
        ("spec", "indicatorRef" if spec.indicator_ref else "sliRef"),
    )
    if shared is not None:
        for index, objective in enumerate(spec.objectives):
            data = _named(base, name if len(spec.objectives) == 1 else _objective_name(name, objective, index))
            if len(spec.objectives) == 1 and objective.display_name:
                _keep_objective_display_name(data, objective.display_name, index, warnings)
            fields, mapping = _objective_fields(spec, objective, index)
            data["spec"].update(fields)
            indicator, sli_loc, _ = shared
            _check_threshold_fields(indicator, objective, index)
            data["spec"]["sli"], backend = sli_of(indicator, objective, catalog, sli_loc, warnings)
            data["spec"].update(targets_for(backend))
            mapping += [(("spec", "sli"), sli_loc), (("spec", "targets"), sli_loc)]
            yield Converted(data, [*mapping, *base_mapping], list(warnings), item)
        return
    yield from _convert_composite(item, catalog, base, base_mapping, warnings)


def _convert_composite(
    item: ParsedObject,
    catalog: Catalog,
    base: dict[str, Any],
    base_mapping: list[tuple[Loc, Loc]],
    warnings: list[tuple[Loc, str]],
) -> Iterator[Converted]:
    spec: OSLOSpec = item.spec
    name = item.envelope.metadata.name
    users = _standalone_sli_users(catalog)
    components: list[dict[str, Any]] = []
    weighted_sum = Decimal(0)
    weight_total = Decimal(0)
    for index, objective in enumerate(spec.objectives):
        loc: Loc = ("spec", "objectives", index)
        found = find_indicator(
            objective.indicator or objective.sli,
            objective.indicator_ref or objective.sli_ref,
            catalog,
            (*loc, "indicator" if objective.indicator else "sli"),
            (*loc, "indicatorRef" if objective.indicator_ref else "sliRef"),
        )
        if found is None:
            raise ImportProblemError(loc, "give the SLO an indicator, or each objective one (a composite SLO)")
        indicator, sli_loc, ref = found
        _check_threshold_fields(indicator, objective, index)
        weight = objective.composite_weight or 1.0
        weighted_sum += Decimal(repr(_percent(objective))) * Decimal(repr(weight))
        weight_total += Decimal(repr(weight))
        existing = users.get(ref) if ref is not None else None
        if existing is not None and existing != name:
            components.append({"slo": existing, "weight": weight})
            continue
        part_name = _objective_name(name, objective, index)
        part = _named(base, part_name)
        fields, mapping = _objective_fields(spec, objective, index)
        part["spec"].update(fields)
        part["spec"]["sli"], backend = sli_of(indicator, objective, catalog, sli_loc, warnings)
        part["spec"].update(targets_for(backend))
        components.append({"slo": part_name, "weight": weight})
        yield Converted(part, [(("spec", "sli"), sli_loc), *mapping, *base_mapping], list(warnings), item)
    composite = _named(base, name)
    composite["spec"]["objective"] = float(round(weighted_sum / weight_total, 10))
    composite["spec"]["sli"] = {"composite": {"method": "weighted", "components": components}}
    mapping = [(("spec", "sli"), ("spec", "objectives")), (("spec", "objective"), ("spec", "objectives"))]
    yield Converted(composite, [*mapping, *base_mapping], list(warnings), item)


def objective_problems(item: ParsedObject, catalog: Catalog) -> list[ImportProblemError]:
    """Every problem of the SLO's budgeting and objectives at once, before translating stops at the first.

    These checks do not depend on each other, so `validate` can list them all in one run.
    """
    spec: OSLOSpec = item.spec
    problems: list[ImportProblemError] = []
    if spec.budgeting_method == "RatioTimeslices":
        problems.append(
            ImportProblemError(
                ("spec", "budgetingMethod"), "RatioTimeslices is not supported: use Occurrences or Timeslices"
            )
        )
    shared = spec.indicator or spec.sli
    for index, objective in enumerate(spec.objectives):
        own = objective.indicator or objective.sli
        inline = own or shared
        ref = (objective.indicator_ref or objective.sli_ref) if own is None else None
        ref = ref or (spec.indicator_ref or spec.sli_ref if inline is None else None)
        indicator = inline.spec if inline is not None else None
        if indicator is None and ref is not None and ref in catalog.objects.get("SLI", {}):
            indicator = catalog.objects["SLI"][ref].spec
        try:
            if indicator is not None:
                _check_threshold_fields(indicator, objective, index)
            _timeslice_fields(spec, objective, index)
        except ImportProblemError as problem:
            problems.append(problem)
    return problems


def _timeslice_fields(spec: OSLOSpec, objective: OObjective, index: int) -> None:
    if spec.budgeting_method == "Timeslices" and (
        objective.time_slice_target is None or objective.time_slice_window is None
    ):
        raise ImportProblemError(
            ("spec", "objectives", index), "Timeslices needs 'timeSliceTarget' and 'timeSliceWindow' on each objective"
        )


def _check_threshold_fields(indicator: OSLISpec, objective: OObjective, index: int) -> None:
    """`op` and `value` belong to threshold objectives; on a ratio they would be silently meaningless."""
    if indicator.threshold_metric is not None and (objective.op is None or objective.value is None):
        where: Loc = ("spec", "objectives", index, "op") if objective.op is not None else ("spec", "objectives", index)
        raise ImportProblemError(where, "a thresholdMetric needs 'op' and 'value' on its objective")
    if indicator.ratio_metric is not None and (objective.op is not None or objective.value is not None):
        field_name = "op" if objective.op is not None else "value"
        raise ImportProblemError(
            ("spec", "objectives", index, field_name),
            f"'{field_name}' applies to a thresholdMetric; an objective of a ratioMetric has only a target",
        )


def _has_annotation(item: ParsedObject, field_name: str) -> bool:
    return ANNOTATION_PREFIX + field_name in item.envelope.metadata.annotations


def apply_annotations(converted: Converted) -> None:
    """Let `sloplane.dev/<field>` annotations (from our export) override the native fields."""
    annotations: dict[str, str] = converted.data["metadata"]["annotations"]
    for key in [k for k in annotations if k.startswith(ANNOTATION_PREFIX) and k != DISPLAY_NAME_ANNOTATION]:
        loc: Loc = ("metadata", "annotations", key)
        field_name = key.removeprefix(ANNOTATION_PREFIX)
        try:
            value = json.loads(annotations.pop(key))
        except json.JSONDecodeError as error:
            raise ImportProblemError(loc, f"annotation is not JSON: {error.msg}") from None
        if field_name == "labels":
            converted.data["metadata"]["labels"] = value
        elif field_name in _spec_keys():
            converted.data["spec"][field_name] = value
        else:
            raise ImportProblemError(
                loc, f"unknown sloplane annotation '{key}'{did_you_mean(field_name, _spec_keys())}"
            )
        converted.mapping.insert(0, ((("metadata",) if field_name == "labels" else ("spec", field_name)), loc))


def _spec_keys() -> list[str]:
    return sorted(info.alias or name for name, info in Spec.model_fields.items())


def as_data(model: BaseModel) -> Any:
    """JSON-shaped data of a model, camelCase keys, defaults left out (how annotations hold fields)."""
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
