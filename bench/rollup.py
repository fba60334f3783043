"""Rollup of a fleet's whole history and the SLA report over it: time, memory, and who spends them.

Prints figures, asserts nothing about speed. The issue asks for "rollup of 2,000 SLOs x 90 days and an SLA
report over them: time and memory". What is measured, each as a whole process the way a user runs it:

- `sloplane rollup SLOS --prometheus URL --db FILE --from START --to END --format json`: the whole history at
  once (a first backfill); then the same without `--from` (resuming each SLO from its last row: it should
  find nothing new; `--to END` is still given, else the hours after the history would be rolled up empty);
- `sloplane report sla SLOS --db FILE --month YYYY-MM --format html|json|csv --out FILE` for the last
  month that lies whole inside the history in every zone of the fleet;
- `sloplane report quarterly` of that month's quarter and `sloplane report budget` at the history's end, as
  JSON: the other reports that read months of rows.

Per run: wall time; the process's CPU and peak RSS (its own rusage, from a small wrapper that forks it:
see RUSAGE_WRAPPER); Prometheus' CPU meanwhile (/proc/<pid>/stat); the 1-minute load average before it and the
machine's busy cores during it (/proc/stat) with the part that was neither ours nor Prometheus' ("others":
the machine may be shared); what it printed (rows, queries) or wrote (bytes). The rows are compared with
the number of whole hours of each SLO's zone in [START, END] (`history.hours.local_hours`).

The fleet: SLOS http SLOs (`--slos`, 2,000), each its own `job`, objective 99.9 over a calendar month:
8 in 10 in UTC, 1 in 10 in Europe/Berlin (whole-hour offsets, DST), 1 in 10 in Asia/Kolkata (+05:30: its
hours start at half past UTC's, so the rollup reads two alignments), one declaration file each. Each job
has 600 requests a minute and a constant error ratio between 0.0002 and 0.002 (about half miss 99.9).

The history, in one `sloplane.sandbox.PrometheusSandbox` (3650d retention, its own): DAYS days (`--days`,
90) ending at the last whole UTC hour before the bench starts. Why the sample step is not a minute: 90 days
of one-minute samples of 4,000 series are 518 million samples, gigabytes of OpenMetrics text for promtool
and an hour of set-up. The rollup reads `increase(...[1h])` at hour ends only (:00 and :30), so any step
dividing 30 minutes gives the same, exact numbers (samples on both ends of every window, as the sandbox
requires); the step (`--step`, 15 minutes) changes only how many samples Prometheus reads per hour, five
instead of 61: Prometheus' share of the figures is therefore lower than against one-minute scrapes. The
series of BATCH jobs at a time are written with the sandbox's own writer (`write_openmetrics_blocks`, one
file per 2h block) and appended into one file per block, so memory stays bounded; promtool makes a block of
each file (the sandbox's `openmetrics=`); Prometheus then compacts those 2h blocks into large ones, as a
server holding 90 days would have them, and the bench waits until it is done (its CPU idle after its first
compaction, a minute after start) so that no compaction runs during a measured run. All that is set-up,
timed and printed apart. `--workdir DIR` keeps the prepared history (and the stores) in DIR and serves it
again on the next run with the same --slos, --days and --step (from the same hour: END is kept).

Stores: `--db` (repeatable): `sqlite` (a fresh file; the default) or a PostgreSQL URL (migrated first with
`sloplane migrate`; its server's CPU is not measured apart: it counts among "others"). Needs prometheus and
promtool (tools/install-system-packages.sh). Run: `.venv/bin/python -m bench.rollup`: on the two-core
development machine about 25 minutes, of which 5 set-up, 2 the rollup and 15 the three SLA reports;
`--slos 100 --days 40` for a quick look (under two minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import yaml

from bench.evaluator import SLOPLANE, process_cpu, say, service
from bench.gate_load import machine_jiffies
from sloplane.evaluator.history.hours import local_hours, zone
from sloplane.evaluator.history.periods import month
from sloplane.evaluator.storage.postgres_conninfo import is_postgres_url
from sloplane.sandbox import PrometheusSandbox, Segment, http_traffic, write_openmetrics_blocks

SLOS = 2000
DAYS = 90
STEP_MINUTES = 15
PER_MINUTE = 600.0
OBJECTIVE = 99.9
ZONES = ("UTC",) * 8 + ("Europe/Berlin", "Asia/Kolkata")
"""Zone of SLO i: ZONES[i % 10]."""
BATCH = 200
"""Jobs whose series are in memory at once while the OpenMetrics files are written."""
EOF = "# EOF\n"
COMPACTION_START = 70.0
"""Prometheus runs its first compaction a minute after it starts; the bench waits at least this long."""


def zone_of(index: int) -> str:
    """SLO `index`'s calendar zone."""
    return ZONES[index % len(ZONES)]


