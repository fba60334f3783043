"""Datadog's objects as pulumi-datadog children, made from the very request bodies `datadog/<slo>.json` holds.

Each request `datadog.datadog_requests` renders becomes one child whose inputs are the body's fields
in pulumi-datadog's keyword arguments, so a stack and the files cannot say different things: a field
the body gains that is not mapped here stops the mapping (`ValueError`) instead of going missing.

Where pulumi-datadog's shapes differ from the API's, the difference is spelled here once:
- a monitor's `options.thresholds.critical` is `monitor_thresholds.critical`, a *string*, and must be
  the number the query compares with (Datadog refuses a monitor whose two numbers differ); `priority`
  is a string too; `validate` is off, since the query names an SLO id unknown until the SLO exists;
- a time-slice SLO's `formulas: [{formula}]` and `queries: [{data_source, name, query}]` are
  `formula: {formula_expression}` and `queries: [{metric_query: {...}}]`;
- a correction's and a downtime's `data.attributes` are the arguments themselves; a downtime's
  `schedule` is `one_time_schedule` or `recurring_schedule`, by its shape;
- a dashboard is a `DashboardJson` holding the body as JSON text.

An SLO's id is still the `{{slo:<ref>}}` placeholder here; the child says which SLOs' ids it needs
(`DatadogResource.slo_refs`) and the component puts them in (`with_slo_ids`) once Datadog has them.
Resource names are stable: the SLO, `-<stage>` for a stage's, a monitor by its tier and long window,
corrections and downtimes numbered in declaration order per SLO.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.render.datadog_dashboards import overview_request
from sloplane.render.registry import Child, DatadogResource, DatadogType

SLO_KEY = "datadogSlo"
MONITORS_KEY = "datadogMonitors"
CORRECTIONS_KEY = "datadogCorrections"
DOWNTIMES_KEY = "datadogDowntimes"
DASHBOARD_KEY = "datadogDashboard"
OVERVIEW_KEY = "datadogOverview"
CHILD_KEYS = (SLO_KEY, MONITORS_KEY, CORRECTIONS_KEY, DOWNTIMES_KEY, DASHBOARD_KEY)
"""The `create` entries of an SLO's Datadog children (the overview belongs to the fleet)."""
PLACEHOLDER = re.compile(r"\{\{slo:([^{}]+)\}\}")
"""`{{slo:<ref>}}`, as `datadog.slo_placeholder` writes it."""
MONITOR_OPTIONS = ("notify_no_data", "notify_audit", "include_tags", "require_full_window")
"""Monitor options that are top-level arguments of the resource, under the same names."""
COMPARISON = re.compile(r">\s*(-?[0-9][0-9.e+-]*)\s*$")
"""The number a monitor query ends comparing with: `... > 14.4`."""

Request = dict[str, Any]


def slo_refs_in(value: Any) -> tuple[str, ...]:
    """The SLOs whose ids a value's strings wait for, each once, in the order they appear."""
    found: dict[str, None] = {}
    if isinstance(value, str):
        found.update(dict.fromkeys(PLACEHOLDER.findall(value)))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.update(dict.fromkeys(slo_refs_in(item)))
    elif isinstance(value, Sequence):
        for item in value:
            found.update(dict.fromkeys(slo_refs_in(item)))
    return tuple(found)


def with_slo_ids(value: Any, ids: Mapping[str, str]) -> Any:
    """The value with every `{{slo:<ref>}}` replaced by that SLO's id (a copy; the value is left alone)."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(1) not in ids:
                raise ValueError(f"no id for SLO {match.group(1)!r} (known: {sorted(ids)})")
            return ids[match.group(1)]

        return PLACEHOLDER.sub(substitute, value)
    if isinstance(value, Mapping):
        return {key: with_slo_ids(item, ids) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [with_slo_ids(item, ids) for item in value]
    return value


def _taken(body: Mapping[str, Any], allowed: Sequence[str], what: str) -> dict[str, Any]:
    """The body's fields, refusing any that this module does not map (it would be lost from the stack)."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ValueError(f"{what}: fields {unknown} have no pulumi-datadog mapping")
    return {key: body[key] for key in allowed if key in body}


