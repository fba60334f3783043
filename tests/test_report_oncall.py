"""The on-call report against a real Prometheus holding a known history: every page, its shift, its minutes, the
repeaters, the tickets and the muted time equal to a replay computed here from the traffic model alone (each
window's error ratio at each minute from the segments, the Workbook's factors, `for`); its files (golden), its
command's refusals, and the page in a real browser.

The history: two days across the end of European summer time (2025-10-26), reported in Europe/Berlin from 09:00
on the 25th to 21:00 on the 26th: three 12-hour shifts by the clock, the night one 13 hours long.
- `checkout` (99.9%, Workbook alerts, a runbook): a sharp incident in the first shift and another in the night;
- `search` (99.5%, its own alerts: a page with `for: 5m`, a ticket; no runbook): an incident in the night, its
  first minutes inside a one-off exclusion window (which mutes its routes in Alertmanager);
- `ledger` (99.9%, a runbook for pages only): a slow burn that raises tickets, never a page;
- `journey`, a composite of the two first: nothing of its own to replay.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from sloplane.core.schedules import merge_spans
from sloplane.evaluator.history.oncall import MAX_SPAN, OncallError, OncallOptions, oncall_report
from sloplane.evaluator.history.oncall_files import oncall_file
from sloplane.evaluator.history.oncall_shifts import shift_spans
from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.render.prometheus import rule_groups
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, expected_counts, free_port, http_traffic
from sloplane.semantics.promql import promql_matchers
from sloplane.semantics.subjects import Fleet
from tests.browser import open_page
from tests.conftest import CliResult, run_cli
from tests.evaluator_data import load_fleet

pytest_plugins = ("tests.browser",)

GOLDEN = Path(__file__).parent / "golden" / "reports"
UPDATE = os.environ.get("SLOPLANE_UPDATE_GOLDEN") == "1"

START = datetime(2025, 10, 25, 0, 0, tzinfo=UTC)
END = datetime(2025, 10, 27, 0, 0, tzinfo=UTC)
SINCE = datetime(2025, 10, 25, 7, 0, tzinfo=UTC)  # 09:00 CEST
UNTIL = datetime(2025, 10, 26, 20, 0, tzinfo=UTC)  # 21:00 CET
AT = datetime(2025, 10, 27, 0, 0, tzinfo=UTC)
ZONE = "Europe/Berlin"
TARGET = 1
MINUTE = timedelta(minutes=1)
MUTED = (datetime(2025, 10, 26, 3, 0, tzinfo=UTC), datetime(2025, 10, 26, 3, 25, tzinfo=UTC))

INCIDENTS: dict[str, tuple[float, float, list[tuple[datetime, timedelta, float]]]] = {
    # job: (events per minute, baseline error ratio, [(start, duration, error ratio)])
    "checkout": (
        600.0,
        0.0005,
        [
            (datetime(2025, 10, 25, 10, 0, tzinfo=UTC), timedelta(minutes=20), 0.2),
            (datetime(2025, 10, 26, 2, 10, tzinfo=UTC), timedelta(minutes=15), 0.1),
        ],
    ),
    "search": (300.0, 0.0005, [(datetime(2025, 10, 26, 3, 0, tzinfo=UTC), timedelta(minutes=30), 0.3)]),
    "ledger": (400.0, 0.0005, [(datetime(2025, 10, 25, 12, 0, tzinfo=UTC), timedelta(hours=14), 0.0052)]),
}


@dataclass(frozen=True)
class Pair:
    """One alert as the test knows it, from the SRE Workbook's table (30-day period) or the declaration."""

    slo: str
    tier: str
    long: timedelta
    short: timedelta
    factor: float
    budget: float
    pending: timedelta = timedelta(0)

    @property
    def name(self) -> str:
        def text(value: timedelta) -> str:
            minutes = int(value / MINUTE)
            return (
                f"{minutes // 1440}d"
                if minutes % 1440 == 0
                else (f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m")
            )

        return f"{text(self.long)}/{text(self.short)}"


def _workbook(slo: str, budget: float) -> list[Pair]:
    hour = timedelta(hours=1)
    return [
        Pair(slo, "page", hour, timedelta(minutes=5), 14.4, budget),
        Pair(slo, "page", 6 * hour, timedelta(minutes=30), 6.0, budget),
        Pair(slo, "ticket", 24 * hour, 2 * hour, 3.0, budget),
        Pair(slo, "ticket", 72 * hour, 6 * hour, 1.0, budget),
    ]


PAIRS = [
    *_workbook("checkout", 0.001),
    Pair("search", "page", timedelta(hours=1), timedelta(minutes=5), 14.4, 0.005, timedelta(minutes=5)),
    Pair("search", "ticket", timedelta(hours=6), timedelta(minutes=30), 6.0, 0.005),
    *_workbook("ledger", 0.001),
]


def _segments(job: str) -> list[Segment]:
    rate, baseline, incidents = INCIDENTS[job]
    segments, cursor = [], START
    for start, length, ratio in incidents:
        segments += [Segment(start - cursor, rate, baseline), Segment(length, rate, ratio)]
        cursor = start + length
    return [*segments, Segment(END - cursor, rate, baseline)]


def declarations() -> str:
    header = "apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\n"

    def slo(name: str, objective: float, extra: str = "") -> str:
        return (
            f"{header}metadata: {{name: {name}}}\nspec:\n  service: {name}\n  owners: {{team: {name}-team}}\n"
            f"  objective: {objective}\n  window: 30d\n"
            f"  sli: {{http: {{metric: http_requests_total, selector: {{job: {name}}}}}}}\n{extra}"
        )

    muted = "".join(
        instant.isoformat().replace("+00:00", "Z") + sep for instant, sep in zip(MUTED, (", end: ", ""), strict=True)
    )
    return "---\n".join(
        [
            slo("checkout", 99.9, "  alerting: {runbook: 'https://runbooks.example/checkout'}\n"),
            slo(
                "search",
                99.5,
                "  alerting:\n    windows:\n"
                "      - {tier: page, long: 1h, short: 5m, factor: 14.4, for: 5m}\n"
                "      - {tier: ticket, long: 6h, short: 30m, factor: 6}\n"
                f"  exclusions:\n    windows:\n      - {{name: failover, start: {muted}, reason: Planned failover.}}\n",
            ),
            slo(
                "ledger",
                99.9,
                "  alerting:\n    pageAlert: {annotations: {runbook_url: 'https://runbooks.example/ledger'}}\n",
            ),
            f"{header}metadata: {{name: journey}}\nspec:\n  service: storefront\n  owners: {{team: web}}\n"
            "  objective: 99\n  window: 30d\n  sli:\n    composite:\n      components:\n"
            "        - {slo: checkout, weight: 1}\n        - {slo: search, weight: 1}\n",
        ]
    )


@pytest.fixture(scope="module")
def traffic() -> dict[str, HttpTraffic]:
    return {job: http_traffic(_segments(job), start=START, labels={"job": job}) for job in INCIDENTS}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), declarations())


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, traffic: dict[str, HttpTraffic]) -> Iterator[str]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), list(traffic.values())) as sandbox:
        yield sandbox.url


