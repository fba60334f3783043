"""google/slo-generator `sre.google.com/v2` SLO configs (the Prometheus backend) as sloplane declarations.

Documents in: SLO configs (`apiVersion: sre.google.com/v2`, `kind: ServiceLevelObjective`) and,
alongside them, slo-generator's shared `config.yaml` (no apiVersion: recognised by its top-level
`backends` / `error_budget_policies`, see `slo_generator_config`). Each SLO config becomes one
declaration; the SLI methods are translated in `slo_generator_queries`.

Mapping:
- name: `metadata.name` when it is an RFC 1123 name, else `<service_name>-<feature_name>-<slo_name>`
  from the labels; labels are kept. Service: the `service_name` label. Owners: the `team` (or
  `owner`) label, else `unassigned` with a warning naming the label to set.
- objective: `goal` x 100, in decimal so that 0.999 is exactly 99.9.
- backend: a name of the shared config's `backends`; slo-generator derives the class from the name,
  so `prometheus` and `prometheus/<anything>` are accepted and every other backend is an error at
  `spec.backend` (its SLI fields mean nothing to Prometheus, so nothing else of it is checked).
- error budget policy (`spec.error_budget_policy`, default `default`): each step with `alert: true`
  becomes a page-tier `alerting.windows` entry (long = the step's window, factor = its
  `burn_rate_threshold`). `alert` is v1's `urgent_notification` ("whether violating this error budget
  should trigger a page", slo-generator's README and migrator), so it says page, not the window's
  length; the ticket tier is switched off. Steps with `alert: false` are reported (burn rates, release
  freezes) but notify no one: they are not imported, with a warning at the step. The longest step of
  threshold 1 or less (the budget of its own window spent: the period's step, 28 days by default)
  sets our rolling window when it is at least a day long; otherwise the window stays 30d.
- alert timing: slo-generator measures one window per step when it runs, and compares the burn
  rate rounded to one decimal (`> threshold`). sloplane's alerts also need the short window (one
  twelfth of the long one by default) to burn faster than the factor. While a burn goes on, the short
  window is at least as hot as the long one, so this never fires later; it makes the alert stop soon
  after the burn stops instead of when the long window has cooled down: sloplane's alerts reset
  faster, they do not fire earlier.
- gate: not mapped. `gate.maxBurnRate` over `analysisWindow` judges a deployment on the minutes after
  it; slo-generator's steps judge hours to weeks of history and have no notion of a deployment.
  Its "freeze releases when the period's budget is spent" step is what sloplane's default gate already
  does (an exhausted budget fails the gate), so the default is kept.
- exporters: not imported (sloplane renders its own outputs); a warning says so.

Without a shared config the backend is judged by its name alone and sloplane's default burn-rate
alerts are used, with a warning: pass config.yaml alongside to import the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sloplane.core.durations import format_duration
from sloplane.declaration.diagnostics import Diagnostic, Loc, Severity
from sloplane.declaration.model import API_VERSION as OUR_API_VERSION
from sloplane.declaration.model import KIND
from sloplane.declaration.origin import LoadedSLO
from sloplane.declaration.validation import did_you_mean
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.slo_generator_config import (
    CODE,
    DEFAULT_POLICY,
    Policy,
    SharedConfig,
    is_shared_config,
    read_shared_config,
)
from sloplane.interop.slo_generator_queries import SLI_LOC, indicator
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

API_VERSION = "sre.google.com/v2"
SUPPORTED_BACKEND = "prometheus"
SPEC_KEYS = ("description", "backend", "method", "exporters", "service_level_indicator", "goal", "error_budget_policy")
NAME_LABELS = ("service_name", "feature_name", "slo_name")
MIN_PERIOD = timedelta(days=1)

Notes = list[tuple[Loc, str]]


@dataclass
class _Found:
    """What reading one SLO config noticed: errors (it cannot be imported) and warnings, at its fields."""

    errors: Notes = field(default_factory=list)
    warnings: Notes = field(default_factory=list)


def detects(data: dict[str, Any]) -> bool:
    """slo-generator's marker (its apiVersion), or its shared config's top-level keys."""
    return data.get("apiVersion") == API_VERSION or is_shared_config(data)


def read(documents: list[YamlDocument]) -> tuple[list[LoadedSLO], list[Diagnostic]]:
    """Declarations from SLO configs, with the shared config given alongside; never raises for bad input."""
    diagnostics: list[Diagnostic] = []
    config = read_shared_config([d for d in documents if is_shared_config(d.data)], diagnostics)
    translations: list[Translation] = []
    for document in documents:
        if not is_shared_config(document.data):
            translation = _translate(document, config, diagnostics)
            if translation is not None:
                translations.append(translation)
    slos, found = validated(translations, API_VERSION, code=CODE)
    return slos, [*diagnostics, *found]


def _translate(document: YamlDocument, config: SharedConfig, diagnostics: list[Diagnostic]) -> Translation | None:
    """One SLO config as a translation, or None (with every problem found reported) when it cannot be one."""
    data = document.data
    found = _Found()
    if data.get("kind") != KIND:
        found.errors.append((("kind",), f"kind '{data.get('kind')}' is not known in {API_VERSION}; use {KIND}"))
    for key in ("metadata", "spec"):
        if not isinstance(data.get(key), dict):
            found.errors.append(((key,) if key in data else (), f"'{key}' must be a mapping"))
    spec: dict[str, Any] = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    if found.errors or not _backend(spec, config, found.errors):
        _report(document, found, diagnostics)
        return None
    _unknown_spec_keys(spec, found.warnings)
    objective = _objective(spec, found.errors)
    sli = indicator(spec.get("method"), spec.get("service_level_indicator"))
    found.errors.extend(sli.errors)
    found.warnings.extend(sli.warnings)
    alerting, window = _policy(spec, config, found, diagnostics)
    metadata, identity, mapping = _metadata(data["metadata"], found)
    if spec.get("exporters"):
        found.warnings.append((("spec", "exporters"), "exporters are not imported: sloplane renders its own outputs"))
    if found.errors or sli.sli is None or objective is None:
        _report(document, found, diagnostics)
        return None
    our_spec: dict[str, Any] = {**identity, "sli": sli.sli, "objective": objective}
    if isinstance(spec.get("description"), str):
        our_spec["description"] = spec["description"].strip()
    if window is not None:
        our_spec["window"] = window
    if alerting is not None:
        our_spec["alerting"] = alerting
    policy_loc: Loc = ("spec", "error_budget_policy") if "error_budget_policy" in spec else ("spec",)
    mapping = [
        *sli.mapping,
        (("spec", "sli"), SLI_LOC),
        (("spec", "objective"), ("spec", "goal")),
        (("spec", "window"), policy_loc),
        (("spec", "alerting"), policy_loc),
        (("spec", "description"), ("spec", "description")),
        *mapping,
    ]
    result = {"apiVersion": OUR_API_VERSION, "kind": KIND, "metadata": metadata, "spec": our_spec}
    return Translation(result, document, mapping, found.warnings)


def _report(document: YamlDocument, found: _Found, diagnostics: list[Diagnostic]) -> None:
    """Report what made an SLO config untranslatable (and what else was noticed) at its own fields."""
    diagnostics.extend(diagnostic_at(document, loc, message, Severity.ERROR, CODE) for loc, message in found.errors)
    for loc, message in found.warnings:
        diagnostics.append(diagnostic_at(document, loc, message, Severity.WARNING, CODE))


def _backend(spec: dict[str, Any], config: SharedConfig, errors: Notes) -> bool:
    """Whether the SLO is read from Prometheus; False (with the one error that matters) when it is not."""
    name = spec.get("backend")
    if not isinstance(name, str) or not name.strip():
        errors.append((("spec", "backend") if "backend" in spec else ("spec",), "missing 'backend' (a backend name)"))
        return False
    kind = name.split("/")[0]
    if "." in name or kind != SUPPORTED_BACKEND:
        what = " (a custom backend class)" if "." in name else ""
        message = f"backend '{name}' is not supported{what}: sloplane imports slo-generator's prometheus backend only"
        errors.append((("spec", "backend"), message))
        return False
    if config.given and name not in config.backends:
        hint = did_you_mean(name, list(config.backends))
        errors.append((("spec", "backend"), f"backend '{name}' is not defined in the shared config's backends{hint}"))
    return True


def _unknown_spec_keys(spec: dict[str, Any], warnings: Notes) -> None:
    """slo-generator ignores keys it does not know: so does the import, saying so."""
    for key in spec:
        if str(key) not in SPEC_KEYS:
            hint = did_you_mean(str(key), list(SPEC_KEYS))
            warnings.append((("spec", str(key)), f"'{key}' is not an slo-generator field and is ignored{hint}"))


def _objective(spec: dict[str, Any], errors: Notes) -> float | None:
    """goal x 100 as a percentage, exact in decimal (0.999 -> 99.9, never 99.90000000000001)."""
    goal = spec.get("goal")
    if goal is None:
        errors.append((("spec",), "missing 'goal' (e.g. 0.999 for 99.9%)"))
        return None
    try:
        exact = None if isinstance(goal, bool) else Decimal(str(goal).strip())
    except InvalidOperation:
        exact = None
    if exact is None or not exact.is_finite() or not 0 < exact < 1:
        errors.append((("spec", "goal"), f"goal {goal} must be a number strictly between 0 and 1 (0.999 means 99.9%)"))
        return None
    return float(exact * 100)


def _policy(
    spec: dict[str, Any], config: SharedConfig, found: _Found, diagnostics: list[Diagnostic]
) -> tuple[dict[str, Any] | None, str | None]:
    """Our `alerting` and window from the SLO's error budget policy; (None, None) keeps sloplane's defaults."""
    name = spec.get("error_budget_policy", DEFAULT_POLICY)
    loc: Loc = ("spec", "error_budget_policy") if "error_budget_policy" in spec else ("spec",)
    if not isinstance(name, str):
        found.errors.append((loc, "'error_budget_policy' must be a policy name"))
        return None, None
    if not config.given:
        found.warnings.append(
            (
                loc,
                f"error budget policy '{name}' lives in slo-generator's config.yaml, which was not given: "
                "sloplane's default burn-rate alerts are used (pass config.yaml alongside to import it)",
            )
        )
        return None, None
    policy = config.policies.get(name)
    if policy is None:
        hint = did_you_mean(name, list(config.policies))
        found.errors.append((loc, f"error budget policy '{name}' is not defined in the shared config{hint}"))
        return None, None
    _report_policy(policy, diagnostics)
    windows = [
        {"tier": "page", "long": format_duration(step.window), "factor": step.threshold}
        for step in policy.steps
        if step.alert
    ]
    alerting: dict[str, Any] = {"page": bool(windows), "ticket": False}
    if windows:
        alerting["windows"] = windows
    return alerting, _period(policy)


def _period(policy: Policy) -> str | None:
    """The longest step that spends its own window's budget (threshold <= 1), when at least a day long."""
    periods = [step.window for step in policy.steps if step.threshold <= 1 and step.window >= MIN_PERIOD]
    return format_duration(max(periods)) if periods else None


