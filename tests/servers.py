"""Running an ASGI app under a real uvicorn server in a thread, for tests that need real HTTP."""

from __future__ import annotations

import subprocess
import time
from contextlib import AbstractContextManager

import requests
from fastapi import FastAPI

from sloplane.evaluator.http.serving import serve_in_thread


def served_app(app: FastAPI) -> AbstractContextManager[str]:
    """Run the app on a free loopback port under the server `sloplane serve` runs (its deadlines included)."""
    return serve_in_thread(app)


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Poll `url` until it answers 200; fail with the process's stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "server exited")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError(f"{url} not up")
