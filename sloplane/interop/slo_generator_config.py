"""slo-generator's shared configuration (`config.yaml`): the backends and error-budget policies SLOs name.

slo-generator runs as `slo-generator compute -f SLO_CONFIGS -c config.yaml`: each SLO config names a
backend (`spec.backend`) and an error-budget policy (`spec.error_budget_policy`, default `default`)
of that one shared file. The file has no apiVersion or kind, so it is recognised by its own
top-level keys (`backends`, `error_budget_policies`) and read when it is given alongside the SLO
configs (`sloplane import slo-generator config.yaml slos/`). It is read once, whatever the number of
SLOs, so a broken policy step is reported once, in the file where it is written.

What is read: backend names (slo-generator derives a backend's class from its name, `prometheus` or
`prometheus/<anything>`; a name with a dot is a custom class), and every policy's steps (`name`,
`window` in seconds, `burn_rate_threshold`, `alert`). Backend settings (URL, headers) are deployment
details of the evaluator, and `exporters` / `default_exporters` are slo-generator's outputs: neither
becomes part of a declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sloplane.declaration.diagnostics import Diagnostic, Loc, Severity
from sloplane.declaration.yamlsource import YamlDocument
from sloplane.interop.translation import diagnostic_at

CONFIG_KEYS = ("backends", "error_budget_policies")
"""Top-level keys that mark a document as slo-generator's shared configuration."""
CODE = "slo-generator"
DEFAULT_POLICY = "default"
"""The policy an SLO config that names none uses (slo-generator's `get_error_budget_policy`)."""
MIN_STEP_WINDOW = timedelta(minutes=1)


def is_shared_config(data: dict[str, Any]) -> bool:
    """A mapping without apiVersion or kind whose top level holds `backends` or `error_budget_policies`."""
    if "apiVersion" in data or "kind" in data:
        return False
    return any(isinstance(data.get(key), dict) for key in CONFIG_KEYS)


@dataclass(frozen=True)
class Step:
    """One error-budget policy step: a window, the burn rate that alerts over it, and whether it pages."""

    name: str
    window: timedelta
    threshold: float
    alert: bool
    loc: Loc


@dataclass
class Policy:
    """A named error-budget policy and where it is written (diagnostics about it point there)."""

    name: str
    document: YamlDocument
    loc: Loc
    steps: list[Step] = field(default_factory=list)
    reported: bool = False
    """Whether its notes (steps that are not imported) were reported: once, however many SLOs use it."""


@dataclass
class SharedConfig:
    """Every backend and policy named in the shared configuration documents given."""

    backends: dict[str, tuple[YamlDocument, Loc]] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    given: bool = False
    """Whether any shared configuration was given: without one, names cannot be checked."""


def read_shared_config(documents: list[YamlDocument], diagnostics: list[Diagnostic]) -> SharedConfig:
    """Backends and policies of every shared configuration document; problems become diagnostics."""
    config = SharedConfig(given=bool(documents))
    for document in documents:
        _read_backends(document, config, diagnostics)
        _read_policies(document, config, diagnostics)
    return config


def _error(document: YamlDocument, loc: Loc, message: str) -> Diagnostic:
    return diagnostic_at(document, loc, message, Severity.ERROR, CODE)


def _read_backends(document: YamlDocument, config: SharedConfig, diagnostics: list[Diagnostic]) -> None:
    backends = document.data.get("backends", {})
    if not isinstance(backends, dict):
        diagnostics.append(_error(document, ("backends",), "'backends' must be a mapping of backend names"))
        return
    for name in backends:
        loc: Loc = ("backends", str(name))
        if str(name) in config.backends:
            other, _ = config.backends[str(name)]
            diagnostics.append(_error(document, loc, f"backend '{name}' is also defined in {other.path}"))
            continue
        config.backends[str(name)] = (document, loc)


def _read_policies(document: YamlDocument, config: SharedConfig, diagnostics: list[Diagnostic]) -> None:
    policies = document.data.get("error_budget_policies", {})
    if not isinstance(policies, dict):
        diagnostics.append(
            _error(document, ("error_budget_policies",), "'error_budget_policies' must be a mapping of policy names")
        )
        return
    for name, body in policies.items():
        loc: Loc = ("error_budget_policies", str(name))
        if str(name) in config.policies:
            other = config.policies[str(name)].document
            diagnostics.append(_error(document, loc, f"error budget policy '{name}' is also defined in {other.path}"))
            continue
        policy = Policy(str(name), document, loc)
        steps = body.get("steps") if isinstance(body, dict) else None
        if not isinstance(steps, list) or not steps:
            diagnostics.append(_error(document, loc, "a policy needs 'steps': a list of {name, window, ...}"))
        else:
            for index, step in enumerate(steps):
                found = _step(document, step, (*loc, "steps", index), diagnostics)
                if found is not None:
                    policy.steps.append(found)
        config.policies[policy.name] = policy


def _number(value: Any) -> float | None:
    """A YAML number (not a boolean), as slo-generator's `float()` would read it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _step(document: YamlDocument, step: Any, loc: Loc, diagnostics: list[Diagnostic]) -> Step | None:
    """One step, checked as slo-generator would use it; None (and errors) when it cannot be used."""
    if not isinstance(step, dict):
        diagnostics.append(
            _error(document, loc, "a step must be a mapping: {name, window, burn_rate_threshold, alert}")
        )
        return None
    problems: list[tuple[Loc, str]] = []
    name = step.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append((loc if "name" not in step else (*loc, "name"), "a step needs a 'name' (text)"))
    window = _number(step.get("window"))
    if window is None or not window.is_integer() or timedelta(seconds=window) < MIN_STEP_WINDOW:
        problems.append(
            (
                loc if "window" not in step else (*loc, "window"),
                f"'window' must be a whole number of seconds, at least {int(MIN_STEP_WINDOW.total_seconds())}",
            )
        )
    threshold = _number(step.get("burn_rate_threshold"))
    if threshold is None or threshold <= 0:
        where = loc if "burn_rate_threshold" not in step else (*loc, "burn_rate_threshold")
        problems.append((where, "'burn_rate_threshold' must be a number above 0 (9 alerts at 9x the budget's pace)"))
    alert = step.get("alert", False)
    if not isinstance(alert, bool):
        problems.append(((*loc, "alert"), "'alert' must be true or false"))
    diagnostics.extend(_error(document, where, message) for where, message in problems)
    if problems:
        return None
    assert isinstance(name, str) and window is not None and threshold is not None
    return Step(name.strip(), timedelta(seconds=window), threshold, alert, loc)
