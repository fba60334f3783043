"""What every HTTP backend does the same way: send with a timeout, type transport failures, read JSON.

Prometheus and Datadog differ in what their answers mean (a 400 with `bad_data`, a 429 with rate-limit
headers, `errors` in a 200); they do not differ in how a timeout, a refused connection, a 5xx or a
body that is not JSON becomes a typed `BackendError`, so that is written once here.

Nor in how they keep their own credentials out of what they say. A `BackendError`'s message becomes
a measurement's error, a decision's reason (recorded, answered over HTTP), `/readyz`'s reason and log
lines, so it must never hold a key: URLs lose their `user:password@` (sent as basic auth instead,
`without_credentials`), and `scrubbing` blanks any credential an answer echoed back (a proxy's error
page quoting the request's headers) before the message leaves the backend.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from sloplane.evaluator.measuring.backends.base import BackendError, FailureKind

Observer = Callable[[float, str], None]
"""Called with (seconds, outcome) after every HTTP request, for latency metrics."""


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: float,
    observe: Observer | None = None,
    **kwargs: Any,
) -> requests.Response:
    """One request; a timeout or a connection failure as a typed BackendError."""
    started = time.perf_counter()
    outcome = "error"
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
        outcome = str(response.status_code)
        return response
    except requests.Timeout:
        outcome = "timeout"
        raise BackendError(FailureKind.TIMEOUT, f"no answer from {url} within {timeout:g} s") from None
    except requests.RequestException as error:
        outcome = "unavailable"
        raise BackendError(FailureKind.UNAVAILABLE, f"{url}: {type(error).__name__}") from None
    finally:
        if observe is not None:
            observe(time.perf_counter() - started, outcome)


def json_of(response: requests.Response, source: str) -> Any:
    """The decoded body; a 5xx is `unavailable`, a body that is not JSON a `bad-response`."""
    if response.status_code >= 500:
        raise BackendError(FailureKind.UNAVAILABLE, f"HTTP {response.status_code} from {source}")
    try:
        return response.json()
    except ValueError:
        raise BackendError(FailureKind.BAD_RESPONSE, f"HTTP {response.status_code}, body is not JSON") from None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a 429 asks to wait: `Retry-After`, else Datadog's `X-RateLimit-Reset`; None when neither says."""
    for header in ("Retry-After", "X-RateLimit-Reset"):
        value = headers.get(header)
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def session_for(url: str) -> requests.Session:
    """A session whose environment settings (proxies, CA bundle) are read once, not per request.

    With `trust_env` requests re-reads proxy variables and ~/.netrc on every call; a gate asks
    some twenty queries, so that is measurable. The same variables are honoured, read here.
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 4
"""Shorter "secrets" (an empty password, a one-letter user) would blank ordinary words of a message."""


def without_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without `user:password@`, and those (decoded) for HTTP basic auth; None when it had none."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    credentials, _, host = parts.netloc.rpartition("@")
    user, _, password = credentials.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def secret_values(auth: tuple[str, str] | None, headers: Mapping[str, str]) -> tuple[str, ...]:
    """What must never appear in a message: the basic-auth password and the header that carries it (base64
    is no secrecy), every header value, and a header's credential without its scheme (`Bearer <token>`),
    as sent and percent-encoded."""
    found: set[str] = set()
    if auth is not None:
        basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode("latin-1", "replace")).decode()
        found |= {auth[1], basic}
    for value in headers.values():
        found.add(value)
        found.add(value.partition(" ")[2])
    found |= {quote(value, safe="") for value in found}
    return tuple(sorted((value for value in found if len(value) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by `<redacted>` (longest first, so no tail of one survives)."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


@contextmanager
def scrubbing(secrets: tuple[str, ...]) -> Iterator[None]:
    """Re-raise a `BackendError` raised inside with its message redacted, should it hold a secret."""
    try:
        yield
    except BackendError as error:
        if not any(secret in error.message for secret in secrets):
            raise
        raise BackendError(error.kind, redact(error.message, secrets), error.retry_after) from None
