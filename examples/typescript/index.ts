// The shop team's SLOs from TypeScript: the folder of declarations, its evaluator and the Datadog
// objects of the SLOs that target Datadog. Property names are the package schema's (camelCase).
//
// Plain settings (path, namespace, labels, URLs, the evaluator's shape) take plain values: literals
// or `config.get`/`config.require`, never another resource's outputs (the generated SDK types them as
// plain values). Keys, tokens and receivers are inputs and stay secrets:
//   pulumi config set --secret datadogApiKey ...   (and datadogAppKey, evaluatorTokens, receivers)
import * as path from "path";

import * as pulumi from "@pulumi/pulumi";
import * as datadog from "@pulumi/datadog";
import * as sloplane from "@pulumi/sloplane";

const config = new pulumi.Config();

const datadogProvider = new datadog.Provider("datadog", {
    apiKey: config.requireSecret("datadogApiKey"),
    appKey: config.requireSecret("datadogAppKey"),
    apiUrl: "https://api.datadoghq.eu/",
});

const fleet = new sloplane.SloFleet("shop", {
    path: path.join(__dirname, "..", "slos"),
    namespace: config.get("namespace") ?? "monitoring",
    ruleLabels: { release: "kube-prometheus-stack" },
    dashboardLabel: ["grafana_dashboard", "1"],
    datadogProvider: datadogProvider,
    evaluator: {
        image: "ghcr.io/acme/sloplane:0.1.0",
        prometheusUrl: "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        tokens: config.requireSecret("evaluatorTokens"),
        receivers: config.requireSecret("receivers"),
        datadogUrl: "datadoghq.eu",
        datadogApiKey: config.requireSecret("datadogApiKey"),
        datadogAppKey: config.requireSecret("datadogAppKey"),
        replicas: 2,
        ingressFrom: [{ namespaceSelector: { matchLabels: { team: "shop" } } }],
    },
});

export const prometheusRules = fleet.ruleNames;
export const dashboards = fleet.dashboardNames;
