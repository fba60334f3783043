"""`SloEvaluator` under the SDK's mocks: what it registers, what is secret, and who its parent is."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pulumi
import pytest
from pulumi.runtime import rpc

from sloplane.components import ServiceLevelObjective, SloFleet
from sloplane.components.evaluator import SloEvaluator, SloEvaluatorArgs, whole_number
from sloplane.interop import load_declarations
from sloplane.render.evaluator import config_map
from sloplane.render.evaluator_settings import EvaluatorSettings
from tests.conftest import EXAMPLES
from tests.kube import KUBERNETES_VERSION
from tests.pulumi_mocks import Recorder, datadog_provider

EVALUATOR = "sloplane:index:SloEvaluator"
TOKEN = "tok_8fQz-secret-gate-token"
ROUTING_KEY = "R0UT1NG-secret-key"
RECEIVERS = (
    f"receivers:\n  oncall:\n    pagerduty: {{routingKey: {ROUTING_KEY}}}\n"
    "defaults: {deployment: oncall, background: oncall}\n"
)
CHILD_TYPES = {
    "kubernetes:core/v1:ServiceAccount": "service-account",
    "kubernetes:core/v1:ConfigMap": "slos",
    "kubernetes:core/v1:Secret": "secrets",
    "kubernetes:core/v1:PersistentVolumeClaim": "state",
    "kubernetes:apps/v1:Deployment": "deployment",
    "kubernetes:core/v1:Service": "service",
    "kubernetes:policy/v1:PodDisruptionBudget": "pdb",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": "network-policy",
}


def evaluator_settings(**overrides: Any) -> dict[str, Any]:
    return {
        "image": "ghcr.io/example/sloplane:0.1.0",
        "prometheus_url": "http://prometheus-operated.monitoring.svc:9090",
        "tokens": TOKEN,
        "receivers": RECEIVERS,
        **overrides,
    }


def evaluator_args(**overrides: Any) -> SloEvaluatorArgs:
    args: Any = {"declarations": [str(EXAMPLES)], "namespace": "observability", **evaluator_settings(**overrides)}
    return args


def unwrap_secret(value: Any) -> Any:
    """The value inside the SDK's secret sentinel; fails when the value was not marked secret."""
    assert isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig, value
    return value["value"]


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def everything(component: SloEvaluator) -> pulumi.Output[list[Any]]:
    """The component's URN, its url, and every child's URN: resolved once all are registered."""
    children = [child.urn for child in component.children.values()]
    return pulumi.Output.all(component.urn, component.url, *children)


@pulumi.runtime.test
def test_registers_every_object_with_explicit_names_as_children(mocks: Recorder) -> Any:
    component = SloEvaluator("gates", evaluator_args())

    def check(values: list[Any]) -> None:
        urn, url, *child_urns = values
        assert url == "http://sloplane-evaluator.observability.svc.cluster.local"
        assert "sloplane:index:SloEvaluator::gates" in urn
        registered = {(t, n) for t, n, _ in mocks.registered if t != EVALUATOR}
        assert registered == {(t, f"gates-{suffix}") for t, suffix in CHILD_TYPES.items()}
        for child in child_urns:
            assert "sloplane:index:SloEvaluator$kubernetes:" in child, f"{child} is not a child of the component"
        for typ, _, inputs in mocks.registered:
            if typ != EVALUATOR:
                assert inputs["metadata"]["namespace"] == "observability"
                assert inputs["metadata"]["name"].startswith("sloplane-evaluator")

    return everything(component).apply(check)


