"""Fleet risk as `serve` exports it (`/metrics`: `sloplane_fleet_risk_*`, `sloplane_service_risk_*`), issue 18.

Why cached per evaluation instant: a scrape must not measure the fleet each time it is asked. The evaluator's
"now" is aligned to its evaluation interval (`Evaluator.now`) and its measurements are cached for that interval,
so the risk is worked out once per instant, by one caller at a time, and every scrape in the interval reads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sloplane.evaluator.governance.risk import BANDS, UNKNOWN, risk_report
from sloplane.evaluator.model import Measurement
from sloplane.semantics.subjects import Fleet

BAND_NAMES = (*(name for name, _ in BANDS), UNKNOWN)
"""Every band a service or the fleet can be in, each one series in `/metrics`."""


class FleetRiskNow:
    """`risk_report` at the evaluator's current instant, worked out once per instant."""

    def __init__(
        self, fleet: Fleet, evaluate: Callable[[datetime], Sequence[Measurement]], now: Callable[[], datetime]
    ) -> None:
        self._fleet = fleet
        self._evaluate = evaluate
        self._now = now
        self._lock = threading.Lock()
        self._cached: tuple[datetime, dict[str, Any]] | None = None

    def __call__(self) -> dict[str, Any]:
        """The report at `now()`; the one already worked out when the instant has not moved."""
        with self._lock:
            instant = self._now()
            if self._cached is None or self._cached[0] != instant:
                self._cached = (instant, risk_report(self._fleet, self._evaluate(instant), instant))
            return self._cached[1]
