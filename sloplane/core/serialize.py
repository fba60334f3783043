"""Rendered data as file text: YAML and JSON, byte-for-byte stable for the same input.

Keys keep the order the renderers build them in (that order is chosen to read well), multi-line
strings are literal blocks, and nothing is ever written as a YAML anchor.

Speed matters here: a fleet's rule files are tens of megabytes, and serialising them is most of
what `sloplane render` does. So YAML goes through PyYAML's C emitter, but the node tree it emits is
built directly from our plain data (dicts, lists, strings, numbers) instead of through PyYAML's
general representer, and the resolver that decides whether a string needs quotes takes a fast
path for plain words. JSON goes through orjson.

The other JSON every part of sloplane writes is spelled here too, once, each variant named for what
it is for: `pretty_json` for people (the CLI's `--format json`), `pretty_json_ascii` for the
documents `sloplane` has always printed with the standard library, `canonical_json` for text that
is hashed or compared (policy versions, checksums, annotations). Their bytes are those each place
wrote before they moved here: a hash taken of them is kept in decision logs and pod annotations.
"""

from __future__ import annotations

import io
import json
import math
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:
    from yaml import CSafeDumper as _BaseDumper
except ImportError:  # pragma: no cover - PyYAML wheels ship libyaml
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


_WORDS_WITH_MEANING = frozenset(
    word
    for spelling in ("null", "true", "false", "yes", "no", "on", "off", "y", "n")
    for word in (spelling, spelling.capitalize(), spelling.upper())
)
_PLAIN_TEXT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_/$")


def is_plain_word(value: Any) -> bool:
    """Whether text is certainly a plain string to YAML: starts like a word, no special meaning.

    Text that starts with a letter and is not one of YAML's special words (null, true, yes, ...)
    cannot resolve to anything but a string, so the regular-expression resolver can be skipped,
    when writing (here) and when reading (`declaration.yamlsource`).
    """
    return bool(value) and value[0] in _PLAIN_TEXT_START and value not in _WORDS_WITH_MEANING


class _Dumper(_BaseDumper):
    """The C emitter; plain words skip the regular-expression resolver."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0] and is_plain_word(value):
            return _STR
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]  # PyYAML is untyped


def _float_text(value: float) -> str:
    """YAML's spelling of a float (as PyYAML writes it)."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text


def _node(value: Any) -> Node:
    """A YAML node for plain data, block style throughout."""
    kind = type(value)
    if kind is str:
        return ScalarNode(_STR, value, style="|" if "\n" in value else None)
    if kind is dict:
        return MappingNode(_MAP, [(_node(key), _node(item)) for key, item in value.items()], flow_style=False)
    if kind is list or kind is tuple:
        return SequenceNode(_SEQ, [_node(item) for item in value], flow_style=False)
    if kind is bool:
        return ScalarNode(_BOOL, "true" if value else "false")
    if kind is int:
        return ScalarNode(_INT, str(value))
    if kind is float:
        return ScalarNode(_FLOAT, _float_text(value))
    if value is None:
        return ScalarNode(_NULL, "null")
    raise TypeError(f"cannot write {kind.__name__} as YAML")


def _emit(documents: list[Any], explicit_start: bool) -> str:
    stream = io.StringIO()
    dumper = _Dumper(stream, allow_unicode=True, width=100_000, explicit_start=explicit_start, sort_keys=False)
    try:
        dumper.open()
        for document in documents:
            dumper.serialize(_node(document))
        dumper.close()
    finally:
        dumper.dispose()
    return stream.getvalue()


def to_yaml(document: Any) -> str:
    """One YAML document."""
    return _emit([document], explicit_start=False)


def to_yaml_documents(documents: list[Any], written: Mapping[int, str] | None = None) -> str:
    """Several YAML documents, each starting with `---`.

    `written` maps id() of data already serialised (with `to_yaml`) to its text: an object whose
    `spec` is such data (a PrometheusRule holding a rule file) reuses that text, indented, instead of
    emitting the same thousands of lines twice.
    """
    if not written:
        return _emit(documents, explicit_start=True)
    parts = []
    for document in documents:
        spec = document.get("spec") if isinstance(document, dict) else None
        text = written.get(id(spec)) if spec is not None else None
        if text is None or list(document)[-1] != "spec":
            parts.append(_emit([document], explicit_start=True))
            continue
        header = {key: value for key, value in document.items() if key != "spec"}
        parts.append(_emit([header], explicit_start=True) + "spec:\n" + textwrap.indent(text, "  "))
    return "".join(parts)


def _json_default(value: Any) -> Any:
    """Typed models (grafana-foundation-sdk) know their own JSON form."""
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(document: Any) -> str:
    """Indented JSON with a final newline; key order as built; SDK models as their JSON."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2, default=_json_default).decode() + "\n"


def wire_json(value: Any) -> bytes:
    """Compact JSON as the evaluator answers and records it: key order as built, NaN and infinities as null
    (a 0/0 ratio from a backend must not become a 500), anything else unknown as its text, non-string
    keys allowed."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def pretty_json(value: Any) -> str:
    """Indented JSON with a final newline, for people: key order as built, text as UTF-8, NaN as null.

    orjson, because a fleet's measurements are a large document. Unlike `to_json` it knows no
    models: the CLI writes plain data, and anything else is a mistake to report, not to guess at.
    """
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n"


def pretty_json_ascii(value: Any, *, sort_keys: bool = False) -> str:
    """Indented JSON with a final newline as the standard library writes it: non-ASCII escaped, floats as repr.

    The variant for documents printed this way since before `pretty_json` (the OpenAPI document,
    with `sort_keys` so that a change reads as a small diff): orjson would spell `1e-05` as `0.00001`
    and write text unescaped, so the bytes would change.
    """
    return json.dumps(value, indent=2, sort_keys=sort_keys) + "\n"


def canonical_json(
    value: Any, *, ensure_ascii: bool = True, spaced: bool = False, default: Callable[[Any], Any] | None = None
) -> str:
    """One text for equal data, to hash, compare or annotate with: sorted keys, no spaces, non-ASCII escaped.

    The standard library's, not orjson: the hashes taken of this text are kept (the policy version
    of every recorded decision), so its bytes must not change, and orjson cannot escape non-ASCII.
    The variants keep the bytes of the places that wrote otherwise: `ensure_ascii=False` the
    evaluator's ConfigMap checksum (a pod annotation: a new one rolls the pods), `spaced` (`", "` and
    `": "`) with `default=str` the notification outbox's rows.
    """
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(value, sort_keys=True, separators=separators, ensure_ascii=ensure_ascii, default=default)
