"""Tokens from several files: one per team or purpose, each in a secret of its own, some confined.

`sloplane serve --tokens FILE_OR_FOLDER` (repeatable) reads tokens files as they are;
`--limited-tokens team:payments=FILE` confines every token of FILE to those services and teams
(`SetLimits`). The `SloEvaluator` component renders each token set as such a file in its own Secret
(`render.evaluator`), so each team's tokens can be rotated, and access to them granted, apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sloplane.evaluator.http.auth import Principal, TokenEntry, TokenFileError, TokenStore, limit_names

TOKEN_FILE_SUFFIXES = (".yaml", ".yml", ".json")
"""What a folder given as tokens holds; anything else there (and hidden entries: the kubelet's `..data`
links of a mounted Secret) is not read."""


@dataclass(frozen=True)
class SetLimits:
    """The services and teams every token of one tokens file is confined to (`serve --limited-tokens`).

    Why a file gets limits from outside it: one team's tokens may live in a secret that team manages
    (rotating its own tokens), and whoever writes a tokens file decides what its entries reach. The
    limits come from the server's arguments, which the platform sets, so a team that edits its own
    file still cannot give itself another team's services, or no limit at all.
    """

    services: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> SetLimits:
        """`team:payments,service:checkout` (at least one); ValueError saying what is wrong."""
        services: list[str] = []
        teams: list[str] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            kind, _, name = item.partition(":")
            if kind not in ("team", "service") or not name:
                raise ValueError(f"{item!r} is not team:NAME or service:NAME")
            (teams if kind == "team" else services).append(name)
        if not services and not teams:
            raise ValueError(f"{text!r} names no team:NAME or service:NAME")
        return cls(limit_names("service", services), limit_names("team", teams))

    def text(self) -> str:
        """`services checkout and teams payments`."""
        return Principal("", frozenset(), self.services, self.teams).limits_text()

    def confine(self, entry: TokenEntry) -> TokenEntry:
        """The entry within these limits: an unlimited one gets them; ValueError for one reaching past them.

        Refused rather than narrowed: an entry naming a service outside its file's limits is a
        mistake or an attempt, and either way its author should hear of it.
        """
        if not (entry.services or entry.teams):
            return TokenEntry(entry.name, entry.sha256, entry.scopes, services=self.services, teams=self.teams)
        outside = [f"service {name!r}" for name in sorted(entry.services - self.services)]
        outside += [f"team {name!r}" for name in sorted(entry.teams - self.teams)]
        if outside:
            raise ValueError(
                f"token {entry.name!r} reaches {', '.join(outside)}, outside this file's limits ({self.text()})"
            )
        return entry


def read_token_files(
    paths: Iterable[str | Path],
    warn: Callable[[str], None] | None = None,
    limited: Iterable[tuple[SetLimits, str | Path]] = (),
) -> TokenStore:
    """Read several tokens files, or folders of them, as one store (`serve --tokens` repeated).

    Each team's tokens may live in a secret of its own; the server reads them all. A folder
    contributes its `.yaml`, `.yml` and `.json` files (not hidden ones, not subfolders). `limited`
    files have their tokens confined to their `SetLimits`. Every file is checked as `from_file`
    checks one, except that a file without tokens is fine as long as some file has one; a name
    or digest in two files is refused, naming both.
    """
    sources: list[tuple[SetLimits | None, Path]] = [(None, file) for path in paths for file in _token_files(Path(path))]
    sources += [(limits, file) for limits, path in limited for file in _token_files(Path(path))]
    if not sources:
        raise TokenFileError("no tokens file given")
    entries: list[TokenEntry] = []
    names: dict[str, Path] = {}
    digests: dict[str, tuple[str, Path]] = {}
    problems: list[str] = []
    for limits, file in sources:
        for entry in TokenStore.read_file(file, warn).entries:
            try:
                confined = entry if limits is None else limits.confine(entry)
            except ValueError as exc:
                problems.append(f"{file}: {exc}")
                continue
            problems += _clashes(confined, file, names, digests)
            entries.append(confined)
            names.setdefault(confined.name, file)
            digests.setdefault(confined.sha256, (confined.name, file))
    if problems:
        raise TokenFileError("; ".join(problems))
    if not entries:
        shown = ", ".join(str(file) for _, file in sources)
        raise TokenFileError(
            f"{shown}: no tokens: a server nobody can call (add one with `sloplane token create NAME --scope ...`)"
        )
    return TokenStore(entries)


def _token_files(path: Path) -> list[Path]:
    """`path` itself, or the tokens files directly inside it when it is a folder (sorted, so errors are stable)."""
    if not path.is_dir():
        return [path]
    found = sorted(
        child
        for child in path.iterdir()
        if not child.name.startswith(".") and child.suffix in TOKEN_FILE_SUFFIXES and child.is_file()
    )
    if not found:
        raise TokenFileError(f"{path}: a folder without tokens files ({', '.join(TOKEN_FILE_SUFFIXES)})")
    return found


def _clashes(entry: TokenEntry, file: Path, names: dict[str, Path], digests: dict[str, tuple[str, Path]]) -> list[str]:
    """Why `entry` (from `file`) cannot join the tokens read before it: its name or digest is in another file."""
    problems: list[str] = []
    if entry.name in names:
        problems.append(f"{file}: token name {entry.name!r} is also in {names[entry.name]}")
    if entry.sha256 in digests:
        other, where = digests[entry.sha256]
        problems.append(f"{file}: token {entry.name!r} has the same sha256 as {other!r} in {where}")
    return problems