def _report_policy(policy: Policy, diagnostics: list[Diagnostic]) -> None:
    """Steps that are not imported, once per policy however many SLOs use it."""
    if policy.reported:
        return
    policy.reported = True
    for step in policy.steps:
        if not step.alert:
            message = (
                f"step '{step.name}' has alert: false: slo-generator only reports it, so it is not imported as an "
                "alert (add a ticket entry to alerting.windows for one)"
            )
            diagnostics.append(diagnostic_at(policy.document, step.loc, message, Severity.WARNING, CODE))


def _metadata(raw: dict[str, Any], found: _Found) -> tuple[dict[str, Any], dict[str, Any], list[tuple[Loc, Loc]]]:
    """Our metadata, service and owners from slo-generator's name and labels, and where each came from."""
    raw_labels = raw.get("labels", {})
    if not isinstance(raw_labels, dict):
        found.errors.append((("metadata", "labels"), "'labels' must be a mapping"))
        raw_labels = {}
    labels = {str(key): str(value) for key, value in raw_labels.items() if value is not None}
    labels_loc: Loc = ("metadata", "labels") if raw_labels else ("metadata",)
    name, name_loc = _name(raw.get("name"), labels, found)
    service, service_loc = _service(labels, name, name_loc, labels_loc, found)
    team, owner_loc = _team(labels, labels_loc, found)
    identity = {"service": service, "owners": {"team": team}}
    mapping: list[tuple[Loc, Loc]] = [
        (("spec", "service"), service_loc),
        (("spec", "owners"), owner_loc),
        (("metadata", "name"), name_loc),
        (("metadata",), ("metadata",)),
    ]
    return {"name": name, "labels": labels}, identity, mapping


