"""Bearer tokens for the evaluator's API: who may read, who may ask a gate, who may administer.

Scopes nest: `admin` implies `gate`, `gate` implies `read` (a pipeline that asks a gate may also
read why it was answered so). Tokens are kept only as the SHA-256 of the token, so the tokens
file (a Kubernetes secret, a file in a repository) never holds a usable credential, and nothing
here stores or logs a token.

A fast, unsalted hash is the right tool here, not a password hash: the tokens are 32 random
bytes (`new_token`), so there is nothing to guess from a leaked digest and no dictionary to
defend against with salts or a slow KDF; a slow hash would only add latency to every request.

A token may also be *limited* to services and teams (`services`, `teams`): one team's CI runner then
cannot gate, break glass, freeze or open incidents for another team's SLOs, and sees only its own
(`http.limits` decides what a limited token reaches). A token with neither is unrestricted, as every
token was before limits existed, so older files mean what they meant.

The tokens file, YAML or JSON (a server may read several, `token_sets`)::

    tokens:
      - name: ci
        sha256: 6b1f...   # hex digest of the token
        scopes: [gate]
      - name: ci-payments
        sha256: 0c4e...
        scopes: [gate]
        services: [checkout]   # optional: only SLOs of these services...
        teams: [payments]      # ...or owned by these teams
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sloplane.declaration.yamlsource import SourceError, YamlDocument, YamlSyntaxError, read_documents, read_source

TOKEN_PREFIX = "slp_"
"""Marks a string as a sloplane token, so secret scanners and people can recognise a leaked one."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = ("name", "sha256", "scopes", "services", "teams")
_LIMIT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""Services and teams are RFC 1123 labels in declarations (`declaration.types.Name`): a limit spelt
otherwise (`Payments`) could never match an SLO, so it is refused rather than kept as a dead limit."""


class Scope(StrEnum):
    """What a token may do."""

    READ = "read"
    """List SLOs, read their measurements and the decision log."""
    GATE = "gate"
    """Ask for gate decisions (and read)."""
    ADMIN = "admin"
    """Everything."""
    FEEDBACK = "feedback"
    """Report and list customer-reported problems (`/v1/feedback`): support staff hold only this."""

    @property
    def implied(self) -> frozenset[Scope]:
        """This scope and every scope it includes."""
        return _IMPLIED[self]


_SCOPE_VALUES = frozenset(scope.value for scope in Scope)
_IMPLIED = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.GATE: frozenset({Scope.GATE, Scope.READ}),
    Scope.ADMIN: frozenset(Scope),
    Scope.FEEDBACK: frozenset({Scope.FEEDBACK}),
}


class TokenFileError(Exception):
    """The tokens file is missing, unreadable or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class TokenEntry:
    """One token as stored: its name, the hex SHA-256 of the token, the scopes granted, and its limits.

    `services` and `teams` empty: unrestricted. Otherwise only SLOs of those services, or owned by
    those teams, are within its reach.
    """

    name: str
    sha256: str
    scopes: frozenset[Scope]
    services: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """The entry as written in a tokens file (limits only when it has them, as older files have none)."""
        written: dict[str, Any] = {
            "name": self.name,
            "sha256": self.sha256,
            "scopes": sorted(scope.value for scope in self.scopes),
        }
        if self.services:
            written["services"] = sorted(self.services)
        if self.teams:
            written["teams"] = sorted(self.teams)
        return written


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name, every scope it holds (implied ones included), and its limits."""

    name: str
    scopes: frozenset[Scope]
    services: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()

    def allows(self, scope: Scope) -> bool:
        """Whether this principal may do what `scope` guards."""
        return scope in self.scopes

    @property
    def limited(self) -> bool:
        """Whether the token reaches only some services' or teams' SLOs (else every SLO)."""
        return bool(self.services or self.teams)

    def limits_text(self) -> str:
        """`services checkout and teams payments`: what the token is limited to, for refusals."""
        parts = [
            f"{what} {', '.join(sorted(names))}"
            for what, names in (("services", self.services), ("teams", self.teams))
            if names
        ]
        return " and ".join(parts) if parts else "nothing"


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token: what the tokens file stores and what requests are compared by."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(
    name: str, scopes: Iterable[Scope | str], *, services: Iterable[str] = (), teams: Iterable[str] = ()
) -> tuple[str, TokenEntry]:
    """A fresh random token (shown once, to hand over) and the entry to store for it.

    With `services` or `teams`, the token is limited to those SLOs (see the module docstring).
    """
    granted = _scopes(list(scopes))
    if not name.strip():
        raise ValueError("a token needs a name")
    limits = {what: limit_names(what, list(values)) for what, values in (("service", services), ("team", teams))}
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    entry = TokenEntry(name, hash_token(token), granted, services=limits["service"], teams=limits["team"])
    return token, entry


def limit_names(what: str, values: list[Any]) -> frozenset[str]:
    """Service or team names a token is limited to, spelt as declarations spell them."""
    bad = [repr(value) for value in values if not isinstance(value, str) or not _LIMIT_NAME.fullmatch(value)]
    if bad:
        raise ValueError(
            f"{what} names are RFC 1123 names as in declarations (lowercase letters, digits and '-'), "
            f"not {', '.join(bad)}"
        )
    return frozenset(values)


def _scopes(values: list[Any]) -> frozenset[Scope]:
    if not values:
        raise ValueError(f"give at least one scope ({_scope_names()})")
    unknown = [repr(value) for value in values if not isinstance(value, str) or value not in _SCOPE_VALUES]
    if unknown:
        raise ValueError(f"unknown scope {', '.join(unknown)} (expected {_scope_names()})")
    return frozenset(Scope(value) for value in values)


def _scope_names() -> str:
    return ", ".join(scope.value for scope in Scope)


def parse_bearer(header_value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for a missing or other scheme."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class TokenStore:
    """The known tokens, by hash; answers who a presented token belongs to."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self.entries = tuple(entries)
        problems = _duplicates(self.entries)
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_file(cls, path: str | Path, warn: Callable[[str], None] | None = None) -> TokenStore:
        """Read a YAML or JSON tokens file (JSON is YAML); every problem is reported in one message.

        Refused, as sshd refuses an `authorized_keys` others may change: a file that group or others
        may write (whoever can write it can grant themselves `admin`), and one that grants no token
        (a server nobody can call). A file others may read is only `warn`ed about: it holds digests,
        not tokens, and Kubernetes mounts secrets group-readable for the pod's `fsGroup`.
        """
        source = Path(path)
        store = cls.read_file(source, warn)
        if not store.entries:
            raise TokenFileError(
                f"{source}: no tokens: a server nobody can call (add one with `sloplane token create NAME --scope ...`)"
            )
        return store

    @classmethod
    def read_file(cls, source: Path, warn: Callable[[str], None] | None = None) -> TokenStore:
        """One file's tokens, possibly none (`from_file` refuses that); problems as `TokenFileError` naming the
        file and line, the mode checked as `from_file` says."""
        _check_mode(source, warn)
        try:
            documents = read_documents(str(source), read_source(source))
        except SourceError as exc:
            raise TokenFileError(f"{source}: the tokens file: {exc}") from None
        except YamlSyntaxError as exc:
            at = f"{exc.position.line}:{exc.position.column}"
            raise TokenFileError(f"{source}:{at}: not valid YAML or JSON: {exc.message}") from None
        document = documents[0] if len(documents) == 1 else None
        return cls.from_document(None if document is None else document.data, source=str(source), located=document)

    @classmethod
    def from_document(cls, document: Any, *, source: str = "tokens", located: YamlDocument | None = None) -> TokenStore:
        """Build from already-parsed data (`{"tokens": [...]}`), e.g. read from an environment variable.

        With `located`, the document as read from a file, each problem names its line.
        """
        entries, problems = _read_document(document)
        if not problems:
            problems = [(None, problem) for problem in _duplicates(entries)]
        if problems:
            raise TokenFileError("; ".join(_located(source, located, loc, text) for loc, text in problems))
        return cls(entries)

    def to_dict(self) -> dict[str, Any]:
        """The tokens file's content, for writing one back with a new entry."""
        return {"tokens": [entry.to_dict() for entry in self.entries]}

    def verify(self, token: str) -> Principal | None:
        """The principal a token belongs to, or None.

        Every entry is compared, in constant time, whether or not one already matched: how long
        the answer takes says nothing about which entry, if any, was close.
        """
        presented = hash_token(token)
        found: TokenEntry | None = None
        for entry in self.entries:
            if hmac.compare_digest(presented, entry.sha256):
                found = entry
        if found is None:
            return None
        scopes = frozenset[Scope]().union(*(scope.implied for scope in found.scopes))
        return Principal(found.name, scopes, services=found.services, teams=found.teams)

    def authenticate(self, header_value: str | None) -> Principal | None:
        """The principal behind an `Authorization` header value; None when missing, malformed or unknown."""
        token = parse_bearer(header_value)
        return None if token is None else self.verify(token)


