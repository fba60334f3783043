"""`make demo`'s Datadog part: the payments SLO gated on Datadog data, from a local stand-in for Datadog's API.

No Datadog account is reachable here, so the demo starts tests/datadog_api.py — a local server on
127.0.0.1 that answers Datadog's scalar query API as Datadog does (aligned buckets, rate-limit headers)
— and says so. It holds a day of payments traffic as APM trace metrics, with a 25-minute burst of
errors (30% of requests) ending now. The demo then runs the real `sloplane gate` command with
`--datadog <stand-in URL>` and keys in DD_API_KEY/DD_APP_KEY: an hour before the burst the gate passes,
at its end it fails on the fast page. It prints both decisions and how many requests each gate sent.

Run: `python -m tests.datadog_demo examples/slos` (from the repository's root).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.datadog_api import SCALAR, DatadogAPI

SLO = "payments-availability"
TAGS = {"service": "payments", "env": "prod"}
REQUESTS_PER_MINUTE = 1200.0
BASELINE = 0.0002
BURST, BURST_RATIO = timedelta(minutes=25), 0.3


def _history(api: DatadogAPI, end: datetime) -> None:
    """A day of payments traffic as Datadog's APM trace metrics count it, the burst at its end."""
    start = end - timedelta(days=1)
    hits, errors = [], []
    minute = start
    while minute < end:
        ratio = BURST_RATIO if minute >= end - BURST else BASELINE
        hits.append((minute.timestamp(), REQUESTS_PER_MINUTE))
        errors.append((minute.timestamp(), REQUESTS_PER_MINUTE * ratio))
        minute += timedelta(minutes=1)
    api.add_series("trace.http.request.hits", TAGS, hits)
    api.add_series("trace.http.request.errors", TAGS, errors)


def _gate(paths: str, url: str, at: datetime, db: Path) -> subprocess.CompletedProcess[str]:
    """`sloplane gate` as a pipeline would run it, reading Datadog (the stand-in) only."""
    keys = {"DD_API_KEY": "demo-api-key", "DD_APP_KEY": "demo-app-key"}
    command = [sys.executable, "-m", "sloplane", "gate", paths, "--slo", SLO, "--datadog", url]
    command += ["--datadog-delay", "0s", "--at", at.isoformat(), "--db", str(db), "--revision", "payments-v42"]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **keys}, check=False, timeout=120)


def main(paths: str) -> int:
    """Run the story; 0 when both decisions came out as they should."""
    end = datetime.fromtimestamp(datetime.now(UTC).timestamp() // 60 * 60, UTC)
    api = DatadogAPI()
    _history(api, end)
    with api, tempfile.TemporaryDirectory(prefix="sloplane-datadog-demo-") as folder:
        print(
            f"LOCAL STAND-IN for Datadog's API at {api.url} (tests/datadog_api.py, not Datadog): a day of "
            f"payments traffic, {BURST_RATIO:.0%} errors for the last {BURST.seconds // 60} minutes"
        )
        expected = {"an hour before the burst": 0, "at the end of the burst": 1}
        ok = True
        for label, at in (
            ("an hour before the burst", end - BURST - timedelta(hours=1)),
            ("at the end of the burst", end),
        ):
            before = len(api.requests(SCALAR))
            finished = _gate(paths, api.url, at, Path(folder) / "decisions.db")
            sent = len(api.requests(SCALAR)) - before
            print(f"\n$ sloplane gate {paths} --slo {SLO} --datadog {api.url} --at {at:%Y-%m-%d %H:%M} UTC, {label}:")
            print(finished.stdout.rstrip())
            print(f"({sent} scalar queries sent to the stand-in; exit code {finished.returncode})")
            if finished.stderr.strip():
                print(finished.stderr.rstrip(), file=sys.stderr)
            ok = ok and finished.returncode == expected[label]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "examples/slos"))
