"""One way to open each store (the decision log, the release controls, the rollups, the impact assessments, the
support feedback), whichever `--db` names: a file path (SQLite) or a PostgreSQL URL.

Why here and not in the callers: `serve`, the CLI's replays and `decisions` all take the same `--db`, and
must agree on what it means. PostgreSQL's driver is imported only when a URL is opened, so SQLite users
(the CLI, `make demo`) never pay for loading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sloplane.evaluator.storage.assessments import AssessmentError, SqliteAssessments
from sloplane.evaluator.storage.controls import ControlsError, ReleaseControls
from sloplane.evaluator.storage.decisions import DecisionLogError, SqliteDecisionLog
from sloplane.evaluator.storage.feedback import FeedbackError, SqliteFeedback
from sloplane.evaluator.storage.postgres_conninfo import is_postgres_url
from sloplane.evaluator.storage.rollups import RollupError, SqliteRollups

if TYPE_CHECKING:
    from sloplane.evaluator.storage.assessments_postgres import PostgresAssessments
    from sloplane.evaluator.storage.feedback_postgres import PostgresFeedback
    from sloplane.evaluator.storage.postgres import PostgresDecisionLog
    from sloplane.evaluator.storage.postgres_controls import PostgresReleaseControls
    from sloplane.evaluator.storage.rollups_postgres import PostgresRollups


def open_decision_log(
    target: str | Path, *, chain_key: bytes | None = None, password_file: str | Path | None = None
) -> SqliteDecisionLog | PostgresDecisionLog:
    """`postgresql://...` or `postgres://...`: the PostgreSQL log (migrated, pooled); anything else: a SQLite file.

    `chain_key` (None: `SLOPLANE_CHAIN_KEY`, or no key) goes to either store. `password_file` is for a
    PostgreSQL URL; given with a file path it is refused rather than silently ignored.
    """
    if is_postgres_url(target):
        from sloplane.evaluator.storage.postgres import PostgresDecisionLog  # noqa: PLC0415 - psycopg only for a URL

        return PostgresDecisionLog(str(target), chain_key=chain_key, password_file=password_file)
    if password_file is not None:
        raise DecisionLogError(f"a database password file was given, but {target} is a file path, not a PostgreSQL URL")
    return SqliteDecisionLog(target, chain_key=chain_key)


def open_release_controls(
    target: str | Path, *, password_file: str | Path | None = None
) -> ReleaseControls | PostgresReleaseControls:
    """Freezes and incidents: `postgresql://...` or `postgres://...` in that database (migrated, pooled, shared by
    every replica), anything else in a SQLite file. `password_file` as for `open_decision_log`."""
    if is_postgres_url(target):
        from sloplane.evaluator.storage.postgres_controls import (  # noqa: PLC0415 - psycopg only for a URL
            PostgresReleaseControls,
        )

        return PostgresReleaseControls(str(target), password_file=password_file)
    if password_file is not None:
        raise ControlsError(f"a database password file was given, but {target} is a file path, not a PostgreSQL URL")
    return ReleaseControls(target)


def open_rollups(target: str | Path, *, password_file: str | Path | None = None) -> SqliteRollups | PostgresRollups:
    """Hourly rollups: `postgresql://...` in that database (migrated, pooled), anything else in a SQLite file
    (by default the decision log's). `password_file` as for `open_decision_log`."""
    if is_postgres_url(target):
        from sloplane.evaluator.storage.rollups_postgres import PostgresRollups  # noqa: PLC0415 - psycopg only for a URL

        return PostgresRollups(str(target), password_file=password_file)
    if password_file is not None:
        raise RollupError(f"a database password file was given, but {target} is a file path, not a PostgreSQL URL")
    return SqliteRollups(target)


def open_assessments(
    target: str | Path, *, password_file: str | Path | None = None
) -> SqliteAssessments | PostgresAssessments:
    """Impact assessments (`sloplane assess --record`, `POST /v1/assessments`, read by the gate's
    `requireAssessment`): `postgresql://...` in that database, anything else in a SQLite file (by default the
    decision log's). `password_file` as for `open_decision_log`."""
    if is_postgres_url(target):
        from sloplane.evaluator.storage.assessments_postgres import (  # noqa: PLC0415 - psycopg only for a URL
            PostgresAssessments,
        )

        return PostgresAssessments(str(target), password_file=password_file)
    if password_file is not None:
        raise AssessmentError(f"a database password file was given, but {target} is a file path, not a PostgreSQL URL")
    return SqliteAssessments(target)


def open_feedback(target: str | Path, *, password_file: str | Path | None = None) -> SqliteFeedback | PostgresFeedback:
    """Support feedback (`POST /v1/feedback`, `sloplane feedback`): `postgresql://...` in that database, anything
    else in a SQLite file (by default the decision log's). `password_file` as for `open_decision_log`."""
    if is_postgres_url(target):
        from sloplane.evaluator.storage.feedback_postgres import PostgresFeedback  # noqa: PLC0415 - psycopg only for a URL

        return PostgresFeedback(str(target), password_file=password_file)
    if password_file is not None:
        raise FeedbackError(f"a database password file was given, but {target} is a file path, not a PostgreSQL URL")
    return SqliteFeedback(target)
