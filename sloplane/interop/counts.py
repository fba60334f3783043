"""Imported queries as event counts: sloplane's ratio SLIs count events, other tools write rates.

Every path that reads a ratio SLI's queries (recorded period events, Argo's `minEvents` guard, the
evaluator's `events`, `explain`) takes them as *numbers of events over `{{window}}`*. OpenSLO
`counter: true` metrics, Sloth's and Pyrra's queries are written as per-second rates, which give
the same ratio but events divided by the window's seconds. `increase(x[w])` is exactly
`rate(x[w]) * w` in Prometheus, so a rate over the window placeholder becomes an increase; any
other rate (an `irate`, a rate over a fixed range) cannot be turned into counts safely, and the
importer says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sloplane.declaration.sli import WINDOW_PLACEHOLDER

_RATE_CALL = re.compile(r"(?<![A-Za-z0-9_:])(i?rate)\s*\(")
_RANGE_AT_END = re.compile(r"\[\s*" + re.escape(WINDOW_PLACEHOLDER) + r"\s*(:[^\]]*)?\]\s*(offset\s+\S+\s*)?$")
_PLAIN_SELECTOR = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^{}]*\})?$|^\{[^{}]+\}$")


@dataclass(frozen=True)
class Counted:
    """A query rewritten to count events, and whether every rate in it could be rewritten."""

    query: str
    exact: bool


def _closing(text: str, start: int) -> int | None:
    """Index of the parenthesis closing the one opened just before `start`, skipping quoted strings."""
    depth, index, quote = 1, start, ""
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def rates_as_counts(query: str) -> Counted:
    """`rate(x[{{window}}])` as `increase(x[{{window}}])`; other rates are kept and make the result inexact."""
    parts: list[str] = []
    position, exact = 0, True
    for match in _RATE_CALL.finditer(query):
        if match.start() < position:
            continue
        close = _closing(query, match.end())
        argument = query[match.end() : close] if close is not None else ""
        if match.group(1) == "rate" and close is not None and _RANGE_AT_END.search(argument):
            parts.append(query[position : match.start()] + "increase(")
            position = match.end()
        else:
            exact = False
    parts.append(query[position:])
    return Counted("".join(parts), exact)


def counter_counts(selector: str) -> str:
    """Events of a counter over the window: `sum(increase(selector[{{window}}]))` (a subquery if not a selector)."""
    if _PLAIN_SELECTOR.match(selector):
        return f"sum(increase({selector}[{WINDOW_PLACEHOLDER}]))"
    return f"sum(increase(({selector})[{WINDOW_PLACEHOLDER}:]))"


def is_plain_selector(query: str) -> bool:
    """A bare metric name with optional matchers, which can take a range directly."""
    return _PLAIN_SELECTOR.match(query) is not None
