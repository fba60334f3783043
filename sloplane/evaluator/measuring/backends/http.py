"""What every HTTP backend does the same way: send with a timeout, type transport failures, read JSON.

Prometheus and Datadog differ in what their answers mean (a 400 with `bad_data`, a 429 with rate-limit
headers, `errors` in a 200); they do not differ in how a timeout, a refused connection, a 5xx or a
body that is not JSON becomes a typed `BackendError`, so that is written once here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

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