@pulumi.runtime.test
def test_secret_files_are_secret_and_nothing_else_is(mocks: Recorder) -> Any:
    # An Output that is not itself secret (a stack reference, a file read): it must still end up secret.
    component = SloEvaluator("gates", evaluator_args(tokens=pulumi.Output.from_input(TOKEN)))

    def check(_: Any) -> None:
        (secret,) = mocks.of_type("kubernetes:core/v1:Secret").values()
        assert unwrap_secret(secret["stringData"]) == {"tokens.yaml": TOKEN, "receivers.yaml": RECEIVERS}
        (configs,) = mocks.of_type("kubernetes:core/v1:ConfigMap").values()
        assert not is_secret(configs["data"]), "declarations are not secret; hiding them would hide diffs"
        declarations = load_declarations([EXAMPLES])
        settings = EvaluatorSettings("sloplane-evaluator", "observability", "img", "http://p:9090")
        assert configs["data"] == config_map(settings, declarations)["data"]
        for typ, name, inputs in mocks.registered:
            if typ != "kubernetes:core/v1:Secret":
                text = json.dumps(inputs)
                assert TOKEN not in text and ROUTING_KEY not in text, f"a secret leaked into {name}"

    return everything(component).apply(check)


def _plain(value: Any) -> Any:
    """Inputs as the engine would send them to Kubernetes: secret sentinels opened."""
    if is_secret(value):
        return _plain(value["value"])
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@pytest.mark.parametrize("mode", ["volume", "s3"])
@pulumi.runtime.test
def test_every_registered_object_is_valid_kubernetes(mocks: Recorder, mode: str) -> Any:
    storage = {"mode": mode, "s3_url": "s3://decisions/prod"} if mode == "s3" else {"mode": mode}
    component = SloEvaluator("gates", evaluator_args(storage=storage))

    def check(_: Any) -> None:
        objects = [_plain(inputs) for typ, _, inputs in mocks.registered if typ != EVALUATOR]
        assert {(obj["apiVersion"], obj["kind"]) for obj in objects} == {
            ("v1", "ServiceAccount"),
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "PersistentVolumeClaim"),
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("policy/v1", "PodDisruptionBudget"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
        }
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{obj['kind']}: {error.message} at {list(error.path)}")

    return everything(component).apply(check)


@pulumi.runtime.test
def test_deployment_carries_the_rendered_pod(mocks: Recorder) -> Any:
    storage = {"mode": "s3", "s3_url": "s3://decisions/prod", "region": "eu-west-1"}
    component = SloEvaluator("gates", evaluator_args(storage=storage, replicas=3))

    def check(_: Any) -> None:
        (deployment,) = mocks.of_type("kubernetes:apps/v1:Deployment").values()
        assert deployment["spec"]["replicas"] == 3
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"][-4:] == ["--export-s3", "s3://decisions/prod", "--export-interval", "5m"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        (account,) = mocks.of_type("kubernetes:core/v1:ServiceAccount").values()
        assert account["automountServiceAccountToken"] is False

    return everything(component).apply(check)


@pulumi.runtime.test
def test_fleet_with_an_evaluator_serves_every_declaration(mocks: Recorder) -> Any:
    fleet = SloFleet(
        "slos",
        {
            "path": str(EXAMPLES),
            "namespace": "observability",
            "evaluator": evaluator_settings(),  # type: ignore[typeddict-item]
            "datadog_provider": datadog_provider(),
        },
    )

    def check(_: Any) -> None:
        assert [name for t, name, _ in mocks.registered if t == EVALUATOR] == ["slos-evaluator"]
        (configs,) = [i for t, n, i in mocks.registered if t == "kubernetes:core/v1:ConfigMap" and n.endswith("-slos")]
        assert sorted(configs["data"]) == sorted(f"{d.name}.yaml" for d in load_declarations([EXAMPLES]))
        assert configs["metadata"]["namespace"] == "observability", "the fleet's namespace is inherited"

    assert fleet.evaluator is not None
    assert all(slo.evaluator is None for slo in fleet.slos.values()), "one evaluator for the fleet, not one per SLO"
    return pulumi.Output.all(fleet.urn, everything(fleet.evaluator)).apply(check)


