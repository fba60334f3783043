"""Mutation tests on the GENERATED Terraform module: each way the generator could go wrong must be refused
by real Terraform core (offline, tests/terraform_harness.py) in Terraform's own words, at the place broken.

Why on the generated module and not only the hand-written one of tests/test_terraform_harness.py: these prove
that the module `sloplane render --format terraform` writes for the examples is checked where it matters —
its Datadog and Kubernetes resources, its `count` switches, its escaped templates and its SLO references —
so a generator that forgot an escape, lost a required argument or named a resource it never declared would
fail the suite, not a team's `terraform plan`. Each mutation finds its target by structure (the first
`datadog_monitor` of an `slo-*.tf.json`, the first PrometheusRule alert's annotations, …), never by a
generated name, so the tests survive changes to the generator's layout. The unmutated module validating is
the positive control: without it a mutation test could pass on a module that never worked.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sloplane.interop import load_paths
from sloplane.render.bundle import serialize
from sloplane.render.terraform import module_documents
from tests.conftest import EXAMPLES
from tests.terraform_harness import TerraformError, TerraformHarness
from tests.test_terraform_module import write_root_module

Documents = dict[str, dict[str, Any]]
"""The generated module's `.tf.json` files parsed, by path (`terraform/…tf.json`); other files (dashboard
JSON read with `file()`) are written as generated."""
SLO_FILES = "terraform/slo-*.tf.json"
SLO_REFERENCE = re.compile(r"\$\{datadog_service_level_objective\.([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class Target:
    """The resource a mutation broke: where Terraform's diagnostic must point."""

    path: str
    kind: str
    name: str


Mutation = Callable[[Documents], Target]


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    """The examples' module as `sloplane render --format terraform` writes it, generated once per file."""
    return serialize(module_documents(load_paths([EXAMPLES]).declarations))


@pytest.fixture(scope="module")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> TerraformHarness:
    """One harness (CLI config, provider launchers, certificate) for the whole file."""
    return TerraformHarness(tmp_path_factory.mktemp("terraform"))


def _resources(documents: Documents, kind: str, files: str = SLO_FILES) -> list[tuple[str, str, dict[str, Any]]]:
    """Every resource of `kind` in the files matching `files`, in path order: (path, name, body)."""
    return [
        (path, name, body)
        for path in sorted(documents)
        if fnmatch.fnmatch(path, files)
        for name, body in documents[path].get("resource", {}).get(kind, {}).items()
    ]


def _first(documents: Documents, kind: str, files: str = SLO_FILES) -> tuple[Target, dict[str, Any]]:
    """The first resource of `kind`: the mutation's target and the body to break (in place)."""
    found = _resources(documents, kind, files)
    assert found, f"the generated module has no {kind} in {files}: the mutation has nothing to break"
    path, name, body = found[0]
    return Target(path, kind, name), body


def _alert_annotations(documents: Documents) -> tuple[Target, dict[str, Any]]:
    """The annotations of the first alert of the first PrometheusRule manifest: literal text a person
    wrote (descriptions, dashboard links), where a forgotten escape would show first."""
    for path, name, body in _resources(documents, "kubernetes_manifest"):
        manifest = body.get("manifest")
        if not isinstance(manifest, dict) or manifest.get("kind") != "PrometheusRule":
            continue
        for group in manifest["spec"]["groups"]:
            for rule in group["rules"]:
                if isinstance(rule.get("annotations"), dict):
                    return Target(path, "kubernetes_manifest", name), rule["annotations"]
    raise AssertionError("no PrometheusRule alert with annotations in the generated module")


# ---- the mutations: each breaks the module the way a generator bug would, and names what it broke ----


def _monitor_without_query(documents: Documents) -> Target:
    """A required argument lost: Terraform refuses the resource before any provider is asked."""
    target, monitor = _first(documents, "datadog_monitor")
    del monitor["query"]
    return target


def _manifest_without_manifest(documents: Documents) -> Target:
    """The one required argument of `kubernetes_manifest` lost."""
    target, resource = _first(documents, "kubernetes_manifest")
    del resource["manifest"]
    return target


def _bool_given_an_object(documents: Documents) -> Target:
    """A bool attribute written as an object (`notify_no_data`): converted against the provider's schema."""
    target, monitor = _first(documents, "datadog_monitor")
    monitor["notify_no_data"] = {"enabled": True}
    return target


def _count_given_a_list(documents: Documents) -> Target:
    """The `count` switch written as a list: Terraform, not the provider, wants a number."""
    target, monitor = _first(documents, "datadog_monitor")
    monitor["count"] = [1]
    return target


def _thresholds_given_a_string(documents: Documents) -> Target:
    """A block (`thresholds`, at least one required) written as a string."""
    target, slo = _first(documents, "datadog_service_level_objective")
    slo["thresholds"] = "30d 99.9"
    return target


def _unknown_property(documents: Documents) -> Target:
    """An argument the provider's schema does not have (a Pulumi-only input would look like this)."""
    target, monitor = _first(documents, "datadog_monitor")
    monitor["renotify_forever"] = True
    return target


def _unescaped_grafana_variable(documents: Documents) -> Target:
    """Grafana's `${datasource}` written into a manifest string unescaped (`$${datasource}` is the literal):
    Terraform reads it as a reference to a resource type `datasource`."""
    target, annotations = _alert_annotations(documents)
    annotations["description"] += " (see the dashboard's ${datasource})"
    return target


def _literal_percent_directive(documents: Documents) -> Target:
    """A literal `%{` left unescaped in an alert's description (`%%{` is the literal): Terraform reads a
    template directive."""
    target, annotations = _alert_annotations(documents)
    annotations["description"] += " (above 100%{threshold})"
    return target


