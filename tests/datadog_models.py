"""Strict validation of Datadog API request bodies against the official client's models.

The models in ``datadog-api-client`` are built to *read responses* from a server that may be newer than
the client, so they are lenient on purpose (research note 13, section 1.7): unknown keys are kept
silently, a bad enum value becomes an "unparsed" ``ModelSimple``, anything wrong inside a ``oneOf``
collapses the whole value to an ``UnparsedObject`` (the path stops at the oneOf), read-only fields are
accepted with spec naming, and a missing required field raises a plain ``TypeError`` with no path.
None of that is acceptable for a body sloplane *sends*: Datadog would answer 400 (or silently drop
the field) in production, where no test can see it.

``problems`` therefore deserializes exactly like the client does and then walks the result, turning
every leniency back into a finding with a ``$.json.path``, and adds the range rules the API enforces
but the models do not encode (monitor priority, SLO target precision, correction and downtime rules).
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from datadog_api_client import Configuration
from datadog_api_client.exceptions import ApiAttributeError, ApiTypeError, ApiValueError
from datadog_api_client.model_utils import (
    ModelComposed,
    ModelNormal,
    ModelSimple,
    OpenApiModel,
    UnparsedObject,
    check_validations,
    none_type,
    validate_and_convert_types,
)
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.service_level_objective_request import ServiceLevelObjectiveRequest
from datadog_api_client.v1.model.slo_correction_create_request_attributes import (
    SLOCorrectionCreateRequestAttributes,
)
from datadog_api_client.v1.model.slo_threshold import SLOThreshold
from datadog_api_client.v2.model.downtime_schedule_one_time_create_update_request import (
    DowntimeScheduleOneTimeCreateUpdateRequest,
)
from datadog_api_client.v2.model.downtime_schedule_recurrence_create_update_request import (
    DowntimeScheduleRecurrenceCreateUpdateRequest,
)

__all__ = ["assert_valid", "problems"]

# The client's functions are untyped; these aliases keep the calls out of mypy's untyped-call checks.
_convert: Any = validate_and_convert_types
_validate: Any = check_validations
_configuration: Any = Configuration

Path = tuple[str | int, ...]
"""JSON path segments: dict keys (spec names) and list indices."""

_PATH_SEGMENT = re.compile(r"\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")


def problems(body: dict[str, Any], model: type, *, request: bool = True) -> list[str]:
    """Every way `body` is not exactly an instance of `model` (datadog_api_client model class), as
    '$.path: message' strings; [] when it is. `request=True` also refuses read-only fields."""
    return _check(body, (model,), (), request)


def assert_valid(body: dict[str, Any], model: type) -> None:
    """Fail a test with every problem at once (not just the first), so one run shows the whole fix."""
    found = problems(body, model)
    if found:
        raise AssertionError(f"{len(found)} problem(s) against {model.__name__}:\n  " + "\n  ".join(found))


# --- deserialization -------------------------------------------------------------------------------------


def _render(path: Path) -> str:
    """`$`, `$.a.b[0].c`: the form every finding starts with."""
    out = "$"
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else f".{seg}"
    return out


def _check(data: Any, types: tuple[Any, ...], path: Path, request: bool) -> list[str]:
    """Deserialize `data` as the client does for responses, then walk the result strictly.

    `path` is where `data` sits in the original body, so a re-parse of a nested piece (a oneOf member,
    a list item) reports paths relative to the top of the body, not to the piece.
    """
    try:
        value = _convert(copy.deepcopy(data), types, ["body", *path], True, True, configuration=_configuration())
    except (ApiTypeError, ApiValueError, ApiAttributeError, TypeError) as exc:
        # The client stops at the first error, and a missing required field (plain TypeError) has no
        # path at all: descend into the raw data ourselves to name every broken place precisely.
        found = _locate(data, types, path, request)
        return found or [f"{_exception_path(exc, path)}: {_exception_text(exc)}"]
    return _walk(value, types, path, request)


def _exception_text(exc: Exception) -> str:
    """The client's message without its `at ['body']...` suffix (the path is rendered in front)."""
    return re.sub(r" at (\[[^\]]*\])+$", "", str(exc))