OPTIONS = OncallOptions(SINCE, UNTIL, time_zone=ZONE, target=TARGET)


@pytest.fixture(scope="module")
def report(fleet: Fleet, prometheus: str) -> dict[str, Any]:
    return oncall_report(fleet, PrometheusBackend(prometheus), OPTIONS, at=AT)


# -- the hand replay ----------------------------------------------------------------------------------------------

Span = tuple[datetime, datetime]


def _ratio(traffic: HttpTraffic, at: datetime, window: timedelta) -> float | None:
    bad, total = expected_counts(traffic, at, window)
    return None if total == 0 else bad / total


def _held(pair: Pair, traffic: HttpTraffic, at: datetime) -> bool:
    """Both windows above factor × budget at `at`; refuses a minute decided by rounding (the fixture's duty)."""
    threshold = pair.factor * pair.budget
    verdicts = []
    for window in (pair.long, pair.short):
        ratio = _ratio(traffic, at, window)
        assert ratio is None or abs(ratio - threshold) > 1e-9, f"{pair} at {at}: {ratio} too close to {threshold}"
        verdicts.append(ratio is not None and ratio > threshold)
    return all(verdicts)


def _fired(pair: Pair, traffic: HttpTraffic, since: datetime, until: datetime) -> list[Span]:
    """Prometheus' `for`, minute by minute, from early enough to know what was pending at `since`."""
    spans: list[Span] = []
    pending_since = firing_since = None
    at = since - pair.pending - MINUTE
    while at < until:
        if _held(pair, traffic, at):
            pending_since = pending_since or at
            if firing_since is None and at - pending_since >= pair.pending:
                firing_since = at
        else:
            if firing_since is not None:
                spans.append((firing_since, at))
            pending_since = firing_since = None
        at += MINUTE
    if firing_since is not None:
        spans.append((firing_since, until))
    return spans


