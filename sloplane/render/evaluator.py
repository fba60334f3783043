"""Kubernetes objects that run `sloplane serve` next to the rules it reads, as plain dicts.

The `SloEvaluator` component registers exactly these dicts, so they can be tested (and validated
against the Kubernetes schemas) without Pulumi. Nothing secret is ever rendered here except into
the Secret: the token and receiver files are the caller's values, passed straight through.

Layout inside the pod, fixed so the container arguments are predictable:

| path | volume | why |
|---|---|---|
| `/etc/sloplane/slos/<slo>.yaml` | ConfigMap (subPath) | one canonical YAML file per SLO, what `serve` loads |
| `/etc/sloplane/secrets` | Secret | `tokens.yaml`, `receivers.yaml` (a directory mount, so rotations propagate) |
| `/var/lib/sloplane` | PVC | `controls.db`: freezes and incidents, shared by every replica |
| `/var/lib/sloplane/local` | emptyDir (s3 mode) | the per-pod decision log, exported to S3 |
| `/tmp` | emptyDir | the root filesystem is read-only |
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from sloplane.core.serialize import canonical_json
from sloplane.declaration.model import Declaration
from sloplane.declaration.writer import declaration_data, dump_yaml
from sloplane.render import argo_cd
from sloplane.render.kubernetes import MANAGED_BY, locked_down_container, locked_down_pod
from sloplane.render.pipelines import PipelineOptions

T = TypeVar("T")

PORT = 8080
SERVICE_PORT = 80
SLOS_DIR = "/etc/sloplane/slos"
SECRETS_DIR = "/etc/sloplane/secrets"
STATE_DIR = "/var/lib/sloplane"
LOCAL_DIR = f"{STATE_DIR}/local"
TOKENS_FILE = "tokens.yaml"
RECEIVERS_FILE = "receivers.yaml"
SECRET_KEYS = (TOKENS_FILE, RECEIVERS_FILE)
CONFIG_CHECKSUM = "checksum/config"
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
CONFIG_MAP_LIMIT = 1024 * 1024
"""Kubernetes refuses ConfigMaps over 1 MiB; better to say so before the API server does."""
DEFAULT_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "500m", "memory": "512Mi"},
}


@dataclass(frozen=True)
class StorageSettings:
    """Where the evaluator keeps its SQLite files.

    The PVC always exists: `controls.db` (freezes, incidents) must be one file all replicas see,
    hence ReadWriteMany. In `volume` mode each pod's decision log lives there too; in `s3` mode it
    lives on an emptyDir and is exported to `s3_url` every `export_interval`, so the PVC only holds
    the small controls file.
    """

    mode: Literal["volume", "s3"] = "volume"
    storage_class: str | None = None
    size: str = "1Gi"
    access_mode: str = "ReadWriteMany"
    s3_url: str | None = None
    """`s3://bucket/prefix` (s3 mode only)."""
    export_interval: str = "5m"
    s3_endpoint_url: str | None = None
    """An S3-compatible endpoint (MinIO, a VPC endpoint); None for AWS itself."""
    region: str | None = None

    def __post_init__(self) -> None:
        """Refuse half-configured s3 mode here rather than as a crash-looping pod."""
        if self.mode not in ("volume", "s3"):
            raise ValueError(f"storage mode must be 'volume' or 's3', not {self.mode!r}")
        if self.mode == "s3" and not (self.s3_url or "").startswith("s3://"):
            raise ValueError("storage mode 's3' needs s3_url as s3://bucket/prefix")


@dataclass(frozen=True)
class EvaluatorSettings:
    """Everything about one evaluator deployment that is not a secret."""

    name: str
    namespace: str
    image: str
    prometheus_url: str
    replicas: int = 2
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: DEFAULT_RESOURCES)
    storage: StorageSettings = field(default_factory=StorageSettings)
    log_level: str = "info"
    port: int = PORT
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels on every object (and the pods)."""
    service_account_annotations: Mapping[str, str] = field(default_factory=dict)
    """E.g. `eks.amazonaws.com/role-arn` so s3 mode gets credentials without a static key."""
    ingress_namespace_labels: Sequence[Mapping[str, str]] = ()
    """Namespaces (by labels) whose pods may call the API, besides pods of the own namespace."""
    ingress_from: Sequence[Mapping[str, Any]] | None = None
    """NetworkPolicy peers replacing the default (own namespace + `ingress_namespace_labels`)."""
    prometheus_port: int | None = None
    """The Prometheus *pod* port egress is opened to; default: the URL's port (NetworkPolicies
    see the port after Service translation, so set this when the Service maps e.g. 80 -> 9090)."""
    argocd_project: str | None = None
    """Keep a deny sync window in this Argo CD AppProject while a major incident is open (`serve
    --argocd-project`): then, and only then, the pods get an API token, a Role that may get and patch
    that one AppProject, and egress to the API server."""
    argocd_namespace: str = "argocd"
    api_server_ports: Sequence[int] = (443, 6443)
    """Ports the Kubernetes API answers on (the Service's 443 and the usual endpoint 6443)."""

    def __post_init__(self) -> None:
        """Fail on what the API server (or a node drain) would refuse later, with a clearer message.

        The name becomes the Service's, which must be a DNS-1035 label; one replica with a
        minAvailable 1 PDB would block every node drain.
        """
        if not DNS_LABEL.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} is not a DNS label (a-z, 0-9, '-', at most 63 characters)")
        if self.replicas < 2:
            raise ValueError("the evaluator needs at least 2 replicas (its PodDisruptionBudget keeps 1 available)")


