"""The evaluator's own backend credentials never appear in an answer, a record or a log (issue 16).

The evaluator holds credentials of its own: a Prometheus URL with `user:password@` (or headers such
as `Authorization: Bearer ...`), Datadog's `DD_API_KEY` and `DD_APP_KEY`. Messages about backend
faults travel far: a measurement's error becomes a decision's reason, which is recorded, answered
over HTTP (`/v1/gates/evaluate`, `/v1/slos/{name}`, `/v1/decisions`), said by `/readyz` and logged.
So each backend is made to fail every way it can — refused (401/403), broken (500), an error that
echoes the request's credentials back (as a misconfigured proxy's error page does), a connection
that is refused — and every answer, the files the evaluator wrote, the logs and the `serve`
process's output are searched for every form of every secret.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from sloplane.cli.backends import DatadogSettings
from sloplane.evaluator.http.app import create_app
from sloplane.evaluator.http.auth import Scope, TokenStore, new_token
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.measuring.backends.breaker import CircuitBreaker
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.server import EvaluatorService, ServerConfig, build_service
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from tests.datadog_api import SCALAR, VALIDATE, DatadogAPI, Fault
from tests.evaluator_data import load_fleet
from tests.fake_http import Reply, Script, serve
from tests.servers import served_app, wait_until_up

PROMETHEUS_USER = "sloplane-reader"
PROMETHEUS_PASSWORD = "pr0m-S3CRET-pa55w0rd-7f3a9c"
PROMETHEUS_BEARER = "prom_bearer_SECRET_5d1e8b0c44aa"
DD_API_KEY = "ddapi_SECRET_0c9f1e2d3b4a59687766554433221100"
DD_APP_KEY = "ddapp_SECRET_a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4"
BASIC = base64.b64encode(f"{PROMETHEUS_USER}:{PROMETHEUS_PASSWORD}".encode()).decode()
SECRETS = (PROMETHEUS_PASSWORD, PROMETHEUS_BEARER, DD_API_KEY, DD_APP_KEY, BASIC)
"""Every secret, and the one derived form that decodes to one (HTTP basic auth's base64)."""

FLEET = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: prom-checkout}
spec:
  service: checkout
  owners: {team: payments}
  objective: 99.9
  sli: {http: {metric: http_requests_total, selector: {job: checkout}}}
---
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: dd-checkout}
spec:
  service: checkout
  owners: {team: payments}
  objective: 99.9
  targets: [prometheus, datadog]
  sli: {http: {metric: http_requests_total, selector: {job: checkout}}}
"""


def _leaks(text: str) -> list[str]:
    """The secrets (by their first characters) found in `text`."""
    return [secret[:10] for secret in SECRETS if secret in text]


@dataclass
class EchoingPrometheus(Script):
    """A Prometheus (or the proxy before it) whose every answer quotes the credentials it was sent."""

    replies: list[Reply] = field(default_factory=lambda: [Reply(200)])
    mode: str = "ok"

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        sent = self.requests[-1][2] if self.requests else {}
        quoted = f"rejected Authorization {sent.get('Authorization')!r} from {sent.get('Host')}"
        if self.mode == "ok":
            payload = {"status": "success", "data": {"resultType": "vector", "result": []}}
            return Reply(200, json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        if self.mode == "html-500":
            return Reply(500, f"<html><body>500 {quoted}</body></html>".encode(), headers={"Content-Type": "text/html"})
        status = {"401": 401, "403": 403, "bad-data": 400, "200-error": 200}[self.mode]
        kind = "bad_data" if self.mode == "bad-data" else "unauthorized"
        payload = {"status": "error", "errorType": kind, "error": quoted}
        return Reply(status, json.dumps(payload).encode(), headers={"Content-Type": "application/json"})


PROMETHEUS_MODES = ("ok", "401", "403", "html-500", "bad-data", "200-error")
DATADOG_FAULTS = {
    "ok": None,
    "403": Fault.forbidden(),
    "500": Fault.server_error(500),
    "400-echo": Fault.errors_list([f"invalid DD-API-KEY {DD_API_KEY} / {DD_APP_KEY}"], status=400),
    "200-echo": Fault.errors_string(f"key {DD_APP_KEY} lacks timeseries_query"),
}


@pytest.fixture
def datadog() -> Iterator[DatadogAPI]:
    api = DatadogAPI(api_key=DD_API_KEY, app_key=DD_APP_KEY)
    with api:
        yield api


@pytest.fixture
def prometheus() -> Iterator[tuple[EchoingPrometheus, str]]:
    script = EchoingPrometheus()
    with serve(script) as url:
        yield script, url


def _with_credentials(url: str) -> str:
    return url.replace("http://", f"http://{PROMETHEUS_USER}:{PROMETHEUS_PASSWORD}@")


def _exercise(http: httpx.Client, headers: dict[str, str]) -> list[str]:
    """Every answer that could carry a backend's message: gates, SLOs, burn, decisions, readiness, metrics."""
    answers: list[httpx.Response] = []
    for slo in ("prom-checkout", "dd-checkout"):
        answers.append(http.post("/v1/gates/evaluate", json={"slo": slo, "revision": "r1"}, headers=headers))
        answers.append(http.get("/v1/gates/evaluate", params={"slo": slo}, headers=headers))
        answers.append(http.get(f"/v1/slos/{slo}", headers=headers))
        answers.append(http.get(f"/v1/slos/{slo}/burn", headers=headers))
    answers.append(http.post("/v1/gates/evaluate", json={"service": "checkout"}, headers=headers))
    answers += [http.get("/v1/decisions", params={"limit": 1000}, headers=headers), http.get("/readyz")]
    answers.append(http.get("/metrics"))
    return [f"{answer.status_code} {dict(answer.headers)} {answer.text}" for answer in answers]


