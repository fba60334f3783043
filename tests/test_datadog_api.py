"""The local Datadog API answers in the official client's shapes and counts exactly as documented.

Every answer body is parsed strictly with `datadog_api_client`'s own deserializer, so the evaluator
and Argo tests built on `tests/datadog_api.py` exercise the real wire format, not a guess of it.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiTypeError, ForbiddenException
from datadog_api_client.model_utils import OpenApiModel, UnparsedObject, validate_and_convert_types
from datadog_api_client.v2.api.metrics_api import MetricsApi
from datadog_api_client.v2.model.api_error_response import APIErrorResponse
from datadog_api_client.v2.model.metrics_aggregator import MetricsAggregator
from datadog_api_client.v2.model.metrics_data_source import MetricsDataSource
from datadog_api_client.v2.model.metrics_scalar_query import MetricsScalarQuery
from datadog_api_client.v2.model.query_formula import QueryFormula
from datadog_api_client.v2.model.scalar_formula_query_request import ScalarFormulaQueryRequest
from datadog_api_client.v2.model.scalar_formula_query_response import ScalarFormulaQueryResponse
from datadog_api_client.v2.model.scalar_formula_request import ScalarFormulaRequest
from datadog_api_client.v2.model.scalar_formula_request_attributes import ScalarFormulaRequestAttributes
from datadog_api_client.v2.model.scalar_formula_request_queries import ScalarFormulaRequestQueries
from datadog_api_client.v2.model.scalar_formula_request_type import ScalarFormulaRequestType
from datadog_api_client.v2.model.timeseries_formula_query_response import TimeseriesFormulaQueryResponse

from tests.datadog_api import (
    FORBIDDEN_BODY,
    RATE_LIMITED_BODY,
    REDACTED,
    SCALAR,
    TIMESERIES,
    VALIDATE,
    DatadogAPI,
    Fault,
    RateLimit,
)

KEYS = {"DD-API-KEY": "api-secret", "DD-APPLICATION-KEY": "app-secret"}
LIMIT_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Period",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Name",
)
B = 1_700_000_040  # a multiple of 60: the start of a UNIX-aligned minute
assert B % 60 == 0
METRIC = "trace.http.request.hits"


class Clock:
    """A clock tests move by hand, so rate-limit windows are exact."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


# ------------------------------------------------------------------------------------------------
# helpers


def strict(body: Any, model: type[OpenApiModel]) -> Any:
    """Deserialize as the official client does for responses; refuse anything it could not parse."""
    parsed = validate_and_convert_types(
        copy.deepcopy(body), (model,), ["body"], True, True, configuration=Configuration()
    )
    assert parsed._unparsed is False, body
    _no_unparsed(parsed)
    return parsed


def _no_unparsed(node: Any) -> None:
    assert not isinstance(node, UnparsedObject), node
    if isinstance(node, list):
        for item in node:
            _no_unparsed(item)
    if isinstance(node, OpenApiModel):
        assert not getattr(node, "_unparsed", False), node
        for value in node._data_store.values():
            _no_unparsed(value)
        for inner in getattr(node, "_composed_instances", []):
            _no_unparsed(inner)


def column_kinds(parsed: Any) -> list[str]:
    """The oneOf member each scalar column parsed as (`GroupScalarColumn` / `DataScalarColumn`)."""
    return [type(column._composed_instances[0]).__name__ for column in parsed.data.attributes.columns]


def query(text: str, name: str = "q", aggregator: str = "sum") -> dict[str, str]:
    return {"data_source": "metrics", "query": text, "aggregator": aggregator, "name": name}


def scalar_request(start_s: float, end_s: float, queries: list[dict[str, str]], formulas: Any = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"from": round(start_s * 1000), "to": round(end_s * 1000), "queries": queries}
    if formulas is not None:
        attributes["formulas"] = formulas
    return {"data": {"type": "scalar_request", "attributes": attributes}}


def post(
    url: str, path: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 5
) -> requests.Response:
    return requests.post(url + path, json=body, headers=KEYS if headers is None else headers, timeout=timeout)


def scalar(url: str, body: Any) -> dict[str, Any]:
    """POST a scalar query that must succeed; returns ``{column name: values}`` after strict parsing."""
    answer = post(url, "/api/v2/query/scalar", body)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    strict(payload, ScalarFormulaQueryResponse)
    return {column["name"]: column["values"] for column in payload["data"]["attributes"]["columns"]}


