"""What an evaluator deployment is configured with, and the names and labels its objects share.

The settings and the fixed paths inside the pod, apart from the objects built from them
(`render.evaluator`), so that the components and tests can name them without the object builders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sloplane.render.kubernetes import MANAGED_BY

PORT = 8080
SERVICE_PORT = 80
SLOS_DIR = "/etc/sloplane/slos"
SECRETS_DIR = "/etc/sloplane/secrets"
TOKENS_DIR = "/etc/sloplane/tokens"
"""Each token set's Secret is mounted at `<TOKENS_DIR>/<set>/`, holding its `tokens.yaml`."""
STATE_DIR = "/var/lib/sloplane"
LOCAL_DIR = f"{STATE_DIR}/local"
TOKENS_FILE = "tokens.yaml"
RECEIVERS_FILE = "receivers.yaml"
SECRET_KEYS = (TOKENS_FILE, RECEIVERS_FILE)
DATADOG_KEYS = {"DD_API_KEY": "api-key", "DD_APP_KEY": "app-key"}
"""The environment variables `serve --datadog` reads its keys from, and their keys in the Datadog Secret."""
DATADOG_SITE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+")
"""A site name (`datadoghq.eu`, `us5.datadoghq.com`): `serve` knows which API host each has."""
TOKEN_SET_LENGTH = 63 - len("tokens-")
"""A set's name becomes the volume `tokens-<set>`, and volume names are DNS labels."""
CONFIG_CHECKSUM = "checksum/config"
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
RFC1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""How declarations spell services and teams (`declaration.types.Name`)."""
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
class TokenSet:
    """One token set: a tokens file in a Secret of its own, its tokens confined to `services` and `teams`.

    A Secret per set, so that each team's tokens are rotated, and access to them granted (Kubernetes
    RBAC by resource name, an external-secrets sync from the team's own vault path), apart from every
    other team's. The limits are the server's arguments (`serve --limited-tokens`), not the file's:
    whoever edits a team's file still cannot reach past that team's services and teams. A set with
    neither is read as it is (`serve --tokens`), like the evaluator's own tokens file.
    """

    name: str
    services: Sequence[str] = ()
    teams: Sequence[str] = ()

    def __post_init__(self) -> None:
        """The name becomes a Secret's and a volume's (`tokens-<set>`, a DNS label); limits are declared names."""
        if not isinstance(self.name, str) or not DNS_LABEL.fullmatch(self.name) or len(self.name) > TOKEN_SET_LENGTH:
            raise ValueError(
                f"token set {self.name!r} is not a DNS label of at most {TOKEN_SET_LENGTH} characters (a-z, 0-9, '-')"
            )
        for what, names in (("services", self.services), ("teams", self.teams)):
            if isinstance(names, str) or any(not isinstance(n, str) or not RFC1123_LABEL.fullmatch(n) for n in names):
                raise ValueError(
                    f"token set {self.name!r}: {what} must be a list of RFC 1123 names as in declarations, "
                    f"not {names!r}"
                )

    @property
    def limits(self) -> str:
        """`service:checkout,team:payments`, as `serve --limited-tokens` reads them; empty without limits."""
        return ",".join([*(f"service:{n}" for n in self.services), *(f"team:{n}" for n in self.teams)])


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
    datadog_url: str | None = None
    """A Datadog site (`datadoghq.eu`) or API URL (`https://api.datadoghq.com`) for `serve --datadog`, so
    SLOs whose SLI reads Datadog are measured there; the keys go into their own Secret (`datadog_secret_name`)."""
    token_sets: Sequence[TokenSet] = ()
    """Token sets (e.g. one per team), each a tokens file in a Secret of its own (`token_set_secret_name`),
    mounted apart; `serve` reads them all besides the tokens file of the evaluator's own Secret."""

    def __post_init__(self) -> None:
        """Fail on what the API server (or a node drain) would refuse later, with a clearer message.

        The name becomes the Service's, which must be a DNS-1035 label; one replica with a
        minAvailable 1 PDB would block every node drain.
        """
        if not DNS_LABEL.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} is not a DNS label (a-z, 0-9, '-', at most 63 characters)")
        if self.replicas < 2:
            raise ValueError("the evaluator needs at least 2 replicas (its PodDisruptionBudget keeps 1 available)")
        url = self.datadog_url
        if url is not None and not (url.startswith(("https://", "http://")) or DATADOG_SITE.fullmatch(url)):
            raise ValueError(f"datadog_url {url!r} is neither a Datadog site (datadoghq.eu) nor an http(s) URL")
        _check_token_sets(self.token_sets)


def _check_token_sets(sets: Sequence[TokenSet]) -> None:
    """Each set once: its name is a Secret's and a volume's."""
    seen: set[str] = set()
    for token_set in sets:
        if not isinstance(token_set, TokenSet):
            raise ValueError(f"token_sets holds TokenSet values, not {token_set!r}")
        if token_set.name in seen:
            raise ValueError(f"token set {token_set.name!r} is given twice")
        seen.add(token_set.name)


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


def token_set_secret_name(settings: EvaluatorSettings, token_set: str) -> str:
    """The Secret holding one token set's tokens file (only that team's CI needs read access to it)."""
    return f"{settings.name}-tokens-{token_set}"


def token_set_volume(token_set: str) -> str:
    """The pod volume mounting one token set's Secret."""
    return f"tokens-{token_set}"


def datadog_secret_name(settings: EvaluatorSettings) -> str:
    """The Secret holding the Datadog API and application keys (apart from the files: it is only env)."""
    return f"{settings.name}-datadog"


def claim_name(settings: EvaluatorSettings) -> str:
    """The PVC holding the shared controls (and, in volume mode, the decision logs)."""
    return f"{settings.name}-state"


def service_url(settings: EvaluatorSettings) -> str:
    """The in-cluster base URL gates and Argo Rollouts call."""
    return f"http://{settings.name}.{settings.namespace}.svc.cluster.local"
