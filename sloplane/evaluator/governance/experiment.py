"""`sloplane experiment`: what the gates and the alerts would have done over an SLO's history had its objective been
another one, beside what they did — replayed, never recorded (issue 18, "objective experiments").

Three answers, each from its own module and each computed by the code that made the real one:
- flipped decisions (`experiment_decisions`): every live gate decision about the SLO in the range, decided again
  by the gate's own pipeline from the measurement its record holds, the burn rates and budget remaining worked
  out under the experiment's objective; pass → fail and fail → pass counted, each flipped one listed;
- days exhausted (`experiment_days`): for each day, whether the compliance period's budget was used up at its
  end, under the objective in force (the rollups') and the experiment's;
- hours each alert tier would have fired (`experiment_alerts`): the on-call report's replay of the generated
  burn-rate alerts on Prometheus, under both objectives; without a Prometheus, "not replayed" and why.

The experiment replaces the SLO's `objective`; a stage declaring its own keeps it (as `Spec.stage_objective`
reads it), so its decisions and alerts cannot change, and the report lists each subject's objectives.

The range: `since` back from `at`, at most `MAX_SPAN` (400 days): a year's review and a quarter's margin is as far
as anyone weighs an objective on, and it bounds the work (the decision log read once, about 14,000 rollup rows, and
about 58 range queries per alert pair and objective on Prometheus per subject).

The JSON (the dict `experiment_report` returns):

    {"kind": "experiment", "at", "since", "span": "90d", "slo", "service", "team",
     "objective": {"declared": 99.9, "experiment": 99.95},
     "subjects": [{"stage", "production", "objective", "experimentObjective"}],
     "decisions": {"replayed", "replaysLeftOut", "notReplayable": {why: count}, "notReproduced": [FLIP],
                   "unchanged", "passToFail", "failToPass", "otherChanges", "flipped": [FLIP]},
     "days": {"timeZone", "stage", "window", "exhausted", "experimentExhausted", "changed": [day], "noData",
              "days": [{"day", "end", "periodStart", "events", "badEvents", "objective", "budgetUsed",
                        "exhausted", "experimentBudgetUsed", "experimentExhausted"}]},
     "alerts": {"replayed": bool, "why" (when not), "notReplayed": {subject: why}, "queries",
                "tiers": [{"subject", "tier", "hours", "experimentHours", "firings", "experimentFirings",
                           "alerts": [{"windows", "factor", "threshold", "experimentThreshold"}]}]},
     "maxSpanDays": 400, "notes": [...]}

    FLIP: {"id", "decidedAt", "stage", "revision", "old" (the recorded outcome), "new" (the replayed one),
           "oldReasons": [code], "reasons": [{"code", "message", "values"}] (the replay's)}

Budget used is a fraction of the budget (1.0: all of it); hours are hours; `objective` values are percents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sloplane.core.durations import format_duration
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.evaluator.governance.experiment_alerts import alert_hours, not_replayed
from sloplane.evaluator.governance.experiment_days import exhausted_days, first_period_start
from sloplane.evaluator.governance.experiment_decisions import ExperimentLog, replay_decisions
from sloplane.evaluator.history.report_kinds import ReportOptionError
from sloplane.evaluator.measuring.backends.base import MetricsBackend
from sloplane.evaluator.model import Rollup
from sloplane.semantics.subjects import Fleet, production_subject, subjects

DEFAULT_SINCE = timedelta(days=90)
MAX_SPAN = timedelta(days=400)
"""The longest range (see the module's docstring for why)."""
NO_PROMETHEUS = "no --prometheus given: the alerts are replayed from Prometheus' raw series"
HOUR = timedelta(hours=1)
RowReader = Callable[[datetime, datetime, list[str]], Sequence[Rollup]]
"""(since, until, SLO names) → their rollup rows whose hour starts in [since, until): `ReportSources.rows`."""


def check_options(fleet: Fleet, slo: str, objective: float, since: timedelta) -> Declaration:
    """The SLO experimented on; `ReportOptionError` naming the option for one that is not declared (or archived),
    an objective outside (0, 100), a range that is not positive or longer than `MAX_SPAN`."""
    if slo not in fleet or fleet[slo].spec.lifecycle is Lifecycle.ARCHIVED:
        known = ", ".join(name for name in sorted(fleet) if fleet[name].spec.lifecycle is not Lifecycle.ARCHIVED)
        raise ReportOptionError("slo", f"no SLO named '{slo}' is declared (declared: {known or 'none'})")
    if not 0 < objective < 100:
        raise ReportOptionError("objective", f"give a percent strictly between 0 and 100, e.g. 99.95, not {objective}")
    if since <= timedelta(0):
        raise ReportOptionError("since", "give a positive duration, e.g. 90d")
    if since > MAX_SPAN:
        raise ReportOptionError(
            "since", f"an experiment covers at most {MAX_SPAN.days} days, not {format_duration(since)}"
        )
    return fleet[slo]


def with_objective(declaration: Declaration, objective: float) -> Declaration:
    """The declaration had its objective been `objective` (stages declaring their own keep theirs)."""
    return declaration.model_copy(update={"spec": declaration.spec.model_copy(update={"objective": objective})})


def experiment_report(
    fleet: Fleet,
    log: ExperimentLog,
    rows: RowReader,
    at: datetime,
    *,
    slo: str,
    objective: float,
    since: timedelta = DEFAULT_SINCE,
    backend: MetricsBackend | None = None,
) -> dict[str, Any]:
    """The experiment (JSON shape in the module's docstring). Raises `ReportOptionError` for options it cannot
    take and `oncall.ReplayError` when Prometheus cannot be read; records nothing."""
    declaration = check_options(fleet, slo, objective, since)
    experiment = with_objective(declaration, objective)
    start = at - since
    notes: set[str] = set()
    decisions = replay_decisions(declaration, experiment, log, (start, at), notes=notes)
    read = rows(first_period_start(declaration, start, at) - HOUR, at, [slo])
    days = exhausted_days(declaration, read, start, at, production_subject(experiment).objective)
    alerts = not_replayed(NO_PROMETHEUS) if backend is None else alert_hours(fleet, experiment, backend, start, at)
    own = [stage.name for stage in declaration.spec.stages if stage.objective is not None]
    if own:
        notes.add(f"stages declaring their own objective keep it: {', '.join(own)}")
    spec = declaration.spec
    return {
        "kind": "experiment",
        "at": at.isoformat(),
        "since": start.isoformat(),
        "span": format_duration(since),
        "slo": slo,
        "service": spec.service,
        "team": spec.owners.team,
        "objective": {"declared": spec.objective, "experiment": objective},
        "subjects": [
            {"stage": old.stage, "production": old.production, "objective": old.objective, "experimentObjective": new}
            for old, new in zip(subjects(declaration), (s.objective for s in subjects(experiment)), strict=True)
        ],
        "decisions": decisions,
        "days": days,
        "alerts": alerts,
        "maxSpanDays": MAX_SPAN.days,
        "notes": sorted(notes),
    }
