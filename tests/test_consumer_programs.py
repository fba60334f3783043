"""The consumer programs (examples/yaml, examples/typescript) against the package schema they are written for.

Neither can run here: there is no Pulumi CLI to run the YAML program or to generate the Node SDK the
TypeScript one imports. What can be checked is what the engine and the SDK generators would hold them to,
read from `provider/schema.json`: every sloplane resource type exists, every property given is an input of
that resource (or of the object type it refers to, recursively), required inputs are given, literals
have the schema's type, a provider reference points at a provider of the right package, and a `plain`
property is not given another resource's output or a secret (the components must know those values
during a preview; the generated SDKs type them as plain values and Pulumi YAML would send an unknown).

The checker sees each program's values through one small representation: literals as Python values,
every expression as a `Ref` saying whether it is plain (a literal, plain configuration), an output (a
resource's output, a secret, anything the checker does not recognise) or a resource itself. Tests
mutating a copy of the schema, or of a program, prove that the checks catch what they are for.

The schema says nothing of what the components themselves refuse (an evaluator needs two replicas and,
when declarations route incidents, receivers), so the programs' inputs are also sent to the real plugin
over gRPC, as the engine would send them (`tests/pulumi_engine.py`): both must construct.

Size: the checker and its two small readers live beside the tests because they exist only for them; as
a module of their own they would be a library nothing else uses.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from sloplane.interop import load_paths
from tests.conftest import ROOT
from tests.pulumi_engine import Engine, OutputValue, Plugin, ResourceRef, deployment, running_plugin, serving

SCHEMA_FILE = ROOT / "provider" / "schema.json"
YAML_PROGRAM = ROOT / "examples" / "yaml" / "Pulumi.yaml"
TS_FOLDER = ROOT / "examples" / "typescript"
TS_PROGRAM = TS_FOLDER / "index.ts"
PATH_INPUTS = {"SloFleet": ("path",), "SloEvaluator": ("declarations",)}
"""The inputs naming declaration files or folders: the test follows them to the example declarations."""


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


# --- one representation for both languages -------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """An expression rather than a literal: what the checker knows about the value it stands for."""

    text: str
    kind: Literal["plain", "output", "resource"]
    resource_type: str | None = None
    """For `resource`: the referenced resource's type token, e.g. `pulumi:providers:datadog`."""
    value: Any = None
    """For `plain`: the value, where the checker can compute it (a path from `__dirname` or `${pulumi.cwd}`)."""


@dataclass(frozen=True)
class Resource:
    """One `sloplane:index:*` resource a program declares, with the inputs it gives."""

    name: str
    type: str
    inputs: dict[str, Any]


