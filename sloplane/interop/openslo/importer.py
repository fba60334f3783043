"""OpenSLO (v1 and v2alpha) documents into sloplane declarations.

Mapping, in short:
- each objective becomes one SLO (`<name>-<objective>` when there are several); an SLO whose
  objectives carry their own indicators is a composite: one weighted composite SLO over one SLO per
  objective, or over an existing SLO that uses the same indicator on its own;
- ratioMetric good/bad/total become a ratio SLI; `counter: true` Prometheus selectors are wrapped in
  `sum(rate(...[{{window}}]))` (gauges in `sum_over_time`), queries that already hold `{{window}}`
  (or Sloth's `{{.window}}`) are used as written; raw becomes a raw SLI; thresholdMetric with the
  objective's op/value becomes a threshold SLI;
- alert policies switch the page/ticket tiers by their conditions' severities;
- what OpenSLO cannot say travels in `sloplane.dev/<field>` annotations (written by our export) and
  wins over the native fields, so import(export(x)) == x.
"""

from __future__ import annotations

import copy as copy_module
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from sloplane.declaration.diagnostics import Diagnostic, Loc, Position, Severity, format_loc
from sloplane.declaration.model import API_VERSION, KIND, Declaration, Spec
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.sli import WINDOW_PLACEHOLDER, Backend, normalise_placeholders
from sloplane.declaration.validation import did_you_mean, validate
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.openslo.models import (
    SPEC_MODELS,
    OAlertConditionSpec,
    OAlertPolicySpec,
    ODataSourceSpec,
    OEnvelope,
    OInlineSLI,
    OMetric,
    OObjective,
    OSLISpec,
    OSLOSpec,
    OTimeWindow,
)

OPENSLO_V1 = "openslo/v1"
OPENSLO_V2ALPHA = "openslo.com/v2alpha"
OPENSLO_API_VERSIONS = (OPENSLO_V1, OPENSLO_V2ALPHA, "openslo/v2alpha")
ANNOTATION_PREFIX = "sloplane.dev/"
DISPLAY_NAME_ANNOTATION = ANNOTATION_PREFIX + "display-name"
UNASSIGNED_TEAM = "unassigned"

_SHORTHAND = re.compile(r"^(\d+)([mhdwMQY])$")
_SHORTHAND_DAYS = {"M": 30, "Q": 90, "Y": 365}
_CALENDAR_UNITS = {"1w": "week", "1M": "month", "1Q": "quarter"}
_PAGE_SEVERITIES = frozenset({"page", "critical", "sev1", "sev-1", "p1", "high", "urgent"})
_PLAIN_SELECTOR = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^{}]*\})?$|^\{[^{}]+\}$")
_BACKEND_TYPES = {"prometheus": Backend.PROMETHEUS, "datadog": Backend.DATADOG}


class ImportProblemError(Exception):
    """Something in an OpenSLO document that sloplane cannot take, at a field of that document."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass
class _Object:
    """A parsed OpenSLO object with the document it came from."""

    document: YamlDocument
    envelope: OEnvelope
    spec: Any


@dataclass
class _Catalog:
    """OpenSLO objects by kind and name, for resolving references across documents and files."""

    objects: dict[str, dict[str, _Object]] = field(default_factory=dict)

    def get(self, kind: str, name: str, loc: Loc) -> _Object:
        found = self.objects.get(kind, {}).get(name)
        if found is None:
            known = sorted(self.objects.get(kind, {}))
            raise ImportProblemError(loc, f"refers to unknown {kind} '{name}'{did_you_mean(name, known)}")
        return found


class TranslatedSource:
    """Locates fields of an imported declaration in the OpenSLO document they came from."""

    def __init__(self, document: YamlDocument, mapping: list[tuple[Loc, Loc]]) -> None:
        self.path = document.path
        self._document = document
        self._mapping = mapping

    def position(self, loc: Loc, *, key: bool = False) -> Position:
        """The OpenSLO field our field was made from, else the SLO's spec."""
        for ours, theirs in self._mapping:
            if loc[: len(ours)] == ours:
                return self._document.position(theirs, key=key)
        return self._document.position(("spec",), key=True)


