"""The PostgreSQL outbox's schema: the SQLite outbox's five tables, plus who is sending a delivery and until when.

Why a store of its own in `schema_migrations` ("outbox", next to "decisions" and "controls"): the outbox may
share the decision log's database or live in another, and each store's schema moves on by itself. Every
store migrates under the same advisory lock (`postgres_schema.migrate`), so replicas starting at once apply
each version once, whichever store comes first.

Why `outbox_*` names, not SQLite's `incidents`, `deliveries`...: every PostgreSQL store of a deployment may
share one database, and the release controls have incidents of their own (`release_incidents`).

The columns are SQLite's, with the same meaning: times are the notifier's clock as seconds since the epoch
(`double precision`, so a time comes back exactly as it was given — the notifier's arithmetic and its tests'
clocks stay as they are). What SQLite has no need for, because one replica dispatches by construction:

- `claimed_by`, `lease_until` on `outbox_deliveries`: the dispatcher sending a pending delivery and until
  when that claim holds, on the *database's* clock (`clock_timestamp()`), the one clock every replica shares.
  A claim exists only on a pending delivery; reaching `delivered` or `dead` ends it (the CHECKs).
- `claims`: how many times the delivery was claimed. More than one means a dispatcher died (or lost its
  lease) while holding it, which is exactly when a receiver may have been sent it twice: worth a look.

Unlike the decision log and the controls, nothing here is kept for good: accepted deliveries and past
grouping state are pruned. So `sloplane_writer` gets SELECT, INSERT, UPDATE and DELETE on these tables (it is
created when missing, as the other stores' migrations do, so the grants exist whichever store migrated first).
"""

from __future__ import annotations

from sloplane.evaluator.storage.postgres_schema import ENSURE_WRITER_ROLE, WRITER_ROLE, Migration

STORE = "outbox"
"""This store's name in `schema_migrations`."""
INCIDENTS = "outbox_incidents"
SENT_KEYS = "outbox_sent_keys"
WAR_ROOMS = "outbox_war_rooms"
DELIVERIES = "outbox_deliveries"
COUNTERS = "outbox_counters"
TABLES = (INCIDENTS, SENT_KEYS, WAR_ROOMS, DELIVERIES, COUNTERS)

_TABLES = f"""
CREATE TABLE {INCIDENTS} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key text COLLATE "C" NOT NULL,
    grp text COLLATE "C",
    receiver text COLLATE "C" NOT NULL,
    service text COLLATE "C" NOT NULL,
    data text NOT NULL,
    received_at double precision NOT NULL,
    state text COLLATE "C" NOT NULL CHECK (state IN ('held', 'released'))
);
CREATE INDEX {INCIDENTS}_by_state ON {INCIDENTS} (state, received_at);
CREATE INDEX {INCIDENTS}_by_group ON {INCIDENTS} (grp, received_at);

CREATE TABLE {SENT_KEYS} (dedup_key text COLLATE "C" PRIMARY KEY, first_at double precision NOT NULL);

CREATE TABLE {WAR_ROOMS} (
    grp text COLLATE "C" PRIMARY KEY,
    opened_at double precision NOT NULL,
    members text NOT NULL
);

CREATE TABLE {DELIVERIES} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    receiver text COLLATE "C" NOT NULL,
    channel text COLLATE "C" NOT NULL,
    dedup_key text COLLATE "C" NOT NULL,
    notice text NOT NULL,
    state text COLLATE "C" NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_at double precision NOT NULL,
    last_error text,
    created_at double precision NOT NULL,
    delivered_at double precision,
    claimed_by text COLLATE "C",
    lease_until timestamptz,
    claims integer NOT NULL DEFAULT 0,
    CHECK ((claimed_by IS NULL) = (lease_until IS NULL)),
    CHECK (claimed_by IS NULL OR state = 'pending')
);
CREATE INDEX {DELIVERIES}_by_state ON {DELIVERIES} (state, next_at);
CREATE INDEX {DELIVERIES}_by_claim ON {DELIVERIES} (claimed_by) WHERE claimed_by IS NOT NULL;

CREATE TABLE {COUNTERS} (name text COLLATE "C" PRIMARY KEY, value bigint NOT NULL);
"""
"""SQLite's outbox tables (`outbox._SCHEMA`), prefixed, with the claim columns (see the module's docstring)."""

_WRITER = f"""{ENSURE_WRITER_ROLE}GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(TABLES)} TO {WRITER_ROLE};
GRANT SELECT ON schema_migrations TO {WRITER_ROLE};
"""
"""The outbox is working state, pruned as it goes: the evaluator's role needs every row privilege on it (and
none on the decision log's or the controls' tables beyond what their own migrations grant)."""

MIGRATIONS = (
    Migration(1, "held incidents, sent keys, war rooms, deliveries with claims, counters", _TABLES),
    Migration(2, f"what the {WRITER_ROLE} role may do with them", _WRITER),
)
LATEST = MIGRATIONS[-1].version
