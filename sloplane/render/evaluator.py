"""Kubernetes objects that run `sloplane serve` next to the rules it reads, as plain dicts.

The `SloEvaluator` component registers exactly these dicts, so they can be tested (and validated
against the Kubernetes schemas) without Pulumi. Nothing secret is ever rendered here except into
the Secret: the token and receiver files are the caller's values, passed straight through.

Layout inside the pod, fixed so the container arguments are predictable:

| path | volume | why |
|---|---|---|
| `/etc/sloplane/slos/<slo>.yaml` | ConfigMap (subPath) | one canonical YAML file per SLO, what `serve` loads |
| `/etc/sloplane/secrets` | Secret | `tokens.yaml`, `receivers.yaml` (read at start: restart after a rotation) |
| `/etc/sloplane/tokens/<set>` | Secret per token set | that set's `tokens.yaml` (`--limited-tokens` with its limits) |
| `/var/lib/sloplane` | PVC (volume, s3 modes) | `controls.db`: freezes and incidents, shared by every replica |
| `/var/lib/sloplane/local` | emptyDir (s3 mode) | the per-pod decision log, exported to S3 |
| `/tmp` | emptyDir | the root filesystem is read-only |

In postgres mode there is no PVC and no state folder: decisions, freezes, incidents and the outbox are in
the database, and `serve` is given neither `--db` nor `--controls`. It reads the URL from `SLOPLANE_DB`
(what `--db` defaults to), set from the `<name>-database` Secret, so the URL is in no argument (which
`ps`, `kubectl describe` and the Deployment show) and in no object but that Secret.

With a Datadog site or URL, `serve --datadog` reads its keys from `DD_API_KEY` and `DD_APP_KEY`, set
from a Secret of their own (`<name>-datadog`): environment variables, so not mounted with the files.
With a chain key, `SLOPLANE_CHAIN_KEY` comes from `<name>-chain-key` likewise, in any mode.
A changed key or URL reaches the pods when they restart (environment variables are read at start).

Size: one short builder per object of the deployment, in the order they are applied, because they share
every name (a Secret's with the `secretKeyRef` reading it, a volume's with its mount, the storage mode with
the PVC, the arguments and the egress ports); apart they could drift. The names and settings themselves are
in `evaluator_settings`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sloplane.core.serialize import canonical_json
from sloplane.declaration.model import Declaration
from sloplane.declaration.writer import declaration_data, dump_yaml
from sloplane.render import argo_cd
from sloplane.render.evaluator_settings import (
    CHAIN_KEY_ENV,
    CHAIN_KEY_KEY,
    CONFIG_CHECKSUM,
    CONFIG_MAP_LIMIT,
    DATABASE_ENV,
    DATABASE_KEY,
    DATADOG_KEYS,
    LOCAL_DIR,
    POSTGRES_PORT,
    RECEIVERS_FILE,
    SECRET_KEYS,
    SECRETS_DIR,
    SERVICE_PORT,
    SLOS_DIR,
    STATE_DIR,
    TOKENS_DIR,
    TOKENS_FILE,
    EvaluatorSettings,
    StorageSettings,
    TokenSet,
    chain_key_secret_name,
    check_database_url,
    claim_name,
    config_map_name,
    database_secret_name,
    datadog_secret_name,
    labels,
    metadata,
    postgres_ports,
    secret_name,
    selector_labels,
    token_set_secret_name,
    token_set_volume,
)
from sloplane.render.kubernetes import locked_down_container, locked_down_pod
from sloplane.render.pipelines import PipelineOptions

T = TypeVar("T")


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
    return _opaque_secret(settings, secret_name(settings), {key: values[key] for key in SECRET_KEYS})


def _opaque_secret(settings: EvaluatorSettings, name: str, data: Mapping[str, T]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(settings, name),
        "type": "Opaque",
        "stringData": dict(data),
    }


def token_set_secret(settings: EvaluatorSettings, token_set: TokenSet, tokens: T) -> dict[str, Any]:
    """One token set's Secret (`<name>-tokens-<set>`): its tokens file alone (the component passes a secret Output)."""
    return _opaque_secret(settings, token_set_secret_name(settings, token_set.name), {TOKENS_FILE: tokens})


def token_set_args(settings: EvaluatorSettings) -> list[str]:
    """`serve`'s flags for the token sets: each file confined to its set's limits, or read as it is without."""
    args: list[str] = []
    for token_set in settings.token_sets:
        path = f"{TOKENS_DIR}/{token_set.name}/{TOKENS_FILE}"
        args += ["--limited-tokens", f"{token_set.limits}={path}"] if token_set.limits else ["--tokens", path]
    return args


