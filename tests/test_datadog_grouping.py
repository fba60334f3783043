"""Regrouping Datadog queries: many subjects' single-tag queries as one `by {tag}` query, answers read back
from its rows equal to asking each query alone (against the local Datadog API)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloplane.evaluator.measuring.backends.datadog import DatadogCounts, RateLimits
from sloplane.evaluator.measuring.datadog_grouping import grouped
from tests.datadog_api import SCALAR, DatadogAPI

END = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_queries_differing_in_one_tag_become_one_grouped_query() -> None:
    queries = [
        "sum:http.count{env:prod,service:a}.as_count()",
        "sum:http.count{env:prod,service:b}.as_count()",
        "sum:http.count{code:5*,env:prod,service:a}.as_count()",
        "sum:http.count{code:5*,env:prod,service:b}.as_count()",
        "sum:other.count{service:a}.as_count()",
        "sum:http.count{env:prod AND (code:5* OR code:429)}.as_count()",
    ]
    found = {query.text: query for query in grouped(queries)}
    assert set(found) == {
        "sum:http.count{env:prod} by {service}.as_count()",
        "sum:http.count{code:5*,env:prod} by {service}.as_count()",
        "sum:other.count{service:a}.as_count()",  # alone: nothing to group with
        "sum:http.count{env:prod AND (code:5* OR code:429)}.as_count()",  # not plainly written: as is
    }
    assert found["sum:http.count{env:prod} by {service}.as_count()"].members == {queries[0]: "a", queries[1]: "b"}
    assert found["sum:other.count{service:a}.as_count()"].key is None


@pytest.fixture(scope="module")
def api() -> Iterator[DatadogAPI]:
    server = DatadogAPI()
    start = (END - timedelta(hours=1)).timestamp()
    for index, (service, code, env) in enumerate(
        (s, c, e) for s in ("a", "b", "c", "d") for c in ("200", "500", "503") for e in ("prod", "staging")
    ):
        server.add_series("http.count", {"service": service, "code": code, "env": env}, [(start, index + 1.0)])
    with server:
        yield server


QUERY = st.builds(
    lambda service, code, env: "sum:http.count{" + ",".join(t for t in (code, env, service) if t) + "}.as_count()",
    st.sampled_from(["service:a", "service:b", "service:c", "service:d", "service:e", "", "service:a*"]),
    st.sampled_from(["", "code:5*", "code:500", "!code:200"]),
    st.sampled_from(["", "env:prod", "env:staging"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(QUERY, min_size=1, max_size=12))
def test_grouped_answers_equal_each_query_asked_alone(api: DatadogAPI, queries: list[str]) -> None:
    queries = [q.replace("{}", "{*}") for q in queries]
    counts = DatadogCounts(api.url, "k", "a", limits=RateLimits())
    start, end = counts.window(END, timedelta(hours=1))
    alone = dict(zip(queries, counts.read(queries, start, end).values, strict=True))
    sent = grouped(queries)
    for query in sent:
        (counted,) = counts.read_many([([query.text], start, end, query.key is not None)])
        (row,) = counted.rows
        answers = {query.text: row.get("")} if query.key is None else query.members_in(row)
        for original, value in answers.items():
            assert value == alone[original], (original, query.text)
    assert sorted(q for query in sent for q in (query.members or [query.text])) == sorted(set(queries))
    assert all(r.status == 200 for r in api.requests(SCALAR))
