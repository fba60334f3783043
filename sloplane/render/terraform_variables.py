"""The generated Terraform module's variables: what a caller changes without regenerating.

Every variable has a default — the value the module was generated with — so that `terraform plan` works
on the generated folder as it is, and a plan with the defaults holds exactly what `sloplane render` writes;
but the evaluator's database URL and chain key (generated with `evaluator_storage="postgres"`,
`evaluator_chain_key`), secrets with no value to assume.
Only the variables the module uses are declared (Terraform warns about unused ones, and a variable that
does nothing would mislead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sloplane.render.evaluator_settings import POSTGRES_PORT
from sloplane.render.options import KubernetesOptions
from sloplane.render.pipelines import PipelineOptions
from sloplane.render.terraform_hcl import escaped, hcl_value


def port_variable(name: str, default: int, description: str) -> dict[str, Any]:
    """A port number variable (whole, 1 to 65535) that a NetworkPolicy's egress takes."""
    return {
        "type": "number",
        "default": default,
        "nullable": False,
        "description": description,
        "validation": [
            {
                "condition": f"${{var.{name} == floor(var.{name}) && var.{name} >= 1 && var.{name} <= 65535}}",
                "error_message": f"{name} must be a port number from 1 to 65535.",
            }
        ],
    }


SWITCHES = {
    "kubernetes": "create_kubernetes_objects",
    "datadog": "create_datadog_objects",
    "grafana": "create_grafana_dashboards",
    "evaluator": "create_evaluator",
}
"""Each family of objects is created or not as a whole (`count = var.<switch> ? 1 : 0`)."""
_SWITCH_DESCRIPTIONS = {
    "kubernetes": ("Create the Kubernetes objects (rules, probes, dashboards, Argo objects).", True),
    "datadog": ("Create the Datadog objects (SLOs, monitors, corrections, downtimes, dashboards).", True),
    "grafana": ("Create the Grafana dashboards (grafana_dashboard).", True),
    "evaluator": (
        "Run sloplane's evaluator (Deployment, Service, Secret, volume, NetworkPolicy) for these SLOs.",
        False,
    ),
}
_POSTGRES_EVALUATOR = (
    "Run sloplane's evaluator (Deployment, Service, Secrets, NetworkPolicy; its state in PostgreSQL) for these SLOs."
)
DEFAULT_EVALUATOR_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"

EVALUATOR_VARIABLES: dict[str, dict[str, Any]] = {
    "evaluator_image": {
        "type": "string",
        "default": PipelineOptions().image,
        "description": "The evaluator's container image.",
    },
    "evaluator_prometheus_url": {
        "type": "string",
        "default": DEFAULT_EVALUATOR_PROMETHEUS,
        "description": "Prometheus as the evaluator's pods reach it.",
    },
    "evaluator_prometheus_port": port_variable(
        "evaluator_prometheus_port",
        9090,
        "The port the evaluator's NetworkPolicy lets its pods reach Prometheus on: the URL's port (the default "
        "URL's is 9090), or the pods' own port when a Service maps it.",
    ),
    "evaluator_tokens": {
        "type": "string",
        "default": "tokens: []\n",
        "sensitive": True,
        "description": "The evaluator's token file (`sloplane token create` entries).",
    },
    "evaluator_receivers": {
        "type": "string",
        "default": "receivers: []\n",
        "sensitive": True,
        "description": "The evaluator's receivers file (PagerDuty routing keys, webhook URLs).",
    },
}
"""The evaluator's settings a caller changes without regenerating; its tokens and receivers are `sensitive`."""
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
POSTGRES_VARIABLES: dict[str, dict[str, Any]] = {
    "evaluator_database_url": {
        "type": "string",
        "sensitive": True,
        "nullable": False,
        "description": (
            "The PostgreSQL database every evaluator replica shares (postgresql://user:password@host:5432/db): "
            "it goes into the <name>-database Secret only, read as SLOPLANE_DB."
        ),
        "validation": [
            {
                "condition": "${"
                + " || ".join(f'startswith(var.evaluator_database_url, "{scheme}")' for scheme in POSTGRES_SCHEMES)
                + "}",
                # never the value: it may hold a password
                "error_message": (
                    "evaluator_database_url must be a PostgreSQL URL (postgresql://user@host:5432/db); "
                    "its value is not shown, as it may hold a password."
                ),
            }
        ],
    },
    "evaluator_database_port": port_variable(
        "evaluator_database_port",
        POSTGRES_PORT,
        "The PostgreSQL port the evaluator's NetworkPolicy opens egress to: the port the pods connect to "
        "(after any Service's translation), as SloEvaluator's storage.port.",
    ),
}
"""The variables of a module whose evaluator stores in PostgreSQL (`--evaluator-storage postgres`). The URL
has no default: there is no database to assume, and a placeholder would plan an evaluator that cannot start."""
CHAIN_KEY_VARIABLE: dict[str, dict[str, Any]] = {
    "evaluator_chain_key": {
        "type": "string",
        "sensitive": True,
        "nullable": False,
        "description": (
            "The decision log's HMAC key (the same on every replica and the CLI): it goes into the "
            "<name>-chain-key Secret only, read as SLOPLANE_CHAIN_KEY."
        ),
    }
}
"""The variable of a module whose evaluator keys its hash chain (`--evaluator-chain-key`)."""


