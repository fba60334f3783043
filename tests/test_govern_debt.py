"""The reliability debt register: `kind: ReliabilityDebt` validated like declarations, and `sloplane govern debt` on a
constructed history (rows written straight into a real SQLite rollup store), with `govern stale` reading it.

`AT` is 2026-01-07 09:30 UTC; the SLOs are monthly (UTC), so the last complete period is December 2025. Every
expected figure is worked out here from the rows this module writes.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sloplane.cli import report as report_commands
from sloplane.cli.main import _consoles
from sloplane.evaluator.model import Rollup
from sloplane.evaluator.storage.rollups import SqliteRollups
from sloplane.interop.loader import load_paths
from tests.conftest import run_cli
from tests.govern_cli import run_govern

AT = datetime(2026, 1, 7, 9, 30, tzinfo=UTC)


def slo(name: str, *, lifecycle: str = "active") -> str:
    return (
        "---\napiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\n"
        f"metadata: {{name: {name}}}\nspec:\n  service: {name}\n  lifecycle: {lifecycle}\n"
        "  owners: {team: sre, dev: {name: Dev Rota, contact: dev@example.com}}\n"
        "  objective: 99.0\n  window: {calendar: month}\n"
        f"  sli: {{http: {{metric: http_requests_total, selector: {{job: {name}}}}}}}\n"
    )


def debt(name: str, slos: str, *, due: str, revisit: str, status: str = "open", kind: str = "known-violation") -> str:
    return (
        "---\napiVersion: sloplane.dev/v1alpha1\nkind: ReliabilityDebt\n"
        f"metadata: {{name: {name}}}\nspec:\n  slos: {slos}\n  kind: {kind}\n"
        "  owner: {name: Payments, contact: '#payments'}\n  cause: The pool saturates at peak.\n"
        "  evidence: ['missed 2025-12']\n"
        f"  remediation: {{plan: Shard the pool., tracker: 'https://jira.example.com/PAY-1', due: {due}}}\n"
        f"  opened: 2025-11-01\n  revisit: {revisit}\n  status: {status}\n"
    )


def row(name: str, start: datetime, bad: float, total: float) -> Rollup:
    end = start + timedelta(hours=1)
    return Rollup(name, None, start, end, bad, total, 0.0, 0.0, 0.0, 99.0, "sha256:test", "UTC", "prometheus")


ROWS = [
    # "owed": December 300 bad of 10,000 at 99% (300% of 100 allowed: missed), 2 November rows of 40 bad each;
    # opened 2025-11-01, attribution from max(AT − 90 d = 2025-10-09 09:30, 2025-11-01) → 40 + 40 + 300 = 380
    row("owed", datetime(2025, 11, 3, 12, tzinfo=UTC), 40, 5000),
    row("owed", datetime(2025, 11, 4, 12, tzinfo=UTC), 40, 5000),
    row("owed", datetime(2025, 12, 2, 12, tzinfo=UTC), 300, 10000),
    # "shared-a" and "shared-b", one item naming both: 10 + 25 bad → 35; "shared-b" missed December (250 of 100)
    # but an open item names it: no warning; a row before the item's opening (October) is not attributed
    row("shared-a", datetime(2025, 10, 20, 12, tzinfo=UTC), 999, 10000),
    row("shared-a", datetime(2025, 12, 5, 12, tzinfo=UTC), 10, 10000),
    row("shared-b", datetime(2025, 12, 6, 12, tzinfo=UTC), 25, 1000),
    # "unowed": December 150 bad of 10,000 (150% of the budget): missed, no open debt → missed-without-debt
    row("unowed", datetime(2025, 12, 10, 12, tzinfo=UTC), 150, 10000),
    # "met": December 50 of 10,000 (50%): met → nothing
    row("met", datetime(2025, 12, 10, 12, tzinfo=UTC), 50, 10000),
    # "settled": missed December (200 of 10,000) but only a resolved item names it → missed-without-debt
    row("settled", datetime(2025, 12, 11, 12, tzinfo=UTC), 200, 10000),
    # "gone" is archived: its missed December is nobody's warning
    row("gone", datetime(2025, 12, 11, 12, tzinfo=UTC), 500, 10000),
]

REGISTER = [
    # due 2026-01-01 < today 2026-01-07 → overdue; revisit 2026-02-01 → not expired
    debt("owed-pool", "[owed]", due="2026-01-01", revisit="2026-02-01"),
    # due today (not overdue: due *before* today), revisit 2026-01-06 → expired; an exception
    debt("shared-retry", "[shared-a, shared-b]", due="2026-01-07", revisit="2026-01-06", kind="exception"),
    # resolved long ago: neither overdue nor expired, not ranked
    debt("settled-fix", "[settled]", due="2025-11-20", revisit="2025-11-21", status="resolved"),
]


@pytest.fixture(scope="module")
def register(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("debt")
    db = folder / "sloplane.db"
    store = SqliteRollups(db)
    store.write(ROWS, AT)
    store.close()
    declarations = folder / "slos"
    declarations.mkdir()
    names = ["owed", "shared-a", "shared-b", "unowed", "met", "settled"]
    (declarations / "slos.yaml").write_text("".join(slo(name) for name in names) + slo("gone", lifecycle="archived"))
    (declarations / "debt.yaml").write_text("".join(REGISTER))
    return db, declarations


def _json(register: tuple[Path, Path], *extra: str | Path) -> dict[str, Any]:
    db, declarations = register
    result = run_govern("debt", declarations, "--db", db, "--at", AT.isoformat(), "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_open_items_are_ranked_by_attributed_bad_events(register: tuple[Path, Path]) -> None:
    report = _json(register)
    ranked = [(item["name"], item["rank"], item["attributedBadEvents"]) for item in report["items"]]
    assert ranked == [("owed-pool", 1, 40 + 40 + 300), ("shared-retry", 2, 10 + 25), ("settled-fix", None, None)]
    owed = report["items"][0]
    assert owed["since"] == "2025-11-01T00:00:00+00:00"
    assert (owed["overdue"], owed["expired"]) == (True, False)
    assert (report["items"][1]["overdue"], report["items"][1]["expired"]) == (False, True)


def test_findings_name_overdue_expired_and_missed_without_debt(register: tuple[Path, Path]) -> None:
    findings = _json(register)["findings"]
    assert [(f["rule"], f["debt"], f["slo"]) for f in findings] == [
        ("debt-overdue", "owed-pool", None),
        ("debt-expired", "shared-retry", None),
        ("missed-without-debt", None, "settled"),
        ("missed-without-debt", None, "unowed"),
    ]
    assert findings[0]["inputs"] == {"due": "2026-01-01", "today": "2026-01-07", "daysOverdue": 6}
    assert findings[1]["inputs"]["daysExpired"] == 1
    assert "exception lapsed" in findings[1]["message"]
    unowed = findings[3]["inputs"]["period"]
    assert (unowed["label"], unowed["badEvents"], unowed["met"]) == ("2025-12", 150, False)
    assert unowed["budgetUsed"] == pytest.approx(150 / (10000 * 0.01))
    assert findings[3]["severity"] == "warning"


def test_csv_lists_open_items_by_rank(register: tuple[Path, Path]) -> None:
    db, declarations = register
    result = run_govern("debt", declarations, "--db", db, "--at", AT.isoformat(), "--format", "csv")
    assert result.exit_code == 0, result.output
    header, *rows = csv.reader(io.StringIO(result.stdout))
    assert header[:7] == ["rank", "name", "slos", "kind", "owner", "status", "attributed_bad_events"]
    assert [(r[0], r[1], r[2], float(r[6]), r[8]) for r in rows] == [
        ("1", "owed-pool", "owed", 380.0, "true"),
        ("2", "shared-retry", "shared-a shared-b", 35.0, "false"),
    ]


def test_the_table_flags_items(register: tuple[Path, Path]) -> None:
    db, declarations = register
    out = io.StringIO()
    result = run_govern("debt", declarations, "--db", db, "--at", AT.isoformat(), out=out)
    assert result.exit_code == 0, result.output
    text = out.getvalue()
    assert "2026-01-01 OVERDUE" in text and "2026-01-06 EXPIRED" in text
    assert "missed-without-debt: unowed missed its objective in 2025-12" in text


def test_draft_writes_stubs_that_do_not_validate_until_filled(register: tuple[Path, Path], tmp_path: Path) -> None:
    drafts = tmp_path / "drafts"
    _json(register, "--draft", drafts)
    assert sorted(path.name for path in drafts.iterdir()) == ["settled-2025-12.yaml", "unowed-2025-12.yaml"]
    stub = drafts / "unowed-2025-12.yaml"
    text = stub.read_text()
    assert "slos: [unowed]" in text and '"Dev Rota"' in text and "150 bad of 10000 events" in text
    _, declarations = register
    checked = load_paths([declarations, stub])
    assert {d.field for d in checked.errors} == {"spec.cause", "spec.remediation.plan", "spec.remediation.tracker",
                                                 "spec.remediation.due"}  # fmt: skip
    filled = (
        text.replace('cause: ""', "cause: A bad deploy.")
        .replace('plan: ""', "plan: Roll forward.")
        .replace('tracker: ""', "tracker: https://jira.example.com/X-1")
        .replace("due: null", "due: 2026-02-01")
    )
    stub.write_text(filled)
    (drafts / "settled-2025-12.yaml").unlink()
    assert load_paths([declarations, stub]).errors == []
    db, _ = register
    result = run_govern("debt", declarations, stub, "--db", db, "--at", AT.isoformat(), "--format", "json")
    rules = [(f["rule"], f["slo"]) for f in json.loads(result.stdout)["findings"]]
    assert ("missed-without-debt", "unowed") not in rules and ("missed-without-debt", "settled") in rules
    again = run_govern("debt", declarations, "--db", db, "--at", AT.isoformat(), "--draft", drafts)
    assert again.exit_code == 0, again.output  # read without the filled stub: both missed again
    assert "unowed-2025-12.yaml: it exists" in again.output and "drafted" in again.output
    assert (drafts / "unowed-2025-12.yaml").read_text() == filled  # never overwritten


def test_stale_reads_the_register(register: tuple[Path, Path]) -> None:
    """`owed` missed one month only (not chronic); a chronic miss with open debt is not a finding, one without is,
    and both say the register was read."""
    db, declarations = register
    chronic = declarations.parent / "chronic"
    chronic.mkdir()
    (chronic / "slos.yaml").write_text(slo("chronic-owed") + slo("chronic-unowed"))
    (chronic / "debt.yaml").write_text(debt("chronic-work", "[chronic-owed]", due="2026-03-01", revisit="2026-03-01"))
    store = SqliteRollups(db)
    months = (datetime(2025, 10, 2, tzinfo=UTC), datetime(2025, 11, 2, tzinfo=UTC), datetime(2025, 12, 2, tzinfo=UTC))
    store.write([row(name, start, 200, 10000) for name in ("chronic-owed", "chronic-unowed") for start in months], AT)
    store.close()
    result = run_govern("stale", chronic, "--db", db, "--at", AT.isoformat(), "--format", "json")
    assert result.exit_code == 0, result.output
    missed = [f for f in json.loads(result.stdout)["findings"] if f["rule"] == "chronically-missed"]
    assert [f["slo"] for f in missed] == ["chronic-unowed"]
    assert (missed[0]["inputs"]["openDebt"], missed[0]["inputs"]["debtRegister"]) == (False, "read")


@pytest.mark.parametrize(
    ("document", "field", "fragment"),
    [
        (debt("x", "[nope]", due="2026-01-01", revisit="2026-01-01"), "spec.slos[0]", "no SLO named 'nope'"),
        (debt("x", "[owed]", due="2025-10-01", revisit="2026-01-01"), "spec", "remediation.due (2025-10-01) is before"),
        (debt("x", "[owed]", due="2026-01-01", revisit="2025-10-01"), "spec", "revisit (2025-10-01) is before"),
        (debt("x", "[owed, owed]", due="2026-01-01", revisit="2026-01-01"), "spec", "names an SLO twice"),
        (debt("x", "[owed]", due="2026-01-01", revisit="2026-01-01", kind="debt"), "spec.kind", "known-violation"),
        (debt("x", "[owed]", due="2026-01-01", revisit="2026-01-01").replace("https://jira.example.com/PAY-1", "PAY-1"),
         "spec.remediation.tracker", "http(s) link"),
        (debt("owed-pool", "[owed]", due="2026-01-01", revisit="2026-01-01"), "metadata.name", "already declared at"),
    ],
)  # fmt: skip
def test_bad_items_are_named_by_file_line_and_field(
    register: tuple[Path, Path], tmp_path: Path, document: str, field: str, fragment: str
) -> None:
    _, declarations = register
    extra = tmp_path / "extra.yaml"
    extra.write_text(document)
    errors = load_paths([declarations, extra]).errors
    assert [(e.path, e.field) for e in errors] == [(str(extra), field)]
    assert fragment in errors[0].message and errors[0].position.line > 1
    result = run_cli("validate", str(declarations), str(extra))
    assert result.code == 1 and f"{extra}:{errors[0].position.line}:" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_counts_the_register(register: tuple[Path, Path]) -> None:
    _, declarations = register
    result = run_cli("validate", str(declarations))
    assert result.code == 0, result.stderr
    assert "7 SLO(s) valid, 3 reliability debt item(s), 0 warning(s)" in result.stdout


def test_an_unknown_kind_names_both_kinds(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(slo("a").replace("kind: ServiceLevelObjective", "kind: Debt"))
    (error,) = load_paths([path]).errors
    assert "use ServiceLevelObjective or ReliabilityDebt" in error.message and error.position.line == 3


def test_the_quarterly_review_puts_the_registers_findings_on_its_agenda(register: tuple[Path, Path]) -> None:
    """`report quarterly` reads the register in the declarations' files: its findings as of the quarter's end (or
    `--at`) join the agenda, each owned by the team of the first SLO its item names."""
    db, declarations = register
    reports = typer.Typer()
    report_commands.register(reports, _consoles)
    quarter = CliRunner().invoke(reports, ["report", "quarterly", str(declarations), "--db", str(db), "--quarter",
                                           "2025-Q4", "--at", AT.isoformat(), "--format", "json"])  # fmt: skip
    assert quarter.exit_code == 0, quarter.output
    agenda = json.loads(quarter.stdout)["agenda"]
    debt_items = [(item["kind"], item["facts"].get("debt"), item["slo"]) for item in agenda if item["kind"] in
                  {"debt-overdue", "debt-expired", "missed-without-debt"}]  # fmt: skip
    # as of the quarter's end (2026-01-01 00:00, before AT): owed-pool is due that day (not yet overdue), the
    # exception's revisit is 2026-01-06 (not yet expired); December missed by unowed and settled
    assert debt_items == [("missed-without-debt", None, "settled"), ("missed-without-debt", None, "unowed")]
    assert {item["team"] for item in agenda if item["kind"] == "missed-without-debt"} == {"sre"}
