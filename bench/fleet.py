"""A deterministic fleet of realistic declarations for benchmarks (seeded, no hypothesis)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

KINDS = ("http", "latency", "ratio", "probe", "deployment")
WINDOWS = ("30d", "28d", "7d", "90d", {"calendar": "month", "timeZone": "Europe/Berlin"})


def _sli(kind: str, service: str, rng: random.Random) -> dict[str, Any]:
    if kind == "http":
        return {"http": {"metric": "http_requests_total", "selector": {"job": service}, "errors": {"codes": ["5xx"]}}}
    if kind == "latency":
        threshold = rng.choice(["100ms", "250ms", "500ms", "1s"])
        return {
            "latency": {"metric": "http_request_duration_seconds", "selector": {"job": service}, "threshold": threshold}
        }
    if kind == "ratio":
        return {
            "ratio": {
                "errors": {
                    "prometheus": f'sum(rate(rpc_errors_total{{job="{service}",{{{{selector}}}}}}[{{{{window}}}}]))'
                },
                "total": {"prometheus": f'sum(rate(rpc_total{{job="{service}",{{{{selector}}}}}}[{{{{window}}}}]))'},
            }
        }
    if kind == "probe":
        return {"probe": {"selector": {"job": "blackbox", "instance": f"https://{service}.example.com/healthz"}}}
    return {"deployment": {"measure": "successRate", "selector": {"rollout": service}}}


def declaration(index: int, rng: random.Random) -> dict[str, Any]:
    """One declaration; about half are staged, most have gates and owners, some maintenance."""
    service = f"svc-{index // 3:04d}"
    kind = KINDS[index % len(KINDS)]
    spec: dict[str, Any] = {
        "service": service,
        "description": f"{kind} objective for {service}",
        "tier": rng.choice(["critical", "high", "medium", "low"]),
        "owners": {
            "team": f"team-{index % 40:02d}",
            "dev": {"name": "Dev Lead", "contact": f"dev-{index % 40}@example.com"},
            "ops": {"name": "On-call", "contact": "https://pager.example.com"},
        },
        "rationale": "Keeps the user-facing error rate within what support can absorb.",
        "review": {"last": "2026-09-01", "next": "2027-03-01"},
        "sli": _sli(kind, service, rng),
        "objective": rng.choice([99.0, 99.5, 99.9, 99.95]),
        "window": rng.choice(WINDOWS),
        "alerting": {
            "runbook": f"https://runbooks.example.com/{service}",
            "routing": {"deployment": f"team-{index % 40:02d}-releases", "background": f"team-{index % 40:02d}-oncall"},
            "deploymentSignal": f'sum(rollout_info{{rollout="{service}",phase="Progressing"}})',
        },
        "gate": {"minBudgetRemaining": 10.0, "maxBurnRate": 6.0, "minEvents": 100},
    }
    if index % 2 == 0:
        spec["stages"] = [
            {"name": "canary", "objective": 99.0, "selector": {"track": "canary"}},
            {"name": "production", "selector": {"track": "stable"}},
        ]
    if index % 5 == 0:
        spec["exclusions"] = {"maintenance": [{"name": "weekly", "schedule": "0 3 * * SUN", "duration": "1h"}]}
    return {
        "apiVersion": "sloplane.dev/v1alpha1",
        "kind": "ServiceLevelObjective",
        "metadata": {"name": f"{service}-{kind}-{index}", "labels": {"fleet": "bench"}},
        "spec": spec,
    }


def fleet(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` declarations, the same for the same seed."""
    rng = random.Random(seed)
    return [declaration(index, rng) for index in range(count)]


def write_fleet(folder: Path, count: int, per_file: int = 1) -> list[Path]:
    """Write the fleet as YAML, `per_file` documents per file; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    documents = fleet(count)
    files = []
    for start in range(0, count, per_file):
        path = folder / f"slos-{start:05d}.yaml"
        path.write_text(yaml.safe_dump_all(documents[start : start + per_file], sort_keys=False))
        files.append(path)
    return files
