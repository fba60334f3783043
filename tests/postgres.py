"""A throw-away PostgreSQL cluster for tests: `initdb` in a temporary folder, `pg_ctl start`, removed at the end.

Why a real server: the PostgreSQL stores rely on what only the server does (row locks ordering appends
across processes, advisory locks, triggers, roles and privileges); a fake would prove nothing of that.
Debian's `postgresql` package (installed by `tools/install-system-packages.sh`) puts the binaries in
`/usr/lib/postgresql/<version>/bin`. A missing install fails the tests that need it, loudly: never a skip.

Each pytest-xdist worker is its own process and starts its own cluster (session scope), in its own
folder: nothing is shared between workers. Each test gets a fresh database (`postgres_url`). The owner
(`postgres`, superuser) connects through a unix socket with `trust`; TCP on 127.0.0.1 (a free port)
requires a password (scram-sha-256), so the tests of credentials can use real authentication.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the `postgres` user
(`runuser`), in folders it owns. No fsync, for speed (the cluster is thrown away); commits are still
written before they return (`synchronous_commit` stays on), so a server stopped as if it crashed keeps them.

Test modules load the fixtures with `pytest_plugins = ("tests.postgres",)`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

BINARIES = Path("/usr/lib/postgresql")
START_ATTEMPTS = 3
"""A free port can be taken by someone else between choosing it and the server binding it: try again."""


class PostgresMissingError(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def postgres_bin() -> Path:
    """The folder of the newest installed PostgreSQL's `initdb` and `pg_ctl` (Debian's layout, else PATH)."""
    found = [
        folder
        for folder in BINARIES.glob("*/bin")
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists() and folder.parent.name.isdigit()
    ]
    if found:
        return max(found, key=lambda folder: int(folder.parent.name))
    on_path = shutil.which("pg_ctl")
    if on_path and (Path(on_path).parent / "initdb").exists():
        return Path(on_path).parent
    raise PostgresMissingError(
        f"PostgreSQL is not installed (no initdb and pg_ctl in {BINARIES}/*/bin or on PATH): "
        "run tools/install-system-packages.sh (`make test` does)"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """One PostgreSQL server on a unix socket (trust) and 127.0.0.1 (password), for as long as the tests need it."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.as_root = os.geteuid() == 0
        # Short and under /tmp: a unix socket's path is limited to ~100 bytes.
        self.folder = Path(tempfile.mkdtemp(prefix="sloplane-pg-"))
        self.data = self.folder / "data"
        self.socket = self.folder / "socket"
        self.log = self.folder / "server.log"
        self.port = 0
        try:
            self.socket.mkdir()
            if self.as_root:
                shutil.chown(self.folder, "postgres", "postgres")
                shutil.chown(self.socket, "postgres", "postgres")
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                      "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _run(self, tool: str, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / tool), *map(str, args)]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if check and completed.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({completed.returncode}): {completed.stderr}{completed.stdout}\n{log}")
        return completed

    def start(self) -> None:
        """Start the server (on the port it had, else a free one; another free one if that was taken)."""
        for attempt in range(START_ATTEMPTS):
            port = self.port or free_port()
            options = (
                f"-k {self.socket} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=200"
            )
            started = self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start", check=False)
            if started.returncode == 0:
                self.port = port
                return
            if attempt == START_ATTEMPTS - 1 or "already in use" not in self.log.read_text():
                raise RuntimeError(f"pg_ctl start failed: {started.stderr}{started.stdout}\n{self.log.read_text()}")
            self.port = 0

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends its sessions and keeps every commit, `immediate` is a crash."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        """The owner's URL through the unix socket (trust: no password)."""
        return f"postgresql://{user}@/{database}?host={self.socket}&port={self.port}"

    def tcp_url(self, database: str, user: str, password: str | None) -> str:
        """A URL over TCP on 127.0.0.1, where the server asks for the password."""
        userinfo = user if password is None else f"{user}:{password}"
        return f"postgresql://{userinfo}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run statements as the owner (autocommit); the rows of the last one, if it returns any."""
        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def create_database(self) -> str:
        """A new empty database; its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        if not re.fullmatch(r"t_[0-9a-f]{16}", name):
            raise ValueError(f"not a test database: {name}")
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def running_cluster() -> Iterator[PostgresCluster]:
    """A started cluster, stopped and removed afterwards (also when starting it failed half-way)."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """This worker's cluster, for the whole run."""
    yield from running_cluster()


@pytest.fixture
def postgres_database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh database for one test (dropped afterwards, with any connection the test left open)."""
    name = postgres_cluster.create_database()
    yield name
    postgres_cluster.drop_database(name)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster, postgres_database: str) -> str:
    """The owner's URL of a fresh database: tests are isolated from each other."""
    return postgres_cluster.url(postgres_database)


@pytest.fixture
def private_postgres_cluster() -> Iterator[PostgresCluster]:
    """A cluster of the test's own (a second or so): for a test that stops the server, or needs the roles every
    database of a cluster shares as a new cluster has them."""
    yield from running_cluster()


def writer_login(cluster: PostgresCluster, password: str) -> str:
    """A login role with `password` that holds only `sloplane_writer` (the operator's least-privilege setup)."""
    from sloplane.evaluator.storage.postgres_schema import WRITER_ROLE  # noqa: PLC0415 - the fixtures need no sloplane

    name = f"evaluator_{uuid.uuid4().hex[:8]}"
    cluster.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'; GRANT {WRITER_ROLE} TO {name}")
    return name


def tcp_login_url(cluster: PostgresCluster, database: str, user: str, password: str | None) -> str:
    """A TCP URL for `user`, the password percent-encoded as a URL must hold it."""
    return cluster.tcp_url(database, user, None if password is None else quote(password, safe=""))


def advisory_lock_waiters(connection: psycopg.Connection[Any]) -> int:
    """How many sessions wait for an advisory lock (a migration held open by a test, others queued behind it)."""
    rows = connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
    return int(rows[0]) if rows else 0


def wait_until(condition: Callable[[], bool], within: float) -> float:
    """Wait until `condition()` holds; how long it took (fails after `within` seconds)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, f"not within {within} s"
        time.sleep(0.05)
    return time.monotonic() - started


def assert_secret_free(secret: str, *shown: BaseException | str | None) -> None:
    """Neither `secret` nor its URL-escaped spelling in any of `shown`: messages, reprs, tracebacks, logs."""
    texts = [
        text
        for item in shown
        for text in (
            [str(item), repr(item), "".join(traceback.format_exception(item))]
            if isinstance(item, BaseException)
            else [str(item)]
        )
    ]
    for spelling in (secret, quote(secret, safe="")):
        assert all(spelling not in text for text in texts), f"{spelling!r} shown"
