"""sloplane declarations out as OpenSLO v1: natively where OpenSLO can say it, annotations elsewhere.

Export first writes what OpenSLO expresses (service, indicator as an SLI object, window, budgeting,
objective, one alert policy per burn-rate window pair), then reads that back with the importer and
compares field by field with the original. Every field that did not survive is added as a
`sloplane.dev/<field>` annotation holding its JSON. That makes import(export(x)) == x true by
construction, and keeps the annotations to what OpenSLO genuinely cannot carry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from sloplane.core.serialize import canonical_json
from sloplane.declaration.model import BudgetingMethod, CalendarUnit, Declaration, Spec
from sloplane.declaration.sli import SLOTH_WINDOW_PLACEHOLDER, WINDOW_PLACEHOLDER, Backend, BackendQueries
from sloplane.interop.counts import is_plain_selector
from sloplane.interop.openslo.importer import (
    ANNOTATION_PREFIX,
    DISPLAY_NAME_ANNOTATION,
    OPENSLO_V1,
    OPENSLO_V2ALPHA,
    as_data,
    native_declarations,
)
from sloplane.semantics.indicators import prometheus_queries

_CALENDAR = {
    CalendarUnit.WEEK: ("1w", "2024-01-01 00:00:00"),
    CalendarUnit.MONTH: ("1M", "2024-01-01 00:00:00"),
    CalendarUnit.QUARTER: ("1Q", "2024-01-01 00:00:00"),
}
_TYPE_NAMES = {Backend.PROMETHEUS: "Prometheus", Backend.DATADOG: "Datadog"}


def shorthand(duration: timedelta) -> str:
    """A duration as OpenSLO duration-shorthand (one unit): 28d, 6h, 84m."""
    minutes = int(duration.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{max(minutes, 1)}m"


def _ratio_of(value: float) -> float:
    """99.9 -> 0.999 without binary noise."""
    return float(Decimal(repr(value)) / 100)


def _metric(backend: Backend, query: str) -> dict[str, Any]:
    return {"metricSource": {"type": _TYPE_NAMES[backend], "spec": {"query": query}}}


_COUNTED_SELECTOR = re.compile(r"^sum\(increase\((?P<selector>.+)\[" + re.escape(WINDOW_PLACEHOLDER) + r"\]\)\)$")


def _counter_ratio(backend: Backend, part: str, numerator: str, total: str) -> dict[str, Any]:
    """A ratio as other OpenSLO readers take it.

    Event counts of a plain counter selector (`sum(increase(sel[{{window}}]))`, what importing a
    `counter: true` metric gives) go out as that counter: `counter: true` and the selector, no
    placeholder. Any other query keeps its window, written `{{.window}}` as Sloth reads it, with
    `counter: false`, since it is already an aggregate over the window, not a counter.
    """
    selectors = [_COUNTED_SELECTOR.match(query) for query in (numerator, total)]
    if backend is Backend.PROMETHEUS and all(m and is_plain_selector(m["selector"]) for m in selectors):
        good_or_bad, everything = (m["selector"] for m in selectors if m is not None)
        return {"counter": True, part: _metric(backend, good_or_bad), "total": _metric(backend, everything)}
    windowed = (query.replace(WINDOW_PLACEHOLDER, SLOTH_WINDOW_PLACEHOLDER) for query in (numerator, total))
    good_or_bad, everything = windowed
    return {"counter": False, part: _metric(backend, good_or_bad), "total": _metric(backend, everything)}


def _preferred(*queries: BackendQueries) -> Backend | None:
    """Prometheus if every query has it, else Datadog if every query has that."""
    for backend in (Backend.PROMETHEUS, Backend.DATADOG):
        if all(q.for_backend(backend) is not None for q in queries):
            return backend
    return None


def _native_indicator(spec: Spec) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(SLI spec, objective fields) for SLIs OpenSLO can express; None otherwise."""
    sli = spec.sli
    if sli.ratio is not None:
        backend = _preferred(sli.ratio.numerator, sli.ratio.total)
        if backend is None:
            return None
        part = "bad" if sli.ratio.errors is not None else "good"
        numerator = sli.ratio.numerator.for_backend(backend)
        total = sli.ratio.total.for_backend(backend)
        assert numerator is not None and total is not None
        return {"ratioMetric": _counter_ratio(backend, part, numerator, total)}, {}
    if sli.raw is not None:
        backend = _preferred(sli.raw.error_ratio)
        query = sli.raw.error_ratio.for_backend(backend) if backend else None
        if backend is None or query is None:
            return None
        return {"ratioMetric": {"rawType": "failure", "raw": _metric(backend, query)}}, {}
    if sli.threshold is not None:
        backend = _preferred(sli.threshold.query)
        query = sli.threshold.query.for_backend(backend) if backend else None
        if backend is None or query is None:
            return None
        objective_fields = {"op": sli.threshold.op.value, "value": sli.threshold.value}
        return {"thresholdMetric": _metric(backend, query)}, objective_fields
    derived = prometheus_queries(sli, {}, spec.interval)
    if derived is None or derived.errors is None or derived.total is None:
        return None
    return {"ratioMetric": _counter_ratio(Backend.PROMETHEUS, "bad", derived.errors, derived.total)}, {}


