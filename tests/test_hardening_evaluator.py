"""The evaluator against hostile or careless callers and a failing world (issue 10, defects 3 and 5-8, 10).

The real service (`build_service`: evaluator, SQLite decision log, release controls, HTTP app) under
uvicorn, its Prometheus either refusing connections or stalled (accepting them and never answering,
as a SIGSTOPped server does). Raw sockets where the defect lives below HTTP clients (bodies that
never finish, headers that never end).
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sloplane.evaluator.http.auth import new_token
from sloplane.evaluator.http.serving import serve_in_thread
from sloplane.evaluator.storage.controls import ControlsError
from sloplane.sandbox import free_port
from tests.conftest import ROOT, minimal, run_cli
from tests.served_evaluator import Running, running
from tests.servers import wait_until_up


class StalledServer:
    """Accepts connections and never answers: what a SIGSTOPped Prometheus looks like from outside."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self._held:
            connection.close()


@pytest.fixture
def evaluator(tmp_path: Path) -> Iterator[Running]:
    """Prometheus refuses connections: every measurement is a backend error, decided by policy."""
    with running(tmp_path, f"http://127.0.0.1:{free_port()}", timeout=5.0) as served:
        yield served


# --- defect 3: /metrics labels only from declared names ------------------------------------------------------


def _decision_series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("sloplane_gate_decisions_total{")]


def test_defect_3_names_a_caller_invents_never_become_metric_labels(evaluator: Running) -> None:
    with httpx.Client(base_url=evaluator.url, headers=evaluator.headers("gate"), timeout=30) as http:
        for known in ({"slo": "checkout-availability"}, {"slo": "checkout-staged", "stage": "canary"}):
            assert http.post("/v1/gates/evaluate", json=known).json()["decision"] in ("fail", "error")
        before = _decision_series(http.get("/metrics").text)
        for number in range(300):
            for body in (
                {"slo": f"invented-{number}"},
                {"service": f"service-{number}"},
                {"slo": "checkout-staged", "stage": f"stage-{number}"},
                {"slo": "checkout-availability", "stage": f"stage-{number}"},
            ):
                assert http.post("/v1/gates/evaluate", json=body).status_code == 200
        after = _decision_series(http.get("/metrics").text)
    declared = {"", "checkout-availability", "checkout-staged", "checkout", "canary", "error", "pass", "fail"}
    declared |= {"inconclusive"}
    values = {value for line in after for value in re.findall(r'="([^"]*)"', line)}
    assert values <= declared, sorted(values - declared)[:5]
    assert len(after) <= len(before) + 2, after


# --- defect 5: readiness answers from state ---------------------------------------------------------------------


def test_defect_5_readiness_never_waits_for_a_stalled_backend(tmp_path: Path) -> None:
    stalled = StalledServer()
    try:
        with running(tmp_path, stalled.url, timeout=5.0) as served:
            deadline = time.monotonic() + 10
            while stalled.accepted == 0 and time.monotonic() < deadline:  # the background probe is stuck on it
                time.sleep(0.01)
            probe_timeout = 3.0  # the rendered readinessProbe's timeoutSeconds
            for _ in range(3):
                answer = httpx.get(f"{served.url}/readyz", timeout=probe_timeout)
                assert answer.status_code == 200, answer.text
            gate = httpx.post(
                f"{served.url}/v1/gates/evaluate",
                json={"slo": "checkout-availability"},
                headers=served.headers("gate"),
                timeout=60,
            )
            assert gate.json()["decision"] in ("fail", "error")  # the read timed out: decided by onBackendError
            answer = httpx.get(f"{served.url}/readyz", timeout=probe_timeout)
            assert answer.status_code == 200 and "degraded" in answer.json()["reason"], answer.text
    finally:
        stalled.close()


# --- defect 8: a full disk ------------------------------------------------------------------------------------


FULL_DISK = (
    "import resource, runpy, signal, sys; "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY)); "
    "signal.signal(signal.SIGUSR1, lambda *_: resource.setrlimit(resource.RLIMIT_FSIZE, "
    "(resource.RLIM_INFINITY, resource.RLIM_INFINITY))); "
    "sys.argv = ['sloplane', *sys.argv[2:]]; runpy.run_module('sloplane', run_name='__main__')"
)
"""`python -m sloplane` on a disk that is full past `argv[1]` bytes per file, until SIGUSR1 makes room.

The kernel refuses writes past RLIMIT_FSIZE with EFBIG (Python ignores SIGXFSZ), which SQLite
reports as it reports ENOSPC: a write that did not happen."""


