"""Terraform's JSON syntax as sloplane writes it: literal text escaped as template text, and the few
expressions the module needs written as HCL.

In Terraform's JSON syntax every string is a template: a literal `${` or `%{` (Grafana's `${datasource}`,
a Go template in an alert annotation) would be read as an interpolation or a directive. So literal text
is escaped first — keys included — and only then are real references spliced in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"[^A-Za-z0-9_-]")
_VARIABLE_SENTINEL = re.compile(r"__sloplane_var_([a-z_]+)__")
VARIABLE_SENTINEL = "__sloplane_var_{}__"
"""Text standing for a variable in objects rendered before escaping: `with_variables` turns it into a reference."""


@dataclass(frozen=True)
class Reference:
    """A variable standing for a value the renderers take as opaque (a secret, as they take a Pulumi Output):
    not text, so no renderer can read it, and `escaped` writes it as the reference itself."""

    variable: str

    @property
    def expression(self) -> str:
        return f"${{var.{self.variable}}}"


def escaped(value: Any) -> Any:
    """Literal text made safe as Terraform template text, keys included; a `Reference` as the reference."""
    if isinstance(value, Reference):
        return value.expression
    if isinstance(value, str):
        return value.replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, Mapping):
        return {escaped(key): escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escaped(item) for item in value]
    return value


def hcl_value(value: Any) -> str:
    """Escaped data as an HCL expression: JSON's string, number and literal syntax is HCL's too, and an
    object is `{"key" = value, …}` (string literals inside an expression are templates, hence escaped)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(key)} = {hcl_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hcl_value(item) for item in value) + "]"
    return json.dumps(value)


def resource_name(text: str) -> str:
    """A Terraform identifier from a child's name (letters, digits, `_` and `-`; never a leading digit)."""
    name = _NAME.sub("_", text)
    return name if name[:1].isalpha() or name[:1] == "_" else f"_{name}"


def with_variables(value: Any) -> Any:
    """Sentinels (`VARIABLE_SENTINEL`) replaced by references to the variables they stand for."""
    if isinstance(value, str):
        return _VARIABLE_SENTINEL.sub(r"${var.\1}", value)
    if isinstance(value, Mapping):
        return {key: with_variables(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_variables(item) for item in value]
    return value


def file_reference(relative: str) -> str:
    """A string attribute read from a file of the module at plan time: large bodies (dashboard JSON) stay
    out of the `.tf.json` files, readable and diffable on their own, and are not templates (no escaping)."""
    return f'${{file("${{path.module}}/{relative}")}}'
