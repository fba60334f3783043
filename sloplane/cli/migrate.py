"""`sloplane migrate --db URL`: bring the PostgreSQL stores' schemas up to date, then exit.

Why a command: every store migrates itself when it opens (`storage.postgres_schema`), which needs the schema
owner's rights. For least privilege the pods log in as a role holding only `sloplane_writer`, which cannot
migrate but starts normally once every migration is recorded; this command is how the owner records them
first (from a CI job or a pre-deploy Job), without starting a server. It opens the six stores in turn
(decision log, release controls, notification outbox, rollups, change assessments, support feedback), each under
the one advisory lock, closes them, and prints one line per store: its version now and the one it had.

"Was" is read on a connection of its own just before the stores open (`applied_versions`, no lock): a
replica migrating at the same moment can make it stale, never wrong about the version the store ends at.

Exit codes as elsewhere in the CLI: 0 migrated (or already up to date); 1 a store refused (unreachable,
authentication, a schema newer than this sloplane's, a migration PostgreSQL refused), one line naming the
database without its password; 2 a usage error (a SQLite path: a file is migrated when it is opened).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol

import typer

from sloplane.cli.common import DEFAULT_DB, DEFAULT_DB_SHOWN, Consoles, RefusedError
from sloplane.evaluator.storage.postgres_conninfo import ConninfoError, is_postgres_url, target

EXIT_REFUSED = 1
EXIT_USAGE = 2

MIGRATE_HELP = (
    "Run the PostgreSQL stores' migrations (decision log, release controls, outbox, rollups, assessments, "
    "feedback), then exit. Run it "
    "with the owner's URL before a new version rolls out (a CI job, a pre-deploy Job), so that the evaluator's "
    "pods can log in as a role holding only sloplane_writer. Exit codes: 0 up to date, 1 the database refused "
    "(one line, without the password), 2 a usage error."
)

Db = Annotated[
    str,
    typer.Option(
        "--db",
        help="The PostgreSQL database, as its owner: a postgresql:// URL ($SLOPLANE_DB).",
        show_default=DEFAULT_DB_SHOWN,
    ),
]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="A file holding the database password alone (e.g. a mounted Secret), instead of one in the URL.",
        show_default=False,
    ),
]


class _Closable(Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True)
class _Store:
    """One PostgreSQL store: how the output names it, its name in `schema_migrations`, its newest version."""

    label: str
    name: str
    latest: int
    open: Callable[[], _Closable]


def _line(store: _Store, was: int) -> str:
    if was == store.latest:
        return f"{store.label}: already at schema version {store.latest}"
    return f"{store.label}: schema version {store.latest} (was {was})"


def _versions_before(db: str, password_file: Path | None) -> dict[str, int]:
    """Each store's recorded version, on one connection of its own; a refusal names the database, never the password."""
    from psycopg import Error as DriverError  # why: psycopg is loaded only by the commands that reach PostgreSQL
    from psycopg import connect  # why: as above
    from psycopg.conninfo import make_conninfo  # why: as above

    from sloplane.evaluator.storage.postgres_schema import applied_versions  # why: it imports psycopg

    try:
        where = target(db, password_file)
    except ConninfoError as error:
        raise RefusedError(str(error)) from None
    try:
        with connect(make_conninfo(where.conninfo, **where.parameters), autocommit=True) as connection:
            return applied_versions(connection)
    except DriverError as exc:
        reason = where.secrets.scrub(str(exc)) or type(exc).__name__
        raise RefusedError(f"cannot connect to {where.where}: {reason}") from None


