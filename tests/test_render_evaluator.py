"""The evaluator's Kubernetes objects, rendered without Pulumi and checked against the API schemas."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from sloplane.declaration.model import Declaration
from sloplane.declaration.writer import declaration_data
from sloplane.interop import load_declarations
from sloplane.render import evaluator as render
from sloplane.render.evaluator_settings import EvaluatorSettings, StorageSettings, service_url
from tests.conftest import EXAMPLES
from tests.kube import KUBERNETES_VERSION

TOKEN = "tok_6Qm2-very-secret-gate-token"
ROUTING_KEY = "R0UT1NG-secret-pagerduty-key"
SECRETS = {
    "tokens.yaml": f"tokens:\n  - name: ci\n    hash: {TOKEN}\n",
    "receivers.yaml": f"receivers:\n  payments-oncall:\n    pagerduty: {{routingKey: {ROUTING_KEY}}}\n",
}
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
S3 = StorageSettings(mode="s3", s3_url="s3://slo-decisions/prod", s3_endpoint_url="http://minio.storage:9000")
BASE_ARGS = [
    "serve",
    "/etc/sloplane/slos",
    "--prometheus",
    PROMETHEUS,
    "--tokens",
    "/etc/sloplane/secrets/tokens.yaml",
    "--receivers",
    "/etc/sloplane/secrets/receivers.yaml",
    "--controls",
    "/var/lib/sloplane/controls.db",
]


@pytest.fixture(scope="module")
def declarations() -> list[Declaration]:
    return load_declarations([EXAMPLES])


def settings(**overrides: Any) -> EvaluatorSettings:
    values: dict[str, Any] = {
        "name": "sloplane-evaluator",
        "namespace": "observability",
        "image": "ghcr.io/example/sloplane:0.1.0",
        "prometheus_url": PROMETHEUS,
        **overrides,
    }
    return EvaluatorSettings(**values)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("storage", [StorageSettings(), S3], ids=["volume", "s3"])
def test_every_object_is_valid_kubernetes_with_explicit_name_namespace_and_labels(
    declarations: list[Declaration], storage: StorageSettings
) -> None:
    objects = render.evaluator_objects(settings(storage=storage, labels={"team": "sre"}), declarations, SECRETS)
    kinds = [obj["kind"] for obj in objects]
    assert kinds == [
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ]
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}: {error.message} at {list(error.path)}")
        meta = obj["metadata"]
        assert meta["name"].startswith("sloplane-evaluator") and meta["namespace"] == "observability"
        assert meta["labels"]["app.kubernetes.io/name"] == "sloplane-evaluator"
        assert meta["labels"]["app.kubernetes.io/instance"] == "sloplane-evaluator"
        assert meta["labels"]["app.kubernetes.io/component"] == "evaluator"
        assert meta["labels"]["team"] == "sre"


def test_pod_and_container_are_locked_down(declarations: list[Declaration]) -> None:
    objects = render.evaluator_objects(settings(), declarations, SECRETS)
    pod = pod_spec(objects)
    (container,) = pod["containers"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert by_kind(objects)["ServiceAccount"]["automountServiceAccountToken"] is False
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/sloplane"} <= set(mounts), "the only writable places of a read-only root"
    assert mounts["/etc/sloplane/secrets"]["readOnly"]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }


def test_secrets_appear_in_the_secret_and_nowhere_else(declarations: list[Declaration]) -> None:
    objects = render.evaluator_objects(settings(storage=S3), declarations, SECRETS)
    secret = by_kind(objects)["Secret"]
    assert secret["stringData"] == SECRETS
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        assert TOKEN not in text and ROUTING_KEY not in text, f"a secret leaked into the {obj['kind']}"


def test_the_secret_holds_exactly_the_two_files() -> None:
    with pytest.raises(ValueError, match=r"exactly \['tokens.yaml', 'receivers.yaml'\]"):
        render.secret(settings(), {"tokens.yaml": TOKEN})


def test_config_map_holds_one_canonical_file_per_slo_that_loads_back(
    declarations: list[Declaration], tmp_path: Path
) -> None:
    data = render.config_map(settings(), declarations)["data"]
    assert sorted(data) == sorted(f"{d.name}.yaml" for d in declarations)
    for file_name, text in data.items():
        (tmp_path / file_name).write_text(text, encoding="utf-8")
    reloaded = {d.name: declaration_data(d) for d in load_declarations([tmp_path])}
    assert reloaded == {d.name: declaration_data(d) for d in declarations}


def test_declarations_are_mounted_file_by_file(declarations: list[Declaration]) -> None:
    """A ConfigMap mounted as a folder also holds the kubelet's hidden `..<timestamp>/` copies,
    which the recursive loader would read as duplicates; each file is mounted on its own instead."""
    objects = render.evaluator_objects(settings(), declarations, SECRETS)
    (container,) = pod_spec(objects)["containers"]
    slos = [mount for mount in container["volumeMounts"] if mount["name"] == "slos"]
    assert slos == [
        {"name": "slos", "mountPath": f"/etc/sloplane/slos/{file}", "subPath": file, "readOnly": True}
        for file in sorted(by_kind(objects)["ConfigMap"]["data"])
    ]


def test_pods_roll_when_a_declaration_changes_and_only_then(declarations: list[Declaration]) -> None:
    def annotation(found: list[Declaration]) -> str:
        objects = render.evaluator_objects(settings(), found, SECRETS)
        value: str = by_kind(objects)["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    first = declarations[0]
    tightened = first.model_copy(update={"spec": first.spec.model_copy(update={"objective": 99.95})})
    before = annotation(declarations)
    data = render.config_map(settings(), declarations)["data"]
    assert before == hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert annotation(list(reversed(declarations))) == before, "order of the input must not roll pods"
    assert annotation([tightened, *declarations[1:]]) != before


def test_volume_mode_keeps_every_database_on_the_shared_claim(declarations: list[Declaration]) -> None:
    objects = render.evaluator_objects(settings(), declarations, SECRETS)
    (container,) = pod_spec(objects)["containers"]
    assert container["args"] == [
        *BASE_ARGS,
        "--db",
        "/var/lib/sloplane/$(POD_NAME).db",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    assert container["env"][0] == {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    claim = by_kind(objects)["PersistentVolumeClaim"]["spec"]
    assert claim["accessModes"] == ["ReadWriteMany"] and claim["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in claim, "no class given: the cluster's default applies"


def test_s3_mode_exports_a_local_log_and_keeps_controls_on_the_claim(declarations: list[Declaration]) -> None:
    storage = StorageSettings(mode="s3", s3_url="s3://slo-decisions/prod", region="eu-west-1", storage_class="efs")
    objects = render.evaluator_objects(settings(storage=storage), declarations, SECRETS)
    pod = pod_spec(objects)
    (container,) = pod["containers"]
    assert container["args"] == [
        *BASE_ARGS,
        "--db",
        "/var/lib/sloplane/local/$(POD_NAME).db",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--export-s3",
        "s3://slo-decisions/prod",
        "--export-interval",
        "5m",
    ]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert volumes[mounts["/var/lib/sloplane/local"]] == {"name": "local", "emptyDir": {}}
    assert "persistentVolumeClaim" in volumes[mounts["/var/lib/sloplane"]], "controls.db stays shared"
    assert {"name": "AWS_REGION", "value": "eu-west-1"} in container["env"]
    assert {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"} in container["env"]
    assert by_kind(objects)["PersistentVolumeClaim"]["spec"]["storageClassName"] == "efs"
    with_endpoint = render.container_args(settings(storage=S3))
    assert with_endpoint[-2:] == ["--s3-endpoint-url", "http://minio.storage:9000"]


def test_the_service_account_carries_cloud_identity_annotations(declarations: list[Declaration]) -> None:
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/sloplane"}
    objects = render.evaluator_objects(settings(service_account_annotations=role), declarations, SECRETS)
    assert by_kind(objects)["ServiceAccount"]["metadata"]["annotations"] == role
    assert pod_spec(objects)["serviceAccountName"] == "sloplane-evaluator"


def test_rollouts_and_disruptions_keep_an_evaluator_answering(declarations: list[Declaration]) -> None:
    objects = by_kind(render.evaluator_objects(settings(), declarations, SECRETS))
    spec = objects["Deployment"]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    (container,) = spec["template"]["spec"]["containers"]
    probes = {kind: container[kind]["httpGet"]["path"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "kubernetes.io/hostname"
    assert spread[0]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert objects["Service"]["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert objects["Service"]["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service_url(settings()) == "http://sloplane-evaluator.observability.svc.cluster.local"


def test_network_policy_opens_only_the_api_port_and_the_calls_it_makes() -> None:
    allowed = [{"kubernetes.io/metadata.name": "argo-rollouts"}]
    policy = render.network_policy(settings(storage=S3, ingress_namespace_labels=allowed))["spec"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert ingress["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "argo-rollouts"}}},
    ]
    ports = sorted((p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 9000), ("TCP", 9090), ("UDP", 53)]
    peers = [{"namespaceSelector": {"matchLabels": {"team": "ci"}}}]
    custom = render.network_policy(settings(ingress_from=peers, prometheus_port=9091))["spec"]
    assert custom["ingress"][0]["from"] == peers
    assert ("TCP", 9091) in [(p["protocol"], p["port"]) for p in custom["egress"][1]["ports"]]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replicas": 1}, r"at least 2 replicas"),
        ({"name": "Sloplane_Evaluator"}, r"not a DNS label"),
    ],
)
def test_settings_the_cluster_would_refuse_fail_early(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(**overrides)


def test_s3_mode_without_a_bucket_fails_early() -> None:
    with pytest.raises(ValueError, match=r"needs s3_url as s3://bucket/prefix"):
        StorageSettings(mode="s3", s3_url="https://slo-decisions.s3.amazonaws.com")


def test_the_argocd_deny_window_gets_exactly_the_access_it_needs(declarations: list[Declaration]) -> None:
    plain = render.evaluator_objects(settings(), declarations, SECRETS)
    assert not {"Role", "RoleBinding"} & {obj["kind"] for obj in plain}
    assert by_kind(plain)["ServiceAccount"]["automountServiceAccountToken"] is False
    objects = render.evaluator_objects(settings(argocd_project="shop"), declarations, SECRETS)
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}: {error.message} at {list(error.path)}")
    found = by_kind(objects)
    (rule,) = found["Role"]["rules"]
    assert rule == {
        "apiGroups": ["argoproj.io"],
        "resources": ["appprojects"],
        "resourceNames": ["shop"],
        "verbs": ["get", "patch"],
    }
    assert found["Role"]["metadata"]["namespace"] == "argocd"
    assert found["RoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "sloplane-evaluator", "namespace": "observability"}
    ]
    assert found["ServiceAccount"]["automountServiceAccountToken"] is True
    assert pod_spec(objects)["automountServiceAccountToken"] is True
    (container,) = pod_spec(objects)["containers"]
    assert container["args"][-4:] == ["--argocd-project", "shop", "--argocd-namespace", "argocd"]
    ports = {p["port"] for rule in found["NetworkPolicy"]["spec"]["egress"] for p in rule["ports"]}
    assert {443, 6443} <= ports


DD_KEYS = {"DD_API_KEY": "dd-api-0123456789abcdef", "DD_APP_KEY": "dd-app-fedcba9876543210"}


def test_a_datadog_site_passes_datadog_to_serve_with_its_keys_from_their_own_secret(
    declarations: list[Declaration],
) -> None:
    chosen = settings(datadog_url="datadoghq.eu")
    objects = render.evaluator_objects(chosen, declarations, SECRETS, DD_KEYS)
    secrets = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Secret"}
    assert secrets["sloplane-evaluator-datadog"]["stringData"] == {
        "api-key": DD_KEYS["DD_API_KEY"],
        "app-key": DD_KEYS["DD_APP_KEY"],
    }
    assert set(secrets["sloplane-evaluator-secrets"]["stringData"]) == {"tokens.yaml", "receivers.yaml"}
    (container,) = pod_spec(objects)["containers"]
    at = container["args"].index("--datadog")
    assert container["args"][at + 1] == "datadoghq.eu"
    env = {item["name"]: item for item in container["env"]}
    assert env["DD_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "sloplane-evaluator-datadog", "key": "api-key"}}
    assert env["DD_APP_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "sloplane-evaluator-datadog", "key": "app-key"}}
    for obj in objects:
        if obj["kind"] != "Secret":
            text = json.dumps(obj)
            assert all(key not in text for key in DD_KEYS.values()), f"a Datadog key leaked into {obj['kind']}"
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_without_datadog_nothing_of_it_is_rendered_and_a_url_opens_its_port(declarations: list[Declaration]) -> None:
    plain = render.evaluator_objects(settings(), declarations, SECRETS)
    (container,) = pod_spec(plain)["containers"]
    assert "--datadog" not in container["args"]
    assert not {"DD_API_KEY", "DD_APP_KEY"} & {item["name"] for item in container["env"]}
    assert [obj["kind"] for obj in plain].count("Secret") == 1
    local = settings(datadog_url="http://datadog-stand-in.test:8126")
    assert 8126 in render.egress_ports(local) and 8126 not in render.egress_ports(settings())


def test_datadog_settings_that_cannot_work_are_refused(declarations: list[Declaration]) -> None:
    with pytest.raises(ValueError, match="neither a Datadog site"):
        settings(datadog_url="api key?")
    with pytest.raises(ValueError, match="a Datadog site or URL and its keys go together"):
        render.evaluator_objects(settings(datadog_url="datadoghq.com"), declarations, SECRETS)
    with pytest.raises(ValueError, match="a Datadog site or URL and its keys go together"):
        render.evaluator_objects(settings(), declarations, SECRETS, DD_KEYS)
    with pytest.raises(ValueError, match="holds exactly"):
        render.datadog_secret(settings(datadog_url="datadoghq.com"), {"DD_API_KEY": "k"})
