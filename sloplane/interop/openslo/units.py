"""OpenSLO's duration shorthand (`28d`, `1M`), read the way the spec writes it.

Shared by the SLO translation (windows, timeslices) and the alert policies (lookback windows).
"""

from __future__ import annotations

import re

from sloplane.declaration.diagnostics import Loc
from sloplane.interop.translation import ImportProblemError

_SHORTHAND = re.compile(r"^(\d+)([mhdwMQY])$")
_SHORTHAND_DAYS = {"M": 30, "Q": 90, "Y": 365}


def parse_shorthand(text: str, loc: Loc) -> tuple[int, str]:
    """OpenSLO duration-shorthand: '28d' -> (28, 'd')."""
    match = _SHORTHAND.match(text.strip())
    if match is None:
        raise ImportProblemError(loc, f"'{text}' is not an OpenSLO duration (a number and one of m h d w M Q Y)")
    return int(match.group(1)), match.group(2)


def shorthand_to_duration(text: str, loc: Loc) -> str:
    """OpenSLO shorthand as our duration text; months, quarters and years become 30, 90, 365 days."""
    amount, unit = parse_shorthand(text, loc)
    if unit in _SHORTHAND_DAYS:
        return f"{amount * _SHORTHAND_DAYS[unit]}d"
    return f"{amount}{unit}"
