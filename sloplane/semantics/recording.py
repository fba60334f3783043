"""Which windows each SLO's recording rules record: what the rules write and what gates and the evaluator read.

An SLO records every window of its own alerts (and its time slice), plus every window a composite
built on it needs, transitively. Renderers write those rules; Argo analysis and the evaluator read
a recorded window where one exists. One answer for all of them, memoised per fleet.
"""

from __future__ import annotations

from datetime import timedelta

from sloplane.core.budget import alert_windows
from sloplane.declaration.model import BudgetingMethod, Declaration
from sloplane.semantics.subjects import Fleet, FleetLike


def own_windows(declaration: Declaration) -> set[timedelta]:
    """Windows an SLO records for itself: every alert window, and the timeslice if it budgets by slices."""
    spec = declaration.spec
    windows = set(alert_windows(spec.window.period))
    if spec.budgeting_method is BudgetingMethod.TIMESLICES and spec.timeslice is not None:
        windows.add(spec.timeslice.window)
    return windows


def recorded_windows(fleet: FleetLike) -> dict[str, tuple[timedelta, ...]]:
    """Windows each SLO records: its own plus those of every composite built on it (transitively)."""
    if isinstance(fleet, Fleet):
        return fleet.memo("recorded_windows", lambda: _recorded_windows(fleet))
    return _recorded_windows(fleet)


def _recorded_windows(fleet: FleetLike) -> dict[str, tuple[timedelta, ...]]:
    needed = {name: own_windows(declaration) for name, declaration in fleet.items()}
    changed = True
    while changed:
        changed = False
        for name, declaration in fleet.items():
            composite = declaration.spec.sli.composite
            if composite is None:
                continue
            for component in composite.components:
                if component.slo in needed and not needed[name] <= needed[component.slo]:
                    needed[component.slo] |= needed[name]
                    changed = True
    return {name: tuple(sorted(windows)) for name, windows in needed.items()}
