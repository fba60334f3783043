"""200 generated declarations: promtool accepts every rule file, the CRD every PrometheusRule."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings

from sloplane.core.serialize import to_yaml
from sloplane.interop import load_paths
from sloplane.render.kubernetes import prometheus_rule
from sloplane.render.options import KubernetesOptions
from sloplane.render.prometheus import rule_file
from sloplane.semantics.subjects import Fleet
from tests.kube import crd_errors
from tests.strategies import fleets

FLEET_SIZE = 20
FLEETS = 10  # x 20 = 200 declarations


@settings(max_examples=FLEETS, deadline=None, suppress_health_check=list(HealthCheck))
@given(fleets(FLEET_SIZE))
def test_promtool_and_the_crd_accept_generated_fleets(documents: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "fleet.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
        result = load_paths([root / "fleet.yaml"])
        assert result.errors == [], [d.render() for d in result.errors]
        fleet = Fleet(result.declarations)
        files = []
        for declaration in result.declarations:
            rules = rule_file(declaration, fleet)
            path = root / f"{declaration.name}.rules.yaml"
            path.write_text(to_yaml(rules))
            files.append(path.name)
            assert (
                crd_errors(
                    prometheus_rule(declaration, rules, KubernetesOptions()),
                    "monitoring.coreos.com_prometheusrules.yaml",
                )
                == []
            )
        checked = subprocess.run(
            ["promtool", "check", "rules", *files], capture_output=True, text=True, cwd=root, check=False
        )
        assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
        assert checked.stdout.count("SUCCESS") == FLEET_SIZE
