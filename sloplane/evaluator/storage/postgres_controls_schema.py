"""The PostgreSQL release controls' schema: freezes and incidents, as versioned migrations of their own.

Why a store of its own in `schema_migrations` ("controls", next to the decision log's "decisions"): the
controls may live in the decision log's database (the default: one database to back up) or in another, and
either store's schema moves on without the other's. Both run under the same advisory lock (`migrate` in
`postgres_schema`), so replicas starting at once, with either store first, apply each version once.

Why `release_freezes` and `release_incidents`, not SQLite's `freezes` and `incidents`: every PostgreSQL store
of a deployment may share one database, and the notifier's outbox has an `incidents` table of its own in
SQLite. The columns are SQLite's, with times as `timestamptz` and services as `text[]`.

Nothing is ever deleted, as in SQLite: triggers refuse DELETE and TRUNCATE, and refuse any UPDATE but the one
that ends a record — filling `lifted_*` (or `resolved_*`) once, every other column unchanged — with SQLite's
messages. The partial unique index on open incidents' keys is what makes "open the incident with this key,
unless one is open" one step for every replica (`INSERT ... ON CONFLICT DO NOTHING`).

The `sloplane_writer` role gets what the evaluator does and no more: reading and inserting both tables, and
UPDATE of only the columns that end a record (lifting and resolving; `SELECT ... FOR UPDATE` needs it too).
It is created when missing, as the decision log's migration does, so that whichever store migrates first the
grants are made (granting only to an existing role would leave them out for good when the controls migrated
first); roles belong to the cluster, so this needs CREATEROLE exactly when the decision log's does.
"""

from __future__ import annotations

from sloplane.evaluator.storage.postgres_schema import ENSURE_WRITER_ROLE, WRITER_ROLE, Migration

STORE = "controls"
"""This store's name in `schema_migrations`."""
FREEZES = "release_freezes"
INCIDENTS = "release_incidents"

_TABLES = f"""
CREATE TABLE {FREEZES} (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    service text COLLATE "C",
    reason text NOT NULL CHECK (length(btrim(reason)) > 0),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    until timestamptz CHECK (until IS NULL OR until > created_at),
    lifted_at timestamptz,
    lifted_by text,
    lift_reason text
);
CREATE INDEX {FREEZES}_by_created_at ON {FREEZES} (created_at);

CREATE TABLE {INCIDENTS} (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    title text NOT NULL CHECK (length(btrim(title)) > 0),
    severity text COLLATE "C" NOT NULL CHECK (severity IN ('major', 'minor')),
    services text[] NOT NULL,
    opened_by text NOT NULL,
    opened_at timestamptz NOT NULL,
    resolved_at timestamptz,
    resolved_by text,
    key text COLLATE "C",
    source text NOT NULL
);
CREATE INDEX {INCIDENTS}_by_opened_at ON {INCIDENTS} (opened_at);
CREATE UNIQUE INDEX {INCIDENTS}_open_key ON {INCIDENTS} (key) WHERE resolved_at IS NULL;

CREATE FUNCTION sloplane_freezes_lift_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND OLD.lifted_at IS NULL
        AND NEW.lifted_at IS NOT NULL AND NEW.lifted_by IS NOT NULL AND NEW.lift_reason IS NOT NULL
        AND (NEW.seq, NEW.id, NEW.service, NEW.reason, NEW.created_by, NEW.created_at, NEW.until)
            IS NOT DISTINCT FROM (OLD.seq, OLD.id, OLD.service, OLD.reason, OLD.created_by, OLD.created_at, OLD.until)
    THEN
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'a freeze can only be lifted, once: its other fields cannot change'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION 'release controls are kept: a freeze cannot be deleted, only lifted'
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER {FREEZES}_lift_only BEFORE UPDATE OR DELETE ON {FREEZES}
    FOR EACH ROW EXECUTE FUNCTION sloplane_freezes_lift_only();
CREATE TRIGGER {FREEZES}_no_truncate BEFORE TRUNCATE ON {FREEZES}
    FOR EACH STATEMENT EXECUTE FUNCTION sloplane_freezes_lift_only();

CREATE FUNCTION sloplane_incidents_resolve_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND OLD.resolved_at IS NULL
        AND NEW.resolved_at IS NOT NULL AND NEW.resolved_by IS NOT NULL
        AND (NEW.seq, NEW.id, NEW.title, NEW.severity, NEW.services, NEW.opened_by, NEW.opened_at, NEW.key,
             NEW.source)
            IS NOT DISTINCT FROM (OLD.seq, OLD.id, OLD.title, OLD.severity, OLD.services, OLD.opened_by,
                                  OLD.opened_at, OLD.key, OLD.source)
    THEN
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'an incident can only be resolved, once: its other fields cannot change'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION 'release controls are kept: an incident cannot be deleted, only resolved'
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER {INCIDENTS}_resolve_only BEFORE UPDATE OR DELETE ON {INCIDENTS}
    FOR EACH ROW EXECUTE FUNCTION sloplane_incidents_resolve_only();
CREATE TRIGGER {INCIDENTS}_no_truncate BEFORE TRUNCATE ON {INCIDENTS}
    FOR EACH STATEMENT EXECUTE FUNCTION sloplane_incidents_resolve_only();
"""
"""The two tables, their indexes and the triggers that keep every record (see the module's docstring)."""

_WRITER = f"""{ENSURE_WRITER_ROLE}GRANT SELECT, INSERT ON {FREEZES}, {INCIDENTS} TO {WRITER_ROLE};
GRANT UPDATE (lifted_at, lifted_by, lift_reason) ON {FREEZES} TO {WRITER_ROLE};
GRANT UPDATE (resolved_at, resolved_by) ON {INCIDENTS} TO {WRITER_ROLE};
GRANT SELECT ON schema_migrations TO {WRITER_ROLE};
"""
"""No DELETE or TRUNCATE, and UPDATE of the ending columns only: a leaked evaluator credential can lift a
freeze (as the API lets an admin token do) but not rewrite why or when it was created."""

MIGRATIONS = (
    Migration(1, "freezes and incidents, kept by triggers", _TABLES),
    Migration(2, f"what the {WRITER_ROLE} role may do with them", _WRITER),
)
LATEST = MIGRATIONS[-1].version
