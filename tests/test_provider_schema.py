"""The component package's schema: what the plugin serves is the checked-in file, and it is a valid Pulumi
package schema (Pulumi's metaschema, `pkg/codegen/schema/pulumi.json`)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from sloplane.provider.host import COMPONENTS, NAME, plugin_version, schema
from sloplane.provider.schema_file import main as write_schema
from sloplane.provider.schema_file import schema_text
from tests.conftest import ROOT

METASCHEMA = ROOT / "tests" / "data" / "pulumi-package-metaschema.json"
"""A copy of pulumi/pulumi's `pkg/codegen/schema/pulumi.json` (from the shared reference folder)."""
CHECKED_IN = ROOT / "provider" / "schema.json"


def test_the_checked_in_schema_is_what_the_plugin_serves() -> None:
    assert CHECKED_IN.read_text() == schema_text(), "the schema drifted: run `make schema` and review the diff"


def _python_regex(text: str) -> str:
    """The metaschema's patterns use ECMA-262 named groups, `(?<name>…)`; Python's `re` spells them
    `(?P<name>…)` (the same meaning)."""
    return re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", text)


def test_the_schema_is_a_valid_pulumi_package_schema() -> None:
    metaschema = json.loads(_python_regex(METASCHEMA.read_text()))
    validator = jsonschema.Draft202012Validator(metaschema)
    errors = sorted(validator.iter_errors(schema()), key=lambda e: list(e.absolute_path))
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_every_component_is_a_resource_under_the_package_token() -> None:
    served = schema()
    assert served["name"] == NAME
    assert sorted(served["resources"]) == sorted(f"sloplane:index:{c.__name__}" for c in COMPONENTS)
    assert all(resource["isComponent"] for resource in served["resources"].values())
    slo = served["resources"]["sloplane:index:ServiceLevelObjective"]
    assert slo["requiredInputs"] == ["declaration"]
    assert slo["inputProperties"]["declaration"] == {**slo["inputProperties"]["declaration"], "plain": True}


def test_the_plugin_folder_is_what_pulumi_package_add_installs() -> None:
    plugin = ROOT / "provider"
    assert yaml.safe_load((plugin / "PulumiPlugin.yaml").read_text()) == {"runtime": "python"}
    assert "serve(" in (plugin / "__main__.py").read_text()
    assert (plugin / "requirements.txt").read_text().splitlines()[-1] == ".."


def test_a_release_tag_names_the_plugin_version_else_the_package_version(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f").write_text("x")
    git("add", "f")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "x")
    assert plugin_version(tmp_path) == plugin_version(None)
    git("tag", "v1.2.3")
    assert plugin_version(tmp_path) == "1.2.3"


def test_make_schema_writes_the_file_and_refuses_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert write_schema([str(tmp_path / "schema.json")]) == 0
    assert (tmp_path / "schema.json").read_text() == CHECKED_IN.read_text()
    assert write_schema([]) == 2 and "usage" in capsys.readouterr().err


def test_every_component_type_and_property_is_documented_for_the_registry() -> None:
    """The schema's descriptions are the registry's API docs: none may be missing (inherited settings too)."""
    served = schema()
    undocumented = [
        f"{token}.{key}"
        for kind in ("resources", "types")
        for token, found in served[kind].items()
        for section in ("inputProperties", "properties")
        for key, prop in (found.get(section) or {}).items()
        if not prop.get("description")
    ]
    undocumented += [
        token
        for kind in ("resources", "types")
        for token, found in served[kind].items()
        if not found.get("description")
    ]
    assert undocumented == []


def test_the_evaluators_database_url_and_chain_key_may_be_secrets_and_its_shape_is_plain() -> None:
    """Other languages pass `pulumi.secret(...)` only where the schema takes an Input; what decides the objects
    (the mode, the egress port) stays plain."""
    served = schema()
    storage = served["types"]["sloplane:index:EvaluatorStorage"]["properties"]
    assert storage["url"] == {**storage["url"], "type": "string"} and "plain" not in storage["url"]
    assert storage["port"]["type"] == "integer" and storage["port"]["plain"] is True
    assert storage["mode"]["plain"] is True and "`postgres`" in storage["mode"]["description"]
    for resource in ("SloEvaluator", "EvaluatorDeployment"):
        found = served["resources" if resource == "SloEvaluator" else "types"][f"sloplane:index:{resource}"]
        chain_key = found["inputProperties" if resource == "SloEvaluator" else "properties"]["chainKey"]
        assert chain_key["type"] == "string" and "plain" not in chain_key
        assert "SLOPLANE_CHAIN_KEY" in chain_key["description"]
