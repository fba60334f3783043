"""Where a PostgreSQL store is, said without its secrets: the connection parameters, and the URL as messages show it.

Why a module of its own: every message the PostgreSQL stores raise can reach a log line, a `/readyz`
detail or a gate's answer, so the password must never be in one. Credentials come from the URL, from a
file (a Kubernetes Secret mounted as a file holds the password alone), or from libpq's own environment
(`PGPASSWORD`, `PGPASSFILE`, `PGUSER`...), which libpq reads itself; whichever it is, messages name
the database by `redacted` and pass through `Secrets.scrub`, which also catches a driver message that
echoes part of a malformed URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sloplane.core.postgres_url import SCHEMES, split_postgres_url

__all__ = ["SCHEMES"]  # the URL schemes libpq reads: `open_decision_log` tells a URL from a file path by them
MASK = "***"
CONNECT_TIMEOUT_SECONDS = 5
"""How long one connection attempt may take unless the URL says (`connect_timeout`): a host that drops packets
would otherwise hold a caller for the operating system's TCP timeout, minutes."""


class ConninfoError(ValueError):
    """The URL or the password file cannot be used; the message never holds the password."""


def is_postgres_url(target: str | Path) -> bool:
    """Whether `target` names a PostgreSQL database (a `postgresql://` or `postgres://` URL), not a file."""
    return isinstance(target, str) and target.split("://", 1)[0].lower() in SCHEMES and "://" in target


def redacted(url: str) -> str:
    """The URL without its password (user info or query parameter), for messages; split as libpq splits it."""
    return split_postgres_url(url).shown()


def _url_secrets(url: str) -> list[str]:
    """Every spelling of a password the URL holds: as written and percent-decoded."""
    return split_postgres_url(url).secrets()


@dataclass(frozen=True)
class Secrets:
    """The passwords a message must not show, longest first (so a password containing another is masked whole)."""

    values: tuple[str, ...]

    @classmethod
    def of(cls, values: Iterable[str | None]) -> Secrets:
        unique = {value for value in values if value}
        return cls(tuple(sorted(unique, key=len, reverse=True)))

    def scrub(self, text: str) -> str:
        """`text` on one line, with every secret replaced by `***`."""
        for secret in self.values:
            text = text.replace(secret, MASK)
        return " ".join(text.split())


@dataclass(frozen=True)
class Target:
    """A PostgreSQL database to connect to: what to pass to the driver, and how to name it in messages."""

    conninfo: str
    """The URL as given (with its password, if it has one): handed to the driver, never shown."""
    parameters: dict[str, str]
    """Extra connection parameters (a password from a file, a default `connect_timeout`); never shown either."""
    where: str
    """The URL without its password: what messages say."""
    secrets: Secrets

    def __repr__(self) -> str:
        return f"Target({self.where!r})"


def target(url: str, password_file: str | Path | None = None) -> Target:
    """Check the URL and read the password file (the password is its content, one trailing newline dropped).

    A password in both the URL and a file is refused: one of them would be silently ignored. The URL itself is
    read by the driver when connecting; a malformed one fails there, in a message that goes through `scrub`.
    """
    url_secrets = _url_secrets(url)
    where = redacted(url)
    if not is_postgres_url(url):
        raise ConninfoError(f"not a PostgreSQL URL (postgresql://...): {Secrets.of(url_secrets).scrub(where)}")
    query = dict(split_postgres_url(url).parameters())
    parameters: dict[str, str] = {}
    if "connect_timeout" not in query:
        parameters["connect_timeout"] = str(CONNECT_TIMEOUT_SECONDS)
    if password_file is not None:
        if url_secrets:
            raise ConninfoError(f"{where} has a password and a password file was given too: use one of them")
        parameters["password"] = _read_password(Path(password_file))
    return Target(url, parameters, where, Secrets.of([*url_secrets, parameters.get("password")]))


def _read_password(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConninfoError(f"cannot read the database password file {path}: {reason}") from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConninfoError(f"the database password file {path} is empty")
    return password