def _minus(spans: list[Span], cut: Span) -> list[Span]:
    left = []
    for start, end in spans:
        if end <= cut[0] or start >= cut[1]:
            left.append((start, end))
            continue
        if start < cut[0]:
            left.append((start, cut[0]))
        if end > cut[1]:
            left.append((cut[1], end))
    return left


def _expected(
    traffic: dict[str, HttpTraffic], tier: str, since: datetime, until: datetime
) -> list[tuple[str, datetime, datetime, bool]]:
    """(slo, start, end, started before `since`) of each delivered page (or ticket), clipped to [since, until)."""
    found = []
    for slo in INCIDENTS:
        fired = {pair.name: _fired(pair, traffic[slo], since, until) for pair in PAIRS if pair.slo == slo}
        pages = merge_spans(
            span for pair in PAIRS if pair.slo == slo and pair.tier == "page" for span in fired[pair.name]
        )
        spans = (
            pages
            if tier == "page"
            else merge_spans(
                span for pair in PAIRS if pair.slo == slo and pair.tier == "ticket" for span in fired[pair.name]
            )
        )
        if tier == "ticket":
            for page in pages:  # inhibited while a page of the same SLO fires
                spans = _minus(spans, page)
        if slo == "search":
            spans = _minus(spans, MUTED)
        found += [(slo, max(s, since), e, s < since) for s, e in spans if e > since]
    return sorted(found, key=lambda page: (page[1], page[0]))


SHIFTS = [  # 09:00 and 21:00 in Berlin: CEST (+2) until 03:00 on the 26th, CET (+1) after
    (datetime(2025, 10, 25, 7, 0, tzinfo=UTC), datetime(2025, 10, 25, 19, 0, tzinfo=UTC)),
    (datetime(2025, 10, 25, 19, 0, tzinfo=UTC), datetime(2025, 10, 26, 8, 0, tzinfo=UTC)),
    (datetime(2025, 10, 26, 8, 0, tzinfo=UTC), datetime(2025, 10, 26, 20, 0, tzinfo=UTC)),
]


