"""Real `sloplane serve` replicas as processes, and the local parts a failover test watches them through.

- `start_replica`: one `sloplane serve` on a free port, its log in a file (a pipe nobody reads would fill
  during an outage and stall the server on its own logging), killed or stopped by the test.
- `HoldingReceiver`: PagerDuty and webhooks as `fake_http.EventReceiver`, that can keep the next event (as
  PagerDuty keeps an event it has read) and hold its answer: a POST accepted whose sender never learns it.
- `S3Proxy`: forwards everything to moto, and can let the next object write land in moto and hold its answer:
  an export object written whose exporter never learns it.
- `moto_server`, `leader` (the `application_name` of the session holding the leader's lock), `until`.

Why holds rather than sleeps: a SIGKILL "while a delivery and an export are in flight" is then exactly that,
every run, instead of a kill that lands before, between or after them by luck.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests
import yaml

from sloplane.evaluator.http.auth import new_token
from sloplane.evaluator.storage.leadership import SESSION_PREFIX, current_leader
from tests.conftest import ROOT
from tests.fake_http import EventReceiver, Reply

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
HOLD_LIMIT_SECONDS = 60.0
"""A held answer is let go after this even if the test forgets to (a failed test must not hang its teardown)."""
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailers", "transfer-encoding", "upgrade"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def until(
    condition: Callable[[], bool], timeout: float, what: str | Callable[[], str], interval: float = 0.02
) -> float:
    """Poll until `condition()` holds; the seconds it took. A safety timeout only: it fails the test naming `what`
    (a callable: what it says then, e.g. what is still missing), it is not a bound on speed being asserted."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout:g} s: {what() if callable(what) else what}")
        time.sleep(interval)
    return time.monotonic() - started


# -- replicas -----------------------------------------------------------------------------------------------


def write_tokens(folder: Path) -> dict[str, dict[str, str]]:
    """A tokens file with a `gate`, `admin` and `read` token in `folder`; the headers that carry each."""
    issued = {scope: new_token(scope, [scope]) for scope in ("gate", "admin", "read")}
    tokens = {"tokens": [entry.to_dict() for _, entry in issued.values()]}
    (folder / "tokens.yaml").write_text(yaml.safe_dump(tokens), encoding="utf-8")
    return {scope: {"Authorization": f"Bearer {token}"} for scope, (token, _) in issued.items()}


@dataclass
class Replica:
    """One `sloplane serve` process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def session(self) -> str:
        """Its election session's `application_name` (`storage.leadership.session_name` in that process)."""
        return f"{SESSION_PREFIX} {socket.gethostname()}/{self.process.pid}"

    def kill(self) -> None:
        """SIGKILL: no `finally`, no last export, no claims handed back, sessions cut by the kernel."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        """SIGTERM, as Kubernetes stops a pod (a last export, claims handed back); killed if it hangs."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def output(self) -> str:
        """The end of what it logged: for failure messages."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def start_replica(folder: Path, name: str, options: list[str], env: dict[str, str] | None = None) -> Replica:
    """`sloplane serve <folder>/slos.yaml --tokens <folder>/tokens.yaml --port P <options>`, up (200 on /healthz)."""
    port = free_port()
    command = [sys.executable, "-m", "sloplane", "serve", str(folder / "slos.yaml")]
    command += ["--tokens", str(folder / "tokens.yaml"), "--port", str(port), *options]
    log = folder / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})}
        )
    replica = Replica(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{replica.output()}")
        try:
            if requests.get(f"{replica.url}/healthz", timeout=1).status_code == 200:
                return replica
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            replica.stop()
            raise AssertionError(f"{name} did not answer /healthz within 60 s:\n{replica.output()}")
        time.sleep(0.1)


def leader(url: str) -> str | None:
    """The `application_name` of the session holding the leader's lock in the database at `url` (None: nobody)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        return current_leader(connection)


# -- the receiver -------------------------------------------------------------------------------------------


