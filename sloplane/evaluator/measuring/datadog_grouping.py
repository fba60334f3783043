"""Many subjects' Datadog queries as few: queries that differ only in one tag's value become one `by {tag}`.

A fleet of http SLOs reads one metric per service — `sum:http_requests.count{service:a}.as_count()`,
`…{service:b}…` — and asking each is one query per SLO per window. Datadog answers a grouped query
(`sum:http_requests.count{*} by {service}.as_count()`) with one row per value of the tag, which holds
exactly what each single query would have counted (a series counts in a group when it carries that
tag value and the rest of the filter holds, as it counts for the single query). So the queries of one
interval are regrouped here, and each answer is read back from its row: the number of queries per
interval grows with the distinct metrics and filters, not with the subjects.

Only plainly written queries are regrouped (`sum:<metric>{k:v,…}.as_count()` whose grouping tag has
a literal value); boolean filters, wildcards in the grouping tag and anything else are sent as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_QUERY = re.compile(r"^sum:(?P<metric>[A-Za-z][\w.]*)\{(?P<filter>[^{}()\s]*)\}\.as_count\(\)$")
_PLAIN_TERM = re.compile(r"^(?P<key>[A-Za-z][\w./-]*):(?P<value>[^,*?!\s]+)$")


@dataclass(frozen=True)
class GroupedQuery:
    """One query sent for one or more subjects' queries, and how to read each one's answer."""

    text: str
    """What is sent."""
    key: str | None
    """The `by` tag; None when the query is sent as written (its answer is ungrouped)."""
    members: dict[str, str]
    """Each original query and its value of `key` (the row that answers it); empty for an ungrouped query."""

    def members_in(self, row: Mapping[str, float | None]) -> dict[str, float | None]:
        """Each original query's count, read from its row of the grouped answer (None: no such row)."""
        return {query: row.get(value) for query, value in self.members.items()}


def _terms(query: str) -> tuple[str, tuple[str, ...]] | None:
    """(metric, filter terms) of a plainly written count query, else None."""
    found = _QUERY.match(query)
    if found is None or found["filter"] == "*":
        return None
    terms = tuple(found["filter"].split(","))
    return (found["metric"], terms) if all(terms) else None


def grouped(queries: Sequence[str], minimum: int = 2) -> list[GroupedQuery]:
    """The queries to send for `queries`: groups of at least `minimum` queries (largest first) as one
    `by {tag}` query each, the rest as written; every original query is answered by exactly one."""
    candidates: dict[tuple[str, tuple[str, ...], str], dict[str, str]] = {}
    for query in dict.fromkeys(queries):
        parsed = _terms(query)
        if parsed is None:
            continue
        metric, terms = parsed
        for index, term in enumerate(terms):
            plain = _PLAIN_TERM.match(term)
            if plain is None:
                continue
            rest = tuple(sorted(terms[:index] + terms[index + 1 :]))
            candidates.setdefault((metric, rest, plain["key"]), {})[query] = plain["value"]
    assigned: set[str] = set()
    found: list[GroupedQuery] = []
    for (metric, rest, key), members in sorted(candidates.items(), key=lambda item: (-len(item[1]), item[0])):
        free = {query: value for query, value in members.items() if query not in assigned}
        if len(free) < minimum or len(set(free.values())) != len(free):
            continue
        text = f"sum:{metric}{{{','.join(rest) or '*'}}} by {{{key}}}.as_count()"
        found.append(GroupedQuery(text, key, free))
        assigned.update(free)
    found += [GroupedQuery(query, None, {}) for query in dict.fromkeys(queries) if query not in assigned]
    return found