def _time_window(spec: Spec) -> dict[str, Any]:
    window = spec.window
    if window.rolling is not None:
        return {"duration": shorthand(window.rolling), "isRolling": True}
    assert window.calendar is not None
    duration, start = _CALENDAR[window.calendar]
    return {
        "duration": duration,
        "isRolling": False,
        "calendar": {"startTime": start, "timeZone": window.time_zone or "UTC"},
    }


def _alert_policies(declaration: Declaration) -> list[dict[str, Any]]:
    spec = declaration.spec
    tiers = set(spec.alerting.enabled_tiers())
    receiver = spec.alerting.routing.background or spec.alerting.routing.deployment
    policies = []
    for alert in spec.burn_rate_alerts():
        if alert.tier not in tiers:
            continue
        name = f"{declaration.name}-{alert.tier.value}-{shorthand(alert.long_window)}"
        policy: dict[str, Any] = {
            "description": f"{alert.tier.value}: burn rate above {alert.factor:g} over {alert.name}",
            "alertWhenBreaching": True,
            "conditions": [
                {
                    "kind": "AlertCondition",
                    "metadata": {"name": name},
                    "spec": {
                        "severity": alert.tier.value,
                        "condition": {
                            "kind": "burnrate",
                            "op": "gt",
                            "threshold": alert.factor,
                            "lookbackWindow": shorthand(alert.long_window),
                            "alertAfter": "0m",
                        },
                    },
                }
            ],
        }
        if receiver:
            policy["notificationTargets"] = [
                {
                    "kind": "AlertNotificationTarget",
                    "metadata": {"name": receiver},
                    "spec": {"target": "alertmanager"},
                }
            ]
        policies.append({"kind": "AlertPolicy", "metadata": {"name": name}, "spec": policy})
    return policies


def _native_documents(declaration: Declaration) -> list[dict[str, Any]]:
    """The OpenSLO SLO document (and its SLI document) for what OpenSLO can express."""
    spec = declaration.spec
    metadata: dict[str, Any] = {"name": declaration.name}
    annotations = dict(declaration.metadata.annotations)
    display_name = annotations.pop(DISPLAY_NAME_ANNOTATION, None)
    if display_name:
        metadata["displayName"] = display_name
    if declaration.metadata.labels:
        metadata["labels"] = dict(declaration.metadata.labels)
    if annotations:
        metadata["annotations"] = annotations
    objective: dict[str, Any] = {"target": _ratio_of(spec.objective)}
    if spec.budgeting_method is BudgetingMethod.TIMESLICES and spec.timeslice is not None:
        objective["timeSliceTarget"] = _ratio_of(spec.timeslice.target)
        objective["timeSliceWindow"] = shorthand(spec.timeslice.window)
    slo_spec: dict[str, Any] = {"service": spec.service}
    if spec.description:
        slo_spec["description"] = spec.description
    documents: list[dict[str, Any]] = []
    if spec.sli.composite is not None:
        objectives = [
            {**objective, "displayName": part.slo, "indicatorRef": part.slo, "compositeWeight": part.weight}
            for part in spec.sli.composite.components
        ]
    else:
        objectives = [objective]
        native = _native_indicator(spec)
        if native is not None:  # inline, as most files write it: one SLO is one self-contained document
            indicator, objective_fields = native
            objective.update(objective_fields)
            slo_spec["indicator"] = {"metadata": {"name": declaration.name}, "spec": indicator}
    slo_spec["timeWindow"] = [_time_window(spec)]
    slo_spec["budgetingMethod"] = "Timeslices" if spec.budgeting_method is BudgetingMethod.TIMESLICES else "Occurrences"
    slo_spec["objectives"] = objectives
    policies = _alert_policies(declaration)
    if policies:
        slo_spec["alertPolicies"] = policies
    slo = {"apiVersion": OPENSLO_V1, "kind": "SLO", "metadata": metadata, "spec": slo_spec}
    return [slo, *documents]


