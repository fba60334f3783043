"""Batched reads against a real Prometheus: a fleet's grouped reads give each SLO exactly its own query's numbers.

The evaluator reads a whole fleet with one `sum by (job) (...)` per window (`measuring.batching`),
and records for each SLO the query that is its share (`Measurement.queries`, printed from a
template). Here several services have several series per job (instances, two 5xx codes) with
irregular rates and error ratios, evaluated at an instant between samples, so that a different
order of adding them up would show in the last digits: every number must be *equal* to what the
SLO's own query returns, not close to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sloplane.core.durations import format_duration
from sloplane.evaluator.measuring import batching, measure
from sloplane.evaluator.measuring.backends.base import RangeSeries, Sample
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.measuring.batching import _Group, _Plan, costliest_first
from sloplane.evaluator.model import Measurement
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from sloplane.sandbox import HttpTraffic, PrometheusSandbox, Segment, http_traffic
from sloplane.semantics.promql import Aggregation, Term, quote, regex_literal
from sloplane.semantics.subjects import Fleet
from tests.evaluator_data import load_fleet

END = datetime(2024, 6, 1, tzinfo=UTC)
HISTORY = timedelta(hours=30)
LATE = timedelta(hours=2)
"""The last hours carry more traffic and more errors: windows of different lengths see different ratios."""
AT = END - timedelta(seconds=23)
"""Between two samples: Prometheus extrapolates, so the numbers have all their digits."""

SERVICES = {
    # job: [(instance, requests per minute, error ratio, bad code), ...]
    "checkout": [("a", 613.0, 0.0123, "500"), ("b", 437.0, 0.0371, "503"), ("c", 59.0, 0.31, "500")],
    "search": [("a", 1201.0, 0.00071, "502"), ("b", 997.0, 0.0029, "500")],
    "ledger-eu": [("a", 83.0, 0.071, "500")],
    # A hyphen: the grouped read's regex must match exactly this job (`regex_literal`).
    "quiet": [("a", 3.0, 0.0, "500")],
}


def _traffic() -> list[HttpTraffic]:
    return [
        http_traffic(
            [Segment(HISTORY - LATE, rate, ratio), Segment(LATE, rate * 1.7, min(1.0, ratio * 2.5))],
            end=END,
            labels={"job": job, "instance": instance},
            bad_code=code,
        )
        for job, instances in SERVICES.items()
        for instance, rate, ratio, code in instances
    ]


def _declaration(job: str) -> str:
    return (
        "apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\n"
        f"metadata: {{name: {job}}}\nspec:\n  service: {job}\n  owners: {{team: sre}}\n  objective: 99.5\n"
        f"  window: 7d\n  sli: {{http: {{metric: http_requests_total, selector: {{job: {job}}}}}}}\n"
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(tmp_path_factory.mktemp("fleet"), "---\n".join(_declaration(job) for job in SERVICES))


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), _traffic()) as sandbox:
        yield sandbox


class Recording:
    """A backend that answers from Prometheus and keeps the queries in the order they were asked."""

    name = "prometheus"

    def __init__(self, inner: PrometheusBackend) -> None:
        self.inner = inner
        self.asked: list[str] = []

    def query(self, expression: str, at: datetime) -> list[Sample]:
        self.asked.append(expression)
        return self.inner.query(expression, at)

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        raise AssertionError("an evaluation asks no range query")

    def healthy(self) -> tuple[bool, str]:
        return self.inner.healthy()


def _evaluate(fleet: Fleet, url: str, tmp_path: Path, names: list[str] | None = None) -> list[Measurement]:
    evaluator = Evaluator(fleet, PrometheusBackend(url), SqliteDecisionLog(tmp_path / "decisions.db"))
    return evaluator.evaluate(AT, names)


def _only(prometheus: PrometheusSandbox, query: str) -> float:
    """The value of a query that has one sample (one SLO's read)."""
    (sample,) = PrometheusBackend(prometheus.url).query(query, AT)
    return sample.value


WINDOW = re.compile(r"\[([0-9a-z]+)\]")


def test_every_number_is_what_the_slos_own_queries_return(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "PACK_BELOW", 0)  # every grouped read a query of its own, as for a large fleet
    measurements = _evaluate(fleet, prometheus.url, tmp_path)
    assert [m.slo for m in measurements] == list(SERVICES)
    for measurement in measurements:
        job = measurement.slo
        assert measurement.error is None and measurement.source == "raw"
        recorded: dict[tuple[str, str], float] = {}
        for query in measurement.queries:  # the SLO's share of each grouped read, as its record prints it
            if "count_over_time" in query:
                continue
            part = "bad" if 'code=~"5.."' in query else "total"
            window = WINDOW.search(query)
            assert window is not None and f"job=~{quote(regex_literal(job))}" in query
            recorded[(part, window[1])] = _only(prometheus, query)
        period = format_duration(timedelta(days=7))
        for window in measurement.windows:
            text = format_duration(window.window)
            own_bad = f'sum(increase(http_requests_total{{code=~"5..",job="{job}"}}[{text}]))'
            own_total = f'sum(increase(http_requests_total{{job="{job}"}}[{text}]))'
            assert window.bad_events == recorded[("bad", text)] == _only(prometheus, own_bad)
            assert window.events == recorded[("total", text)] == _only(prometheus, own_total)
            assert window.events is not None and window.bad_events is not None
            assert window.error_ratio == max(0.0, window.bad_events / window.events)
        assert measurement.period_bad_events == recorded[("bad", period)]
        assert measurement.period_events == recorded[("total", period)]
        assert len(recorded) == 2 * (len(measurement.windows) + 1)


def test_the_fleet_read_at_once_equals_each_slo_read_alone(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path
) -> None:
    together = _evaluate(fleet, prometheus.url, tmp_path)
    alone = [_evaluate(fleet, prometheus.url, tmp_path, [name])[0] for name in SERVICES]
    assert together == alone  # every window, the period, the budget, the queries recorded


def test_the_costliest_queries_are_asked_first(
    fleet: Fleet, prometheus: PrometheusSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "PACK_BELOW", 0)
    monkeypatch.setattr(measure, "PARALLEL_QUERIES", 1)  # one at a time: asked in the order sent
    backend = Recording(PrometheusBackend(prometheus.url))
    evaluator = Evaluator(fleet, backend, SqliteDecisionLog(tmp_path / "decisions.db"))
    evaluator.evaluate(AT)
    first, *grouped = backend.asked  # which SLOs have recording rules, then the fleet's reads
    assert "sloplane:slo:info" in first
    reaches = []
    for query in grouped:
        window = WINDOW.search(query)
        assert window is not None
        reaches.append(_seconds(window[1]))
    assert reaches == sorted(reaches, reverse=True) and reaches[0] == timedelta(days=7).total_seconds()


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(sum(int(number) * units[unit] for number, unit in re.findall(r"(\d+)([smhd])", text)))


# --- the record's text, without Prometheus ------------------------------------------------------------

VALUES = ["checkout", "", "a.b", "x|y", 'quo"te', "back\\slash", "[set]", "(group)", "ünï", "a{1,2}$", "-minus"]


@pytest.mark.parametrize(
    "aggregation",
    [
        Aggregation("increase", "http_requests_total", ("job",), ('code=~"5.."',)),
        Aggregation("count_over_time", "probe_success", ("instance", "job")),
        Aggregation(None, "sloplane:error_ratio:rate5m", ("slo", "stage")),
    ],
    ids=["increase", "two-keys", "recorded"],
)
def test_reads_are_printed_as_the_aggregation_prints_them(aggregation: Aggregation) -> None:
    for window, end in [(timedelta(minutes=5), None), (timedelta(days=3), END), (None, None)]:
        if window is None and aggregation.function is not None:
            continue
        group = _Group(aggregation, window, end)
        escaped: dict[str, str] = {}
        for first in VALUES:
            for second in VALUES[:3]:
                values = (first, second)[: len(aggregation.keys)]
                assert group.single(values, escaped) == aggregation.query([values], window, end)
                group.values[values] = None
        assert group.query(escaped) == group.query({}) == aggregation.query(group.values, window, end)


def test_a_template_that_cannot_be_made_falls_back_to_the_query() -> None:
    odd = Aggregation("increase", "sloplaneplaceholder0x_total", ("job",))  # the placeholder in the metric's name
    group = _Group(odd, timedelta(hours=1), None)
    assert group.single(("api",), {}) == odd.query([("api",)], timedelta(hours=1))
    group.values.update({("api",): None, ("web",): None})
    assert group.query({}) == odd.query([("api",), ("web",)], timedelta(hours=1))


def test_reads_are_ordered_by_how_far_back_they_reach() -> None:
    plan = _Plan()
    aggregation = Aggregation("increase", "http_requests_total", ("job",))
    for window in (timedelta(minutes=5), timedelta(days=30), timedelta(hours=1)):
        plan.add_terms("t", "total", format_duration(window), (Term(1, aggregation, ("api",)),), window=window)
    plan.add("t", "ratio", "2h", "avg(up)", timedelta(hours=2))
    alone: batching._Packed = [(query, [(None, group)]) for query, group in batching._grouped_queries(plan)]
    order = costliest_first(alone, batching._tagged_queries(plan))
    assert order == [1, 3, 2, 0]  # 30d, the 2h hand-written ratio, 1h, 5m


def test_a_period_with_no_answer_is_found_for_its_fallback() -> None:
    plan = _Plan()
    aggregation = Aggregation(None, "sloplane:error_ratio:period", ("slo", "stage"))
    plan.add_terms("a", "ratio", "period:7d", (Term(1, aggregation, ("a", "")),))
    plan.add_terms("b", "ratio", "period:7d", (Term(1, aggregation, ("b", "")),))
    plan.add("c", "ratio", "period:7d", "avg(up)")
    plan.add_terms("d", "ratio", "5m", (Term(1, aggregation, ("d", "")),))
    answers: dict[tuple[str, str, str], float | None] = {
        ("a", "ratio", "period:7d"): 0.1,
        ("b", "ratio", "period:7d"): None,
        ("d", "ratio", "5m"): None,
    }
    assert plan.period_unanswered(answers) == {"b", "c"}