def _problem(document: YamlDocument, loc: Loc, message: str, severity: Severity = Severity.ERROR) -> Diagnostic:
    return Diagnostic(document.path, document.position(loc), format_loc(loc), message, severity, "openslo")


def _parse(documents: list[YamlDocument], diagnostics: list[Diagnostic]) -> _Catalog:
    catalog = _Catalog()
    for document in documents:
        envelope, found = validate(OEnvelope, document.data, document)
        diagnostics.extend(found)
        if envelope is None:
            continue
        spec_model = SPEC_MODELS[envelope.kind]
        prefixed = _PrefixedLocator(document, ("spec",))
        spec, found = validate(spec_model, envelope.spec, prefixed)
        diagnostics.extend(found)
        if spec is None:
            continue
        by_name = catalog.objects.setdefault(envelope.kind, {})
        if envelope.metadata.name in by_name:
            first = by_name[envelope.metadata.name].document
            diagnostics.append(
                _problem(
                    document,
                    ("metadata", "name"),
                    f"duplicate {envelope.kind} '{envelope.metadata.name}' "
                    f"(first at {first.path}:{first.position(('metadata', 'name')).line})",
                )
            )
            continue
        by_name[envelope.metadata.name] = _Object(document, envelope, spec)
    return catalog


class _PrefixedLocator:
    """Positions for a model validated from a sub-tree of a document."""

    def __init__(self, document: YamlDocument, prefix: Loc) -> None:
        self.path = document.path
        self._document = document
        self._prefix = prefix

    def position(self, loc: Loc, *, key: bool = False) -> Position:
        return self._document.position((*self._prefix, *loc), key=key)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _percent(objective: OObjective) -> float:
    if objective.target_percent is not None:
        return objective.target_percent
    assert objective.target is not None
    return float(Decimal(repr(objective.target)) * 100)


def parse_shorthand(text: str, loc: Loc) -> tuple[int, str]:
    """OpenSLO duration-shorthand: '28d' -> (28, 'd')."""
    match = _SHORTHAND.match(text.strip())
    if match is None:
        raise ImportProblemError(loc, f"'{text}' is not an OpenSLO duration (a number and one of m h d w M Q Y)")
    return int(match.group(1)), match.group(2)


def shorthand_to_duration(text: str, loc: Loc) -> str:
    """OpenSLO shorthand as our duration text; months, quarters and years become 30, 90, 365 days."""
    amount, unit = parse_shorthand(text, loc)
    if unit in _SHORTHAND_DAYS:
        return f"{amount * _SHORTHAND_DAYS[unit]}d"
    return f"{amount}{unit}"


def _window(windows: list[OTimeWindow]) -> dict[str, Any] | str | None:
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
    return {"calendar": unit, "timeZone": time_zone}


def _query_of(metric: OMetric, catalog: _Catalog, loc: Loc) -> tuple[Backend, str]:
    """Which backend a metric slot reads and its query text."""
    if metric.metric_source is not None:
        source = metric.metric_source
        kind_text = source.type
        ref_loc: Loc = (*loc, "metricSource", "metricSourceRef")
        if kind_text is None and source.metric_source_ref is not None:
            kind_text = catalog.get("DataSource", source.metric_source_ref, ref_loc).spec.type
        spec, spec_loc = source.spec, (*loc, "metricSource", "spec")
    else:
        inline: ODataSourceSpec | None = metric.data_source_spec
        if inline is not None:
            kind_text = inline.type
        elif metric.data_source_ref is not None:
            kind_text = catalog.get("DataSource", metric.data_source_ref, (*loc, "dataSourceRef")).spec.type
        else:
            raise ImportProblemError(loc, "give 'dataSourceRef' or 'dataSourceSpec'")
        assert metric.spec is not None
        spec, spec_loc = metric.spec, (*loc, "spec")
    if kind_text is None:
        raise ImportProblemError(loc, "the metric source names no type (Prometheus or Datadog) and no DataSource")
    backend = _BACKEND_TYPES.get(kind_text.lower())
    if backend is None:
        raise ImportProblemError(loc, f"data source type '{kind_text}' is not supported (Prometheus, Datadog)")
    query = spec.get("query", spec.get("promql"))
    if not isinstance(query, str) or not query.strip():
        raise ImportProblemError(spec_loc, "the metric source spec has no 'query'")
    return backend, normalise_placeholders(query.strip())


