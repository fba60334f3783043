"""Pulumi and Terraform parity (issue 15): one fleet rendered both ways, the objects compared.

The Terraform module claims to hold exactly what the Pulumi components register. Each test here runs
`SloFleet` under the SDK's mocks and plans the generated module with real Terraform core
(`tests/terraform_harness.py`, offline), then pairs the two sides object by object, in both directions:

- Kubernetes objects by apiVersion, kind, namespace and name: the component's inputs (apiVersion, kind,
  metadata, spec or data) must equal the planned `kubernetes_manifest.manifest`, where Terraform has
  already undone the template escapes and put the variables' values in;
- Datadog resources by Terraform type and name: pulumi-datadog's inputs, renamed as the bridge names
  them (camelCase, plural repeated blocks, one-item blocks as objects) and reshaped with the provider's
  own schema (`tests/data/terraform/datadog.json`), must equal the planned values, sets compared
  sorted and dashboard JSON parsed.

An SLO id is only known after apply on both sides: the mocks answer `<name>-id`, the plan says "unknown".
So the module is planned twice: as generated (its unknown values must be exactly the inputs that name an
SLO id on the Pulumi side), and with each `${datadog_service_level_objective.<name>[0].id}` replaced by
the text `<id of datadog_service_level_objective.<name>>` — the placeholder the mocks' ids become too — so
that a monitor's query or a dashboard's widgets are compared in full, SLO reference included.

Whatever only one side has fails the test by name, except the design exceptions, each saying why:
`IGNORED_PULUMI` (the provider, the components), `APP_PROJECT_PATCH` (the Argo CD freezes, compared with
the module's output instead) and the evaluator (asked of neither side, see `_pulumi_objects`). Failures
are collected, so one run lists every difference: each differing attribute of a Datadog resource, the
first difference of a Kubernetes object.

The evaluator has a test of its own (`test_pulumi_and_terraform_create_the_same_evaluator`): asked of both
sides with the same settings (`SloFleet`'s `evaluator` argument, the module's `create_evaluator` and
`evaluator_*` variables), in volume and postgres mode and in another namespace, its Kubernetes objects are
paired the same way; the Secrets' values are unwrapped from Pulumi's secret marking first
(`SECRET_SIGNATURE`), the one difference by design.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest

from sloplane.components import SloFleet
from sloplane.interop import load_paths
from sloplane.render.bundle import serialize
from sloplane.render.terraform import PROVIDERS, TerraformOptions, module_documents
from tests.conftest import EXAMPLES, ROOT
from tests.pulumi_mocks import Recorder, datadog_provider
from tests.terraform_harness import TerraformHarness, planned_resources
from tests.test_components_datadog import STAGED as STAGED_DATADOG
from tests.test_render_datadog import FULL as FULL_DATADOG
from tests.test_terraform_module import THRESHOLD

GOLDEN = ROOT / "tests" / "golden" / "declarations"
SCHEMAS = ROOT / "tests" / "data" / "terraform"
FLEET = "parity"
"""The Pulumi fleet's name: its children are `parity-<slo>-<suffix>` and `parity-<suffix>`, the module's
`<slo>-<suffix>` and `fleet-<suffix>`."""
MODULE = "slos"
ROOT_MODULE: dict[str, Any] = {
    "terraform": {"required_providers": PROVIDERS},
    "provider": {
        "kubernetes": {"config_path": "~/.kube/config"},
        "datadog": {"api_key": "not-a-key", "app_key": "not-a-key"},
    },
    "module": {MODULE: {"source": "./gen/terraform"}},
    "output": {"argocd_sync_windows": {"value": f"${{module.{MODULE}.argocd_sync_windows}}"}},
}
"""A root module calling the generated one, as a team's repository would, passing on the freezes (a root
output is what `terraform show -json` shows)."""

DATADOG_TYPES = {
    "datadog:index/serviceLevelObjective:ServiceLevelObjective": "datadog_service_level_objective",
    "datadog:index/monitor:Monitor": "datadog_monitor",
    "datadog:index/sloCorrection:SloCorrection": "datadog_slo_correction",
    "datadog:index/downtimeSchedule:DowntimeSchedule": "datadog_downtime_schedule",
    "datadog:index/dashboardJson:DashboardJson": "datadog_dashboard_json",
}
"""pulumi-datadog's type tokens and the Terraform resource types they bridge (written out here, not taken
from the module's own table, so that a wrong entry there cannot agree with itself)."""
SLO_TYPE = "datadog_service_level_objective"
JSON_ATTRIBUTES = {("datadog_dashboard_json", "dashboard")}
"""Attributes holding JSON text: compared parsed (the two sides may lay the text out differently)."""
IGNORED_PULUMI: dict[str, str] = {
    "pulumi:providers:": "the provider: the module has no provider blocks, its caller configures them",
    "sloplane:index:": "a component: it only groups its children (the module's files do that)",
}
"""Registrations with no Terraform counterpart by design, by type-token prefix, and why."""
APP_PROJECT_PATCH = "kubernetes:argoproj.io/v1alpha1:AppProjectPatch"
"""The fleet's sync-window patch of an AppProject it does not own: not a resource of the module by design
(`kubernetes_manifest` would own, and delete, the whole AppProject), but its output `argocd_sync_windows`
for the AppProject's owner, compared with the patch instead (`_compare_sync_windows`)."""
SLO_ID = re.compile(r"(?<!\$)\$\{datadog_service_level_objective\.([A-Za-z0-9_-]+)\[0\]\.id\}")
ADDRESS = re.compile(rf"^module\.{MODULE}\.([a-z_]+)\.([A-Za-z0-9_-]+)\[0\]$")