def selector_labels(settings: EvaluatorSettings) -> dict[str, str]:
    """The immutable subset that Deployment, Service, PDB and NetworkPolicy select on."""
    return {"app.kubernetes.io/name": "sloplane-evaluator", "app.kubernetes.io/instance": settings.name}


def labels(settings: EvaluatorSettings) -> dict[str, str]:
    """Standard `app.kubernetes.io/*` labels, then the caller's extras."""
    standard = {
        **selector_labels(settings),
        "app.kubernetes.io/component": "evaluator",
        "app.kubernetes.io/part-of": "sloplane",
        **MANAGED_BY,
    }
    return {**standard, **settings.labels}


def metadata(settings: EvaluatorSettings, name: str, **extra: Any) -> dict[str, Any]:
    """Explicit name and namespace on every object: nothing depends on auto-naming."""
    return {"name": name, "namespace": settings.namespace, "labels": labels(settings), **extra}


def config_map_name(settings: EvaluatorSettings) -> str:
    """The ConfigMap holding the declarations."""
    return f"{settings.name}-slos"


def secret_name(settings: EvaluatorSettings) -> str:
    """The Secret holding the token and receiver files."""
    return f"{settings.name}-secrets"


def claim_name(settings: EvaluatorSettings) -> str:
    """The PVC holding the shared controls (and, in volume mode, the decision logs)."""
    return f"{settings.name}-state"


def service_url(settings: EvaluatorSettings) -> str:
    """The in-cluster base URL gates and Argo Rollouts call."""
    return f"http://{settings.name}.{settings.namespace}.svc.cluster.local"


def declaration_files(declarations: Iterable[Declaration]) -> dict[str, str]:
    """One canonical YAML file per SLO, as `sloplane export`/`render` write them.

    Canonical text means the ConfigMap (and its checksum) only changes when a declaration's
    meaning does, not when comments or key order in the source files do.
    """
    files: dict[str, str] = {}
    for declaration in sorted(declarations, key=lambda d: d.name):
        key = f"{declaration.name}.yaml"
        if key in files:
            raise ValueError(f"two declarations are named {declaration.name!r}")
        files[key] = dump_yaml([declaration_data(declaration)])
    return files


def checksum(data: Mapping[str, str]) -> str:
    """sha256 of the ConfigMap data: a pod annotation, so pods roll when a declaration changes."""
    canonical = canonical_json(dict(data), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def talks_to_kubernetes(settings: EvaluatorSettings) -> bool:
    """Only the Argo CD deny window needs the Kubernetes API; without it no token is mounted."""
    return settings.argocd_project is not None


def service_account(settings: EvaluatorSettings) -> dict[str, Any]:
    """Its own identity; an API token only when it keeps the Argo CD deny window."""
    extra = {"annotations": dict(settings.service_account_annotations)} if settings.service_account_annotations else {}
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(settings, settings.name, **extra),
        "automountServiceAccountToken": talks_to_kubernetes(settings),
    }


def config_map(settings: EvaluatorSettings, declarations: Iterable[Declaration]) -> dict[str, Any]:
    """The declarations `serve` loads; no secrets ever go here."""
    data = declaration_files(declarations)
    size = sum(len(key.encode()) + len(value.encode()) for key, value in data.items())
    if size > CONFIG_MAP_LIMIT:
        raise ValueError(f"the declarations take {size} bytes, over the 1 MiB a ConfigMap can hold")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(settings, config_map_name(settings)),
        "data": data,
    }