def test_defect_8_a_log_that_cannot_be_written_is_not_ready_and_says_so_once_per_failure(tmp_path: Path) -> None:
    (tmp_path / "slos.yaml").write_text(minimal(), encoding="utf-8")
    token, entry = new_token("ci", ["gate"])
    (tmp_path / "tokens.yaml").write_text(f"tokens: [{{name: ci, sha256: {entry.sha256}, scopes: [gate]}}]\n")
    (tmp_path / "tokens.yaml").chmod(0o600)
    port = free_port()
    command = [sys.executable, "-c", FULL_DISK, str(256 * 1024), "serve", str(tmp_path / "slos.yaml")]
    command += ["--port", str(port), "--prometheus", f"http://127.0.0.1:{free_port()}"]
    command += ["--tokens", str(tmp_path / "tokens.yaml"), "--db", str(tmp_path / "decisions.db")]
    command += ["--health-interval", "500ms"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/readyz", server)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            answers = []
            while not answers or answers[-1]["decision"] != "error":  # gate until the disk is full
                assert len(answers) < 500, "the disk never filled"
                answers.append(http.post("/v1/gates/evaluate", json={"slo": "checkout-availability"}).json())
            assert answers[0]["decision"] == "fail"  # recorded: the backend is down, failClosed
            full = [http.post("/v1/gates/evaluate", json={"slo": "checkout-availability"}).json() for _ in range(2)]
            assert {answer["reasons"][0]["code"] for answer in [answers[-1], *full]} == {"not-recorded"}
            ready = http.get("/readyz")
            assert ready.status_code == 503 and "decision log" in ready.json()["reason"], ready.text
            server.send_signal(signal.SIGUSR1)  # room on the disk again
            deadline = time.monotonic() + 20
            while http.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "did not become ready once the disk had room"
                time.sleep(0.1)
            assert http.post("/v1/gates/evaluate", json={"slo": "checkout-availability"}).json()["decision"] == "fail"
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    logged = stderr.decode()
    assert "Traceback" not in logged, logged
    failures = [line for line in logged.splitlines() if "decision not recorded" in line]
    assert len(failures) == 3, logged


# --- defect 6: instants at the limits --------------------------------------------------------------------------

EDGES = ["0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "9999-12-31T23:59:59.999999+00:00"]


@pytest.mark.parametrize("at", EDGES)
def test_defect_6_instants_at_the_limits_are_refused_not_crashed_on(evaluator: Running, at: str) -> None:
    with httpx.Client(base_url=evaluator.url, timeout=30) as http:
        for path in ("/v1/slos/checkout-availability", "/v1/slos/checkout-availability/burn"):
            answer = http.get(path, params={"at": at}, headers=evaluator.headers("read"))
            assert answer.status_code == 422, (path, answer.status_code, answer.text)
            assert "at" in answer.text and len(answer.content) < 2048
        before = evaluator.service.evaluator.log.count()
        gate = http.post(
            "/v1/gates/evaluate", json={"slo": "checkout-staged", "at": at}, headers=evaluator.headers("gate")
        )
        assert gate.status_code == 200 and gate.json()["decision"] == "error", gate.text
        assert gate.json()["reasons"][0]["code"] == "invalid-instant"
        assert evaluator.service.evaluator.log.count() == before + 1, "the error was not recorded"
        for path in ("/v1/freezes", "/v1/incidents", "/v1/decisions"):
            params = {"at": at} if path != "/v1/decisions" else {"since": at, "until": at}
            answer = http.get(path, params=params, headers=evaluator.headers("read"))
            assert answer.status_code in (200, 422), (path, answer.status_code, answer.text)
        assert http.get("/healthz").status_code == 200  # the same client, its connection intact


def test_defect_6_the_cli_refuses_instants_at_the_limits_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(minimal(), encoding="utf-8")
    dead = f"http://127.0.0.1:{free_port()}"
    for command in (
        ["gate", path, "--slo", "checkout-availability", "--prometheus", dead, "--db", tmp_path / "d.db"],
        ["evaluate", path, "--prometheus", dead],
    ):
        for at in ("0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z"):
            result = run_cli(*command, "--at", at)
            assert result.code == 2, (command[0], at, result.stderr)
            assert "--at" in result.stderr and "1970 to 2999" in result.stderr, result.stderr
            assert "internal error" not in result.stderr and "Traceback" not in result.stderr


# --- defect 7: authentication before bodies; one body limit; short error bodies -------------------------------


def _raw(url: str, request: bytes, body_chunks: list[bytes], timeout: float = 10.0) -> bytes:
    """Send a request head and as much body as the server takes; return what it answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(request)
        for chunk in body_chunks:
            try:
                connection.sendall(chunk)
            except OSError:  # the server answered and closed: what it said is what matters
                break
        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = connection.recv(65536)
            if not piece:
                break
            answer += piece
        return answer


def _head(method: str, path: str, length: int | None, token: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: sloplane", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


HUNDRED_MB = 100 * 2**20


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/freezes"), ("POST", "/v1/incidents"), ("DELETE", "/v1/freezes/fz-00000000")],
)
def test_defect_7_an_unauthenticated_body_is_never_read(evaluator: Running, method: str, path: str) -> None:
    answer = _raw(evaluator.url, _head(method, path, HUNDRED_MB), [b"x" * 65536])
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_defect_7_one_body_limit_for_every_route(evaluator: Running) -> None:
    admin = evaluator.tokens["admin"]
    declared = _raw(evaluator.url, _head("POST", "/v1/freezes", HUNDRED_MB, admin), [b"x" * 65536])
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    chunk = b"x" * 32768
    chunked = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 8
    streamed = _raw(evaluator.url, _head("POST", "/v1/incidents", None, admin), chunked)
    assert streamed.startswith(b"HTTP/1.1 413"), streamed[:200]
    gate = _raw(evaluator.url, _head("POST", "/v1/gates/evaluate", HUNDRED_MB, evaluator.tokens["gate"]), [chunk])
    assert gate.startswith(b"HTTP/1.1 200"), gate[:200]  # the gate contract: an authorised caller gets a decision


def test_defect_7_a_refused_body_is_never_echoed_back(evaluator: Running) -> None:
    huge = "x" * 30_000  # with two of them, still under the body limit: refused by validation
    for path, body in (
        ("/v1/freezes", {"reason": huge}),
        ("/v1/freezes", {"reason": "r", "service": huge}),
        ("/v1/incidents", {"title": "t", "services": [huge] * 1}),
        ("/v1/incidents", {"title": huge, "unknown": huge}),
    ):
        answer = httpx.post(evaluator.url + path, json=body, headers=evaluator.headers("admin"), timeout=30)
        assert answer.status_code == 422, answer.text[:200]
        assert len(answer.content) < 4096, (path, len(answer.content))


# --- defect 10: NUL and other control characters in free text ---------------------------------------------------


def test_defect_10_control_characters_are_refused_in_freezes_and_incidents(evaluator: Running) -> None:
    admin = evaluator.headers("admin")
    for path, body in (
        ("/v1/freezes", {"service": "check\u0000out", "reason": "r"}),
        ("/v1/freezes", {"reason": "re\u0000ason"}),
        ("/v1/incidents", {"title": "db\u0000down"}),
        ("/v1/incidents", {"title": "db down", "services": ["a\u0007b"]}),
    ):
        answer = httpx.post(evaluator.url + path, json=body, headers=admin, timeout=30)
        assert answer.status_code == 422, (body, answer.text)
    assert evaluator.service.controls.freezes(at=None, active_only=False) == []
    with pytest.raises(ControlsError, match="control character"):
        evaluator.service.controls.freeze("check\x00out", "reason", "alice")


def test_defect_10_half_open_connections_are_closed(tmp_path: Path) -> None:
    """Headers that never end, and idle keep-alive connections, are closed by the server."""
    with (
        running(tmp_path, f"http://127.0.0.1:{free_port()}", timeout=5.0) as served,
        serve_in_thread(served.service.app, header_timeout=0.5, keep_alive=0.5) as url,
    ):
        host, port = url.removeprefix("http://").split(":")
        partial = [socket.create_connection((host, int(port)), timeout=10) for _ in range(50)]
        for connection in partial:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: never ends
        idle = socket.create_connection((host, int(port)), timeout=10)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 10
        for connection in [*partial, idle]:
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            leftover = connection.recv(65536)  # b"" once the server closes it
            assert leftover in (b"",) or leftover.startswith(b"HTTP/1.1 408"), leftover[:100]
            connection.close()


def test_defect_10_the_local_state_folder_is_ignored_by_git() -> None:
    ignored = (Path(__file__).resolve().parent.parent / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".sloplane/" in ignored
