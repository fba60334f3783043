"""Sloth SLO specs (`version: prometheus/v1`) and its `sloth.slok.dev/v1` PrometheusServiceLevel CRD.

Both hold the same content (the CRD under `spec`, camelCase); each SLO becomes one declaration:

- name `<service>-<slo name>` (Sloth's id), made an RFC 1123 name when it is not one (with a warning);
  Sloth's service, description and objective are ours;
- owner: Sloth has none, so the `team`, `owner` or `squad` label (the SLO's, else the spec's) is
  `owners.team`; without one the SLO is `unassigned` and a warning says which label to set;
- SLI: `events` becomes a `ratio` of event counts: sloplane reads ratio queries as numbers of events
  over the window, so `rate(...[{{.window}}])` becomes `increase(...)`, which is exact
  (`sloplane.interop.counts`); a query that cannot be turned into counts is kept as written, its
  partner too so that the ratio stays Sloth's, with a warning that event counts are not counts.
  `raw` is our `raw` error ratio; the common SLI plugins become ratios of counts
  (`sloth_plugins`), any other plugin is an error naming it;
- period and alert windows: 30d, Sloth's default, or the period of an `AlertWindows` document given
  with the specs; Sloth's window table is written out as `alerting.windows` whenever sloplane's own
  would alert at other times (`sloth_windows`);
- alerting: `name`, `labels`, `annotations`; `page_alert`/`ticket_alert` labels and annotations are
  our `pageAlert`/`ticketAlert`, `disable: true` switches the tier off.

Labels, chosen so that the migrated alerts carry every label Sloth's did. Sloth puts the spec's and
the SLO's labels (merged, the SLO's winning) on every recorded series, with `sloth_id`, `sloth_service`
and `sloth_slo`; its alerts keep them all (the expression keeps the series' labels) and add the
alerting labels, the tier's labels and `sloth_severity`. sloplane puts declaration labels on no
alert, so the merged labels go to `metadata.labels` (identity, dashboards) *and* to
`alerting.labels`, together with the three `sloth_*` labels and the alerting labels; the tier's
labels and `sloth_severity` go to `pageAlert`/`ticketAlert.labels`. A label sloplane sets itself
(`severity`, `team`, `tier`, ...: `checks.RESERVED_ALERT_LABELS`) may not be in `alerting.labels`,
so it is moved to both tiers' labels, which win on the alert; `slo`, `service` and `stage` cannot be
kept at all (every sloplane series is selected by them) and a warning says so.

Slo plugins (`slo_plugins`, `plugins`) change the rules Sloth generates: `rule_intervals` sets our
`interval`; Sloth's defaults and `debug` change nothing; `denominator_corrected_rules` is what our
period ratio already is; the rest are reported as not carried over. Unknown fields are ignored, as
Sloth ignores them, with a warning (a CRD's snake_case `page_alert` is one).

This module reads documents and translates identity, owner and SLI; `sloth_alerting` the alerting
and SLO plugins, `sloth_fields` the two spellings and safe field access they share.
"""

from __future__ import annotations

from typing import Any

from sloplane.declaration.diagnostics import Diagnostic, Loc
from sloplane.declaration.model import API_VERSION, KIND
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.counts import rates_as_counts
from sloplane.interop.sloth_alerting import alerting_of, apply_slo_plugins, plugin_chain
from sloplane.interop.sloth_fields import (
    CRD_API_VERSION,
    CRD_KEYS,
    SPEC_KEYS,
    SPEC_VERSION,
    WINDOW,
    Group,
    SloDraft,
    as_text,
    mapping_at,
    strings_at,
    warn_unknown,
)
from sloplane.interop.sloth_plugins import plugin_queries
from sloplane.interop.sloth_windows import ALERT_WINDOWS_KIND, DEFAULT_WINDOWS, Windows, read_alert_windows
from sloplane.interop.translation import (
    UNASSIGNED_TEAM,
    ForeignFormat,
    ImportProblemError,
    Translation,
    as_name,
    diagnostic_at,
    owner_label,
    validated,
)

CRD_KIND = "PrometheusServiceLevel"