@pulumi.runtime.test
def test_slo_with_an_evaluator_gets_its_own(mocks: Recorder) -> Any:
    slo = ServiceLevelObjective(
        "search",
        {"declaration": str(EXAMPLES / "search-latency.yaml"), "evaluator": evaluator_settings()},  # type: ignore[typeddict-item]
    )

    def check(values: list[Any]) -> None:
        urn = values[0]
        assert "sloplane:index:ServiceLevelObjective$sloplane:index:SloEvaluator::search-evaluator" in urn
        (deployment,) = mocks.of_type("kubernetes:apps/v1:Deployment").values()
        assert deployment["metadata"]["name"] == "sloplane-evaluator-search-latency"
        (configs,) = [i for t, n, i in mocks.registered if t == "kubernetes:core/v1:ConfigMap" and n.endswith("-slos")]
        assert list(configs["data"]) == ["search-latency.yaml"]

    assert slo.evaluator is not None
    return everything(slo.evaluator).apply(check)


@pulumi.runtime.test
def test_without_the_evaluator_argument_nothing_is_deployed(mocks: Recorder) -> Any:
    fleet = SloFleet("slos", {"path": str(EXAMPLES), "datadog_provider": datadog_provider()})
    slo = ServiceLevelObjective("search", {"declaration": str(EXAMPLES / "search-latency.yaml")})

    def check(_: Any) -> None:
        types = {t for t, _, _ in mocks.registered}
        assert "sloplane:index:SloFleet" in types
        assert EVALUATOR not in types and "kubernetes:apps/v1:Deployment" not in types

    assert fleet.evaluator is None and slo.evaluator is None
    return pulumi.Output.all(fleet.urn, slo.urn, fleet.overview.urn).apply(check)


@pulumi.runtime.test
def test_bad_settings_fail_with_a_message_before_anything_is_registered(mocks: Recorder) -> None:
    no_receivers: Any = {key: value for key, value in evaluator_args().items() if key != "receivers"}
    with pytest.raises(pulumi.RunError, match=r"checkout-availability.* route incidents to receivers"):
        SloEvaluator("gates", no_receivers)
    with pytest.raises(pulumi.RunError, match=r"'replicas' must be a plain value"):
        SloEvaluator("gates", evaluator_args(replicas=pulumi.Output.from_input(3)))
    with pytest.raises(pulumi.RunError, match=r"storage: .*unexpected keyword argument 'bucket'"):
        SloEvaluator("gates", evaluator_args(storage={"mode": "s3", "bucket": "decisions"}))
    with pytest.raises(pulumi.RunError, match=r"at least 2 replicas"):
        SloEvaluator("gates", evaluator_args(replicas=1))
    twice = str(EXAMPLES / "search-latency.yaml")
    with pytest.raises(pulumi.RunError, match=r"two declarations are named 'search-latency'"):
        SloEvaluator("gates", evaluator_args(declarations=[twice, twice]))
    assert mocks.registered == []


@pulumi.runtime.test
def test_an_argocd_project_adds_its_role_and_binding(mocks: Recorder) -> Any:
    component = SloEvaluator("gates", evaluator_args(argocd_project="shop"))

    def check(_: Any) -> None:
        (role,) = mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role").values()
        assert role["rules"][0]["resourceNames"] == ["shop"] and role["metadata"]["namespace"] == "argocd"
        (binding,) = mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding").values()
        assert binding["subjects"][0]["namespace"] == "observability"
        for typ in (
            "kubernetes:rbac.authorization.k8s.io/v1:Role",
            "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
        ):
            kubernetes_validate.validate(
                _plain(mocks.of_type(typ)["gates-argocd-" + typ.rsplit(":", 1)[1].lower()]),
                KUBERNETES_VERSION,
                strict=True,
            )

    return everything(component).apply(check)


DD_API_KEY = "dd-api-0123456789abcdef"
DD_APP_KEY = "dd-app-fedcba9876543210"


