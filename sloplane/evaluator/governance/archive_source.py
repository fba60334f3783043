"""The archived SLO's own document in the user's files (`sloplane archive`, issue 18): found, its text kept as written,
and `lifecycle: archived` set in it by editing that one value — the rest of the file byte for byte.

Why edit text rather than write the model back: the file is the user's, with its comments, key order, quoting and
the other documents beside this one; `declaration.writer` would rewrite all of it. The value's place comes from the
YAML node tree (`yamlsource`; libyaml's marks are character offsets into the decoded text): an existing `lifecycle`
scalar is replaced where it stands (`lifecycle: deprecated  # why` keeps its comment), a missing one is inserted as
`spec`'s first key at that key's indentation (or `lifecycle: archived, ` in a flow mapping). The edited text is then
read again and must give the same document with only `spec.lifecycle` changed, else nothing is written: an alias,
a merge key or anything else that would make the edit mean more than it says is refused, not guessed at.

Only UTF-8 files (a UTF-8 byte order mark is kept) and only sloplane's own format: an OpenSLO or Sloth file has no
`lifecycle` to set. The file is read once (`read`); `SourceDocument.unchanged` tells the writer whether it changed
on disk since, so an edit made meanwhile is never overwritten.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.model import API_VERSION, KIND
from sloplane.declaration.yamlsource import (
    DEFAULT_LIMITS,
    SourceError,
    YamlDocument,
    YamlSyntaxError,
    read_documents,
    read_source,
)
from sloplane.interop.loader import expand_paths

ARCHIVED_KEY = "lifecycle"
ARCHIVED = "archived"


class SourceEditError(Exception):
    """The declaration cannot be found or edited safely; the message says why (a blocker, not a fault)."""


@dataclass(frozen=True)
class Edit:
    """The declaration file's new text (its byte order mark kept), and what was done where."""

    text: str
    kind: str
    """`replaced` (the lifecycle's value) or `inserted` (a `lifecycle` key, as `spec`'s first)."""
    line: int
    """The edited line, counted from 1."""


@dataclass(frozen=True)
class SourceDocument:
    """One declaration's document in its file, as read: enough to cut its text out and to edit it."""

    path: Path
    raw: bytes
    """The file's bytes when read (compared before writing: an edit made meanwhile is never overwritten)."""
    bom: str
    """'\\ufeff' when the file starts with a UTF-8 byte order mark (kept on writing), else ''."""
    text: str
    """The file's text without the byte order mark: what the node marks count in."""
    document: YamlDocument
    documents_in_file: int

    def document_text(self) -> str:
        """The document as the user wrote it: the whole file when it holds this document alone (comments and all),
        else the lines the document's node spans (an item of a list of objects: a one-item list)."""
        if self.documents_in_file == 1 and not self.document.prefix:
            return self.text
        node = _item_node(self.document)
        start = self.text.rfind("\n", 0, node.start_mark.index) + 1
        chunk = self.text[start : node.end_mark.index]
        head, newline, tail = chunk.rpartition("\n")
        if newline and not tail.strip():
            return head + "\n"
        return chunk + "\n"

    def archived_edit(self) -> Edit:
        """The whole file with `spec.lifecycle: archived` (see the module's docstring); SourceEditError when the edit
        would change anything else."""
        root = _item_node(self.document)
        spec = _child(root, "spec")
        if not isinstance(spec, MappingNode) or not spec.value:
            raise SourceEditError(f"{self.path}: 'spec' is not a mapping the lifecycle can be set in")
        lifecycle = _child(spec, "lifecycle")
        if lifecycle is not None:
            if not isinstance(lifecycle, ScalarNode):
                raise SourceEditError(f"{self.path}: 'spec.lifecycle' is not a plain value")
            start, end = lifecycle.start_mark.index, lifecycle.end_mark.index
            edited = self.text[:start] + ARCHIVED + self.text[end:]
            edit = Edit(self.bom + edited, "replaced", lifecycle.start_mark.line + 1)
        else:
            first_key = spec.value[0][0]
            at = first_key.start_mark.index
            if spec.flow_style:
                inserted = f"{ARCHIVED_KEY}: {ARCHIVED}, "
            else:
                indent = self.text[self.text.rfind("\n", 0, at) + 1 : at]
                if indent.strip():
                    raise SourceEditError(f"{self.path}: cannot tell the indentation of 'spec' to insert 'lifecycle'")
                newline = "\r\n" if "\r\n" in self.text else "\n"
                inserted = f"{ARCHIVED_KEY}: {ARCHIVED}{newline}{indent}"
            edited = self.text[:at] + inserted + self.text[at:]
            edit = Edit(self.bom + edited, "inserted", first_key.start_mark.line + 1)
        self._check_edit(edited)
        return edit

    def _check_edit(self, edited: str) -> None:
        """The edited text read again must hold the same document, `spec.lifecycle` archived, nothing else changed."""
        expected = _with_lifecycle(self.document.data)
        try:
            documents = read_documents(str(self.path), edited)
        except YamlSyntaxError as error:
            raise SourceEditError(
                f"{self.path}: setting the lifecycle in place would break the file ({error}): set it by hand"
            ) from None
        found = _items(documents)
        before = _items(_documents(self))
        here = (self.document.index, self.document.prefix)
        same_elsewhere = found.keys() == before.keys() and all(found[k] == before[k] for k in before if k != here)
        if not same_elsewhere or found.get(here) != expected:
            raise SourceEditError(
                f"{self.path}: setting 'spec.lifecycle' in place would change more than that value (an alias or a "
                "merge key?): set it by hand"
            )

    def unchanged(self) -> bool:
        """Whether the file still holds the bytes it was read with."""
        try:
            return self.path.read_bytes() == self.raw
        except OSError:
            return False


