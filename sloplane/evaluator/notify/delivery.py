"""Sending one notice over HTTP, and what to do when that fails.

The receiver's answer decides: 2xx is delivered; a connection error, a timeout, 408 or 5xx is the
receiver's trouble and passes, so retry with exponential backoff and jitter (jitter, so that after
an outage every evaluator replica does not retry in the same instant); 429 says when to come back
(`Retry-After`), so honour it; any other answer means the event itself is refused (bad routing
key, malformed body) and retrying cannot help, so it is kept as dead with the error, for people.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from sloplane.evaluator.notify.config import Retry

ERROR_BODY_LIMIT = 500
"""How much of a refusal's body is kept with a dead delivery: enough to read the reason."""
DEFAULT_TIMEOUT = (5.0, 10.0)
"""Connect and read timeouts: a receiver that hangs must not stall every other delivery."""


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try."""

    delivered: bool
    retry: bool = False
    error: str | None = None
    retry_after: float | None = None
    """Seconds the receiver asked us to wait (429, or 503 with Retry-After)."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def post(
    session: requests.Session,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> Attempt:
    """POST a JSON body and classify the answer."""
    try:
        response = session.post(url, json=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout as error:
        return Attempt(False, retry=True, error=f"timeout: {error}")
    except requests.RequestException as error:
        return Attempt(False, retry=True, error=f"{type(error).__name__}: {error}")
    status = response.status_code
    if 200 <= status < 300:
        return Attempt(True)
    refusal = f"HTTP {status}: {response.text[:ERROR_BODY_LIMIT]}"
    wait = retry_after_seconds(response.headers.get("Retry-After"))
    if status in {408, 429} or status >= 500:
        return Attempt(False, retry=True, error=refusal, retry_after=wait)
    return Attempt(False, error=refusal)


def backoff(attempts: int, policy: Retry, rng: random.Random) -> float:
    """Seconds before the next try after `attempts` failures: doubling from `initial` up to `max`,
    scaled by a random factor in [0.5, 1] so that replicas spread out."""
    initial = policy.initial.total_seconds()
    ceiling = policy.max.total_seconds()
    base: float = min(ceiling, initial * 2.0 ** min(max(attempts - 1, 0), 62))
    return base * (0.5 + rng.random() / 2)