def _service(labels: dict[str, str], name: str, name_loc: Loc, labels_loc: Loc, found: _Found) -> tuple[str, Loc]:
    """The `service_name` label as a name; without one, the SLO's name (a service must be named)."""
    service = as_name(labels.get("service_name", ""))
    if service:
        return service, ("metadata", "labels", "service_name")
    found.warnings.append((labels_loc, f"no service_name label: the service is named after the SLO ('{name}')"))
    return name, name_loc


def _team(labels: dict[str, str], labels_loc: Loc, found: _Found) -> tuple[str, Loc]:
    """The `team` (else `owner`) label as a name; without either, `unassigned` and a warning naming the label."""
    key = owner_label({k: v for k, v in labels.items() if as_name(v)})
    if key is not None:
        return as_name(labels[key]), ("metadata", "labels", key)
    message = f"no owning team: set the label team=<name> (imported as '{UNASSIGNED_TEAM}')"
    found.warnings.append((labels_loc, message))
    return UNASSIGNED_TEAM, labels_loc


def _name(raw: Any, labels: dict[str, str], found: _Found) -> tuple[str, Loc]:
    """metadata.name when it is an RFC 1123 name, else service_name-feature_name-slo_name from the labels."""
    if isinstance(raw, str) and is_name(raw):
        return raw, ("metadata", "name")
    parts = [labels.get(key, "") for key in NAME_LABELS]
    made = as_name("-".join(parts)) if all(parts) else ""
    if made:
        if raw is not None:
            found.warnings.append((("metadata", "name"), f"'{raw}' is not an RFC 1123 name: imported as '{made}'"))
        return made, ("metadata", "labels")
    if raw is None:
        found.errors.append((("metadata",), "missing 'name' (or the labels service_name, feature_name and slo_name)"))
        return "", ("metadata",)
    return str(raw), ("metadata", "name")


FORMAT = ForeignFormat(
    name="slo-generator",
    command="slo-generator",
    detects=detects,
    read=read,
    documents="slo-generator SLO configs (sre.google.com/v2) and its shared config.yaml",
)