def error_ratio(index: int) -> float:
    """Job `index`'s constant error ratio: 0.0002 to 0.002, against a budget of 0.001."""
    return 0.0002 + (index % 37) * 0.00005


# --- set-up: declarations and history ------------------------------------------------------------------------


def write_declarations(folder: Path, count: int) -> Path:
    """One file per SLO: http on its job, 99.9 over a calendar month of its zone."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        document = {
            "apiVersion": "sloplane.dev/v1alpha1",
            "kind": "ServiceLevelObjective",
            "metadata": {"name": f"{service(index)}-availability"},
            "spec": {
                "service": service(index),
                "owners": {"team": f"team-{index % 40:02d}"},
                "objective": OBJECTIVE,
                "window": {"calendar": "month", "timeZone": zone_of(index)},
                "sli": {"http": {"metric": "http_requests_total", "selector": {"job": service(index)}}},
            },
        }
        (folder / f"{service(index)}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


def write_history(folder: Path, count: int, end: datetime, days: int, step: timedelta) -> tuple[list[Path], int]:
    """One OpenMetrics file per 2h block holding every job's two counters; returns the files and the samples.

    BATCH jobs at a time go through the sandbox's writer into a scratch folder; each of its files (one
    `# TYPE http_requests counter` line, the series, `# EOF`) is appended to the block's file without the
    repeated header and the end marker, which is written once at the end.
    """
    scratch = folder.parent / f"{folder.name}-batch"
    folder.mkdir(parents=True)
    samples = 0
    header: str | None = None
    per_step = PER_MINUTE * step.total_seconds() / 60
    for first in range(0, count, BATCH):
        series = [
            part
            for index in range(first, min(first + BATCH, count))
            for part in http_traffic(
                [Segment(timedelta(days=days), per_step, error_ratio(index))],
                end=end,
                step=step,
                labels={"job": service(index)},
            ).series()
        ]
        samples += sum(len(part.samples) for part in series)
        for path in write_openmetrics_blocks(series, scratch):
            text = path.read_text(encoding="utf-8")
            line, body = text.split("\n", 1)
            if header is None:
                header = line
            if line != header or not body.endswith(EOF):
                raise RuntimeError(f"unexpected OpenMetrics layout in {path}: {line!r}")
            with (folder / path.name).open("a", encoding="utf-8") as out:
                if out.tell() == 0:
                    out.write(header + "\n")
                out.write(body.removesuffix(EOF))
            path.unlink()
        del series
        say(f"  OpenMetrics: {min(first + BATCH, count)}/{count} jobs")
    shutil.rmtree(scratch, ignore_errors=True)
    paths = sorted(folder.glob("*.om"))
    for path in paths:
        with path.open("a", encoding="utf-8") as out:
            out.write(EOF)
    return paths, samples


def prometheus_metric(url: str, name: str) -> float:
    """The sum of one metric's samples on Prometheus' own /metrics."""
    text = requests.get(f"{url}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.split("{")[0].split(" ")[0] == name)


def wait_for_compaction(sandbox: PrometheusSandbox, started: float, limit: float = 3600.0) -> int:
    """Wait until Prometheus has compacted the backfilled blocks: its first compaction a minute after it started,
    then its CPU under 5% of a core for five seconds. Returns how many compactions it made."""
    pid = sandbox.pid
    assert pid is not None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        wait = COMPACTION_START - (time.monotonic() - started)
        before = process_cpu(pid)
        time.sleep(max(wait, 5.0))
        if wait <= 0 and process_cpu(pid) - before < 0.25:
            break
        say(f"  compacting: {len(blocks(sandbox))} blocks")
    return int(prometheus_metric(sandbox.url, "prometheus_tsdb_compactions_total"))


def blocks(sandbox: PrometheusSandbox) -> list[Path]:
    """The TSDB blocks in the sandbox's data folder."""
    return [meta.parent for meta in sandbox.data_dir.glob("*/meta.json")]


