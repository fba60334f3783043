"""Where a budget period starts, and which stretches of it are excluded from the budget.

Rolling periods end now and reach back their length. Calendar periods start at the beginning of
the current week (Monday), month or quarter in the declared time zone, so a monthly SLO's budget
resets at local midnight on the first. Excluded time — planned maintenance (cron schedule and
duration, in its time zone), one-off windows, emergency changes — is listed per subject and merged
where intervals overlap, so no minute is taken out twice. When a maintenance window opens and
closes is worked out in `sloplane.core.schedules`, which the release gate's freezes and the
Alertmanager renderer use too, so all three agree on when a window is open.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sloplane.core.schedules import merge_spans, occurrences
from sloplane.declaration.model import CalendarUnit, Spec, Window
from sloplane.evaluator.model import Exclusion

# `merge_spans` lives in `sloplane.core.schedules`; it is named here for the callers that import it from this module.
__all__ = ["exclusions", "merge_spans", "merged", "period_start"]


def period_start(window: Window, at: datetime) -> datetime:
    """The start of the budget period that contains `at` (UTC)."""
    if window.rolling is not None:
        return at - window.rolling
    zone = ZoneInfo(window.time_zone or "UTC")
    local = at.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if window.calendar is CalendarUnit.WEEK:
        start = midnight - timedelta(days=midnight.weekday())
    elif window.calendar is CalendarUnit.MONTH:
        start = midnight.replace(day=1)
    else:
        start = midnight.replace(day=1, month=(local.month - 1) // 3 * 3 + 1)
    # re-localise: a DST change between the start and `at` moves the offset
    return start.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC)


def _applies(stages: list[str], stage: str | None) -> bool:
    return not stages or stage is None or stage in stages


def _maintenance(spec: Spec, stage: str | None, start: datetime, end: datetime) -> Iterable[Exclusion]:
    for window in spec.exclusions.maintenance:
        if not _applies(window.stages, stage):
            continue
        for opens, closes in occurrences(window.schedule, window.duration, window.time_zone, start, end):
            yield Exclusion("maintenance", window.name, opens, closes)


def exclusions(spec: Spec, stage: str | None, start: datetime, end: datetime) -> list[Exclusion]:
    """Every excluded interval overlapping [start, end], clipped to it, in time order."""
    found: list[Exclusion] = list(_maintenance(spec, stage, start, end))
    found += [
        Exclusion("window", w.name, w.start, w.end, w.reason)
        for w in spec.exclusions.windows
        if _applies(w.stages, stage)
    ]
    found += [
        Exclusion(
            "emergencyChange",
            change.ticket or "emergency-change",
            change.start,
            change.end,
            f"{change.reason} (approved by {change.approver})",
        )
        for change in spec.exclusions.emergency_changes
    ]
    clipped = [
        Exclusion(e.kind, e.name, max(e.start, start), min(e.end, end), e.reason)
        for e in found
        if e.end > start and e.start < end
    ]
    return sorted(clipped, key=lambda e: (e.start, e.end, e.kind, e.name))


def merged(intervals: Iterable[Exclusion]) -> list[tuple[datetime, datetime]]:
    """Overlapping or touching intervals joined, so each excluded minute counts once."""
    return merge_spans((exclusion.start, exclusion.end) for exclusion in intervals)
