"""The evaluator's Kubernetes objects, rendered without Pulumi and checked against the API schemas."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import kubernetes_validate
import pytest
import yaml

from sloplane.core.postgres_url import is_postgres_url as render_is_postgres_url
from sloplane.declaration.model import Declaration
from sloplane.declaration.writer import declaration_data
from sloplane.evaluator.http.auth import new_token
from sloplane.evaluator.notify.outbox_postgres import PostgresOutbox
from sloplane.evaluator.storage import decisions, postgres_conninfo
from sloplane.evaluator.storage.assessments_postgres import PostgresAssessments
from sloplane.evaluator.storage.feedback_postgres import PostgresFeedback
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from sloplane.evaluator.storage.postgres_controls import PostgresReleaseControls
from sloplane.interop import load_declarations
from sloplane.render import evaluator as render
from sloplane.render.evaluator_settings import (
    CHAIN_KEY_ENV,
    DATABASE_ENV,
    SECRETS_DIR,
    SLOS_DIR,
    EvaluatorSettings,
    StorageSettings,
    service_url,
)
from tests.conftest import EXAMPLES, minimal
from tests.kube import KUBERNETES_VERSION
from tests.servers import wait_until_up

if TYPE_CHECKING:
    from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)

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


DB_PASSWORD = "pg-s3cret-Pa55word"
DATABASE_URL = f"postgresql://evaluator:{DB_PASSWORD}@db.internal:6432/sloplane?sslmode=verify-full"
CHAIN_KEY = "chain-key-0123456789abcdef"
POSTGRES = StorageSettings(mode="postgres")


class Opaque:
    """Stands for a `pulumi.Output` (a secret, say): a value the renderer passes on but cannot read."""


def postgres_objects(declarations: list[Declaration], **overrides: Any) -> list[dict[str, Any]]:
    chosen = settings(**{"storage": POSTGRES, "keyed_chain": True, **overrides})
    return render.evaluator_objects(chosen, declarations, SECRETS, database_url=DATABASE_URL, chain_key=CHAIN_KEY)


def test_postgres_mode_renders_valid_objects_and_no_volume(declarations: list[Declaration]) -> None:
    objects = postgres_objects(declarations, labels={"team": "sre"})
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in objects] == [
        ("ServiceAccount", "sloplane-evaluator"),
        ("ConfigMap", "sloplane-evaluator-slos"),
        ("Secret", "sloplane-evaluator-secrets"),
        ("Secret", "sloplane-evaluator-database"),
        ("Secret", "sloplane-evaluator-chain-key"),
        ("Deployment", "sloplane-evaluator"),
        ("Service", "sloplane-evaluator"),
        ("PodDisruptionBudget", "sloplane-evaluator"),
        ("NetworkPolicy", "sloplane-evaluator"),
    ], "no PersistentVolumeClaim: the state is in the database"
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}: {error.message} at {list(error.path)}")
        assert obj["metadata"]["labels"]["team"] == "sre"
    pod = pod_spec(objects)
    assert [volume for volume in pod["volumes"] if "persistentVolumeClaim" in volume] == []
    (container,) = pod["containers"]
    writable = [mount["mountPath"] for mount in container["volumeMounts"] if not mount.get("readOnly")]
    assert writable == ["/tmp"], "a read-only root and nothing on disk but temporary files"
    with pytest.raises(ValueError, match="has no volume"):
        render.persistent_volume_claim(settings(storage=POSTGRES))


def test_postgres_mode_gives_serve_the_url_only_from_its_secret_in_the_environment(
    declarations: list[Declaration],
) -> None:
    objects = postgres_objects(declarations)
    (container,) = pod_spec(objects)["containers"]
    assert container["args"] == [*BASE_ARGS[:-2], "--host", "0.0.0.0", "--port", "8080"], "no --db, no --controls"
    env = {item["name"]: item for item in container["env"]}
    assert env[DATABASE_ENV] == {
        "name": "SLOPLANE_DB",
        "valueFrom": {"secretKeyRef": {"name": "sloplane-evaluator-database", "key": "url"}},
    }
    assert env[CHAIN_KEY_ENV]["valueFrom"] == {
        "secretKeyRef": {"name": "sloplane-evaluator-chain-key", "key": "chain-key"}
    }
    assert "POD_NAME" not in env, "no per-pod SQLite file to name"
    secrets = {obj["metadata"]["name"]: obj["stringData"] for obj in objects if obj["kind"] == "Secret"}
    assert secrets["sloplane-evaluator-database"] == {"url": DATABASE_URL}
    assert secrets["sloplane-evaluator-chain-key"] == {"chain-key": CHAIN_KEY}
    assert secrets["sloplane-evaluator-secrets"] == SECRETS


def test_the_database_url_and_the_chain_key_are_in_their_secrets_and_nowhere_else(
    declarations: list[Declaration],
) -> None:
    objects = postgres_objects(declarations, argocd_project="shop")  # the Role and RoleBinding too
    held = {
        "sloplane-evaluator-database": (DATABASE_URL, DB_PASSWORD, "evaluator@db.internal"),
        "sloplane-evaluator-chain-key": (CHAIN_KEY,),
    }
    for obj in objects:
        text = json.dumps(obj)
        for holder, values in held.items():
            if obj["kind"] == "Secret" and obj["metadata"]["name"] == holder:
                assert all(value in text for value in values[:1])
                continue
            leaked = [value for value in values if value in text]
            assert leaked == [], f"{leaked} in the {obj['kind']} {obj['metadata']['name']}"


@pytest.mark.parametrize(
    ("url", "port", "expected"),
    [
        (DATABASE_URL, None, [6432]),
        ("postgresql://evaluator@primary:5433,standby/sloplane", None, [5432, 5433]),
        ("postgres://evaluator@db/sloplane", None, [5432]),
        ("postgresql://evaluator@db/sloplane?port=7000", None, [7000]),
        ("postgresql://evaluator@[fd00::5]:6000/sloplane", None, [6000]),
        (Opaque(), None, [5432]),
        (Opaque(), 6543, [6543]),
        (DATABASE_URL, 5432, [5432]),
    ],
    ids=["url-port", "multi-host", "default", "port-parameter", "ipv6", "output", "output-with-port", "port-wins"],
)
def test_postgres_egress_opens_the_database_port(url: object, port: int | None, expected: list[int]) -> None:
    """A plain URL says its ports; an Output cannot be read when rendering, so `port` or 5432; `port` wins
    (what the NetworkPolicy sees behind a Service that maps the port)."""
    chosen = settings(storage=StorageSettings(mode="postgres", port=port))
    policy = render.network_policy(chosen, url)
    kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)
    dns, calls = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert sorted(p["port"] for p in calls["ports"]) == sorted({443, 9090, *expected})
    assert render.egress_ports(settings(), None) == [443, 9090], "no database port without postgres mode"


def test_postgres_mode_keeps_the_replicas_spread_and_one_answering_through_disruptions(
    declarations: list[Declaration],
) -> None:
    objects = by_kind(postgres_objects(declarations))
    spec = objects["Deployment"]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert objects["PodDisruptionBudget"]["spec"] == {"minAvailable": 1, "selector": spec["selector"]}
    pod = spec["template"]["spec"]
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert [c["topologyKey"] for c in pod["topologySpreadConstraints"]] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    assert by_kind(postgres_objects(declarations, replicas=5))["Deployment"]["spec"]["replicas"] == 5


@pytest.mark.parametrize("storage", [StorageSettings(), S3, POSTGRES], ids=["volume", "s3", "postgres"])
def test_a_chain_key_reaches_serve_from_its_own_secret_in_every_mode(
    declarations: list[Declaration], storage: StorageSettings
) -> None:
    url = DATABASE_URL if storage.mode == "postgres" else None
    chosen = settings(storage=storage, keyed_chain=True)
    objects = render.evaluator_objects(chosen, declarations, SECRETS, database_url=url, chain_key=CHAIN_KEY)
    secrets = {obj["metadata"]["name"]: obj["stringData"] for obj in objects if obj["kind"] == "Secret"}
    assert secrets["sloplane-evaluator-chain-key"] == {"chain-key": CHAIN_KEY}
    (container,) = pod_spec(objects)["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["SLOPLANE_CHAIN_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "sloplane-evaluator-chain-key"
    assert ("PersistentVolumeClaim" in [obj["kind"] for obj in objects]) == (storage.mode != "postgres")
    assert ("SLOPLANE_DB" in env) == (storage.mode == "postgres")
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        if obj["kind"] != "Secret":
            assert CHAIN_KEY not in json.dumps(obj)
    without = render.evaluator_objects(settings(storage=storage), declarations, SECRETS, database_url=url)
    (plain,) = pod_spec(without)["containers"]
    assert "SLOPLANE_CHAIN_KEY" not in {item["name"] for item in plain["env"]}


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"mode": "postgres", "size": "2Gi"}, r"remove 'size' \(settings of the 'volume' and 's3' modes\)"),
        ({"mode": "postgres", "access_mode": "ReadWriteOnce"}, r"remove 'access_mode'"),
        ({"mode": "postgres", "s3_url": "s3://decisions/prod", "region": "eu-west-1"}, r"remove 's3_url', 'region'"),
        ({"mode": "postgres", "export_interval": "1m"}, r"without a volume or an S3 export: remove 'export_interval'"),
        (
            {"mode": "volume", "port": 5432},
            r"storage port is the PostgreSQL port, a setting of storage mode 'postgres'",
        ),
        ({"mode": "postgres", "port": 65536}, r"port number \(1-65535\), not 65536"),
        ({"mode": "postgres", "port": True}, r"port number \(1-65535\), not True"),
        ({"mode": "sqlite"}, r"storage mode must be 'volume', 's3' or 'postgres', not 'sqlite'"),
    ],
    ids=["size", "access-mode", "s3", "export", "port-elsewhere", "port-range", "port-bool", "mode"],
)
def test_storage_settings_of_another_mode_are_refused_not_ignored(storage: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StorageSettings(**storage)


@pytest.mark.parametrize(
    ("storage", "url", "message"),
    [
        (POSTGRES, None, r"storage mode 'postgres' needs url: the database every replica shares"),
        (StorageSettings(), DATABASE_URL, r"storage url is the PostgreSQL URL of storage mode 'postgres', not of 'vol"),
        (POSTGRES, f"mysql://evaluator:{DB_PASSWORD}@db/sloplane", r"not a PostgreSQL URL \(postgresql://user@host"),
        (POSTGRES, f"evaluator:{DB_PASSWORD}@db.internal:5432", r"not a PostgreSQL URL"),
        (POSTGRES, f"postgresql://evaluator:{DB_PASSWORD}@db:65536/sloplane", r"port that is not a number"),
        (POSTGRES, f"postgresql://evaluator:{DB_PASSWORD}@db:pgbouncer/sloplane", r"port that is not a number"),
    ],
    ids=["missing", "volume-mode", "other-scheme", "no-scheme", "port-range", "port-name"],
)
def test_a_database_url_that_cannot_work_is_refused_without_showing_it(
    declarations: list[Declaration], storage: StorageSettings, url: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        render.evaluator_objects(settings(storage=storage), declarations, SECRETS, database_url=url)
    assert DB_PASSWORD not in str(refused.value) and "evaluator" not in str(refused.value)


def test_keyed_chain_and_the_chain_key_go_together(declarations: list[Declaration]) -> None:
    with pytest.raises(ValueError, match="keyed_chain and the chain key go together"):
        render.evaluator_objects(settings(), declarations, SECRETS, chain_key=CHAIN_KEY)
    with pytest.raises(ValueError, match="keyed_chain and the chain key go together"):
        render.evaluator_objects(settings(keyed_chain=True), declarations, SECRETS)
    with pytest.raises(ValueError, match="a database URL is for storage mode 'postgres'"):
        render.database_secret(settings(), DATABASE_URL)


def test_the_names_the_pod_is_given_are_the_ones_the_runtime_reads() -> None:
    """The renderer may not import the runtime (import contracts), so it keeps copies: they must agree."""
    assert render_is_postgres_url(DATABASE_URL) and postgres_conninfo.is_postgres_url(DATABASE_URL)
    assert CHAIN_KEY_ENV == decisions.CHAIN_KEY_ENV
    read = subprocess.run(
        [sys.executable, "-c", "from sloplane.cli.common import DEFAULT_DB; print(DEFAULT_DB)"],
        env={**os.environ, DATABASE_ENV: DATABASE_URL},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert read.stdout.strip() == DATABASE_URL, "`serve --db` defaults to $SLOPLANE_DB"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_rendered_pod(objects: list[dict[str, Any]], folder: Path, port: int) -> subprocess.Popen[bytes]:
    """`sloplane serve` as the rendered pod runs it: its arguments, its environment (each `secretKeyRef` read
    from the rendered Secret, as the kubelet does, and nothing of the test's own SLOPLANE_* or PG* variables),
    the ConfigMap's and the Secret's files; the pod's folders moved under `folder`, listening on loopback."""
    slos, secret_files, work = folder / "slos", folder / "secrets", folder / "work"
    for made in (slos, secret_files, work):
        made.mkdir()
    for name, text in by_kind(objects)["ConfigMap"]["data"].items():
        (slos / name).write_text(text, encoding="utf-8")
    secrets = {obj["metadata"]["name"]: obj["stringData"] for obj in objects if obj["kind"] == "Secret"}
    for name, text in secrets["sloplane-evaluator-secrets"].items():
        (secret_files / name).write_text(text, encoding="utf-8")
        (secret_files / name).chmod(0o400)
    (container,) = pod_spec(objects)["containers"]
    args = [arg.replace(SLOS_DIR, str(slos)).replace(SECRETS_DIR, str(secret_files)) for arg in container["args"]]
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLOPLANE_", "PG"))}
    for item in container["env"]:
        reference = item.get("valueFrom", {}).get("secretKeyRef")
        env[item["name"]] = secrets[reference["name"]][reference["key"]] if reference else item["value"]
    command = [sys.executable, "-m", "sloplane", *args]
    return subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_the_rendered_pod_keeps_its_state_in_postgresql_as_a_writer_role(
    postgres_cluster: PostgresCluster, postgres_database: str, postgres_url: str, tmp_path: Path
) -> None:
    """Real parts: PostgreSQL (tests/postgres.py) and `sloplane serve` run with exactly the rendered arguments
    and environment. As the README's how-to says, the owner migrates once and the pod logs in as a role that
    holds only `sloplane_writer`, its password in the URL; gates, freezes and the keyed chain land in the
    database, and nothing is written to disk."""
    for store in (
        PostgresDecisionLog(postgres_url),
        PostgresReleaseControls(postgres_url),
        PostgresOutbox(postgres_url),
        PostgresAssessments(postgres_url),
        PostgresFeedback(postgres_url),
    ):
        store.close()  # the owner's migrations, run once (`sloplane migrate` opens these)
    role, password = f"evaluator_{uuid.uuid4().hex[:8]}", "pod-s3cret-pass"
    postgres_cluster.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'; GRANT sloplane_writer TO {role}")
    url = postgres_cluster.tcp_url(postgres_database, role, password)
    (tmp_path / "slos.yaml").write_text(minimal(), encoding="utf-8")
    gate_token, gate_entry = new_token("ci", ["gate"])
    admin_token, admin_entry = new_token("sre", ["admin"])
    files = {
        "tokens.yaml": yaml.safe_dump({"tokens": [gate_entry.to_dict(), admin_entry.to_dict()]}),
        "receivers.yaml": "receivers: {}\n",
    }
    chosen = settings(prometheus_url="http://127.0.0.1:9", storage=POSTGRES, keyed_chain=True)
    declared = load_declarations([tmp_path / "slos.yaml"])
    objects = render.evaluator_objects(chosen, declared, files, database_url=url, chain_key=CHAIN_KEY)
    assert postgres_cluster.port in render.egress_ports(chosen, url), "egress reaches the database's port"
    assert all(password not in json.dumps(obj) for obj in objects if obj["kind"] != "Secret")
    port = free_port()
    (tmp_path / "pod").mkdir()
    process = run_rendered_pod(objects, tmp_path / "pod", port)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz", process, timeout=60)
        with httpx.Client(timeout=60) as client:
            gate = client.post(
                f"{base}/v1/gates/evaluate",
                json={"slo": "checkout-availability", "revision": "r1"},
                headers={"Authorization": f"Bearer {gate_token}"},
            )
            assert gate.status_code == 200, gate.text
            freeze = client.post(
                f"{base}/v1/freezes",
                json={"service": "checkout", "reason": "database maintenance"},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
            assert freeze.status_code == 201, freeze.text
    finally:
        process.terminate()
        process.wait(timeout=20)
    with PostgresDecisionLog(postgres_url, chain_key=CHAIN_KEY.encode()) as log:
        assert log.count() == 1
        assert log.verify().broken is None
    with PostgresDecisionLog(postgres_url, chain_key=b"another key") as log:
        assert log.verify().broken is not None, "the chain is an HMAC under the Secret's key"
    with PostgresReleaseControls(postgres_url) as controls:
        assert [freeze.service for freeze in controls.freezes()] == ["checkout"]
    assert list((tmp_path / "pod" / "work").iterdir()) == [], "no SQLite file anywhere: the state is in PostgreSQL"


@pytest.mark.parametrize("field", ["s3_url", "export_interval", "s3_endpoint_url", "region"])
def test_s3_settings_in_volume_mode_are_refused_not_ignored(field: str) -> None:
    """Volume mode exports nothing: an `s3_url` there would say the log reaches a bucket when it never does."""
    with pytest.raises(ValueError, match=f"storage mode 'volume' keeps the decision log on the volume.*'{field}'"):
        StorageSettings(mode="volume", **{field: "s3://audit/decisions"})
