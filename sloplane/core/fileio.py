"""Writing generated files so that a failure never leaves a half-written tree behind.

Everything is rendered in memory first; only then is each file written to a temporary name in its
final folder and renamed over the old one (a rename is atomic on POSIX). Files whose bytes did not
change are left alone, so timestamps only move when content does. Files that sloplane owns but no
longer renders (an SLO was deleted) are removed, so the output mirrors the declarations.

Nothing is written or removed outside the folder the user named. That folder may itself be reached
through a symbolic link (the user chose it), but a link to a folder *inside* it would carry writes
and removals elsewhere, so it is refused, naming it, before anything is written. A file that is a
link is replaced by a file, never written through. New files get the mode the user's umask allows
(0644 under the usual 022; `mkstemp` alone would make them 0600, unreadable to Prometheus or Git);
a changed file keeps its mode.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


class UnsafeOutputError(Exception):
    """Writing would leave the output folder (a symbolic link inside it, a path outside it)."""


def _refuse_links(root: Path, relative: str) -> None:
    """Raise when a folder on the way from `root` to `relative` is a symbolic link (or the path leaves root)."""
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts:
        raise UnsafeOutputError(f"{relative}: a generated path must stay inside {root}")
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise UnsafeOutputError(
                f"{current} is a symbolic link: sloplane writes only inside {root}, never through a link "
                "(remove the link, or name its target as the output folder)"
            )


def check_inside(root: Path, files: Iterable[str], owned_folders: Iterable[str] = ()) -> None:
    """Refuse output that would be written or removed through a link inside `root` (UnsafeOutputError)."""
    for relative in files:
        _refuse_links(root, relative)
    for folder in owned_folders:
        _refuse_links(root, f"{folder}/-")


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
            if not target.is_symlink() and target.read_text(encoding="utf-8") == content:
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
        if not base.is_dir() or base.is_symlink():
            continue
        for directory, folders, names in os.walk(base):  # links to folders are not followed
            folders[:] = [name for name in folders if not (Path(directory) / name).is_symlink()]
            for name in names:
                path = Path(directory) / name
                relative = path.relative_to(root).as_posix()
                if relative not in files and not name.startswith(".") and (path.is_file() or path.is_symlink()):
                    stale.append(relative)
    return sorted(stale)


def plan(root: Path, files: Mapping[str, str], owned_folders: Iterable[str] = ()) -> Plan:
    """What `write_files` would change, without changing anything (for --check); UnsafeOutputError first."""
    owned = list(owned_folders)
    check_inside(root, files, owned)
    return Plan(changed_files(root, files), stale_files(root, files, owned))


def _new_file_mode() -> int:
    """0666 less the process umask (read without changing it for longer than two calls)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _write_atomically(target: Path, content: str, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        existing = target.lstat()
        if not target.is_symlink():
            mode = stat.S_IMODE(existing.st_mode)
    except FileNotFoundError:
        pass
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(content)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_files(root: Path, files: Mapping[str, str], owned_folders: Iterable[str] = ()) -> Plan:
    """Write every changed file atomically under root and remove stale owned files."""
    result = plan(root, files, owned_folders)
    mode = _new_file_mode()
    for relative in result.changed:
        _write_atomically(root / relative, files[relative], mode)
    for relative in result.removed:
        (root / relative).unlink()
    return result