def dedup_key(event: dict[str, object]) -> str:
    """The key PagerDuty merges by (`dedup_key`), or the one sloplane's webhook body carries (`dedupKey`)."""
    return str(event.get("dedup_key") or event.get("dedupKey"))


@dataclass
class HoldingReceiver(EventReceiver):
    """An `EventReceiver` that keeps when each event arrived, and can hold one answer (`hold_next`)."""

    arrivals: list[tuple[float, str, str]] = field(default_factory=list)
    """(monotonic time, path, dedup key) of every accepted event, in arrival order."""
    held: threading.Event = field(default_factory=threading.Event)
    held_event: tuple[str, str] | None = None
    """(path, dedup key) of the event whose answer was held."""
    _armed: bool = False
    _release: threading.Event = field(default_factory=threading.Event)

    def hold_next(self) -> None:
        """Keep the next event, then answer it only after `release()`."""
        with self.lock:
            self._armed = True

    def release(self) -> None:
        self._release.set()

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        reply = super().answer(method, path, body)
        if not 200 <= reply.status < 300:
            return reply
        event = json.loads(body) if body else {}
        with self.lock:
            self.arrivals.append((time.monotonic(), path, dedup_key(event)))
            hold, self._armed = self._armed, False
            if hold:
                self.held_event = (path, dedup_key(event))
        if hold:
            self.held.set()
            self._release.wait(HOLD_LIMIT_SECONDS)
        return reply

    def counts(self) -> dict[tuple[str, str], int]:
        """How many times each (path, dedup key) was accepted."""
        found: dict[tuple[str, str], int] = {}
        with self.lock:
            for _, path, key in self.arrivals:
                found[path, key] = found.get((path, key), 0) + 1
        return found


# -- S3 ----------------------------------------------------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 in its own process; its URL."""
    port = free_port()
    server = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            assert server.poll() is None, f"moto_server exited with {server.returncode}"
            try:
                return requests.get(f"{url}/moto-api/", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        until(answers, 30, "moto_server answering", interval=0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@dataclass
class S3Proxy:
    """Forwards every request to `target` (moto) and keeps the object writes' paths and statuses; after
    `hold_next_write`, the next object write is made (moto has the object) and its answer held until `release`."""

    target: str
    url: str = ""
    writes: list[tuple[str, int]] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    held_path: str | None = None
    _armed: bool = False
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hold_next_write(self) -> None:
        with self._lock:
            self._armed = True

    def release(self) -> None:
        self._release.set()

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request to moto; its status, headers and body."""
        where = urlsplit(self.target)
        connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def written(self, method: str, path: str, status: int) -> None:
        """Note an object write; hold its answer if armed (moto has already stored it)."""
        if method != "PUT" or "/decisions-" not in path:
            return
        with self._lock:
            self.writes.append((path, status))
            hold = self._armed and status == 200
            if hold:
                self._armed, self.held_path = False, path
        if hold:
            self.held.set()
            self._release.wait(HOLD_LIMIT_SECONDS)


@contextmanager
def s3_proxy(target: str) -> Iterator[S3Proxy]:
    """An `S3Proxy` in front of `target` on a free loopback port."""
    proxy = S3Proxy(target)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # so that botocore's `Expect: 100-continue` is answered at once

        def _proxy(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", ""):
                raise AssertionError("a chunked request body: this proxy forwards Content-Length bodies only")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in {*_HOP_BY_HOP, "expect"}}
            status, answer_headers, answer = proxy.forward(self.command, self.path, headers, body)
            proxy.written(self.command, self.path, status)
            try:
                self.send_response(status)
                for key, value in answer_headers:
                    if key.lower() not in {*_HOP_BY_HOP, "content-length", "date", "server"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # its exporter is gone (killed): nobody to answer

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy  # noqa: N815

        def log_message(self, *_: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield proxy
    finally:
        proxy.release()
        server.shutdown()
        server.server_close()