@pulumi.runtime.test
def test_datadog_keys_are_secret_in_their_own_secret_and_serve_reads_them_from_the_environment(
    mocks: Recorder,
) -> Any:
    # Plain strings and a non-secret Output: both must end up secret.
    datadog = {
        "datadog_url": "https://api.datadoghq.eu",
        "datadog_api_key": DD_API_KEY,
        "datadog_app_key": pulumi.Output.from_input(DD_APP_KEY),
    }
    component = SloEvaluator("gates", evaluator_args(**datadog))

    def check(_: Any) -> None:
        secrets = mocks.of_type("kubernetes:core/v1:Secret")
        assert set(secrets) == {"gates-secrets", "gates-datadog"}
        stored = unwrap_secret(secrets["gates-datadog"]["stringData"])
        assert stored == {"api-key": DD_API_KEY, "app-key": DD_APP_KEY}
        assert secrets["gates-datadog"]["metadata"]["name"] == "sloplane-evaluator-datadog"
        (deployment,) = mocks.of_type("kubernetes:apps/v1:Deployment").values()
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"][container["args"].index("--datadog") + 1] == "https://api.datadoghq.eu"
        env = {item["name"]: item.get("valueFrom") for item in container["env"]}
        assert env["DD_API_KEY"] == {"secretKeyRef": {"name": "sloplane-evaluator-datadog", "key": "api-key"}}
        assert env["DD_APP_KEY"] == {"secretKeyRef": {"name": "sloplane-evaluator-datadog", "key": "app-key"}}
        for _, name, inputs in mocks.registered:
            if name != "gates-datadog":
                text = json.dumps(inputs)
                assert DD_API_KEY not in text and DD_APP_KEY not in text, f"a Datadog key leaked into {name}"
        kubernetes_validate.validate(_plain(secrets["gates-datadog"]), KUBERNETES_VERSION, strict=True)

    assert "datadog_secret" in component.children
    return everything(component).apply(check)


@pulumi.runtime.test
def test_datadog_settings_come_whole_or_not_at_all(mocks: Recorder) -> None:
    with pytest.raises(pulumi.RunError, match=r"'datadog_url' needs 'datadog_app_key'"):
        SloEvaluator("gates", evaluator_args(datadog_url="datadoghq.com", datadog_api_key=DD_API_KEY))
    with pytest.raises(pulumi.RunError, match=r"Datadog keys without 'datadog_url'"):
        SloEvaluator("gates", evaluator_args(datadog_api_key=DD_API_KEY, datadog_app_key=DD_APP_KEY))
    with pytest.raises(pulumi.RunError, match=r"'datadog_url' \(datadogUrl\) must be a plain value"):
        SloEvaluator("gates", evaluator_args(datadog_url=pulumi.Output.from_input("datadoghq.com")))
    assert mocks.registered == []


@pulumi.runtime.test
def test_whole_numbers_may_arrive_as_doubles_and_fractions_are_refused(mocks: Recorder) -> Any:
    """Every language but Python sends numbers as doubles: 3.0 replicas is 3, 2.5 is an error."""
    with pytest.raises(pulumi.RunError, match=r"'replicas' must be a whole number, not 2.5"):
        SloEvaluator("half", evaluator_args(replicas=2.5))
    evaluator = SloEvaluator("three", evaluator_args(replicas=3.0))

    def check(_: Any) -> None:
        (deployment,) = mocks.of_type("kubernetes:apps/v1:Deployment").values()
        assert deployment["spec"]["replicas"] == 3  # (the wire carries every number as a double)
        assert type(whole_number("replicas", 3.0)) is int

    return everything(evaluator).apply(check)