def detects(data: dict[str, Any]) -> bool:
    """Sloth's own markers: the spec's `version`, or the CRD's apiVersion."""
    return data.get("version") == SPEC_VERSION or data.get("apiVersion") == CRD_API_VERSION


def _service(group: Group) -> tuple[str, str]:
    service = group.spec.get("service")
    if not isinstance(service, str) or not service.strip():
        raise ImportProblemError(group.loc("service"), "missing 'service' (the application the SLOs are about)")
    return service, as_name(service)


def _identity(slo: SloDraft, service: str, ours: str) -> None:
    """metadata.name from Sloth's id, `service`, description and objective."""
    raw_name = slo.raw.get("name")
    if not isinstance(raw_name, str) or not raw_name.strip():
        slo.problems.append((slo.loc(), "missing 'name'"))
        raw_name = f"slo-{slo.index + 1}"
    sloth_id = f"{service}-{raw_name}"
    name = as_name(sloth_id)
    if name != sloth_id:
        slo.warnings.append((slo.loc("name"), f"Sloth's id '{sloth_id}' is imported as the name '{name}' (RFC 1123)"))
    if ours != service:
        slo.warnings.append((slo.group.loc("service"), f"service '{service}' is imported as '{ours}' (RFC 1123)"))
    slo.data["metadata"] = {"name": name or "unnamed", "labels": {}}
    slo.data["spec"] = {"service": ours or "unnamed", "objective": slo.raw.get("objective")}
    if slo.raw.get("description"):
        slo.data["spec"]["description"] = as_text(slo.raw["description"])
    slo.origin(("metadata", "name"), slo.loc("name"))
    slo.origin(("spec", "service"), slo.group.loc("service"))
    slo.origin(("spec", "objective"), slo.loc("objective"))
    slo.origin(("spec", "description"), slo.loc("description"))


def _labels(slo: SloDraft) -> dict[str, str]:
    """The spec's labels merged with the SLO's (the SLO's win), each mapped to where it was written."""
    own = slo.own_labels = strings_at(slo.raw.get("labels"), slo.loc("labels"), "labels")
    merged = {**slo.group.labels, **own}
    for key in merged:
        theirs = slo.loc("labels", key) if key in own else slo.group.loc("labels", key)
        slo.origin(("metadata", "labels", key), theirs)
        slo.origin(("spec", "alerting", "labels", key), theirs)
    slo.data["metadata"]["labels"] = merged
    return merged


def _owner(slo: SloDraft, labels: dict[str, str]) -> None:
    key = owner_label(labels)
    if key is None:
        slo.data["spec"]["owners"] = {"team": UNASSIGNED_TEAM}
        slo.warnings.append(
            (
                slo.loc("name"),
                f"no owning team: set the label team=<name> on the spec or the SLO (imported as '{UNASSIGNED_TEAM}')",
            )
        )
        slo.origin(("spec", "owners"), slo.loc("name"))
        return
    team = as_name(labels[key])
    theirs = slo.loc("labels", key) if key in slo.own_labels else slo.group.loc("labels", key)
    if team != labels[key]:
        slo.warnings.append((theirs, f"owner '{labels[key]}' is imported as the team '{team}' (RFC 1123)"))
    slo.data["spec"]["owners"] = {"team": team or UNASSIGNED_TEAM}
    slo.origin(("spec", "owners"), theirs)


def _event_queries(slo: SloDraft, events: dict[str, Any]) -> dict[str, Any]:
    """Sloth's error and total queries as our ratio of event counts (both rewritten, or neither)."""
    keys = slo.group.keys
    loc = slo.loc("sli", "events")
    queries: dict[str, str] = {}
    for part, key in (("errors", keys.error_query), ("total", keys.total_query)):
        query = events.get(key)
        if not isinstance(query, str) or not query.strip():
            raise ImportProblemError(loc, f"missing '{key}' (a query of {part} events over {{{{.window}}}})")
        if not WINDOW.search(query):
            raise ImportProblemError((*loc, key), "the query must use the {{.window}} placeholder, as Sloth requires")
        queries[part] = WINDOW.sub("{{window}}", query.strip())
        slo.origin(("spec", "sli", "ratio", part), (*loc, key))
    counted = {part: rates_as_counts(query) for part, query in queries.items()}
    changed = {part for part, result in counted.items() if result.query != queries[part]}
    if all(result.exact for result in counted.values()) and len(changed) != 1:
        queries = {part: result.query for part, result in counted.items()}
    else:
        slo.warnings.append(
            (
                loc,
                "these queries cannot both be turned into event counts over the window (an irate, a rate over "
                "a fixed range, or a rate in one query only): imported as written, so ratios are Sloth's but "
                "event counts (period events, minEvents, the evaluator's events) are not counts",
            )
        )
    return {"ratio": {part: {"prometheus": query} for part, query in queries.items()}}


