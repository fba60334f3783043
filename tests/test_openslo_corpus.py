"""Public OpenSLO files as their authors wrote them (`tests/data/corpus/openslo/`, origins in MANIFEST.yaml).

Each file's verdict was decided from the OpenSLO spec and its reference validators (oslo, the Go SDK),
not from sloplane. Valid files import with no error, render rules promtool accepts, and survive export
and import; invalid ones fail with positioned errors, at the line the manifest names, all in one run.
Where sloplane deliberately decides otherwise, `POLICY` says so and why.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloplane.core.serialize import to_yaml
from sloplane.declaration.model import Declaration
from sloplane.declaration.policy import TargetSystem
from sloplane.declaration.writer import dump_yaml
from sloplane.interop import LoadResult, load_paths
from sloplane.interop.openslo.exporter import EXPORT_VERSIONS, export_openslo
from sloplane.render.prometheus import rule_file
from tests.conftest import run_cli

CORPUS = Path(__file__).parent / "data" / "corpus" / "openslo"
MANIFEST: list[dict[str, Any]] = yaml.safe_load((CORPUS / "MANIFEST.yaml").read_text())["files"]

SLOTH_WINDOW = "sloplane reads a v1alpha window with neither isRolling nor calendar as rolling, as Sloth does"
UNKNOWN_SLI = "an SLO whose SLI is in no file given cannot be translated; other missing references only warn"


@dataclass(frozen=True)
class Policy:
    """Where sloplane's verdict differs from the manifest's, and why."""

    verdict: str
    why: str
    message: str


POLICY = {
    "sloth/examples/openslo-getting-started.yml": Policy("valid", SLOTH_WINDOW, "read as rolling"),
    "sloth/examples/openslo-kubernetes-apiserver.yml": Policy("valid", SLOTH_WINDOW, "read as rolling"),
    "sloth/test/integration/prometheus/testdata/in-openslo.yaml": Policy("valid", SLOTH_WINDOW, "read as rolling"),
    "sloth/test/integration/prometheus/testdata/validate/bad/bad-openslo.yaml": Policy(
        "valid", SLOTH_WINDOW + " (Sloth refuses its 28d only because its alert windows are set for 30d)", "read as"
    ),
    "go-sdk/pkg/openslosdk/test_data/inline/inputs/custom_config.yaml": Policy(
        "invalid", UNKNOWN_SLI, "unknown SLI 'my-sli'"
    ),
    "go-sdk/pkg/openslosdk/test_data/inline/outputs/custom_config.yaml": Policy(
        "invalid", UNKNOWN_SLI, "unknown SLI 'my-sli'"
    ),
    "go-sdk/pkg/openslosdk/test_data/inline/inputs/v1_slo_invalid_sli.yaml": Policy(
        "invalid", UNKNOWN_SLI, "unknown SLI 'no-sli'"
    ),
}


def _expected(entry: dict[str, Any]) -> str:
    policy = POLICY.get(entry["file"])
    return policy.verdict if policy else str(entry["verdict"])


def _load(entry: dict[str, Any]) -> LoadResult:
    return load_paths([CORPUS / entry["file"]])


VALID = [entry for entry in MANIFEST if _expected(entry) == "valid"]
INVALID = [entry for entry in MANIFEST if _expected(entry) == "invalid"]


def test_the_corpus_is_what_the_manifest_lists() -> None:
    listed = {entry["file"] for entry in MANIFEST}
    on_disk = {str(path.relative_to(CORPUS)) for path in CORPUS.rglob("*") if path.is_file()}
    assert on_disk - {"MANIFEST.yaml", "README.md"} == listed
    assert len(VALID) >= 40 and len(INVALID) >= 15


@pytest.mark.parametrize("entry", VALID, ids=[entry["file"] for entry in VALID])
def test_a_valid_file_imports_without_error(entry: dict[str, Any]) -> None:
    result = _load(entry)
    assert result.errors == [], [d.render() for d in result.errors]
    assert bool(result.declarations) == bool(entry["slos"])  # an objective each, so perhaps more than SLOs
    policy = POLICY.get(entry["file"])
    if policy is not None:
        assert any(policy.message in d.message for d in result.warnings), policy.why


@pytest.mark.parametrize("entry", INVALID, ids=[entry["file"] for entry in INVALID])
def test_an_invalid_file_fails_at_the_line_its_problem_is_on(entry: dict[str, Any]) -> None:
    result = _load(entry)
    assert result.errors, "accepted a file the spec refuses"
    assert all(d.path.endswith(entry["file"]) and d.position.line >= 1 for d in result.errors)
    policy = POLICY.get(entry["file"])
    if policy is not None:
        assert any(policy.message in d.message for d in result.errors), policy.why
        return
    named = re.search(r"line (\d+)", entry["reason"])
    if named is not None:  # the manifest names an object's or a key's line; the error may sit on its first field
        line = int(named.group(1))
        lines = {d.position.line for d in result.errors}
        assert lines & {line, line + 1}, (entry["reason"], [d.render() for d in result.errors])


def _fleets() -> list[dict[str, Declaration]]:
    """Each valid file's declarations by name: a composite's parts come from its own file."""
    return [{d.name: d for d in _load(entry).declarations} for entry in VALID]


def test_every_valid_slo_renders_rules_promtool_accepts(tmp_path: Path) -> None:
    files = []
    for index, fleet in enumerate(_fleets()):
        for declaration in fleet.values():
            if TargetSystem.PROMETHEUS in declaration.spec.targets:
                files.append(f"{index}-{declaration.name}.rules.yaml")
                (tmp_path / files[-1]).write_text(to_yaml(rule_file(declaration, fleet)))
    assert len(files) >= 20
    checked = subprocess.run(
        ["promtool", "check", "rules", *files], capture_output=True, text=True, cwd=tmp_path, check=False, timeout=300
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert checked.stdout.count("SUCCESS") == len(files)


@pytest.mark.parametrize("entry", [e for e in VALID if e["slos"]], ids=[e["file"] for e in VALID if e["slos"]])
def test_a_valid_file_survives_export_and_import(entry: dict[str, Any], tmp_path: Path) -> None:
    """In both versions export writes: the reader is as strict as oslo on names, op and unknown keys."""
    original = _load(entry).declarations
    for version in EXPORT_VERSIONS:
        exported = export_openslo(original, version)
        assert {d["apiVersion"] for docs in exported.values() for d in docs} == {version}
        (tmp_path / "exported.yaml").write_text(dump_yaml(d for docs in exported.values() for d in docs))
        back = load_paths([tmp_path / "exported.yaml"])
        assert back.errors == [], [d.render() for d in back.errors]
        assert {d.name: d for d in back.declarations} == {d.name: d for d in original}


def test_validate_over_the_whole_corpus_lists_problems_and_never_a_traceback() -> None:
    result = run_cli("validate", CORPUS)
    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count(": error: ") >= len(INVALID)


def test_what_sloplane_does_not_keep_is_said_at_its_line() -> None:
    """A calendar start off the period's boundary and `dimensions` are not silently dropped."""
    calendar = load_paths([CORPUS / "go-sdk/pkg/openslo/v1alpha/examples/slos.yaml"])
    starts = [d for d in calendar.warnings if "startTime '2022-01-01 12:00:00' is not the start of a week" in d.message]
    assert [d.position.line for d in starts] == [19, 40]
    dimensions = load_paths([CORPUS / "go-sdk/pkg/openslosdk/test_data/decode/v1_slos.yaml"])
    assert any("'dimensions' is not read" in d.message for d in dimensions.warnings)
