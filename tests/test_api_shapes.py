"""Each API shape is declared once, as a dataclass of `sloplane.evaluator.model`, and published as it is written.

What `to_dict()` writes is checked against the OpenAPI document the evaluator publishes
(`openapi_document(create_app(...))`, what `sloplane openapi` prints), under the shape's component
name: it validates, and at every depth it has exactly the properties the schema names, no fewer
(the schema promises nothing the object never writes) and no more. The objects are realistic: a
decision with every field filled in, one that measured nothing, one that broke the glass against
a broken backend, a service-wide gate answer and an empty one, decisions read back from the log,
and freezes and incidents as the real store records, lifts and resolves them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import Field, TypeAdapter

from sloplane.declaration.policy import ChangeType, RiskLevel
from sloplane.evaluator.deciding.deployments import BurnReport, BurnSplit, DeploymentWindow
from sloplane.evaluator.http import schemas
from sloplane.evaluator.http.app import create_app, openapi_document
from sloplane.evaluator.http.auth import TokenStore
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.model import (
    BreakGlass,
    Decision,
    GateRequest,
    GateResult,
    JsonShape,
    Measurement,
    Outcome,
    Reason,
    ShadowDecision,
    WindowMeasurement,
    json_shape,
)
from sloplane.evaluator.storage.controls import ReleaseControls
from sloplane.evaluator.storage.decisions import SqliteDecisionLog
from tests.evaluator_data import T0, make_decision, make_measurement
from tests.test_evaluator_api import FakeGateService

HOUR = timedelta(hours=1)


def _document() -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as folder,
        SqliteDecisionLog(Path(folder) / "decisions.db") as log,
        ReleaseControls(log.path) as controls,
    ):
        return openapi_document(create_app(FakeGateService(log), TokenStore([]), EvaluatorMetrics(), controls))


DOCUMENT = _document()
COMPONENTS: dict[str, dict[str, Any]] = DOCUMENT["components"]["schemas"]


def _decisions() -> list[Decision]:
    """Every kind of decision: measured in full, measured nothing, a break-glass replay against a broken backend."""
    unmeasured = Decision(
        id="d-unknown",
        outcome=Outcome.ERROR,
        slo="checkout-latency",
        service="checkout",
        stage=None,
        decided_at=T0,
        reasons=(Reason("unknown-slo", "no SLO named 'checkout-latency'"),),
        request=GateRequest(service="checkout", at=T0 - HOUR, requested_by="argo-rollouts"),
        measurement=None,
        policy={},
        policy_version="0123456789abcdef",
    )
    broken = Measurement(
        slo="checkout-availability",
        stage="production",
        objective=99.9,
        at=T0 - HOUR,
        period_start=T0 - timedelta(days=30),
        windows=(WindowMeasurement(timedelta(minutes=5), None, None), WindowMeasurement(HOUR, 0.5, 500.0, 10.0, 5.0)),
        source="raw",
        error="prometheus: timeout after 10s",
        stale_seconds=900.0,
    )
    glass = GateRequest(
        slo="checkout-availability",
        stage="production",
        revision="v8",
        pipeline="deploy-12",
        rollout="checkout",
        at=T0 - HOUR,
        requested_by="release-manager",
        break_glass=BreakGlass("INC-42: the fix must ship", "release-manager"),
        change_type=ChangeType.FIX,
        risk=RiskLevel.HIGH,
        assessment="asm-0123456789ab",
    )
    overridden = Decision(
        id="d-glass",
        outcome=Outcome.PASS,
        slo="checkout-availability",
        service="checkout",
        stage="production",
        decided_at=T0,
        reasons=(
            Reason("break-glass", "released against the gate", {"identity": "release-manager"}),
            Reason("backend-error", "prometheus: timeout after 10s", {"staleSeconds": 900.0, "windows": [300, 3600]}),
        ),
        request=glass,
        measurement=broken,
        policy={"minBudgetRemaining": 0.0, "maxBurnRate": 14.4, "onError": "fail"},
        policy_version="fedcba9876543210",
        shadow=ShadowDecision(
            objective=99.95,
            outcome=Outcome.FAIL,
            reasons=(
                Reason("budget-exhausted", "the error budget is exhausted (-20.0% left)", {"budget_remaining": -0.2}),
            ),
            policy={"minBudgetRemaining": 0.0},
            policy_version="0123456789abcdef",
        ),
    )
    return [make_decision(1), unmeasured, overridden]


def _burn(*, allowed: float) -> BurnReport:
    """A period's burn: one deployment stopped (its shares are None when the budget allows nothing)."""
    window = DeploymentWindow("checkout", "v7", "deploy-7", T0 - 2 * HOUR, T0 - HOUR, "fail", 3)
    split = BurnSplit(
        "checkout-availability",
        "production",
        T0 - timedelta(days=30),
        T0,
        5e4,
        40.0,
        allowed,
        ((window, 30.0, 1e3),),
        30.0,
    )
    return split.report()


