"""`SloEvaluator`: `sloplane serve` deployed into the same cluster as the rules it reads.

Thin on purpose, like the other components: the settings become an `EvaluatorSettings`, the
renderer in `sloplane.render.evaluator` builds the objects, and each is registered as a child.
The only thing added here is secrecy: the token and receiver files go into the Secret wrapped in
`pulumi.Output.secret`, and so do the Datadog API and application keys into theirs, each token set's
file into its own Secret, the PostgreSQL URL (`storage.url`) into `<name>-database` and the chain key
into `<name>-chain-key`, so they are encrypted in state and never appear in the other objects (whether
or not the caller passed secrets). The pod reads the URL and the keys from the environment, each from
its Secret.

Settings other than `tokens`, `receivers`, the token sets' `tokens`, the Datadog keys, `storage.url` and
`chain_key` must be plain values (not Outputs): they shape the objects, which are rendered once when the
program runs. That is why a URL given as an Output (a secret always is one) cannot tell the
NetworkPolicy its port: `storage.port` does, else 5432 is opened.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

import pulumi
from pulumi_kubernetes.apps.v1 import Deployment
from pulumi_kubernetes.core.v1 import ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount
from pulumi_kubernetes.networking.v1 import NetworkPolicy
from pulumi_kubernetes.policy.v1 import PodDisruptionBudget
from pulumi_kubernetes.rbac.v1 import Role, RoleBinding

from sloplane.components.plain import NotPlainError, require_plain
from sloplane.declaration import DeclarationError
from sloplane.declaration.model import Declaration
from sloplane.interop import load_declarations
from sloplane.render import evaluator as render
from sloplane.render.evaluator_settings import (
    RECEIVERS_FILE,
    TOKENS_FILE,
    EvaluatorSettings,
    StorageSettings,
    TokenSet,
    check_database_url,
    service_url,
)

TOKEN = "sloplane:index:SloEvaluator"
DEFAULT_NAME = "sloplane-evaluator"
DEFAULT_NAMESPACE = "monitoring"
EMPTY_RECEIVERS = "receivers: {}\n"
"""No receivers: the file `serve` is pointed at always exists (only valid when no SLO routes alerts)."""
SETTING_ARGS = (
    "replicas",
    "resources",
    "log_level",
    "labels",
    "service_account_annotations",
    "ingress_namespace_labels",
    "ingress_from",
    "prometheus_port",
    "argocd_project",
    "argocd_namespace",
    "datadog_url",
)
WHOLE_NUMBER_ARGS = ("replicas", "prometheus_port")
"""Integer settings: other languages send every number as a double, so 2.0 is 2 and 2.5 is refused."""
SECRET_CHILDREN = {
    "secrets": "secret",
    "datadog": "datadog_secret",
    "database": "database_secret",
    "chain-key": "chain_key_secret",
}
"""The Secrets' resource name suffixes and their keys in `SloEvaluator.children`; a token set's Secret is
`<name>-tokens-<set>`, its key `tokens_<set>` (dashes as underscores)."""
DATADOG_KEY_ARGS = {"DD_API_KEY": "datadog_api_key", "DD_APP_KEY": "datadog_app_key"}
"""The component's arguments for the keys `serve --datadog` reads from each environment variable."""


