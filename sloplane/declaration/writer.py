"""Declarations and OpenSLO documents written back out as YAML, stable byte for byte."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from sloplane.declaration.model import Declaration


def declaration_data(declaration: Declaration) -> dict[str, Any]:
    """A declaration as the YAML mapping a person would write: camelCase, defaults left out."""
    data: dict[str, Any] = declaration.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return data


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks so queries stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(documents: Iterable[dict[str, Any]]) -> str:
    """Documents as one multi-document YAML text, keys in the order given."""
    return yaml.dump_all(
        list(documents), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120, explicit_start=True
    )
