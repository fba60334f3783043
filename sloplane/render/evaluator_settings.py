"""What an evaluator deployment is configured with, and the names and labels its objects share.

The settings and the fixed paths inside the pod, apart from the objects built from them
(`render.evaluator`), so that the components and tests can name them without the object builders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sloplane.core.postgres_url import is_postgres_url, split_postgres_url
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
DATABASE_ENV = "SLOPLANE_DB"
"""The environment variable `serve` reads its store from when `--db` is not given (`cli.common.DEFAULT_DB`): in
postgres mode the URL reaches the process only this way, from a Secret, never as an argument anyone can list."""
DATABASE_KEY = "url"
"""The database URL's key in the `<name>-database` Secret."""
CHAIN_KEY_ENV = "SLOPLANE_CHAIN_KEY"
"""The environment variable the decision log reads its HMAC key from (`evaluator.storage.decisions.CHAIN_KEY_ENV`)."""
CHAIN_KEY_KEY = "chain-key"
"""The chain key's key in the `<name>-chain-key` Secret."""
POSTGRES_PORT = 5432
"""libpq's port where a URL names none, and the egress port when the URL cannot be read at render time."""
STORAGE_MODES = ("volume", "s3", "postgres")
DEFAULT_SIZE = "1Gi"
DEFAULT_ACCESS_MODE = "ReadWriteMany"
DEFAULT_EXPORT_INTERVAL = "5m"
_VOLUME_FIELDS = ("storage_class", "size", "access_mode")
_S3_FIELDS = ("s3_url", "export_interval", "s3_endpoint_url", "region")
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
    """Where the evaluator keeps decisions, freezes, incidents and its notification outbox.

    `volume` and `s3` keep SQLite files, so their PVC always exists: `controls.db` (freezes, incidents)
    must be one file all replicas see, hence ReadWriteMany. In `volume` mode each pod's decision log
    lives there too; in `s3` mode it lives on an emptyDir and is exported to `s3_url` every
    `export_interval`, so the PVC only holds the small controls file.

    `postgres` keeps all of it in one PostgreSQL database every replica shares (`serve --db URL`): no
    volume at all, so no ReadWriteMany storage class is needed, and any replica answers any gate. The
    URL is a secret (it may hold a password) and is therefore not a setting here: it is handed to the
    renderer beside the settings, like the tokens file, and reaches the pod only from a Secret.

    Settings of another mode are refused rather than ignored (the s3 ones in volume mode, the volume and s3
    ones in postgres mode): a `size` or an `s3_url` there would say something the deployment does not do.
    (Their defaults are None for that reason; `claim_size`, `claim_access_mode` and `interval` are the values
    used.)
    """

    mode: Literal["volume", "s3", "postgres"] = "volume"
    storage_class: str | None = None
    size: str | None = None
    """The volume's size; None: `DEFAULT_SIZE`."""
    access_mode: str | None = None
    """The volume's access mode; None: `DEFAULT_ACCESS_MODE` (ReadWriteMany)."""
    s3_url: str | None = None
    """`s3://bucket/prefix` (s3 mode only)."""
    export_interval: str | None = None
    """How often s3 mode exports; None: `DEFAULT_EXPORT_INTERVAL`."""
    s3_endpoint_url: str | None = None
    """An S3-compatible endpoint (MinIO, a VPC endpoint); None for AWS itself."""
    region: str | None = None
    port: int | None = None
    """The PostgreSQL port egress is opened to (postgres mode only). None: the ports a plain URL names (5432
    where it names none), or 5432 when the URL is an Output that cannot be read at render time. Like
    `prometheus_port`, it is the port the NetworkPolicy sees: set it for a database on another port whose URL
    is a secret Output, or when a Service in front of the database maps its port."""

    def __post_init__(self) -> None:
        """Refuse half-configured or mixed-up modes here rather than as a crash-looping pod."""
        if self.mode not in STORAGE_MODES:
            raise ValueError(f"storage mode must be 'volume', 's3' or 'postgres', not {self.mode!r}")
        if self.mode == "s3" and not (self.s3_url or "").startswith("s3://"):
            raise ValueError("storage mode 's3' needs s3_url as s3://bucket/prefix")
        if self.mode == "volume":
            given = [name for name in _S3_FIELDS if getattr(self, name) is not None]
            if given:
                raise ValueError(
                    f"storage mode 'volume' keeps the decision log on the volume and exports nothing: remove "
                    f"{', '.join(map(repr, given))} (settings of the 's3' mode), or set mode 's3'"
                )
        if self.mode == "postgres":
            given = [name for name in (*_VOLUME_FIELDS, *_S3_FIELDS) if getattr(self, name) is not None]
            if given:
                raise ValueError(
                    f"storage mode 'postgres' keeps everything in the database, without a volume or an S3 export: "
                    f"remove {', '.join(map(repr, given))} (settings of the 'volume' and 's3' modes)"
                )
        if self.port is not None:
            if self.mode != "postgres":
                raise ValueError("storage port is the PostgreSQL port, a setting of storage mode 'postgres' only")
            if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 < self.port < 65536:
                raise ValueError(f"storage port must be a port number (1-65535), not {self.port!r}")

    @property
    def claim_size(self) -> str:
        return self.size or DEFAULT_SIZE

    @property
    def claim_access_mode(self) -> str:
        return self.access_mode or DEFAULT_ACCESS_MODE

    @property
    def interval(self) -> str:
        return self.export_interval or DEFAULT_EXPORT_INTERVAL

    @property
    def has_volume(self) -> bool:
        """Whether the SQLite files need the shared volume (every mode but postgres)."""
        return self.mode != "postgres"


