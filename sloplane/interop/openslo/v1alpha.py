"""`openslo/v1alpha` documents rewritten as `openslo/v1` data, so one translation serves both.

v1alpha is the version Sloth reads and the Go SDK still writes. It differs from v1 in shape, not in
meaning: windows are `timeWindows: [{unit: Day, count: 30}]`, a ratio lives in each objective as
`ratioMetrics: {good, total, incremental}` with `{source, queryType, query}` slots, a threshold is
`indicator.thresholdMetric` with the same slot shape, and only SLO and Service objects exist.

Choices where v1alpha readers disagree: a window with neither `isRolling` nor `calendar` is read as
rolling (what Sloth does; the Go SDK refuses it), with a warning; `op`/`value` on a ratio objective,
which the released v1alpha text required and later made optional, are dropped (they mean nothing for
a ratio). Positions of problems found after the rewrite fall back to the nearest field written.
"""

from __future__ import annotations

import copy
from typing import Any

from sloplane.declaration.diagnostics import Loc

V1ALPHA = "openslo/v1alpha"
_UNITS = {
    "minute": "m",
    "hour": "h",
    "day": "d",
    "week": "w",
    "month": "M",
    "quarter": "Q",
    "year": "Y",
}


def _slot(slot: Any) -> Any:
    """`{source, queryType, query}` as a v1 metric source; anything else is left for validation to refuse."""
    if not isinstance(slot, dict):
        return slot
    spec = {key: value for key, value in slot.items() if key in ("query", "queryType")}
    return {"metricSource": {"type": slot.get("source"), "spec": spec}}


def _window(window: Any, loc: Loc, warnings: list[tuple[Loc, str]]) -> Any:
    if not isinstance(window, dict) or "unit" not in window or "count" not in window:
        return window
    unit = str(window["unit"]).lower()
    count = window["count"]
    if unit == "second" and isinstance(count, int) and count % 60 == 0:
        unit, count = "minute", count // 60
    letter = _UNITS.get(unit)
    converted: dict[str, Any] = {"duration": f"{count}{letter}" if letter else f"{count}{window['unit']}"}
    if "isRolling" in window:
        converted["isRolling"] = window["isRolling"]
    if "calendar" in window:
        converted["calendar"] = window["calendar"]
    if "isRolling" not in window and "calendar" not in window:
        converted["isRolling"] = True
        warnings.append((loc, "a window with neither isRolling nor calendar is read as rolling, as Sloth reads it"))
    return converted


def _ratio(ratio: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {"counter": bool(ratio.get("incremental", False))}
    for part in ("good", "bad", "total"):
        if part in ratio:
            converted[part] = _slot(ratio[part])
    return {"ratioMetric": converted}


def _ratio_renames(ours: Loc, theirs: Loc) -> list[tuple[Loc, Loc]]:
    """A v1 indicator at `ours` made from the v1alpha `ratioMetrics` at `theirs`: its slots, then itself."""
    pairs: list[tuple[Loc, Loc]] = []
    for part in ("good", "bad", "total"):
        slot: Loc = (*ours, "spec", "ratioMetric", part)
        pairs += [((*slot, "metricSource", "spec"), (*theirs, part)), (slot, (*theirs, part))]
    return [*pairs, (ours, theirs)]


def renamed_fields(data: dict[str, Any]) -> tuple[tuple[Loc, Loc], ...]:
    """(v1 field, v1alpha field) pairs for locating problems of the rewritten SLO in the file as written."""
    spec = data.get("spec")
    objectives = spec.get("objectives") if isinstance(spec, dict) else None
    threshold: Loc = ("spec", "indicator", "spec", "thresholdMetric")
    written: Loc = ("spec", "indicator", "thresholdMetric")
    pairs: list[tuple[Loc, Loc]] = [
        (("spec", "timeWindow"), ("spec", "timeWindows")),
        ((*threshold, "metricSource", "spec"), written),
        (threshold, written),
    ]
    with_ratio = [
        index
        for index, objective in enumerate(objectives if isinstance(objectives, list) else [])
        if isinstance(objective, dict) and "ratioMetrics" in objective
    ]
    for index in with_ratio:
        pairs += _ratio_renames(
            ("spec", "objectives", index, "indicator"), ("spec", "objectives", index, "ratioMetrics")
        )
    if with_ratio:
        pairs += _ratio_renames(("spec", "indicator"), ("spec", "objectives", with_ratio[0], "ratioMetrics"))
    return tuple(pairs)


def as_v1(data: dict[str, Any], warnings: list[tuple[Loc, str]]) -> dict[str, Any]:
    """A v1alpha object as the v1 object that means the same (Services only change their apiVersion)."""
    converted = copy.deepcopy(data)
    converted["apiVersion"] = "openslo/v1"
    spec = converted.get("spec")
    if converted.get("kind") != "SLO" or not isinstance(spec, dict):
        return converted
    if isinstance(spec.get("timeWindows"), list):
        windows = spec.pop("timeWindows")
        spec["timeWindow"] = [_window(w, ("spec", "timeWindows", i), warnings) for i, w in enumerate(windows)]
    indicator = spec.get("indicator")
    if isinstance(indicator, dict) and "thresholdMetric" in indicator:
        metadata = indicator.get("thresholdMetric", {}).get("metadata") if isinstance(indicator, dict) else None
        threshold = dict(indicator["thresholdMetric"]) if isinstance(indicator["thresholdMetric"], dict) else {}
        threshold.pop("metadata", None)
        spec["indicator"] = {"spec": {"thresholdMetric": _slot(threshold)}}
        if metadata is not None:
            spec["indicator"]["metadata"] = metadata
    objectives = spec.get("objectives")
    if isinstance(objectives, list) and spec.get("budgetingMethod") == "Timeslices":
        for index, objective in enumerate(objectives):
            if isinstance(objective, dict) and "timeSliceWindow" not in objective:
                objective["timeSliceWindow"] = "1m"
                warnings.append((("spec", "objectives", index), "v1alpha has no timeSliceWindow: slices of 1m"))
    if isinstance(objectives, list):
        ratios = [o.pop("ratioMetrics") for o in objectives if isinstance(o, dict) and "ratioMetrics" in o]
        for objective in objectives:
            if isinstance(objective, dict) and ratios:
                objective.pop("op", None)
                objective.pop("value", None)
        if ratios and all(ratio == ratios[0] for ratio in ratios) and isinstance(ratios[0], dict):
            spec["indicator"] = {"spec": _ratio(ratios[0])}
        elif ratios:
            for objective, ratio in zip(objectives, ratios, strict=False):
                if isinstance(objective, dict) and isinstance(ratio, dict):
                    objective["indicator"] = {"spec": _ratio(ratio)}
    return converted
