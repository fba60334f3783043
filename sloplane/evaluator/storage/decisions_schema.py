"""The SQLite decision log's schema and its migrations, run once when a log is opened.

Apart from the log itself (`decisions.py`) because migrating is its own concern: versions, the order of
steps, and the one transaction they all run in. Version 1 had no `requested_at`, version 2 no hash chain;
a file of either is brought to `SCHEMA_VERSION` when it is opened, inside one write transaction, so that
a process killed half-way leaves the file as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sloplane.evaluator.storage.chain import CHAIN_ROW, GENESIS, record_hash
from sloplane.evaluator.storage.sqlite import ErrorFactory

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    decided_at TEXT NOT NULL,
    evaluated_at TEXT,
    slo TEXT NOT NULL,
    stage TEXT,
    service TEXT,
    revision TEXT,
    pipeline TEXT,
    rollout TEXT,
    outcome TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    record TEXT NOT NULL,
    requested_at TEXT,
    prev_hash TEXT,
    hash TEXT
);
CREATE INDEX IF NOT EXISTS decisions_by_slo ON decisions (slo, decided_at);
CREATE INDEX IF NOT EXISTS decisions_by_outcome ON decisions (outcome, decided_at);
CREATE INDEX IF NOT EXISTS decisions_by_decided_at ON decisions (decided_at);
CREATE INDEX IF NOT EXISTS decisions_by_revision ON decisions (revision);
CREATE INDEX IF NOT EXISTS decisions_by_service ON decisions (service, decided_at);
CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'the decision log is append-only: recorded decisions cannot be changed');
END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'the decision log is append-only: recorded decisions cannot be deleted');
END;
"""
"""`requested_at` is the request's `at`: NULL for a live gate, set for a replay (back-testing), which
must never count as deployment history. `seq` is the rowid made explicit: an INTEGER PRIMARY KEY
keeps its values through VACUUM, so insertion order (what a resumable export walks) is stable. `id`
stays unique. Times are UTC text of fixed width, so comparing them as strings compares the instants.
`prev_hash` and `hash` are the chain (NULL only in a row written outside sloplane, which `verify` names)."""

_MIGRATE_TO_2 = """
ALTER TABLE decisions ADD COLUMN requested_at TEXT;
DROP TRIGGER IF EXISTS decisions_no_update;
UPDATE decisions SET requested_at = json_extract(record, '$.request.at');
"""
"""Version 1 files kept replays apart only inside the JSON record: the column is filled from it, with
the append-only trigger lifted for that one statement inside the migration's transaction (`SCHEMA`
puts it back before the transaction commits)."""

_MIGRATE_TO_3 = """
ALTER TABLE decisions ADD COLUMN prev_hash TEXT;
ALTER TABLE decisions ADD COLUMN hash TEXT;
DROP TRIGGER IF EXISTS decisions_no_update;
"""
"""Version 2 files have no chain: the columns are added and `_chain_history` fills them over the rows
there, in seq order, with the append-only trigger lifted for that inside the migration's transaction
(`SCHEMA` puts it back before the transaction commits). Those rows predate the chain, so the history
before the migration is trusted as found: the chain proves it unchanged since, not before."""

CHAIN_ROWS = f"SELECT {', '.join(CHAIN_ROW)} FROM decisions WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
"""Rows as the chain reads them, after one `seq` and up to another, a batch at a time."""
LAST_POSSIBLE_SEQ = 2**63 - 1
_HISTORY_BATCH = 1000
"""Rows hashed per step of the migration: its memory stays bounded however long the log is."""


def _statements(script: str) -> Iterator[str]:
    """Each statement of a script (a trigger's body stays whole), to run one by one in a transaction begun
    outside them: `executescript` would commit that transaction first."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"an incomplete SQL statement: {pending.strip()[:60]!r}")


def _chain_history(connection: sqlite3.Connection, key: bytes | None) -> None:
    """Fill `prev_hash` and `hash` of the rows already there (a version 2 file), in seq order, a batch at a time."""
    previous, position = GENESIS, 0
    while True:
        found = connection.execute(CHAIN_ROWS, (position, LAST_POSSIBLE_SEQ, _HISTORY_BATCH)).fetchall()
        if not found:
            return
        links = []
        for values in found:
            row = dict(zip(CHAIN_ROW, values, strict=True))
            digest = record_hash(row, previous, key)
            links.append((previous, digest, row["seq"]))
            previous = digest
        connection.executemany("UPDATE decisions SET prev_hash = ?, hash = ? WHERE seq = ?", links)
        position = found[-1][0]


def _migrate(connection: sqlite3.Connection, path: Path, key: bytes | None, error: ErrorFactory) -> None:
    """Inside the open transaction: bring the file from its version to `SCHEMA_VERSION`, create what is missing.

    The version is read inside the write transaction, so that of two processes opening an old file at
    once, one migrates and the other finds it done.
    """
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise error(
            f"the decision log at {path} has schema version {version}; this sloplane reads up to {SCHEMA_VERSION}"
        )
    steps = [_MIGRATE_TO_2] if version == 1 else []
    if version in (1, 2):
        steps.append(_MIGRATE_TO_3)
    for statement in _statements("".join(steps)):
        connection.execute(statement)
    if version in (1, 2):
        _chain_history(connection, key)
    for statement in _statements(SCHEMA):
        connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def prepare(connection: sqlite3.Connection, path: Path, key: bytes | None, error: ErrorFactory) -> str:
    """Switch to WAL, check the schema version, migrate and create what is missing; the journal mode in use.

    `key` is the chain key a version 2 file's history is chained under; `error` makes the log's exception.

    `BEGIN IMMEDIATE` takes the write lock, so a read-only file or folder is reported here, when
    the evaluator starts, rather than at its first decision.
    """
    try:
        mode = str(connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        connection.execute("BEGIN IMMEDIATE")
        _migrate(connection, path, key, error)
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        roll_back(connection)
        raise error(f"cannot write the decision log at {path}: {exc}") from exc
    except BaseException:
        roll_back(connection)
        raise
    return mode


def roll_back(connection: sqlite3.Connection) -> None:
    """End a transaction that failed; a connection that cannot even do that has nothing left to undo."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
