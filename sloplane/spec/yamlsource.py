"""YAML documents read into plain data, keeping the node tree so any field can be located later.

PyYAML's C parser builds the node tree; this module turns nodes into Python values itself so that
it can refuse duplicate keys (PyYAML silently keeps the last one) and read scalars the way YAML 1.2
and most people do: `yes`, `no`, `on` and `off` stay text, and `12:30` is not the number 750.

Positions are looked up lazily: a valid file never pays for them. Only when a diagnostic needs a
line does the document's node tree get built again from the kept text (and cached), and the field
path is walked down it. Keeping every node tree instead costs several times the parse in memory and
garbage-collector time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from sloplane.spec.diagnostics import Loc, Position

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML wheels ship libyaml; this is the pure-Python fallback
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_WORDS_WITH_MEANING = frozenset(
    word
    for spelling in ("null", "true", "false", "yes", "no", "on", "off", "y", "n")
    for word in (spelling, spelling.capitalize(), spelling.upper())
)
_PLAIN_TEXT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_/$")


def is_plain_word(value: Any) -> bool:
    """Whether text is certainly a plain string to YAML: starts like a word, no special meaning.

    Text that starts with a letter and is not one of YAML's special words (null, true, yes, ...)
    cannot resolve to anything but a string, so the regular-expression resolver can be skipped.
    """
    return bool(value) and value[0] in _PLAIN_TEXT_START and value not in _WORDS_WITH_MEANING


class _Loader(_BaseLoader):
    """The C loader with a fast path for the commonest scalar: a plain word that is just text.

    The C parser asks Python to resolve every scalar's type, and PyYAML's resolver runs a list of
    regular expressions each time. Text that starts with a letter and is not one of YAML's
    special words cannot be anything but a string, so it skips them.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0] and is_plain_word(value):
            return _STR_TAG
        return Resolver.resolve(self, kind, value, implicit)  # type: ignore[no-untyped-call]  # PyYAML is untyped


class YamlSyntaxError(Exception):
    """The text is not YAML (or uses YAML we refuse, like duplicate keys)."""

    def __init__(self, position: Position, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _key_text(node: Node) -> Any:
    return node.value if isinstance(node, ScalarNode) else None


def _pairs(node: MappingNode) -> list[tuple[Node, Node]]:
    """Key/value node pairs with `<<` merges resolved; explicit keys win over merged ones."""
    if not any(key.tag == _MERGE_TAG for key, _ in node.value):
        return list(node.value)
    explicit = [(key, value) for key, value in node.value if key.tag != _MERGE_TAG]
    seen = {_key_text(key) for key, _ in explicit}
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            continue
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, MappingNode):
                raise YamlSyntaxError(_position(source), "'<<' merges only mappings")
            for key, value in _pairs(source):
                if _key_text(key) not in seen:
                    seen.add(_key_text(key))
                    explicit.append((key, value))
    return explicit


class SourceText:
    """A file's text, and its documents' node trees, composed on first use and then kept.

    Shared by all documents of one file: a file with many documents and many diagnostics is
    composed once, not once per diagnostic.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._roots: list[Node | None] | None = None

    def root(self, index: int) -> Node | None:
        """The node tree of the document at `index` (counting empty documents too)."""
        if self._roots is None:
            loader = _Loader(self.text)
            try:
                roots: list[Node | None] = []
                while loader.check_node():
                    roots.append(loader.get_node())
                self._roots = roots
            finally:
                loader.dispose()
        return self._roots[index] if index < len(self._roots) else None


@dataclass
class YamlDocument:
    """One document of a file: its data and where to find the node tree that locates its fields."""

    path: str
    index: int
    data: Any
    start: Position
    source: SourceText | None = field(default=None, repr=False, compare=False)

    def root(self) -> Node | None:
        """The document's node tree (None for documents that were not read from text)."""
        return self.source.root(self.index) if self.source is not None else None

    def _trail(self, loc: Loc) -> list[tuple[Node | None, Node]]:
        """(key node, value node) for each prefix of loc that exists in the tree, root first."""
        root = self.root()
        if root is None:
            return []
        trail: list[tuple[Node | None, Node]] = [(None, root)]
        node = root
        for part in loc:
            found: tuple[Node | None, Node] | None = None
            if isinstance(node, MappingNode):
                found = next(((k, v) for k, v in _pairs(node) if _key_matches(k, part)), None)
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                found = (None, node.value[part])
            if found is None:
                break
            trail.append(found)
            node = found[1]
        return trail

    def position(self, loc: Loc, *, key: bool = False) -> Position:
        """Where `loc` was written, or its nearest written parent.

        Points at the value when it sits on its key's line (`objective: 100` -> the 100), at the key
        when asked or when the value is a block below it (`sli:` rather than its first child).
        """
        trail = self._trail(loc)
        if not trail:
            return self.start
        key_node, value_node = trail[-1]
        value_position = _position(value_node)
        if key_node is not None:
            key_position = _position(key_node)
            if key or value_position.line != key_position.line:
                return key_position
        return value_position


def _key_matches(node: Node, part: str | int) -> bool:
    return isinstance(node, ScalarNode) and (node.value == part or node.value == str(part))


class _Converter:
    """Turns a node tree into Python data."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def convert(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return node.value if node.tag == _STR_TAG else self._scalar(node)
        if isinstance(node, MappingNode):
            return self._mapping(node)
        return [self.convert(item) for item in node.value]

    def _scalar(self, node: ScalarNode) -> Any:
        text = node.value
        if node.tag == _BOOL_TAG and text.lower() not in ("true", "false"):
            return text
        if node.tag in _NUMBER_TAGS and ":" in text:
            return text
        try:
            return self._loader.construct_object(node)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error)
            raise YamlSyntaxError(_position(node), f"cannot read value {text!r}: {problem}") from None

    def _mapping(self, node: MappingNode) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, ScalarNode):
                raise YamlSyntaxError(_position(key_node), "a mapping key must be plain text, not a list or mapping")
            key = self.convert(key_node)
            if key in first_seen:
                first = _position(first_seen[key])
                raise YamlSyntaxError(
                    _position(key_node),
                    f"duplicate key '{key}' (first written at line {first.line}); YAML would keep only the last",
                )
            first_seen[key] = key_node
            result[key] = self.convert(value_node)
        if len(first_seen) != len(node.value):
            for key_node, value_node in _pairs(node):
                key = self.convert(key_node)
                if key not in result:
                    result[key] = self.convert(value_node)
        return result


def read_documents(path: str, text: str) -> list[YamlDocument]:
    """Every non-empty document of a YAML text; raises YamlSyntaxError with a position."""
    loader = _Loader(text)
    source = SourceText(text)
    documents: list[YamlDocument] = []
    try:
        converter = _Converter(loader)
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node guarantees a node
                break
            if not (isinstance(node, ScalarNode) and node.tag == _NULL_TAG):
                data = converter.convert(node)
                documents.append(YamlDocument(path=path, index=index, data=data, start=_position(node), source=source))
            index += 1
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        problem = error.problem or error.context or "not valid YAML"
        context = f" ({error.context})" if error.context and error.problem else ""
        raise YamlSyntaxError(position, f"YAML syntax: {problem}{context}") from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(Position(1, 1), f"YAML: {error}") from None
    finally:
        loader.dispose()
    return documents