DB_PASSWORD = "pg-s3cret-Pa55word"
DATABASE_URL = f"postgresql://evaluator:{DB_PASSWORD}@db.internal:6432/sloplane?sslmode=verify-full"
CHAIN_KEY = "chain-key-0123456789abcdef"
POSTGRES_CHILDREN = {
    "kubernetes:core/v1:ServiceAccount": {"gates-service-account"},
    "kubernetes:core/v1:ConfigMap": {"gates-slos"},
    "kubernetes:core/v1:Secret": {"gates-secrets", "gates-database", "gates-chain-key"},
    "kubernetes:apps/v1:Deployment": {"gates-deployment"},
    "kubernetes:core/v1:Service": {"gates-service"},
    "kubernetes:policy/v1:PodDisruptionBudget": {"gates-pdb"},
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": {"gates-network-policy"},
}


def egress_ports(mocks: Recorder) -> set[int]:
    (policy,) = mocks.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy").values()
    return {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}


@pulumi.runtime.test
def test_postgres_mode_registers_the_url_as_a_secret_and_no_volume(mocks: Recorder) -> Any:
    # Plain values: both must still end up secret, and in nothing but their Secrets.
    component = SloEvaluator(
        "gates", evaluator_args(storage={"mode": "postgres", "url": DATABASE_URL}, chain_key=CHAIN_KEY)
    )

    def check(_: Any) -> None:
        registered: dict[str, set[str]] = {}
        for typ, name, _ in mocks.registered:
            if typ != EVALUATOR:
                registered.setdefault(typ, set()).add(name)
        assert registered == POSTGRES_CHILDREN, "no PersistentVolumeClaim in postgres mode"
        secrets = mocks.of_type("kubernetes:core/v1:Secret")
        assert unwrap_secret(secrets["gates-database"]["stringData"]) == {"url": DATABASE_URL}
        assert unwrap_secret(secrets["gates-chain-key"]["stringData"]) == {"chain-key": CHAIN_KEY}
        assert secrets["gates-database"]["metadata"]["name"] == "sloplane-evaluator-database"
        (deployment,) = mocks.of_type("kubernetes:apps/v1:Deployment").values()
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item.get("valueFrom") for item in container["env"]}
        assert env["SLOPLANE_DB"] == {"secretKeyRef": {"name": "sloplane-evaluator-database", "key": "url"}}
        assert env["SLOPLANE_CHAIN_KEY"] == {
            "secretKeyRef": {"name": "sloplane-evaluator-chain-key", "key": "chain-key"}
        }
        assert "--db" not in container["args"] and "--controls" not in container["args"]
        assert deployment["spec"]["replicas"] == 2
        assert 6432 in egress_ports(mocks), "the URL's port"
        for typ, name, inputs in mocks.registered:
            text = json.dumps(inputs)
            if name != "gates-database":
                assert DB_PASSWORD not in text and "db.internal" not in text, f"the database URL leaked into {name}"
            if name != "gates-chain-key":
                assert CHAIN_KEY not in text, f"the chain key leaked into {name}"
            if typ != EVALUATOR:
                kubernetes_validate.validate(_plain(inputs), KUBERNETES_VERSION, strict=True)

    assert {"database_secret", "chain_key_secret"} <= set(component.children)
    assert "claim" not in component.children
    return everything(component).apply(check)


