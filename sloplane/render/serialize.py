"""Rendered data as file text: YAML and JSON, byte-for-byte stable for the same input.

Keys keep the order the renderers build them in (that order is chosen to read well), multi-line
strings are literal blocks, and the C emitter is used: serialising thousands of rule files is
most of the cost of `sloplane render`.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

try:
    from yaml import CSafeDumper as _BaseDumper
except ImportError:  # pragma: no cover - PyYAML wheels ship libyaml
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]


class _Dumper(_BaseDumper):
    """Block style; literal blocks for multi-line strings; never `&anchors` for repeated objects."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: _Dumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(document: Any) -> str:
    """One YAML document."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100_000)


def to_yaml_documents(documents: list[Any]) -> str:
    """Several YAML documents, each starting with `---`."""
    return yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100_000, explicit_start=True
    )


def to_json(document: Any) -> str:
    """Indented JSON with a final newline; key order as built."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
