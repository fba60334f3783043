"""One way to open the support feedback, whichever store `--db` names: a file path (SQLite) or a PostgreSQL URL.

Apart from `storage/open.py` (which opens the decision log, the controls and the rollups alike) only because this
store was added by another hand; it behaves as `open_release_controls` does. PostgreSQL's driver is imported only
when a URL is opened, so SQLite users (the CLI, `make demo`) never pay for loading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sloplane.evaluator.storage.feedback import FeedbackError, SqliteFeedback
from sloplane.evaluator.storage.postgres_conninfo import is_postgres_url

if TYPE_CHECKING:
    from sloplane.evaluator.storage.feedback_postgres import PostgresFeedback


def open_feedback(target: str | Path, *, password_file: str | Path | None = None) -> SqliteFeedback | PostgresFeedback:
    """`postgresql://...` or `postgres://...`: the PostgreSQL store (migrated, pooled, shared by every replica);
    anything else a SQLite file (by default the decision log's). `password_file` as for `open_decision_log`."""
    if is_postgres_url(target):
        from sloplane.evaluator.storage.feedback_postgres import PostgresFeedback  # noqa: PLC0415 - psycopg only for a URL

        return PostgresFeedback(str(target), password_file=password_file)
    if password_file is not None:
        raise FeedbackError(f"a database password file was given, but {target} is a file path, not a PostgreSQL URL")
    return SqliteFeedback(target)