def _exception_path(exc: Exception, fallback: Path) -> str:
    """The path the client rendered into the message, in `$.` form (its own `path_to_item` list is
    shared and popped while the exception unwinds, so only the message is reliable)."""
    text = str(exc)
    at = text.rfind(" at ['body']")
    if at < 0:
        return _render(fallback)
    segs: list[str | int] = []
    for key, index in _PATH_SEGMENT.findall(text[at + len(" at ['body']") :]):
        segs.append(int(index) if index else key)
    return _render(tuple(segs))


def _locate(data: Any, types: tuple[Any, ...], path: Path, request: bool) -> list[str]:
    """Find where inside `data` a deserialization error comes from, checking each child separately.

    Only plain object models and lists are descended: a oneOf never raises (the client swallows its
    errors into an UnparsedObject, which `_walk` handles), and scalars are leaves.
    """
    classes = _classes(types)
    if isinstance(data, list):
        item_types = _item_types(types)
        if item_types is None:
            return []
        return [p for i, item in enumerate(data) for p in _check(item, item_types, (*path, i), request)]
    normal = [c for c in classes if issubclass(c, ModelNormal)]
    if not isinstance(data, dict) or len(normal) != 1:
        return []
    cls = normal[0]
    found: list[str] = []
    python_to_json = dict(cls.attribute_map)
    json_to_python = {v: k for k, v in python_to_json.items()}
    given = {json_to_python.get(k, k) for k in data}
    found += [f"{_render(path)}: missing required field {python_to_json.get(n, n)!r}" for n in _required(cls) - given]
    for key, child in data.items():
        name = str(json_to_python.get(key, key))
        if name not in cls.openapi_types:
            found.append(f"{_render((*path, key))}: unknown key for {cls.__name__}")
            continue
        if name in cls.validations:
            try:
                _validate(cls.validations[name], name, child, _configuration())
            except (ApiValueError, TypeError) as exc:
                found.append(f"{_render((*path, key))}: {_exception_text(exc)}")
                continue
        found += _check(child, cls.openapi_types[name], (*path, key), request)
    return found


def _required(cls: type[ModelNormal]) -> set[str]:
    """Python names of the required properties: the model's keyword arguments without a default."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name
        for p in list(params)[1:]
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


# --- walking the deserialized model ----------------------------------------------------------------------


def _classes(types: Iterable[Any]) -> list[type]:
    """The model classes among an `openapi_types` entry (lists and primitives excluded)."""
    return [t for t in types if isinstance(t, type) and issubclass(t, OpenApiModel)]


def _item_types(types: Iterable[Any]) -> tuple[Any, ...] | None:
    """Element types of the list form in an `openapi_types` entry (`([X],)` -> `(X,)`)."""
    for t in types:
        if isinstance(t, list):
            return tuple(t)
    return None


def _value_types(types: Iterable[Any]) -> tuple[Any, ...] | None:
    """Value types of the mapping form in an `openapi_types` entry (`({str: (X,)},)` -> `(X,)`)."""
    for t in types:
        if isinstance(t, dict):
            return tuple(next(iter(t.values())))
    return None


def _order(v: Any) -> tuple[str, Any]:
    """Sort key for enum values of one type (ints numerically, strings alphabetically)."""
    return (type(v).__name__, v)


def _walk(value: Any, types: tuple[Any, ...], path: Path, request: bool) -> list[str]:
    """Report what the lenient parse let through at and below `value` (found at `path`)."""
    if isinstance(value, UnparsedObject):
        return _unparsed(value._data_store, types, path, request)
    if isinstance(value, ModelSimple):
        if value._unparsed:
            allowed = sorted(type(value).allowed_values, key=_order)
            return [f"{_render(path)}: {value.value!r} is not one of {allowed} ({type(value).__name__})"]
        return []
    if isinstance(value, ModelComposed):
        # An UnparsedObject member is explained against the composed type's own oneOf members.
        return [p for inst in value._composed_instances for p in _walk(inst, (type(value),), path, request)]
    if isinstance(value, ModelNormal):
        return _walk_normal(value, path, request)
    if isinstance(value, list):
        item_types = _item_types(types) or ()
        return [p for i, item in enumerate(value) for p in _walk(item, item_types, (*path, i), request)]
    if isinstance(value, dict):
        inner = _value_types(types) or ()
        return [p for k, v in value.items() for p in _walk(v, inner, (*path, k), request)]
    return []


def _walk_normal(value: ModelNormal, path: Path, request: bool) -> list[str]:
    """Unknown keys, read-only keys (requests), then each known child, then sloplane's own rules."""
    cls = type(value)
    found: list[str] = []
    for name, child in value._data_store.items():
        key = cls.attribute_map.get(name, name)
        here = (*path, key)
        if name not in cls.openapi_types:
            found.append(f"{_render(here)}: unknown key for {cls.__name__}")
            continue
        if request and name in cls.read_only_vars:
            found.append(f"{_render(here)}: read-only field of {cls.__name__} in a request")
        found += _walk(child, cls.openapi_types[name], here, request)
    return found + _rules(value, path)