@dataclass
class History:
    """What the set-up made, and what it cost (seconds)."""

    start: datetime
    end: datetime
    step: timedelta
    samples: int = 0
    openmetrics_bytes: int = 0
    files: int = 0
    blocks_made: int = 0
    blocks_after: int = 0
    compactions: int = 0
    tsdb_bytes: int = 0
    costs: dict[str, float] = field(default_factory=dict)
    reused: bool = False

    def span(self) -> str:
        """The history's span, for messages."""
        return f"{self.start.isoformat()} .. {self.end.isoformat()}"


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under a folder."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@contextmanager
def prepared(root: Path, options: argparse.Namespace) -> Iterator[tuple[PrometheusSandbox, History]]:
    """The sandbox over the history: made (or reused, when `root` holds one made with the same options)."""
    step = timedelta(minutes=options.step)
    manifest = root / "history.json"
    wanted = {"slos": options.slos, "days": options.days, "step": options.step}
    known = json.loads(manifest.read_text()) if manifest.exists() else None
    if known is not None and {key: known.get(key) for key in wanted} == wanted:
        end = datetime.fromisoformat(known["end"])
        history = History(end - timedelta(days=options.days), end, step, reused=True, **known["figures"])
        say(f"reusing the history in {root} (up to {end.isoformat()})")
        started = time.perf_counter()
        with PrometheusSandbox(root / "prometheus") as sandbox:
            history.costs = {"Prometheus start (reused data)": time.perf_counter() - started}
            yield sandbox, history
        return
    for leftover in ("prometheus", "openmetrics", "openmetrics-batch"):
        shutil.rmtree(root / leftover, ignore_errors=True)
    now = int(time.time())
    end = datetime.fromtimestamp(now - now % 3600, UTC)
    history = History(end - timedelta(days=options.days), end, step)
    say(f"history: {options.slos:,} jobs x 2 series, {options.days} days to {end.isoformat()}, step {step} ...")
    started = time.perf_counter()
    paths, history.samples = write_history(root / "openmetrics", options.slos, end, options.days, step)
    history.costs["OpenMetrics written"] = time.perf_counter() - started
    history.files, history.openmetrics_bytes = len(paths), sum(path.stat().st_size for path in paths)
    say(f"  {history.samples:,} samples in {history.files} files; promtool ...")
    sandbox = PrometheusSandbox(root / "prometheus", openmetrics=paths, ready_timeout=600.0)
    started = time.perf_counter()
    with sandbox:
        history.costs["promtool blocks + Prometheus start"] = time.perf_counter() - started
        launched = time.monotonic()
        history.blocks_made = len(blocks(sandbox))
        shutil.rmtree(root / "openmetrics")
        say(f"  {history.blocks_made} blocks; waiting for Prometheus to compact them ...")
        history.compactions = wait_for_compaction(sandbox, launched)
        history.costs["Prometheus compaction (wait)"] = time.monotonic() - launched
        history.blocks_after = len(blocks(sandbox))
        history.tsdb_bytes = folder_bytes(sandbox.data_dir)
        figures = {
            key: getattr(history, key)
            for key in ("samples", "openmetrics_bytes", "files", "blocks_made", "blocks_after", "compactions")
        }
        figures["tsdb_bytes"] = history.tsdb_bytes
        manifest.write_text(json.dumps({**wanted, "end": end.isoformat(), "figures": figures}))
        yield sandbox, history