def _windowed(query: str, backend: Backend, counter: bool, loc: Loc, warnings: list[tuple[Loc, str]]) -> str:
    """A Prometheus query over `{{window}}`: as written when it has one, else wrapped."""
    if backend is not Backend.PROMETHEUS or WINDOW_PLACEHOLDER in query:
        return query
    function = "rate" if counter else "sum_over_time"
    if _PLAIN_SELECTOR.match(query):
        return f"sum({function}({query}[{WINDOW_PLACEHOLDER}]))"
    warnings.append(
        (
            loc,
            f"query is not a plain selector, so it is wrapped in a subquery ({function} over "
            f"{WINDOW_PLACEHOLDER}); write the windowed query yourself with {WINDOW_PLACEHOLDER} for exact results",
        )
    )
    return f"sum({function}(({query})[{WINDOW_PLACEHOLDER}:]))"


def _sli(
    indicator: OSLISpec, objective: OObjective, catalog: _Catalog, loc: Loc, warnings: list[tuple[Loc, str]]
) -> tuple[dict[str, Any], Backend]:
    """Our `sli` mapping from an OpenSLO indicator (thresholds take the objective's op/value), and its backend."""
    if indicator.threshold_metric is not None:
        if objective.op is None or objective.value is None:
            raise ImportProblemError(loc, "a thresholdMetric needs 'op' and 'value' on its objective")
        backend, query = _query_of(indicator.threshold_metric, catalog, (*loc, "thresholdMetric"))
        return {"threshold": {"query": {backend.value: query}, "op": objective.op, "value": objective.value}}, backend
    ratio = indicator.ratio_metric
    assert ratio is not None
    ratio_loc = (*loc, "ratioMetric")
    if ratio.raw is not None:
        backend, query = _query_of(ratio.raw, catalog, (*ratio_loc, "raw"))
        error_ratio = query if ratio.raw_type == "failure" else f"1 - ({query})"
        return {"raw": {"errorRatio": {backend.value: error_ratio}}}, backend
    slots: dict[str, tuple[Backend, str]] = {}
    for part in ("good", "bad", "total"):
        metric = getattr(ratio, part)
        if metric is not None:
            backend, query = _query_of(metric, catalog, (*ratio_loc, part))
            slots[part] = (backend, _windowed(query, backend, ratio.counter, (*ratio_loc, part), warnings))
    backends = {backend for backend, _ in slots.values()}
    if len(backends) != 1:
        raise ImportProblemError(ratio_loc, "good/bad and total read different backends")
    ratio_data = {("errors" if part == "bad" else part): {b.value: query} for part, (b, query) in slots.items()}
    return {"ratio": ratio_data}, backends.pop()


def _targets_for(backend: Backend) -> dict[str, Any]:
    """A Datadog indicator renders for Datadog; a Prometheus one keeps the default targets."""
    return {"targets": [Backend.DATADOG.value]} if backend is Backend.DATADOG else {}


def _indicator(
    inline: OInlineSLI | None, ref: str | None, catalog: _Catalog, loc_inline: Loc, loc_ref: Loc
) -> tuple[OSLISpec, Loc, str | None] | None:
    """(indicator spec, where its fields are, the SLI's name when referenced) or None."""
    if inline is not None:
        return inline.spec, (*loc_inline, "spec"), None
    if ref is not None:
        found = catalog.get("SLI", ref, loc_ref)
        return found.spec, loc_ref, ref
    return None