def _as_spans(found: list[dict[str, Any]]) -> list[tuple[str, datetime, datetime, bool]]:
    return [
        (p["slo"], datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"]), p["startedBefore"])
        for p in found
    ]


# -- the numbers --------------------------------------------------------------------------------------------------


def test_every_page_is_the_hand_replay(report: dict[str, Any], traffic: dict[str, HttpTraffic]) -> None:
    expected = _expected(traffic, "page", SINCE, UNTIL)
    assert [slo for slo, *_ in expected] == ["checkout", "checkout", "search"], "the fixture's three incidents"
    assert _as_spans(report["pages"]) == expected
    for page, (_, start, end, _) in zip(report["pages"], expected, strict=True):
        assert page["minutes"] == (end - start) / MINUTE


def test_pages_per_shift_against_the_target(report: dict[str, Any], traffic: dict[str, HttpTraffic]) -> None:
    expected = _expected(traffic, "page", SINCE, UNTIL)
    shifts = report["shifts"]
    assert [(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])) for s in shifts] == SHIFTS
    for index, (start, end) in enumerate(SHIFTS):
        started = [page for page in expected if start <= page[1] < end and not page[3]]
        assert shifts[index]["pages"] == len(started)
        assert shifts[index]["overTarget"] == (len(started) > TARGET)
        paging = merge_spans((max(s, start), min(e, end)) for _, s, e, _ in expected if s < end and e > start)
        assert shifts[index]["pagingMinutes"] == sum((e - s) / MINUTE for s, e in paging)
    assert [s["pages"] for s in shifts] == [1, 2, 0] and report["totals"]["shiftsOverTarget"] == 1
    assert report["totals"]["pages"] == len(expected)
    assert report["totals"]["pagingMinutes"] == sum((e - s) / MINUTE for _, s, e, _ in expected)


def test_an_slo_paging_in_two_shifts_repeats(report: dict[str, Any]) -> None:
    assert [(r["slo"], r["shifts"], r["pages"]) for r in report["repeaters"]] == [("checkout", 2, 2)]


def test_tickets_apart_without_the_time_a_page_fires(report: dict[str, Any], traffic: dict[str, HttpTraffic]) -> None:
    expected = _expected(traffic, "ticket", SINCE, UNTIL)
    assert {slo for slo, *_ in expected} >= {"ledger"}, "the slow burn raises a ticket"
    assert _as_spans(report["tickets"]) == expected
    assert all(ticket["shift"] is None for ticket in report["tickets"])


def test_the_muted_minutes_are_no_page(report: dict[str, Any], traffic: dict[str, HttpTraffic]) -> None:
    pair = next(p for p in PAIRS if p.slo == "search" and p.tier == "page")
    fired = _fired(pair, traffic["search"], SINCE, UNTIL)
    muted = sum(
        ((min(e, MUTED[1]) - max(s, MUTED[0])) / MINUTE for s, e in fired if s < MUTED[1] and e > MUTED[0]), 0.0
    )
    assert muted > 0, "the fixture's search page begins inside the exclusion window"
    assert report["totals"]["mutedMinutes"] == muted
    (search,) = [page for page in report["pages"] if page["slo"] == "search"]
    assert search["start"] == MUTED[1].isoformat()


def test_a_page_already_firing_at_from_counts_in_no_shift(
    fleet: Fleet, prometheus: str, traffic: dict[str, HttpTraffic]
) -> None:
    since = datetime(2025, 10, 25, 10, 10, tzinfo=UTC)  # checkout's first incident pages from 10:05
    found = oncall_report(fleet, PrometheusBackend(prometheus), OncallOptions(since, UNTIL, time_zone=ZONE), at=AT)
    expected = _expected(traffic, "page", since, UNTIL)
    assert expected[0][3] and _as_spans(found["pages"]) == expected
    assert found["pages"][0]["shift"] is None and found["totals"]["pagesBefore"] == 1
    assert found["shifts"][0]["pages"] == 0 and found["shifts"][0]["pagingMinutes"] > 0


def test_peak_burn_rate_is_the_long_window_at_its_worst(
    report: dict[str, Any], traffic: dict[str, HttpTraffic]
) -> None:
    first = report["pages"][0]
    start, end = datetime.fromisoformat(first["start"]), datetime.fromisoformat(first["end"])
    peaks = []
    for pair in (p for p in PAIRS if p.slo == "checkout" and p.tier == "page"):
        at = start
        while at < end:
            if _held(pair, traffic["checkout"], at):
                ratio = _ratio(traffic["checkout"], at, pair.long)
                assert ratio is not None
                peaks.append(ratio / pair.budget)
            at += MINUTE
    assert first["windows"] == ["1h/5m", "6h/30m"]
    assert abs(first["peakBurnRate"] - max(peaks)) <= 1e-9 * max(peaks)


