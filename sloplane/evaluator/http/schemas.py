"""The evaluator API's JSON shapes, as the OpenAPI document publishes them, and the request models.

The answers (a gate answer, a decision, a freeze, an incident, and every shape inside them) are
declared once, as the dataclasses of `sloplane.evaluator.model`: `answer_components` derives their
schemas from those classes with pydantic, in serialisation mode and under the names the document has
always used, so what a handler returns (`to_dict()`) and what the document says it returns cannot
drift apart. Handlers return those dicts as they are and nothing validates them on the way out (the
gate endpoint must always answer); `tests/test_api_shapes.py` and the schemathesis runs check that
answers conform.

The request models validate what callers send: input, with limits and messages of their own, not
copies of an answer. The remaining response models document dicts built outside the model
(`Evaluator.slos`, `Evaluator.slo`, `BurnSplit.to_dict`) and the operational answers.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaMode

from sloplane.declaration.policy import ChangeType, RiskLevel
from sloplane.evaluator.deciding.deployments import BurnReport
from sloplane.evaluator.model import Decision, Freeze, GateResult, Incident, JsonShape

REF_TEMPLATE = "#/components/schemas/{model}"

ANSWER_SHAPES: tuple[type[JsonShape], ...] = (GateResult, Decision, Freeze, Incident, BurnReport)
"""The model's shapes routes answer with; the shapes inside them are published with them."""

PUBLISHED_NAMES = {"GateResult": "GateAnswer", "GateRequest": "RecordedRequest"}
"""Model classes the document names otherwise: its names are older than the single declaration, and its
`GateRequest` is the body a caller sends, not the request as the decision log records it."""


def published_name(shape: type[JsonShape] | str) -> str:
    """The component name of a model class (or class name) in the OpenAPI document."""
    name = shape if isinstance(shape, str) else shape.__name__
    return PUBLISHED_NAMES.get(name, name)


def answer(shape: type[JsonShape], description: str, *, many: bool = False) -> dict[str, Any]:
    """A route's documented answer (an entry of `responses`): the shape's published schema, or a list of them."""
    if shape not in ANSWER_SHAPES:
        raise ValueError(f"{shape.__name__} is not among ANSWER_SHAPES, so the document would not define it")
    schema: dict[str, Any] = {"$ref": REF_TEMPLATE.format(model=published_name(shape))}
    if many:
        schema = {"type": "array", "items": schema}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def answer_components() -> dict[str, dict[str, Any]]:
    """The schemas of the answer shapes and of every shape inside them, by component name (a copy to change)."""
    return copy.deepcopy(_answer_components())


@functools.cache
def _answer_components() -> dict[str, dict[str, Any]]:
    mode: JsonSchemaMode = "serialization"  # what handlers write, not what a client could send
    adapters = [(shape.__name__, mode, TypeAdapter[Any](shape)) for shape in ANSWER_SHAPES]
    _, definitions = TypeAdapter.json_schemas(adapters, by_alias=True, ref_template=REF_TEMPLATE)
    components: dict[str, dict[str, Any]] = {}
    for name, schema in definitions.get("$defs", {}).items():
        published = _published(schema)
        if name in PUBLISHED_NAMES:
            published["title"] = published_name(name)
        components[published_name(name)] = published
    _inherit_descriptions(components)
    return components


