"""The example stack: the fleet in examples/slos as sloplane components.

`pulumi preview` / `pulumi up` run it with the Pulumi CLI; `sloplane preview` runs it offline under
the SDK's mocks. Namespace and labels match a kube-prometheus-stack installation's defaults.
"""

from pathlib import Path

import pulumi

from sloplane.components import SloFleet

EXAMPLES = Path(__file__).resolve().parent.parent / "slos"

config = pulumi.Config("sloplane")
fleet = SloFleet(
    "examples",
    {
        "path": str(EXAMPLES),
        "namespace": config.get("namespace") or "monitoring",
        "rule_labels": {"release": "kube-prometheus-stack"},
        "dashboard_label": ["grafana_dashboard", "1"],
        "grafana_url": config.get("grafanaUrl") or "",
    },
)
pulumi.export("rules", fleet.rule_names)
pulumi.export("dashboards", fleet.dashboard_names)
