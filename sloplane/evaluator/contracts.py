"""The storage seams the evaluator's parts depend on (decision log, release controls), so each part can be built
and tested on its own. What the HTTP API needs of the evaluator is `http.contract.GateService`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sloplane.evaluator.model import ChainReport, Decision, Freeze, Incident, ReleaseSpan, Rollup


class DecisionQuery(Protocol):
    """What readers of the log ask it: recorded decisions by filter (the routes, the reports, governance)."""

    def query(
        self,
        *,
        slo: str | None = None,
        stage: str | None = None,
        outcome: str | None = None,
        revision: str | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Recorded decisions (their `to_dict()` form), newest first."""
        ...


class DecisionLog(DecisionQuery, Protocol):
    """Where decisions are kept: append-only, queryable."""

    def append(self, decision: Decision) -> None:
        """Record one decision (never changes or removes an earlier one)."""

    def count(self) -> int:
        """How many decisions are recorded."""
        ...

    def releases(self, service: str, since: datetime) -> list[ReleaseSpan]:
        """Each release of `service` gated live (not replayed) since `since`, first gated first."""
        ...

    def problem(self) -> str | None:
        """Why the log cannot be used now (its last append failed, it cannot be read), or None; never waits long."""
        ...

    def check_writable(self) -> None:
        """Try one small write, to find out whether a failed log has recovered (raises when not)."""
        ...

    def verify(self) -> ChainReport:
        """Walk the whole hash chain (`storage.chain`) in bounded memory; the first broken record, if any.

        `serve` runs it on start, in the background, and shows the result in `/readyz` and `/metrics`.
        """
        ...


class ReleaseControlsView(Protocol):
    """What the decision pipeline reads from the freeze and incident store (`controls.py`)."""

    def active_freezes(self, service: str, at: datetime) -> Sequence[Freeze]:
        """Freezes in force at `at` that cover `service` (its own and global ones)."""
        ...

    def open_major_incidents(self, at: datetime) -> Sequence[Incident]:
        """Major incidents open at `at`."""
        ...


class ReleaseControlsStore(ReleaseControlsView, Protocol):
    """The freeze and incident store as a whole (SQLite `ReleaseControls`, `PostgresReleaseControls`): what
    the HTTP routes, the CLI and the Argo CD reconciler use, so they work with either store."""

    def freeze(
        self,
        service: str | None,
        reason: str,
        created_by: str,
        *,
        until: datetime | None = None,
        at: datetime | None = None,
    ) -> Freeze: ...

    def lift(self, freeze_id: str, lifted_by: str, reason: str, *, at: datetime | None = None) -> Freeze: ...

    def get_freeze(self, freeze_id: str) -> Freeze: ...

    def freezes(
        self, *, at: datetime | None = None, active_only: bool = True, service: str | None = None
    ) -> list[Freeze]: ...

    def open_incident(
        self,
        title: str,
        severity: str,
        opened_by: str,
        *,
        services: Iterable[str] = (),
        key: str | None = None,
        source: str = "manual",
        at: datetime | None = None,
    ) -> Incident: ...

    def record_incident(
        self,
        title: str,
        severity: str,
        opened_by: str,
        *,
        services: Iterable[str] = (),
        key: str | None = None,
        source: str = "manual",
        at: datetime | None = None,
    ) -> tuple[Incident, bool]: ...

    def resolve_incident(self, incident_id: str, resolved_by: str, *, at: datetime | None = None) -> Incident: ...

    def get_incident(self, incident_id: str) -> Incident: ...

    def incidents(self, *, at: datetime | None = None, open_only: bool = True) -> list[Incident]: ...

    def close(self) -> None: ...


class RollupStore(Protocol):
    """Hourly rollups (`storage/rollups.py`, `storage/rollups_postgres.py`): written by `sloplane rollup` and
    `serve`'s periodic job, read by the reports."""

    def write(self, rollups: Sequence[Rollup], rolled_at: datetime) -> None:
        """Write or rewrite the rows in one transaction; a rewritten row keeps its objective, policy version
        and time zone."""

    def read(self, *, since: datetime, until: datetime, slos: Sequence[str] | None = None) -> list[Rollup]:
        """Rows whose hour starts in [since, until), by SLO, stage (unstaged first) and start."""
        ...

    def latest(self) -> dict[tuple[str, str | None], datetime]:
        """The end of each subject's newest row."""
        ...

    def close(self) -> None:
        """Release the file or the pool."""