def _sli(slo: SloDraft) -> dict[str, Any]:
    keys = slo.group.keys
    loc = slo.loc("sli")
    sli = mapping_at(slo.raw.get("sli"), loc, "sli")
    warn_unknown(sli, ("events", "raw", "plugin"), loc, slo.warnings)
    given = [kind for kind in ("events", "raw", "plugin") if sli.get(kind) is not None]
    if len(given) != 1:
        raise ImportProblemError(
            loc, f"give exactly one SLI type (events, raw or plugin); found {', '.join(given) or 'none'}"
        )
    kind = given[0]
    body = mapping_at(sli[kind], (*loc, kind), kind)
    if kind == "events":
        warn_unknown(body, (keys.error_query, keys.total_query), (*loc, kind), slo.warnings)
        return _event_queries(slo, body)
    if kind == "raw":
        warn_unknown(body, (keys.error_ratio_query,), (*loc, kind), slo.warnings)
        query = body.get(keys.error_ratio_query)
        if not isinstance(query, str) or not WINDOW.search(query):
            raise ImportProblemError((*loc, kind), f"'{keys.error_ratio_query}' must be a query using {{{{.window}}}}")
        slo.origin(("spec", "sli"), (*loc, kind, keys.error_ratio_query))
        return {"raw": {"errorRatio": {"prometheus": WINDOW.sub("{{window}}", query.strip())}}}
    warn_unknown(body, ("id", "options"), (*loc, kind), slo.warnings)
    plugin_id = body.get("id")
    if not isinstance(plugin_id, str) or not plugin_id:
        raise ImportProblemError((*loc, kind), "an SLI plugin needs its 'id'")
    options = strings_at(body.get("options"), (*loc, kind, "options"), "options")
    found = plugin_queries(plugin_id, options, (*loc, kind, "id"), (*loc, kind, "options"))
    slo.origin(("spec", "sli"), (*loc, kind))
    return {"ratio": {"errors": {"prometheus": found.errors}, "total": {"prometheus": found.total}}}


def _translate(group: Group, index: int, raw: Any) -> tuple[Translation, list[tuple[Loc, str]]]:
    """One Sloth SLO as a translation, and the problems that keep it from being imported."""
    slo = SloDraft(group, index, raw if isinstance(raw, dict) else {})
    if not isinstance(raw, dict):
        slo.problems.append((slo.loc(), "an SLO must be a mapping with name, objective, sli and alerting"))
    warn_unknown(
        slo.raw, ("name", "description", "objective", "plugins", "labels", "sli", "alerting"), slo.loc(), slo.warnings
    )
    service, ours = _service(group)
    _identity(slo, service, ours)
    merged: dict[str, str] = {}
    steps = (
        lambda: merged.update(_labels(slo)),
        lambda: _owner(slo, merged),
        lambda: slo.data["spec"].__setitem__("sli", _sli(slo)),
        lambda: alerting_of(slo, merged, f"{service}-{as_text(slo.raw.get('name'))}"),
    )
    for step in steps:
        try:
            step()
        except ImportProblemError as problem:
            slo.problems.append((problem.loc, problem.message))
    if "sli" not in slo.data["spec"]:
        slo.data["spec"]["sli"] = {"raw": {"errorRatio": {"prometheus": "vector(0)"}}}  # placeholder: reported above
    group_chain = plugin_chain(group.spec.get(group.keys.slo_plugins), group.loc(group.keys.slo_plugins))
    apply_slo_plugins(slo, [*group_chain, *plugin_chain(slo.raw.get("plugins"), slo.loc("plugins"))])
    slo.data = {"apiVersion": API_VERSION, "kind": KIND, **slo.data}
    slo.mapping.sort(key=lambda pair: -len(pair[0]))
    translation = Translation(slo.data, group.document, slo.mapping, slo.warnings, fallback=slo.loc())
    return translation, slo.problems