def _depends_on_a_missing_resource(documents: Documents) -> Target:
    """`depends_on` naming a resource the module does not declare."""
    target, monitor = _first(documents, "datadog_monitor")
    monitor["depends_on"] = ["datadog_monitor.missing"]
    return target


def _depends_on_not_static(documents: Documents) -> Target:
    """`depends_on` holding an interpolation: it must be a static reference, so Terraform's config loader
    refuses it already during `init`."""
    target, monitor = _first(documents, "datadog_monitor")
    monitor["depends_on"] = ["${var.namespace}"]
    return target


def _undeclared_variable(documents: Documents) -> Target:
    """A message referring to a variable the module does not declare."""
    target, monitor = _first(documents, "datadog_monitor")
    monitor["message"] += " ${var.nope}"
    return target


def _undeclared_resource_in_query(documents: Documents) -> Target:
    """A burn-rate monitor whose query names an SLO resource that is not there (a renamed SLO)."""
    for path, name, monitor in _resources(documents, "datadog_monitor"):
        if SLO_REFERENCE.search(monitor["query"]):
            monitor["query"] = SLO_REFERENCE.sub("${datadog_service_level_objective.gone", monitor["query"], count=1)
            return Target(path, "datadog_monitor", name)
    raise AssertionError("no datadog_monitor query refers to an SLO in the generated module")


def _count_from_a_string_variable(documents: Documents) -> Target:
    """`count` from a string variable: `validate` treats variables as unknown and passes; only `plan`, with
    the variable's value, sees that it is not a number."""
    target, monitor = _first(documents, "datadog_monitor")
    monitor["count"] = "${var.namespace}"
    return target


@dataclass(frozen=True)
class Case:
    """A mutation, Terraform's words for it, and the step that refuses it."""

    mutate: Mutation
    expected: tuple[str, ...]
    command: str = "validate"
    plan: bool = False
    """Only `plan` can see it: `validate` must pass first, so the case proves why `plan` is needed."""


CASES = [
    Case(_monitor_without_query, ("Missing required argument", 'The argument "query" is required')),
    Case(_manifest_without_manifest, ("Missing required argument", 'The argument "manifest" is required')),
    Case(
        _bool_given_an_object,
        ("Incorrect attribute value type", 'Inappropriate value for attribute "notify_no_data": bool required'),
    ),
    Case(_count_given_a_list, ("Incorrect value type", "number required, but have tuple")),
    Case(
        _thresholds_given_a_string,
        ("Incorrect JSON value type", 'representing the contents of one or more "thresholds" blocks'),
    ),
    Case(
        _unknown_property, ("Extraneous JSON object property", 'No argument or block type is named "renotify_forever"')
    ),
    Case(
        _unescaped_grafana_variable,
        ("Invalid reference", "A reference to a resource type must be followed by at least one attribute access"),
    ),
    Case(_literal_percent_directive, ("Invalid template control keyword", '"threshold" is not a valid template')),
    Case(_depends_on_a_missing_resource, ("Reference to undeclared resource", '"datadog_monitor" "missing"')),
    Case(
        _depends_on_not_static,
        ("Invalid expression", "A single static variable reference is required"),
        command="init",
    ),
    Case(_undeclared_variable, ("Reference to undeclared input variable", 'An input variable with the name "nope"')),
    Case(
        _undeclared_resource_in_query,
        ("Reference to undeclared resource", 'A managed resource "datadog_service_level_objective" "gone"'),
    ),
    Case(_count_from_a_string_variable, ("Incorrect value type", "a number is required"), command="plan", plan=True),
]


def _lines(text: str, target: Target) -> range:
    """The 1-based lines of the target's body in a file written with `json.dumps(indent=2)`: resource at
    two spaces, its type at four, the resource's name at six."""
    lines = text.splitlines()
    kind = lines.index(f"    {json.dumps(target.kind)}: {{")
    start = lines.index(f"      {json.dumps(target.name)}: {{", kind)
    end = next(i for i in range(start, len(lines)) if lines[i] in ("      }", "      },"))
    return range(start + 1, end + 2)


def test_the_unmutated_module_validates(terraform: TerraformHarness, generated: dict[str, str], tmp_path: Path) -> None:
    """The positive control: every failure below is the mutation's, not the generated module's."""
    assert terraform.validate(write_root_module(tmp_path, generated)) == []


@pytest.mark.parametrize("case", CASES, ids=[case.mutate.__name__.lstrip("_") for case in CASES])
def test_a_mutated_module_fails_with_terraforms_own_message(
    terraform: TerraformHarness, generated: dict[str, str], tmp_path: Path, case: Case
) -> None:
    """Terraform refuses the mutation in its own words, and its diagnostic points into the broken resource
    (Terraform's summaries rarely name the resource; the file and line of its diagnostic always do)."""
    documents: Documents = {path: json.loads(text) for path, text in generated.items() if path.endswith(".tf.json")}
    target = case.mutate(documents)
    mutated = json.dumps(documents[target.path], indent=2, ensure_ascii=False) + "\n"
    folder = write_root_module(tmp_path, generated | {target.path: mutated})
    if case.plan:
        assert terraform.validate(folder) == [], "validate sees this mutation: it is no case for plan"
    with pytest.raises(TerraformError) as failure:
        terraform.plan(folder) if case.plan else terraform.validate(folder)
    error = failure.value
    assert error.command == case.command, str(error)
    for words in case.expected:
        assert words in error.messages, str(error)
    span = _lines(mutated, target)
    errors = [d for d in error.diagnostics if d.severity == "error"]
    assert any(d.filename == f"gen/{target.path}" and d.line in span for d in errors), (
        f"no error points into {target.kind}.{target.name} ({target.path}:{span.start}-{span.stop - 1})",
        [str(d) for d in errors],
    )
