"""Limited tokens as stored and handed out, and token sets: several files, confined, one Secret each.

- the tokens file's `services`/`teams` (read, refused with the file's line, written only when given);
- `sloplane token create --service --team`;
- `serve --tokens` repeated or a folder, `--limited-tokens LIMITS=FILE` confining a file's tokens;
- `SloEvaluator`'s `token_sets`, rendered (one Secret and one volume per set, valid Kubernetes) and
  under Pulumi's mocks (each set's file secret, nowhere else);
- the rendered container arguments run by the real `sloplane serve`: a set's token is confined.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pulumi
import pytest

from sloplane.components.evaluator import SloEvaluator
from sloplane.evaluator.http.auth import Scope, TokenEntry, TokenFileError, TokenStore, new_token
from sloplane.evaluator.http.token_sets import SetLimits, read_token_files
from sloplane.interop import load_declarations
from sloplane.render import evaluator as render
from sloplane.render.evaluator_settings import EvaluatorSettings, TokenSet
from tests.conftest import EXAMPLES, minimal, run_cli
from tests.kube import KUBERNETES_VERSION
from tests.pulumi_mocks import Recorder
from tests.servers import wait_until_up
from tests.test_component_evaluator import EVALUATOR, evaluator_args, everything, is_secret, unwrap_secret

DIGEST = "a" * 64
OTHER = "b" * 64


def _write(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"tokens": entries}))
    path.chmod(0o600)
    return path


def _entry(name: str, digest: str = DIGEST, **limits: list[str]) -> dict[str, Any]:
    return {"name": name, "sha256": digest, "scopes": ["gate"], **limits}


# -- the tokens file ------------------------------------------------------------------------------


def test_limits_are_read_and_written_only_when_given(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "tokens.json", [_entry("ci", services=["checkout"], teams=["payments"]), _entry("old", OTHER)]
    )
    limited, unrestricted = TokenStore.from_file(path).entries
    assert (limited.services, limited.teams) == (frozenset({"checkout"}), frozenset({"payments"}))
    assert (unrestricted.services, unrestricted.teams) == (frozenset(), frozenset())
    assert "services" not in unrestricted.to_dict() and "teams" not in unrestricted.to_dict(), (
        "old files stay as they were"
    )
    assert limited.to_dict()["services"] == ["checkout"]


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ("services: []", r"tokens.yaml:5:\d+: tokens\[0\]: `services` must be a non-empty list of names"),
        ("teams: payments", r"tokens\[0\]: `teams` must be a non-empty list of names, e.g. \[payments\]"),
        ("services: [Checkout]", r"`services`: service names are RFC 1123 names .* not 'Checkout'"),
        ("teams: [1]", r"`teams`: team names are RFC 1123 names .* not 1"),
        ("team: [payments]", r"unknown key 'team' \(expected name, sha256, scopes, services, teams\)"),
    ],
)
def test_a_bad_limit_is_refused_with_its_line(tmp_path: Path, limits: str, message: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - name: ci\n    sha256: {DIGEST}\n    scopes: [gate]\n    {limits}\n")
    path.chmod(0o600)
    with pytest.raises(TokenFileError, match=message):
        TokenStore.from_file(path)


def test_new_tokens_carry_their_limits_into_the_principal() -> None:
    token, entry = new_token("ci-payments", ["gate"], services=["checkout"], teams=["payments"])
    principal = TokenStore([entry]).verify(token)
    assert principal is not None and principal.limited
    assert principal.limits_text() == "services checkout and teams payments"
    with pytest.raises(ValueError, match="not 'Payments'"):
        new_token("ci", ["gate"], teams=["Payments"])
    _, unrestricted = new_token("ci", ["gate"])
    assert TokenStore([unrestricted]).entries[0].to_dict().keys() == {"name", "sha256", "scopes"}


def test_token_create_takes_services_and_teams() -> None:
    result = run_cli("token", "create", "ci-payments", "--scope", "gate", "--service", "checkout", "--team", "payments")
    assert result.code == 0, result.stderr
    token = result.stdout.strip()
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["services"] == ["checkout"] and entry["teams"] == ["payments"] and entry["scopes"] == ["gate"]
    assert TokenStore.from_document({"tokens": [entry]}).verify(token) is not None
    refused = run_cli("token", "create", "ci", "--scope", "gate", "--team", "Payments Team")
    assert refused.code == 2 and "RFC 1123" in refused.stderr and "Traceback" not in refused.stderr


# -- several files ----------------------------------------------------------------------------------


def test_several_files_and_a_folder_are_one_store(tmp_path: Path) -> None:
    folder = tmp_path / "sets"
    folder.mkdir()
    _write(folder / "payments.yaml", [_entry("payments")])
    _write(folder / "search.json", [_entry("search", OTHER)])
    (folder / "README.md").write_text("not tokens")
    (folder / "..data").mkdir()  # the kubelet's hidden copy of a mounted Secret
    _write(folder / "..data" / "payments.yaml", [_entry("payments")])
    platform = _write(tmp_path / "platform.yaml", [_entry("admin", "c" * 64)])
    store = read_token_files([platform, folder])
    assert sorted(entry.name for entry in store.entries) == ["admin", "payments", "search"]


def test_a_name_or_digest_in_two_files_names_both(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.yaml", [_entry("ci")])
    second = _write(tmp_path / "b.yaml", [_entry("ci", OTHER), _entry("other")])
    with pytest.raises(TokenFileError) as raised:
        read_token_files([first, second])
    assert f"{second}: token name 'ci' is also in {first}" in str(raised.value)
    assert f"{second}: token 'other' has the same sha256 as 'ci' in {first}" in str(raised.value)


def test_files_without_any_token_or_a_folder_without_files_are_refused(tmp_path: Path) -> None:
    empty = _write(tmp_path / "empty.yaml", [])
    with pytest.raises(TokenFileError, match="no tokens: a server nobody can call"):
        read_token_files([empty])
    assert len(read_token_files([empty, _write(tmp_path / "one.yaml", [_entry("ci")])]).entries) == 1
    (tmp_path / "nothing").mkdir()
    with pytest.raises(TokenFileError, match="a folder without tokens files"):
        read_token_files([tmp_path / "nothing"])


def test_a_writable_file_is_refused_among_several(tmp_path: Path) -> None:
    loose = _write(tmp_path / "loose.yaml", [_entry("ci")])
    loose.chmod(0o666)
    with pytest.raises(TokenFileError, match="writable by others"):
        read_token_files([_write(tmp_path / "ok.yaml", [_entry("ok", OTHER)]), loose])


def test_a_limited_file_confines_its_tokens_and_refuses_wider_ones(tmp_path: Path) -> None:
    payments = SetLimits.parse("team:payments,service:checkout")
    path = _write(tmp_path / "payments.yaml", [_entry("plain"), _entry("narrow", OTHER, services=["checkout"])])
    plain, narrow = read_token_files([], limited=[(payments, path)]).entries
    assert (plain.services, plain.teams) == (frozenset({"checkout"}), frozenset({"payments"}))
    assert (narrow.services, narrow.teams) == (frozenset({"checkout"}), frozenset())
    wide = _write(tmp_path / "wide.yaml", [_entry("escape", teams=["payments", "search"])])
    with pytest.raises(TokenFileError, match=r"wide.yaml: token 'escape' reaches team 'search', outside this file's"):
        read_token_files([], limited=[(payments, wide)])


@pytest.mark.parametrize(
    ("text", "message"),
    [("payments", "is not team:NAME or service:NAME"), ("", "names no team"), ("team:Pay", "not 'Pay'")],
)
def test_set_limits_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SetLimits.parse(text)


def test_serve_refuses_a_malformed_limited_file_argument(tmp_path: Path) -> None:
    tokens = _write(tmp_path / "t.yaml", [_entry("ci")])
    (tmp_path / "slos.yaml").write_text(minimal())
    result = run_cli(
        "serve", tmp_path / "slos.yaml", "--prometheus", "http://127.0.0.1:9", "--limited-tokens", str(tokens)
    )
    assert result.code == 2 and "give LIMITS=FILE" in result.stderr and "Traceback" not in result.stderr
    wide = _write(tmp_path / "wide.yaml", [_entry("ci", teams=["search"])])
    args = ["--prometheus", "http://127.0.0.1:9", "--limited-tokens", f"team:payments={wide}"]
    result = run_cli("serve", tmp_path / "slos.yaml", *args)
    assert result.code == 1 and "outside this file's limits (teams payments)" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("serve", tmp_path / "slos.yaml", "--prometheus", "http://127.0.0.1:9")
    assert result.code == 2 and "give --tokens FILE" in result.stderr


# -- rendering --------------------------------------------------------------------------------------

PLATFORM = "tokens: [{name: admin, sha256: " + "c" * 64 + ", scopes: [admin]}]\n"
SETS = {"payments": "tokens: [{name: ci-payments, sha256: " + DIGEST + ", scopes: [gate]}]\n"}
SETS["search"] = "tokens: [{name: ci-search, sha256: " + OTHER + ", scopes: [gate]}]\n"
RECEIVERS = "receivers: {}\n"


def _settings() -> EvaluatorSettings:
    sets = (TokenSet("payments", teams=("payments",), services=("checkout",)), TokenSet("search"))
    return EvaluatorSettings("sloplane-evaluator", "observability", "img:1", "http://p:9090", token_sets=sets)


def test_each_token_set_is_a_secret_and_a_volume_of_its_own() -> None:
    declarations = load_declarations([EXAMPLES])
    objects = render.evaluator_objects(
        _settings(), declarations, {"tokens.yaml": PLATFORM, "receivers.yaml": RECEIVERS}, token_files=SETS
    )
    secrets = {obj["metadata"]["name"]: obj["stringData"] for obj in objects if obj["kind"] == "Secret"}
    assert secrets == {
        "sloplane-evaluator-secrets": {"tokens.yaml": PLATFORM, "receivers.yaml": RECEIVERS},
        "sloplane-evaluator-tokens-payments": {"tokens.yaml": SETS["payments"]},
        "sloplane-evaluator-tokens-search": {"tokens.yaml": SETS["search"]},
    }
    (deployment,) = [obj for obj in objects if obj["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["tokens-payments"]["secret"] == {
        "secretName": "sloplane-evaluator-tokens-payments",
        "defaultMode": 0o440,
    }
    (container,) = pod["containers"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts["/etc/sloplane/tokens/search"] == {
        "name": "tokens-search",
        "mountPath": "/etc/sloplane/tokens/search",
        "readOnly": True,
    }
    args = container["args"]
    assert args[args.index("--limited-tokens") + 1] == (
        "service:checkout,team:payments=/etc/sloplane/tokens/payments/tokens.yaml"
    )
    assert "/etc/sloplane/tokens/search/tokens.yaml" in args and "/etc/sloplane/secrets/tokens.yaml" in args
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        if obj["kind"] != "Secret":
            assert DIGEST not in json.dumps(obj), f"a set's tokens file leaked into the {obj['kind']}"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ((TokenSet("a"), TokenSet("a")), "token set 'a' is given twice"),
        (("a",), "token_sets holds TokenSet values"),
    ],
)
def test_token_sets_the_cluster_would_refuse_fail_early(sets: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EvaluatorSettings("e", "ns", "img", "http://p", token_sets=sets)


@pytest.mark.parametrize(
    ("name", "limits", "message"),
    [
        ("Payments", {}, "not a DNS label of at most 56"),
        ("x" * 57, {}, "not a DNS label"),
        ("payments", {"teams": "payments"}, "teams must be a list of RFC 1123 names"),
        ("payments", {"services": ("Checkout",)}, "services must be a list"),
    ],
)
def test_a_token_set_is_named_and_limited_as_kubernetes_and_declarations_need(
    name: str, limits: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TokenSet(name, **limits)


def test_the_files_given_must_be_the_sets_declared() -> None:
    with pytest.raises(ValueError, match=r"the token sets are \['payments', 'search'\], but tokens files were given"):
        render.token_set_secrets(_settings(), {"payments": "x"})


# -- the component ---------------------------------------------------------------------------------

SET_TOKEN = "tok_set_SECRET_payments_file_3e9c"


@pulumi.runtime.test
def test_the_component_renders_a_secret_per_set(mocks: Recorder) -> Any:
    given = {
        "payments": {"tokens": pulumi.Output.from_input(SET_TOKEN), "teams": ["payments"]},
        "search": {"tokens": "search-tokens-file", "services": ["search"]},
    }
    component = SloEvaluator("gates", evaluator_args(token_sets=given))

    def check(_: Any) -> None:
        secrets = mocks.of_type("kubernetes:core/v1:Secret")
        assert set(secrets) == {"gates-secrets", "gates-tokens-payments", "gates-tokens-search"}
        assert unwrap_secret(secrets["gates-tokens-payments"]["stringData"]) == {"tokens.yaml": SET_TOKEN}
        assert secrets["gates-tokens-search"]["metadata"]["name"] == "sloplane-evaluator-tokens-search"
        assert {"tokens_payments", "tokens_search"} <= set(component.children)
        for typ, name, inputs in mocks.registered:
            if typ not in ("kubernetes:core/v1:Secret", EVALUATOR):
                assert SET_TOKEN not in json.dumps(inputs), f"a set's tokens leaked into {name}"
                assert not is_secret(inputs.get("spec")), name
        (deployment,) = mocks.of_type("kubernetes:apps/v1:Deployment").values()
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "team:payments=/etc/sloplane/tokens/payments/tokens.yaml" in args
        assert "service:search=/etc/sloplane/tokens/search/tokens.yaml" in args

    return everything(component).apply(check)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (pulumi.Output.from_input({"a": {"tokens": "x"}}), "'token_sets' must be a plain mapping"),
        ({"a": {"teams": ["payments"]}}, "token set 'a' needs 'tokens'"),
        ({"a": {"tokens": "x", "team": ["payments"]}}, "token set 'a': unknown 'team'"),
        ({"A": {"tokens": "x"}}, "token set 'A' is not a DNS label"),
        (
            {"a": {"tokens": "x", "teams": pulumi.Output.from_input(["payments"])}},
            "token set 'a': 'teams' must be a plain value",
        ),
    ],
)
@pulumi.runtime.test
def test_bad_token_sets_are_refused_before_anything_is_registered(mocks: Recorder, sets: Any, message: str) -> None:
    with pytest.raises(pulumi.RunError, match=message):
        SloEvaluator("gates", evaluator_args(token_sets=sets))
    assert not mocks.registered


# -- the rendered arguments, run --------------------------------------------------------------------


def test_the_rendered_arguments_confine_a_sets_tokens_in_the_real_serve(tmp_path: Path) -> None:
    """`serve` run with the container's own token arguments, the pod's paths moved under `tmp_path`."""
    payments_token, payments = new_token("ci-payments", [Scope.GATE])
    admin_token, admin = new_token("admin", [Scope.ADMIN])
    files = {
        "/etc/sloplane/secrets/tokens.yaml": [admin],
        "/etc/sloplane/tokens/payments/tokens.yaml": [payments],
        "/etc/sloplane/tokens/search/tokens.yaml": [TokenEntry("ci-search", OTHER, frozenset({Scope.GATE}))],
    }
    for pod_path, entries in files.items():
        local = tmp_path / pod_path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        _write(local, [entry.to_dict() for entry in entries])
    rendered = render.container_args(_settings())
    chosen: list[str] = []
    for flag, value in itertools.pairwise(rendered):
        if flag == "--tokens":
            chosen += [flag, str(tmp_path / value.lstrip("/"))]
        elif flag == "--limited-tokens":
            limits, _, path = value.partition("=")
            chosen += [flag, f"{limits}={tmp_path / path.lstrip('/')}"]
    assert chosen.count("--tokens") == 2 and chosen.count("--limited-tokens") == 1
    slos = tmp_path / "slos.yaml"
    slos.write_text(
        minimal()
        + "---\n"
        + minimal("search-availability").replace("checkout", "search").replace("payments", "discovery")
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "sloplane", "serve", str(slos), "--prometheus", "http://127.0.0.1:9", *chosen]
    command += ["--db", str(tmp_path / "decisions.db"), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            own = http.get("/v1/slos/checkout-availability", headers={"Authorization": f"Bearer {payments_token}"})
            other = http.get("/v1/slos/search-availability", headers={"Authorization": f"Bearer {payments_token}"})
            everything_ = http.get("/v1/slos", headers={"Authorization": f"Bearer {admin_token}"})
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert own.status_code == 200, own.text
    assert other.status_code == 403
    assert other.json()["detail"].startswith("token 'ci-payments' is limited to services checkout and teams payments")
    assert len(everything_.json()) == 2