def _published(node: Any) -> Any:
    """`node` with every reference to a model class pointing to its published name."""
    if isinstance(node, dict):
        return {key: _reference(value) if key == "$ref" else _published(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_published(item) for item in node]
    return node


def _reference(ref: str) -> str:
    prefix, _, name = ref.rpartition("/")
    return f"{prefix}/{published_name(name)}"


def _inherit_descriptions(components: dict[str, dict[str, Any]]) -> None:
    """A subclass's inherited fields described as in its base (`GateReason` as `Reason`).

    pydantic reads the attribute docstrings of the class itself only, and the fields' docstrings are
    written once, in the base.
    """
    for shape in _subclasses(JsonShape):
        if shape.__module__ != JsonShape.__module__:  # a shape of the same name elsewhere is another component
            continue
        properties = components.get(published_name(shape), {}).get("properties", {})
        for base in shape.__mro__[1:]:
            inherited = components.get(published_name(base.__name__), {}).get("properties", {})
            for name, described in inherited.items():
                if name in properties and "description" in described:
                    properties[name].setdefault("description", described["description"])


def _subclasses(root: type[JsonShape]) -> Iterator[type[JsonShape]]:
    for shape in root.__subclasses__():
        yield shape
        yield from _subclasses(shape)


NAME_LENGTH = 253
"""RFC 1123 names, as SLO, service and stage names are."""
TEXT_LENGTH = 1024
"""Reasons, titles and other free text a caller sends."""


class BreakGlassRequest(BaseModel):
    """Let this release through whatever the gate finds; needs the `admin` scope, recorded with the token's name."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1, max_length=TEXT_LENGTH, description="Why, for the audit trail (an incident, a fix)."
    )


class GateRequest(BaseModel):
    """A gate request: an SLO, or every SLO of a service, at a stage, for a release."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["slo"], "properties": {"slo": {"type": "string"}}},
                {"required": ["service"], "properties": {"service": {"type": "string"}}},
            ]
        },
    )

    slo: str | None = Field(None, min_length=1, max_length=NAME_LENGTH, description="The SLO to decide on.")
    service: str | None = Field(
        None,
        min_length=1,
        max_length=NAME_LENGTH,
        description="Decide on every SLO of this service (worst outcome wins).",
    )
    stage: str | None = Field(None, min_length=1, max_length=NAME_LENGTH, description="The stage, e.g. `canary`.")
    revision: str | None = Field(
        None, max_length=TEXT_LENGTH, description="The release being gated (image tag, commit)."
    )
    pipeline: str | None = Field(
        None, max_length=TEXT_LENGTH, description="The pipeline run asking, for the audit trail."
    )
    rollout: str | None = Field(None, max_length=TEXT_LENGTH, description="The rollout asking (Argo Rollouts name).")
    at: AwareDatetime | None = Field(
        None, description="Decide as at this RFC 3339 instant (back-testing); now when absent."
    )
    breakGlass: BreakGlassRequest | None = Field(  # noqa: N815 (the wire name)
        None, description="Override a failing gate (scope `admin`); the override and its reason are recorded."
    )
    risk: RiskLevel | None = Field(
        None, description="How risky the release is; the policy's `requireAssessment` asks from a level on."
    )
    assessment: str | None = Field(
        None,
        pattern=r"^asm-[0-9a-f]{12}$",
        description="The impact assessment (`sloplane assess --record`, `POST /v1/assessments`) covering it.",
    )
    changeType: ChangeType | None = Field(  # noqa: N815 (the wire name)
        None,
        description="What the deployment changes. While the budget is spent, the policy's `reliabilityChanges` "
        "(fix, reliability, security by default) pass when the budget is all that fails them: a policy exception, "
        "recorded.",
    )

    @model_validator(mode="after")
    def _subject(self) -> GateRequest:
        if self.slo is None and self.service is None:
            raise ValueError("give `slo` or `service`: what the gate should decide on")
        return self


class _Shape(BaseModel):
    """A documented answer built outside the model: camelCase on the wire, extra fields allowed (it may grow)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class SloSummary(_Shape):
    """An SLO the evaluator knows (the evaluator adds service, team, stages, objective, ...)."""

    name: str


class SloDetail(_Shape):
    """An SLO's declaration summary and its current measurements."""

    name: str


class Problem(BaseModel):
    """An error answer: why the request was refused."""

    detail: str


class BrokenRecord(BaseModel):
    """The first record where the decision log's hash chain does not hold."""

    seq: int
    id: str
    reason: str = Field(description="What is wrong: changed, inserted, deleted before it, backdated.")


class DecisionChain(_Shape):
    """The decision log's hash chain as verified when the evaluator started (`sloplane decisions verify`)."""

    state: Literal["verifying", "intact", "broken", "failed"]
    records: int | None = Field(None, description="Records that verified, up to the first broken one.")
    head: str | None = Field(None, description="The hash of the last record that verified.")
    first_broken: BrokenRecord | None = None
    reason: str | None = Field(None, description="Why the log could not be verified (state `failed`).")
    seconds: float | None = Field(None, description="How long verifying took.")


class Health(BaseModel):
    """The process is up (or, for /readyz, can serve decisions)."""

    status: str
    reason: str | None = None
    decisionChain: DecisionChain | None = Field(  # noqa: N815 (the wire name)
        None, description="/readyz of `sloplane serve`: what verifying the decision log's hash chain found."
    )