def one(url: str, text: str, start_s: float, end_s: float) -> float | None:
    """The single value of an ungrouped `sum` query over ``[start, end)``."""
    values = scalar(url, scalar_request(start_s, end_s, [query(text)]))["q"]
    assert len(values) == 1
    return values[0]


@pytest.fixture
def api() -> Iterator[DatadogAPI]:
    server = DatadogAPI()
    with server:
        yield server


# ------------------------------------------------------------------------------------------------
# counts, buckets, nulls


EDGE_POINTS = [(B - 1, 32.0), (B, 1.0), (B + 59, 2.0), (B + 60, 4.0), (B + 119.9, 8.0), (B + 120, 16.0)]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (B, B + 120, 1 + 2 + 4 + 8),  # two whole buckets
        (B, B + 60, 1 + 2),  # `to` exclusive: bucket B+60 starts at `to`
        (B - 60, B + 121, 32 + 1 + 2 + 4 + 8 + 16),  # bucket B+120 starts before `to`: whole bucket counted
        (B + 30, B + 120, 4 + 8),  # bucket B starts before `from`: excluded although B+59 is inside
        (B - 0.001, B + 0.001, 1 + 2),  # from inclusive to the millisecond; the whole bucket B counts
        (B + 0.001, B + 60, None),  # no bucket starts in the window: null, not 0
        (B - 59, B, None),  # bucket B-60 starts before `from`
    ],
)
def test_sum_over_window_is_the_hand_sum_of_unix_aligned_buckets(
    api: DatadogAPI, start: float, end: float, expected: float | None
) -> None:
    api.add_series(METRIC, {"service": "web"}, EDGE_POINTS)
    assert one(api.url, f"sum:{METRIC}{{service:web}}.as_count()", start, end) == expected


def test_points_in_one_bucket_add_up_and_a_zero_count_is_data_not_null(api: DatadogAPI) -> None:
    api.add(METRIC, {"service": "web"}, B + 1, 2.5)
    api.add(METRIC, {"service": "web"}, B + 2, 0.5)
    api.add(METRIC, {"service": "idle"}, B + 3, 0)
    assert one(api.url, f"sum:{METRIC}{{service:web}}.as_count()", B, B + 60) == 3.0
    assert one(api.url, f"sum:{METRIC}{{service:idle}}.as_count()", B, B + 60) == 0.0
    assert one(api.url, f"sum:{METRIC}{{service:none}}.as_count()", B, B + 60) is None
    assert one(api.url, "sum:no.such.metric{*}.as_count()", B, B + 60) is None


def test_a_day_of_minutes_sums_exactly(api: DatadogAPI) -> None:
    counts = [(i * 7919) % 101 + 0.1 * (i % 3) for i in range(1440)]
    api.add_series(METRIC, {"service": "web"}, [(B + 60 * i + 17, c) for i, c in enumerate(counts)])
    got = one(api.url, f"sum:{METRIC}{{service:web}}.as_count()", B + 3600, B + 7200)
    assert got == pytest.approx(math.fsum(counts[60:120]), abs=1e-9)


@pytest.mark.parametrize(
    ("tag_filter", "expected"),
    [
        ("*", 1 + 2 + 4 + 8),
        ("service:web", 1 + 2),
        ("service:web,code:500", 2),
        ("service:web, code:500", 2),
        ("!code:500", 1 + 4 + 8),
        ("-code:500", 1 + 4 + 8),
        ("service:web,!code:500", 1),
        ("service:w*", 1 + 2),
        ("code:5*", 2 + 8),
        ("region:eu", 8),
        ("!region:eu", 1 + 2 + 4),  # a series without the key passes a negation
        ("service:nope", None),
    ],
)
def test_tag_filters(api: DatadogAPI, tag_filter: str, expected: float | None) -> None:
    api.add(METRIC, {"service": "web", "code": "200"}, B, 1)
    api.add(METRIC, {"service": "web", "code": "500"}, B, 2)
    api.add(METRIC, {"service": "api", "code": "200"}, B, 4)
    api.add(METRIC, {"service": "api", "code": "503", "region": "eu"}, B, 8)
    assert one(api.url, f"sum:{METRIC}{{{tag_filter}}}.as_count()", B, B + 60) == expected


# ------------------------------------------------------------------------------------------------
# groups, several queries, formulas


def load_groups(api: DatadogAPI) -> None:
    api.add(METRIC, {"service": "web", "code": "200", "env": "prod"}, B, 90)
    api.add(METRIC, {"service": "web", "code": "500", "env": "prod"}, B + 61, 10)
    api.add(METRIC, {"service": "api", "code": "200", "env": "prod"}, B, 40)
    api.add(METRIC, {"service": "api", "code": "200", "env": "staging"}, B, 5)
    api.add(METRIC, {"service": "old", "code": "200"}, B, 3)  # no env tag
    api.add(METRIC, {"service": "gone", "code": "200", "env": "prod"}, B - 600, 99)  # outside the window


def test_grouped_query_gives_group_then_number_columns(api: DatadogAPI) -> None:
    load_groups(api)
    body = scalar_request(B, B + 120, [query(f"sum:{METRIC}{{*}} by {{service}}.as_count()")])
    answer = post(api.url, "/api/v2/query/scalar", body).json()
    parsed = strict(answer, ScalarFormulaQueryResponse)
    assert column_kinds(parsed) == ["GroupScalarColumn", "DataScalarColumn"]
    columns = answer["data"]["attributes"]["columns"]
    assert columns[0] == {"name": "service", "type": "group", "values": [["api"], ["old"], ["web"]]}
    assert columns[1]["name"] == "q"
    assert columns[1]["values"] == [45.0, 3.0, 100.0]  # "gone" has no point in the window: no row


def test_two_group_keys_and_a_missing_tag(api: DatadogAPI) -> None:
    load_groups(api)
    body = scalar_request(B, B + 120, [query(f"sum:{METRIC}{{code:200}} by {{env,service}}.as_count()")])
    columns = scalar(api.url, body)
    assert columns["env"] == [["N/A"], ["prod"], ["prod"], ["staging"]]
    assert columns["service"] == [["old"], ["api"], ["web"], ["api"]]
    assert columns["q"] == [3.0, 40.0, 90.0, 5.0]


def test_grouped_query_without_data_has_no_rows(api: DatadogAPI) -> None:
    body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}} by {{service}}.as_count()")])
    assert scalar(api.url, body) == {"service": [], "q": []}


def test_several_queries_give_one_number_column_each_with_nulls_for_missing_groups(api: DatadogAPI) -> None:
    load_groups(api)
    queries = [
        query(f"sum:{METRIC}{{*}} by {{service}}.as_count()", "total"),
        query(f"sum:{METRIC}{{code:5*}} by {{service}}.as_count()", "errors"),
    ]
    columns = scalar(api.url, scalar_request(B, B + 120, queries))
    assert list(columns) == ["service", "total", "errors"]
    assert columns["total"] == [45.0, 3.0, 100.0]
    assert columns["errors"] == [None, None, 10.0]


def test_ungrouped_queries_without_formula(api: DatadogAPI) -> None:
    load_groups(api)
    queries = [query(f"sum:{METRIC}{{*}}.as_count()", "total"), query(f"sum:{METRIC}{{code:418}}.as_count()", "tea")]
    assert scalar(api.url, scalar_request(B, B + 120, queries)) == {"total": [148.0], "tea": [None]}


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("errors / total", 10 / 148),
        ("total - errors", 138.0),
        ("100 * errors / total", 100 * 10 / 148),
        ("(total - errors) / total", 138 / 148),
        ("-errors + 2.5", -7.5),
        ("errors / none", None),  # an operand without data
        ("errors / (total - total)", None),  # division by zero
        ("none * 0", None),
    ],
)
def test_formulas(api: DatadogAPI, formula: str, expected: float | None) -> None:
    load_groups(api)
    queries = [
        query(f"sum:{METRIC}{{*}}.as_count()", "total"),
        query(f"sum:{METRIC}{{code:500}}.as_count()", "errors"),
        query(f"sum:{METRIC}{{code:418}}.as_count()", "none"),
    ]
    columns = scalar(api.url, scalar_request(B, B + 120, queries, [{"formula": formula}]))
    assert list(columns) == [formula]  # only formula columns when formulas are given
    assert columns[formula] == ([None] if expected is None else [pytest.approx(expected, abs=1e-12)])


def test_grouped_formula_and_several_formulas(api: DatadogAPI) -> None:
    load_groups(api)
    queries = [
        query(f"sum:{METRIC}{{env:prod}} by {{service}}.as_count()", "a"),
        query(f"sum:{METRIC}{{env:prod,code:500}} by {{service}}.as_count()", "b"),
    ]
    columns = scalar(api.url, scalar_request(B, B + 120, queries, [{"formula": "b / a"}, {"formula": "a - b"}]))
    assert columns == {"service": [["api"], ["web"]], "b / a": [None, 0.1], "a - b": [None, 90.0]}


def test_argo_v2_request_as_argos_provider_builds_it(api: DatadogAPI) -> None:
    """Argo sends whole seconds ×1000 (not aligned), `formulas: []` without a formula, and reads column 0."""
    load_groups(api)
    now = B + 150  # Argo's from/to: (now - interval)·1000, now·1000 with interval 5m
    argo_queries = [
        {
            "aggregator": "sum",
            "data_source": "metrics",
            "name": "errors",
            "query": f"sum:{METRIC}{{code:500}}.as_count()",
        },
        {"aggregator": "sum", "data_source": "metrics", "name": "total", "query": f"sum:{METRIC}{{*}}.as_count()"},
    ]
    body = {"data": {"type": "scalar_request", "attributes": {"from": (now - 300) * 1000, "to": now * 1000}}}
    body["data"]["attributes"].update({"queries": argo_queries, "formulas": [{"formula": "errors / total"}]})
    answer = post(api.url, "/api/v2/query/scalar", body).json()
    strict(answer, ScalarFormulaQueryResponse)
    first_number = next(c for c in answer["data"]["attributes"]["columns"] if c["type"] == "number")
    assert first_number["values"] == [pytest.approx(10 / 148)]
    body["data"]["attributes"].update({"queries": argo_queries[:1], "formulas": []})
    assert scalar(api.url, body) == {"errors": [10.0]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"aggregator": "last"}, "aggregator 'sum'"),
        ({"query": f"avg:{METRIC}{{*}}.as_count()"}, "sum space aggregator"),
        ({"query": f"sum:{METRIC}{{*}}"}, ".as_count()"),
        ({"query": f"sum:{METRIC}{{*}}.as_rate()"}, "cannot parse"),
        ({"query": f"sum:{METRIC}{{service:a OR service:b}}.as_count()"}, "key:value"),
        ({"data_source": "logs"}, "data_source 'metrics'"),
        ({"formula": "errors / total"}, "no query is called"),
        ({"formula": "abs(q)"}, "no formula functions"),
        ({"formula": "q +"}, "ends early"),
        ({"from": 1.5}, "integer of milliseconds"),
        ({"from": B * 1000, "to": B * 1000}, "before"),
    ],
)
def test_requests_it_cannot_answer_are_400_with_datadogs_error_body(
    api: DatadogAPI, change: dict[str, Any], message: str
) -> None:
    item = query(f"sum:{METRIC}{{*}}.as_count()")
    item.update({k: v for k, v in change.items() if k in item})
    body = scalar_request(B, B + 60, [item], [{"formula": change["formula"]}] if "formula" in change else None)
    body["data"]["attributes"].update({k: v for k, v in change.items() if k in {"from", "to"}})
    answer = post(api.url, "/api/v2/query/scalar", body)
    assert answer.status_code == 400
    strict(answer.json(), APIErrorResponse)
    assert message in answer.json()["errors"][0]
    assert all(header in answer.headers for header in LIMIT_HEADERS)  # counted like any answered request


def test_mixed_groupings_and_too_many_queries_are_refused() -> None:
    with DatadogAPI(max_queries=2) as url:
        mixed = [query(f"sum:{METRIC}{{*}}.as_count()", "a"), query(f"sum:{METRIC}{{*}} by {{x}}.as_count()", "b")]
        assert "share its `by` keys" in post(url, "/api/v2/query/scalar", scalar_request(B, B + 60, mixed)).text
        many = [query(f"sum:{METRIC}{{*}}.as_count()", f"q{i}") for i in range(3)]
        assert "too many queries" in post(url, "/api/v2/query/scalar", scalar_request(B, B + 60, many)).text


# ------------------------------------------------------------------------------------------------
# timeseries and validate


def test_timeseries_buckets_are_unix_aligned_with_nulls(api: DatadogAPI) -> None:
    load_groups(api)
    api.add(METRIC, {"service": "web", "code": "200", "env": "prod"}, B + 250, 7)
    body = {
        "data": {
            "type": "timeseries_request",
            "attributes": {
                "from": (B + 30) * 1000,  # bucket B starts before `from`: not counted
                "to": (B + 300) * 1000,
                "interval": 120_000,
                "queries": [
                    {
                        "data_source": "metrics",
                        "query": f"sum:{METRIC}{{service:web}} by {{code}}.as_count()",
                        "name": "q",
                    }
                ],
            },
        }
    }
    answer = post(api.url, "/api/v2/query/timeseries", body)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    strict(payload, TimeseriesFormulaQueryResponse)
    attributes = payload["data"]["attributes"]
    # rollup buckets B+60 … B+240 start inside the window; 120 s slots aligned to UNIX time
    assert attributes["times"] == [(B) * 1000, (B + 120) * 1000, (B + 240) * 1000]
    assert [s["group_tags"] for s in attributes["series"]] == [["code:200"], ["code:500"]]
    assert attributes["values"] == [[None, None, 7.0], [10.0, None, None]]


def test_timeseries_formula(api: DatadogAPI) -> None:
    load_groups(api)
    queries = [
        {"data_source": "metrics", "query": f"sum:{METRIC}{{*}}.as_count()", "name": "a"},
        {"data_source": "metrics", "query": f"sum:{METRIC}{{code:500}}.as_count()", "name": "b"},
    ]
    attributes = {"from": B * 1000, "to": (B + 120) * 1000, "queries": queries, "formulas": [{"formula": "b / a"}]}
    payload = post(
        api.url, "/api/v2/query/timeseries", {"data": {"type": "timeseries_request", "attributes": attributes}}
    )
    strict(payload.json(), TimeseriesFormulaQueryResponse)
    assert payload.json()["data"]["attributes"]["values"] == [[None, 1.0]]  # no error point in bucket B: null, not 0


def test_validate_checks_the_api_key() -> None:
    with DatadogAPI(api_key="right") as url:
        assert requests.get(url + "/api/v1/validate", headers={"DD-API-KEY": "right"}, timeout=5).json() == {
            "valid": True
        }
        wrong = requests.get(url + "/api/v1/validate", headers={"DD-API-KEY": "wrong"}, timeout=5)
        assert (wrong.status_code, wrong.json()) == (403, FORBIDDEN_BODY)
        assert requests.get(url + "/api/v1/validate", timeout=5).status_code == 403


# ------------------------------------------------------------------------------------------------
# auth


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"DD-API-KEY": "api-secret"},
        {"DD-APPLICATION-KEY": "app-secret"},
        {"DD-API-KEY": "wrong", "DD-APPLICATION-KEY": "app-secret"},
        {"DD-API-KEY": "api-secret", "DD-APPLICATION-KEY": "wrong"},
    ],
)
def test_both_keys_are_required(headers: dict[str, str]) -> None:
    server = DatadogAPI(api_key="api-secret", app_key="app-secret", limits={SCALAR: RateLimit("s", 1, 60)})
    with server as url:
        body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
        answer = post(url, "/api/v2/query/scalar", body, headers)
        assert (answer.status_code, answer.json()) == (403, FORBIDDEN_BODY)
        strict(answer.json(), APIErrorResponse)
        assert not any(header in answer.headers for header in LIMIT_HEADERS)
        assert post(url, "/api/v2/query/scalar", body).status_code == 200  # refused requests were not counted


# ------------------------------------------------------------------------------------------------
# rate limits


def test_rate_limit_headers_and_calendar_aligned_reset() -> None:
    clock = Clock(1003.5)  # window [1000, 1010)
    with DatadogAPI(now=clock, limits={SCALAR: RateLimit("query_scalar_public", 3, 10)}) as url:
        body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
        for remaining in ("2", "1", "0"):
            answer = post(url, "/api/v2/query/scalar", body)
            assert answer.status_code == 200
            assert {h: answer.headers[h] for h in LIMIT_HEADERS} == {
                "X-RateLimit-Limit": "3",
                "X-RateLimit-Period": "10",
                "X-RateLimit-Remaining": remaining,
                "X-RateLimit-Reset": "7",  # ceil(1010 - 1003.5): seconds until reset, never early
                "X-RateLimit-Name": "query_scalar_public",
            }
        over = post(url, "/api/v2/query/scalar", body)
        assert (over.status_code, over.json()) == (429, RATE_LIMITED_BODY)
        strict(over.json(), APIErrorResponse)
        assert (over.headers["X-RateLimit-Remaining"], over.headers["X-RateLimit-Reset"]) == ("0", "7")
        clock.at = 1009.999
        early = post(url, "/api/v2/query/scalar", body)
        assert (early.status_code, early.headers["X-RateLimit-Reset"]) == (429, "1")
        clock.at = 1010.0  # the window resets at the multiple of the period, not 10 s after the first request
        fresh = post(url, "/api/v2/query/scalar", body)
        assert fresh.status_code == 200
        assert (fresh.headers["X-RateLimit-Remaining"], fresh.headers["X-RateLimit-Reset"]) == ("2", "10")


def test_the_log_shows_requests_sent_during_backoff() -> None:
    clock = Clock(2000.0)
    server = DatadogAPI(now=clock, limits={SCALAR: RateLimit("query_scalar_public", 1, 10)})
    with server as url:
        body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
        assert post(url, "/api/v2/query/scalar", body).status_code == 200
        clock.at = 2004.0
        assert post(url, "/api/v2/query/scalar", body).status_code == 429
        assert server.sent_during_backoff() == []
        clock.at = 2010.0  # a patient client: exactly at the reset
        assert post(url, "/api/v2/query/scalar", body).status_code == 200
        assert server.sent_during_backoff() == []
        clock.at = 2012.0
        assert post(url, "/api/v2/query/scalar", body).status_code == 429
        clock.at = 2015.0  # an impatient one
        assert post(url, "/api/v2/query/scalar", body).status_code == 429
        offenders = server.sent_during_backoff()
        assert [(r.at, r.status) for r in offenders] == [(2015.0, 429)]
        assert [r.reset_at for r in server.requests() if r.status == 429] == [2010.0, 2020.0, 2020.0]


def test_endpoints_have_their_own_buckets_unless_they_share_a_name() -> None:
    clock = Clock(0.0)
    separate = {SCALAR: RateLimit("query_scalar_public", 1, 10), TIMESERIES: RateLimit("query_timeseries", 1, 10)}
    shared = {SCALAR: RateLimit("query", 1, 10), TIMESERIES: RateLimit("query", 1, 10)}
    scalar_body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
    series_body = {"data": {"type": "timeseries_request", "attributes": scalar_body["data"]["attributes"]}}
    for limits, second in ((separate, 200), (shared, 429)):
        with DatadogAPI(now=clock, limits=limits) as url:
            assert post(url, "/api/v2/query/scalar", scalar_body).status_code == 200
            answer = post(url, "/api/v2/query/timeseries", series_body)
            assert answer.status_code == second
            assert answer.headers["X-RateLimit-Name"] == limits[TIMESERIES].name


def test_concurrent_requests_never_exceed_the_limit() -> None:
    clock = Clock(500.0)
    with DatadogAPI(now=clock, limits={SCALAR: RateLimit("query_scalar_public", 10, 60)}) as url:
        body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
        statuses: list[int] = []
        lock = threading.Lock()

        def hit() -> None:
            code = post(url, "/api/v2/query/scalar", body).status_code
            with lock:
                statuses.append(code)

        threads = [threading.Thread(target=hit) for _ in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200] * 10 + [429] * 20


# ------------------------------------------------------------------------------------------------
# faults


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "check"),
    [
        (Fault.rate_limited_without_headers(), 429, "application/json", lambda b: json.loads(b) == RATE_LIMITED_BODY),
        (Fault.server_error(502), 502, "text/html", lambda b: b.startswith(b"<html>")),
        (Fault.server_error(), 503, "text/html", lambda b: b"503" in b),
        (Fault.forbidden(), 403, "application/json", lambda b: json.loads(b) == FORBIDDEN_BODY),
        (Fault.errors_list(["boom"]), 400, "application/json", lambda b: json.loads(b) == {"errors": ["boom"]}),
        (Fault.errors_string("boom"), 200, "application/json", lambda b: json.loads(b)["errors"] == "boom"),
        (
            Fault.errors_string("boom", in_data=True),
            200,
            "application/json",
            lambda b: json.loads(b)["data"]["errors"] == "boom",  # where Argo's provider reads it
        ),
    ],
)
def test_replacing_faults(api: DatadogAPI, fault: Fault, status: int, content_type: str, check: Any) -> None:
    body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
    api.fail(SCALAR, fault, times=2)
    for _ in range(2):
        answer = post(api.url, "/api/v2/query/scalar", body)
        assert answer.status_code == status
        assert answer.headers["Content-Type"] == content_type
        assert check(answer.content)
        assert not any(header in answer.headers for header in LIMIT_HEADERS)
    assert post(api.url, "/api/v2/query/scalar", body).status_code == 200  # disarmed after `times`
    assert [r.fault for r in api.requests(SCALAR)] == [fault.kind, fault.kind, None]
    assert [r.status for r in api.requests(SCALAR)] == [status, status, 200]


def test_errors_shapes_against_the_models(api: DatadogAPI) -> None:
    """A string `errors` is the scalar response's own field; a list only fits the generic error body."""
    body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
    api.fail(SCALAR, Fault.errors_string("bad query"))
    parsed = strict(post(api.url, "/api/v2/query/scalar", body).json(), ScalarFormulaQueryResponse)
    assert parsed.errors == "bad query"
    api.fail(SCALAR, Fault.errors_list(["bad query"], status=200))
    as_list = post(api.url, "/api/v2/query/scalar", body).json()
    with pytest.raises(ApiTypeError):
        strict(as_list, ScalarFormulaQueryResponse)
    strict(as_list, APIErrorResponse)


def test_faults_until_cleared_and_for_any_endpoint(api: DatadogAPI) -> None:
    body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
    api.fail(SCALAR, Fault.server_error(), times=None)
    assert [post(api.url, "/api/v2/query/scalar", body).status_code for _ in range(4)] == [503] * 4
    assert requests.get(api.url + "/api/v1/validate", headers=KEYS, timeout=5).status_code == 200  # other endpoint
    api.clear_faults(SCALAR)
    assert post(api.url, "/api/v2/query/scalar", body).status_code == 200
    api.fail("*", Fault.forbidden(), times=None)
    assert requests.get(api.url + "/api/v1/validate", headers=KEYS, timeout=5).status_code == 403
    assert post(api.url, "/api/v2/query/scalar", body).status_code == 403
    api.clear_faults()
    assert post(api.url, "/api/v2/query/scalar", body).status_code == 200


def test_slow_answer_trips_a_client_timeout_then_answers_normally(api: DatadogAPI) -> None:
    body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
    api.fail(SCALAR, Fault.slow(0.6), times=2)
    with pytest.raises(requests.Timeout):
        post(api.url, "/api/v2/query/scalar", body, timeout=0.2)
    started = time.monotonic()
    answer = post(api.url, "/api/v2/query/scalar", body)
    assert time.monotonic() - started >= 0.6
    assert answer.status_code == 200
    assert all(header in answer.headers for header in LIMIT_HEADERS)
    strict(answer.json(), ScalarFormulaQueryResponse)


def test_truncated_json_and_short_read(api: DatadogAPI) -> None:
    body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
    api.fail(SCALAR, Fault.truncated())
    cut = post(api.url, "/api/v2/query/scalar", body)
    assert cut.status_code == 200
    assert cut.text.startswith('{"data": {"type": "scalar_response"')
    with pytest.raises(ValueError, match=r"Unterminated|Expecting|delimiter"):
        json.loads(cut.text)
    api.fail(SCALAR, Fault.short_read())
    with pytest.raises(requests.RequestException):
        post(api.url, "/api/v2/query/scalar", body)
    assert post(api.url, "/api/v2/query/scalar", body).status_code == 200


# ------------------------------------------------------------------------------------------------
# request log, binding


def test_request_log_redacts_keys_and_keeps_bodies(api: DatadogAPI) -> None:
    body = scalar_request(B, B + 60, [query(f"sum:{METRIC}{{*}}.as_count()")])
    post(api.url, "/api/v2/query/scalar", body)
    requests.get(api.url + "/api/v1/validate", headers=KEYS, timeout=5)
    requests.get(api.url + "/api/v1/unknown", headers=KEYS, timeout=5)
    log = api.requests()
    assert [(r.method, r.path, r.endpoint, r.status) for r in log] == [
        ("POST", "/api/v2/query/scalar", SCALAR, 200),
        ("GET", "/api/v1/validate", VALIDATE, 200),
        ("GET", "/api/v1/unknown", None, 404),
    ]
    assert log[0].body == body
    assert log[0].headers["DD-API-KEY"] == REDACTED
    assert log[0].headers["DD-APPLICATION-KEY"] == REDACTED
    assert "api-secret" not in repr(log) and "app-secret" not in repr(log)
    assert log[0].limit_name == "query_scalar_public"
    assert len(api.requests(SCALAR)) == 1
    api.clear_log()
    assert api.requests() == []