@dataclass
class Report:
    """What a check found wrong, and every property path it looked at (so that a clean report is not
    the silence of a checker that found nothing to check)."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)


# --- the checker ---------------------------------------------------------------------------------------


def check(schema: dict[str, Any], resources: list[Resource]) -> Report:
    """Each resource against the schema: its type, its inputs, recursively."""
    report = Report()
    for resource in resources:
        spec = schema["resources"].get(resource.type)
        if spec is None:
            report.problems.append(f"{resource.name}: {resource.type} is not a resource of the package")
            continue
        inputs = spec.get("inputProperties", {})
        _object(
            schema,
            inputs,
            spec.get("requiredInputs", []),
            resource.inputs,
            where=resource.name,
            owner=resource.type,
            report=report,
        )
    return report


def _object(
    schema: dict[str, Any],
    properties: dict[str, Any],
    required: list[str],
    given: dict[str, Any],
    *,
    where: str,
    owner: str,
    report: Report,
) -> None:
    for missing in sorted(set(required) - set(given)):
        report.problems.append(f"{where}: required input {missing!r} of {owner} is not given")
    for key, value in given.items():
        path = f"{where}.{key}"
        if key not in properties:
            report.problems.append(f"{path}: {owner} has no input {key!r} (it has {', '.join(sorted(properties))})")
            continue
        _value(schema, properties[key], value, path, report)


def _value(schema: dict[str, Any], spec: dict[str, Any], value: Any, path: str, report: Report) -> None:
    report.checked.append(path)
    if isinstance(value, Ref) and value.kind != "plain":
        if spec.get("plain"):
            report.problems.append(f"{path}: plain input given {value.kind} `{value.text}`; it must be known")
        elif "$ref" in spec and "#/resources/" in spec["$ref"]:
            wanted = spec["$ref"].split("#/resources/", 1)[1]
            if value.resource_type != wanted:
                report.problems.append(f"{path}: wants a {wanted} resource, given `{value.text}`")
        return
    ref = spec.get("$ref", "")
    if ref.startswith("#/types/"):
        token = ref.removeprefix("#/types/")
        if not isinstance(value, dict):
            report.problems.append(f"{path}: {token} wants an object, given {value!r}")
            return
        object_type = schema["types"][token]
        properties, required = object_type["properties"], object_type.get("required", [])
        _object(schema, properties, required, value, where=path, owner=token, report=report)
    elif "#/resources/" in ref:
        report.problems.append(f"{path}: wants a resource reference, given {value!r}")
    elif not isinstance(value, Ref):  # a plain Ref's type is not known: config values are strings here
        _literal(schema, spec, value, path, report)


_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _literal(schema: dict[str, Any], spec: dict[str, Any], value: Any, path: str, report: Report) -> None:
    kind = spec.get("type")
    if kind in _SCALARS:
        wrong_bool = isinstance(value, bool) and kind != "boolean"
        if wrong_bool or not isinstance(value, _SCALARS[kind]):
            report.problems.append(f"{path}: wants type {kind}, given {value!r}")
    elif kind == "array":
        if not isinstance(value, list):
            report.problems.append(f"{path}: wants an array, given {value!r}")
            return
        for index, item in enumerate(value):
            _value(schema, spec["items"], item, f"{path}[{index}]", report)
    elif kind == "object":
        if not isinstance(value, dict):
            report.problems.append(f"{path}: wants an object, given {value!r}")
            return
        for key, item in value.items():
            _value(schema, spec.get("additionalProperties", {}), item, f"{path}.{key}", report)


# --- Pulumi YAML ---------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def yaml_resources(document: dict[str, Any], folder: Path) -> list[Resource]:
    """The program's `sloplane:` resources, their `${...}` expressions as `Ref`s.

    `${name}` or `${name.property}` is a resource (or its output) when `name` is a resource, an output
    when it is secret configuration, and plain for other configuration, `pulumi.*` and variables holding
    nothing but plain values. `fn::` functions count as outputs. `${pulumi.cwd}` is the program's folder,
    so a path built from it has a value the test can follow. Other packages' resources are not checked
    (their schemas are not here), but they may be referred to. A name the program does not declare is a
    `ValueError`.
    """
    declared = document.get("resources", {})
    config = document.get("config", {})
    variables = document.get("variables", {})

    def reference(text: str) -> Ref:
        root = text.split(".", 1)[0].split("[", 1)[0]
        if root in declared:
            whole = text == root
            return Ref(text, "resource" if whole else "output", declared[root].get("type") if whole else None)
        setting = config.get(root)
        if setting is not None:
            secret = isinstance(setting, dict) and setting.get("secret", False)
            return Ref(text, "output" if secret else "plain")
        if root == "pulumi" or (root in variables and all(r.kind == "plain" for r in refs(variables[root]))):
            return Ref(text, "plain")
        if root in variables:
            return Ref(text, "output")
        raise ValueError(f"`${{{text}}}` names nothing the program declares")

    def refs(value: Any) -> list[Ref]:
        found = convert(value)
        if isinstance(found, dict):
            return [ref for item in found.values() for ref in refs(item)]
        if isinstance(found, list):
            return [ref for item in found for ref in refs(item)]
        return [found] if isinstance(found, Ref) else []

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            parts = [reference(inner.strip()) for inner in _INTERPOLATION.findall(value)]
            if not parts:
                return value
            if len(parts) == 1 and value.strip() == f"${{{parts[0].text}}}":
                return parts[0]
            if all(p.text == "pulumi.cwd" for p in parts):
                return Ref(value, "plain", value=Path(value.replace("${pulumi.cwd}", str(folder))))
            return Ref(value, "plain" if all(p.kind == "plain" for p in parts) else "output")
        if isinstance(value, dict):
            if len(value) == 1 and str(next(iter(value))).lower().startswith("fn::"):
                return Ref(str(next(iter(value))), "output")
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return [
        Resource(name, body["type"], convert(body.get("properties", {})))
        for name, body in declared.items()
        if str(body.get("type", "")).startswith("sloplane:")
    ]


# --- TypeScript ----------------------------------------------------------------------------------------


class ParseError(ValueError):
    """The TypeScript the parser does not handle: it stops rather than skip what it cannot read."""


@dataclass(frozen=True)
class Expression:
    """TypeScript source that is not a literal, as written (`config.requireSecret("x")`, `provider`)."""

    text: str


class ObjectLiteralParser:
    """Reads the `{ ... }` argument of `new sloplane.X("name", { ... })` in a program like the example.

    What it handles: object literals whose keys are identifiers or string literals (and `{ key }`
    shorthand), arrays, string literals without `${}` substitutions, numbers, `true`/`false`, comments,
    and any other expression, kept as its text up to the next `,` `}` `]` or `)` outside brackets and
    strings. What it refuses (raising `ParseError`): spreads, computed keys, methods, anything unclosed.
    Expressions are then classified by `classify`. It is not a TypeScript parser and need not be one:
    the test runs it on the example only, and a program it cannot read fails the test.
    """

    def __init__(self, text: str, position: int) -> None:
        self.text = text
        self.position = position

    def skip(self) -> None:
        """Past white space and comments."""
        while True:
            match = re.compile(r"\s+|//[^\n]*|/\*.*?\*/", re.S).match(self.text, self.position)
            if not match or not match.group():
                return
            self.position = match.end()

    def expect(self, token: str) -> None:
        self.skip()
        if not self.text.startswith(token, self.position):
            raise ParseError(f"expected {token!r} at {self.text[self.position : self.position + 30]!r}")
        self.position += len(token)

    def value(self) -> Any:
        self.skip()
        char = self.text[self.position : self.position + 1]
        if char == "{":
            return self.object()
        if char == "[":
            return self.array()
        if self.text.startswith("...", self.position):
            raise ParseError("spread syntax is not handled")
        end = self.expression_end()
        text = self.text[self.position : end].strip()
        self.position = end
        if re.fullmatch(r"\"[^\"\\]*\"|'[^'\\]*'|`[^`$\\]*`", text):
            return text[1:-1]
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if re.fullmatch(r"-?\d*\.\d+", text):
            return float(text)
        if text in ("true", "false"):
            return text == "true"
        if not text:
            raise ParseError(f"no value at {self.text[end : end + 30]!r}")
        return Expression(text)

    def expression_end(self) -> int:
        """Where the expression starting here ends: the first `,` `}` `]` `)` outside brackets and strings."""
        depth, index = 0, self.position
        while index < len(self.text):
            char = self.text[index]
            if char in "\"'`":
                closing = self.text.find(char, index + 1)
                if closing < 0:
                    raise ParseError("unclosed string")
                index = closing
            elif char in "([{":
                depth += 1
            elif char in ")]}" or (char == "," and depth == 0):
                if depth == 0:
                    return index
                depth -= 1
            index += 1
        raise ParseError("unclosed expression")

    def object(self) -> dict[str, Any]:
        self.expect("{")
        result: dict[str, Any] = {}
        while True:
            self.skip()
            if self.text.startswith("}", self.position):
                self.position += 1
                return result
            if self.text.startswith("...", self.position):
                raise ParseError("spread syntax is not handled")
            key_match = re.compile(r"[A-Za-z_$][\w$]*|\"[^\"]*\"|'[^']*'").match(self.text, self.position)
            if not key_match:
                raise ParseError(f"not a key this parser handles at {self.text[self.position : self.position + 30]!r}")
            key = key_match.group().strip("\"'")
            self.position = key_match.end()
            self.skip()
            if self.text.startswith(":", self.position):
                self.position += 1
                result[key] = self.value()
            elif self.text[self.position] in ",}":
                result[key] = Expression(key)  # `{ key }` shorthand: the variable of that name
            else:
                raise ParseError(f"not a property this parser handles: {key!r}")
            self.skip()
            if self.text.startswith(",", self.position):
                self.position += 1

    def array(self) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        while True:
            self.skip()
            if self.text.startswith("]", self.position):
                self.position += 1
                return items
            items.append(self.value())
            self.skip()
            if self.text.startswith(",", self.position):
                self.position += 1


@dataclass(frozen=True)
class TypeScriptProgram:
    """A program's imports and `const` bindings: what its expressions can be told apart by."""

    text: str
    folder: Path

    def alias(self, module: str) -> str | None:
        found = re.search(r"import \* as (\w+) from \"" + re.escape(module) + '"', self.text)
        return found.group(1) if found else None

    def bound_to(self, name: str) -> str | None:
        """What `const name = ...` holds, from its right-hand side up to the end of its line."""
        found = re.search(r"\bconst " + re.escape(name) + r"\s*=\s*([^\n]+)", self.text)
        return found.group(1) if found else None

    def classify(self, value: Any) -> Any:
        """Literals stay as they are; expressions become `Ref`s (see the module docstring)."""
        if isinstance(value, dict):
            return {key: self.classify(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.classify(item) for item in value]
        if not isinstance(value, Expression):
            return value
        operands = [part.strip() for part in re.split(r"\?\?|\|\|", value.text)]
        refs = [self._operand(part) for part in operands]
        if len(refs) == 1:
            return refs[0]
        if all(ref.kind == "plain" for ref in refs):  # `config.get(...) ?? "default"`: the default, unconfigured
            return Ref(value.text, "plain", value=refs[-1].value)
        return Ref(value.text, "output")

    def _operand(self, text: str) -> Ref:
        literal = re.fullmatch(r"\"([^\"]*)\"|'([^']*)'|(-?\d+(?:\.\d+)?)|true|false", text)
        if literal:
            return Ref(text, "plain", value=literal.group(1) if literal.group(1) is not None else literal.group(2))
        config = self.alias("@pulumi/pulumi")
        call = re.fullmatch(r"(\w+)\.(get|require)(\w*)\(.*\)", text)
        if call and self.bound_to(call.group(1)) == f"new {config}.Config();":
            return Ref(text, "output" if "Secret" in call.group(3) else "plain")
        joined = re.fullmatch(r"path\.(?:join|resolve)\((.*)\)", text)
        if joined and self.alias("path") == "path":
            parts = [part.strip() for part in joined.group(1).split(",")]
            if all(p == "__dirname" or re.fullmatch(r"\"[^\"]*\"", p) for p in parts):
                return Ref(text, "plain", value=self.folder.joinpath(*(p.strip('"') for p in parts[1:])))
        bound = self.bound_to(text) if re.fullmatch(r"\w+", text) else None
        constructed = re.match(r"new (\w+)\.(\w+)\(", bound or "")
        if constructed:
            package = self._package_of(constructed.group(1))
            kind = f"pulumi:providers:{package}" if constructed.group(2) == "Provider" else None
            return Ref(text, "resource", kind)
        return Ref(text, "output")  # not recognised: assumed to be an output, never a known value

    def _package_of(self, alias: str) -> str | None:
        found = re.search(r"import \* as " + re.escape(alias) + r" from \"@pulumi/([\w-]+)\"", self.text)
        return found.group(1) if found else None

    def resources(self) -> list[Resource]:
        """Every `new sloplane.X("name", { ... })`."""
        alias = self.alias("@pulumi/sloplane")
        if alias is None:
            raise ParseError("the program does not import @pulumi/sloplane")
        found = []
        for match in re.finditer(r"new " + re.escape(alias) + r"\.(\w+)\(\s*\"([^\"]+)\"\s*,", self.text):
            parser = ObjectLiteralParser(self.text, match.end())
            inputs = self.classify(parser.object())
            found.append(Resource(match.group(2), f"sloplane:index:{match.group(1)}", inputs))
        return found


def ts_resources(text: str, folder: Path = TS_FOLDER) -> list[Resource]:
    return TypeScriptProgram(text, folder).resources()


# --- the programs as they are --------------------------------------------------------------------------


def _yaml_program(text: str | None = None) -> list[Resource]:
    return yaml_resources(yaml.safe_load(text if text is not None else YAML_PROGRAM.read_text()), YAML_PROGRAM.parent)


def test_the_yaml_program_matches_the_schema() -> None:
    resources = _yaml_program()
    assert [(r.name, r.type) for r in resources] == [
        ("shop", "sloplane:index:SloFleet"),
        ("ciEvaluator", "sloplane:index:SloEvaluator"),
    ]
    report = check(_schema(), resources)
    assert report.problems == []
    # Nested object types were walked, not only the top level.
    assert {"shop.evaluator.storage.s3Url", "shop.evaluator.ingressFrom[0].namespaceSelector.matchLabels.team"} <= set(
        report.checked
    )
    assert "ciEvaluator.ingressFrom[0].ipBlock.cidr" in report.checked


def test_the_typescript_program_matches_the_schema() -> None:
    resources = ts_resources(TS_PROGRAM.read_text())
    assert [(r.name, r.type) for r in resources] == [("shop", "sloplane:index:SloFleet")]
    report = check(_schema(), resources)
    assert report.problems == []
    assert {"shop.datadogProvider", "shop.evaluator.tokens", "shop.evaluator.ingressFrom[0].namespaceSelector"} <= set(
        report.checked
    )
    fleet = resources[0].inputs
    assert fleet["evaluator"]["tokens"] == Ref('config.requireSecret("evaluatorTokens")', "output")
    assert fleet["datadogProvider"].resource_type == "pulumi:providers:datadog"
    assert fleet["namespace"].kind == "plain"


def _declaration_paths(resources: list[Resource], folder: Path) -> list[Path]:
    paths: list[Path] = []
    for resource in resources:
        for key in PATH_INPUTS.get(resource.type.rsplit(":", 1)[1], ()):
            given = resource.inputs[key]
            for item in given if isinstance(given, list) else [given]:
                value = item.value if isinstance(item, Ref) else item
                assert value is not None, f"{resource.name}.{key}: the checker cannot tell where {item} points"
                paths.append((folder / value).resolve())
    return paths


def test_the_programs_point_at_the_example_declarations() -> None:
    """Relative paths resolve from the program's folder (Pulumi runs programs from their project folder)."""
    paths = _declaration_paths(_yaml_program(), YAML_PROGRAM.parent) + _declaration_paths(
        ts_resources(TS_PROGRAM.read_text()), TS_FOLDER
    )
    assert set(paths) == {ROOT / "examples" / "slos"}
    result = load_paths(sorted(set(paths)), today=date(2026, 11, 26))
    assert result.diagnostics == [] and len(result.slos) >= 6


def test_the_projects_pin_the_release_the_schema_describes() -> None:
    """`pulumi package add <git url>/provider@vX.Y.Z` records the package; the Node SDK lands in sdks/."""
    version = _schema()["version"]
    for project in (YAML_PROGRAM, TS_FOLDER / "Pulumi.yaml"):
        source = yaml.safe_load(project.read_text())["packages"]["sloplane"]
        assert source.endswith(f"/provider@v{version}"), project
    assert yaml.safe_load(YAML_PROGRAM.read_text())["runtime"] == "yaml"
    assert yaml.safe_load((TS_FOLDER / "Pulumi.yaml").read_text())["runtime"]["name"] == "nodejs"
    package = json.loads((TS_FOLDER / "package.json").read_text())
    assert package["dependencies"]["@pulumi/sloplane"] == "file:sdks/sloplane"
    assert json.loads((TS_FOLDER / "tsconfig.json").read_text())["files"] == ["index.ts"]


# --- the YAML program's inputs, as Pulumi YAML would send them, in the real plugin ----------------------


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugin]:
    """The plugin started as the engine starts it (`tests/pulumi_engine.py`), once for the module."""
    with (
        serving(Engine()) as engine_address,
        running_plugin(ROOT / "provider", engine_address, tmp_path_factory.mktemp("plugin")) as started,
    ):
        yield started