def _tiers(spec: OSLOSpec, catalog: _Catalog) -> dict[str, bool]:
    """Which alert tiers the SLO's policies ask for; {} (defaults) when it has none."""
    if not spec.alert_policies:
        return {}
    severities: list[str] = []
    for index, item in enumerate(spec.alert_policies):
        loc: Loc = ("spec", "alertPolicies", index)
        policy: OAlertPolicySpec = (
            item.spec if item.spec is not None else catalog.get("AlertPolicy", str(item.alert_policy_ref), loc).spec
        )
        for position, condition in enumerate(policy.conditions):
            found: OAlertConditionSpec = (
                condition.spec
                if condition.spec is not None
                else catalog.get("AlertCondition", str(condition.condition_ref), (*loc, "conditions", position)).spec
            )
            severities.append(found.severity.lower())
    return {
        "page": any(s in _PAGE_SEVERITIES for s in severities),
        "ticket": any(s not in _PAGE_SEVERITIES for s in severities),
    }


def _labels(raw: dict[str, str | list[str]]) -> dict[str, str]:
    return {key: value if isinstance(value, str) else ",".join(value) for key, value in raw.items()}


@dataclass
class Converted:
    """One declaration made from OpenSLO, before validation, with its field map and warnings."""

    data: dict[str, Any]
    mapping: list[tuple[Loc, Loc]]
    warnings: list[tuple[Loc, str]]
    source: _Object


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


def _base(item: _Object, catalog: _Catalog) -> tuple[dict[str, Any], list[tuple[Loc, Loc]]]:
    spec: OSLOSpec = item.spec
    metadata = item.envelope.metadata
    labels = _labels(metadata.labels)
    annotations = dict(metadata.annotations)
    if metadata.display_name:
        annotations[DISPLAY_NAME_ANNOTATION] = metadata.display_name
    service_key = "service" if spec.service is not None else "serviceRef"
    data_spec: dict[str, Any] = {
        "service": spec.service or spec.service_ref,
        "owners": {"team": labels.get("team", UNASSIGNED_TEAM)},
    }
    if spec.description:
        data_spec["description"] = spec.description
    window = _window(spec.time_window)
    if window is not None:
        data_spec["window"] = window
    tiers = _tiers(spec, catalog)
    if tiers:
        data_spec["alerting"] = tiers
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
        (("spec", "owners"), ("metadata", "labels", "team") if "team" in labels else ("metadata", "name")),
        (("spec", "alerting"), ("spec", "alertPolicies")),
    ]
    return data, mapping


def _named(base: dict[str, Any], name: str) -> dict[str, Any]:
    """A deep copy of the shared fields under another name."""
    copy: dict[str, Any] = copy_module.deepcopy(base)
    copy["metadata"]["name"] = name
    return copy


def _objective_name(base_name: str, objective: OObjective, index: int) -> str:
    suffix = _slug(objective.display_name or "") or str(index + 1)
    return f"{base_name}-{suffix}"[:63].rstrip("-")


def _standalone_sli_users(catalog: _Catalog) -> dict[str, str]:
    """SLI name -> the SLO that uses it alone with a single objective (so composites can refer to it)."""
    users: dict[str, str] = {}
    for name, item in catalog.objects.get("SLO", {}).items():
        spec: OSLOSpec = item.spec
        ref = spec.indicator_ref or spec.sli_ref
        if ref is not None and len(spec.objectives) == 1:
            users.setdefault(ref, name)
    return users


def convert_slo(item: _Object, catalog: _Catalog) -> Iterator[Converted]:
    """The declarations one OpenSLO SLO becomes (one per objective, or a composite and its parts)."""
    spec: OSLOSpec = item.spec
    base, base_mapping = _base(item, catalog)
    name = item.envelope.metadata.name
    warnings: list[tuple[Loc, str]] = []
    if "team" not in base["metadata"]["labels"] and not _has_annotation(item, "owners"):
        warnings.append(
            (
                ("metadata", "name"),
                f"no owning team: set the label team=<name> (imported as '{UNASSIGNED_TEAM}')",
            )
        )
    if _has_annotation(item, "sli"):
        # Our own export: the annotation carries the SLI, the first objective its target.
        data = _named(base, name)
        fields, mapping = _objective_fields(spec, spec.objectives[0], 0)
        data["spec"].update(fields)
        yield Converted(data, [*mapping, *base_mapping], warnings, item)
        return
    shared = _indicator(
        spec.indicator or spec.sli,
        spec.indicator_ref or spec.sli_ref,
        catalog,
        ("spec", "indicator" if spec.indicator else "sli"),
        ("spec", "indicatorRef" if spec.indicator_ref else "sliRef"),
    )
    if shared is not None:
        for index, objective in enumerate(spec.objectives):
            data = _named(base, name if len(spec.objectives) == 1 else _objective_name(name, objective, index))
            fields, mapping = _objective_fields(spec, objective, index)
            data["spec"].update(fields)
            indicator, sli_loc, _ = shared
            data["spec"]["sli"], backend = _sli(indicator, objective, catalog, sli_loc, warnings)
            data["spec"].update(_targets_for(backend))
            mapping += [(("spec", "sli"), sli_loc), (("spec", "targets"), sli_loc)]
            yield Converted(data, [*mapping, *base_mapping], list(warnings), item)
        return
    yield from _convert_composite(item, catalog, base, base_mapping, warnings)