def secret(settings: EvaluatorSettings, values: Mapping[str, T]) -> dict[str, Any]:
    """The Secret's shape; `values` are the file contents (the component passes secret Outputs)."""
    if set(values) != set(SECRET_KEYS):
        raise ValueError(f"the evaluator secret holds exactly {list(SECRET_KEYS)}, got {sorted(values)}")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(settings, secret_name(settings)),
        "type": "Opaque",
        "stringData": {key: values[key] for key in SECRET_KEYS},
    }


def persistent_volume_claim(settings: EvaluatorSettings) -> dict[str, Any]:
    """Shared state: ReadWriteMany, since every replica reads and writes `controls.db`."""
    storage = settings.storage
    spec: dict[str, Any] = {
        "accessModes": [storage.access_mode],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class is not None:
        spec["storageClassName"] = storage.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(settings, claim_name(settings)),
        "spec": spec,
    }


def db_path(settings: EvaluatorSettings) -> str:
    """Per-pod decision log: on the PVC (volume mode) or an emptyDir exported to S3 (s3 mode).

    Per pod because SQLite must not be written by several processes over a network filesystem.
    """
    folder = LOCAL_DIR if settings.storage.mode == "s3" else STATE_DIR
    return f"{folder}/$(POD_NAME).db"


def container_args(settings: EvaluatorSettings) -> list[str]:
    """`sloplane serve` with every path pointing into the mounts of `volumes`."""
    args = [
        "serve",
        SLOS_DIR,
        "--prometheus",
        settings.prometheus_url,
        "--tokens",
        f"{SECRETS_DIR}/{TOKENS_FILE}",
        "--receivers",
        f"{SECRETS_DIR}/{RECEIVERS_FILE}",
        "--controls",
        f"{STATE_DIR}/controls.db",
        "--db",
        db_path(settings),
        "--host",
        "0.0.0.0",  # inside a pod: the NetworkPolicy decides who reaches it
        "--port",
        str(settings.port),
    ]
    if settings.argocd_project is not None:
        args += ["--argocd-project", settings.argocd_project, "--argocd-namespace", settings.argocd_namespace]
    return args + s3_args(settings.storage)


def s3_args(storage: StorageSettings) -> list[str]:
    """The export flags of s3 mode; none in volume mode."""
    if storage.mode != "s3":
        return []
    args = ["--export-s3", str(storage.s3_url), "--export-interval", storage.export_interval]
    if storage.s3_endpoint_url:
        args += ["--s3-endpoint-url", storage.s3_endpoint_url]
    return args


def environment(settings: EvaluatorSettings) -> list[dict[str, Any]]:
    """POD_NAME (from the downward API) names the decision log; the rest configures the process."""
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "SLOPLANE_LOG_LEVEL", "value": settings.log_level},
    ]
    if settings.storage.mode == "s3" and settings.storage.region:
        # Both spellings: older botocore releases only read AWS_DEFAULT_REGION.
        env += [{"name": key, "value": settings.storage.region} for key in ("AWS_REGION", "AWS_DEFAULT_REGION")]
    return env


def declaration_mounts(files: Iterable[str]) -> list[dict[str, Any]]:
    """One `subPath` mount per declaration file, never the ConfigMap as a directory.

    A ConfigMap directory also holds the kubelet's hidden `..<timestamp>/` copy of every file, and
    the loader reads folders recursively: `serve` would see each SLO twice and refuse to start.
    subPath mounts do not follow ConfigMap updates, which is fine: pods roll on `checksum/config`.
    (Once the loader skips hidden entries, one directory mount would do.)
    """
    return [
        {"name": "slos", "mountPath": f"{SLOS_DIR}/{file}", "subPath": file, "readOnly": True} for file in sorted(files)
    ]


