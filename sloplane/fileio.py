"""Writing generated files so that a failure never leaves a half-written tree behind.

Everything is rendered in memory first; only then is each file written to a temporary name in its
final folder and renamed over the old one (a rename is atomic on POSIX). Files whose bytes did not
change are left alone, so timestamps only move when content does. Files that sloplane owns but no
longer renders (an SLO was deleted) are removed, so the output mirrors the declarations.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Plan:
    """What writing would do: files created or changed, and stale files removed."""

    changed: list[str]
    removed: list[str]

    @property
    def clean(self) -> bool:
        """True when the folder already holds exactly what would be written."""
        return not self.changed and not self.removed


def changed_files(root: Path, files: Mapping[str, str]) -> list[str]:
    """Relative paths whose content differs from what is on disk (or that do not exist yet)."""
    changed = []
    for relative, content in sorted(files.items()):
        target = root / relative
        try:
            if target.read_text(encoding="utf-8") == content:
                continue
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, UnicodeDecodeError):
            pass
        changed.append(relative)
    return changed


def stale_files(root: Path, files: Mapping[str, str], owned_folders: Iterable[str]) -> list[str]:
    """Files in folders sloplane owns that the new output does not contain."""
    stale = []
    for folder in owned_folders:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and relative not in files and not path.name.startswith("."):
                stale.append(relative)
    return stale


def plan(root: Path, files: Mapping[str, str], owned_folders: Iterable[str] = ()) -> Plan:
    """What `write_files` would change, without changing anything (for --check)."""
    return Plan(changed_files(root, files), stale_files(root, files, owned_folders))


def _write_atomically(target: Path, content: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(content)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_files(root: Path, files: Mapping[str, str], owned_folders: Iterable[str] = ()) -> Plan:
    """Write every changed file atomically under root and remove stale owned files."""
    result = plan(root, files, owned_folders)
    for relative in result.changed:
        _write_atomically(root / relative, files[relative])
    for relative in result.removed:
        (root / relative).unlink()
    return result
