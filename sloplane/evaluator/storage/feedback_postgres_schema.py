"""The PostgreSQL support feedback's schema: one table, as versioned migrations of its own.

Why a store of its own in `schema_migrations` ("feedback"): the feedback may live in the decision log's database
(the default: one database to back up) or in another, and either store's schema moves on without the other's;
`migrate` runs every store's migrations under one advisory lock, so replicas starting at once apply each once.

Why `support_feedback`, not SQLite's `feedback`: every PostgreSQL store of a deployment may share one database,
and the name says whose feedback it is. The columns are SQLite's, with times as `timestamptz`; the
classification is kept as the JSON text the classifier's dict was written as, so both stores give back the same
document (jsonb would reorder its keys and refuse what orjson writes as null).

Nothing is ever deleted: triggers refuse DELETE and TRUNCATE, and any UPDATE but a new classification (verdict,
classification, classified_at), with SQLite's messages. The `sloplane_writer` role may read and insert, and
update only those three columns.
"""

from __future__ import annotations

from sloplane.evaluator.storage.postgres_schema import ENSURE_WRITER_ROLE, WRITER_ROLE, Migration

STORE = "feedback"
"""This store's name in `schema_migrations`."""
FEEDBACK = "support_feedback"

_TABLE = f"""
CREATE TABLE {FEEDBACK} (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    service text COLLATE "C" NOT NULL CHECK (length(btrim(service)) > 0),
    start timestamptz NOT NULL,
    "end" timestamptz NOT NULL CHECK ("end" > start),
    impact text NOT NULL CHECK (length(btrim(impact)) > 0),
    ticket text NOT NULL CHECK (length(btrim(ticket)) > 0),
    reported_by text NOT NULL,
    received_at timestamptz NOT NULL,
    verdict text COLLATE "C" NOT NULL CHECK (verdict IN ('seen', 'missed', 'pending', 'excluded')),
    classification text NOT NULL,
    classified_at timestamptz NOT NULL
);
CREATE INDEX {FEEDBACK}_by_start ON {FEEDBACK} (start);

CREATE FUNCTION sloplane_feedback_reclassify_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND (NEW.seq, NEW.id, NEW.service, NEW.start, NEW."end", NEW.impact, NEW.ticket, NEW.reported_by,
             NEW.received_at)
            IS NOT DISTINCT FROM (OLD.seq, OLD.id, OLD.service, OLD.start, OLD."end", OLD.impact, OLD.ticket,
                                  OLD.reported_by, OLD.received_at)
    THEN
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'a report can only be classified again: what the customer reported cannot change'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION 'support feedback is kept: a report cannot be deleted'
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER {FEEDBACK}_reclassify_only BEFORE UPDATE OR DELETE ON {FEEDBACK}
    FOR EACH ROW EXECUTE FUNCTION sloplane_feedback_reclassify_only();
CREATE TRIGGER {FEEDBACK}_no_truncate BEFORE TRUNCATE ON {FEEDBACK}
    FOR EACH STATEMENT EXECUTE FUNCTION sloplane_feedback_reclassify_only();
"""

_WRITER = f"""{ENSURE_WRITER_ROLE}GRANT SELECT, INSERT ON {FEEDBACK} TO {WRITER_ROLE};
GRANT UPDATE (verdict, classification, classified_at) ON {FEEDBACK} TO {WRITER_ROLE};
GRANT SELECT ON schema_migrations TO {WRITER_ROLE};
"""

MIGRATIONS = (
    Migration(1, "support feedback, kept by triggers", _TABLE),
    Migration(2, f"what the {WRITER_ROLE} role may do with it", _WRITER),
)
LATEST = MIGRATIONS[-1].version