TIME_SLICE = THRESHOLD
"""A threshold SLI on Datadog: a time-slice SLO (`sli_specification`, the deepest nesting of blocks)."""


def _examples(_: Path) -> Path:
    return EXAMPLES


def _golden(_: Path) -> Path:
    return GOLDEN


def _datadog(tmp_path: Path) -> Path:
    """The Datadog shapes the examples lack: recurring and one-off corrections and downtimes, one SLO per
    stage, a time-slice SLO."""
    folder = tmp_path / "slos"
    folder.mkdir()
    for name, text in {"full.yaml": FULL_DATADOG, "staged.yaml": STAGED_DATADOG, "slice.yaml": TIME_SLICE}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


FLEETS: dict[str, Callable[[Path], Path]] = {"examples": _examples, "golden": _golden, "datadog": _datadog}
"""Each fleet's folder (the Datadog one written into the test's own folder)."""
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "observability": {"namespace": "observability", "rule_labels": {"prometheus": "main", "team": "sre"}},
}
"""Deployment choices given alike to `SloFleet` (arguments) and to the module call (variables of the same
names): the module is generated once, with the defaults, and must become what the component renders."""
CASES = [("examples", "defaults"), ("golden", "defaults"), ("datadog", "defaults"), ("examples", "observability")]


def _schemas() -> dict[str, Any]:
    """The Datadog provider's resource schemas, as the stand-in provider serves them to Terraform."""
    data = json.loads((SCHEMAS / "datadog.json").read_text(encoding="utf-8"))
    schemas: dict[str, Any] = data["resource_schemas"]
    return schemas


DATADOG_SCHEMAS = _schemas()


@pytest.fixture(scope="module")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> TerraformHarness:
    return TerraformHarness(tmp_path_factory.mktemp("terraform"))


# ---- the Pulumi side ----


@dataclass(frozen=True)
class Registered:
    """One resource the mocks saw: its type token, Pulumi name and inputs."""

    type: str
    name: str
    inputs: dict[str, Any]