def _time_slice(spec: Mapping[str, Any]) -> dict[str, Any]:
    condition = _taken(spec["time_slice"], ("comparator", "threshold", "query", "query_interval_seconds"), "time_slice")
    query = _taken(condition["query"], ("formulas", "queries"), "time_slice query")
    (formula,) = query["formulas"]
    metric_queries = [{"metric_query": _taken(q, ("data_source", "name", "query"), "query")} for q in query["queries"]]
    condition["query"] = {"formula": {"formula_expression": formula["formula"]}, "queries": metric_queries}
    return {"time_slice": condition}


def slo_inputs(body: Mapping[str, Any]) -> dict[str, Any]:
    """`datadog.ServiceLevelObjective` arguments from a `POST /api/v1/slo` body."""
    fields = ("name", "type", "query", "sli_specification", "thresholds", "tags", "description")
    inputs = _taken(body, fields, "SLO")
    inputs["thresholds"] = [_taken(t, ("timeframe", "target", "warning"), "threshold") for t in body["thresholds"]]
    if "sli_specification" in inputs:
        inputs["sli_specification"] = _time_slice(body["sli_specification"])
    return inputs


def monitor_inputs(body: Mapping[str, Any]) -> dict[str, Any]:
    """`datadog.Monitor` arguments from a `POST /api/v1/monitor` body (an `slo alert`)."""
    inputs = _taken(body, ("name", "type", "query", "message", "tags", "priority", "options"), "monitor")
    options = _taken(inputs.pop("options", {}), ("thresholds", *MONITOR_OPTIONS), "monitor options")
    thresholds = _taken(options.get("thresholds", {}), ("critical",), "monitor thresholds")
    compared = COMPARISON.search(body["query"])
    critical = thresholds.get("critical")
    if compared is None or critical is None or float(compared.group(1)) != critical:
        raise ValueError(f"monitor {body['name']!r}: the query and the critical threshold name different numbers")
    inputs["monitor_thresholds"] = {"critical": compared.group(1)}
    inputs.update({key: options[key] for key in MONITOR_OPTIONS if key in options})
    if "priority" in inputs:
        inputs["priority"] = str(inputs["priority"])
    inputs["validate"] = not slo_refs_in(body["query"])
    return inputs


def correction_inputs(body: Mapping[str, Any]) -> dict[str, Any]:
    """`datadog.SloCorrection` arguments from a `POST /api/v1/slo/correction` body."""
    fields = ("slo_id", "category", "description", "start", "end", "duration", "rrule", "timezone")
    return _taken(_attributes(body, "correction"), fields, "correction")


def downtime_inputs(body: Mapping[str, Any]) -> dict[str, Any]:
    """`datadog.DowntimeSchedule` arguments from a `POST /api/v2/downtime` body."""
    attributes = _attributes(body, "downtime")
    inputs = _taken(attributes, ("scope", "monitor_identifier", "message", "schedule"), "downtime")
    schedule = inputs.pop("schedule")
    if "recurrences" in schedule:
        recurring = _taken(schedule, ("timezone", "recurrences"), "recurring schedule")
        recurring["recurrences"] = [
            _taken(r, ("rrule", "duration", "start"), "recurrence") for r in schedule["recurrences"]
        ]
        inputs["recurring_schedule"] = recurring
    else:
        inputs["one_time_schedule"] = _taken(schedule, ("start", "end"), "one-time schedule")
    return inputs


def _attributes(body: Mapping[str, Any], kind: str) -> dict[str, Any]:
    data = _taken(body, ("data",), kind)["data"]
    if data.get("type") != kind:
        raise ValueError(f"a {kind} request's data type is {data.get('type')!r}")
    return dict(_taken(data, ("type", "attributes"), kind)["attributes"])


