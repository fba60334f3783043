"""The server: a local Prometheus 2.42 process over TSDB blocks made from synthetic history.

`PrometheusSandbox` prepares blocks with promtool (from OpenMetrics files and, for recording rules,
from the running server), starts and stops the prometheus binary, and answers instant queries. It is
kept apart from the traffic model and the writer because it is the only part that runs processes,
opens ports and touches the network; everything it needs from them is a list of `Series`.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from sloplane.sandbox.openmetrics import Series, _number, write_openmetrics_blocks
from sloplane.sandbox.timeline import STEP, _whole_seconds
from sloplane.sandbox.traffic import Traffic


class SandboxError(RuntimeError):
    """The sandbox could not be prepared, started or queried; the message says why (with log lines)."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the server retries if another process takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills the server if the Python process dies hard."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def _time_param(at: datetime | float) -> str:
    seconds = at.timestamp() if isinstance(at, datetime) else float(at)
    return _number(seconds)


Sample = tuple[dict[str, str], float]
"""One instant-vector element: its labels and its value."""


class PrometheusSandbox:
    """A local Prometheus 2.42 over synthetic history, for tests, `make demo` and benchmarks.

    Preparing (on the first `start()`): series are written to `<workdir>/openmetrics/` (one file per
    2h block, see `write_openmetrics_blocks`), every OpenMetrics file becomes TSDB blocks in
    `<workdir>/data`, and the server starts on a free port with no scrape targets and 3650d retention
    (blocks older than that, counted back from the newest block, would be deleted). Recording rules
    are then backfilled with `promtool tsdb create-blocks-from rules` against the running server into
    `<workdir>/rule-blocks`; a running server only sees new blocks after a reload, so the server is
    stopped, the blocks moved into the data folder, and the server started again.

    Backfilled rule samples are *not* on the data's step boundaries: like a real server, promtool
    evaluates a group at `interval * k + offset`, the offset a hash of the group's name and file.

    A work folder prepared before can be served again by giving neither series nor files (benchmarks
    reuse big histories that way). The server logs to `<workdir>/prometheus.log`. It never outlives
    its owner: `stop()` on leaving `with`, an atexit hook, a kill when starting fails, and (Linux,
    main thread) a parent-death signal.
    """

    def __init__(
        self,
        workdir: Path | str,
        series: Iterable[Series | Traffic] = (),
        *,
        openmetrics: Iterable[Path | str] = (),
        rule_files: Iterable[Path | str] = (),
        rule_interval: timedelta = STEP,
        rule_range: tuple[datetime, datetime] | None = None,
        port: int | None = None,
        ready_timeout: float = 30.0,
        prometheus: str = "prometheus",
        promtool: str = "promtool",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self._series = [part for item in series for part in ([item] if isinstance(item, Series) else item.series())]
        self._openmetrics = [Path(path).resolve() for path in openmetrics]
        self._rule_files = [Path(path).resolve() for path in rule_files]
        self._rule_interval = rule_interval
        self._rule_range = rule_range
        self._port = port
        self._ready_timeout = ready_timeout
        self._prometheus = prometheus
        self._promtool = promtool
        self._extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._prepared = False
        self._log_lock = threading.Lock()

    # paths and state

    @property
    def data_dir(self) -> Path:
        """The TSDB folder the server reads."""
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        """The server's log (every start appends to it)."""
        return self.workdir / "prometheus.log"

    @property
    def config_path(self) -> Path:
        """The server's configuration: no scrape targets, so nothing but the synthetic history exists."""
        return self.workdir / "prometheus.yml"

    @property
    def port(self) -> int:
        """The port the server listens on (kept across restarts)."""
        if self._port is None:
            raise SandboxError("the sandbox has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server's HTTP API, e.g. `http://127.0.0.1:40123`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, None when it is not running."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive (ready or not)."""
        return self._process is not None and self._process.poll() is None

    def time_range(self) -> tuple[datetime, datetime]:
        """First and last sample time held in the data folder's blocks (from their meta.json)."""
        bounds = [json.loads(meta.read_text(encoding="utf-8")) for meta in self.data_dir.glob("*/meta.json")]
        if not bounds:
            raise SandboxError(f"no TSDB blocks in {self.data_dir}")
        first_ms = min(int(meta["minTime"]) for meta in bounds)
        last_ms = max(int(meta["maxTime"]) for meta in bounds) - 1  # maxTime is exclusive
        return datetime.fromtimestamp(first_ms / 1000, UTC), datetime.fromtimestamp(last_ms / 1000, UTC)

    # lifecycle

    def __enter__(self) -> PrometheusSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> PrometheusSandbox:
        """Prepare the data on first use, then start the server and wait until it is ready."""
        if self.running:
            return self
        try:
            if self._prepared:
                self._launch()
            else:
                self._prepare()
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL after `timeout` seconds): a clean shutdown."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._forget()

    def kill(self) -> None:
        """SIGKILL and wait: what a crashed backend looks like to its clients."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._forget()

    def restart(self) -> PrometheusSandbox:
        """Stop (if running) and start again on the same port, over the same data."""
        self.stop()
        return self.start()

    def _forget(self) -> None:
        self._process = None
        atexit.unregister(self.kill)

    # preparation

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        inputs = [*self._openmetrics]
        if self._series:
            folder = self.workdir / "openmetrics"
            shutil.rmtree(folder, ignore_errors=True)
            inputs.extend(write_openmetrics_blocks(self._series, folder))
        if inputs and self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise SandboxError(f"{self.data_dir} already holds data; give the sandbox an empty work folder")
        self.data_dir.mkdir(exist_ok=True)
        self.config_path.write_text("global:\n  evaluation_interval: 1m\nscrape_configs: []\n", encoding="utf-8")
        self._create_blocks(inputs)
        self._launch()
        if self._rule_files:
            self._backfill_rules()
        self._prepared = True

    def _backfill_rules(self) -> None:
        """Evaluate recording rules against the running server, then restart it to load the blocks."""
        begin, finish = self._rule_range or self.time_range()
        output = self.workdir / "rule-blocks"
        shutil.rmtree(output, ignore_errors=True)
        self._promtool_run(
            "create-blocks-from",
            "rules",
            f"--url={self.url}",
            f"--start={_time_param(begin)}",
            f"--end={_time_param(finish)}",
            f"--eval-interval={_whole_seconds(self._rule_interval, 'rule interval')}s",
            f"--output-dir={output}",
            *map(str, self._rule_files),
        )
        self.stop()
        for block in sorted(output.glob("*/meta.json")):
            block.parent.rename(self.data_dir / block.parent.name)
        self._launch()

    def _create_blocks(self, inputs: Sequence[Path]) -> None:
        """TSDB blocks from every OpenMetrics file, several promtools at once (each writes its own block)."""
        workers = max(1, min(len(inputs), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            runs = [
                pool.submit(self._promtool_run, "create-blocks-from", "openmetrics", str(path), str(self.data_dir))
                for path in inputs
            ]
            for run in runs:
                run.result()

    def _promtool_run(self, *args: str) -> None:
        command = [self._promtool, "tsdb", *args[:2], "--quiet", *args[2:]]
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        with self._log_lock, (self.workdir / "promtool.log").open("a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(command)}\n{completed.stdout}{completed.stderr}")
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr).strip()[-3000:]
            raise SandboxError(f"promtool failed ({completed.returncode}): {' '.join(command)}\n{output}")

    # the process

    def _command(self, port: int) -> list[str]:
        return [
            self._prometheus,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.listen-address=127.0.0.1:{port}",
            *self._extra_args,
        ]

    def _launch(self) -> None:
        """Start the server; with a port of our own choosing, retry when another process grabbed it."""
        attempts = 1 if self._port is not None else 3
        for attempt in range(attempts):
            port = self._port if self._port is not None else free_port()
            if self._spawn_and_wait(port, last_attempt=attempt == attempts - 1):
                self._port = port
                return

    def _spawn_and_wait(self, port: int, *, last_attempt: bool) -> bool:
        """True once ready; False when the port was taken and another may be tried."""
        linux_main = sys.platform == "linux" and threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            log.write(f"--- sloplane sandbox: starting on port {port}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if linux_main else None,  # noqa: PLW1509 - main thread only
            )
        atexit.register(self.kill)
        return self._wait_ready(port, last_attempt=last_attempt)

    def _wait_ready(self, port: int, *, last_attempt: bool) -> bool:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = _tail(self.log_path)
                self._forget()
                if "address already in use" in tail and not last_attempt:
                    return False
                raise SandboxError(f"prometheus exited ({process.returncode}) before it was ready:\n{tail}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise SandboxError(
            f"prometheus was not ready within {self._ready_timeout}s; last lines of {self.log_path}:\n"
            + _tail(self.log_path)
        )

    # queries

    def query(self, expr: str, at: datetime | float | None = None) -> list[Sample]:
        """An instant query (`/api/v1/query`) at `at` (default: the server's now): labels and values."""
        params = {"query": expr}
        if at is not None:
            params["time"] = _time_param(at)
        response = requests.get(f"{self.url}/api/v1/query", params=params, timeout=60)
        body = response.json()
        if body.get("status") != "success":
            raise SandboxError(f"query {expr!r} failed: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]

    def value(self, expr: str, at: datetime | float | None = None) -> float:
        """The single value of an instant query; an error when it returns none or several."""
        result = self.query(expr, at)
        if len(result) != 1:
            raise SandboxError(f"query {expr!r} returned {len(result)} samples, expected exactly one")
        return result[0][1]
