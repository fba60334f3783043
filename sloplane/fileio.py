"""Writing generated files so that a failure never leaves a half-written tree behind.

Everything is rendered in memory first; only then is each file written to a temporary name in its
final folder and renamed over the old one (a rename is atomic on POSIX). Files whose bytes did not
change are left alone, so timestamps only move when content does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def changed_files(root: Path, files: Mapping[str, str]) -> list[str]:
    """Relative paths whose content differs from what is on disk (or that do not exist yet)."""
    changed = []
    for relative, content in sorted(files.items()):
        target = root / relative
        try:
            if target.read_text(encoding="utf-8") == content:
                continue
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
            pass
        changed.append(relative)
    return changed


def write_files(root: Path, files: Mapping[str, str]) -> list[str]:
    """Write every file atomically under root; returns the relative paths that changed."""
    changed = changed_files(root, files)
    for relative in changed:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(files[relative])
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return changed