def switch(family: str) -> dict[str, str]:
    """The `count` that creates a resource only when its family's variable is on."""
    return {"count": f"${{var.{SWITCHES[family]} ? 1 : 0}}"}


def variables(
    families: set[str],
    kubernetes: KubernetesOptions,
    *,
    configmap_dashboards: bool,
    grafana_folder: bool,
    evaluator_storage: str = "volume",
    evaluator_chain_key: bool = False,
) -> dict[str, Any]:
    """`variables.tf.json` for a module holding these families of objects (and its evaluator storing so)."""
    found: dict[str, Any] = {}
    for family, name in SWITCHES.items():
        if family in families:
            description, default = _SWITCH_DESCRIPTIONS[family]
            found[name] = {"type": "bool", "default": default, "description": description}
    if "evaluator" in families:
        found.update(EVALUATOR_VARIABLES)
        if evaluator_storage == "postgres":
            found.update(POSTGRES_VARIABLES)
            found[SWITCHES["evaluator"]]["description"] = _POSTGRES_EVALUATOR
        if evaluator_chain_key:
            found.update(CHAIN_KEY_VARIABLE)
    if "kubernetes" in families:
        found["namespace"] = {
            "type": "string",
            "default": escaped(kubernetes.namespace),
            "description": "Namespace of the rules, probes and dashboards (default: the one it was generated for).",
        }
        found["rule_labels"] = {
            "type": "map(string)",
            "default": escaped(dict(kubernetes.rule_labels)),
            "description": (
                "Labels the Prometheus Operator selects PrometheusRules and Probes by (ruleSelector, probeSelector): "
                "they replace the generated ones, as SloFleet's ruleLabels do."
            ),
        }
    if configmap_dashboards:
        key, value = kubernetes.dashboard_label
        found["dashboard_labels"] = {
            "type": "map(string)",
            "default": escaped({key: value}),
            "description": "Labels of the dashboard ConfigMaps: what the Grafana sidecar's label selector watches.",
        }
    if grafana_folder:
        found["grafana_folder"] = {
            "type": "string",
            "default": "",
            "description": (
                "Grafana folder of the dashboards: the folder's uid for grafana_dashboard, or the value of the "
                "ConfigMaps' `grafana_folder` annotation (the Grafana chart's sidecar folderAnnotation). "
                "Empty: the default folder."
            ),
        }
    return {"variable": dict(sorted(found.items()))}


def merged_labels(labels: Mapping[str, str], variable: str) -> str:
    """A labels map with a variable's labels merged over it (the literal labels escaped first)."""
    return f"merge({hcl_value(escaped(dict(labels)))}, var.{variable})"