def _convert_composite(
    item: _Object,
    catalog: _Catalog,
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
        found = _indicator(
            objective.indicator or objective.sli,
            objective.indicator_ref or objective.sli_ref,
            catalog,
            (*loc, "indicator" if objective.indicator else "sli"),
            (*loc, "indicatorRef" if objective.indicator_ref else "sliRef"),
        )
        if found is None:
            raise ImportProblemError(loc, "give the SLO an indicator, or each objective one (a composite SLO)")
        indicator, sli_loc, ref = found
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
        part["spec"]["sli"], backend = _sli(indicator, objective, catalog, sli_loc, warnings)
        part["spec"].update(_targets_for(backend))
        components.append({"slo": part_name, "weight": weight})
        yield Converted(part, [(("spec", "sli"), sli_loc), *mapping, *base_mapping], list(warnings), item)
    composite = _named(base, name)
    composite["spec"]["objective"] = float(round(weighted_sum / weight_total, 10))
    composite["spec"]["sli"] = {"composite": {"method": "weighted", "components": components}}
    mapping = [(("spec", "sli"), ("spec", "objectives")), (("spec", "objective"), ("spec", "objectives"))]
    yield Converted(composite, [*mapping, *base_mapping], list(warnings), item)


def _has_annotation(item: _Object, field_name: str) -> bool:
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


def import_openslo(documents: list[YamlDocument]) -> tuple[list[LoadedSLO], list[Diagnostic]]:
    """Our declarations from OpenSLO documents, with diagnostics positioned in those documents."""
    diagnostics: list[Diagnostic] = []
    catalog = _parse(documents, diagnostics)
    slos: list[LoadedSLO] = []
    for item in catalog.objects.get("SLO", {}).values():
        try:
            converted_all = list(convert_slo(item, catalog))
            for converted in converted_all:
                apply_annotations(converted)
        except ImportProblemError as problem:
            diagnostics.append(_problem(item.document, problem.loc, problem.message))
            continue
        for converted in converted_all:
            source = TranslatedSource(item.document, converted.mapping)
            for loc, message in converted.warnings:
                diagnostics.append(_problem(item.document, loc, message, Severity.WARNING))
            declaration, found = validate(Declaration, converted.data, source)
            diagnostics.extend(found)
            if declaration is not None:
                slos.append(LoadedSLO(declaration, source, item.envelope.api_version))
    return slos, _unique(diagnostics)


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Warnings repeat when one OpenSLO SLO yields several declarations; keep each once."""
    return list(dict.fromkeys(diagnostics))


def native_declarations(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Declaration data from OpenSLO documents *without* our annotations (used by export's diff)."""
    fake = [YamlDocument(path="<export>", index=i, data=data, start=Position(1, 1)) for i, data in enumerate(documents)]
    catalog = _parse(fake, [])
    result: dict[str, dict[str, Any]] = {}
    for item in catalog.objects.get("SLO", {}).values():
        try:
            for converted in convert_slo(item, catalog):
                result[converted.data["metadata"]["name"]] = converted.data
        except ImportProblemError:
            continue
    return result


def as_data(model: BaseModel) -> Any:
    """JSON-shaped data of a model, camelCase keys, defaults left out (how annotations hold fields)."""
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