# --- the measured runs --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured process."""

    name: str
    wall: float
    cpu: float
    peak_rss: float
    """Megabytes (the process's `ru_maxrss`)."""
    prometheus_cpu: float
    load: float
    busy: float
    """Machine-wide busy CPU seconds during the run (all cores)."""
    outcome: str = ""
    exit_code: int = 0

    @property
    def others(self) -> float:
        """Busy CPU seconds that were neither this process nor Prometheus (cores/s during the run)."""
        return max(self.busy - self.cpu - max(self.prometheus_cpu, 0.0), 0.0) / self.wall


RUSAGE_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs a command as its child and writes the child's peak RSS (KiB) and CPU seconds. Why not `os.wait4` on the
command itself: a child's `ru_maxrss` includes the memory it was forked with (Linux records the old address
space's high-water mark at exec), here the bench's own; forked from this small interpreter (`-I -S`, under
10 MB) it is the command's."""


def measured(name: str, command: Sequence[str], folder: Path, prometheus_pid: int | None) -> tuple[Run, str]:
    """Run `command` with its output in files, its rusage through `RUSAGE_WRAPPER`. Returns the run and its stdout."""
    out, err, usage = folder / f"{name}.out", folder / f"{name}.err", folder / f"{name}.rusage"
    load = os.getloadavg()[0]
    say(f"  {name} (load {load:.2f}) ...")
    served = process_cpu(prometheus_pid) if prometheus_pid is not None else float("nan")
    busy, _ = machine_jiffies()
    started = time.perf_counter()
    wrapped = [sys.executable, "-I", "-S", "-c", RUSAGE_WRAPPER, str(usage), *command]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        completed = subprocess.run(wrapped, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, check=False)
    wall = time.perf_counter() - started
    busy_after, _ = machine_jiffies()
    prometheus = (process_cpu(prometheus_pid) if prometheus_pid is not None else float("nan")) - served
    peak, cpu = (float(value) for value in usage.read_text().split())
    run = Run(
        name,
        wall,
        cpu,
        peak / 1024,
        prometheus,
        load,
        (busy_after - busy) / os.sysconf("SC_CLK_TCK"),
        exit_code=completed.returncode,
    )
    if completed.returncode != 0:
        run.outcome = f"exit {completed.returncode}: {err.read_text(errors='replace').strip()[-300:]}"
    return run, out.read_text(errors="replace")


def last_whole_month(start: datetime, end: datetime) -> str | None:
    """The latest YYYY-MM that lies inside [start + 1h, end] in every zone of the fleet."""
    year, number = end.year, end.month
    while (year, number) >= (start.year, start.month):
        label = f"{year:04d}-{number:02d}"
        periods = [month(label, name) for name in set(ZONES)]
        if all(start + timedelta(hours=1) <= period.start and period.end <= end for period in periods):
            return label
        year, number = (year, number - 1) if number > 1 else (year - 1, 12)
    return None


def expected_rows(count: int, start: datetime, end: datetime) -> int:
    """Whole hours of each SLO's zone in [start, end], summed: the rows a full rollup writes."""
    per_zone = {name: len(local_hours(zone(name), start, end)) for name in set(ZONES)}
    return sum(per_zone[zone_of(index)] for index in range(count))


def store_bytes(db: str) -> str:
    """The SQLite file's size with its WAL, or n/a for PostgreSQL."""
    if is_postgres_url(db):
        return "n/a"
    paths = [Path(db), Path(f"{db}-wal")]
    return f"{sum(path.stat().st_size for path in paths if path.exists()) / 1e6:,.0f} MB"