def _registered(mocks: Recorder, folder: Path, settings: Mapping[str, Any]) -> list[Registered]:
    """Everything `SloFleet` registers for the folder (an evaluator only when `settings` asks for one).

    The program runs under `@pulumi.runtime.test`, which returns only once every registration and every
    Output has settled, so the recorder is complete when it does (comparing inside an `apply` could miss a
    child registered later)."""

    @pulumi.runtime.test
    def program() -> pulumi.Output[str]:
        args: Any = {"path": str(folder), "datadog_provider": datadog_provider(), **settings}
        fleet = SloFleet(FLEET, args)
        return fleet.urn

    program()
    return [Registered(typ, name, inputs) for typ, name, inputs in mocks.registered]


def _terraform_name(pulumi_name: str, slos: Sequence[str]) -> str:
    """The module's resource name for a Pulumi child: `<slo>-<suffix>`, or `fleet-<suffix>` for the fleet's."""
    rest = pulumi_name.removeprefix(f"{FLEET}-")
    if any(rest.startswith(f"{slo}-") for slo in slos):
        return rest
    return f"fleet-{rest}"


# ---- the Terraform side ----


def _module_files(folder: Path, files: Mapping[str, str], settings: Mapping[str, Any]) -> Path:
    """The root module (calling the generated one with `settings` as its variables) and the generated
    module below it (`gen/terraform/…`)."""
    for name, text in files.items():
        target = folder / "gen" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    root = {**ROOT_MODULE, "module": {MODULE: {**ROOT_MODULE["module"][MODULE], **settings}}}
    (folder / "main.tf.json").write_text(json.dumps(root, indent=2), encoding="utf-8")
    return folder


def _id_placeholder(terraform_name: str) -> str:
    return f"<id of {SLO_TYPE}.{terraform_name}>"


def _with_literal_ids(files: Mapping[str, str]) -> dict[str, str]:
    """The module with each SLO id reference replaced by its placeholder's text (see the module docstring)."""
    return {name: SLO_ID.sub(lambda match: _id_placeholder(match.group(1)), text) for name, text in files.items()}


