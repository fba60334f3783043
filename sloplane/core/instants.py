"""The instants sloplane reasons about: written with a year from 1970 to 2999, with a zone.

Every instant a caller can name (`--at`, `?at=`, a gate request's `at`, `since`/`until`, a freeze's
`until`) passes through here before any arithmetic. Python's `datetime` ends at 9999-12-31, and a
budget period, a cron schedule or a look-back window computed from an instant near either end of
that range overflows; metric backends know nothing before 1970. Refusing such instants up front
gives the caller a clear answer instead of an `OverflowError` somewhere deep in period arithmetic.

The range is stated on the year as written (in the instant's own offset), because that is what an
OpenAPI schema can say too (a `pattern` on the text): a published schema and the check it documents
must agree, or every client generated from the schema sends requests the server refuses. An offset
moves an instant by at most a day, far from either overflow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, WithJsonSchema

from sloplane.core.text import excerpt

FIRST_YEAR = 1970
LAST_YEAR = 2999
RANGE_TEXT = f"with a year from {FIRST_YEAR} to {LAST_YEAR}"

YEAR_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-"
"""The same range as a pattern on RFC 3339 text (JSON Schema and OpenAPI)."""


class InstantRangeError(ValueError):
    """An instant outside the range sloplane can reason about; the message says the range."""


def in_range(moment: datetime) -> bool:
    """Whether `moment`, as written, has a year in the supported range."""
    return FIRST_YEAR <= moment.year <= LAST_YEAR


def checked(moment: datetime) -> datetime:
    """`moment` unchanged, or InstantRangeError."""
    if not in_range(moment):
        raise InstantRangeError(
            f"{moment.isoformat()} is not an instant sloplane can measure at: give one {RANGE_TEXT}"
        )
    return moment


def parse_instant_text(text: str) -> datetime:
    """An RFC 3339 instant with a zone, in range; ValueError saying what is wrong with it otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{excerpt(text)}' is not an RFC 3339 time (e.g. 2026-11-26T14:00:00Z)") from None
    if moment.tzinfo is None:
        raise ValueError(f"'{excerpt(text)}' has no time zone: add Z or an offset such as +01:00")
    return checked(moment)


Instant = Annotated[
    AwareDatetime,
    AfterValidator(checked),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": YEAR_PATTERN}),
]
"""An RFC 3339 instant with a zone, in the supported range: for API query parameters and bodies."""
