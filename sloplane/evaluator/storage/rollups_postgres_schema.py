"""The PostgreSQL rollups' schema: one table of hourly rows, as versioned migrations of its own.

Why a store of its own in `schema_migrations` ("rollups", beside "decisions" and "controls"): the rollups may
live in the decision log's database (the default, as in SQLite: one database to back up, and reports read both)
or in another, and each store's schema moves on without the others'. All run under the one advisory lock
(`migrate` in `postgres_schema`), so replicas starting at once, with any store first, apply each version once.

Why `slo_rollups`, not SQLite's `rollups`: every PostgreSQL store of a deployment may share one database, and
the name says whose rollups they are. The columns and checks are SQLite's, with times as `timestamptz` (an
operator's SQL can use them as instants), numbers as `double precision` (SQLite's REAL) and the key's text
compared bytewise (`COLLATE "C"`), so that both stores sort rows, ties and the unstaged SLO ('' first) alike.
`stage` is '' for the unstaged SLO, as in SQLite: a key column cannot be NULL.

Unlike the decision log and the controls, rows are rewritten (rolling an hour up again replaces its counts),
so there is no trigger refusing UPDATE. The `sloplane_writer` role gets what the rollup job does and no more:
reading, inserting, and UPDATE of only the columns a rewrite replaces — so even a leaked evaluator credential
cannot change the objective, policy version or time zone an hour was first judged by, nor DELETE or TRUNCATE
rows. The role is created when missing, exactly as the other stores' migrations do, so that whichever store
migrates first the grants are made (roles belong to the cluster: this needs CREATEROLE exactly when theirs do).
"""

from __future__ import annotations

from sloplane.evaluator.storage.postgres_schema import ENSURE_WRITER_ROLE, WRITER_ROLE, Migration

STORE = "rollups"
"""This store's name in `schema_migrations`."""
ROLLUPS = "slo_rollups"

REWRITTEN = (
    '"end"',
    "bad_events",
    "total_events",
    "excluded_bad_events",
    "excluded_total_events",
    "excluded_minutes",
    "source",
    "rolled_at",
)
"""What rolling an hour up again replaces (the upsert's SET list, and the writer's UPDATE grant); the objective,
policy version and time zone keep what the row was first written with."""

_TABLE = f"""
CREATE TABLE {ROLLUPS} (
    slo text COLLATE "C" NOT NULL,
    stage text COLLATE "C" NOT NULL,
    start timestamptz NOT NULL,
    "end" timestamptz NOT NULL CONSTRAINT {ROLLUPS}_end_after_start CHECK ("end" > start),
    bad_events double precision,
    total_events double precision,
    excluded_bad_events double precision NOT NULL,
    excluded_total_events double precision NOT NULL,
    excluded_minutes double precision NOT NULL CONSTRAINT {ROLLUPS}_excluded_minutes_not_negative
        CHECK (excluded_minutes >= 0),
    objective double precision NOT NULL,
    policy_version text NOT NULL,
    time_zone text NOT NULL,
    source text NOT NULL,
    rolled_at timestamptz NOT NULL,
    PRIMARY KEY (slo, stage, start)
);
CREATE INDEX {ROLLUPS}_by_start ON {ROLLUPS} (start);
"""
"""The table and its index on `start` (reports read a period across every SLO), as SQLite's; the checks are
named so that a refused batch's message says which column was wrong, as SQLite's does."""

_WRITER = f"""{ENSURE_WRITER_ROLE}GRANT SELECT, INSERT ON {ROLLUPS} TO {WRITER_ROLE};
GRANT UPDATE ({", ".join(REWRITTEN)}) ON {ROLLUPS} TO {WRITER_ROLE};
GRANT SELECT ON schema_migrations TO {WRITER_ROLE};
"""
"""No DELETE or TRUNCATE, and UPDATE of the rewritten columns only (`INSERT ... ON CONFLICT DO UPDATE` needs
no more): rollups are rewritten, never deleted, and the judgement of the time is never rewritten."""

MIGRATIONS = (
    Migration(1, "hourly rollups", _TABLE),
    Migration(2, f"what the {WRITER_ROLE} role may do with them", _WRITER),
)
LATEST = MIGRATIONS[-1].version