def _by_address(planned: Mapping[str, dict[str, Any]], problems: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Planned values by (resource type, name); an address of another shape is a problem (a resource not
    in the called module, or not one instance)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for address, values in planned.items():
        match = ADDRESS.match(address)
        if match is None:
            problems.append(f"Terraform plans {address}, which is not one instance of a resource of the module")
            continue
        found[match.group(1), match.group(2)] = values
    return found


# ---- comparing ----


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _singulars(name: str) -> list[str]:
    """The Terraform names a pluralised Pulumi name may stand for (`queries` → `query`)."""
    found = []
    if name.endswith("ies"):
        found.append(name[:-3] + "y")
    if name.endswith("s"):
        found.append(name[:-1])
    return found


def _terraform_key(key: str, block: Mapping[str, Any], where: str) -> str:
    """The Terraform name of a Pulumi input: snake_case, and a repeated block's plural made singular (the
    bridge pluralises a nested block that may repeat, never a one-item block)."""
    name = _snake(key)
    if name in block.get("attributes", {}) or name in block.get("block_types", {}):
        return name
    for singular in _singulars(name):
        nested = block.get("block_types", {}).get(singular)
        if nested is not None and nested["nesting_mode"] in ("list", "set") and nested.get("max_items") != 1:
            return singular
    raise AssertionError(f"{where}: Pulumi input {key!r} has no attribute or block in the provider's schema")


def _terraform_shaped(inputs: Mapping[str, Any], block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Pulumi inputs in the shape of Terraform's planned values: a one-item block (Pulumi's object) a list
    of one, repeated blocks lists, keys as the schema spells them."""
    shaped: dict[str, Any] = {}
    for key, value in inputs.items():
        name = _terraform_key(key, block, where)
        nested = block.get("block_types", {}).get(name)
        if nested is None:
            shaped[name] = value
        elif nested["nesting_mode"] == "single":
            shaped[name] = _terraform_shaped(value, nested["block"], f"{where}.{name}")
        elif nested.get("max_items") == 1:
            assert isinstance(value, Mapping), f"{where}.{name}: a one-item block should be an object: {value!r}"
            shaped[name] = [_terraform_shaped(value, nested["block"], f"{where}.{name}")]
        else:
            assert isinstance(value, list), f"{where}.{name}: a repeated block should be a list: {value!r}"
            shaped[name] = [_terraform_shaped(item, nested["block"], f"{where}.{name}[]") for item in value]
    return shaped


def _attribute(value: Any, kind: Any) -> Any:
    """A value of an attribute's type in one canonical form: sets sorted."""
    if isinstance(kind, list) and kind[0] == "set":
        return sorted((_attribute(item, kind[1]) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(kind, list) and kind[0] == "list":
        return [_attribute(item, kind[1]) for item in value]
    return value


def _canonical(values: Mapping[str, Any], block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Values of one schema block, the same way from both sides: unset (null, empty) left out, sets sorted,
    blocks recursively."""
    found: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or value in ([], {}):
            continue
        nested = block.get("block_types", {}).get(key)
        if key in block.get("attributes", {}):
            found[key] = _attribute(value, block["attributes"][key]["type"])
        elif nested is None:
            raise AssertionError(f"{where}: {key!r} is not in the provider's schema")
        elif nested["nesting_mode"] == "single":
            found[key] = _canonical(value, nested["block"], f"{where}.{key}")
        else:
            items = [_canonical(item, nested["block"], f"{where}.{key}[]") for item in value]
            if nested["nesting_mode"] == "set":
                items.sort(key=lambda item: json.dumps(item, sort_keys=True))
            found[key] = items
    return found


def _replaced(value: Any, texts: Mapping[str, str]) -> Any:
    """Every string with each key of `texts` replaced by its value (longest first)."""
    if isinstance(value, str):
        for old in sorted(texts, key=len, reverse=True):
            value = value.replace(old, texts[old])
        return value
    if isinstance(value, Mapping):
        return {key: _replaced(item, texts) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, texts) for item in value]
    return value


def _holds(value: Any, text: str) -> bool:
    if isinstance(value, str):
        return text in value
    if isinstance(value, Mapping):
        return any(_holds(item, text) for item in value.values())
    if isinstance(value, list):
        return any(_holds(item, text) for item in value)
    return False


def _parsed_json(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    return {key: json.loads(value) if (kind, key) in JSON_ATTRIBUTES else value for key, value in values.items()}


def _short(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _difference(pulumi_value: Any, terraform_value: Any, path: str = "") -> str | None:
    """Where two values first differ, and both values there (None when equal)."""
    if pulumi_value == terraform_value:
        return None
    if isinstance(pulumi_value, Mapping) and isinstance(terraform_value, Mapping):
        only_pulumi = sorted(set(pulumi_value) - set(terraform_value), key=str)
        only_terraform = sorted(set(terraform_value) - set(pulumi_value), key=str)
        if only_pulumi or only_terraform:
            return (
                f"{path or '(top)'}: only Pulumi has {_short({key: pulumi_value[key] for key in only_pulumi})}, "
                f"only Terraform has {_short({key: terraform_value[key] for key in only_terraform})}"
            )
        for key in sorted(pulumi_value, key=str):
            found = _difference(pulumi_value[key], terraform_value[key], f"{path}.{key}")
            if found is not None:
                return found
    if (
        isinstance(pulumi_value, list)
        and isinstance(terraform_value, list)
        and len(pulumi_value) == len(terraform_value)
    ):
        for index, (left, right) in enumerate(zip(pulumi_value, terraform_value, strict=True)):
            found = _difference(left, right, f"{path}[{index}]")
            if found is not None:
                return found
    shown = [_short(value) if value is not None else "(unset)" for value in (pulumi_value, terraform_value)]
    return f"{path or '(top)'}: Pulumi {shown[0]} != Terraform {shown[1]}"


def _pulumi_objects(
    registered: Sequence[Registered], slos: Sequence[str], problems: list[str]
) -> tuple[dict[tuple[str, ...], dict[str, Any]], dict[tuple[str, str], Registered], list[Registered]]:
    """The Pulumi side sorted out: Kubernetes objects by identity, Datadog resources by their Terraform
    type and name, and the registrations set aside by design (unclassifiable ones are problems).

    No `SloEvaluator` is asked for (no `evaluator` argument), as the module's evaluator is behind
    `var.create_evaluator`, false by default: neither side has one here (checked on the Terraform side)."""
    kubernetes: dict[tuple[str, ...], dict[str, Any]] = {}
    datadog: dict[tuple[str, str], Registered] = {}
    aside: list[Registered] = []
    for resource in registered:
        if any(resource.type.startswith(prefix) for prefix in IGNORED_PULUMI) or resource.type == APP_PROJECT_PATCH:
            aside.append(resource)
        elif resource.type.startswith("kubernetes:"):
            key = _identity(resource.inputs)
            if key in kubernetes:
                problems.append(f"Pulumi registers {_named(key)} twice")
            kubernetes[key] = resource.inputs
        elif resource.type in DATADOG_TYPES:
            key = (DATADOG_TYPES[resource.type], _terraform_name(resource.name, slos))
            if key in datadog:
                problems.append(f"two Pulumi resources would be {key[0]}.{key[1]}")
            datadog[key] = resource
        else:
            problems.append(f"Pulumi registers {resource.type} {resource.name}, which this test cannot place")
    return kubernetes, datadog, aside


def _identity(obj: Mapping[str, Any]) -> tuple[str, ...]:
    metadata = obj.get("metadata") or {}
    return (str(obj.get("apiVersion")), str(obj.get("kind")), str(metadata.get("namespace")), str(metadata.get("name")))


def _named(key: tuple[str, ...]) -> str:
    api_version, kind, namespace, name = key
    where = "no namespace" if namespace == "None" else f"namespace {namespace}"
    return f"{kind} {name} ({api_version}, {where})"


def _compare_kubernetes(
    pulumi_objects: Mapping[tuple[str, ...], dict[str, Any]],
    planned: Mapping[tuple[str, str], dict[str, Any]],
    problems: list[str],
) -> int:
    """Each Kubernetes object on one side equals exactly one on the other; returns how many matched."""
    manifests: dict[tuple[str, ...], dict[str, Any]] = {}
    for (kind, name), values in planned.items():
        if kind != "kubernetes_manifest":
            continue
        key = _identity(values["manifest"])
        if key in manifests:
            problems.append(f"Terraform plans {_named(key)} twice (second as kubernetes_manifest.{name})")
        manifests[key] = values["manifest"]
    for key in sorted(set(manifests) - set(pulumi_objects)):
        problems.append(f"only Terraform has {_named(key)}")
    for key in sorted(set(pulumi_objects) - set(manifests)):
        problems.append(f"only Pulumi has {_named(key)}")
    matched = 0
    for key in sorted(set(manifests) & set(pulumi_objects)):
        found = _difference(pulumi_objects[key], manifests[key])
        if found is None:
            matched += 1
        else:
            problems.append(f"{_named(key)} differs at {found}")
    return matched


def _compare_datadog(
    pulumi_resources: Mapping[tuple[str, str], Registered],
    real: Mapping[tuple[str, str], dict[str, Any]],
    literal: Mapping[tuple[str, str], dict[str, Any]],
    problems: list[str],
) -> int:
    """Each Datadog resource on one side equals exactly one on the other, SLO ids as placeholders; the
    values the real plan leaves unknown are exactly those naming an SLO id. Returns how many matched."""
    planned = {key for key in literal if key[0] != "kubernetes_manifest"}
    for kind, name in sorted(planned - set(pulumi_resources)):
        problems.append(f"only Terraform has {kind}.{name}")
    for kind, name in sorted(set(pulumi_resources) - planned):
        problems.append(f"only Pulumi has {kind}.{name} ({pulumi_resources[kind, name].name})")
    placeholders = {
        f"{resource.name}-id": _id_placeholder(name)  # the id Recorder.new_resource answers
        for (kind, name), resource in pulumi_resources.items()
        if kind == SLO_TYPE
    }
    matched = 0
    for key in sorted(planned & set(pulumi_resources)):
        kind, name = key
        where = f"{kind}.{name}"
        if kind not in DATADOG_SCHEMAS:
            problems.append(f"{where}: no schema for {kind}")
            continue
        block = DATADOG_SCHEMAS[kind]["block"]
        shaped = _terraform_shaped(pulumi_resources[key].inputs, block, where)
        pulumi_values = _replaced(_parsed_json(kind, _canonical(shaped, block, where)), placeholders)
        terraform_values = _parsed_json(kind, _canonical(literal[key], block, where))
        attributes = sorted(set(pulumi_values) | set(terraform_values))
        found = [_difference(pulumi_values.get(name), terraform_values.get(name), f".{name}") for name in attributes]
        if any(found):  # every attribute that differs, each with both values where it first does
            problems += [f"{where} differs at {difference}" for difference in found if difference]
            continue
        known = _parsed_json(kind, _canonical(real[key], block, where))
        waiting = {attribute for attribute, value in pulumi_values.items() if _holds(value, f"<id of {SLO_TYPE}.")}
        unknown = set(terraform_values) - set(known)
        if unknown != waiting:
            problems.append(
                f"{where}: the plan leaves {sorted(unknown)} unknown, but the inputs naming an SLO id are "
                f"{sorted(waiting)}"
            )
        elif {attribute: terraform_values[attribute] for attribute in known} != known:
            problems.append(f"{where}: values differ between the plan and the plan with literal ids")
        else:
            matched += 1
    return matched


def _compare_sync_windows(aside: Sequence[Registered], shown: Mapping[str, Any], problems: list[str]) -> None:
    """The AppProject patch Pulumi applies holds the deny windows the module's output hands to the
    AppProject's owner (none patched: none in the output)."""
    output = shown.get("planned_values", {}).get("outputs", {}).get("argocd_sync_windows", {}).get("value")
    patches = [resource.inputs for resource in aside if resource.type == APP_PROJECT_PATCH]
    if len(patches) > 1:
        problems.append(f"Pulumi patches {len(patches)} AppProjects; the module's output names one")
    if not patches:
        if output is None or output.get("sync_windows"):
            problems.append(f"the module's output argocd_sync_windows has windows Pulumi does not patch: {output}")
        return
    patch = patches[0]
    expected = {
        "app_project": patch["metadata"]["name"],
        "namespace": patch["metadata"].get("namespace"),
        "sync_windows": patch["spec"]["syncWindows"],
    }
    found = _difference(expected, output)
    if found is not None:
        problems.append(f"the AppProject patch and the module's output argocd_sync_windows differ at {found}")


@pytest.mark.parametrize(("fleet", "setting"), CASES, ids=[f"{fleet}-{setting}" for fleet, setting in CASES])
def test_pulumi_and_terraform_create_the_same_objects(
    fleet: str, setting: str, mocks: Recorder, terraform: TerraformHarness, tmp_path: Path
) -> None:
    """Every object `SloFleet` registers is one the module plans, equal field for field, and the reverse."""
    settings = SETTINGS[setting]
    folder = FLEETS[fleet](tmp_path)
    loaded = load_paths([folder])
    assert loaded.errors == [], [d.render() for d in loaded.errors]
    slos = [declaration.name for declaration in loaded.declarations]
    problems: list[str] = []
    kubernetes, datadog, aside = _pulumi_objects(_registered(mocks, folder, settings), slos, problems)

    files = serialize(module_documents(loaded.declarations))
    shown = terraform.plan(_module_files(tmp_path / "real", files, settings))
    real = _by_address(planned_resources(shown), problems)
    literal = real
    if _with_literal_ids(files) != files:  # a second plan only where some value waits for an SLO id
        with_ids = _module_files(tmp_path / "literal", _with_literal_ids(files), settings)
        literal = _by_address(planned_resources(terraform.plan(with_ids)), problems)
    evaluator = sorted(name for _, name in real if name.startswith("evaluator-"))
    assert evaluator == [], f"the module's evaluator is planned with var.create_evaluator at its default: {evaluator}"
    _compare_sync_windows(aside, shown, problems)
    matched = _compare_kubernetes(kubernetes, real, problems)
    matched += _compare_datadog(datadog, real, literal, problems)
    assert not problems, (
        f"{fleet}, {setting}: {len(problems)} difference(s) between Pulumi and Terraform:\n" + "\n".join(problems)
    )
    assert matched == len(kubernetes) + len(datadog) == len(real) > 0


# ---- the evaluator, asked of both sides ----

EVALUATOR_PREFIX = "evaluator-"
"""The module's evaluator resources are `kubernetes_manifest.evaluator-<kind>-<name>`, the component's
children `parity-evaluator-<suffix>`."""
PROMETHEUS_PORT = 9091
"""Not Prometheus' usual 9090 (the variable's default): the port must come from the settings on both sides."""
EVALUATOR_FILES = {
    "image": "registry.example/sloplane:1.2.3",
    "prometheus_url": f"http://prometheus-k8s.monitoring.svc:{PROMETHEUS_PORT}",
    "tokens": "tokens:\n- {name: ci, hash: not-a-hash}\n",
    "receivers": "receivers:\n  pager: {pagerduty: {routing_key: not-a-key}}\n",
}
"""The evaluator's settings, none of them the module variables' defaults (a variable the module ignored, or a
setting the component ignored, would show)."""
DATABASE_URL = "postgresql://sloplane:not-a-password@db.internal:6432/sloplane?sslmode=require"
CHAIN_KEY = "not-a-chain-key"


@dataclass(frozen=True)
class EvaluatorCase:
    """One way of running the evaluator, asked alike of `SloFleet` (its `evaluator` argument) and of the module
    (generated with `terraform` options, called with `variables`)."""

    pulumi: dict[str, Any]
    terraform: TerraformOptions
    variables: dict[str, Any]
    fleet: str = "defaults"
    """The fleet's other settings (`SETTINGS`), given to both sides too: the evaluator lands in the fleet's
    namespace, `var.namespace` in the module."""


EVALUATOR_CASES: dict[str, EvaluatorCase] = {
    "volume": EvaluatorCase(
        pulumi=EVALUATOR_FILES,
        terraform=TerraformOptions(),
        variables={
            "create_evaluator": True,
            "evaluator_image": EVALUATOR_FILES["image"],
            "evaluator_prometheus_url": EVALUATOR_FILES["prometheus_url"],
            "evaluator_prometheus_port": PROMETHEUS_PORT,  # what the component reads from the URL itself
            "evaluator_tokens": EVALUATOR_FILES["tokens"],
            "evaluator_receivers": EVALUATOR_FILES["receivers"],
        },
    ),
    "postgres": EvaluatorCase(
        pulumi={**EVALUATOR_FILES, "storage": {"mode": "postgres", "url": DATABASE_URL}, "chain_key": CHAIN_KEY},
        terraform=TerraformOptions(evaluator_storage="postgres", evaluator_chain_key=True),
        variables={
            "create_evaluator": True,
            "evaluator_image": EVALUATOR_FILES["image"],
            "evaluator_prometheus_url": EVALUATOR_FILES["prometheus_url"],
            "evaluator_prometheus_port": PROMETHEUS_PORT,
            "evaluator_tokens": EVALUATOR_FILES["tokens"],
            "evaluator_receivers": EVALUATOR_FILES["receivers"],
            "evaluator_database_url": DATABASE_URL,
            "evaluator_database_port": 6432,  # what the component reads from the plain URL itself
            "evaluator_chain_key": CHAIN_KEY,
        },
    ),
}
EVALUATOR_CASES["observability"] = EvaluatorCase(
    pulumi=EVALUATOR_FILES,
    terraform=TerraformOptions(),
    variables=EVALUATOR_CASES["volume"].variables,
    fleet="observability",
)
"""Volume mode (the default: a PersistentVolumeClaim), postgres mode with a keyed hash chain (no claim; the
URL and the key in Secrets of their own), and volume mode in another namespace."""

SECRET_SIGNATURE = (pulumi.runtime.rpc._special_sig_key, pulumi.runtime.rpc._special_secret_sig)
"""How the mocks hand over a value the component wrapped in `pulumi.Output.secret` (the Secrets' `stringData`):
`{<signature key>: <secret signature>, "value": …}`. By design, so that Pulumi encrypts it in state; the module
has the same values from `sensitive` variables instead, and the plan's values hold them plainly (their
sensitivity is recorded beside them, in `sensitive_values`). Unwrapped before comparing."""


def _unwrapped_secrets(value: Any) -> Any:
    """The value with every secret the mocks saw replaced by what it holds (see `SECRET_SIGNATURE`)."""
    if isinstance(value, Mapping):
        key, signature = SECRET_SIGNATURE
        if value.get(key) == signature and set(value) == {key, "value"}:
            return _unwrapped_secrets(value["value"])
        return {name: _unwrapped_secrets(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_unwrapped_secrets(item) for item in value]
    return value


@pytest.mark.parametrize("setup", list(EVALUATOR_CASES))
def test_pulumi_and_terraform_create_the_same_evaluator(
    setup: str, mocks: Recorder, terraform: TerraformHarness, tmp_path: Path
) -> None:
    """The evaluator `SloFleet` runs (its `evaluator` argument) and the module's (`var.create_evaluator`), asked
    with the same settings, are the same Kubernetes objects, field for field, in both directions.

    Only the evaluator's objects are compared here (the rest of the fleet is the first test's); the one
    by-design difference is the secrets' wrapping (`SECRET_SIGNATURE`)."""
    case = EVALUATOR_CASES[setup]
    loaded = load_paths([EXAMPLES])
    assert loaded.errors == [], [d.render() for d in loaded.errors]
    slos = [declaration.name for declaration in loaded.declarations]
    problems: list[str] = []
    settings = SETTINGS[case.fleet]
    registered = _registered(mocks, EXAMPLES, {**settings, "evaluator": case.pulumi})
    children = [
        Registered(resource.type, resource.name, _unwrapped_secrets(resource.inputs))
        for resource in registered
        if resource.name.startswith(f"{FLEET}-{EVALUATOR_PREFIX}") and not resource.type.startswith("sloplane:index:")
    ]
    kubernetes, datadog, aside = _pulumi_objects(children, slos, problems)
    assert (datadog, aside) == ({}, []), "the evaluator registers only Kubernetes objects"
    assert not _holds([resource.inputs for resource in children], SECRET_SIGNATURE[1]), "a secret left wrapped"

    files = serialize(module_documents(loaded.declarations, None, case.terraform))
    planned = _by_address(
        planned_resources(terraform.plan(_module_files(tmp_path, files, {**settings, **case.variables}))), problems
    )
    evaluator = {key: values for key, values in planned.items() if key[1].startswith(EVALUATOR_PREFIX)}
    assert {kind for kind, _ in evaluator} == {"kubernetes_manifest"}, sorted(evaluator)
    matched = _compare_kubernetes(kubernetes, evaluator, problems)
    assert not problems, (
        f"evaluator, {setup}: {len(problems)} difference(s) between Pulumi and Terraform:\n" + "\n".join(problems)
    )
    kinds = {kind for _, kind, _, _ in kubernetes}
    expected = {
        "Deployment",
        "Service",
        "Secret",
        "ConfigMap",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "ServiceAccount",
    }
    assert expected <= kinds, sorted(kinds)
    assert ("PersistentVolumeClaim" in kinds) == (case.terraform.evaluator_storage == "volume"), sorted(kinds)
    namespaces = {namespace for _, _, namespace, _ in kubernetes}
    assert namespaces == {settings.get("namespace", "monitoring")}, sorted(namespaces)
    assert matched == len(kubernetes) == len(evaluator) > 0