def _wire(value: Any, config: dict[str, Any], providers: dict[str, str]) -> Any:
    """A checked value as the engine receives it: an output (in these programs, secret configuration) as a
    secret output value, plain configuration as its default, a provider as a reference to the one the
    program registered, a computed path as text."""
    if isinstance(value, Ref):
        if value.kind == "resource":
            urn, provider_id = providers[value.text].rsplit("::", 1)
            return ResourceRef(urn, provider_id, "5.17.0")
        if value.kind == "output":
            return OutputValue(f"{value.text}-value", secret=True)
        return str(value.value) if value.value is not None else config[value.text]["default"]
    if isinstance(value, dict):
        return {key: _wire(item, config, providers) for key, item in value.items()}
    if isinstance(value, list):
        return [_wire(item, config, providers) for item in value]
    return value


@pytest.mark.parametrize("program", ["yaml", "typescript"])
def test_the_programs_resources_construct_in_the_plugin(plugin: Plugin, program: str) -> None:
    """Beyond the schema: the programs' values make the components register what they should (a preview,
    configuration unset: the defaults)."""
    config = yaml.safe_load(YAML_PROGRAM.read_text())["config"]
    resources = _yaml_program() if program == "yaml" else ts_resources(TS_PROGRAM.read_text())
    with deployment(dry_run=True) as deployed:
        reference = deployed.monitor.existing_provider("datadog", "datadog")
        providers = {"datadog": reference, "datadogProvider": reference}
        for resource in resources:
            inputs = _wire(resource.inputs, config, providers)
            depends = {"datadogProvider": [reference.rsplit("::", 1)[0]]} if "datadogProvider" in inputs else {}
            plugin.construct(
                deployed.address, resource.type, resource.name, inputs, dry_run=True, input_dependencies=depends
            )
    registered = deployed.monitor.registrations
    deployments = {
        (r.properties["metadata"]["name"], r.properties["metadata"]["namespace"])
        for r in registered
        if r.type == "kubernetes:apps/v1:Deployment"
    }
    expected = {("sloplane-evaluator", "monitoring")}
    assert deployments == (expected | {("sloplane-evaluator-ci", "ci-gates")} if program == "yaml" else expected)
    rules = [r for r in registered if r.type == "kubernetes:monitoring.coreos.com/v1:PrometheusRule"]
    assert len(rules) >= 6
    assert all(r.properties["metadata"]["labels"]["release"] == "kube-prometheus-stack" for r in rules)
    datadog = [r for r in registered if r.type.startswith("datadog:")]
    assert datadog and {r.provider for r in datadog} == {reference}