def _with_lifecycle(data: Any) -> Any:
    spec = dict(data["spec"])
    spec[ARCHIVED_KEY] = ARCHIVED
    return {**data, "spec": spec}


def _documents(source: SourceDocument) -> list[YamlDocument]:
    return read_documents(str(source.path), source.text)


def _items(documents: list[YamlDocument]) -> dict[tuple[int, Loc], Any]:
    """Every object of a file's documents by (document index, place in a list of objects)."""
    return {(item.index, item.prefix): item.data for document in documents for item in document.items()}


def _child(node: Node, key: str | int) -> Node | None:
    """A mapping's value under `key` (merge keys not followed: the edit check refuses what they would hide), or a
    sequence's item."""
    if isinstance(node, MappingNode):
        return next((value for name, value in node.value if isinstance(name, ScalarNode) and name.value == key), None)
    if isinstance(node, SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        item: Node = node.value[key]
        return item
    return None


def _walk(node: Node | None, loc: Loc) -> Node | None:
    for part in loc:
        if node is None:
            return None
        node = _child(node, part)
    return node


def _item_node(document: YamlDocument) -> Node:
    node = _walk(document.root(), document.prefix)
    if node is None:  # pragma: no cover - a document read from text always has its node tree
        raise SourceEditError(f"{document.path}: the document's text cannot be located")
    return node


def _decoded(path: Path, raw: bytes) -> tuple[str, str]:
    """(byte order mark, text) of a UTF-8 file; SourceEditError for any other encoding."""
    bom = ""
    if raw.startswith(codecs.BOM_UTF8):
        bom, raw = "\ufeff", raw[len(codecs.BOM_UTF8) :]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceEditError(f"{path}: not UTF-8 (a UTF-16 or UTF-32 file): the lifecycle is only set in UTF-8 files")
    try:
        return bom, raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SourceEditError(f"{path}: not UTF-8 text (byte {error.start + 1})") from None


def _names(document: YamlDocument) -> str | None:
    data = document.data
    if not isinstance(data, dict) or data.get("apiVersion") != API_VERSION or data.get("kind") != KIND:
        return None
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def read(paths: Sequence[Path], name: str) -> SourceDocument:
    """The sloplane document declaring `name` under `paths` (files or folders, as the loader expands them);
    SourceEditError when there is none, more than one, or its file cannot be edited."""
    found: list[SourceDocument] = []
    for path in expand_paths(paths, []):
        try:
            if path.stat().st_size > DEFAULT_LIMITS.max_bytes:
                continue
            raw = path.read_bytes()
        except OSError:
            continue  # the loader has said so; the file declares nothing loadable
        try:
            bom, text = _decoded(path, raw)
        except SourceEditError as refused:
            if _declares(path, name):
                raise refused from None
            continue
        try:
            items = [item for document in read_documents(str(path), text) for item in document.items()]
        except YamlSyntaxError:
            continue  # the loader has said so
        found += [SourceDocument(path, raw, bom, text, item, len(items)) for item in items if _names(item) == name]
    if not found:
        raise SourceEditError(
            f"no sloplane declaration (apiVersion {API_VERSION}) names '{name}': an SLO read from another format "
            "cannot be archived here (its file has no lifecycle to set)"
        )
    if len(found) > 1:
        raise SourceEditError(f"'{name}' is declared {len(found)} times: {', '.join(str(s.path) for s in found)}")
    if found[0].path.is_symlink():
        raise SourceEditError(f"{found[0].path} is a symbolic link: name the file it points to, which is edited")
    return found[0]


def _declares(path: Path, name: str) -> bool:
    """Whether a file in another encoding (read as the loader reads it) declares `name`."""
    try:
        documents = read_documents(str(path), read_source(path))
    except (SourceError, YamlSyntaxError):
        return False
    return any(_names(item) == name for document in documents for item in document.items())