def datadog_secret(settings: EvaluatorSettings, keys: Mapping[str, T]) -> dict[str, Any]:
    """The Datadog keys' Secret (`api-key`, `app-key`); `keys` by environment variable (`DD_API_KEY`, `DD_APP_KEY`)."""
    if settings.datadog_url is None:
        raise ValueError("Datadog keys without a Datadog site or URL to use them with")
    if set(keys) != set(DATADOG_KEYS):
        raise ValueError(f"the Datadog secret holds exactly {list(DATADOG_KEYS)}, got {sorted(keys)}")
    data = {key: keys[variable] for variable, key in DATADOG_KEYS.items()}
    return _opaque_secret(settings, datadog_secret_name(settings), data)


def database_secret(settings: EvaluatorSettings, url: T) -> dict[str, Any]:
    """The PostgreSQL URL's Secret (`<name>-database`, key `url`); the component passes a secret Output."""
    if settings.storage.mode != "postgres":
        raise ValueError(f"a database URL is for storage mode 'postgres', not {settings.storage.mode!r}")
    check_database_url(settings.storage, url)
    return _opaque_secret(settings, database_secret_name(settings), {DATABASE_KEY: url})


def chain_key_secret(settings: EvaluatorSettings, key: T) -> dict[str, Any]:
    """The hash chain key's Secret (`<name>-chain-key`, key `chain-key`); the component passes a secret Output."""
    if not settings.keyed_chain:
        raise ValueError("a chain key, but the settings do not say keyed_chain")
    return _opaque_secret(settings, chain_key_secret_name(settings), {CHAIN_KEY_KEY: key})