def _stores(db: str, password_file: Path | None) -> tuple[_Store, ...]:
    """The six stores, in turn; each opened with one connection (it is closed at once)."""
    # why (this block): the PostgreSQL stores import psycopg, loaded only by the commands that reach PostgreSQL
    from sloplane.evaluator.notify import outbox_postgres_schema
    from sloplane.evaluator.notify.outbox_postgres import LEASE_SECONDS, PostgresOutbox
    from sloplane.evaluator.storage import (
        assessments_postgres_schema,
        feedback_postgres_schema,
        postgres_controls_schema,
        postgres_schema,
    )
    from sloplane.evaluator.storage.assessments_postgres import PostgresAssessments
    from sloplane.evaluator.storage.feedback_postgres import PostgresFeedback
    from sloplane.evaluator.storage.postgres import PostgresDecisionLog
    from sloplane.evaluator.storage.postgres_controls import PostgresReleaseControls
    from sloplane.evaluator.storage.rollups_postgres import PostgresRollups
    from sloplane.evaluator.storage.rollups_postgres_schema import LATEST as ROLLUPS_LATEST
    from sloplane.evaluator.storage.rollups_postgres_schema import STORE as ROLLUPS

    return (
        _Store(
            "decision log",
            postgres_schema.STORE,
            postgres_schema.LATEST,
            lambda: PostgresDecisionLog(db, password_file=password_file, pool_size=1),
        ),
        _Store(
            "release controls",
            postgres_controls_schema.STORE,
            postgres_controls_schema.LATEST,
            lambda: PostgresReleaseControls(db, password_file=password_file, pool_size=1),
        ),
        _Store(
            "notification outbox",
            outbox_postgres_schema.STORE,
            outbox_postgres_schema.LATEST,
            # an explicit lease: this outbox never claims, and a malformed $SLOPLANE_OUTBOX_LEASE must not stop it
            lambda: PostgresOutbox(db, password_file=password_file, lease=LEASE_SECONDS, pool_size=1),
        ),
        _Store(
            "rollups", ROLLUPS, ROLLUPS_LATEST, lambda: PostgresRollups(db, password_file=password_file, pool_size=1)
        ),
        _Store(
            "change assessments",
            assessments_postgres_schema.STORE,
            assessments_postgres_schema.LATEST,
            lambda: PostgresAssessments(db, password_file=password_file, pool_size=1),
        ),
        _Store(
            "support feedback",
            feedback_postgres_schema.STORE,
            feedback_postgres_schema.LATEST,
            lambda: PostgresFeedback(db, password_file=password_file, pool_size=1),
        ),
    )


def _migrate(db: str, password_file: Path | None) -> list[str]:
    """Open (= migrate) and close each store; a line per store, or `RefusedError` with the store's own message."""
    from sloplane.evaluator.notify.outbox import OutboxError  # why: the outbox package is the server's, not the CLI's
    from sloplane.evaluator.storage.assessments import AssessmentError  # why: as above
    from sloplane.evaluator.storage.controls import ControlsError  # why: loaded with the stores it reports on
    from sloplane.evaluator.storage.decisions import DecisionLogError  # why: as above
    from sloplane.evaluator.storage.feedback import FeedbackError  # why: as above
    from sloplane.evaluator.storage.rollups import RollupError  # why: as above

    before = _versions_before(db, password_file)
    lines = []
    for store in _stores(db, password_file):
        try:
            store.open().close()
        except (DecisionLogError, ControlsError, OutboxError, RollupError, AssessmentError, FeedbackError) as error:
            raise RefusedError(str(error)) from None
        lines.append(_line(store, before.get(store.name, 0)))
    return lines


def register(app: typer.Typer, console: Consoles) -> None:
    """Add `migrate` to the `sloplane` app."""

    @app.command(help=MIGRATE_HELP)
    def migrate(db: Db = DEFAULT_DB, password_file: PasswordFile = None) -> None:
        if not is_postgres_url(db):
            console.err.print(
                # the path is not repeated: a mistyped URL (`postgresq://user:password@...`) would print its password
                "sloplane migrate: migrate is for PostgreSQL; a SQLite file is migrated when it is opened",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_USAGE)
        try:
            lines = _migrate(db, password_file)
        except RefusedError as error:
            console.err.print(f"sloplane migrate: {error}", markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_REFUSED) from None
        for line in lines:
            console.out.print(line, markup=False)