def _fresh(service: EvaluatorService) -> None:
    """Every mode reaches the backends: nothing cached, no breaker left open by the mode before."""
    measurer = service.evaluator.measurer
    for cache in (measurer.cache, measurer.measurements, measurer.datadog_cache):
        assert cache is not None
        cache.ttl = 0.0
    prometheus = service.evaluator.backend.backend
    assert isinstance(prometheus, PrometheusBackend)
    prometheus.breaker = CircuitBreaker()
    assert measurer.datadog is not None
    measurer.datadog.breaker = CircuitBreaker()


def _files(folder: Path) -> str:
    """Everything the evaluator wrote (decision log, controls, outbox), as text."""
    return "".join(path.read_bytes().decode("latin-1") for path in folder.rglob("*") if path.is_file())


def test_no_backend_credential_in_answers_records_or_logs(
    tmp_path: Path,
    datadog: DatadogAPI,
    prometheus: tuple[EchoingPrometheus, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    script, url = prometheus
    token, entry = new_token("ci", [Scope.ADMIN])
    settings = DatadogSettings(datadog.url, DD_API_KEY, DD_APP_KEY, timedelta(0))
    state = tmp_path / "state"
    state.mkdir()
    config = ServerConfig(
        _with_credentials(url), state / "decisions.db", TokenStore([entry]), timeout=2.0, datadog=settings.counts
    )
    service = build_service(load_fleet(tmp_path, FLEET), config)
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG), served_app(service.app) as base:
        with httpx.Client(base_url=base, timeout=30) as http:
            for mode, fault in zip(PROMETHEUS_MODES, DATADOG_FAULTS.values(), strict=False):
                script.mode = mode
                datadog.clear_faults()
                if fault is not None:
                    datadog.fail(SCALAR, fault, times=None)
                    datadog.fail(VALIDATE, fault, times=None)
                _fresh(service)
                texts += [f"[{mode}] {text}" for text in _exercise(http, {"Authorization": f"Bearer {token}"})]
        service.close()
    sent = [headers.get("Authorization", "") for _, _, headers, _ in script.requests]
    assert f"Basic {BASIC}" in sent, "the Prometheus credentials were not sent as basic auth"
    faults = {request.fault for request in datadog.requests(SCALAR)}
    assert {None, "403", "500-html", "errors-list", "errors-string"} <= faults, faults  # every fault was served
    assert any("HTTP 401" in text or "unauthorized" in text for text in texts), "no Prometheus refusal was answered"
    assert any("<redacted>" in text for text in texts), "no echoed credential reached a message to be redacted"
    for text in texts:
        assert not _leaks(text), (_leaks(text), text[:2000])
    assert not _leaks(_files(state)), "a secret was written into the evaluator's files"
    logged = caplog.text + "".join(str(record.exc_info) for record in caplog.records)
    assert not _leaks(logged), _leaks(logged)


def test_prometheus_headers_and_an_unreachable_url_leak_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Credentials in headers (a Bearer token) and in the URL of a Prometheus that refuses connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://{PROMETHEUS_USER}:{PROMETHEUS_PASSWORD}@127.0.0.1:{probe.getsockname()[1]}"
    fleet = load_fleet(tmp_path, FLEET.split("---\n", maxsplit=1)[0])
    token, entry = new_token("ci", [Scope.ADMIN])
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for url, headers in ((closed, {}), (closed, {"Authorization": f"Bearer {PROMETHEUS_BEARER}"})):
            backend = PrometheusBackend(url, headers=headers, timeout=1.0, retries=0)
            log = SqliteDecisionLog(tmp_path / "decisions.db")
            evaluator = Evaluator(fleet, backend, log, controls=ReleaseControls(tmp_path / "controls.db"))
            app = create_app(evaluator, TokenStore([entry]), EvaluatorMetrics())
            with served_app(app) as base, httpx.Client(base_url=base, timeout=30) as http:
                texts += _exercise(http, {"Authorization": f"Bearer {token}"})
            texts.append(str(backend.healthy()))
    assert any("127.0.0.1" in text for text in texts), "the failure was not answered at all"
    for text in texts:
        assert not _leaks(text), (_leaks(text), text[:2000])
    assert not _leaks(_files(tmp_path)) and not _leaks(caplog.text)


def test_serve_says_nothing_secret_on_its_output(
    tmp_path: Path, datadog: DatadogAPI, prometheus: tuple[EchoingPrometheus, str]
) -> None:
    """The real `sloplane serve`, its keys from the environment, against backends that fail and echo."""
    script, url = prometheus
    script.mode = "403"
    datadog.fail(SCALAR, DATADOG_FAULTS["400-echo"], times=None)
    (tmp_path / "slos").mkdir()
    (tmp_path / "slos" / "fleet.yaml").write_text(FLEET)
    token, entry = new_token("ci", [Scope.ADMIN])
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(json.dumps(TokenStore([entry]).to_dict()))
    tokens.chmod(0o600)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "sloplane", "serve", str(tmp_path / "slos"), "--tokens", str(tokens)]
    command += ["--prometheus", _with_credentials(url), "--datadog", datadog.url, "--datadog-delay", "0s"]
    command += ["--db", str(tmp_path / "decisions.db"), "--port", str(port), "--health-interval", "1s"]
    environment = {**os.environ, "DD_API_KEY": DD_API_KEY, "DD_APP_KEY": DD_APP_KEY}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            texts = _exercise(http, {"Authorization": f"Bearer {token}"})
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    output = stdout.decode() + stderr.decode()
    assert "sloplane evaluator on" in output
    assert not _leaks(output), _leaks(output)
    for text in texts:
        assert not _leaks(text), (_leaks(text), text[:2000])
    assert not _leaks(_files(tmp_path / "slos")) and not _leaks(
        (tmp_path / "decisions.db").read_bytes().decode("latin-1")
    )