Problem = tuple[tuple[str | int, ...] | None, str]
"""Where in the document (None: the whole file) and what is wrong."""


def _located(source: str, document: YamlDocument | None, loc: tuple[str | int, ...] | None, text: str) -> str:
    """`source:line:column: text` when the file's position of `loc` is known, `source: text` otherwise."""
    if document is None or loc is None:
        return f"{source}: {text}"
    where = document.position(loc)
    return f"{source}:{where.line}:{where.column}: {text}"


def _check_mode(path: Path, warn: Callable[[str], None] | None) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # reading it reports the problem, in its own words
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise TokenFileError(
            f"{path}: the tokens file is writable by others (mode {mode:04o}): whoever can write it can grant "
            f"themselves any scope; `chmod 600 {path}` (or 640/440 for a group that only reads it)"
        )
    if mode & stat.S_IROTH and warn is not None:
        warn(
            f"warning: {path}: the tokens file is readable by others (mode {mode:04o}); it holds digests, not "
            f"tokens, but nobody else needs them: `chmod 600 {path}`"
        )


def _read_document(document: Any) -> tuple[list[TokenEntry], list[Problem]]:
    if not isinstance(document, Mapping) or "tokens" not in document:
        example = "`tokens: [{name: ci, sha256: <hex>, scopes: [gate]}]`"
        return [], [(None, f"expected a mapping with a `tokens` list, e.g. {example}")]
    unknown = sorted(str(key) for key in document if key != "tokens")
    problems: list[Problem] = [((key,), f"unknown key {key!r} (only `tokens` is read)") for key in unknown]
    items = document["tokens"]
    if items is None:
        return [], problems
    if not isinstance(items, list):
        return [], [*problems, (("tokens",), "`tokens` must be a list")]
    entries: list[TokenEntry] = []
    for index, item in enumerate(items):
        entry, entry_problems = _read_entry(item)
        problems.extend((("tokens", index, *loc), f"tokens[{index}]: {text}") for loc, text in entry_problems)
        if entry is not None:
            entries.append(entry)
    return entries, problems


