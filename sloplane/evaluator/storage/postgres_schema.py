"""The PostgreSQL decision log's schema, as versioned migrations run when a store opens.

Why migrations in the store, run on start: an evaluator replica is the only thing that knows which schema
its code needs, and operators should not have a separate step to forget. Several replicas start at once
in a rollout, so each runs the migrations inside one transaction that first takes a transaction-scoped
advisory lock (`MIGRATION_LOCK`): the others wait for it, then see the versions it recorded and have
nothing left to do. A migration's DDL and its row in `schema_migrations` commit together, so a replica
killed half-way leaves the previous version, never half of one. When every version is recorded nothing
but reads happen, so a replica logging in with only the `sloplane_writer` role starts as well (its
migrations were run once by the owner).

Append-only, twice over. Triggers refuse UPDATE, DELETE and TRUNCATE on `decisions` for everyone,
the owner included (a bug or a careless hand). And the role `sloplane_writer` (NOLOGIN) holds only
what the evaluator needs: SELECT and INSERT on the decisions, moving the chain head, the write probe. An
operator gives it to the login role the evaluator uses (`GRANT sloplane_writer TO evaluator`), so that
a leaked evaluator credential cannot rewrite history even by dropping the triggers (only the owner may).
What neither stops — the owner editing rows with the triggers disabled — the hash chain finds.

The chain head (`decision_chain_head`, one row) holds the last record's `seq` and hash. An append locks
it (`SELECT ... FOR UPDATE`), so appends from every replica queue on that row and `seq` stays contiguous
from 1, which the chain requires (a gap reads as a deletion); readers never take that lock.

Times are `timestamptz` (an operator's SQL can use them as instants) and text columns compare bytewise
(`COLLATE "C"`), as SQLite does, so queries sort ties the same way in both stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import Connection, DatabaseError

from sloplane.evaluator.storage.chain import GENESIS

MIGRATION_LOCK = int.from_bytes(b"sloplane")
"""The advisory lock key every sloplane migration takes (the bytes of "sloplane": unlikely to be anyone else's)."""
WRITER_ROLE = "sloplane_writer"
STORE = "decisions"
"""This store's name in `schema_migrations`, which other stores (freezes, outbox) can share."""


@dataclass(frozen=True)
class Migration:
    """One step of a store's schema, applied once, in order."""

    version: int
    name: str
    sql: str


_DECISIONS = f"""
CREATE TABLE decisions (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    id text COLLATE "C" NOT NULL UNIQUE,
    decided_at timestamptz NOT NULL,
    evaluated_at timestamptz,
    slo text COLLATE "C" NOT NULL,
    stage text COLLATE "C",
    service text COLLATE "C",
    revision text COLLATE "C",
    pipeline text COLLATE "C",
    rollout text COLLATE "C",
    outcome text COLLATE "C" NOT NULL,
    policy_version text COLLATE "C" NOT NULL,
    record text NOT NULL,
    requested_at timestamptz,
    prev_hash text COLLATE "C" NOT NULL,
    hash text COLLATE "C" NOT NULL
);
CREATE INDEX decisions_by_slo ON decisions (slo, decided_at);
CREATE INDEX decisions_by_outcome ON decisions (outcome, decided_at);
CREATE INDEX decisions_by_decided_at ON decisions (decided_at);
CREATE INDEX decisions_by_revision ON decisions (revision);
CREATE INDEX decisions_by_service ON decisions (service, decided_at);

CREATE TABLE decision_chain_head (
    id integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text COLLATE "C" NOT NULL
);
INSERT INTO decision_chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS}');

CREATE TABLE write_probe (id integer PRIMARY KEY CHECK (id = 1), at timestamptz NOT NULL);

CREATE FUNCTION sloplane_decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'the decision log is append-only: recorded decisions cannot be changed'
            USING ERRCODE = 'restrict_violation';
    ELSIF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the decision log is append-only: recorded decisions cannot be deleted'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION 'the decision log is append-only: recorded decisions cannot be truncated'
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER decisions_no_update_or_delete BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION sloplane_decisions_append_only();
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION sloplane_decisions_append_only();

CREATE FUNCTION sloplane_chain_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.seq = OLD.seq + 1 THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the decision chain head only moves forward, one record at a time'
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER decision_chain_head_forward BEFORE UPDATE OR DELETE ON decision_chain_head
    FOR EACH ROW EXECUTE FUNCTION sloplane_chain_head_forward();
CREATE TRIGGER decision_chain_head_no_truncate BEFORE TRUNCATE ON decision_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION sloplane_chain_head_forward();
"""
"""The log, its chain head and its write probe, with the append-only triggers (see the module's docstring)."""

ENSURE_WRITER_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
        BEGIN
            CREATE ROLE {WRITER_ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by the migration of another database: roles belong to the cluster
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {WRITER_ROLE}', current_schema());
END
$$;
"""
"""`sloplane_writer` created when missing, with USAGE on the schema: every store's migration starts its grants
with it, so that whichever store migrates first the role exists (roles belong to the cluster)."""

_WRITER = f"""{ENSURE_WRITER_ROLE}GRANT SELECT, INSERT ON decisions TO {WRITER_ROLE};
GRANT SELECT, UPDATE ON decision_chain_head TO {WRITER_ROLE};
GRANT SELECT, INSERT, UPDATE ON write_probe TO {WRITER_ROLE};
GRANT SELECT ON schema_migrations TO {WRITER_ROLE};
"""
"""The least-privileged role an evaluator's login role is given: no UPDATE, DELETE or TRUNCATE on the
decisions. Creating a role needs CREATEROLE; a migrating role without it fails here, with PostgreSQL's reason,
until an administrator creates `sloplane_writer` (NOLOGIN) or runs the migration."""

MIGRATIONS = (
    Migration(1, "decisions, chain head, write probe, append-only triggers", _DECISIONS),
    Migration(2, f"the {WRITER_ROLE} role", _WRITER),
)
LATEST = MIGRATIONS[-1].version

MIGRATIONS_TABLE = """
CREATE TABLE schema_migrations (
    store text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store, version)
)
"""


class MigrationError(Exception):
    """A migration could not be applied, or the database's schema is newer than this sloplane's."""


def migrate(connection: Connection[Any], store: str = STORE, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the migrations `store` has not recorded, in one transaction under `MIGRATION_LOCK`; the version now.

    The lock is taken by the transaction's first statement, so every later statement (READ COMMITTED: a
    new snapshot each) sees what a replica that held the lock before committed.
    """
    latest = migrations[-1].version
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        exists = connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not (exists and exists[0]):
            connection.execute(MIGRATIONS_TABLE)
        rows = connection.execute("SELECT version FROM schema_migrations WHERE store = %s", (store,)).fetchall()
        applied = {int(version) for (version,) in rows}
        newest = max(applied, default=0)
        if newest > latest:
            raise MigrationError(f"the {store} schema is at version {newest}; this sloplane knows up to {latest}")
        for migration in migrations:
            if migration.version in applied:
                continue
            try:  # a failure rolls the whole transaction back: no version is ever half applied
                connection.execute(migration.sql)
                connection.execute(
                    "INSERT INTO schema_migrations (store, version, name) VALUES (%s, %s, %s)",
                    (store, migration.version, migration.name),
                )
            except DatabaseError as exc:
                reason = " ".join(str(exc).split())
                raise MigrationError(
                    f"cannot migrate the {store} schema to version {migration.version} ({migration.name}): {reason}"
                ) from None
    return latest


def applied_versions(connection: Connection[Any]) -> dict[str, int]:
    """The newest version each store has recorded (`{}` before any migration): a read, no lock, no change.

    For `sloplane migrate`, which says what each store was at before opening it migrates it.
    """
    exists = connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not (exists and exists[0]):
        return {}
    rows = connection.execute("SELECT store, max(version) FROM schema_migrations GROUP BY store").fetchall()
    return {str(store): int(version) for store, version in rows}
