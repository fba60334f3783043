"""The example stack: the fleet in examples/slos as sloplane components.

`pulumi preview` / `pulumi up` run it with the Pulumi CLI; `sloplane preview` runs it offline under
the SDK's mocks. Namespace and labels match a kube-prometheus-stack installation's defaults.

Declarations that target Datadog (payments-datadog.yaml) register their SLOs, monitors, corrections,
downtimes and dashboard through the explicit provider below; its keys are stack secrets
(`pulumi config set --secret datadog:apiKey ...`, `datadog:appKey`), or DD_API_KEY/DD_APP_KEY.
"""

from pathlib import Path

import pulumi
import pulumi_datadog

from sloplane.components import SloFleet

EXAMPLES = Path(__file__).resolve().parent.parent / "slos"

config = pulumi.Config("sloplane")
datadog_config = pulumi.Config("datadog")
datadog = pulumi_datadog.Provider(
    "datadog",
    api_key=datadog_config.get_secret("apiKey"),
    app_key=datadog_config.get_secret("appKey"),
    api_url=datadog_config.get("apiUrl"),
)
fleet = SloFleet(
    "examples",
    {
        "path": str(EXAMPLES),
        "namespace": config.get("namespace") or "monitoring",
        "rule_labels": {"release": "kube-prometheus-stack"},
        "dashboard_label": ["grafana_dashboard", "1"],
        "grafana_url": config.get("grafanaUrl") or "",
        "datadog_provider": datadog,
    },
)
pulumi.export("rules", fleet.rule_names)
pulumi.export("dashboards", fleet.dashboard_names)