# --- the checks catch what they are for ----------------------------------------------------------------


def _renamed(schema: dict[str, Any], owner: str, old: str, new: str) -> dict[str, Any]:
    """A copy of the schema with one property of a resource's inputs or of a type renamed."""
    changed = copy.deepcopy(schema)
    where = changed["resources"].get(owner)
    properties = where["inputProperties"] if where else changed["types"][owner]["properties"]
    required = where.get("requiredInputs", []) if where else changed["types"][owner].get("required", [])
    properties[new] = properties.pop(old)
    required[:] = [new if name == old else name for name in required]
    return changed


@pytest.mark.parametrize("program", ["yaml", "typescript"])
def test_a_renamed_property_breaks_both_programs(program: str) -> None:
    resources = _yaml_program() if program == "yaml" else ts_resources(TS_PROGRAM.read_text())
    fleet_renamed = _renamed(_schema(), "sloplane:index:SloFleet", "ruleLabels", "prometheusRuleLabels")
    assert check(fleet_renamed, resources).problems == [
        "shop.ruleLabels: sloplane:index:SloFleet has no input 'ruleLabels' (it has dashboardLabel, datadogProvider, "
        "deploymentGate, evaluator, grafanaUrl, namespace, path, prometheusRuleLabels)"
    ]
    nested = _renamed(_schema(), "sloplane:index:EvaluatorDeployment", "prometheusUrl", "prometheusURL")
    problems = check(nested, resources).problems
    assert (
        "shop.evaluator: required input 'prometheusURL' of sloplane:index:EvaluatorDeployment is not given" in problems
    )
    assert any(
        p.startswith("shop.evaluator.prometheusUrl: sloplane:index:EvaluatorDeployment has no input") for p in problems
    )