def _unparsed(data: Any, types: tuple[Any, ...], path: Path, request: bool) -> list[str]:
    """Explain an UnparsedObject: re-parse its raw data against the member it was meant to be.

    The client replaces a whole oneOf value (or a list item that failed) with the raw dict, so the
    reason is lost. The member is chosen by the `type` discriminator when the oneOf has one, else the
    member with the fewest problems is taken as the intended one.
    """
    candidates = _members(types)
    if not candidates:
        return [f"{_render(path)}: could not be parsed as any of {[getattr(t, '__name__', t) for t in types]}"]
    if len(candidates) > 1 and isinstance(data, dict):
        kinds = _discriminators(candidates)
        matching = [c for c in candidates if data.get("type") in kinds.get(c, ())]
        if matching:
            candidates = matching
        elif "type" in data and all(kinds.get(c) for c in candidates):
            allowed = sorted({k for c in candidates for k in kinds[c]}, key=_order)
            return [f"{_render((*path, 'type'))}: {data['type']!r} is not one of {allowed}"]
    reports = [_check(data, (c,), path, request) for c in candidates]
    best = min(reports, key=len)
    if best:
        return best
    names = [c.__name__ for c in candidates]
    if len(names) == 1:
        return [f"{_render(path)}: the client could not parse this as {names[0]} (no finer reason found)"]
    return [f"{_render(path)}: matches more than one of {names} (a oneOf needs exactly one)"]


def _members(types: Iterable[Any]) -> list[type]:
    """The concrete classes a value of `types` may be, oneOf compositions flattened."""
    out: list[type] = []
    for cls in _classes(types):
        if issubclass(cls, ModelComposed):
            out += _members(t for t in cls._composed_schemas.get("oneOf", ()) if t is not none_type)
        elif cls is not UnparsedObject:
            out.append(cls)
    return out


def _discriminators(members: list[type]) -> dict[type, frozenset[Any]]:
    """member -> the values its `type` enum allows (widgets, queries, ...), for members that have one.

    The client's own discriminator fast path gives up when two members share a value; here a shared
    value just leaves several candidates, and the one with the fewest problems wins.
    """
    out: dict[type, frozenset[Any]] = {}
    for cls in members:
        kinds = _classes(getattr(cls, "openapi_types", {}).get("type", ()))
        enums = [k for k in kinds if issubclass(k, ModelSimple) and k.allowed_values]
        if enums:
            out[cls] = frozenset(enums[0].allowed_values)
    return out


# --- sloplane's own rules (what Datadog enforces but the models don't say) ----------------------------


def _decimals(x: float) -> int:
    """Decimal places in the shortest repr of `x` (99.95 -> 2; 99.99999 -> 5)."""
    exponent = Decimal(repr(float(x))).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _monitor(m: Any, path: Path) -> list[str]:
    """`priority` is documented as 1 (high) to 5 (low); the model accepts any int."""
    priority = m.get("priority")
    if priority is not None and not 1 <= priority <= 5:
        return [f"{_render((*path, 'priority'))}: {priority} is not in 1..5"]
    return []


