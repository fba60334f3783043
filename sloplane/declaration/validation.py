"""pydantic's validation errors rewritten for people: file:line:column, field path, a plain message.

pydantic knows *what* is wrong and *where in the data*; the YAML source knows where that data was
written. This module joins the two and adds what pydantic cannot: a did-you-mean for unknown keys
(found by walking the model classes along the error's path) and the offending value.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sloplane.declaration.diagnostics import Diagnostic, Loc, Position, Severity, format_loc

ModelT = TypeVar("ModelT", bound=BaseModel)

_PREFIXES_TO_DROP = ("Value error, ", "Assertion failed, ")


class Locator(Protocol):
    """Anything that can say where a field path was written (a YAML document, a translated one)."""

    path: str

    def position(self, loc: Loc, *, key: bool = False) -> Position: ...


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and `X | None` down to the type that holds fields."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _field_keys(model: type[BaseModel]) -> dict[str, Any]:
    """The keys a model accepts in YAML (aliases), each with its annotation."""
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping found at `loc`, if the path leads to one."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            keys = _field_keys(current)
            if part not in keys:
                return None
            current = keys[part]
        elif origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def did_you_mean(word: str, choices: list[str]) -> str:
    """' (did you mean 'total'?)' or ''."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _clean_message(message: str) -> str:
    for prefix in _PREFIXES_TO_DROP:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _describe(error: ErrorDetails, root: type[BaseModel]) -> tuple[Loc, Loc, bool, str]:
    """(field path, path to point at, whether to point at its key, message) for one pydantic error."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        key = loc[-1] if loc else "?"
        return loc, loc, True, f"key '{key}': {_clean_message(error['msg'])}"
    if kind == "extra_forbidden":
        unknown = str(loc[-1])
        parent = model_at(root, loc[:-1])
        allowed = sorted(_field_keys(parent)) if parent else []
        hint = did_you_mean(unknown, allowed)
        if not hint and allowed:
            hint = f" (expected one of: {', '.join(allowed)})"
        return loc, loc, True, f"unknown key '{unknown}'{hint}"
    if kind == "missing":
        return loc, loc[:-1], True, f"missing required field '{loc[-1]}'"
    message = _clean_message(error["msg"])
    if kind == "timezone_aware":
        message += " (add Z or an offset such as +02:00)"
    if kind.endswith(("_type", "_parsing")) or kind in ("literal_error", "enum"):
        message += f", got {error['input']!r}"
    return loc, loc, False, message


def errors_to_diagnostics(
    error: ValidationError, root: type[BaseModel], locator: Locator, prefix: Loc = ()
) -> Iterator[Diagnostic]:
    """One diagnostic per pydantic error, positioned in the source the data came from."""
    for details in error.errors(include_url=False):
        field_loc, position_loc, at_key, message = _describe(details, root)
        yield Diagnostic(
            path=locator.path,
            position=locator.position((*prefix, *position_loc), key=at_key),
            field=format_loc((*prefix, *field_loc)),
            message=message,
            severity=Severity.ERROR,
            code=details["type"],
        )


def validate(model: type[ModelT], data: Any, locator: Locator) -> tuple[ModelT | None, list[Diagnostic]]:
    """Validate data into a model, or return the diagnostics that explain why it is not one."""
    try:
        return model.model_validate(data), []
    except ValidationError as error:
        return None, list(errors_to_diagnostics(error, model, locator))
