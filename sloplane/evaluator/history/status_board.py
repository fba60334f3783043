"""The status page `serve` answers itself (`/status`, `/status.json`): the same page `sloplane status` writes,
built from the evaluator's measurements and the rollup store, cached for the evaluation interval.

Two pages are kept:
- the full page, for `read` tokens (a token limited to some services sees only their components, see
  `status.narrowed`);
- the public page (`serve --public-status`, no token): only SLOs whose declaration says `statusPage.public`,
  and open incidents named "Service disruption" with the public components they touch, never their internal
  titles — an incident's title is written for responders (a war room names a revision and the services it broke),
  not for customers.

Why cached (`CACHE_SECONDS`, as the catalog): a status page is polled by everyone at once during an outage, the
very moment the gates need the evaluator's time; nothing on it changes faster than the measurements under it.
The 90 days of bars are read from the rollups a service at a time (`status_page`'s `read`), as the CLI does.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sloplane.declaration.model import Declaration
from sloplane.evaluator.contracts import ReleaseControlsStore, RollupStore
from sloplane.evaluator.history.catalog import CACHE_SECONDS
from sloplane.evaluator.history.status import DAYS, narrowed, status_page
from sloplane.evaluator.model import Incident, Rollup
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

logger = logging.getLogger(__name__)

RowReader = Callable[[datetime, datetime, list[str]], Sequence[Rollup]]
"""(since, until, SLO names) → their rollup rows: the store's `read`."""

PUBLIC_INCIDENT_NAME = "Service disruption"


class StoreRows:
    """A `RowReader` over a rollup store opened on first use, and again after a failure: a replica starts, and
    serves gates, while its database is unreachable; its status page shows bars once the store answers."""

    def __init__(self, opener: Callable[[], RollupStore]) -> None:
        self._opener = opener
        self._store: RollupStore | None = None
        self._lock = threading.Lock()

    def __call__(self, since: datetime, until: datetime, names: list[str]) -> Sequence[Rollup]:
        with self._lock:
            if self._store is None:
                self._store = self._opener()
            store = self._store
        return store.read(since=since, until=until, slos=names)

    def close(self) -> None:
        """Close the store, if it was opened."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()


def _in_plain_words(page: dict[str, Any]) -> dict[str, Any]:
    """The public page's components with `PUBLIC_WHY` in place of each SLO's `why` and the description made of
    them."""
    components = []
    for component in page["components"]:
        slos = [{**slo, "why": PUBLIC_WHY[slo["state"]]} for slo in component["sloplane"]["slos"]]
        description = "; ".join(f"{slo['slo']}: {slo['why']}" for slo in slos)
        components.append(
            {**component, "description": description, "sloplane": {**component["sloplane"], "slos": slos}}
        )
    return {**page, "components": components}


def is_public(declaration: Declaration) -> bool:
    """Whether the SLO's owners put it on the public page."""
    return declaration.spec.status_page.public


PUBLIC_WHY = {
    "operational": "Operating normally",
    "under_maintenance": "Under maintenance",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
}
"""What the public page says of an SLO in each state, instead of the `why` read tokens see: that names the backend
that did not answer (its URL), an exclusion's reason, an emergency change's approver."""

Viewer = frozenset[str] | None
"""The SLOs a page shows: every one (None), or a limited token's."""


class StatusBoard:
    """The status page (every SLO), the public one, and the page of each limited token's SLOs, each built at most
    once per `CACHE_SECONDS`, one build at a time per page (a burst of visitors during an outage waits for the
    build under way rather than starting its own)."""

    def __init__(
        self,
        evaluator: Evaluator,
        controls: ReleaseControlsStore | None,
        rows: RowReader | None,
        *,
        name: str = "sloplane",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._evaluator = evaluator
        self._controls = controls
        self._rows = rows
        self._name = name
        self._clock = clock
        self._cached: dict[tuple[bool, Viewer], tuple[float, dict[str, Any]]] = {}
        self._building: dict[tuple[bool, Viewer], threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def fleet(self) -> Fleet:
        """The SLOs the pages are about."""
        return self._evaluator.fleet

    def page(self, *, public: bool, slos: Viewer = None) -> dict[str, Any]:
        """The page as `status.json` holds it (Statuspage's summary shape): the public one, or the one of `slos`
        (a limited token's; None: every SLO)."""
        key = (public, None if public else slos)
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            now = self._clock()
            with self._lock:
                found = self._cached.get(key)
            if found is not None and now - found[0] < CACHE_SECONDS:
                return found[1]
            page = self._build(public, key[1])
            with self._lock:
                self._cached[key] = (now, page)
            return page

    def _build(self, public: bool, slos: Viewer) -> dict[str, Any]:
        fleet = self._evaluator.fleet
        at = self._evaluator.now()  # the interval-aligned instant gates, `/v1/slos` and the catalog measure at

        def include(declaration: Declaration) -> bool:
            if public:
                return is_public(declaration)
            return slos is None or declaration.name in slos

        shown = [name for name in fleet if include(fleet[name])]
        measurements = self._evaluator.evaluate(at, shown) if shown else []
        incidents = self._incidents(public)
        page = status_page(
            fleet,
            measurements,
            [],
            at,
            name=self._name,
            incidents=incidents,
            read=self._reader(at),
            include=include,
        )
        if not public and slos is None:
            return page
        # a narrower page names no service it does not show, not even in an incident covering several
        page = narrowed(page, lambda _service: True)
        return _in_plain_words(page) if public else page

    def _reader(self, at: datetime) -> Callable[[list[str]], Sequence[Rollup]]:
        since = at - timedelta(days=DAYS)

        def read(names: list[str]) -> Sequence[Rollup]:
            if self._rows is None:
                return []
            try:
                return self._rows(since, at, names)
            except RollupError as error:  # bars without data, not a failed page: the state is still known
                logger.warning("status page: cannot read rollups: %s", error)
                return []

        return read

    def _incidents(self, public: bool) -> list[Incident]:
        if self._controls is None:
            return []
        incidents = self._controls.incidents(at=self._evaluator.clock())  # open ones, as `sloplane status` shows
        if not public:
            return incidents
        return [dataclasses.replace(incident, title=PUBLIC_INCIDENT_NAME) for incident in incidents]
