"""What the CLI's command modules share: the consoles, declaration loading, option types and parsers.

Command modules import this and never each other; `cli.main` registers them all on one app.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console

from sloplane.core.durations import DurationError, parse_duration
from sloplane.core.instants import parse_instant_text
from sloplane.declaration.model import Declaration
from sloplane.evaluator.storage.postgres_conninfo import is_postgres_url, redacted
from sloplane.interop.loader import LoadResult
from sloplane.semantics.subjects import Fleet

DEFAULT_DB = os.environ.get("SLOPLANE_DB", ".sloplane/decisions.db")
"""A SQLite file, or a `postgresql://` URL (a text, not a path: a path would fold the URL's `//`)."""

Loader = Callable[[list[Path], bool], Sequence[Declaration]]

Paths = Annotated[list[Path], typer.Argument(help="Declaration files or folders.", show_default=False)]
OptionalPaths = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Declaration files or folders (needed with --prometheus, not with --evaluator).", show_default=False
    ),
]

At = Annotated[str | None, typer.Option("--at", help="Evaluate at this RFC 3339 instant (replay) instead of now.")]
DEFAULT_DB_SHOWN = redacted(DEFAULT_DB) if is_postgres_url(DEFAULT_DB) else DEFAULT_DB
"""The default as `--help` shows it: a URL from $SLOPLANE_DB without its password."""
Db = Annotated[
    str,
    typer.Option(
        "--db", help="Decision log: a SQLite file or a postgresql:// URL ($SLOPLANE_DB).", show_default=DEFAULT_DB_SHOWN
    ),
]
Staleness = Annotated[str, typer.Option("--staleness", help="Reject data with no sample this recent.")]
Format = Annotated[str, typer.Option("--format", help="table (or text) or json.")]


@dataclass
class Consoles:
    """Where commands print (`out` for results, `err` for notes and refusals) and how they load declarations."""

    load: Loader
    out: Console
    err: Console
    load_all: Callable[[list[Path], bool], LoadResult]
    """Declarations and the reliability debt register, for the commands that read both (`govern`, `archive`)."""


def load_fleet(console: Consoles, paths: list[Path]) -> Fleet:
    return Fleet(console.load(paths, False))


def parse_instant(text: str | None, option: str = "--at") -> datetime | None:
    """An RFC 3339 instant with a zone, in the range sloplane measures in, or a usage error naming `option`."""
    if text is None:
        return None
    try:
        return parse_instant_text(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


def parse_window(text: str, option: str) -> timedelta:
    """A duration option, or a usage error naming the option."""
    try:
        return parse_duration(text)
    except DurationError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


class RefusedError(Exception):
    """The store or the evaluator would not do it; the message says why (printed, exit 1)."""


def local_user() -> str:
    """Who acts locally: `$SLOPLANE_USER` (a CI job names itself), else the OS user."""
    named = os.environ.get("SLOPLANE_USER", "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise RefusedError("cannot tell who you are: set $SLOPLANE_USER") from None


def store_missing(db: str) -> bool:
    """A SQLite file that is not there (a PostgreSQL URL is never "missing": the store migrates it on open)."""
    return not is_postgres_url(db) and not Path(db).exists()


def store_name(db: str) -> str:
    """How a message names the store: the file, or the URL without its password."""
    return redacted(db) if is_postgres_url(db) else db


def store_stem(db: str) -> str:
    """A short name for the store: the SQLite file's stem, or the PostgreSQL database's name."""
    if is_postgres_url(db):
        return urlsplit(db).path.strip("/") or "postgres"
    return Path(db).stem