def store_runs(
    db: str, slos: Path, sandbox: PrometheusSandbox, history: History, *, count: int, folder: Path
) -> list[Run]:
    """The full rollup, the resuming one, and the report in each format, against one store."""
    folder.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    start, end = (instant.isoformat() for instant in (history.start, history.end))
    rollup = [str(SLOPLANE), "rollup", str(slos), "--prometheus", sandbox.url, "--db", db, "--format", "json"]
    run, text = measured("rollup-full", [*rollup, "--from", start, "--to", end], folder, sandbox.pid)
    wanted = expected_rows(count, history.start, history.end)
    if run.exit_code == 0:
        summary = json.loads(text)
        rows, queries = summary["rows"], summary["queries"]
        check = "as expected" if rows == wanted else f"EXPECTED {wanted:,}"
        run.outcome = (
            f"{rows:,} rows ({check}; {summary['noData']} without data), {queries} queries, "
            f"{rows / run.wall:,.0f} rows/s; store {store_bytes(db)}"
        )
    runs.append(run)
    run, text = measured("rollup-resume", [*rollup, "--to", end], folder, sandbox.pid)
    if run.exit_code == 0:
        summary = json.loads(text)
        run.outcome = f"{summary['rows']:,} rows, {summary['queries']} queries"
    runs.append(run)
    label = last_whole_month(history.start, history.end)
    if label is None:
        run = Run("report", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, f"no whole month in {history.span()}", 1)
        return [*runs, run]
    for kind in ("html", "json", "csv"):
        target = folder / f"sla-{label}.{kind}"
        command = [str(SLOPLANE), "report", "sla", str(slos), "--db", db, "--month", label]
        run, _ = measured(f"report-{kind}", [*command, "--format", kind, "--out", str(target)], folder, sandbox.pid)
        if run.exit_code == 0:
            run.outcome = f"{label}: {target.stat().st_size / 1e6:,.2f} MB"
            if kind == "json":
                report = json.loads(target.read_text())
                tally = report["summary"]
                run.outcome += (
                    f"; {tally['slos']} SLOs: {tally['met']} met, {tally['missed']} missed, {tally['noData']} "
                    f"without data; {report['evidence']['rollupRows']:,} rows"
                )
        runs.append(run)
    return [*runs, *other_reports(db, slos, history, month_label=label, folder=folder, prometheus_pid=sandbox.pid)]


def other_reports(
    db: str, slos: Path, history: History, *, month_label: str, folder: Path, prometheus_pid: int | None
) -> list[Run]:
    """The quarterly review of the quarter holding the SLA report's month (it reads that quarter and the one
    before, with the decision log) and the budget report at the history's end, as JSON: the two other kinds
    that read months of rows."""
    year, month_number = (int(part) for part in month_label.split("-"))
    quarter = f"{year}-Q{(month_number - 1) // 3 + 1}"
    at = history.end.isoformat()
    commands = {
        "quarterly-json": ["report", "quarterly", str(slos), "--db", db, "--quarter", quarter, "--at", at],
        "budget-json": ["report", "budget", str(slos), "--db", db, "--at", at],
    }
    runs = []
    for name, arguments in commands.items():
        target = folder / f"{name}.json"
        command = [str(SLOPLANE), *arguments, "--format", "json", "--out", str(target)]
        run, _ = measured(name, command, folder, prometheus_pid)
        if run.exit_code == 0:
            report = json.loads(target.read_text())
            run.outcome = f"{target.stat().st_size / 1e6:,.2f} MB; {len(report['slos'])} SLOs"
            if name == "quarterly-json":
                run.outcome += f" ({quarter}: score {report['score']['value']}, {len(report['agenda'])} agenda items)"
        runs.append(run)
    return runs


# --- printing and main ------------------------------------------------------------------------------------------


