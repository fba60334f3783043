"""One way to open the assessments, whichever store `--db` names: a file path (SQLite) or a PostgreSQL URL — what
`storage.open` does for the decision log, the controls and the rollups (`open_assessments` would be one more
function there; it lives here so that this store's files are its own).

A module apart from `assessments.py` because the PostgreSQL store imports that module's rules: opening it from
there would be an import cycle. PostgreSQL's driver is imported only when a URL is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sloplane.evaluator.storage.assessments import AssessmentError, SqliteAssessments
from sloplane.evaluator.storage.postgres_conninfo import is_postgres_url

if TYPE_CHECKING:
    from sloplane.evaluator.storage.assessments_postgres import PostgresAssessments


def open_assessments(
    target: str | Path, *, password_file: str | Path | None = None
) -> SqliteAssessments | PostgresAssessments:
    """`postgresql://...` or `postgres://...`: the assessments in that database (migrated, pooled, shared by every
    replica); anything else: a SQLite file (by default the decision log's). `password_file` is for a URL only."""
    if is_postgres_url(target):
        # why: psycopg is imported only when a URL is opened (SQLite users never load it), as `storage.open` does
        from sloplane.evaluator.storage.assessments_postgres import PostgresAssessments  # noqa: PLC0415

        return PostgresAssessments(str(target), password_file=password_file)
    if password_file is not None:
        raise AssessmentError(f"a database password file was given, but {target} is a file path, not a PostgreSQL URL")
    return SqliteAssessments(target)