def check_database_url(storage: StorageSettings, url: object) -> None:
    """A database URL exactly in postgres mode, and a plain one a PostgreSQL URL; an Output is taken as it is.

    No message shows the URL, or any part of it: it may hold a password, and these messages reach
    `pulumi preview` output and CI logs.
    """
    if storage.mode != "postgres":
        if url is not None:
            raise ValueError(f"storage url is the PostgreSQL URL of storage mode 'postgres', not of {storage.mode!r}")
        return
    if url is None:
        raise ValueError(
            "storage mode 'postgres' needs url: the database every replica shares (postgresql://user@host:5432/db), "
            "passed as a secret"
        )
    if isinstance(url, str):
        postgres_ports(url)


def postgres_ports(url: str) -> list[int]:
    """The ports a plain PostgreSQL URL connects to: each host's (libpq takes `host1:5432,host2:5433` and
    a `port` parameter) and 5432 for a host that names none; ValueError, without the URL, for anything else."""
    if not is_postgres_url(url):
        raise ValueError(
            "storage url is not a PostgreSQL URL (postgresql://user@host:5432/db); "
            "its value is not shown, as it may hold a password"
        )
    parts = split_postgres_url(url)  # as libpq reads it: a password may hold `?`, `#` or `@`-free `:8812`
    named = [_host_port(host) for host in parts.hosts.split(",")]
    parameter = [value for key, value in parts.parameters() if key == "port"]
    ports = {_port_number(text) for value in parameter for text in value.split(",") if text}
    ports |= {port for port in named if port is not None}
    if not parameter and (None in named or not ports):
        ports.add(POSTGRES_PORT)
    return sorted(ports)


def _host_port(host: str) -> int | None:
    """`db:5433` -> 5433, `[::1]:5433` -> 5433, `db` or `` -> None."""
    port = host.rsplit("]", 1)[1] if host.startswith("[") and "]" in host else host
    if ":" not in port:
        return None
    text = port.rsplit(":", 1)[1]
    return _port_number(text) if text else None


def _port_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ValueError("storage url names a port that is not a number from 1 to 65535 (the URL is not shown)")
    return int(text)


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


LOG_LEVELS = ("debug", "info", "warning", "error")
"""What `serve --log-level` ($SLOPLANE_LOG_LEVEL) takes."""


@dataclass(frozen=True)
class EvaluatorSettings:
    """Everything about one evaluator deployment that is not a secret."""

    name: str
    namespace: str
    image: str
    prometheus_url: str
    replicas: int = 2
    """At least 2 in every mode: one replica with a minAvailable 1 PDB would block every node drain, and a gate
    must be answered while a pod restarts. Two suffice for postgres mode as well — any replica answers any gate
    and another takes the leader's singleton work within about a second — so more replicas buy throughput
    (each holds up to 10 connections per store), not availability; the default is the same in every mode."""
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
    keyed_chain: bool = False
    """The decision log's hash chain is an HMAC: `SLOPLANE_CHAIN_KEY` comes from the `<name>-chain-key` Secret
    (the key itself is a secret, handed to the renderer beside the settings). In every storage mode."""

    def __post_init__(self) -> None:
        """Fail on what the API server (or a node drain) would refuse later, with a clearer message.

        The name becomes the Service's, which must be a DNS-1035 label; one replica with a
        minAvailable 1 PDB would block every node drain.
        """
        if not DNS_LABEL.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} is not a DNS label (a-z, 0-9, '-', at most 63 characters)")
        if self.replicas < 2:
            raise ValueError("the evaluator needs at least 2 replicas (its PodDisruptionBudget keeps 1 available)")
        if self.log_level not in LOG_LEVELS:  # `serve` refuses any other at start: the pod would crash-loop
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
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


def database_secret_name(settings: EvaluatorSettings) -> str:
    """The Secret holding the PostgreSQL URL (postgres mode): only environment, so not mounted with the files."""
    return f"{settings.name}-database"


def chain_key_secret_name(settings: EvaluatorSettings) -> str:
    """The Secret holding the hash chain's key: apart from the database's, since whoever may read (or rotate) the
    database credentials need not hold the key that makes a rewritten chain detectable."""
    return f"{settings.name}-chain-key"


def claim_name(settings: EvaluatorSettings) -> str:
    """The PVC holding the shared controls (and, in volume mode, the decision logs); none in postgres mode."""
    return f"{settings.name}-state"


def service_url(settings: EvaluatorSettings) -> str:
    """The in-cluster base URL gates and Argo Rollouts call."""
    return f"http://{settings.name}.{settings.namespace}.svc.cluster.local"
