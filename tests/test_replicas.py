"""Two `sloplane serve` processes on one PostgreSQL, as two replicas behind one Service: any replica
answers any gate, every decision lands in one chain exactly once, and a freeze created on one replica
stops gates on the other at once.

Real parts: PostgreSQL (tests/postgres.py), a Prometheus with backfilled history (the sandbox), and the
`sloplane serve` command itself in two processes.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from sloplane.evaluator.http.auth import new_token
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from sloplane.sandbox import PrometheusSandbox, aligned_now, http_traffic, incident_day
from tests.conftest import ROOT, minimal
from tests.servers import wait_until_up

pytest_plugins = ("tests.postgres",)

GATES = 1000
SLO = "checkout-availability"


@dataclass
class Replicas:
    urls: list[str]
    headers: dict[str, dict[str, str]]
    database: str


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    traffic = http_traffic(incident_day(), end=aligned_now(), labels={"job": "checkout"})
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), [traffic]) as sandbox:
        yield sandbox


@pytest.fixture
def replicas(tmp_path: Path, prometheus: PrometheusSandbox, postgres_url: str) -> Iterator[Replicas]:
    """Two `sloplane serve` on one database, with a gate and an admin token."""
    (tmp_path / "slos.yaml").write_text(minimal(), encoding="utf-8")
    issued = {scope: new_token(scope, [scope]) for scope in ("gate", "admin", "read")}
    tokens = {"tokens": [entry.to_dict() for _, entry in issued.values()]}
    (tmp_path / "tokens.yaml").write_text(yaml.safe_dump(tokens), encoding="utf-8")
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(2):
            port = free_port()
            command = [sys.executable, "-m", "sloplane", "serve", str(tmp_path / "slos.yaml")]
            command += ["--prometheus", prometheus.url, "--tokens", str(tmp_path / "tokens.yaml")]
            command += ["--port", str(port), "--db", postgres_url]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
            processes.append(process)
            url = f"http://127.0.0.1:{port}"
            wait_until_up(f"{url}/healthz", process, timeout=60)
            urls.append(url)
        headers = {scope: {"Authorization": f"Bearer {token}"} for scope, (token, _) in issued.items()}
        yield Replicas(urls, headers, postgres_url)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _gate(client: httpx.Client, url: str, headers: dict[str, str], revision: str) -> dict[str, object]:
    response = client.post(f"{url}/v1/gates/evaluate", json={"slo": SLO, "revision": revision}, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_a_thousand_concurrent_gates_across_two_replicas_make_one_chain(replicas: Replicas) -> None:
    limits = httpx.Limits(max_connections=32)
    with httpx.Client(timeout=60, limits=limits) as client, ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(
            pool.map(
                lambda n: _gate(client, replicas.urls[n % 2], replicas.headers["gate"], f"r{n}"),
                range(GATES),
            )
        )
    assert len(answers) == GATES
    with PostgresDecisionLog(replicas.database) as log:
        assert log.count() == GATES
        report = log.verify()
        assert report.broken is None, report.broken
        assert report.records == GATES
        rows = list(log.chain_rows())
    assert [row["seq"] for row in rows] == list(range(1, GATES + 1)), "one contiguous sequence"
    ids = Counter(str(row["id"]) for row in rows)
    assert len(ids) == GATES and ids.most_common(1)[0][1] == 1, "no decision recorded twice"
    answered = [str(record["id"]) for answer in answers for record in answer["decisions"]]  # type: ignore[attr-defined]
    assert sorted(answered) == sorted(ids), "every answer is a recorded decision, and every record an answer"


def test_a_freeze_created_on_one_replica_stops_gates_on_the_other_at_once(replicas: Replicas) -> None:
    first, second = replicas.urls
    with httpx.Client(timeout=60) as client:
        before = _gate(client, second, replicas.headers["gate"], "before")
        created = client.post(
            f"{first}/v1/freezes",
            json={"service": "checkout", "reason": "db migration"},
            headers=replicas.headers["admin"],
        )
        assert created.status_code == 201, created.text
        after = _gate(client, second, replicas.headers["gate"], "after")
        listed = client.get(f"{second}/v1/freezes", headers=replicas.headers["read"]).json()
    assert [freeze["id"] for freeze in listed] == [created.json()["id"]]
    assert "db migration" not in str(before["reasons"])
    assert after["decision"] == "fail", after["reasons"]
    assert "db migration" in str(after["reasons"]), after["reasons"]
