"""Pyrra's `pyrra.dev/v1alpha1` ServiceLevelObjective as our declarations, one per document.

Mapping, in short (each diagnostic points at the Pyrra field our field was made from):
- `metadata.name` is the name (dots, which Kubernetes allows and we do not, become dashes); labels
  and annotations are kept. Labels and annotations prefixed `pyrra.dev/` are the ones Pyrra puts on
  its alerts (prefix stripped): they become `alerting.labels` / `alerting.annotations`.
- service: the first of the labels `pyrra.dev/service`, `service`, `app.kubernetes.io/name`, `app`;
  else the namespace, else the name, each fallback with a warning: a service is what gates freeze
  together, and a namespace such as `monitoring` often holds many services' SLOs.
- owners: the label `pyrra.dev/team` (which Pyrra also puts on alerts as `team`), `team`,
  `pyrra.dev/owner` or `owner`; else `unassigned`, with a warning naming the label to set.
- `target` ("99.5", a percentage, quoted or not) is the objective; `window` (`4w`, `28d`) the
  rolling window; `description` the description.
- the indicator becomes our SLI (`pyrra_indicators`): queries count events over `{{window}}`.
- alerting (`pyrra_alerting`): Pyrra's own burn-rate table for the window is written out in
  `alerting.windows` (it differs from ours), with its alert name and severities, so migrated alerts
  fire when Pyrra's did; `disabled`/`burnrates: false` turn both tiers off; absent alerts and
  `grouping` are reported as not kept.

Pyrra's own checks (a target in 0-100, a parsable window, exactly one indicator, metrics that are
vector selectors, an `le` matcher on latency buckets) are errors at their field; a document with an
error is still validated as a declaration so that every problem shows in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sloplane.core.durations import DurationError, parse_duration
from sloplane.declaration.checks import RESERVED_ALERT_LABELS
from sloplane.declaration.diagnostics import Diagnostic, Loc
from sloplane.declaration.model import API_VERSION as OUR_API_VERSION
from sloplane.declaration.model import KIND
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.validation import did_you_mean
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.pyrra_alerting import alerting_of
from sloplane.interop.pyrra_indicators import indicator_sli
from sloplane.interop.translation import (
    UNASSIGNED_TEAM,
    ForeignFormat,
    Translation,
    as_name,
    diagnostic_at,
    is_name,
    owner_label,
    validated,
)

API_VERSION = "pyrra.dev/v1alpha1"
PROPAGATED_PREFIX = "pyrra.dev/"
"""Labels and annotations Pyrra copies onto its rules and alerts, without the prefix."""
SERVICE_LABELS = ("pyrra.dev/service", "service", "app.kubernetes.io/name", "app")
PYRRA_OWNER_LABELS = ("pyrra.dev/team", "pyrra.dev/owner")
CODE = "pyrra"
_SPEC_KEYS = ("description", "target", "window", "indicator", "alerting")
_RULE_ONLY_KEYS = ("partial_response_strategy", "performanceOverAccuracy", "ruleOutput")
"""Fields that only change how Pyrra writes its own rules: nothing of ours to carry them to."""
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_STAND_IN_SLI = {"raw": {"errorRatio": {"prometheus": "vector(0)"}}}
_STAND_IN_OBJECTIVE = 99.0
"""Put where an indicator or target could not be read (an error already says so), so that the rest of
the document is still validated and every problem shows in one run; such a document imports nothing."""


def detects(data: dict[str, Any]) -> bool:
    """Pyrra's own marker: its apiVersion."""
    return data.get("apiVersion") == API_VERSION


@dataclass
class _Draft:
    """One declaration being made: its data, field map, warnings and Pyrra's own errors."""

    document: YamlDocument
    data: dict[str, Any] = field(default_factory=dict)
    mapping: list[tuple[Loc, Loc]] = field(default_factory=list)
    warnings: list[tuple[Loc, str]] = field(default_factory=list)
    errors: list[tuple[Loc, str]] = field(default_factory=list)


