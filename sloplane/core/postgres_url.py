"""A PostgreSQL URL split where libpq splits it, so that what we hide and what libpq reads are the same text.

Why not `urllib.parse.urlsplit`: libpq does not read a connection URI as RFC 3986 does. Its user info runs
to the first `@`, unless a `/` comes first, and `?` and `#` may appear in an unencoded password
(`postgresql://app:Xy7?pq#s@db/x` connects as `app` with password `Xy7?pq#s`). `urlsplit` ends the
authority at that `?`: a redaction built on it showed the password's tail, and the port list of a
NetworkPolicy would have come from part of it. Here the user info is found libpq's way; the rest is
`hosts[/dbname][?parameters]`, and libpq knows no fragment. The evaluator's stores (messages) and the
renderer (egress ports) both read a URL through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

SCHEMES = ("postgresql", "postgres")
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


@dataclass(frozen=True)
class PostgresUrl:
    """The parts of `scheme://[userinfo@]hosts[/dbname][?query]`, each as written (not decoded)."""

    scheme: str
    userinfo: str
    hosts: str
    dbname: str
    query: str

    @property
    def user(self) -> str:
        return self.userinfo.split(":", 1)[0]

    @property
    def password(self) -> str | None:
        """The password in the user info, as written; None without one."""
        return self.userinfo.split(":", 1)[1] if ":" in self.userinfo else None

    def parameters(self) -> list[tuple[str, str]]:
        """The query's parameters, decoded."""
        return parse_qsl(self.query, keep_blank_values=True)

    def secrets(self) -> list[str]:
        """Every spelling of every password the URL holds: as written and percent-decoded."""
        written = [] if self.password is None else [self.password]
        pairs = [part.split("=", 1) for part in self.query.split("&")]
        written += [pair[1] for pair in pairs if len(pair) == 2 and pair[0] in SECRET_PARAMETERS]
        decoded = [value for key, value in self.parameters() if key in SECRET_PARAMETERS]
        return [*written, *decoded, *(unquote(secret) for secret in written)]

    def shown(self) -> str:
        """The URL without a password in the user info or the query: what a message may say."""
        user = f"{self.user}@" if self.user else ""
        kept = [part for part in self.query.split("&") if part and part.split("=", 1)[0] not in SECRET_PARAMETERS]
        query = f"?{'&'.join(kept)}" if kept else ""
        dbname = f"/{self.dbname}" if self.dbname else ""
        return f"{self.scheme}://{user}{self.hosts}{dbname}{query}"


def is_postgres_url(text: str) -> bool:
    """Whether `text` is a `postgresql://` or `postgres://` URL."""
    scheme, separator, _ = text.partition("://")
    return bool(separator) and scheme.lower() in SCHEMES


def split_postgres_url(url: str) -> PostgresUrl:
    """The URL's parts, split as libpq splits them (see the module); any text after `://` splits somehow."""
    scheme, _, rest = url.partition("://")
    at, slash = rest.find("@"), rest.find("/")
    userinfo = ""
    if at >= 0 and (slash < 0 or at < slash):
        userinfo, rest = rest[:at], rest[at + 1 :]
    before_query, _, query = rest.partition("?")
    hosts, _, dbname = before_query.partition("/")
    return PostgresUrl(scheme, userinfo, hosts, dbname, query)