def _normalised(data: dict[str, Any] | None) -> dict[str, Any]:
    """Native import data in the same shape as_data gives for a declaration."""
    if data is None:
        return {}
    try:
        result: dict[str, Any] = as_data(Declaration.model_validate(data))
        return result
    except ValidationError:
        return data


def _slot_v2alpha(slot: Any) -> Any:
    """v1's `{metricSource: {type, spec}}` as v2alpha's `{dataSourceSpec: {type}, spec}`."""
    if isinstance(slot, dict) and "metricSource" in slot:
        source = slot["metricSource"]
        return {"dataSourceSpec": {"type": source["type"]}, "spec": source["spec"]}
    return slot


def _as_v2alpha(document: dict[str, Any]) -> dict[str, Any]:
    """One exported v1 document in `openslo.com/v2alpha` spelling: `sli`/`sliRef`, inline data sources,
    and the display name (v2alpha has none) in the annotation sloplane reads it back from."""
    converted: dict[str, Any] = {**document, "apiVersion": OPENSLO_V2ALPHA}
    metadata = dict(document["metadata"])
    display_name = metadata.pop("displayName", None)
    if display_name is not None:
        metadata["annotations"] = {DISPLAY_NAME_ANNOTATION: display_name, **metadata.get("annotations", {})}
    converted["metadata"] = metadata
    spec = dict(document["spec"])
    if document["kind"] == "SLO":
        if "indicatorRef" in spec:
            spec["sliRef"] = spec.pop("indicatorRef")
        if "indicator" in spec:
            spec["sli"] = {**spec.pop("indicator")}
            spec["sli"]["spec"] = _sli_v2alpha(spec["sli"]["spec"])
        spec["objectives"] = [
            {("sliRef" if key == "indicatorRef" else key): value for key, value in objective.items()}
            for objective in spec["objectives"]
        ]
    elif document["kind"] == "SLI":
        spec = _sli_v2alpha(spec)
    converted["spec"] = spec
    return converted


def _sli_v2alpha(spec: dict[str, Any]) -> dict[str, Any]:
    """An SLI spec with v2alpha's metric slots."""
    converted = dict(spec)
    if "ratioMetric" in converted:
        converted["ratioMetric"] = {key: _slot_v2alpha(value) for key, value in converted["ratioMetric"].items()}
    if "thresholdMetric" in converted:
        converted["thresholdMetric"] = _slot_v2alpha(converted["thresholdMetric"])
    return converted


EXPORT_VERSIONS = (OPENSLO_V1, OPENSLO_V2ALPHA)


def export_openslo(declarations: Sequence[Declaration], version: str = OPENSLO_V1) -> dict[str, list[dict[str, Any]]]:
    """OpenSLO documents per SLO name (one SLO document, its indicator inline), v1 or v2alpha.

    What survives is decided on the v1 documents (the importer reads both alike); v2alpha only
    spells them differently.
    """
    native = {declaration.name: _native_documents(declaration) for declaration in declarations}
    everything = [document for documents in native.values() for document in documents]
    read_back = native_declarations(everything)
    exported: dict[str, list[dict[str, Any]]] = {}
    for declaration in declarations:
        documents = native[declaration.name]
        original = as_data(declaration)
        survived = _normalised(read_back.get(declaration.name))
        full_spec = declaration.spec.model_dump(mode="json", by_alias=True)
        extra: dict[str, str] = {}
        spec_keys = set(original["spec"]) | set(survived.get("spec", {}))
        for key in sorted(spec_keys):
            if original["spec"].get(key) != survived.get("spec", {}).get(key):
                value = original["spec"].get(key, full_spec[key])
                extra[ANNOTATION_PREFIX + key] = canonical_json(value)
        if original["metadata"].get("labels") != survived.get("metadata", {}).get("labels"):
            labels = dict(declaration.metadata.labels)
            extra[ANNOTATION_PREFIX + "labels"] = canonical_json(labels)
        if extra:
            metadata = documents[0]["metadata"]
            metadata["annotations"] = {**metadata.get("annotations", {}), **extra}
        exported[declaration.name] = (
            [_as_v2alpha(document) for document in documents] if version == OPENSLO_V2ALPHA else documents
        )
    return exported