class EvaluatorStorage(TypedDict):
    """Where the evaluator keeps decisions, freezes and incidents: SQLite files on a volume, or one PostgreSQL
    database all replicas share (see `render.evaluator_settings.StorageSettings`)."""

    mode: NotRequired[str]
    """`volume` (the decision log on the ReadWriteMany volume), `s3` (on an emptyDir, exported to `s3_url`) or
    `postgres` (everything in the database at `url`: no volume, any replica answers any gate, one leads)."""
    storage_class: NotRequired[str]
    """The volume's StorageClass (default: the cluster's default class; volume and s3 modes)."""
    size: NotRequired[str]
    """The volume's size (default `1Gi`; volume and s3 modes)."""
    access_mode: NotRequired[str]
    """Default `ReadWriteMany`: every replica sees the one freezes-and-incidents file (volume and s3 modes)."""
    s3_url: NotRequired[str]
    """`s3://bucket/prefix` (s3 mode)."""
    export_interval: NotRequired[str]
    """How often the decision log is exported in s3 mode (default `5m`)."""
    s3_endpoint_url: NotRequired[str]
    """An S3-compatible endpoint (MinIO, a VPC endpoint); unset for AWS itself."""
    region: NotRequired[str]
    """The bucket's region (s3 mode)."""
    url: NotRequired[pulumi.Input[str]]
    """The PostgreSQL URL (postgres mode, required there), stored as a secret (`<name>-database`) that `serve`
    reads from env `SLOPLANE_DB`; e.g. `postgresql://evaluator:PASSWORD@db:5432/sloplane?sslmode=verify-full`."""
    port: NotRequired[int]
    """The database port the NetworkPolicy lets the pods reach (postgres mode). Default: the ports a plain `url`
    names, or 5432 when `url` is a secret or another Output (unreadable when the objects are rendered)."""


class EvaluatorTokenSet(TypedDict):
    """One team's (or purpose's) tokens, in a Secret of their own (`<name>-tokens-<set>`), confined to its limits."""

    tokens: pulumi.Input[str]
    """The tokens file's content (`sloplane token create` entries); stored as a secret."""
    services: NotRequired[Sequence[str]]
    """Every token of the set reaches only SLOs of these services (or of `teams`), whatever its file says."""
    teams: NotRequired[Sequence[str]]
    """Every token of the set reaches only SLOs these teams own (or of `services`), whatever its file says."""


class IngressPeer(TypedDict):
    """Who may call the evaluator: a NetworkPolicy peer (`namespaceSelector`, `podSelector`, `ipBlock`)."""

    namespace_selector: NotRequired[Mapping[str, Mapping[str, str]]]
    """As Kubernetes writes it, e.g. `{matchLabels: {team: shop}}`."""
    pod_selector: NotRequired[Mapping[str, Mapping[str, str]]]
    """As Kubernetes writes it, e.g. `{matchLabels: {app: ci-runner}}`."""
    ip_block: NotRequired[Mapping[str, str]]
    """`{cidr: 10.0.0.0/8}`."""


