"""YAML documents read into plain data, keeping the node tree so any field can be located later.

PyYAML's C parser builds the node tree; this module turns nodes into Python values itself so that
it can refuse duplicate keys (PyYAML silently keeps the last one) and read scalars the way YAML 1.2
and most people do: `yes`, `no`, `on` and `off` stay text, and `12:30` is not the number 750.

Positions are looked up lazily: a valid file never pays for them. Only when a diagnostic needs a
line does the document's node tree get built again from the kept text (and cached), and the field
path is walked down it. Keeping every node tree instead costs several times the parse in memory and
garbage-collector time.

Input is bounded before it can cost anything (`YamlLimits`): a file's size is checked before it is
read; libyaml refuses nesting past 1,000 levels and the converter past `max_depth`; an alias is
expanded only after its subtree's size is known (memoised per node, so a "billion laughs" is
measured in microseconds), and aliases may add at most `max_alias_nodes` nodes to a file. An
alias to a node that contains it is refused rather than followed for ever.
"""

from __future__ import annotations

import codecs
import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from sloplane.core.serialize import is_plain_word
from sloplane.core.text import excerpt
from sloplane.declaration.diagnostics import Loc, Position

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML wheels ship libyaml; this is the pure-Python fallback
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


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


@dataclass(frozen=True)
class YamlLimits:
    """How much a YAML file may cost to read; past any limit it is refused with a position.

    The defaults are far above what declarations, receivers and tokens files need (a declaration
    is a few KB and a few levels deep; 2,000 of them in one file are about 2 MB) and far below
    what would take a machine down.
    """

    max_bytes: int = 32 * 2**20
    """File size, checked before reading."""
    max_depth: int = 100
    """Nesting of mappings and sequences (libyaml itself stops at 1,000)."""
    max_aliases: int = 10_000
    """Aliases (`*name`) to mappings or sequences in one file."""
    max_alias_nodes: int = 200_000
    """Nodes that aliases may add to one file when expanded (each use counts its whole subtree)."""


DEFAULT_LIMITS = YamlLimits()


class YamlSyntaxError(Exception):
    """The text is not YAML (or uses YAML we refuse, like duplicate keys)."""

    def __init__(self, position: Position, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message
        self.loc: list[str | int] = []
        """The field it was found in, filled in as the error passes up through the mappings holding it."""


class SourceError(Exception):
    """A file that cannot be read as text (missing, too large, not UTF-8); the message says which."""


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (codecs.BOM_UTF8, "utf-8-sig"),
)
"""YAML 1.2 allows UTF-16 and UTF-32 when the file starts with a byte order mark (UTF-32 first: its
little-endian mark begins with UTF-16's)."""


def read_source(path: Path, limits: YamlLimits = DEFAULT_LIMITS) -> str:
    """A file's text, refused before it is read when larger than `limits.max_bytes`.

    UTF-8, or UTF-16/32 with a byte order mark. Reads at most one byte past the limit, so a file
    that grows (or lies about its size) cannot make this read more.
    """
    try:
        with path.open("rb") as stream:
            data = stream.read(limits.max_bytes + 1)
    except IsADirectoryError:
        raise SourceError("is a folder, not a file") from None
    except OSError as error:
        raise SourceError(f"cannot read: {error.strerror or error}") from None
    if len(data) > limits.max_bytes:
        raise SourceError(f"larger than {limits.max_bytes / 2**20:g} MiB: refused unread")
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise SourceError(f"not {encoding.upper().removesuffix('-SIG')} text (byte {error.start + 1})") from None


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _key_text(node: Node) -> Any:
    return node.value if isinstance(node, ScalarNode) else None