@dataclass(frozen=True)
class Written:
    """One object as it goes out: the component it is published as, and its JSON."""

    component: str
    json: dict[str, Any]


def _written(folder: Path) -> dict[str, Written]:
    decisions = _decisions()
    with SqliteDecisionLog(folder / "decisions.db") as log, ReleaseControls(folder / "controls.db") as controls:
        for decision in decisions:
            log.append(decision)
        logged = log.query(limit=10)
        frozen = controls.freeze(None, "peak season", "sre", until=T0 + 24 * HOUR, at=T0)
        thawed = controls.lift(controls.freeze("checkout", "bad deploy", "sre", at=T0).id, "sre", "fixed", at=T0 + HOUR)
        opened = controls.open_incident("checkout down", "major", "pager", services=["checkout"], key="INC-1", at=T0)
        minor = controls.open_incident("slow search", "minor", "sre", at=T0)
        resolved = controls.resolve_incident(minor.id, "sre", at=T0 + HOUR)
    objects: dict[str, JsonShape] = {
        "decision measured in full": decisions[0],
        "decision that measured nothing": decisions[1],
        "decision breaking the glass against a broken backend": decisions[2],
        "service-wide gate answer": GateResult(tuple(decisions)),
        "gate answer without decisions": GateResult(()),
        "global freeze with an end": frozen,
        "lifted freeze": thawed,
        "open major incident": opened,
        "resolved minor incident": resolved,
        "burn split with a rolled-back deployment": _burn(allowed=50.0),
        "burn split of an SLO without a budget": _burn(allowed=0.0),
    }
    written = {label: Written(schemas.published_name(type(shape)), shape.to_dict()) for label, shape in objects.items()}
    written |= {f"decision read back from the log ({record['id']})": Written("Decision", record) for record in logged}
    assert len(logged) == len(decisions)
    return written


with tempfile.TemporaryDirectory() as _folder:
    WRITTEN = _written(Path(_folder))