class EvaluatorDeployment(TypedDict):
    """An evaluator without its declarations: what the `evaluator` argument of the SLO components takes.

    (Not named `…Args`: the SDKs of other languages append `Args` to input types themselves.)"""

    image: str
    """The evaluator's container image (it runs `sloplane serve`)."""
    prometheus_url: str
    """Prometheus as the evaluator's pods reach it, e.g. `http://prometheus-operated.monitoring.svc:9090`."""
    tokens: pulumi.Input[str]
    """The token file's content (`sloplane token create` entries); stored as a secret."""
    token_sets: NotRequired[Mapping[str, EvaluatorTokenSet]]
    """More tokens by set name (one per team, say), each in a Secret of its own, confined to its services/teams."""
    receivers: NotRequired[pulumi.Input[str]]
    """The receivers file's content (PagerDuty routing keys, webhook URLs); stored as a secret."""
    name: NotRequired[str]
    """Kubernetes name of the Deployment, Service, ... (default `sloplane-evaluator`)."""
    namespace: NotRequired[str]
    """Namespace of the evaluator's objects (default `monitoring`)."""
    replicas: NotRequired[int]
    """Pods behind the Service (default 2, at least 2: the PodDisruptionBudget keeps one answering gates)."""
    resources: NotRequired[Mapping[str, Mapping[str, str]]]
    """Container `requests`/`limits` as Kubernetes writes them, e.g. `{requests: {cpu: 100m}}`."""
    storage: NotRequired[EvaluatorStorage]
    """Where decisions, freezes and incidents are kept (default: a 1Gi ReadWriteMany volume; `{mode: postgres,
    url: ...}` for a PostgreSQL database the replicas share)."""
    log_level: NotRequired[str]
    """`debug`, `info` (default), `warning` or `error`."""
    labels: NotRequired[Mapping[str, str]]
    """Extra labels on every object of the evaluator."""
    service_account_annotations: NotRequired[Mapping[str, str]]
    """Annotations on its ServiceAccount, e.g. an IAM role for the S3 export."""
    ingress_namespace_labels: NotRequired[Sequence[Mapping[str, str]]]
    """Namespaces (by labels) whose pods may call the evaluator."""
    ingress_from: NotRequired[Sequence[IngressPeer]]
    """NetworkPolicy peers that may call the evaluator."""
    prometheus_port: NotRequired[int]
    """Prometheus's port for the egress rule, when `prometheus_url` does not say it."""
    argocd_project: NotRequired[str]
    """Keep a deny sync window in this Argo CD AppProject while a major incident is open (adds a
    Role that may get and patch only that project, and mounts an API token)."""
    argocd_namespace: NotRequired[str]
    """Namespace of Argo CD's AppProjects (default `argocd`)."""
    datadog_url: NotRequired[str]
    """A Datadog site (`datadoghq.eu`) or API URL (`https://api.datadoghq.com`): `serve --datadog`, for the
    SLOs whose SLI reads Datadog. Needs both keys."""
    datadog_api_key: NotRequired[pulumi.Input[str]]
    """Datadog API key, stored as a secret (env `DD_API_KEY` from the `<name>-datadog` Secret)."""
    datadog_app_key: NotRequired[pulumi.Input[str]]
    """Datadog application key, stored as a secret (env `DD_APP_KEY`)."""
    chain_key: NotRequired[pulumi.Input[str]]
    """The key the decision log's hash chain is an HMAC under, so that whoever can write the store cannot
    recompute a rewritten chain; stored as a secret (env `SLOPLANE_CHAIN_KEY` from `<name>-chain-key`). Any
    storage mode; `sloplane decisions verify` needs the same key."""


EvaluatorArgs = EvaluatorDeployment
"""The former name, kept for Python programs."""


class SloEvaluatorArgs(EvaluatorDeployment):
    """Inputs of the component: the evaluator's settings and the declarations it serves."""

    declarations: Sequence[str]
    """Paths of declaration files or folders (Python programs may also pass loaded models or mappings)."""


def resolve_declarations(values: Sequence[Any], owner: str = "SloEvaluator") -> list[Declaration]:
    """Declarations from models, mappings and paths (files or folders); errors as one readable message."""
    found: list[Declaration] = []
    for value in values:
        if isinstance(value, Declaration):
            found.append(value)
        elif isinstance(value, str | Path):
            try:
                found += load_declarations([value])
            except DeclarationError as error:
                raise pulumi.RunError(str(error)) from None
        else:
            try:
                found.append(Declaration.model_validate(dict(value)))
            except ValueError as error:
                raise pulumi.RunError(f"invalid declaration: {error}") from None
    if not found:
        raise pulumi.RunError(f"{owner}: no declarations given")
    return found


def datadog_keys(args: Mapping[str, Any], settings: EvaluatorSettings) -> dict[str, Any] | None:
    """The Datadog keys by environment variable when a site is given; both or neither, and only with a site."""
    given = {variable: args.get(arg) for variable, arg in DATADOG_KEY_ARGS.items() if args.get(arg) is not None}
    if settings.datadog_url is None:
        if given:
            raise pulumi.RunError("SloEvaluator: Datadog keys without 'datadog_url' (the site or API URL)")
        return None
    missing = [arg for variable, arg in DATADOG_KEY_ARGS.items() if variable not in given]
    if missing:
        raise pulumi.RunError(f"SloEvaluator: 'datadog_url' needs {' and '.join(repr(m) for m in missing)}")
    return given