def test_the_evaluators_own_objects_hold_no_credential() -> None:
    """The backends themselves: their URL (named in every message) has no `user:password@`, their repr no key."""
    backend = PrometheusBackend(f"https://{PROMETHEUS_USER}:{PROMETHEUS_PASSWORD}@prometheus.example:9090/")
    assert backend.url == "https://prometheus.example:9090"
    settings = DatadogSettings("https://api.datadoghq.eu", DD_API_KEY, DD_APP_KEY, timedelta(0))
    for value in (backend, settings, settings.counts()):
        assert not _leaks(repr(value)) and not _leaks(str(value))
    assert not _leaks(str(vars(backend).get("url")))


@pytest.mark.parametrize("command", [["serve"], ["decisions"], ["freeze", "create"], ["incident", "open"]])
def test_a_database_url_from_the_environment_is_shown_in_help_without_its_password(command: list[str]) -> None:
    """`--db` defaults from $SLOPLANE_DB, which the evaluator's pod sets from a Secret: `--help` shows where,
    never the password."""
    environment = {**os.environ, "SLOPLANE_DB": "postgresql://sloplane:hunter2-secret@db.example:5432/gates"}
    completed = subprocess.run(
        [sys.executable, "-m", "sloplane", *command, "--help"],
        env={**environment, "COLUMNS": "240"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "hunter2" not in completed.stdout + completed.stderr
    assert "db.example" in completed.stdout
