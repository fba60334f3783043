"""The hours of a time zone as UTC spans: the rows a rollup writes, so that a zone's days and months are whole rows.

Why local hours rather than UTC hours: a report cuts days and months in the SLO's zone. Where the zone's
offset is a whole number of hours (most of the world, DST included) its hours are UTC's; Asia/Kolkata's
start at half past, Asia/Kathmandu's at a quarter to. A zone whose offset moves by half an hour
(Australia/Lord_Howe) has one 30- or 90-minute row a year: every row runs from one local full hour to the
next, whatever their distance.

Offsets are multiples of 15 minutes in every zone of the tz database since 1972, so the boundaries are found
on the quarter hours of UTC.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo

QUARTER = timedelta(minutes=15)
HOUR = timedelta(hours=1)


def zone(name: str | None) -> tzinfo:
    """The zone a declaration names (already validated when it was loaded), UTC when none."""
    return UTC if name in (None, "UTC") else ZoneInfo(name)


def _floor_quarter(instant: datetime) -> datetime:
    utc = instant.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


def local_hour_starts(zone_info: tzinfo, since: datetime, until: datetime) -> list[datetime]:
    """Every UTC instant in [since, until] at which the zone's wall clock shows a full hour, in order."""
    found = []
    instant = _floor_quarter(since)
    if instant < since:
        instant += QUARTER
    while instant <= until:
        local = instant.astimezone(zone_info)
        if local.minute == 0 and local.second == 0:
            found.append(instant)
        instant += QUARTER
    return found


def local_hours(zone_info: tzinfo, since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """The zone's whole hours inside [since, until], as (start, end) UTC spans in order."""
    return list(_local_hours(zone_info, since, until))


@functools.lru_cache(maxsize=1024)
def _local_hours(zone_info: tzinfo, since: datetime, until: datetime) -> tuple[tuple[datetime, datetime], ...]:
    """Remembered: a report asks it for every SLO's period, and the SLOs of one zone share their periods (a
    quarterly review of 2,000 SLOs asked 10,000 times, for a few dozen distinct answers)."""
    return tuple(pairwise(local_hour_starts(zone_info, since, until)))


def hour_alignment(start: datetime) -> timedelta:
    """Where in the UTC hour a row starts (0, 15, 30 or 45 minutes): rows of one alignment share range queries."""
    utc = start.astimezone(UTC)
    return timedelta(minutes=utc.minute)