def volumes(settings: EvaluatorSettings, files: Iterable[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pod volumes, container mounts): read-only declarations and secrets, writable state and /tmp."""
    pod: list[dict[str, Any]] = [
        {"name": "slos", "configMap": {"name": config_map_name(settings)}},
        {"name": "secrets", "secret": {"secretName": secret_name(settings), "defaultMode": 0o440}},
        {"name": "state", "persistentVolumeClaim": {"claimName": claim_name(settings)}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        *declaration_mounts(files),
        {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
        {"name": "state", "mountPath": STATE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if settings.storage.mode == "s3":
        pod.append({"name": "local", "emptyDir": {}})
        mounts.append({"name": "local", "mountPath": LOCAL_DIR})
    return pod, mounts


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def container(settings: EvaluatorSettings, files: Iterable[str]) -> dict[str, Any]:
    """The one container: locked down, probed, and limited."""
    _, mounts = volumes(settings, files)
    return {
        "name": "evaluator",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "args": container_args(settings),
        "env": environment(settings),
        "ports": [{"name": "http", "containerPort": settings.port, "protocol": "TCP"}],
        # Startup covers loading a large fleet; liveness then only restarts a hung process.
        "startupProbe": _probe("/healthz", period=2, failures=30),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=10, failures=3),
        "resources": {kind: dict(values) for kind, values in settings.resources.items()},
        "securityContext": locked_down_container(),
        "volumeMounts": mounts,
    }


def _spread(settings: EvaluatorSettings) -> dict[str, Any]:
    """Replicas on different nodes (and zones) when the cluster allows; never unschedulable."""
    selector = {"matchLabels": selector_labels(settings)}
    return {
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": selector},
                    }
                ]
            }
        },
    }


def deployment(settings: EvaluatorSettings, config_data: Mapping[str, str]) -> dict[str, Any]:
    """Rolling, never below the replica count; pods roll when the declarations change."""
    pod_volumes, _ = volumes(settings, config_data)
    pod_spec: dict[str, Any] = {
        "serviceAccountName": settings.name,
        "automountServiceAccountToken": talks_to_kubernetes(settings),
        "securityContext": locked_down_pod(),
        "containers": [container(settings, config_data)],
        "volumes": pod_volumes,
        **_spread(settings),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(settings, settings.name),
        "spec": {
            "replicas": settings.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector_labels(settings)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(settings), "annotations": {CONFIG_CHECKSUM: checksum(config_data)}},
                "spec": pod_spec,
            },
        },
    }


def service(settings: EvaluatorSettings) -> dict[str, Any]:
    """ClusterIP on port 80, so callers use the plain service URL."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(settings, settings.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(settings),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def pod_disruption_budget(settings: EvaluatorSettings) -> dict[str, Any]:
    """Node drains keep one evaluator answering gates."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(settings, settings.name),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector_labels(settings)}},
    }


def url_port(url: str) -> int:
    """A URL's port, or its scheme's default."""
    parts = urlsplit(url)
    if parts.port is not None:
        return parts.port
    return 443 if parts.scheme == "https" else 80


def ingress_peers(settings: EvaluatorSettings) -> list[dict[str, Any]]:
    """Who may call the API: the given peers, else the own namespace plus allowed namespaces."""
    if settings.ingress_from is not None:
        return [dict(peer) for peer in settings.ingress_from]
    allowed = [{"namespaceSelector": {"matchLabels": dict(match)}} for match in settings.ingress_namespace_labels]
    return [{"podSelector": {}}, *allowed]


def egress_ports(settings: EvaluatorSettings) -> list[int]:
    """Prometheus, HTTPS (PagerDuty, webhooks, S3) and a custom S3 endpoint's port."""
    ports = {settings.prometheus_port or url_port(settings.prometheus_url), 443}
    if settings.storage.mode == "s3" and settings.storage.s3_endpoint_url:
        ports.add(url_port(settings.storage.s3_endpoint_url))
    if talks_to_kubernetes(settings):
        ports.update(settings.api_server_ports)
    return sorted(ports)


def network_policy(settings: EvaluatorSettings) -> dict[str, Any]:
    """Ingress only to the API port; egress only to DNS and the ports the evaluator calls."""
    dns = {"ports": [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]}
    calls = {"ports": [{"protocol": "TCP", "port": port} for port in egress_ports(settings)]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(settings, settings.name),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(settings)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": ingress_peers(settings), "ports": [{"protocol": "TCP", "port": settings.port}]}],
            "egress": [dns, calls],
        },
    }


def evaluator_objects(
    settings: EvaluatorSettings, declarations: Iterable[Declaration], secret_values: Mapping[str, T]
) -> list[dict[str, Any]]:
    """Every object of one evaluator, in the order they can be applied."""
    configs = config_map(settings, declarations)
    return [
        service_account(settings),
        configs,
        secret(settings, secret_values),
        persistent_volume_claim(settings),
        deployment(settings, configs["data"]),
        service(settings),
        pod_disruption_budget(settings),
        network_policy(settings),
        *argocd_access(settings),
    ]


def argocd_access(settings: EvaluatorSettings) -> list[dict[str, Any]]:
    """Role and RoleBinding to get and patch the one AppProject, when the deny window is on."""
    if settings.argocd_project is None:
        return []
    options = PipelineOptions(argocd_namespace=settings.argocd_namespace, app_project=settings.argocd_project)
    objects = argo_cd.evaluator_rbac(options, settings.name, settings.namespace)
    for obj in objects:
        obj["metadata"]["labels"] = {**labels(settings), **obj["metadata"].get("labels", {})}
    return objects
