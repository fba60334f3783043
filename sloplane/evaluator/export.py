"""Copy the decision log to S3 as JSON lines: resumable, each record written exactly once.

Why S3: the decision log is the audit trail of which release was let through and why; a copy
off the cluster outlives the pod, the volume and the cluster, and can be read by Athena or jq.

Why the state lives in the object names: `decisions-<first seq>-<last seq>.jsonl`, both
zero-padded, says which records an object holds. An export lists what is there, takes the highest
last seq and continues after it, so there is no local cursor to lose or to get out of step with
the bucket. Each object is one PutObject, which S3 makes visible whole or not at all, so a run
killed at any point leaves complete objects only, and the next run neither skips nor repeats a
record. This holds for one exporter per (prefix, source); `IfNoneMatch` additionally refuses to
replace an object that is already there (a second exporter, or an SDK retry of a write whose
answer was lost), so a written object is never changed. The cursor is per source, and seqs
restart in a new log file: a fresh log exported under an old source name would be skipped up to
the old highest seq, hence one source name per log (the CLI defaults to the db file's stem).

Why each line carries `seq`, `prevHash` and `hash` (the decision log's hash chain, `storage.chain`):
so the bucket can be verified on its own (`exported_chain_rows` turns lines back into the rows
`chain.verify` reads), and a log rewritten after it was exported disagrees with the copy. The export
walks the log by `seq`, so objects written by resumed runs, read in key order, are one chain. The
chained columns are derived from the record (`record_columns`), exactly as the store derives them when
it appends; a row whose columns are not its record's (history from before the chain, kept as found)
also carries them as stored, under `storedColumns`, so that it verifies too.

One exporter per (prefix, source) with replicas: the leader exports, but a leader that lost its
database session (a partition, a killed connection) may not know yet, while the next leader already
lists the bucket; both would write the records after the same cursor, as differently named objects.
A log shared by replicas (PostgreSQL) therefore fences each round (`FencedSource.export_fence`): the
round runs while this process holds the database's export lock, which a second round cannot take, and
the lock is checked again before every object is written, so a round whose session is gone stops at
its next object instead of writing what the next holder writes too. `sloplane export-decisions` on such
a log takes the same lock. What remains: an object whose write was already under way when the session
was lost can land after the next holder listed the bucket, beside an object of an overlapping range;
`exported_chain_rows` readers see the same records twice then, in keys that say so. Closing that needs
the next holder to wait out the longest write, or object names by first seq only (a format change).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from sloplane.core.serialize import wire_json
from sloplane.evaluator.storage.chain import CHAINED_COLUMNS
from sloplane.evaluator.storage.decisions import DecisionLogError, FenceBusyError, record_columns

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000
LIST_PAGE_SIZE = 1000
"""Keys per ListObjectsV2 page (S3's maximum); a module constant so a test can make pages small."""

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_OBJECT = re.compile(r"^decisions-(\d{12})-(\d{12})\.jsonl$")
_SEQ_DIGITS = 12


class ExportError(Exception):
    """An export step failed; the message is one line naming the bucket, key and reason."""


class DecisionSource(Protocol):
    """What an export reads: the decision log's seq-ordered walk of its chain rows (`SqliteDecisionLog` has it)."""

    def chain_rows(
        self, after_seq: int = 0, until_seq: int | None = None, *, batch_size: int = 500
    ) -> Iterator[dict[str, Any]]: ...

    def last_seq(self) -> int: ...


Fence = Callable[[], AbstractContextManager[Callable[[], None]]]
"""Enters a round's fence and yields the check to call before each object, which raises `DecisionLogError`
once the fence is lost. Entering raises `FenceBusyError` when another round holds it."""


@runtime_checkable
class FencedSource(Protocol):
    """A log shared by several processes, which fences export rounds (see the module's docstring)."""

    def export_fence(self) -> AbstractContextManager[Callable[[], None]]: ...


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (no leading or trailing slash; empty for the bucket's root)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> S3Location:
        """`s3://bucket` or `s3://bucket/some/prefix`; anything else is a ValueError saying what is wrong."""
        if not text.startswith("s3://"):
            raise ValueError(f"'{text}' is not an S3 location: write s3://bucket/prefix")
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ValueError(
                f"'{bucket}' in '{text}' is not a bucket name: 3-63 lowercase letters, digits, dots or hyphens"
            )
        prefix = prefix.strip("/")
        if "//" in prefix:
            raise ValueError(f"'{text}' has an empty folder in its prefix (//)")
        return cls(bucket, prefix)

    def folder(self, source: str) -> str:
        """The key prefix of one source's objects, ending in `/` so `a` never lists `ab`'s objects."""
        check_source(source)
        return f"{self.prefix}/{source}/" if self.prefix else f"{source}/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def check_source(source: str) -> str:
    """A source name is one key segment: a slash would let one source's listing see another's objects."""
    if not _SOURCE.match(source):
        raise ValueError(f"'{source}' is not a source name: letters, digits, '.', '_' or '-', no slash")
    return source


def object_key(location: S3Location, source: str, first_seq: int, last_seq: int) -> str:
    """Zero-padded seqs, so the keys sort by position in the log as text too."""
    return f"{location.folder(source)}decisions-{first_seq:0{_SEQ_DIGITS}d}-{last_seq:0{_SEQ_DIGITS}d}.jsonl"


@dataclass(frozen=True)
class ExportReport:
    """What one export run did; `resumed_after` is the last seq that was already in the bucket."""

    location: str
    source: str
    objects_written: int
    records_written: int
    first_seq: int | None
    last_seq: int | None
    resumed_after: int
    keys: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """camelCase, like every other JSON the evaluator prints."""
        return {
            "location": self.location,
            "source": self.source,
            "objectsWritten": self.objects_written,
            "recordsWritten": self.records_written,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "resumedAfter": self.resumed_after,
            "keys": list(self.keys),
        }

    def summary(self) -> str:
        """One line for people."""
        where = f"{self.location.rstrip('/')}/{self.source}/"
        if not self.records_written:
            return f"nothing new to export to {where} (exported through seq {self.resumed_after})"
        return (
            f"exported {self.records_written} decision(s) in {self.objects_written} object(s) to {where} "
            f"(seq {self.first_seq}-{self.last_seq}, resumed after {self.resumed_after})"
        )


def _reason(error: Exception) -> str:
    """A short, specific reason for a failed S3 call, without botocore's multi-line detail."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        known = {
            "NoSuchBucket": "the bucket does not exist",
            "AccessDenied": "access denied (check the credentials and the bucket policy)",
            "403": "access denied (check the credentials and the bucket policy)",
            "InvalidAccessKeyId": "the access key is not known to this endpoint",
            "SignatureDoesNotMatch": "the secret key does not match the access key",
        }
        message = str(error.response.get("Error", {}).get("Message", "")) or code
        return known.get(code, f"{code or status}: {message}")
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach the endpoint {error.kwargs.get('endpoint_url', '')}".rstrip()
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _fail(action: str, bucket: str, key: str, error: Exception) -> ExportError:
    return ExportError(f"cannot {action} s3://{bucket}/{key}: {_reason(error)}")


def exported_through(client: S3Client, location: S3Location, source: str) -> int:
    """The highest last seq among the source's objects (0 if none): where the next export starts.

    ListObjectsV2 cannot list backwards, so every page is read (1000 keys, a million records, per
    page) and the maximum taken. Keys that are not export objects (a README, another tool's
    files) are ignored rather than refused: the folder may be shared with people.
    """
    folder = location.folder(source)
    highest = 0
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=folder, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
        )
        for page in pages:
            for entry in page.get("Contents", []):
                match = _OBJECT.match(entry.get("Key", "").removeprefix(folder))
                if match:
                    highest = max(highest, int(match.group(2)))
    except (BotoCoreError, ClientError) as error:
        raise _fail("list", location.bucket, folder, error) from None
    return highest


_STORED = tuple(column for column in CHAINED_COLUMNS if column != "seq")
"""The chained columns a line carries under `storedColumns` when its record does not reproduce them."""
_CHAIN_FIELDS = ("seq", "prevHash", "hash", "storedColumns")


def export_line(row: dict[str, Any]) -> dict[str, Any]:
    """One chain row (`DecisionSource.chain_rows`) as an exported line: `seq`, `prevHash`, `hash`, the record.

    A record that is not a decision's JSON, or whose columns were stored otherwise than it says, is
    exported with the columns as stored (see the module's docstring): the export never stops on it.
    """
    line: dict[str, Any] = {"seq": row["seq"], "prevHash": row["prev_hash"], "hash": row["hash"]}
    stored = {column: row[column] for column in _STORED}
    try:
        record = orjson.loads(row["record"])
    except orjson.JSONDecodeError:
        record = None
    if not isinstance(record, dict) or not record.keys().isdisjoint(_CHAIN_FIELDS):
        return {**line, "storedColumns": stored}  # not a decision's JSON: the stored text is all there is
    line.update(record)
    try:
        reproduced = record_columns(record) == stored
    except (KeyError, TypeError, ValueError):
        reproduced = False
    if not reproduced:
        line["storedColumns"] = stored
    return line


def exported_chain_rows(lines: Iterable[bytes | str | dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Exported lines (JSON text or parsed), in seq order, as the rows `chain.verify` reads.

    Lines of every object of a source read in key order are the log's chain from its first record:
    `chain.verify(exported_chain_rows(lines), key)` checks the bucket without the log. A line that
    cannot be read as one becomes a row with nothing in it, which `verify` names.
    """
    for text in lines:
        try:
            line = orjson.loads(text) if isinstance(text, bytes | str) else text
        except orjson.JSONDecodeError:
            line = None
        if not isinstance(line, dict):
            yield {}
            continue
        stored = line.get("storedColumns")
        if isinstance(stored, dict):
            columns = stored
        else:
            try:
                columns = record_columns({k: v for k, v in line.items() if k not in _CHAIN_FIELDS})
            except (KeyError, TypeError, ValueError):
                columns = {}
        yield {**columns, "seq": line.get("seq"), "prev_hash": line.get("prevHash"), "hash": line.get("hash")}


def encode_batch(batch: list[dict[str, Any]]) -> bytes:
    """JSON lines, one per chain row (`export_line`): `seq` first, the position a reader can resume at."""
    return b"".join(wire_json(export_line(row)) + b"\n" for row in batch)


def _put(client: S3Client, bucket: str, key: str, body: bytes) -> bool:
    """Write one object whole; False if it was already there (written by a run whose answer got lost)."""
    digest = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    try:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentMD5=digest,
            ContentType="application/x-ndjson",
            IfNoneMatch="*",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
            logger.info("s3://%s/%s is already there; not replacing it", bucket, key)
            return False
        raise _fail("write", bucket, key, error) from None
    except BotoCoreError as error:
        raise _fail("write", bucket, key, error) from None
    return True


def _batches(log: DecisionSource, after: int, until: int, size: int) -> Iterator[list[dict[str, Any]]]:
    """Chain rows after `after` up to `until`, in lists of `size`; `until` keeps a run on a busy log finite."""
    rows = log.chain_rows(after, until, batch_size=size)
    while batch := list(islice(rows, size)):
        yield batch


def export_decisions(
    log: DecisionSource,
    client: S3Client,
    location: S3Location,
    *,
    source: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    still_fenced: Callable[[], None] = lambda: None,
) -> ExportReport:
    """Write every decision not yet in the bucket, one object per `batch_size` records.

    Raises `ExportError` for S3 failures (objects already written stay: the next run resumes after
    them) and `DecisionLogError` if the log cannot be read. `still_fenced` is called before each object
    is written and raises `DecisionLogError` when this round may no longer write (`Fence`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    check_source(source)
    still_fenced()
    resumed_after = exported_through(client, location, source)
    until = log.last_seq()
    keys: list[str] = []
    records = 0
    first: int | None = None
    last: int | None = None
    for batch in _batches(log, resumed_after, until, batch_size):
        key = object_key(location, source, batch[0]["seq"], batch[-1]["seq"])
        still_fenced()
        if _put(client, location.bucket, key, encode_batch(batch)):
            keys.append(key)
            records += len(batch)
            first = batch[0]["seq"] if first is None else first
            last = batch[-1]["seq"]
    return ExportReport(str(location), source, len(keys), records, first, last, resumed_after, tuple(keys))


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    """A boto3 S3 client on the standard credential chain (env vars, profile, web identity, instance role).

    Path-style addressing for a custom endpoint (MinIO, Ceph, moto): their buckets are rarely
    DNS names. Short connect timeouts and few retries: an unreachable endpoint should fail the
    CLI in seconds, and the periodic exporter retries on its next round anyway.
    """
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    try:
        return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    except (BotoCoreError, ValueError) as error:  # a malformed endpoint URL or region
        raise ExportError(f"cannot make an S3 client for {endpoint_url or 'AWS'}: {_reason(error)}") from None


class PeriodicExporter:
    """Exports the log every `interval` on a background thread, for `sloplane serve --export-s3`.

    Failures are logged and the next round tries again (the bucket is the cursor, so nothing is
    lost or repeated); nothing is ever raised into the server. `stop` does a last export, so the
    decisions of a pod being shut down reach the bucket.
    """

    def __init__(
        self,
        log: DecisionSource,
        client: S3Client,
        location: S3Location,
        *,
        source: str,
        interval: timedelta,
        batch_size: int = DEFAULT_BATCH_SIZE,
        fence: Fence | None = None,
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError(f"the export interval must be positive, not {interval}")
        check_source(source)
        self._log = log
        self._client = client
        self._location = location
        self._source = source
        self._interval = interval
        self._batch_size = batch_size
        self._fence = fence
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sloplane-decision-export", daemon=True)
        self._lock = threading.Lock()
        self.last_report: ExportReport | None = None
        self.last_error: str | None = None
        """The last round's failure, or None once a round succeeds (for health checks and tests)."""

    def start(self) -> None:
        """Start the rounds; the first one runs at once, so a restarted pod catches up immediately."""
        self._thread.start()

    def stop(self, timeout: timedelta = timedelta(seconds=30)) -> ExportReport | None:
        """End the rounds, then export what was recorded meanwhile; the final report (None if it failed)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout.total_seconds())
        return self.export_once()

    def export_once(self) -> ExportReport | None:
        """One round; serialised, so the final export never races a round still in progress."""
        with self._lock:
            try:
                report = self._round()
            except FenceBusyError as busy:
                logger.info("decision export skipped: %s", busy)
                return None
            except (ExportError, DecisionLogError) as error:
                self.last_error = str(error)
                logger.warning("decision export failed, retrying in %s: %s", self._interval, error)
                return None
            except Exception as error:  # a bug must not end the rounds or reach the server
                self.last_error = f"{type(error).__name__}: {error}"
                logger.exception("decision export failed unexpectedly, retrying in %s", self._interval)
                return None
            self.last_report, self.last_error = report, None
            if report.records_written:
                logger.info("%s", report.summary())
            return report

    def _round(self) -> ExportReport:
        """One export, inside the fence when the log is shared."""
        if self._fence is None:
            return export_decisions(
                self._log, self._client, self._location, source=self._source, batch_size=self._batch_size
            )
        with self._fence() as still_fenced:
            return export_decisions(
                self._log,
                self._client,
                self._location,
                source=self._source,
                batch_size=self._batch_size,
                still_fenced=still_fenced,
            )

    def _run(self) -> None:
        self.export_once()
        while not self._stopping.wait(self._interval.total_seconds()):
            self.export_once()