def _strings(raw: Any, loc: Loc, draft: _Draft) -> dict[str, str]:
    """A labels/annotations mapping with scalar values as text (Kubernetes keeps them as strings)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        draft.errors.append((loc, "must be a mapping of names to strings"))
        return {}
    return {str(key): value if isinstance(value, str) else str(value) for key, value in raw.items()}


def _name_like(value: str, what: str, loc: Loc, draft: _Draft) -> str:
    """An RFC 1123 name from a label value, with a warning when it had to be changed."""
    slug = as_name(value)
    if is_name(value) or not slug:
        return value
    draft.warnings.append((loc, f"'{value}' is not an RFC 1123 name: the {what} is imported as '{slug}'"))
    return slug


def _metadata(metadata: dict[str, Any], draft: _Draft) -> tuple[dict[str, str], dict[str, str]]:
    """Our metadata (name, labels, annotations); returns Pyrra's labels and annotations."""
    labels = _strings(metadata.get("labels"), ("metadata", "labels"), draft)
    annotations = _strings(metadata.get("annotations"), ("metadata", "annotations"), draft)
    annotations = {k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS}
    ours: dict[str, Any] = {"labels": labels, "annotations": annotations}
    name = metadata.get("name")
    if isinstance(name, str) and "." in name:
        dashed = name.replace(".", "-")
        draft.warnings.append((("metadata", "name"), f"names cannot hold '.': imported as '{dashed}'"))
        name = dashed
    if name is not None:
        ours["name"] = name
    draft.data["metadata"] = ours
    draft.mapping += [
        (("metadata", "name"), ("metadata", "name")),
        (("metadata", "labels"), ("metadata", "labels")),
        (("metadata", "annotations"), ("metadata", "annotations")),
        (("metadata",), ("metadata",)),
    ]
    return labels, annotations


def _service(metadata: dict[str, Any], labels: dict[str, str], draft: _Draft) -> str | None:
    """The service: a label, else the namespace, else the SLO's name (see the module docstring)."""
    key = next((k for k in SERVICE_LABELS if labels.get(k)), None)
    if key is not None:
        loc: Loc = ("metadata", "labels", key)
        service = _name_like(labels[key], "service", loc, draft)
    else:
        namespace, name = metadata.get("namespace"), metadata.get("name")
        loc = ("metadata", "namespace") if isinstance(namespace, str) and namespace else ("metadata", "name")
        fallback = namespace if loc[-1] == "namespace" else name
        if not isinstance(fallback, str):
            return None
        where = "namespace" if loc[-1] == "namespace" else "name"
        draft.warnings.append(
            (
                loc,
                f"no service label: the service is the {where} '{fallback}' (releases of one service freeze "
                "together); set the label pyrra.dev/service=<name> to name it",
            )
        )
        service = _name_like(fallback.replace(".", "-"), "service", loc, draft)
    draft.mapping.append((("spec", "service"), loc))
    return service


def _owners(labels: dict[str, str], draft: _Draft) -> dict[str, str]:
    key = owner_label(labels, first=PYRRA_OWNER_LABELS)
    if key is None:
        loc: Loc = ("metadata", "labels") if labels else ("metadata", "name")
        draft.warnings.append(
            (
                loc,
                "no owning team: set the label pyrra.dev/team=<name> (Pyrra then also labels its alerts "
                f"team=<name>); imported as '{UNASSIGNED_TEAM}'",
            )
        )
        draft.mapping.append((("spec", "owners"), loc))
        return {"team": UNASSIGNED_TEAM}
    loc = ("metadata", "labels", key)
    draft.mapping.append((("spec", "owners"), loc))
    return {"team": _name_like(labels[key], "owning team", loc, draft)}


def _objective(spec: dict[str, Any], draft: _Draft) -> float | None:
    """`target` as a percentage: Pyrra's a string ("99.5"), though an unquoted number reads the same."""
    target = spec.get("target")
    if target is None or target == "":
        draft.errors.append((("spec",), 'target must be set (a percentage such as "99.5")'))
        return None
    try:
        value = float(target) if isinstance(target, str | int | float) and not isinstance(target, bool) else None
    except ValueError:
        value = None
    if value is None:
        draft.errors.append((("spec", "target"), f"target must be a number from 0 to 100, got {target!r}"))
        return None
    if 0 < value < 1:
        message = f"target is a percentage from 0 to 100: {value:g} means {value:g}%, not {value * 100:g}%"
        draft.warnings.append((("spec", "target"), message))
    draft.mapping.append((("spec", "objective"), ("spec", "target")))
    return value


def _window(spec: dict[str, Any], draft: _Draft) -> tuple[str | None, timedelta | None]:
    """The window as written (our validation reports what it cannot take) and, when it parses, its length."""
    window = spec.get("window")
    if window is None or window == "":
        draft.errors.append((("spec",), "window must be set (e.g. 28d or 4w)"))
        return None, None
    if not isinstance(window, str):
        draft.errors.append((("spec", "window"), f"window must be a duration such as 28d, got {window!r}"))
        return None, None
    draft.mapping.append((("spec", "window"), ("spec", "window")))
    try:
        return window, parse_duration(window)
    except DurationError:
        return window, None


def _spec_keys(spec: dict[str, Any], draft: _Draft) -> None:
    for key in spec:
        if key in _RULE_ONLY_KEYS:
            draft.warnings.append((("spec", key), f"{key} only changes how Pyrra writes its rules: not carried"))
        elif key not in _SPEC_KEYS:
            hint = did_you_mean(str(key), list(_SPEC_KEYS)) or f" (Pyrra knows: {', '.join(_SPEC_KEYS)})"
            draft.warnings.append((("spec", key), f"unknown key '{key}' is ignored{hint}"))