def _expanded(expression: str, recorded: dict[str, str]) -> str:
    """A generated expression with every recorded series it reads replaced by the rule that records it."""
    while True:
        before = expression
        for selector, rule in recorded.items():
            expression = expression.replace(selector, f"({rule})")
        if expression == before:
            return expression


def test_the_replayed_condition_is_the_generated_rule(fleet: Fleet, prometheus: str, report: dict[str, Any]) -> None:
    """Each replayed expression answers exactly as the alert rule `sloplane render` writes, its recorded series
    expanded into the rules that record them, at every minute of the report."""
    backend = PrometheusBackend(prometheus)
    firing = 0
    for slo in ("checkout", "search"):
        groups = rule_groups(fleet[slo], fleet)
        rules = [rule for group in groups for rule in group["rules"]]
        recorded = {f"{r['record']}{promql_matchers(r['labels'])}": r["expr"] for r in rules if "record" in r}
        alerts = [rule for rule in rules if "alert" in rule]
        replayed = [alert for alert in report["alerts"] if alert["slo"] == slo]
        assert len(alerts) == len(replayed)
        for rule, alert in zip(alerts, replayed, strict=True):
            assert f"{rule['labels']['long_window']}/{rule['labels']['short_window']}" == alert["windows"]
            assert rule.get("for") == alert["for"]
            ours, theirs = (
                backend.query_range(text, SINCE - timedelta(hours=1), UNTIL, MINUTE)
                for text in (alert["expression"], _expanded(rule["expr"], recorded))
            )
            assert [series.points for series in ours] == [series.points for series in theirs]
            firing += sum(len(series.points) for series in ours)
    assert firing > 0, "the conditions held somewhere: the comparison saw values, not two empty answers"


def test_runbooks_and_what_is_not_replayed(report: dict[str, Any]) -> None:
    missing = {line["slo"]: line["tiers"] for line in report["withoutRunbook"]}
    assert missing == {"search": ["page", "ticket"], "ledger": ["ticket"], "journey": ["page", "ticket"]}
    assert [line["paged"] for line in report["withoutRunbook"]] == [False, False, True]  # journey, ledger, search
    assert list(report["notReplayed"]) == ["journey"]
    assert [page["runbook"] for page in report["pages"]] == ["https://runbooks.example/checkout"] * 2 + [None]
    assert len(report["alerts"]) == 4 + 2 + 4


def test_chunks_give_the_same_report(fleet: Fleet, prometheus: str, report: dict[str, Any]) -> None:
    """Under Prometheus' 11,000 points: 500 evaluations a query here, so every alert takes five."""
    options = OncallOptions(SINCE, UNTIL, time_zone=ZONE, target=TARGET, max_points=500)
    chunked = oncall_report(fleet, PrometheusBackend(prometheus), options, at=AT)
    assert chunked["totals"]["queries"] > report["totals"]["queries"]
    same = ("pages", "tickets", "shifts", "repeaters")
    assert {key: chunked[key] for key in same} == {key: report[key] for key in same}


def test_shifts_of_other_lengths() -> None:
    eight = shift_spans(SINCE, SINCE + timedelta(days=1), timedelta(hours=8), time(6), "UTC")
    assert [span[0][0].hour for span in eight] == [7, 14, 22, 6] and eight[0][1], "clipped to --from: partial"
    assert [(span[0][1] - span[0][0]) / timedelta(hours=1) for span in eight] == [7, 8, 8, 1]
    with pytest.raises(OncallError, match="divide a day"):
        OncallOptions(SINCE, UNTIL, shift=timedelta(hours=7)).check()
    with pytest.raises(OncallError, match="before --to"):
        OncallOptions(UNTIL, SINCE).check()
    with pytest.raises(OncallError, match="at most 31 days"):
        OncallOptions(SINCE, SINCE + MAX_SPAN + MINUTE).check()


