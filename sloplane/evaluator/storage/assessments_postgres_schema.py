"""The PostgreSQL assessments' schema: one table of impact assessments, as versioned migrations of its own.

Why a store of its own in `schema_migrations` ("assessments", beside "decisions", "controls", "rollups"): the
assessments may live in the decision log's database (the default, as in SQLite: one database to back up) or in
another, and each store's schema moves on without the others'. All run under the one advisory lock (`migrate` in
`postgres_schema`), so replicas starting at once, with any store first, apply each version once.

Why `change_assessments`, not SQLite's `assessments`: every PostgreSQL store of a deployment may share one
database, and the name says what is assessed. The columns are SQLite's, with times as `timestamptz` and the body
as `text` — the very JSON text recorded, not `jsonb`, which reorders keys — so that both stores give back the same
keys in the same order. Ids and services compare bytewise (`COLLATE "C"`), as SQLite compares text.

Nothing is ever changed or deleted, as in SQLite: a trigger refuses UPDATE, DELETE and TRUNCATE with SQLite's
messages. The `sloplane_writer` role gets what the evaluator does and no more: SELECT and INSERT. It is created
when missing, exactly as the other stores' migrations do, so that whichever store migrates first the grants are
made (roles belong to the cluster: this needs CREATEROLE exactly when theirs do).
"""

from __future__ import annotations

from sloplane.evaluator.storage.postgres_schema import ENSURE_WRITER_ROLE, WRITER_ROLE, Migration

STORE = "assessments"
"""This store's name in `schema_migrations`."""
ASSESSMENTS = "change_assessments"

_TABLE = f"""
CREATE TABLE {ASSESSMENTS} (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    service text COLLATE "C" NOT NULL CHECK (length(service) > 0),
    risk text COLLATE "C" NOT NULL,
    verdict text COLLATE "C" NOT NULL,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL CHECK (window_end > window_start),
    assessed_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    body text NOT NULL
);
CREATE INDEX {ASSESSMENTS}_by_service ON {ASSESSMENTS} (service, seq);

CREATE FUNCTION sloplane_assessments_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'assessments are kept: one cannot be changed, record a new one'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION 'assessments are kept: one cannot be deleted' USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER {ASSESSMENTS}_kept BEFORE UPDATE OR DELETE ON {ASSESSMENTS}
    FOR EACH ROW EXECUTE FUNCTION sloplane_assessments_kept();
CREATE TRIGGER {ASSESSMENTS}_no_truncate BEFORE TRUNCATE ON {ASSESSMENTS}
    FOR EACH STATEMENT EXECUTE FUNCTION sloplane_assessments_kept();
"""
"""The table, its index for `latest` (a service's newest first) and the trigger that keeps every record."""

_WRITER = f"""{ENSURE_WRITER_ROLE}GRANT SELECT, INSERT ON {ASSESSMENTS} TO {WRITER_ROLE};
GRANT SELECT ON schema_migrations TO {WRITER_ROLE};
"""
"""Reading and recording only: a leaked evaluator credential cannot rewrite what was assessed."""

MIGRATIONS = (
    Migration(1, "impact assessments, kept by a trigger", _TABLE),
    Migration(2, f"what the {WRITER_ROLE} role may do with them", _WRITER),
)
LATEST = MIGRATIONS[-1].version
