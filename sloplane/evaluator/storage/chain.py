"""The decision log's hash chain: each record carries the previous record's hash in its own, so that an
edit, a deletion, an insertion or a backdated record is found by walking the log once.

Why: the append-only triggers stop a bug or a careless hand, not a writer with access to the file or
the database — who can drop the trigger, change a `fail` to `pass` and put it back. With the chain, such
a change breaks every later link; `sloplane decisions verify` names the first broken record.

What is hashed: every column of the row (the JSON record and the columns the log is searched by, so
that neither can be changed alone), in a fixed order, with the row's position (`seq`) and the previous
hash. With a key (`SLOPLANE_CHAIN_KEY`, from a Secret the writer of the files does not hold) the hash is
an HMAC, and a rewritten chain cannot be recomputed; without one, it is plain SHA-256, which finds edits
made by anything that does not recompute the whole tail (the export keeps each record's hash, so a
recomputed tail still disagrees with what was exported).

Backdating: a record whose `decided_at` is earlier than its predecessor's by more than
`BACKDATE_TOLERANCE` was not appended when it says it was decided. (Replicas decide concurrently and
their clocks differ a little: the tolerance covers that, not an hour.) Replays (`requested_at` set)
are decided now about the past, so their `decided_at` is still the time of appending.

What no chain shows by itself: records cut from the end (the log simply ends earlier). The export holds
each record's hash, and `serve` reports the head it verified (`/readyz`), so a shorter log disagrees
with both.

Pure: rows in, hashes and the first break out; both stores (SQLite, PostgreSQL) and the export use it.
The report types live in `evaluator.model`, since `DecisionLog.verify` returns them; they are named
here too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sloplane.evaluator.model import ChainBreak, ChainReport

__all__ = [
    "BACKDATE_TOLERANCE",
    "CHAINED_COLUMNS",
    "CHAIN_ROW",
    "CHANGED",
    "GENESIS",
    "ChainBreak",
    "ChainReport",
    "record_hash",
    "verify",
]

GENESIS = "0" * 64
"""The `prev_hash` of the first record of a store."""
CHAINED_COLUMNS = (
    "seq",
    "id",
    "decided_at",
    "evaluated_at",
    "slo",
    "stage",
    "service",
    "revision",
    "pipeline",
    "rollout",
    "outcome",
    "policy_version",
    "record",
    "requested_at",
)
"""The columns a record's hash covers, in this order (both stores have exactly these)."""
CHAIN_ROW = (*CHAINED_COLUMNS, "prev_hash", "hash")
"""The columns of a row as `verify` reads it: the hashed ones, the link and the hash."""
BACKDATE_TOLERANCE = timedelta(seconds=60)
CHANGED = "was changed after it was recorded: its hash is not its content's"
"""The reason of a record whose hash is not its content's (also what a record hashed under another key reads as)."""


def _field(value: Any) -> bytes:
    """One column as bytes, NULL told apart from the empty string (and from the text "None")."""
    if value is None:
        return b"\x00"
    return b"\x01" + str(value).encode()


def record_hash(row: Mapping[str, Any], prev_hash: str, key: bytes | None = None) -> str:
    """The hash of a row given its predecessor's: hex SHA-256, or HMAC-SHA256 with the key."""
    message = b"\x1f".join([prev_hash.encode(), *(_field(row.get(column)) for column in CHAINED_COLUMNS)])
    if key:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def _instant(value: Any) -> datetime | None:
    """A record's time as an aware instant (naive text taken as UTC), or None when it is not a time."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _position(value: Any) -> int | None:
    """A record's `seq` as a number, or None: rows read back from an export are not to be trusted either."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def verify(rows: Iterable[Mapping[str, Any]], key: bytes | None = None) -> ChainReport:
    """Walk the rows in `seq` order (each with the chained columns, `prev_hash` and `hash`) and report the
    first record that was edited (its hash is not its content's), inserted or follows a deleted one (its
    `prev_hash` is not its predecessor's hash, or `seq` skips), or backdated.

    Never raises for what the rows hold: whatever an attacker wrote is a finding, not a crash."""
    previous_hash = GENESIS
    previous_seq = 0
    previous_decided: datetime | None = None
    count = 0
    for row in rows:
        problem = _problem(row, previous_hash, previous_seq, previous_decided, key)
        if problem is not None:
            seq = _position(row.get("seq"))
            where = previous_seq + 1 if seq is None else seq
            return ChainReport(count, previous_hash, ChainBreak(where, str(row.get("id")), problem))
        count += 1
        previous_hash, previous_seq = str(row["hash"]), previous_seq + 1
        previous_decided = _instant(row["decided_at"])
    return ChainReport(count, previous_hash, None)


def _problem(
    row: Mapping[str, Any], previous_hash: str, previous_seq: int, previous_decided: datetime | None, key: bytes | None
) -> str | None:
    """What is wrong with one record given the one before it, or None.

    The order matters for the message: a link that does not hold says "inserted or deleted" before the
    record's own hash is looked at, since an inserted record's hash may well be its content's."""
    if not isinstance(row.get("hash"), str) or not isinstance(row.get("prev_hash"), str):
        return "has no hash: it was written outside sloplane"
    if row["prev_hash"] != previous_hash:
        if previous_seq == 0:
            return "does not start the chain: the records before it were deleted, or it was inserted"
        return f"does not follow record {previous_seq}: a record was inserted or deleted here"
    seq = _position(row.get("seq"))
    if seq != previous_seq + 1:
        return f"comes after record {previous_seq} but is numbered {row.get('seq')}: the records between were deleted"
    if record_hash(row, previous_hash, key) != row["hash"]:
        return CHANGED
    decided = _instant(row.get("decided_at"))
    if decided is None:
        return f"has a decision time that is not a time: {str(row.get('decided_at'))[:40]!r}"
    if previous_decided is not None and decided < previous_decided - BACKDATE_TOLERANCE:
        return (
            f"is backdated: decided at {row['decided_at']}, more than {int(BACKDATE_TOLERANCE.total_seconds())} s "
            f"before record {previous_seq}, which it follows"
        )
    return None
