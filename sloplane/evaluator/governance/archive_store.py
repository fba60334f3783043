"""Where an SLO's archive is written — a folder or an S3 prefix — whole or not at all, and how it is checked again.

A folder: the files are written (`core/fileio.py`: never through a link) into a hidden temporary folder beside the
archive's, which is then renamed to `<root>/<slo>/<archive id>/`: a rename is atomic, so a reader sees the whole
archive or none, and a run killed midway leaves only a `.<archive id>.*` folder that no reader takes for an archive.
An archive that is already there is never replaced.

S3 has no rename: the objects are written first and `manifest.json` last, each with `IfNoneMatch` (an object already
there is never replaced, so a second run on the same archive id fails rather than mixing two archives); an archive
is complete when its manifest is there, and its manifest lists (and hashes) every other object.

`verify_folder` / `verify_s3` re-read an archive and compare every file with the manifest's sha256 and size; a
problem is a line naming the file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from sloplane.core.fileio import UnsafeOutputError, write_files
from sloplane.evaluator.governance.archive import MANIFEST

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class ArchiveWriteError(Exception):
    """The archive could not be written (or is there already); one line naming where and why."""


def _ordered(files: Mapping[str, str]) -> list[tuple[str, str]]:
    """The files with the manifest last."""
    return sorted(files.items(), key=lambda item: (item[0] == MANIFEST, item[0]))


def _folder_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o777 & ~mask


def write_folder(root: Path, slo: str, archive_id: str, files: Mapping[str, str]) -> Path:
    """Write the archive to `root/slo/archive_id/` (see the module's docstring); its path."""
    parent = root / slo
    final = parent / archive_id
    if parent.is_symlink():
        raise ArchiveWriteError(f"{parent} is a symbolic link: sloplane writes archives only inside {root}")
    if final.exists() or final.is_symlink():
        raise ArchiveWriteError(f"{final} exists already: an archive is never replaced")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{archive_id}.", dir=parent))
    except OSError as error:
        raise ArchiveWriteError(f"cannot create {parent}: {error.strerror or error}") from None
    try:
        write_files(temporary, dict(_ordered(files)))
        temporary.chmod(_folder_mode())
        os.rename(temporary, final)
    except (OSError, UnsafeOutputError) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ArchiveWriteError(f"cannot write the archive to {final}: {reason}") from None
    return final


def _manifest_problems(manifest_text: bytes | None, read: Callable[[str], bytes | None]) -> list[str]:
    """Each file the manifest lists re-hashed through `read` (name → bytes, None when missing)."""
    if manifest_text is None:
        return [f"{MANIFEST} is missing: the archive is incomplete"]
    try:
        manifest = orjson.loads(manifest_text)
        entries = list(manifest["files"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return [f"{MANIFEST} is not an archive manifest"]
    problems = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name == MANIFEST:
            continue
        data = read(name)
        if data is None:
            problems.append(f"{name}: missing")
        elif len(data) != entry.get("bytes") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            problems.append(
                f"{name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}: not as the manifest"
            )
    return problems


def verify_folder(folder: Path) -> list[str]:
    """Problems found re-hashing the archive in `folder` against its manifest (empty: intact)."""

    def read(name: str) -> bytes | None:
        path = folder / name
        if path.is_symlink() or not path.is_file() or Path(name).name != name:
            return None
        try:
            return path.read_bytes()
        except OSError as error:
            raise ArchiveWriteError(f"cannot read {path}: {error.strerror or error}") from None

    return _manifest_problems(read(MANIFEST), read)


def _s3_reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', '')}: {details.get('Message', '')}".strip(": ")
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def s3_folder(prefix: str, slo: str, archive_id: str) -> str:
    """The key prefix of one archive, ending in `/`."""
    return "/".join(part for part in (prefix.strip("/"), slo, archive_id) if part) + "/"


def write_s3(client: S3Client, bucket: str, prefix: str, *, slo: str, archive_id: str, files: Mapping[str, str]) -> str:
    """Write the archive under `s3://bucket/prefix/slo/archive_id/`, the manifest last; its location."""
    folder = s3_folder(prefix, slo, archive_id)
    where = f"s3://{bucket}/{folder}"
    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=folder, MaxKeys=1)
    except (BotoCoreError, ClientError) as error:
        raise ArchiveWriteError(f"cannot list {where}: {_s3_reason(error)}") from None
    if listed.get("KeyCount", 0):
        raise ArchiveWriteError(f"{where} holds objects already: an archive is never replaced")
    for name, text in _ordered(files):
        body = text.encode()
        digest = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        try:
            client.put_object(
                Bucket=bucket, Key=folder + name, Body=body, ContentMD5=digest, IfNoneMatch="*", ContentType=_type(name)
            )
        except (BotoCoreError, ClientError) as error:
            raise ArchiveWriteError(f"cannot write {where}{name}: {_s3_reason(error)}") from None
    return where


def _type(name: str) -> str:
    return {"yaml": "application/yaml", "jsonl": "application/x-ndjson"}.get(
        name.rpartition(".")[2], "application/json"
    )


def verify_s3(client: S3Client, bucket: str, folder: str) -> list[str]:
    """Problems found re-hashing the archive under the key prefix `folder` (ending in `/`) against its manifest."""

    def read(name: str) -> bytes | None:
        try:
            answer: Any = client.get_object(Bucket=bucket, Key=folder + name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise ArchiveWriteError(f"cannot read s3://{bucket}/{folder}{name}: {_s3_reason(error)}") from None
        except BotoCoreError as error:
            raise ArchiveWriteError(f"cannot read s3://{bucket}/{folder}{name}: {_s3_reason(error)}") from None
        body: bytes = answer["Body"].read()
        return body

    return _manifest_problems(read(MANIFEST), read)