def _validator(component: str) -> Draft202012Validator:
    """The published component as a JSON Schema (OpenAPI 3.1's dialect), its references resolved in the document."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": DOCUMENT["components"]}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _disagreements(value: Any, schema: dict[str, Any], path: str, reached: set[str]) -> Iterator[str]:
    """Where `value` has a property the published schema does not name, or lacks one it names, at any depth."""
    if "$ref" in schema:
        component = schema["$ref"].rpartition("/")[2]
        reached.add(component)
        yield from _disagreements(value, COMPONENTS[component], path, reached)
    elif "anyOf" in schema:
        if value is not None:
            (written,) = [branch for branch in schema["anyOf"] if branch.get("type") != "null"]
            yield from _disagreements(value, written, path, reached)
    elif schema.get("type") == "array":
        for index, item in enumerate(value):
            yield from _disagreements(item, schema["items"], f"{path}[{index}]", reached)
    elif "properties" in schema:
        published, keys = set(schema["properties"]), set(value)
        if keys != published:
            yield f"{path}: {sorted(keys - published)} written, unpublished; {sorted(published - keys)} unwritten"
        for name in published & keys:
            yield from _disagreements(value[name], schema["properties"][name], f"{path}.{name}", reached)


@pytest.mark.parametrize("label", sorted(WRITTEN))
def test_what_to_dict_writes_validates_against_the_published_schema_of_its_name(label: str) -> None:
    answer = WRITTEN[label]
    errors = _validator(answer.component).iter_errors(answer.json)
    assert [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in errors] == []


@pytest.mark.parametrize("label", sorted(WRITTEN))
def test_what_to_dict_writes_has_exactly_the_published_properties(label: str) -> None:
    answer = WRITTEN[label]
    schema = {"$ref": f"#/components/schemas/{answer.component}"}
    assert list(_disagreements(answer.json, schema, answer.component, set())) == []


def test_the_objects_reach_every_shape_the_model_publishes() -> None:
    """So the two checks above hold for every component derived from the model, not only the outermost."""
    reached: set[str] = set()
    for answer in WRITTEN.values():
        list(_disagreements(answer.json, {"$ref": f"#/components/schemas/{answer.component}"}, "", reached))
    derived = set(schemas.answer_components())
    assert derived <= set(COMPONENTS)
    assert derived - reached == set()
    assert {"GateAnswer", "Decision", "RecordedRequest", "BreakGlass", "Measurement", "WindowMeasurement"} <= derived
    assert {
        "Exclusion",
        "Reason",
        "GateReason",
        "Freeze",
        "Incident",
        "Outcome",
        "BurnReport",
        "DeploymentBurn",
    } <= derived


def test_the_published_components_are_the_ones_derived_from_the_model() -> None:
    for name, schema in schemas.answer_components().items():
        assert COMPONENTS[name] == schema, name


@pytest.mark.parametrize(
    ("path", "method", "status", "component", "many"),
    [
        ("/v1/gates/evaluate", "post", "200", "GateAnswer", False),
        ("/v1/gates/evaluate", "get", "200", "GateAnswer", False),
        ("/v1/decisions", "get", "200", "Decision", True),
        ("/v1/freezes", "get", "200", "Freeze", True),
        ("/v1/freezes", "post", "201", "Freeze", False),
        ("/v1/freezes/{freeze_id}", "delete", "200", "Freeze", False),
        ("/v1/incidents", "get", "200", "Incident", True),
        ("/v1/incidents", "post", "201", "Incident", False),
        ("/v1/incidents", "post", "200", "Incident", False),
        ("/v1/incidents/{incident_id}/resolve", "post", "200", "Incident", False),
    ],
)
def test_each_route_documents_its_answer_by_the_derived_component(
    path: str, method: str, status: str, component: str, many: bool
) -> None:
    schema = DOCUMENT["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    reference = {"$ref": f"#/components/schemas/{component}"}
    assert schema == ({"type": "array", "items": reference} if many else reference)


def test_the_json_keeps_its_order_names_and_spellings() -> None:
    """The wire format as it was before the shapes were declared once: key order, names, times, seconds."""
    decision = make_decision(1)
    written = decision.to_dict()
    assert list(written) == [
        "id", "decision", "slo", "service", "stage", "decidedAt", "evaluatedAt",
        "reasons", "request", "measurement", "policy", "policyVersion", "shadow",
    ]  # fmt: skip
    assert list(written["request"]) == [
        "slo", "service", "stage", "revision", "pipeline", "rollout", "at", "requestedBy", "breakGlass",
        "changeType", "risk", "assessment",
    ]  # fmt: skip
    assert list(written["measurement"]) == [
        "slo", "stage", "objective", "at", "periodStart", "windows", "periodErrorRatio", "periodEvents",
        "periodBadEvents", "budgetRemaining", "timeToExhaustion", "exclusions", "source", "queries", "error",
        "staleSeconds", "rateLimitWaitSeconds",
    ]  # fmt: skip
    assert written["decision"] == "pass" and written["decidedAt"] == "2026-11-26T12:01:00+00:00"
    assert written["evaluatedAt"] == written["measurement"]["at"] == "2026-11-26T12:01:00+00:00"
    assert written["measurement"]["timeToExhaustion"] == 12 * 86400.0
    assert written["measurement"]["windows"][0] == {
        "window": 300.0, "errorRatio": 0.0002, "burnRate": 0.2, "events": 1200.0, "badEvents": 0.24,
    }  # fmt: skip
    assert written["measurement"]["exclusions"][0]["start"] == "2026-11-24T12:01:00+00:00"
    answer = GateResult((decision, make_decision(2, outcome=Outcome.FAIL, stage=None))).to_dict()
    assert list(answer) == ["decision", "reasons", "decisions"] and answer["decision"] == "fail"
    assert answer["reasons"] == [
        {**reason, "slo": "checkout-availability", "stage": stage}
        for stage in ("canary", None)
        for reason in written["reasons"]
    ]


def test_a_field_added_to_a_dataclass_reaches_the_json_and_the_schema_alike() -> None:
    """The generated `to_dict` and pydantic's schema agree on every kind of field the model uses."""

    @json_shape()
    @dataclass(frozen=True)
    class Probe(JsonShape):
        when: datetime
        how_long: timedelta | None
        outcome: Annotated[Outcome, Field(alias="verdict")]
        windows: tuple[WindowMeasurement, ...]
        names: tuple[str, ...]
        nested: GateRequest | None = None
        extra_values: dict[str, Any] = field(default_factory=dict)

    probe = Probe(T0, HOUR, Outcome.FAIL, (WindowMeasurement(HOUR, 0.1, 2.0),), ("a",), GateRequest(slo="x"))
    schema = TypeAdapter(Probe).json_schema(mode="serialization", by_alias=True)
    written = probe.to_dict()
    assert list(written) == list(schema["properties"])
    assert written["verdict"] == "fail" and written["howLong"] == 3600.0 and written["when"] == T0.isoformat()
    assert written["windows"] == [WindowMeasurement(HOUR, 0.1, 2.0).to_dict()] and written["names"] == ["a"]
    assert schema["properties"]["howLong"]["anyOf"][0] == {"type": "number"}


def test_a_field_without_a_json_form_is_refused_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="no JSON form"):

        @json_shape()
        @dataclass(frozen=True)
        class Unwritable(JsonShape):
            tags: set[str]

    with pytest.raises(TypeError, match="above @dataclass"):
        json_shape()(type("NotADataclass", (JsonShape,), {}))


def test_every_measurement_field_is_written() -> None:
    """`make_measurement` fills every field; nothing it sets is left out of the JSON."""
    written = make_measurement("checkout-availability", "canary", T0).to_dict()
    assert None not in (written["timeToExhaustion"], written["budgetRemaining"], written["periodStart"])
    assert written["queries"] and written["exclusions"] and written["windows"]
