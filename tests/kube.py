"""Validating Kubernetes custom resources against the CRDs in ../shared/reference/crds/."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parent / "data" / "crds"
KUBERNETES_VERSION = "1.30.0"
"""The Kubernetes schemas (shipped by `kubernetes-validate`) built-in objects are validated against."""


@cache
def crd_validator(file_name: str, version: str = "v1") -> jsonschema.Draft202012Validator:
    """The openAPIV3Schema of one CRD version as a JSON Schema validator."""
    crd = yaml.safe_load((CRDS / file_name).read_text())
    schema = next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version)
    return jsonschema.Draft202012Validator(schema)


def crd_errors(obj: dict[str, Any], file_name: str) -> list[str]:
    """Every schema violation of an object, as readable strings."""
    version = obj["apiVersion"].split("/")[-1]
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in crd_validator(file_name, version).iter_errors(obj)
    ]


def rollout_around(strategy: dict[str, Any]) -> dict[str, Any]:
    """A minimal Rollout around a rendered strategy snippet, as an application repository would hold it."""
    labels = {"app": "shop"}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "shop", "image": "shop:1"}]},
            },
            "strategy": strategy,
        },
    }