def persistent_volume_claim(settings: EvaluatorSettings) -> dict[str, Any]:
    """Shared state: ReadWriteMany, since every replica reads and writes `controls.db` (not in postgres mode)."""
    storage = settings.storage
    if not storage.has_volume:
        raise ValueError("storage mode 'postgres' has no volume: everything is in the database")
    spec: dict[str, Any] = {
        "accessModes": [storage.claim_access_mode],
        "resources": {"requests": {"storage": storage.claim_size}},
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


def sqlite_args(settings: EvaluatorSettings) -> list[str]:
    """Where the SQLite files are; none in postgres mode, where `serve` reads the URL from `SLOPLANE_DB`."""
    if not settings.storage.has_volume:
        return []
    return ["--controls", f"{STATE_DIR}/controls.db", "--db", db_path(settings)]


def container_args(settings: EvaluatorSettings) -> list[str]:
    """`sloplane serve` with every path pointing into the mounts of `volumes` (never a secret: see the module)."""
    args = [
        "serve",
        SLOS_DIR,
        "--prometheus",
        settings.prometheus_url,
        "--tokens",
        f"{SECRETS_DIR}/{TOKENS_FILE}",
        *token_set_args(settings),
        "--receivers",
        f"{SECRETS_DIR}/{RECEIVERS_FILE}",
        *sqlite_args(settings),
        "--host",
        "0.0.0.0",  # inside a pod: the NetworkPolicy decides who reaches it
        "--port",
        str(settings.port),
    ]
    if settings.argocd_project is not None:
        args += ["--argocd-project", settings.argocd_project, "--argocd-namespace", settings.argocd_namespace]
    if settings.datadog_url is not None:
        args += ["--datadog", settings.datadog_url]
    return args + s3_args(settings.storage)


def s3_args(storage: StorageSettings) -> list[str]:
    """The export flags of s3 mode; none in volume mode."""
    if storage.mode != "s3":
        return []
    args = ["--export-s3", str(storage.s3_url), "--export-interval", storage.interval]
    if storage.s3_endpoint_url:
        args += ["--s3-endpoint-url", storage.s3_endpoint_url]
    return args


def _from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def environment(settings: EvaluatorSettings) -> list[dict[str, Any]]:
    """POD_NAME (from the downward API) names a SQLite decision log; the rest configures the process.

    Secrets only as `secretKeyRef`s: the database URL (postgres mode), the chain key, the Datadog keys."""
    env: list[dict[str, Any]] = []
    if settings.storage.has_volume:
        env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    env.append({"name": "SLOPLANE_LOG_LEVEL", "value": settings.log_level})
    if not settings.storage.has_volume:
        env.append(_from_secret(DATABASE_ENV, database_secret_name(settings), DATABASE_KEY))
    if settings.keyed_chain:
        env.append(_from_secret(CHAIN_KEY_ENV, chain_key_secret_name(settings), CHAIN_KEY_KEY))
    if settings.storage.mode == "s3" and settings.storage.region:
        # Both spellings: older botocore releases only read AWS_DEFAULT_REGION.
        env += [{"name": key, "value": settings.storage.region} for key in ("AWS_REGION", "AWS_DEFAULT_REGION")]
    if settings.datadog_url is not None:
        env += [_from_secret(variable, datadog_secret_name(settings), key) for variable, key in DATADOG_KEYS.items()]
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
    """(pod volumes, container mounts): read-only declarations and secrets, writable state (not in postgres
    mode: nothing is kept on disk there) and /tmp."""
    state = settings.storage.has_volume
    pod: list[dict[str, Any]] = [
        {"name": "slos", "configMap": {"name": config_map_name(settings)}},
        {"name": "secrets", "secret": {"secretName": secret_name(settings), "defaultMode": 0o440}},
        *([{"name": "state", "persistentVolumeClaim": {"claimName": claim_name(settings)}}] if state else []),
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        *declaration_mounts(files),
        {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
        *([{"name": "state", "mountPath": STATE_DIR}] if state else []),
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    for token_set in settings.token_sets:  # one volume each: a Secret is mounted whole, and each set is its own
        volume = token_set_volume(token_set.name)
        secret = {"secretName": token_set_secret_name(settings, token_set.name), "defaultMode": 0o440}
        pod.append({"name": volume, "secret": secret})
        mounts.append({"name": volume, "mountPath": f"{TOKENS_DIR}/{token_set.name}", "readOnly": True})
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


def database_ports(settings: EvaluatorSettings, database_url: object = None) -> list[int]:
    """PostgreSQL's ports in postgres mode: `storage.port` if given, else those a plain URL names, else 5432
    (a secret Output cannot be read when the objects are rendered)."""
    storage = settings.storage
    if storage.mode != "postgres":
        return []
    if storage.port is not None:
        return [storage.port]
    if isinstance(database_url, str):
        return postgres_ports(database_url)
    return [POSTGRES_PORT]


def egress_ports(settings: EvaluatorSettings, database_url: object = None) -> list[int]:
    """Prometheus, HTTPS (PagerDuty, webhooks, S3), a custom S3 endpoint's port and PostgreSQL's."""
    ports = {settings.prometheus_port or url_port(settings.prometheus_url), 443}
    if settings.storage.mode == "s3" and settings.storage.s3_endpoint_url:
        ports.add(url_port(settings.storage.s3_endpoint_url))
    ports.update(database_ports(settings, database_url))
    if talks_to_kubernetes(settings):
        ports.update(settings.api_server_ports)
    if settings.datadog_url is not None and settings.datadog_url.startswith(("https://", "http://")):
        ports.add(url_port(settings.datadog_url))  # a site is reached on 443
    return sorted(ports)


def network_policy(settings: EvaluatorSettings, database_url: object = None) -> dict[str, Any]:
    """Ingress only to the API port; egress only to DNS and the ports the evaluator calls (`database_url`, plain
    or an Output, only for the database's port: see `database_ports`)."""
    dns = {"ports": [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]}
    calls = {"ports": [{"protocol": "TCP", "port": port} for port in egress_ports(settings, database_url)]}
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


def token_set_secrets(settings: EvaluatorSettings, token_files: Mapping[str, T]) -> list[dict[str, Any]]:
    """The token sets' Secrets, from each set's tokens file by set name (exactly the sets of `settings`)."""
    named = [token_set.name for token_set in settings.token_sets]
    if sorted(token_files) != sorted(named):
        raise ValueError(f"the token sets are {sorted(named)}, but tokens files were given for {sorted(token_files)}")
    return [token_set_secret(settings, token_set, token_files[token_set.name]) for token_set in settings.token_sets]


def evaluator_objects(
    settings: EvaluatorSettings,
    declarations: Iterable[Declaration],
    secret_values: Mapping[str, T],
    datadog_keys: Mapping[str, T] | None = None,
    token_files: Mapping[str, T] | None = None,
    *,
    database_url: T | None = None,
    chain_key: T | None = None,
) -> list[dict[str, Any]]:
    """Every object of one evaluator, in the order they can be applied (the Datadog keys' Secret with a site,
    one Secret per token set with `token_files`, each set's tokens file by set name; the database URL's Secret
    in postgres mode, which has no PVC; the chain key's Secret with `keyed_chain`)."""
    configs = config_map(settings, declarations)
    if (settings.datadog_url is None) != (datadog_keys is None):
        raise ValueError("a Datadog site or URL and its keys go together")
    check_database_url(settings.storage, database_url)
    if settings.keyed_chain != (chain_key is not None):
        raise ValueError("keyed_chain and the chain key go together")
    return [
        service_account(settings),
        configs,
        secret(settings, secret_values),
        *token_set_secrets(settings, token_files or {}),
        *([datadog_secret(settings, datadog_keys)] if datadog_keys is not None else []),
        *([database_secret(settings, database_url)] if database_url is not None else []),
        *([chain_key_secret(settings, chain_key)] if chain_key is not None else []),
        *([persistent_volume_claim(settings)] if settings.storage.has_volume else []),
        deployment(settings, configs["data"]),
        service(settings),
        pod_disruption_budget(settings),
        network_policy(settings, database_url),
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