def _check_nothing_routed(declarations: Sequence[Declaration]) -> None:
    """Without a receivers file, `serve` refuses SLOs that route incidents: say so now, not as a crash loop."""
    routed = sorted(
        d.name for d in declarations if d.spec.alerting.routing.deployment or d.spec.alerting.routing.background
    )
    if routed:
        raise pulumi.RunError(f"SloEvaluator: {', '.join(routed)} route incidents to receivers: pass 'receivers'")


def whole_number(what: str, value: Any) -> int:
    """An integer setting as sent by any language (a double with no fraction is fine); RunError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise pulumi.RunError(f"{what} must be a whole number, not {value!r}")
    return int(value)


PEER_KEYS = {"namespace_selector": "namespaceSelector", "pod_selector": "podSelector", "ip_block": "ipBlock"}


def kubernetes_peer(peer: Mapping[str, Any]) -> dict[str, Any]:
    """A NetworkPolicy peer as Kubernetes spells it, from the schema's (or Kubernetes') spelling."""
    return {PEER_KEYS.get(key, key): value for key, value in peer.items()}


def storage_settings(value: Mapping[str, Any] | None) -> StorageSettings:
    """`StorageSettings` from the `storage` argument (snake_case keys, as the dataclass), without the URL: a
    secret, rendered only into its Secret (`database_url`)."""
    given = {key: item for key, item in dict(value or {}).items() if key != "url"}
    if given.get("port") is not None:
        given["port"] = whole_number("SloEvaluator: storage: 'port'", given["port"])
    try:
        return StorageSettings(**given)
    except TypeError as error:
        raise pulumi.RunError(f"SloEvaluator: storage: {error}") from None


def database_url(value: Mapping[str, Any] | None, storage: StorageSettings) -> Any:
    """The `storage` argument's PostgreSQL URL (plain or an Output), checked against the mode; None without one.

    An Output is not read, so a plain URL's mistakes are caught here and an Output's when `serve` starts. No
    message holds the URL (it may hold a password)."""
    url = (value or {}).get("url")
    if url is not None and not isinstance(url, str | pulumi.Output):
        raise pulumi.RunError("SloEvaluator: storage url must be a string (a postgresql:// URL)")
    try:
        check_database_url(storage, url)
    except ValueError as error:
        raise pulumi.RunError(f"SloEvaluator: {error}") from None
    return url


def _require_plain_storage(value: Any) -> None:
    """The `storage` argument is plain but for its URL: it decides whether there is a volume, and which ports."""
    if value is None:
        return
    if isinstance(value, pulumi.Output):
        raise NotPlainError("SloEvaluator", "storage")
    if not isinstance(value, Mapping):
        raise pulumi.RunError("SloEvaluator: 'storage' must be a mapping ({mode: ..., ...})")
    require_plain("SloEvaluator: storage", value, passed_through=("url",))


def token_sets(value: Any) -> tuple[list[TokenSet], dict[str, Any]]:
    """The token sets' settings and their tokens files by set name, from the `token_sets` argument."""
    if value is None:
        return [], {}
    if isinstance(value, pulumi.Output) or not isinstance(value, Mapping):
        raise pulumi.RunError(
            "SloEvaluator: 'token_sets' must be a plain mapping of set name to {tokens, services, teams}"
        )
    sets: list[TokenSet] = []
    files: dict[str, Any] = {}
    for name, given in value.items():
        if not isinstance(given, Mapping) or given.get("tokens") is None:
            raise pulumi.RunError(f"SloEvaluator: token set {name!r} needs 'tokens' (the tokens file's content)")
        unknown = sorted(set(given) - {"tokens", "services", "teams"})
        if unknown:
            raise pulumi.RunError(f"SloEvaluator: token set {name!r}: unknown {', '.join(map(repr, unknown))}")
        try:
            sets.append(TokenSet(name, tuple(given.get("services") or ()), tuple(given.get("teams") or ())))
        except (TypeError, ValueError) as error:
            raise pulumi.RunError(f"SloEvaluator: {error}") from None
        files[name] = given["tokens"]
    return sets, files


