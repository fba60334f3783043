"""Hypothesis strategies for sloplane declarations (as the YAML data a person would write)."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import strategies as st

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,8}){0,2}", fullmatch=True)
LABEL_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: n not in {"slo", "service", "severity", "stage", "team", "tier", "le", "code"}
)
LABEL_VALUES = st.from_regex(r"[a-zA-Z0-9_./-]{1,16}", fullmatch=True)
SELECTORS = st.dictionaries(LABEL_NAMES, LABEL_VALUES, max_size=3)
OBJECTIVES = st.sampled_from([90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99]) | st.floats(80, 99.99).map(
    lambda v: round(v, 3)
)
WINDOWS = st.sampled_from(
    ["7d", "28d", "30d", "90d", {"calendar": "month", "timeZone": "Europe/Berlin"}, {"calendar": "quarter"}]
).map(copy.deepcopy)  # fresh objects: mutated() edits what it draws in place
CRONS = st.sampled_from(["0 2 * * SUN", "30 4 1 * *", "*/15 * * * *", "0 0 * * MON-FRI"])
DURATIONS = st.sampled_from(["15m", "1h", "2h30m", "4h"])
METRICS = st.from_regex(r"[a-z][a-z0-9_]{2,20}", fullmatch=True)


def _queries(window_placeholder: bool = True) -> st.SearchStrategy[dict[str, str]]:
    window = "{{window}}" if window_placeholder else "5m"
    return METRICS.map(lambda m: {"prometheus": f'sum(rate({m}{{job="x",{{{{selector}}}}}}[{window}]))'})


SLIS: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.builds(
        lambda metric, selector, codes: {"http": {"metric": metric, "selector": selector, "errors": {"codes": codes}}},
        METRICS,
        SELECTORS,
        st.lists(st.sampled_from(["5xx", "429", "503", "50x"]), min_size=1, max_size=3, unique=True),
    ),
    st.builds(
        lambda metric, selector, ms: {"latency": {"metric": metric, "selector": selector, "threshold": f"{ms}ms"}},
        METRICS,
        SELECTORS,
        st.sampled_from([100, 250, 300, 500, 1000, 2500]),
    ),
    st.builds(lambda selector: {"probe": {"selector": selector}}, SELECTORS),
    st.builds(lambda e, t: {"ratio": {"errors": e, "total": t}}, _queries(), _queries()),
    st.builds(lambda g, t: {"ratio": {"good": g, "total": t}}, _queries(), _queries()),
    st.builds(lambda q: {"raw": {"errorRatio": q}}, _queries()),
    st.builds(
        lambda q, op, value: {"threshold": {"query": q, "op": op, "value": value}},
        _queries(),
        st.sampled_from(["lt", "lte", "gt", "gte"]),
        st.floats(0, 1000).map(lambda v: round(v, 2)),
    ),
    st.builds(
        lambda measure, source: {"deployment": {"measure": measure, "source": source}},
        st.sampled_from(["successRate", "rollbackRate"]),
        st.sampled_from(["argoRollouts", "sloplane"]),
    ),
)


@st.composite
def stages(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(st.sampled_from(["canary", "staging", "production", "shadow"]), max_size=3, unique=True))
    result = []
    for name in names:
        stage: dict[str, Any] = {"name": name, "selector": {"track": name}}
        if draw(st.booleans()):
            stage["objective"] = draw(OBJECTIVES)
        if name != "production" and draw(st.booleans()):
            stage["countsTowardProduction"] = True
        result.append(stage)
    return result


@st.composite
def declarations(draw: st.DrawFn, name: str | None = None) -> dict[str, Any]:
    """A valid declaration (it may draw lint warnings, never errors)."""
    spec: dict[str, Any] = {
        "service": draw(NAMES),
        "owners": {"team": draw(NAMES)},
        "objective": draw(OBJECTIVES),
        "sli": draw(SLIS),
    }
    if draw(st.booleans()):
        spec["window"] = draw(WINDOWS)
    if draw(st.booleans()):
        spec["tier"] = draw(st.sampled_from(["critical", "high", "medium", "low"]))
    if draw(st.booleans()):
        spec["stages"] = draw(stages())
    if draw(st.booleans()):
        spec["alerting"] = {
            "page": draw(st.booleans()),
            "ticket": draw(st.booleans()),
            "labels": draw(st.dictionaries(LABEL_NAMES, LABEL_VALUES, max_size=2)),
            "runbook": "https://runbooks.example.com/" + draw(NAMES),
            "routing": {"deployment": draw(NAMES), "background": draw(NAMES)},
        }
    if draw(st.booleans()):
        spec["gate"] = {
            "mode": draw(st.sampled_from(["blocking", "async"])),
            "minBudgetRemaining": draw(st.sampled_from([0.0, 5.0, 25.0])),
            "maxBurnRate": draw(st.sampled_from([1.0, 2.0, 6.0, 14.4])),
            "minEvents": draw(st.integers(0, 10_000)),
            "onNoData": draw(st.sampled_from(["inconclusive", "pass", "fail"])),
            "onBackendError": draw(st.sampled_from(["failClosed", "failOpen"])),
            "rollbackOn": draw(st.sampled_from(["page", "ticket"])),
        }
    if draw(st.booleans()):
        spec["exclusions"] = {
            "maintenance": [
                {"name": draw(NAMES), "schedule": draw(CRONS), "duration": draw(DURATIONS), "timeZone": "UTC"}
            ],
            "emergencyChanges": [
                {
                    "start": "2026-05-01T10:00:00Z",
                    "end": "2026-05-01T11:30:00Z",
                    "reason": "hotfix",
                    "approver": "duty-manager",
                }
            ],
        }
    if draw(st.booleans()):
        spec["budgetingMethod"] = "timeslices"
        spec["timeslice"] = {"window": draw(st.sampled_from(["1m", "5m"])), "target": draw(st.sampled_from([90, 95]))}
    return {
        "apiVersion": "sloplane.dev/v1alpha1",
        "kind": "ServiceLevelObjective",
        "metadata": {"name": name or draw(NAMES)},
        "spec": spec,
    }


def junk(rng: random.Random) -> Any:
    """A value of the wrong kind for almost any field: null, a bool, an integer, a float (NaN and
    infinities too), a short text with odd characters, a list or a mapping."""
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-(10**6), 10**6)
    if kind == 3:
        return rng.choice([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e308, rng.uniform(-1e6, 1e6)])
    if kind == 4:
        return "".join(rng.choice("aZ09 -_:{}[]*&!%@'\"\u00e9\u4e2d\U0001f600\t") for _ in range(rng.randrange(13)))
    if kind == 5:
        return [rng.randint(-9, 9) for _ in range(rng.randrange(3))]
    return {rng.choice(["a", "b", "x1", "\u00fc"]): rng.randint(0, 9) for _ in range(rng.randrange(3))}


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def mutate(declaration: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of `declaration` with one to three random mutations: deleted, replaced, renamed or added keys.

    A plain function of a seeded `Random`, so that thousands of variants cost nothing to draw.
    """
    data = copy.deepcopy(declaration)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(data)
        if not paths:
            break
        path = rng.choice(paths)
        parent: Any = data
        for part in path[:-1]:
            parent = parent[part]
        leaf = path[-1]
        action = rng.choice(["delete", "replace", "rename", "add"])
        if action == "delete":
            del parent[leaf]
        elif action == "replace":
            parent[leaf] = junk(rng)
        elif action == "rename" and isinstance(leaf, str):
            parent[leaf[:-1] + rng.choice(["x", "_", ""])] = parent.pop(leaf)
        elif isinstance(parent, dict):
            parent["".join(rng.choice("abkz_\u00e9") for _ in range(rng.randint(1, 8)))] = junk(rng)
    return data


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A declaration with one to three random mutations (see `mutate`)."""
    return mutate(draw(declarations()), draw(st.randoms(use_true_random=False)))


@st.composite
def fleets(draw: st.DrawFn, size: int) -> list[dict[str, Any]]:
    """`size` declarations with distinct names; some are composites over the others."""
    names = draw(st.lists(NAMES, min_size=size, max_size=size, unique=True))
    fleet = [draw(declarations(name=name)) for name in names]
    composites, parts_pool = fleet[: size // 5], [d["metadata"]["name"] for d in fleet[size // 5 :]]
    for document in composites:
        parts = draw(st.lists(st.sampled_from(parts_pool), min_size=2, max_size=3, unique=True))
        method = draw(st.sampled_from(["weighted", "worstOf"]))
        document["spec"]["sli"] = {"composite": {"method": method, "components": [{"slo": p} for p in parts]}}
        document["spec"].pop("stages", None)
        document["spec"].pop("budgetingMethod", None)
        document["spec"].pop("timeslice", None)
    return fleet