@pulumi.runtime.test
def test_a_url_given_as_an_output_is_secret_and_egress_takes_the_port_setting_or_5432(mocks: Recorder) -> Any:
    """An Output (a secret, a stack reference) cannot be read when the objects are rendered: its port cannot be
    known, so `port` says it (a whole number, as other languages send doubles), else 5432 is opened."""
    opened = SloEvaluator(
        "opened",
        evaluator_args(name="opened", storage={"mode": "postgres", "url": pulumi.Output.from_input(DATABASE_URL)}),
    )
    told = SloEvaluator(
        "told",
        evaluator_args(
            name="told", storage={"mode": "postgres", "url": pulumi.Output.secret(DATABASE_URL), "port": 6543.0}
        ),
    )

    def check(_: Any) -> None:
        policies = mocks.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        ports = {
            name: {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
            for name, policy in policies.items()
        }
        assert ports["opened-network-policy"] == {53, 443, 9090, 5432}
        assert ports["told-network-policy"] == {53, 443, 9090, 6543}
        secrets = mocks.of_type("kubernetes:core/v1:Secret")
        for name in ("opened-database", "told-database"):
            assert unwrap_secret(secrets[name]["stringData"]) == {"url": DATABASE_URL}
        for _, name, inputs in mocks.registered:
            if not name.endswith("-database"):
                assert DB_PASSWORD not in json.dumps(inputs), f"the database URL leaked into {name}"
        assert not mocks.of_type("kubernetes:core/v1:PersistentVolumeClaim")

    return pulumi.Output.all(everything(opened), everything(told)).apply(check)


@pulumi.runtime.test
def test_a_chain_key_in_volume_mode_keeps_the_volume_and_adds_its_secret(mocks: Recorder) -> Any:
    with pytest.raises(pulumi.RunError, match=r"'chain_key' is empty, so the chain would not be keyed"):
        SloEvaluator("empty", evaluator_args(chain_key=" "))  # `serve` would read it as no key at all
    assert mocks.registered == []
    component = SloEvaluator("gates", evaluator_args(chain_key=pulumi.Output.from_input(CHAIN_KEY)))

    def check(_: Any) -> None:
        secrets = mocks.of_type("kubernetes:core/v1:Secret")
        assert set(secrets) == {"gates-secrets", "gates-chain-key"}
        assert unwrap_secret(secrets["gates-chain-key"]["stringData"]) == {"chain-key": CHAIN_KEY}
        assert set(mocks.of_type("kubernetes:core/v1:PersistentVolumeClaim")) == {"gates-state"}
        (deployment,) = mocks.of_type("kubernetes:apps/v1:Deployment").values()
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {item["name"] for item in container["env"]}
        assert "SLOPLANE_CHAIN_KEY" in env and "SLOPLANE_DB" not in env
        assert 5432 not in egress_ports(mocks)

    return everything(component).apply(check)


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"mode": "postgres"}, r"SloEvaluator: storage mode 'postgres' needs url"),
        ({"mode": "volume", "url": DATABASE_URL}, r"storage url is the PostgreSQL URL of storage mode 'postgres'"),
        (
            {"mode": "postgres", "url": f"mysql://evaluator:{DB_PASSWORD}@db/sloplane"},
            r"storage url is not a PostgreSQL URL .*its value is not shown",
        ),
        (
            {"mode": "postgres", "url": DATABASE_URL, "s3_url": "s3://decisions/prod"},
            r"storage mode 'postgres' keeps everything in the database.*remove 's3_url'",
        ),
        ({"mode": "postgres", "url": DATABASE_URL, "size": "5Gi"}, r"remove 'size'"),
        ({"mode": "postgres", "url": DATABASE_URL, "port": 5432.5}, r"storage: 'port' must be a whole number"),
        ({"mode": "postgres", "url": 5432}, r"storage url must be a string"),
        (
            {"mode": "postgres", "url": DATABASE_URL, "port": pulumi.Output.from_input(5432)},
            r"SloEvaluator: storage: 'port' must be a plain value",
        ),
    ],
    ids=["no-url", "url-in-volume", "scheme", "s3-field", "volume-field", "fraction", "not-text", "port-output"],
)
@pulumi.runtime.test
def test_postgres_settings_that_cannot_work_fail_before_anything_is_registered(
    mocks: Recorder, storage: dict[str, Any], message: str
) -> None:
    with pytest.raises(pulumi.RunError, match=message) as refused:
        SloEvaluator("gates", evaluator_args(storage=storage))
    assert DB_PASSWORD not in str(refused.value), "a message must never show the URL's password"
    assert mocks.registered == []