def _group(document: YamlDocument, windows: Windows) -> Group:
    data = document.data
    keys = CRD_KEYS if data.get("apiVersion") == CRD_API_VERSION else SPEC_KEYS
    spec = mapping_at(data.get("spec"), ("spec",), "spec") if keys is CRD_KEYS else data
    labels = strings_at(spec.get("labels"), (*keys.root, "labels"), "labels")
    group = Group(document, keys, spec, labels, windows)
    slos = spec.get("slos")
    if not isinstance(slos, list) or not slos:
        raise ImportProblemError(group.loc("slos"), "'slos' must list at least one SLO")
    return group


def _translate_document(document: YamlDocument, windows: Windows, diagnostics: list[Diagnostic]) -> list[LoadedSLO]:
    known = ("version", "service", "labels", SPEC_KEYS.slo_plugins, "slos")
    spec_known = ("service", "labels", CRD_KEYS.slo_plugins, "slos")
    try:
        group = _group(document, windows)
        _service(group)
    except ImportProblemError as problem:
        diagnostics.append(diagnostic_at(document, problem.loc, problem.message))
        return []
    top: list[tuple[Loc, str]] = []
    if group.keys is CRD_KEYS:
        warn_unknown(document.data, ("apiVersion", "kind", "metadata", "spec", "status"), (), top)
    warn_unknown(group.spec, spec_known if group.keys is CRD_KEYS else known, group.keys.root, top)
    slos: list[LoadedSLO] = []
    for index, raw in enumerate(group.spec["slos"]):
        translation, problems = _translate(group, index, raw)
        translation.warnings[:0] = top if index == 0 else []
        found, validation = validated([translation], source_format=group.source_format)
        diagnostics.extend(diagnostic_at(document, loc, message) for loc, message in problems)
        diagnostics.extend(validation)
        slos.extend(found if not problems else [])
    return slos


def _windows(documents: list[YamlDocument], diagnostics: list[Diagnostic]) -> Windows:
    """The period and window table: the one AlertWindows document given, else Sloth's default (30d)."""
    found: list[Windows] = []
    for document in documents:
        if document.data.get("kind") != ALERT_WINDOWS_KIND:
            continue
        try:
            windows = read_alert_windows(document)
        except ImportProblemError as problem:
            diagnostics.append(diagnostic_at(document, problem.loc, problem.message))
            continue
        if found and windows != found[0]:
            message = "a second AlertWindows document: keep only the one `sloth generate --default-slo-period` uses"
            diagnostics.append(diagnostic_at(document, ("spec", "sloPeriod"), message))
            continue
        found.append(windows)
    return found[0] if found else DEFAULT_WINDOWS


def read(documents: list[YamlDocument]) -> tuple[list[LoadedSLO], list[Diagnostic]]:
    """Our declarations from Sloth documents; every problem a diagnostic at its Sloth field."""
    diagnostics: list[Diagnostic] = []
    windows = _windows(documents, diagnostics)
    slos: list[LoadedSLO] = []
    for document in documents:
        kind = document.data.get("kind")
        if document.data.get("apiVersion") == CRD_API_VERSION and kind != CRD_KIND:
            if kind != ALERT_WINDOWS_KIND:
                message = f"kind '{kind}' is not a Sloth kind sloplane reads (use {CRD_KIND} or {ALERT_WINDOWS_KIND})"
                diagnostics.append(diagnostic_at(document, ("kind",), message))
            continue
        slos.extend(_translate_document(document, windows, diagnostics))
    return slos, list(dict.fromkeys(diagnostics))


FORMAT = ForeignFormat(
    name="Sloth",
    command="sloth",
    detects=detects,
    read=read,
    documents="Sloth specs (prometheus/v1) and PrometheusServiceLevel CRDs",
)