def _read_entry(item: Any) -> tuple[TokenEntry | None, list[tuple[tuple[str, ...], str]]]:
    if not isinstance(item, Mapping):
        return None, [((), "expected a mapping with name, sha256 and scopes")]
    problems: list[tuple[tuple[str, ...], str]] = [
        ((str(key),), _unknown_key(key)) for key in item if key not in _ENTRY_KEYS
    ]
    name, digest, scopes = item.get("name"), item.get("sha256"), item.get("scopes")
    if not isinstance(name, str) or not name.strip():
        problems.append((("name",), "`name` must be a non-empty string"))
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest.lower()):
        problems.append((("sha256",), _digest_problem(digest)))
    granted: frozenset[Scope] = frozenset()
    if not isinstance(scopes, list):
        problems.append((("scopes",), f"`scopes` must be a list, e.g. [gate] ({_scope_names()})"))
    else:
        try:
            granted = _scopes(scopes)
        except ValueError as exc:
            problems.append((("scopes",), f"`scopes`: {exc}"))
    limits: dict[str, frozenset[str]] = {}
    for key, example in (("services", "[checkout]"), ("teams", "[payments]")):
        limits[key], problem = _read_limit(item, key, example)
        if problem is not None:
            problems.append(((key,), problem))
    if problems:
        return None, problems
    entry = TokenEntry(str(name), str(digest).lower(), granted, services=limits["services"], teams=limits["teams"])
    return entry, []


def _read_limit(item: Mapping[Any, Any], key: str, example: str) -> tuple[frozenset[str], str | None]:
    """A token's `services` or `teams` (absent: none), or what is wrong with it.

    An empty list is refused rather than read as "no limit": whoever wrote `teams: []` meant to
    limit the token, and an unrestricted token is the opposite of what they asked for.
    """
    if key not in item:
        return frozenset(), None
    values = item[key]
    if not isinstance(values, list) or not values:
        return frozenset(), f"`{key}` must be a non-empty list of names, e.g. {example} (leave it out for no limit)"
    try:
        return limit_names(key.removesuffix("s"), values), None
    except ValueError as exc:
        return frozenset(), f"`{key}`: {exc}"


def _unknown_key(key: Any) -> str:
    if key == "token":
        return "a tokens file holds the sha256 of a token, never the token itself: replace `token` by `sha256`"
    return f"unknown key {key!r} (expected {', '.join(_ENTRY_KEYS)})"


def _digest_problem(digest: Any) -> str:
    if isinstance(digest, str) and digest.startswith(TOKEN_PREFIX):
        return "`sha256` holds a token, not its digest: store the token's hex SHA-256 (`printf %s TOKEN | sha256sum`)"
    return "`sha256` must be the 64-character hex SHA-256 of the token"


def _duplicates(entries: Iterable[TokenEntry]) -> list[str]:
    """Two entries with one name would make logs ambiguous; with one digest, a token would have two names."""
    problems: list[str] = []
    names: set[str] = set()
    digests: set[str] = set()
    for entry in entries:
        if entry.name in names:
            problems.append(f"token name {entry.name!r} appears twice")
        if entry.sha256 in digests:
            problems.append(f"token {entry.name!r} has the same sha256 as an earlier entry")
        names.add(entry.name)
        digests.add(entry.sha256)
    return problems
