"""Which windows each SLO's recording rules record, and whether a reader takes a window from them or from raw series.

An SLO records every window of its own alerts (and its time slice), plus every window a composite
built on it needs, transitively. Renderers write those rules; Argo analysis and the evaluator read
a recorded window where one exists. One answer for all of them, memoised per fleet.

`SubjectReads` is the one place that decides, for a subject and a window, "raw series or recorded
rule": the recording rules, Argo analysis and the evaluator's planner all ask it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sloplane.core.budget import alert_windows
from sloplane.declaration.model import BudgetingMethod, Declaration
from sloplane.semantics.indicators import SubjectIndicator, subject_indicator
from sloplane.semantics.subjects import Fleet, FleetLike, Subject


def own_windows(declaration: Declaration) -> set[timedelta]:
    """Windows an SLO records for itself: every alert window, and the timeslice if it budgets by slices."""
    spec = declaration.spec
    windows = set(alert_windows(spec.burn_rate_alerts()))
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


@dataclass(frozen=True)
class SubjectReads:
    """Where a subject's error ratio over each window comes from: its raw series, or its recorded ones."""

    subject: Subject
    indicator: SubjectIndicator
    recorded: tuple[timedelta, ...]
    """The windows its rules record (every alert window when the fleet does not know the SLO)."""

    @property
    def composite(self) -> bool:
        """Composites have no raw series of their own: they are read from what their rules record."""
        return self.indicator.queries is None

    def from_recorded(self, window: timedelta, *, rules_deployed: bool) -> bool:
        """Whether `window` is read from recorded series: always for a composite; for any other SLO
        when its rules are deployed (the evaluator finds out at run time; generated Argo analysis
        cannot know, so it says no) and record that window."""
        return self.composite or (rules_deployed and window in self.recorded)


def subject_reads(declaration: Declaration, subject: Subject, fleet: FleetLike) -> SubjectReads:
    """How `subject` of `declaration` is read (see `SubjectReads`); memoised per `Fleet` (declarations never change)."""

    def compute() -> SubjectReads:
        windows = recorded_windows(fleet).get(declaration.name) if declaration.name in fleet else None
        recorded = windows or alert_windows(declaration.spec.burn_rate_alerts())
        return SubjectReads(subject, subject_indicator(declaration.spec, subject), recorded)

    if isinstance(fleet, Fleet) and fleet.get(declaration.name) is declaration:
        return fleet.memo(f"subject_reads/{subject.key}", compute)
    return compute()
