"""PromQL text: matchers, window templates, and the grouped reads many SLIs share.

Everything that prints PromQL uses these, so that quoting, sorting of labels and the `{{window}}`
placeholder are handled once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sloplane.core.durations import format_duration
from sloplane.declaration.sli import SELECTOR_PLACEHOLDER, Backend


@dataclass(frozen=True)
class WindowedQueries:
    """Templates over `{{window}}`: bad events, all events (both as counts), and the error ratio.

    `errors` and `total` are None where the SLI has no event counts (raw and threshold SLIs).
    Counts rather than rates, so that the evaluator's minimum-events policy and dashboards read
    events, and a period total can be added up from short windows.
    """

    error_ratio: str
    errors: str | None = None
    total: str | None = None

    def at(self, window: timedelta, end: datetime | None = None) -> WindowedQueries:
        """The same queries over `window`; with `end`, anchored there (`[1h] @ 1700000000`).

        Anchoring lets one query read a past interval (an excluded maintenance window) while every
        other query of the same evaluation reads the present.
        """
        text = format_duration(window)
        anchor = "" if end is None else f" @ {end.timestamp():.3f}"

        def fill(query: str | None) -> str | None:
            if query is None:
                return None
            return _RANGE.sub(lambda match: f"[{text}{match.group(1) or ''}]{anchor}", query)

        error_ratio = fill(self.error_ratio)
        assert error_ratio is not None
        return WindowedQueries(error_ratio, fill(self.errors), fill(self.total))

    def single_series(self) -> tuple[str | None, str | None, str]:
        """(bad events, all events, error ratio), each one series, as recording rules and the evaluator read them.

        Bad events default to 0 (a service that never failed has no error series at all); the ratio
        drops NaN (no traffic) rather than carrying it.
        """
        if self.errors is None or self.total is None:
            return None, None, f"avg(({self.error_ratio}) >= 0)"
        bad, total = f"({aggregated(self.errors)} or vector(0))", aggregated(self.total)
        return bad, total, f"({bad} / {total}) >= 0"


_RANGE = re.compile(r"\[\{\{window\}\}(:[^\]]*)?\]")
"""A range or subquery over the window placeholder: `[{{window}}]`, `[{{window}}:]`, `[{{window}}:1m]`."""


def aggregated(query: str) -> str:
    """`sum(...)` around a query unless it already is one aggregate (a recorded series must be single)."""
    if query.startswith("sum(") and query.endswith(")") and _closes_at_end(query, 3):
        return query
    return f"sum({query})"


def _closes_at_end(text: str, opening: int) -> bool:
    """Whether the parenthesis at `opening` is closed by the last character (not earlier)."""
    depth = 0
    position = opening
    while True:
        next_open = text.find("(", position + 1)
        next_close = text.find(")", position + 1)
        if next_close == -1:
            return False
        if next_open != -1 and next_open < next_close:
            depth += 1
            position = next_open
            continue
        if depth == 0:
            return next_close == len(text) - 1
        depth -= 1
        position = next_close


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def regex_literal(value: str) -> str:
    """`value` as an RE2 regex matching exactly it: the metacharacters Go's `regexp.QuoteMeta` escapes, no more.

    Not Python's `re.escape`: it also escapes `-`, `#`, `&`, `~` and spaces, which RE2 reads the same
    either way, but which Prometheus 2.42's matcher then takes for a pattern rather than a literal. A
    cold gate reading `job=~"svc\\-0005"` cost Prometheus 13.3 ms of CPU where `job=~"svc-0005"` cost
    3.7 ms (nineteen selectors, 1,000 jobs: each label value tested against the pattern, where a
    literal is one lookup).
    """
    return _RE2_SPECIAL.sub(r"\\\1", value)


def promql_matchers(selector: dict[str, str], extra: tuple[str, ...] = ()) -> str:
    """`{a="1",b=~"x"}` from labels (sorted, for stable output) and extra raw matchers."""
    parts = [f"{key}={quote(value)}" for key, value in sorted(selector.items())]
    return "{" + ",".join([*parts, *extra]) + "}"


def expand_selector(query: str, selector: dict[str, str], backend: Backend) -> str:
    """Put a stage's labels where a hand-written query has `{{selector}}`."""
    if backend is Backend.PROMETHEUS:
        text = ",".join(f"{key}={quote(value)}" for key, value in sorted(selector.items()))
    else:
        text = ",".join(f"{key}:{value}" for key, value in sorted(selector.items()))
    return query.replace(SELECTOR_PLACEHOLDER, text)


@dataclass(frozen=True)
class Aggregation:
    """One aggregated read that many SLIs share, told apart by the values of `keys`.

    Derived SLIs of a fleet usually differ only in selector values (`job="checkout"`,
    `job="search"`); asking once per window for `sum by (job) (increase(metric{...}[w]))` answers
    them all, where one expression per SLI would cost Prometheus far more to parse and evaluate.
    `function` None reads a series as it is (recorded series), `max by` the keys.
    """

    function: str | None
    metric: str
    keys: tuple[str, ...]
    extra: tuple[str, ...] = ()

    def query(self, values: Iterable[tuple[str, ...]], window: timedelta | None, end: datetime | None = None) -> str:
        """The grouped query for the given key values (a regex per key), over `window`, ending at `end`."""
        wanted = sorted(set(values))
        matchers = list(self.extra)
        for position, key in enumerate(self.keys):
            alternatives = sorted({value[position] for value in wanted})
            matchers.append(f"{key}=~{quote('|'.join(regex_literal(v) for v in alternatives))}")
        selector = f"{self.metric}{{{','.join(matchers)}}}"
        by = ", ".join(self.keys)
        if self.function is None:
            return f"max by ({by}) ({selector})"
        anchor = "" if end is None else f" @ {end.timestamp():.3f}"
        assert window is not None
        return f"sum by ({by}) ({self.function}({selector}[{format_duration(window)}]{anchor}))"


@dataclass(frozen=True)
class Term:
    """`sign` x the value an aggregation has for one set of key values."""

    sign: float
    aggregation: Aggregation
    values: tuple[str, ...]


@dataclass(frozen=True)
class EventTerms:
    """Bad and all events of a derived SLI as sums of grouped reads (see Aggregation)."""

    bad: tuple[Term, ...]
    total: tuple[Term, ...]

    def __add__(self, other: EventTerms) -> EventTerms:
        return EventTerms(self.bad + other.bad, self.total + other.total)