def _stage_part(subject_ref: str) -> str:
    """`-<stage>` for a stage's objects (`slo/stage`), nothing for the SLO's own."""
    _, _, stage = subject_ref.partition("/")
    return f"-{stage}" if stage else ""


def _child(key: str, suffix: str, kind: DatadogType, inputs: dict[str, Any], ref: str | None = None) -> Child:
    return Child(key, suffix, "datadog", inputs, DatadogResource(kind, ref=ref, slo_refs=slo_refs_in(inputs)))


def request_children(requests: Sequence[Request]) -> list[Child]:
    """One child per request, in sending order (each SLO before what refers to it)."""
    children: list[Child] = []
    subject = ""
    counts: dict[tuple[str, str], int] = {}
    for request in requests:
        path, body = request["path"], request["body"]
        if path == "/api/v1/slo":
            subject = str(request["ref"])
            children.append(
                _child(
                    SLO_KEY, f"datadog-slo{_stage_part(subject)}", "ServiceLevelObjective", slo_inputs(body), subject
                )
            )
        elif path == "/api/v1/monitor":
            which = str(request["ref"]).removeprefix(f"{subject}/")
            suffix = f"datadog-monitor{_stage_part(subject)}-{which}"
            children.append(_child(MONITORS_KEY, suffix, "Monitor", monitor_inputs(body)))
        elif path in ("/api/v1/slo/correction", "/api/v2/downtime"):
            kind = "correction" if path == "/api/v1/slo/correction" else "downtime"
            number = counts[subject, kind] = counts.get((subject, kind), 0) + 1
            suffix = f"datadog-{kind}{_stage_part(subject)}-{number}"
            if kind == "correction":
                children.append(_child(CORRECTIONS_KEY, suffix, "SloCorrection", correction_inputs(body)))
            else:
                children.append(_child(DOWNTIMES_KEY, suffix, "DowntimeSchedule", downtime_inputs(body)))
        elif path == "/api/v1/dashboard":
            children.append(_dashboard(DASHBOARD_KEY, "datadog-dashboard", body))
        else:
            raise ValueError(f"request {request['method']} {path} has no pulumi-datadog resource")
    return _distinct(children)


def _distinct(children: list[Child]) -> list[Child]:
    """The children, refused if two share a resource name: Pulumi would fail on it mid-update, and the
    renderer makes one monitor of tiers that clamp to the same window pair (a 90d SLO's tickets)."""
    suffixes = [child.suffix for child in children]
    repeated = sorted({suffix for suffix in suffixes if suffixes.count(suffix) > 1})
    if repeated:
        raise ValueError(f"two Datadog resources would be named {', '.join(repeated)}")
    return children


def _dashboard(key: str, suffix: str, body: Mapping[str, Any]) -> Child:
    """A DashboardJson: the body as JSON text, made once the SLO ids are in."""
    resource = DatadogResource("DashboardJson", slo_refs=slo_refs_in(body), json_inputs=("dashboard",))
    return Child(key, suffix, "datadog", {"dashboard": dict(body)}, resource)


def slo_children(declaration: Declaration, requests: Sequence[Request]) -> list[Child]:
    """An SLO's Datadog children (none when archived, as it has no file either)."""
    if declaration.spec.lifecycle is Lifecycle.ARCHIVED:
        return []
    return request_children(requests)


def overview_children(declarations: Sequence[Declaration]) -> list[Child]:
    """The fleet's overview dashboard, when any SLO that names Datadog is alive."""
    alive = [declaration for declaration in declarations if declaration.spec.lifecycle is not Lifecycle.ARCHIVED]
    if not alive:
        return []
    return [_dashboard(OVERVIEW_KEY, "datadog-overview", overview_request(alive)["body"])]