def _pairs(node: MappingNode, merging: frozenset[int] = frozenset()) -> list[tuple[Node, Node]]:
    """Key/value node pairs with `<<` merges resolved; explicit keys win over merged ones.

    `merging` holds the mappings whose merges are being resolved: merging a mapping into itself
    (through an alias) is refused, not followed for ever.
    """
    if not any(key.tag == _MERGE_TAG for key, _ in node.value):
        return list(node.value)
    explicit = [(key, value) for key, value in node.value if key.tag != _MERGE_TAG]
    seen = {_key_text(key) for key, _ in explicit}
    inside = merging | {id(node)}
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            continue
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, MappingNode):
                raise YamlSyntaxError(_position(source), "'<<' merges only mappings")
            if id(source) in inside:
                raise YamlSyntaxError(_position(key_node), "'<<' merges a mapping into itself (a recursive alias)")
            for key, value in _pairs(source, inside):
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
    prefix: Loc = ()
    """Where this document's data sits in the file's document: `(2,)` for the third object of a
    document that is a sequence of objects (how the OpenSLO Go SDK writes its files)."""
    renamed: tuple[tuple[Loc, Loc], ...] = ()
    """(field in `data`, field as written) for data rewritten from another shape (OpenSLO v1alpha read as
    v1), so problems found in the rewrite still point at what the user wrote; most specific first."""

    def items(self) -> list[YamlDocument]:
        """A document that is a sequence of objects as one document per object, each locating its own fields."""
        if not isinstance(self.data, list):
            return [self]
        return [
            YamlDocument(self.path, self.index, item, self.position((i,)), self.source, (*self.prefix, i))
            for i, item in enumerate(self.data)
        ]

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
        for ours, theirs in self.renamed:
            if loc[: len(ours)] == ours:
                loc = (*theirs, *loc[len(ours) :])
                break
        for part in (*self.prefix, *loc):
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
    """Turns a node tree into Python data, within `YamlLimits`.

    libyaml composes an alias as the very node it names, so the tree is a graph: a node met a
    second time is an alias. Its expanded size is computed (memoised) before it is converted
    again, and a node met while it is still being converted refers to itself.
    """

    def __init__(self, loader: Any, limits: YamlLimits) -> None:
        self._loader = loader
        self._limits = limits
        self._seen: set[int] = set()
        self._open: set[int] = set()
        self._sizes: dict[int, int] = {}
        self._aliases = 0
        self._alias_nodes = 0
        self._depth = 0
        self._expanding = 0

    def convert(self, node: Node, used_at: Node | None = None) -> Any:
        """`node` as data; `used_at` is where it is written (its key, or the sequence holding it)."""
        if isinstance(node, ScalarNode):
            return node.value if node.tag == _STR_TAG else self._scalar(node)
        key = id(node)
        alias = key in self._seen
        if alias:
            self._alias(node, key, used_at or node)
        self._depth += 1
        if self._depth > self._limits.max_depth:
            raise YamlSyntaxError(_position(used_at or node), f"nested deeper than {self._limits.max_depth} levels")
        self._seen.add(key)
        self._open.add(key)
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node)
            return self._sequence(cast(SequenceNode, node))  # neither a scalar nor a mapping
        finally:
            self._open.discard(key)
            self._depth -= 1
            if alias:
                self._expanding -= 1

    def _alias(self, node: Node, key: int, used_at: Node) -> None:
        """Count one written use of an alias, refusing it before its expansion could cost anything.

        Aliases met while an alias is being expanded are part of its size, already counted.
        """
        if key in self._open:
            raise YamlSyntaxError(_position(used_at), "a recursive alias: it refers to a node that holds it")
        self._expanding += 1
        if self._expanding > 1:
            return
        self._aliases += 1
        if self._aliases > self._limits.max_aliases:
            raise YamlSyntaxError(_position(used_at), f"more than {self._limits.max_aliases:,} aliases in one file")
        self._alias_nodes += self._size(node)
        if self._alias_nodes > self._limits.max_alias_nodes:
            raise YamlSyntaxError(
                _position(used_at),
                f"aliases expand to more than {self._limits.max_alias_nodes:,} nodes "
                "(an alias bomb, or anchors used far more than a declaration needs)",
            )

    def _size(self, node: Node, depth: int = 0) -> int:
        """Nodes in `node` with every alias inside it expanded; memoised, so shared subtrees cost once."""
        if isinstance(node, ScalarNode):
            return 1
        key = id(node)
        known = self._sizes.get(key)
        if known is not None:
            return known
        if depth > self._limits.max_depth:
            raise YamlSyntaxError(_position(node), f"nested deeper than {self._limits.max_depth} levels")
        children = (part for pair in node.value for part in pair) if isinstance(node, MappingNode) else node.value
        self._sizes[key] = -1  # a cycle inside an alias is refused when it is converted; count it once here
        total = 1 + sum(max(self._size(child, depth + 1), 1) for child in children)
        self._sizes[key] = total
        return total

    def _scalar(self, node: ScalarNode) -> Any:
        text = node.value
        if node.tag == _BOOL_TAG and text.lower() not in ("true", "false"):
            return text
        if node.tag in _NUMBER_TAGS and ":" in text:
            return text
        try:
            return self._loader.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as error:
            problem = getattr(error, "problem", None) or str(error).split(";")[0]
            raise YamlSyntaxError(_position(node), f"cannot read value {excerpt(text)!r}: {problem}") from None

    def _sequence(self, node: SequenceNode) -> list[Any]:
        result = []
        for index, item in enumerate(node.value):
            try:
                result.append(self.convert(item, node))
            except YamlSyntaxError as error:
                error.loc.insert(0, index)
                raise
        return result

    def _value(self, key: Any, key_node: Node, value_node: Node) -> Any:
        try:
            return self.convert(value_node, key_node)
        except YamlSyntaxError as error:
            error.loc.insert(0, key)
            raise

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
            result[key] = self._value(key, key_node, value_node)
        if len(first_seen) != len(node.value):
            for key_node, value_node in _pairs(node):
                key = self.convert(key_node)
                if key not in result:
                    result[key] = self._value(key, key_node, value_node)
        return result


def read_documents(path: str, text: str, limits: YamlLimits = DEFAULT_LIMITS) -> list[YamlDocument]:
    """Every non-empty document of a YAML text; raises YamlSyntaxError with a position."""
    if len(text) > limits.max_bytes:
        raise YamlSyntaxError(Position(1, 1), f"larger than {limits.max_bytes / 2**20:g} MiB: refused")
    loader = _Loader(text)
    source = SourceText(text)
    documents: list[YamlDocument] = []
    collecting = gc.isenabled()
    gc.disable()  # composing makes millions of objects and no cycles: collections would only slow it down
    try:
        converter = _Converter(loader, limits)
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
        if "maximum nesting depth" in problem:
            raise YamlSyntaxError(position, "nested deeper than 1000 levels (libyaml's limit)") from None
        context = f" ({error.context})" if error.context and error.problem else ""
        raise YamlSyntaxError(position, f"YAML syntax: {problem}{context}") from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(Position(1, 1), f"YAML: {error}") from None
    except RecursionError:  # a last line of defence: the limits above stop every nesting we know of first
        raise YamlSyntaxError(Position(1, 1), "nested too deeply to read") from None
    finally:
        loader.dispose()
        if collecting:
            gc.enable()
    return documents