# -- files and the command ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", FORMATS)
def test_each_format_is_its_golden_file(report: dict[str, Any], output_format: str) -> None:
    """Review a change with `SLOPLANE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report_oncall.py` and `git diff`."""
    written = oncall_file(report, output_format)
    golden = GOLDEN / f"oncall-2025-10-25.{output_format}"
    if UPDATE:
        golden.write_text(written, encoding="utf-8")
    assert written == golden.read_text(encoding="utf-8")


def run_report(*args: str | Path) -> CliResult:
    return run_cli("report", *args)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = tmp_path_factory.mktemp("declarations")
    (found / "fleet.yaml").write_text(declarations())
    return found


def _common(folder: Path, prometheus: str) -> list[str | Path]:
    return ["oncall", folder, "--prometheus", prometheus, "--tz", ZONE, "--target", str(TARGET), "--at", AT.isoformat()]


@pytest.fixture(scope="module")
def browsers(browser: Any, browser_without_javascript: Any) -> tuple[Any, Any]:
    return browser, browser_without_javascript


def test_the_command_writes_the_report_and_the_page_reads_in_a_browser(
    folder: Path, prometheus: str, report: dict[str, Any], tmp_path: Path, browsers: tuple[Any, Any]
) -> None:
    browser, browser_without_javascript = browsers
    span = ["--from", SINCE.isoformat(), "--to", UNTIL.isoformat()]
    as_json = run_report(*_common(folder, prometheus), *span, "--format", "json")
    assert as_json.code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == json.loads(oncall_file(report, "json"))
    page_file = tmp_path / "oncall.html"
    written = run_report(*_common(folder, prometheus), *span, "--out", page_file)
    assert written.code == 0, written.stderr
    page = open_page(browser, page_file)
    assert page.problems() == [] and page.count("script") == 0
    assert page.count("tr.shift") == 3 and page.count("tr.shift.over") == 1
    assert page.count("svg rect.bar") == 3 and page.count("tr.page") == 3
    page.screenshot("oncall")
    text = open_page(browser_without_javascript, page_file).text()
    assert "checkout" in text and "no runbook" in text


@pytest.mark.parametrize(
    ("span", "option", "words"),
    [
        ((UNTIL, SINCE), "--from", "before --to"),
        ((SINCE, SINCE + timedelta(days=32)), "--to", "at most 31 days"),
        ((SINCE, AT + timedelta(hours=1)), "--to", "after --at"),
    ],
)
def test_a_span_that_is_none_is_refused(
    folder: Path, prometheus: str, span: tuple[datetime, datetime], option: str, words: str
) -> None:
    ran = run_report(*_common(folder, prometheus), "--from", span[0].isoformat(), "--to", span[1].isoformat())
    assert ran.code == 2 and option in ran.stderr and words in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr


def test_bad_shift_options_are_refused(folder: Path, prometheus: str) -> None:
    span = ["--from", SINCE.isoformat(), "--to", UNTIL.isoformat()]
    for option, value in (
        ("--shift", "7h"),
        ("--shift-start", "25:00"),
        ("--tz", "Europe/Berlinn"),
        ("--target", "-1"),
    ):
        ran = run_report(*_common(folder, prometheus), *span, option, value)
        assert ran.code == 2 and option in ran.stderr, (option, ran.stderr)


def test_prometheus_unreachable_is_exit_1_with_why(folder: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    ran = run_report("oncall", folder, "--prometheus", url, "--from", SINCE.isoformat(), "--to", UNTIL.isoformat())
    assert ran.code == 1 and "Prometheus could not be read" in ran.stderr and url in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr
