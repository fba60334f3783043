"""`GET /v1/reports/{kind}` from a real `serve` over the known history (`tests/rollup_history.py`): the same bytes
as `sloplane report KIND` for the same data and `at`, a limited token's report over its own SLOs only, and
parameters refused by name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sloplane.evaluator.history.report_format import FORMATS
from sloplane.evaluator.history.report_kinds import KINDS
from sloplane.evaluator.http.auth import TokenStore, new_token
from sloplane.evaluator.server import ServerConfig, build_service
from sloplane.semantics.subjects import Fleet
from tests.conftest import run_cli
from tests.rollup_history import UNTIL
from tests.rollup_history import declarations as declarations_text
from tests.servers import served_app

pytest_plugins = ("tests.rollup_history",)

AT = UNTIL.isoformat()
QUERIES = {
    "sla": {"month": "2025-10"},
    "budget": {"week": "2025-W44"},
    "quarterly": {"quarter": "2025-Q4"},
    "oncall": {"from": "2025-10-30T00:00:00+00:00", "to": "2025-10-31T00:00:00+00:00", "shift": "8h"},
    "platform": {"service": "checkout"},
}
"""A valid query of each kind the history has data for."""
NOTHING = {"retro": {"revision": "never-gated"}}
"""A valid query of each kind the history has nothing for (no gate was ever asked about a revision): 404 here,
exit 1 from the command. Every kind is in one of the two (`test_every_kind_is_served`)."""


@pytest.fixture(scope="module")
def database(history_database: Path) -> Path:
    return history_database


@pytest.fixture(scope="module")
def declarations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slos") / "slos.yaml"
    path.write_text(declarations_text(), encoding="utf-8")
    return path


class Api:
    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url, self.tokens = url, tokens

    def get(self, kind: str, token: str = "read", **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"}
        return httpx.get(f"{self.url}/v1/reports/{kind}", params=params, headers=headers, timeout=120)


@pytest.fixture(scope="module")
def api(history_fleet: Fleet, history_prometheus: str, database: Path) -> Iterator[Api]:
    issued = {
        "read": new_token("read", ["read"]),
        "read@ledger": new_token("read@ledger", ["read"], services=["ledger"]),
    }
    tokens = TokenStore(entry for _, entry in issued.values())
    config = ServerConfig(history_prometheus, database, tokens, rollup_interval=None)
    service = build_service(history_fleet, config)
    service.start()
    try:
        with served_app(service.app) as url:
            yield Api(url, {name: token for name, (token, _) in issued.items()})
    finally:
        service.close()


def test_every_kind_is_served() -> None:
    assert set(QUERIES) | set(NOTHING) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(NOTHING))
def test_nothing_to_report_is_404_and_exit_1_with_the_same_words(
    api: Api, declarations: Path, database: Path, kind: str
) -> None:
    options = [part for name, value in NOTHING[kind].items() for part in (f"--{name}", value)]
    written = run_cli("report", kind, declarations, "--db", database, *options, "--at", AT)
    served = api.get(kind, **NOTHING[kind], at=AT)
    assert written.code == 1 and served.status_code == 404, served.text
    assert served.json()["detail"] in " ".join(written.stderr.split())


@pytest.fixture(scope="module")
def sources(declarations: Path, database: Path, history_prometheus: str) -> dict[str, list[str | Path]]:
    """What each command reads besides the declarations: the store, or Prometheus for `oncall`."""
    return {"db": [declarations, "--db", database], "oncall": [declarations, "--prometheus", history_prometheus]}


@pytest.mark.parametrize("output_format", FORMATS)
@pytest.mark.parametrize("kind", sorted(QUERIES))
def test_the_api_gives_the_commands_bytes(
    api: Api, sources: dict[str, list[str | Path]], kind: str, output_format: str
) -> None:
    options = [part for name, value in QUERIES[kind].items() for part in (f"--{name}", value)]
    read = sources["oncall" if kind == "oncall" else "db"]
    written = run_cli("report", kind, *read, *options, "--format", output_format, "--at", AT)
    assert written.code == 0, written.stderr
    served = api.get(kind, **QUERIES[kind], format=output_format, at=AT)
    assert served.status_code == 200, served.text
    assert served.text == written.stdout
    if output_format == "html":  # a page served from the evaluator's origin runs nothing and loads nothing
        assert served.headers["content-security-policy"].startswith("default-src 'none'")
    assert (
        served.headers["content-type"].split(";")[0]
        == {
            "json": "application/json",
            "csv": "text/csv",
            "html": "text/html",
        }[output_format]
    )


def test_a_limited_token_gets_its_own_slos_only(api: Api) -> None:
    everyone = api.get("sla", month="2025-10", at=AT).json()
    ledger = api.get("sla", "read@ledger", month="2025-10", at=AT).json()
    assert sorted(line["slo"] for line in everyone["slos"]) == ["checkout", "ledger", "ratio-only", "search"]
    assert [line["slo"] for line in ledger["slos"]] == ["ledger"]
    (own,) = [line for line in everyone["slos"] if line["slo"] == "ledger"]
    assert ledger["slos"][0] == own  # the same numbers, only fewer SLOs
    budget = api.get("budget", "read@ledger", week="2025-W44").json()
    assert [line["slo"] for line in budget["slos"]] == ["ledger"]


def test_the_budget_week_ends_the_report_at_the_weeks_end(api: Api) -> None:
    by_week = api.get("budget", week="2025-W44", at=AT).json()
    by_at = api.get("budget", at="2025-11-03T00:00:00+00:00").json()  # Monday after ISO week 44 of 2025
    assert json.dumps(by_week["slos"]) == json.dumps(by_at["slos"])


@pytest.mark.parametrize(
    ("kind", "params", "named"),
    [
        ("sla", {"month": "2025-13"}, "month: '2025-13' is not a month"),
        ("sla", {}, "month: give exactly one of month"),
        ("sla", {"month": ""}, "month: '' is not a month"),
        ("sla", {"month": "2025-10", "tz": "Europe/Berlinn"}, "tz:"),
        ("sla", {"month": "2025-10", "week": "2025-W44"}, "takes no parameter 'week'"),
        ("budget", {"week": "2025-W60"}, "week: '2025-W60' is not an ISO week"),
        ("budget", {"at": "yesterday"}, "at: 'yesterday' is not an RFC 3339 time"),
        ("budget", {"format": "pdf"}, "format: give one of html, csv, json"),
        ("quarterly", {}, "quarter: give the quarter"),
        ("sla", {"month": "9999-12"}, "month: '9999-12' is not a period sloplane reports on"),
        ("budget", {"week": "0001-W01"}, "week: '0001-W01' is not a period sloplane reports on"),
        ("quarterly", {"quarter": "1970-Q1"}, "quarter: '1970-Q1' is not a period sloplane reports on"),
        ("oncall", {"from": "2025-10-30T00:00:00Z", "to": "2025-10-31T00:00:00Z", "target": "²"}, "target:"),
        ("quarterly", {"quarter": "2025-Q5"}, "quarter: '2025-Q5' is not a quarter"),
        ("retro", {"revision": "a", "pipeline": "b"}, "revision: give exactly one of revision R or pipeline P"),
        ("oncall", {"from": "2025-10-30T00:00:00Z"}, "to: give to"),
        ("oncall", {"from": "2025-10-30T00:00:00Z", "to": "2025-10-31T00:00:00Z", "shift": "7h"}, "shift:"),
        ("oncall", {"from": "2025-10-30T00:00:00Z", "to": "2025-10-31T00:00:00Z", "target": "-1"}, "target:"),
        ("platform", {"service": "checkot"}, "service:"),
    ],
)
def test_bad_parameters_are_422_naming_them(api: Api, kind: str, params: dict[str, str], named: str) -> None:
    answer = api.get(kind, **params)
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["detail"]
