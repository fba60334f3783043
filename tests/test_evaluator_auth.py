"""Bearer tokens: stored as digests only, scopes that nest, and tokens files that explain their mistakes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sloplane.evaluator.http.auth import (
    Principal,
    Scope,
    TokenEntry,
    TokenFileError,
    TokenStore,
    hash_token,
    new_token,
    parse_bearer,
)


def test_new_token_is_random_prefixed_and_stored_only_as_its_digest() -> None:
    token, entry = new_token("ci", ["gate"])
    other, _ = new_token("ci", ["gate"])
    assert token.startswith("slp_")
    assert len(token) >= 4 + 43  # 32 random bytes, base64url
    assert token != other
    assert entry.sha256 == hashlib.sha256(token.encode()).hexdigest() == hash_token(token)
    assert entry.scopes == frozenset({Scope.GATE})
    assert token not in repr(entry)
    assert token not in json.dumps(entry.to_dict())


def test_new_token_needs_a_name_and_known_scopes() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        new_token(" ", [Scope.READ])
    with pytest.raises(ValueError, match="unknown scope 'write'"):
        new_token("ci", ["write"])
    with pytest.raises(ValueError, match="at least one scope"):
        new_token("ci", [])


@pytest.mark.parametrize(
    ("granted", "effective"),
    [
        (Scope.READ, {Scope.READ}),
        (Scope.GATE, {Scope.GATE, Scope.READ}),
        (Scope.ADMIN, {Scope.ADMIN, Scope.GATE, Scope.READ, Scope.FEEDBACK}),
        (Scope.FEEDBACK, {Scope.FEEDBACK}),  # support staff: customer reports, nothing else
    ],
)
def test_scopes_imply_the_lesser_ones(granted: Scope, effective: set[Scope]) -> None:
    token, entry = new_token("someone", [granted])
    principal = TokenStore([entry]).authenticate(f"Bearer {token}")
    assert principal == Principal(name="someone", scopes=frozenset(effective))
    assert {scope for scope in Scope if principal.allows(scope)} == effective


def test_the_right_entry_among_several_answers() -> None:
    tokens = {name: new_token(name, [scope]) for name, scope in (("ci", "gate"), ("ops", "admin"), ("dash", "read"))}
    store = TokenStore(entry for _, entry in tokens.values())
    for name, (token, _) in tokens.items():
        principal = store.verify(token)
        assert principal is not None and principal.name == name


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Bearer slp_unknown", "slp_no_scheme"],
)
def test_missing_malformed_or_unknown_tokens_authenticate_nobody(header: str | None) -> None:
    _, entry = new_token("ci", ["admin"])
    assert TokenStore([entry]).authenticate(header) is None


def test_the_scheme_is_case_insensitive_and_spaces_are_forgiven() -> None:
    token, entry = new_token("ci", ["read"])
    store = TokenStore([entry])
    assert parse_bearer(f"  bearer   {token}  ") == token
    assert store.authenticate(f"BEARER {token}") is not None


def test_no_entries_admit_nobody() -> None:
    assert TokenStore([]).verify("slp_anything") is None


def test_tokens_file_in_yaml_and_json(tmp_path: Path) -> None:
    token, entry = new_token("ci", ["gate", "read"])
    yaml_file = tmp_path / "tokens.yaml"
    yaml_file.write_text(f"tokens:\n  - name: ci\n    sha256: {entry.sha256.upper()}\n    scopes: [gate, read]\n")
    json_file = tmp_path / "tokens.json"
    json_file.write_text(json.dumps(TokenStore([entry]).to_dict()))
    for path in (yaml_file, json_file):
        store = TokenStore.from_file(path)
        assert store.entries == (entry,)
        principal = store.authenticate(f"Bearer {token}")
        assert principal is not None and principal.name == "ci"


def test_a_tokens_file_that_grants_nothing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    for content in ("tokens: []\n", "tokens:\n"):
        path.write_text(content)
        with pytest.raises(TokenFileError, match="no tokens: a server nobody can call"):
            TokenStore.from_file(path)
    assert TokenStore([]).entries == ()  # built in code (the OpenAPI document needs no tokens), it is a locked store


DIGEST = "a" * 64
OTHER = "b" * 64


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tokens: [\n", r"tokens.yaml:\d+:\d+: not valid YAML or JSON"),
        ("- just a list\n", "expected a mapping with a `tokens` list"),
        ("token: {}\n", "expected a mapping with a `tokens` list"),
        ("tokens: {name: ci}\n", "`tokens` must be a list"),
        (f"tokens: [{{name: ci, sha256: {DIGEST}, scopes: [read]}}]\nextra: 1\n", r"yaml:2:8: unknown key 'extra'"),
        ("tokens: [ci]\n", r"tokens\[0\]: expected a mapping with name, sha256 and scopes"),
        (f"tokens: [{{sha256: {DIGEST}, scopes: [read]}}]\n", r"tokens\[0\]: `name` must be a non-empty string"),
        ("tokens: [{name: ci, sha256: abc, scopes: [read]}]\n", "`sha256` must be the 64-character hex SHA-256"),
        ("tokens: [{name: ci, sha256: slp_abc, scopes: [read]}]\n", "`sha256` holds a token, not its digest"),
        (f"tokens: [{{name: ci, sha256: {DIGEST}, scopes: [write]}}]\n", "unknown scope 'write'"),
        (f"tokens: [{{name: ci, sha256: {DIGEST}, scopes: []}}]\n", "at least one scope"),
        (f"tokens: [{{name: ci, sha256: {DIGEST}, scopes: gate}}]\n", "`scopes` must be a list"),
        (f"tokens: [{{name: ci, sha256: {DIGEST}}}]\n", "`scopes` must be a list"),
        (
            f"tokens: [{{name: ci, token: slp_x, sha256: {DIGEST}, scopes: [read]}}]\n",
            "holds the sha256 of a token, never the token itself",
        ),
        (f"tokens: [{{name: ci, sha256: {DIGEST}, scopes: [read], owner: me}}]\n", "unknown key 'owner'"),
        (
            f"tokens: [{{name: ci, sha256: {DIGEST}, scopes: [read]}}, {{name: ci, sha256: {OTHER}, scopes: [gate]}}]",
            "token name 'ci' appears twice",
        ),
        (
            f"tokens: [{{name: a, sha256: {DIGEST}, scopes: [read]}}, {{name: b, sha256: {DIGEST}, scopes: [gate]}}]",
            "token 'b' has the same sha256 as an earlier entry",
        ),
    ],
)
def test_bad_tokens_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(content)
    with pytest.raises(TokenFileError, match=message) as raised:
        TokenStore.from_file(path)
    assert str(raised.value).startswith(f"{path}:")


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n  - {name: '', sha256: x, scopes: [read]}\n  - {name: ok, sha256: y, scopes: [nope]}\n")
    with pytest.raises(TokenFileError) as raised:
        TokenStore.from_file(path)
    assert "tokens[0]: `name`" in str(raised.value)
    assert "tokens[0]: `sha256`" in str(raised.value)
    assert "tokens[1]: `sha256`" in str(raised.value)
    assert "tokens[1]: `scopes`: unknown scope 'nope'" in str(raised.value)


def test_a_missing_tokens_file_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=r"missing.yaml: the tokens file: cannot read: No such file"):
        TokenStore.from_file(tmp_path / "missing.yaml")


def test_duplicate_entries_are_refused_when_built_directly() -> None:
    entry = TokenEntry(name="ci", sha256="c" * 64, scopes=frozenset({Scope.READ}))
    with pytest.raises(ValueError, match="appears twice"):
        TokenStore([entry, entry])