def test_binds_only_loopback_on_a_free_port() -> None:
    first, second = DatadogAPI(), DatadogAPI()
    with first as one_url, second as other_url:
        assert one_url.startswith("http://127.0.0.1:") and other_url.startswith("http://127.0.0.1:")
        assert one_url != other_url
        assert first._server is not None and first._server.server_address[0] == "127.0.0.1"
    with pytest.raises(requests.ConnectionError):
        requests.get(one_url + "/api/v1/validate", headers=KEYS, timeout=1)


# ------------------------------------------------------------------------------------------------
# the official client end to end


def client_config(url: str, **options: Any) -> Configuration:
    configuration = Configuration(host=url, **options)
    configuration.api_key["apiKeyAuth"] = KEYS["DD-API-KEY"]
    configuration.api_key["appKeyAuth"] = KEYS["DD-APPLICATION-KEY"]
    return configuration


def official_request(start_s: int, end_s: int) -> ScalarFormulaQueryRequest:
    return ScalarFormulaQueryRequest(
        data=ScalarFormulaRequest(
            type=ScalarFormulaRequestType.SCALAR_REQUEST,
            attributes=ScalarFormulaRequestAttributes(
                _from=start_s * 1000,
                to=end_s * 1000,
                queries=ScalarFormulaRequestQueries(
                    [
                        MetricsScalarQuery(
                            aggregator=MetricsAggregator.SUM,
                            data_source=MetricsDataSource.METRICS,
                            query=f"sum:{METRIC}{{env:prod}} by {{service}}.as_count()",
                            name="total",
                        ),
                        MetricsScalarQuery(
                            aggregator=MetricsAggregator.SUM,
                            data_source=MetricsDataSource.METRICS,
                            query=f"sum:{METRIC}{{env:prod,code:5*}} by {{service}}.as_count()",
                            name="errors",
                        ),
                    ]
                ),
                formulas=[QueryFormula(formula="errors / total")],
            ),
        )
    )


def test_official_client_query_scalar_data(api: DatadogAPI) -> None:
    load_groups(api)
    with ApiClient(client_config(api.url)) as client:
        response = MetricsApi(client).query_scalar_data(body=official_request(B, B + 120))
    assert isinstance(response, ScalarFormulaQueryResponse)
    columns = response.data.attributes.columns
    assert [column.name for column in columns] == ["service", "errors / total"]
    assert [list(map(list, columns[0].values))] == [[["api"], ["web"]]]
    assert list(columns[1].values) == [None, 0.1]
    sent = api.requests(SCALAR)[0].body["data"]["attributes"]
    assert (sent["from"], sent["to"]) == (B * 1000, (B + 120) * 1000)
    assert api.requests(SCALAR)[0].headers["DD-API-KEY"] == REDACTED


def test_official_client_sees_403_as_forbidden() -> None:
    with (
        DatadogAPI(api_key="other") as url,
        ApiClient(client_config(url)) as client,
        pytest.raises(ForbiddenException),
    ):
        MetricsApi(client).query_scalar_data(body=official_request(B, B + 60))


def test_official_client_waits_for_the_reset_it_is_told() -> None:
    """Real clock: after a 429 the client's retry sleeps X-RateLimit-Reset and nothing arrives before it."""
    period = 2
    time.sleep(period - time.time() % period + 0.05)  # start just after a window opens, far from its end
    server = DatadogAPI(limits={SCALAR: RateLimit("query_scalar_public", 1, period)})
    with server as url, ApiClient(client_config(url, enable_retry=True, max_retries=2)) as client:
        metrics = MetricsApi(client)
        metrics.query_scalar_data(body=official_request(B, B + 60))
        metrics.query_scalar_data(body=official_request(B, B + 60))  # 429, then a retry after the reset
    statuses = [r.status for r in server.requests(SCALAR)]
    assert statuses == [200, 429, 200]
    assert server.sent_during_backoff() == []