def print_setup(history: History, options: argparse.Namespace, declarations: float) -> None:
    """The set-up, apart from the figures."""
    every = f"one sample every {history.step.total_seconds() / 60:g} minutes"
    print(f"history {history.span()}: {options.slos:,} jobs x 2 counters, {every}")
    if history.reused:
        print("  reused from --workdir (made by an earlier run with the same --slos, --days, --step):")
    print(
        f"  {history.samples:,} samples backfilled ({history.openmetrics_bytes / 1e9:.2f} GB of OpenMetrics in "
        f"{history.files} files) -> {history.blocks_made} blocks -> {history.blocks_after} after "
        f"{history.compactions} compactions; TSDB {history.tsdb_bytes / 1e6:,.0f} MB"
    )
    costs = "; ".join(f"{what} {seconds:,.0f} s" for what, seconds in history.costs.items())
    print(f"  set-up (not measured): declarations written {declarations:.1f} s; {costs}")


def print_runs(store: str, runs: Sequence[Run]) -> None:
    """A table of one store's runs."""
    print(f"\nstore {store}:")
    print(
        f"  {'run':14} {'wall s':>8} {'CPU s':>8} {'peak RSS':>10} {'Prom CPU s':>10} {'load':>5} {'others':>6}  result"
    )
    for run in runs:
        print(
            f"  {run.name:14} {run.wall:8.1f} {run.cpu:8.1f} {run.peak_rss:7,.0f} MB {run.prometheus_cpu:10.1f} "
            f"{run.load:5.2f} {run.others:6.2f}  {run.outcome}"
        )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rollup", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--slos", type=int, default=SLOS, help="SLOs (and jobs) in the fleet")
    parser.add_argument("--days", type=int, default=DAYS, help="days of history")
    parser.add_argument("--step", type=int, default=STEP_MINUTES, help="minutes between samples (divides 30)")
    parser.add_argument("--db", action="append", help="sqlite (default) or a postgresql:// URL; repeatable")
    parser.add_argument("--workdir", type=Path, help="keep the history here and reuse it (default: a temporary one)")
    options = parser.parse_args()
    if options.step <= 0 or 30 % options.step:
        parser.error("--step must divide 30 (minutes): the zones' hours end at :00 and :30")
    return options


def main() -> None:
    options = _arguments()
    began = time.perf_counter()
    stores: list[str] = options.db or ["sqlite"]
    with tempfile.TemporaryDirectory(prefix="sloplane-bench-rollup-") as scratch:
        root: Path = options.workdir.resolve() if options.workdir else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        shutil.rmtree(root / "slos", ignore_errors=True)
        slos = write_declarations(root / "slos", options.slos)
        declarations = time.perf_counter() - started
        results: list[tuple[str, list[Run]]] = []
        with prepared(root, options) as (sandbox, history):
            say(f"Prometheus pid {sandbox.pid} at {sandbox.url}, {len(blocks(sandbox))} blocks")
            for index, db in enumerate(stores):
                folder = root / f"store-{index}"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                target = str(folder / "rollups.db") if db == "sqlite" else db
                shown = "sqlite (a fresh file)" if db == "sqlite" else db.split("@")[-1]
                if is_postgres_url(db):
                    subprocess.run([str(SLOPLANE), "migrate", "--db", db], check=True, capture_output=True)
                say(f"store {shown}:")
                results.append((shown, store_runs(target, slos, sandbox, history, count=options.slos, folder=folder)))
    print()
    print(f"=== rollup of {options.slos:,} SLOs x {options.days} days, and the SLA report over them ===")
    cores = os.cpu_count()
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{cores} cores; load average now (1/5/15 min) {load}: the machine may be shared (see load, others)")
    print_setup(history, options, declarations)
    print(
        "figures: wall; CPU of the process (user + system); its peak RSS; Prometheus' CPU meanwhile; the 1-minute "
        "load before; others = cores busy with neither during the run"
    )
    for shown, runs in results:
        print_runs(shown, runs)
    print(f"\ntotal {time.perf_counter() - began:,.0f} s")


if __name__ == "__main__":
    main()