def _propagated(values: dict[str, str]) -> dict[str, str]:
    """Pyrra's `pyrra.dev/<name>` labels or annotations as the `<name>` its alerts carry."""
    return {k.removeprefix(PROPAGATED_PREFIX): v for k, v in values.items() if k.startswith(PROPAGATED_PREFIX)}


def _alert_labels(labels: dict[str, str], draft: _Draft) -> dict[str, str]:
    """Propagated labels, less those sloplane sets on every alert itself.

    `team` and `service` are already the owner and the service, which every alert carries.
    """
    kept: dict[str, str] = {}
    for key, value in _propagated(labels).items():
        if key not in RESERVED_ALERT_LABELS:
            kept[key] = value
        elif key not in ("team", "service"):
            message = f"Pyrra puts {key}={value} on its alerts; sloplane sets '{key}' itself: not carried"
            draft.warnings.append((("metadata", "labels", PROPAGATED_PREFIX + key), message))
    return kept


def _spec(spec: dict[str, Any], metadata: dict[str, Any], draft: _Draft) -> None:
    labels, annotations = _metadata(metadata, draft)
    ours: dict[str, Any] = {"service": _service(metadata, labels, draft), "owners": _owners(labels, draft)}
    description = spec.get("description")
    if isinstance(description, str) and description.strip():
        ours["description"] = description
        draft.mapping.append((("spec", "description"), ("spec", "description")))
    objective = _objective(spec, draft)
    ours["objective"] = objective if objective is not None else _STAND_IN_OBJECTIVE
    window_text, window = _window(spec, draft)
    if window_text is not None:
        ours["window"] = window_text
    indicator = indicator_sli(spec.get("indicator"), ("spec", "indicator") if "indicator" in spec else ("spec",))
    ours["sli"] = indicator.sli if indicator.sli is not None else _STAND_IN_SLI
    alerting = alerting_of(spec.get("alerting"), window, ("spec", "alerting"), ("spec",))
    alerting.data["labels"] = _alert_labels(labels, draft)
    alerting.data["annotations"] = _propagated(annotations)
    ours["alerting"] = alerting.data
    _spec_keys(spec, draft)
    draft.data["spec"] = {key: value for key, value in ours.items() if value is not None}
    draft.mapping = [
        (("spec", "alerting", "labels"), ("metadata", "labels")),
        (("spec", "alerting", "annotations"), ("metadata", "annotations")),
        *indicator.mapping,
        *alerting.mapping,
        *draft.mapping,
    ]
    draft.warnings += indicator.warnings + alerting.warnings
    draft.errors += indicator.errors + alerting.errors


def _translate(document: YamlDocument) -> _Draft:
    """One Pyrra document as a draft declaration; Pyrra's own rules broken are the draft's errors."""
    draft = _Draft(document, {"apiVersion": OUR_API_VERSION, "kind": KIND})
    data = document.data
    if data.get("kind") != "ServiceLevelObjective":
        draft.errors.append(
            (("kind",), f"kind '{data.get('kind')}' is not known in {API_VERSION}; use ServiceLevelObjective")
        )
    metadata, spec = data.get("metadata"), data.get("spec")
    for key, value in (("metadata", metadata), ("spec", spec)):
        if not isinstance(value, dict):
            draft.errors.append(((key,) if key in data else (), f"{key} must be a mapping"))
    _spec(spec if isinstance(spec, dict) else {}, metadata if isinstance(metadata, dict) else {}, draft)
    return draft


def read(documents: list[YamlDocument]) -> tuple[list[LoadedSLO], list[Diagnostic]]:
    """Our declarations from Pyrra documents; every diagnostic at the Pyrra field it is about."""
    slos: list[LoadedSLO] = []
    diagnostics: list[Diagnostic] = []
    for document in documents:
        draft = _translate(document)
        diagnostics += [diagnostic_at(document, loc, message, code=CODE) for loc, message in draft.errors]
        if not isinstance(document.data.get("metadata"), dict) or not isinstance(document.data.get("spec"), dict):
            continue  # no fields to validate: the shape error says it all
        translation = Translation(draft.data, document, draft.mapping, draft.warnings)
        found, reported = validated([translation], API_VERSION, code=CODE)
        diagnostics += reported
        if not draft.errors:
            slos += found
    return slos, list(dict.fromkeys(diagnostics))


FORMAT = ForeignFormat(
    name="Pyrra",
    command="pyrra",
    detects=detects,
    read=read,
    documents="Pyrra ServiceLevelObjectives (pyrra.dev/v1alpha1)",
)