def _slo_threshold(t: Any, path: Path) -> list[str]:
    """Target and warning in (0, 100) with at most 3 decimals; warning above target (Terraform schema,
    SLO docs "Setting SLO targets"); `custom` is a query-only timeframe."""
    found: list[str] = []
    target, warning = t.get("target"), t.get("warning")
    for name, x in (("target", target), ("warning", warning)):
        if x is None:
            continue
        if not 0 < x < 100:
            found.append(f"{_render((*path, name))}: {x} is not in (0, 100)")
        if _decimals(x) > 3:
            found.append(f"{_render((*path, name))}: {x} has more than 3 decimals")
    if target is not None and warning is not None and not warning > target:
        found.append(f"{_render((*path, 'warning'))}: {warning} must be greater than target {target}")
    timeframe = t.get("timeframe")
    if isinstance(timeframe, ModelSimple) and timeframe.value == "custom":
        found.append(f"{_render((*path, 'timeframe'))}: 'custom' cannot be used to create or update an SLO")
    return found


def _slo_request(s: Any, path: Path) -> list[str]:
    """The legacy top-level `timeframe` has the same restriction as the thresholds'."""
    timeframe = s.get("timeframe")
    if isinstance(timeframe, ModelSimple) and timeframe.value == "custom":
        return [f"{_render((*path, 'timeframe'))}: 'custom' cannot be used to create or update an SLO"]
    return []


def _correction(a: Any, path: Path) -> list[str]:
    """Exactly one of slo_id/slo_query (API docs); rrule needs duration and excludes end (Terraform)."""
    found: list[str] = []
    if (a.get("slo_id") is None) == (a.get("slo_query") is None):
        found.append(f"{_render(path)}: exactly one of 'slo_id' or 'slo_query' is required")
    if a.get("rrule") is not None:
        if a.get("duration") is None:
            found.append(f"{_render((*path, 'duration'))}: required with 'rrule'")
        if a.get("end") is not None:
            found.append(f"{_render((*path, 'end'))}: conflicts with 'rrule' (use 'duration')")
    elif a.get("duration") is not None:
        found.append(f"{_render((*path, 'duration'))}: only meaningful with 'rrule'")
    for name in ("duration", "end"):
        v = a.get(name)
        if v is not None and v <= (0 if name == "duration" else a.get("start", 0)):
            found.append(f"{_render((*path, name))}: {v} must be after the start (seconds)")
    return found


_DOWNTIME_DURATION = re.compile(r"^\d+[mhdw]$")


def _downtime_recurrence(r: Any, path: Path) -> list[str]:
    """`duration` like `2h` (API docs: `^\\d+[mhdw]$`); the model takes any string."""
    duration = r.get("duration")
    if duration is not None and not _DOWNTIME_DURATION.match(duration):
        return [f"{_render((*path, 'duration'))}: {duration!r} does not match {_DOWNTIME_DURATION.pattern}"]
    return []


def _downtime_one_time(s: Any, path: Path) -> list[str]:
    """One-time `start`/`end` are ISO-8601 with UTC offset zero (API docs); the model takes any offset."""
    found: list[str] = []
    for name in ("start", "end"):
        v = s.get(name)
        if isinstance(v, datetime) and v.utcoffset() != timedelta(0):
            found.append(f"{_render((*path, name))}: {v.isoformat()} must carry UTC offset zero")
    start, end = s.get("start"), s.get("end")
    if isinstance(start, datetime) and isinstance(end, datetime) and not found and end <= start:
        found.append(f"{_render((*path, 'end'))}: must be after start")
    return found


_RULES: dict[type, Callable[[Any, Path], list[str]]] = {
    Monitor: _monitor,
    SLOThreshold: _slo_threshold,
    ServiceLevelObjectiveRequest: _slo_request,
    SLOCorrectionCreateRequestAttributes: _correction,
    DowntimeScheduleRecurrenceCreateUpdateRequest: _downtime_recurrence,
    DowntimeScheduleOneTimeCreateUpdateRequest: _downtime_one_time,
}


def _rules(value: OpenApiModel, path: Path) -> list[str]:
    """sloplane's range checks for this model type, if it has any."""
    rule = _RULES.get(type(value))
    return rule(value, path) if rule else []
