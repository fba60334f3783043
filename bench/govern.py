"""Governance over a fleet's whole history: `govern stale`, `govern debt` and the quarterly review with governance's
findings on its agenda, each as a whole process the way a user runs it: time, CPU and peak memory.

Prints figures, asserts nothing about speed. Reads the history `bench.rollup --workdir DIR` prepared and rolled up
(2,000 SLOs x 90 days: DIR/history.json, DIR/slos/, DIR/store-0/rollups.db) and writes nothing into it but the
tables the governance commands open (the support feedback's, empty). What is measured:

- `sloplane govern stale SLOS --db STORE --at END --format json`: every rule over each SLO's last three
  calendar months and the month of its review (the fleet's declarations carry no review: the drift rule is not
  checked, said in `notChecked`);
- `sloplane govern debt SLOS DEBT --db STORE --at END --format json`: a register of one item per DEBT_EVERY SLOs
  (written here), ranked by the bad events of the last 90 days, and every SLO's last month judged for
  missed-without-debt;
- `sloplane report quarterly SLOS DEBT --db STORE --quarter Q --at END --format json` for the quarter
  `bench.rollup` reviews (the one holding the last whole month): the review with `govern stale`'s and the
  register's findings as of the quarter's end or END (before issue 18 the same run measured 26.1 s, 621 MB).

The store holds no decisions (`bench.rollup` gates nothing): `unused` finds no gated sibling and the log costs
nothing here. Run: `.venv/bin/python -m bench.govern --workdir DIR` after `.venv/bin/python -m bench.rollup
--workdir DIR` (about a minute and a half on the two-core development machine).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from bench.rollup import SLOPLANE, Run, last_whole_month, measured, print_runs, say

DEBT_EVERY = 10
"""One register item per this many SLOs: 200 items for 2,000."""


def write_register(folder: Path, slos: Path, opened: datetime) -> Path:
    """A register of one open item per `DEBT_EVERY` SLOs of the fleet's files (every 20th one overdue)."""
    files = sorted(slos.glob("*.yaml"))[::DEBT_EVERY]
    names = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in files]
    documents = []
    for index, name in enumerate(names):
        due = (opened + timedelta(days=30 if index % 2 else 400)).date().isoformat()
        documents.append(
            "---\napiVersion: sloplane.dev/v1alpha1\nkind: ReliabilityDebt\n"
            f"metadata: {{name: {name}-debt}}\nspec:\n  slos: [{name}]\n  kind: known-violation\n"
            "  owner: {name: Owners, contact: owners@example.com}\n  cause: Bench.\n  evidence: [bench]\n"
            f"  remediation: {{plan: Bench., tracker: 'https://tracker.example.com/{index}', due: {due}}}\n"
            f"  opened: {opened.date().isoformat()}\n  revisit: {due}\n"
        )
    path = folder / "register.yaml"
    path.write_text("".join(documents))
    return path


def review_quarter(start: datetime, end: datetime) -> str | None:
    """The quarter `bench.rollup` reviews: the one holding the last month whole inside the history (it reads that
    quarter and the one before), so that the figures compare."""
    label = last_whole_month(start, end)
    if label is None:
        return None
    year, number = (int(part) for part in label.split("-"))
    return f"{year}-Q{(number - 1) // 3 + 1}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.govern", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a folder bench.rollup --workdir prepared")
    options = parser.parse_args()
    history = json.loads((options.workdir / "history.json").read_text())
    end = datetime.fromisoformat(history["end"])
    start = end - timedelta(days=history["days"])
    slos, store = options.workdir / "slos", options.workdir / "store-0" / "rollups.db"
    at = end.isoformat()
    with tempfile.TemporaryDirectory(prefix="sloplane-bench-govern-") as scratch:
        folder = Path(scratch)
        register = write_register(folder, slos, start)
        quarter = review_quarter(start, end)
        say(f"{history['slos']:,} SLOs, {history['days']} days to {at}; register of {history['slos'] // DEBT_EVERY}")
        commands = {
            "govern-stale": ["govern", "stale", str(slos), "--db", str(store), "--at", at, "--format", "json"],
            "govern-debt": [
                "govern",
                "debt",
                str(slos),
                str(register),
                "--db",
                str(store),
                "--at",
                at,
                "--format",
                "json",
            ],
        }
        if quarter is not None:
            commands["quarterly+gov"] = ["report", "quarterly", str(slos), str(register), "--db", str(store),
                                         "--quarter", quarter, "--at", at, "--format", "json"]  # fmt: skip
        runs: list[Run] = []
        for name, arguments in commands.items():
            run, stdout = measured(name, [str(SLOPLANE), *arguments], folder, None)
            if run.exit_code == 0:
                report = json.loads(stdout)
                if name == "govern-stale":
                    run.outcome = f"{len(report['findings']):,} findings: " + ", ".join(
                        f"{rule} {count}" for rule, count in report["summary"].items() if count
                    )
                elif name == "govern-debt":
                    run.outcome = f"{len(report['items'])} items; " + ", ".join(
                        f"{rule} {count}" for rule, count in report["summary"].items() if count
                    )
                else:
                    added = [
                        item for item in report["agenda"] if item["kind"].startswith(("stale-", "debt-", "missed"))
                    ]
                    run.outcome = f"{quarter}: {len(report['agenda'])} agenda items, {len(added)} from governance"
            runs.append(run)
        print_runs(str(store), runs)


if __name__ == "__main__":
    main()