def evaluator_settings(args: Mapping[str, Any]) -> EvaluatorSettings:
    """The renderer's settings from component args; the renderer's defaults where none is given."""
    given: dict[str, Any] = {key: args[key] for key in SETTING_ARGS if args.get(key) is not None}
    given["token_sets"], _ = token_sets(args.get("token_sets"))
    given["keyed_chain"] = args.get("chain_key") is not None
    if "ingress_from" in given:
        given["ingress_from"] = [kubernetes_peer(peer) for peer in given["ingress_from"]]
    for key in WHOLE_NUMBER_ARGS:
        if key in given:
            given[key] = whole_number(f"SloEvaluator: '{key}'", given[key])
    try:
        return EvaluatorSettings(
            name=str(args.get("name") or DEFAULT_NAME),
            namespace=str(args.get("namespace") or DEFAULT_NAMESPACE),
            image=str(args.get("image")),
            prometheus_url=str(args.get("prometheus_url")),
            storage=storage_settings(args.get("storage")),
            **given,
        )
    except ValueError as error:
        raise pulumi.RunError(f"SloEvaluator: {error}") from None


class SloEvaluator(pulumi.ComponentResource):
    """The evaluator's Deployment and everything it needs, as children of one component."""

    url: pulumi.Output[str]
    """`http://<name>.<namespace>.svc.cluster.local`, for gates and Argo Rollouts."""

    def __init__(self, name: str, args: SloEvaluatorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Everything is checked before anything is registered, so bad input leaves nothing behind."""
        require_plain(
            "SloEvaluator",
            {key: value for key, value in args.items() if key not in ("token_sets", "storage")},
            passed_through=("tokens", "receivers", "datadog_api_key", "datadog_app_key", "chain_key"),
        )
        _require_plain_storage(args.get("storage"))
        sets_given = args.get("token_sets")
        for set_name, given in sets_given.items() if isinstance(sets_given, Mapping) else ():
            if isinstance(given, Mapping):  # all plain but each set's tokens
                require_plain(f"SloEvaluator: token set {set_name!r}", given, passed_through=("tokens",))
        for key in ("image", "prometheus_url", "tokens", "declarations"):
            if args.get(key) is None:
                raise pulumi.RunError(f"SloEvaluator: '{key}' is required")
        chain_key = args.get("chain_key")
        if isinstance(chain_key, str) and not chain_key.strip():  # serve reads an empty key as none: unkeyed
            raise pulumi.RunError("SloEvaluator: 'chain_key' is empty, so the chain would not be keyed")
        settings = evaluator_settings(args)
        url = database_url(args.get("storage"), settings.storage)
        declarations = resolve_declarations(args["declarations"])
        try:
            configs = render.config_map(settings, declarations)
        except ValueError as error:
            raise pulumi.RunError(f"SloEvaluator: {error}") from None
        receivers = args.get("receivers")
        if receivers is None:
            _check_nothing_routed(declarations)
        secret_values = {
            TOKENS_FILE: args["tokens"],
            RECEIVERS_FILE: EMPTY_RECEIVERS if receivers is None else receivers,
        }
        keys = datadog_keys(args, settings)
        _, token_files = token_sets(args.get("token_sets"))
        super().__init__(TOKEN, name, None, opts)
        self.settings = settings
        child = pulumi.ResourceOptions(parent=self)
        secrets = {"secrets": render.secret(settings, secret_values)}  # by resource name suffix
        for token_set, rendered in zip(
            settings.token_sets, render.token_set_secrets(settings, token_files), strict=True
        ):
            secrets[f"tokens-{token_set.name}"] = rendered
        if keys is not None:
            secrets["datadog"] = render.datadog_secret(settings, keys)
        if url is not None:
            secrets["database"] = render.database_secret(settings, url)
        if chain_key is not None:
            secrets["chain-key"] = render.chain_key_secret(settings, chain_key)
        self.children = self._register(name, settings, configs, secrets, child, url=url)
        self.url = self.children["service"].id.apply(lambda _: service_url(settings))
        self.register_outputs({"url": self.url})

    @staticmethod
    def _register(
        name: str,
        settings: EvaluatorSettings,
        configs: dict[str, Any],
        secrets: dict[str, dict[str, Any]],
        child: pulumi.ResourceOptions,
        *,
        url: Any,
    ) -> dict[str, pulumi.CustomResource]:
        """Register the rendered objects; the Deployment waits for what its pods mount or read (`url`: the
        database's, plain or an Output, only for the NetworkPolicy's port)."""
        account = render.service_account(settings)
        mounted: dict[str, pulumi.CustomResource] = {
            "service_account": ServiceAccount(
                f"{name}-service-account",
                metadata=account["metadata"],
                automount_service_account_token=account["automountServiceAccountToken"],
                opts=child,
            ),
            "config_map": ConfigMap(f"{name}-slos", metadata=configs["metadata"], data=configs["data"], opts=child),
            **{
                SECRET_CHILDREN.get(suffix, suffix.replace("-", "_")): Secret(
                    f"{name}-{suffix}",
                    metadata=secret["metadata"],
                    type=secret["type"],
                    string_data=pulumi.Output.secret(secret["stringData"]),
                    opts=child,
                )
                for suffix, secret in secrets.items()
            },
        }
        if settings.storage.has_volume:
            claim = render.persistent_volume_claim(settings)
            mounted["claim"] = PersistentVolumeClaim(
                f"{name}-state", metadata=claim["metadata"], spec=claim["spec"], opts=child
            )
        after = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(mounted.values())))
        deployment = render.deployment(settings, configs["data"])
        service = render.service(settings)
        budget = render.pod_disruption_budget(settings)
        policy = render.network_policy(settings, url)
        access = {
            f"argocd_{obj['kind'].lower()}": _rbac(f"{name}-argocd-{obj['kind'].lower()}", obj, child)
            for obj in render.argocd_access(settings)
        }
        return {
            **mounted,
            **access,
            "deployment": Deployment(
                f"{name}-deployment", metadata=deployment["metadata"], spec=deployment["spec"], opts=after
            ),
            "service": Service(f"{name}-service", metadata=service["metadata"], spec=service["spec"], opts=child),
            "pdb": PodDisruptionBudget(f"{name}-pdb", metadata=budget["metadata"], spec=budget["spec"], opts=child),
            "network_policy": NetworkPolicy(
                f"{name}-network-policy", metadata=policy["metadata"], spec=policy["spec"], opts=child
            ),
        }


def evaluator_for(
    name: str,
    args: Mapping[str, Any],
    declarations: Sequence[Declaration],
    parent: pulumi.Resource,
    default_name: str = DEFAULT_NAME,
) -> SloEvaluator | None:
    """The `evaluator` argument of ServiceLevelObjective and SloFleet, as a child; None without it.

    The evaluator lands in the parent's namespace unless its settings name another one.
    """
    settings = args.get("evaluator")
    if settings is None:
        return None
    if isinstance(settings, pulumi.Output):
        raise pulumi.RunError("evaluator must be a plain mapping, not an Output")
    defaults = {"name": default_name, "namespace": args.get("namespace") or DEFAULT_NAMESPACE}
    evaluator_args = cast(SloEvaluatorArgs, {**defaults, **dict(settings), "declarations": list(declarations)})
    return SloEvaluator(f"{name}-evaluator", evaluator_args, pulumi.ResourceOptions(parent=parent))


def _rbac(name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """The Role or RoleBinding that lets the evaluator keep its Argo CD deny window."""
    if obj["kind"] == "Role":
        return Role(name, metadata=obj["metadata"], rules=obj["rules"], opts=opts)
    return RoleBinding(name, metadata=obj["metadata"], role_ref=obj["roleRef"], subjects=obj["subjects"], opts=opts)