def test_a_renamed_resource_is_reported() -> None:
    schema = _schema()
    schema["resources"]["sloplane:index:Evaluator"] = schema["resources"].pop("sloplane:index:SloEvaluator")
    assert check(schema, _yaml_program()).problems == [
        "ciEvaluator: sloplane:index:SloEvaluator is not a resource of the package"
    ]


def test_outputs_and_secrets_in_plain_inputs_are_reported() -> None:
    text = YAML_PROGRAM.read_text()
    edited = text.replace("namespace: ${namespace}", "namespace: ${ciEvaluator.url}").replace(
        "s3Url: s3://acme-sloplane/shop", "s3Url: ${datadogApiKey}"
    )
    assert edited.count("${ciEvaluator.url}") == 2 and "s3Url: ${datadogApiKey}" in edited
    assert check(_schema(), _yaml_program(edited)).problems == [
        "shop.namespace: plain input given output `ciEvaluator.url`; it must be known",
        "shop.evaluator.storage.s3Url: plain input given output `datadogApiKey`; it must be known",
    ]
    source = TS_PROGRAM.read_text()
    ts_edited = source.replace('path: path.join(__dirname, "..", "slos")', "path: datadogProvider.id")
    assert ts_edited != source
    assert check(_schema(), ts_resources(ts_edited)).problems == [
        "shop.path: plain input given output `datadogProvider.id`; it must be known"
    ]


def test_missing_inputs_wrong_types_and_wrong_providers_are_reported() -> None:
    text = YAML_PROGRAM.read_text()
    edited = (
        text.replace("        tokens: ${evaluatorTokens}\n", "")
        .replace("replicas: 2", "replicas: two", 1)
        .replace("datadogProvider: ${datadog}", "datadogProvider: ${ciEvaluator}")
    )
    assert check(_schema(), _yaml_program(edited)).problems == [
        "shop.datadogProvider: wants a pulumi:providers:datadog resource, given `ciEvaluator`",
        "shop.evaluator: required input 'tokens' of sloplane:index:EvaluatorDeployment is not given",
        "shop.evaluator.replicas: wants type integer, given 'two'",
    ]


def test_the_typescript_parser_refuses_what_it_does_not_read() -> None:
    source = TS_PROGRAM.read_text()
    spread = source.replace("ruleLabels: {", "...defaults,\n    ruleLabels: {")
    with pytest.raises(ParseError, match="spread"):
        ts_resources(spread)
    with pytest.raises(ParseError, match="does not import"):
        ts_resources(source.replace('"@pulumi/sloplane"', '"./sloplane"'))
