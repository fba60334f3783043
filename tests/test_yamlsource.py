"""Positions, duplicate keys and YAML 1.2-style scalars."""

from pathlib import Path

import pytest

from sloplane.declaration.diagnostics import Position
from sloplane.declaration.yamlsource import YamlSyntaxError, read_documents
from sloplane.interop import load_paths
from tests.conftest import minimal

TEXT = """\
a: 1
b:
  c: [x, y]
  d:
    - e: yes
      f: 12:30
---
---
g: "quoted"
"""


def test_every_field_has_its_position() -> None:
    first, second = read_documents("f.yaml", TEXT)
    assert first.data == {"a": 1, "b": {"c": ["x", "y"], "d": [{"e": "yes", "f": "12:30"}]}}
    assert first.position(("a",)) == Position(1, 4)
    assert first.position(("b", "c", 1)) == Position(3, 10)
    assert first.position(("b", "d", 0, "f")) == Position(6, 10)
    assert first.position(("b", "d", 0, "f"), key=True) == Position(6, 7)
    # a block value points at its key; an unknown path at its nearest known parent
    assert first.position(("b",)) == Position(2, 1)
    assert first.position(("b", "c", 7, "zzz")) == Position(3, 6)
    assert second.index == 2 and second.data == {"g": "quoted"}


def test_yes_no_and_sexagesimal_stay_text_but_true_and_numbers_do_not() -> None:
    (document,) = read_documents("f.yaml", "a: no\nb: on\nc: true\nd: 99.9\ne: 1:30\nf: 2026-01-02\n")
    assert document.data["a"] == "no" and document.data["b"] == "on" and document.data["e"] == "1:30"
    assert document.data["c"] is True and document.data["d"] == 99.9
    assert str(document.data["f"]) == "2026-01-02"


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        read_documents("f.yaml", "a: 1\nb: 2\na: 3\n")
    assert caught.value.position == Position(3, 1)
    assert "duplicate key 'a'" in caught.value.message and "line 1" in caught.value.message


def test_merge_keys_apply_and_explicit_keys_win() -> None:
    (document,) = read_documents("f.yaml", "base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n")
    assert document.data["thing"] == {"x": 1, "y": 3}


def test_syntax_errors_carry_a_position() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        read_documents("f.yaml", "a:\n  b: 1\n c: 2\n")
    assert caught.value.position.line == 3
    assert caught.value.message.startswith("YAML syntax")


def test_unknown_tags_are_errors_not_crashes() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        read_documents("f.yaml", "a: !secret value\n")
    assert caught.value.position == Position(1, 4)


def test_folders_skip_hidden_copies_such_as_a_mounted_configmaps(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as symlinks into a `..<timestamp>/` folder holding the same files."""
    hidden = tmp_path / "..2026_11_26_12_00_00.123"
    hidden.mkdir()
    (hidden / "checkout.yaml").write_text(minimal())
    (tmp_path / "..data").symlink_to(hidden.name)
    (tmp_path / "checkout.yaml").symlink_to(Path("..data") / "checkout.yaml")
    (tmp_path / ".draft.yaml").write_text(minimal("draft"))
    result = load_paths([tmp_path])
    assert result.errors == []
    assert [declaration.name for declaration in result.declarations] == ["checkout-availability"]
