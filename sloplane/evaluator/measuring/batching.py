"""How the questions of one measurement become few backend queries, and how answers come back.

Measuring a subject means asking for many numbers (bad and all events, or a ratio, per window, for
the period and each excluded span, and whether data is fresh). Sending one query per number would
make an evaluation's cost grow with SLOs x windows, so the numbers are first collected in a `_Plan`
and only then turned into queries:

- SLIs sloplane derives (http, latency, probe, deployment) and recorded series are *grouped reads*:
  one `sum by (<selector labels>) (increase(metric{...}[w]))` per `(aggregation, window, end)`
  answers every SLO of that shape (they differ only in selector values), which is also far cheaper
  for Prometheus to run;
- hand-written queries are tagged with `label_replace(..., "sloplane_ask", "<id>")` and joined
  with `or`, in chunks; short grouped reads (a gate for one SLO) are packed the same way, so a
  cold gate is two requests, while a whole fleet's long reads go one per query, in parallel.

A grouped read's answer for one SLO is exactly what that SLO's own query would return: `sum by`
adds, for each group, the same series in the same order as `sum(... {job="a"} ...)` does
(tests/test_measuring_batches.py proves it on a real Prometheus). The SLO's own query is what its
measurement records (`_Plan.expressions`); it is printed from a template per grouped read
(`_Group.single`) because a fleet has one per SLO and window, tens of thousands.

The plan is built for a whole fleet on every cold evaluation, so it is kept cheap: each grouped
read is looked up once per (subject, window) when asked for (`_Group`), never again while
querying or answering.

This is kept apart from `measure` because it is all about the shape of queries and answers and
nothing about what an SLO means: it neither talks to a backend (the `Measurer` runs the queries
it is given) nor knows how a measurement is computed from the numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sloplane.evaluator.measuring.backends.base import Sample
from sloplane.semantics.promql import Aggregation, Term, quote, regex_literal

ASK_LABEL = "sloplane_ask"
"""The label a tagged operand's samples carry, naming the ask (or grouped read) they answer."""
MAX_QUERY_LENGTH = 20_000
"""Tagged `or` queries are split beyond this many characters: Prometheus' cost grows faster than
their length (measured: 10k-25k character chunks are several times cheaper per operand than 100k)."""

_Answers = dict[tuple[str, str, str], float | None]
"""(target, part, batch) -> its number."""


class _Ask(NamedTuple):
    """One number wanted: for a target, a part (bad, total, ratio, fresh), in a batch.

    `window` is how far back the expression reads (None: not known), only to send the costliest
    queries first."""

    target: str
    part: str
    batch: str
    expression: str
    window: timedelta | None = None


_GroupKey = tuple[Aggregation, timedelta | None, datetime | None]
"""What one grouped read is: an aggregation over a window (ending now, or at an instant)."""


class _Group:
    """One grouped read of a plan: the key values asked of it and, once answered, its value per key values."""

    __slots__ = ("_pieces", "_templates", "aggregation", "end", "found", "values", "window")

    def __init__(
        self,
        aggregation: Aggregation,
        window: timedelta | None,
        end: datetime | None,
        templates: dict[_GroupKey, list[str]] | None = None,
    ) -> None:
        self.aggregation = aggregation
        self.window = window
        self.end = end
        self.values: dict[tuple[str, ...], None] = {}
        """Key values asked (a dict used as a set that keeps the order they were first asked in)."""
        self.found: dict[tuple[str, ...], float] = {}
        self._pieces: list[str] | None = None
        self._templates = {} if templates is None else templates

    @property
    def key(self) -> _GroupKey:
        return (self.aggregation, self.window, self.end)

    def query(self, escaped: dict[str, str]) -> str:
        """The grouped query for every key value asked (`Aggregation.query`, from a template as `single`)."""
        pieces = self._template()
        if not pieces:
            return self.aggregation.query(self.values, self.window, self.end)
        text = pieces[0]
        for position, column in enumerate(zip(*self.values, strict=True)):
            text += "|".join([_escaped(value, escaped) for value in sorted(set(column))]) + pieces[position + 1]
        return text

    def single(self, values: tuple[str, ...], escaped: dict[str, str]) -> str:
        """The query of one subject (`Aggregation.query` for its values alone), from a template.

        `escaped` memoises each value as it appears inside a regex matcher's quotes (a fleet's values
        recur once per window). Where the template cannot be made (a placeholder that the text
        holds more than once), the text is made the long way.
        """
        pieces = self._template()
        if not pieces:
            return self.aggregation.query([values], self.window, self.end)
        text = pieces[0]
        for position, value in enumerate(values):
            text += _escaped(value, escaped) + pieces[position + 1]
        return text

    def _template(self) -> list[str]:
        """The template, made once per grouped read and kept in `templates` (shared by an evaluator's plans)."""
        if self._pieces is None:
            key = self.key
            found = self._templates.get(key)
            if found is None:
                found = _template(self.aggregation, self.window, self.end) or []
                if len(self._templates) >= TEMPLATES_KEPT:  # calendar periods and excluded spans: new keys
                    self._templates.clear()
                self._templates[key] = found
            self._pieces = found
        return self._pieces


TEMPLATES_KEPT = 10_000
"""Templates kept across plans: a fleet's reads, many times over (a calendar period's read is new each minute)."""


def _escaped(value: str, memo: dict[str, str]) -> str:
    found = memo.get(value)
    if found is None:
        found = memo[value] = _in_matcher(value)
    return found


def _in_matcher(value: str) -> str:
    """A value as `Aggregation.query` writes it in a regex matcher, without the quotes around the alternatives
    (`quote` escapes character by character, so alternatives escaped apart join to the same text)."""
    return quote(regex_literal(value))[1:-1]


def _template(aggregation: Aggregation, window: timedelta | None, end: datetime | None) -> list[str] | None:
    """The text of a one-subject read split around its key values, or None when that cannot be done safely.

    The placeholders are letters and digits, which neither `regex_literal` nor `quote` change, so each
    appears in the text exactly where a value's escaped form goes; `_in_matcher` is that form.
    """
    placeholders = tuple(f"sloplaneplaceholder{index}x" for index in range(len(aggregation.keys)))
    text = aggregation.query([placeholders], window, end)
    pieces: list[str] = []
    rest = text
    for placeholder in placeholders:
        before, found, rest = rest.partition(placeholder)
        if not found or text.count(placeholder) != 1:
            return None
        pieces.append(before)
    pieces.append(rest)
    return pieces


class _GroupedAsk(NamedTuple):
    """One number wanted, as a signed sum of grouped reads over a window (ending at `end`)."""

    target: str
    part: str
    batch: str
    reads: tuple[tuple[float, _Group, tuple[str, ...]], ...]
    """(sign, grouped read, key values) per term."""


@dataclass
class _Plan:
    asks: list[_Ask] = field(default_factory=list)
    grouped: list[_GroupedAsk] = field(default_factory=list)
    groups: dict[_GroupKey, _Group] = field(default_factory=dict)
    """Every grouped read, in the order first asked (the order queries are made in)."""
    escaped: dict[str, str] = field(default_factory=dict)
    """Key values as regex matchers write them (`_escaped`), for the grouped queries and the records alike."""
    templates: dict[_GroupKey, list[str]] = field(default_factory=dict)
    """Each grouped read's template (`_Group.single`); an evaluator's plans share one, so that a cold gate
    prints its record's reads without making their templates again."""

    def add(self, target: str, part: str, batch: str, expression: str, window: timedelta | None = None) -> None:
        self.asks.append(_Ask(target, part, batch, expression, window))

    def add_terms(
        self,
        target: str,
        part: str,
        batch: str,
        terms: tuple[Term, ...],
        *,
        window: timedelta | None = None,
        end: datetime | None = None,
    ) -> None:
        reads = []
        for term in terms:
            key = (term.aggregation, window, end)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group(term.aggregation, window, end, self.templates)
            group.values[term.values] = None
            reads.append((term.sign, group, term.values))
        self.grouped.append(_GroupedAsk(target, part, batch, tuple(reads)))

    def extend(self, other: _Plan) -> None:
        """Take in another plan's asks (answered apart), so that `expressions` and the period checks see them."""
        self.asks.extend(other.asks)
        self.grouped.extend(other.grouped)

    def batches(self) -> dict[str, list[_Ask]]:
        grouped: dict[str, list[_Ask]] = defaultdict(list)
        for ask in self.asks:
            grouped[ask.batch].append(ask)
        return grouped

    def expressions(self) -> dict[str, list[str]]:
        """What each target asked, for its measurement's record (grouped reads shown per target)."""
        found: dict[str, list[str]] = defaultdict(list)
        for ask in self.asks:
            found[ask.target].append(ask.expression)
        for grouped in self.grouped:
            found[grouped.target] += [group.single(values, self.escaped) for _, group, values in grouped.reads]
        return found

    def period_unanswered(self, answers: _Answers) -> set[str]:
        """Targets that asked for their period and got no period answer at all."""
        asked: dict[str, bool] = {}
        wanted = [(ask.target, ask.part, ask.batch) for ask in self.asks]
        wanted += [(ask.target, ask.part, ask.batch) for ask in self.grouped]
        for key in wanted:
            if key[2].startswith("period:"):
                asked[key[0]] = asked.get(key[0], False) or answers.get(key) is not None
        return {target for target, answered in asked.items() if not answered}


def _collect(samples: list[Sample], ids: dict[str, _Ask], answers: _Answers) -> None:
    """Answers from a tagged query's samples (by their `sloplane_ask` label)."""
    by_ask: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        ask_id = sample.labels.get(ASK_LABEL)
        if ask_id in ids:
            by_ask[ask_id].append(sample)
    for ask_id, found in by_ask.items():
        ask = ids[ask_id]
        answers[(ask.target, ask.part, ask.batch)] = _value(found)


PACK_BELOW = 2_000
"""Grouped reads shorter than this are tagged and sent several to a query: a gate for one SLO then
costs two HTTP requests instead of twenty. Long reads (a whole fleet's selectors) go alone, in
parallel, because Prometheus evaluates the operands of one query one after the other."""

_Packed = list[tuple[str, list[tuple[str | None, _Group]]]]
"""Queries of grouped reads, each with its reads as (tag, read); the tag is None for a read sent alone."""


def _packed(grouped: list[tuple[str, _Group]]) -> _Packed:
    """Grouped reads as queries: long ones alone, short ones tagged and joined with `or`."""
    queries: _Packed = []
    chunk: list[str] = []
    keys: list[tuple[str | None, _Group]] = []
    length = 0
    for index, (query, group) in enumerate(grouped):
        if len(query) >= PACK_BELOW:
            queries.append((query, [(None, group)]))
            continue
        tag = f"g{index}"
        tagged = f'label_replace({query}, "{ASK_LABEL}", "{tag}", "", "")'
        if chunk and length + len(tagged) > MAX_QUERY_LENGTH:
            queries.append((" or ".join(chunk), keys))
            chunk, keys, length = [], [], 0
        chunk.append(tagged)
        keys.append((tag, group))
        length += len(tagged) + 4
    if chunk:
        queries.append((" or ".join(chunk), keys))
    return queries


def _unpacked(keys: list[tuple[str | None, _Group]], samples: list[Sample]) -> Iterable[tuple[_Group, list[Sample]]]:
    """The samples of each read of a (possibly packed) query."""
    if len(keys) == 1 and keys[0][0] is None:
        yield keys[0][1], samples
        return
    by_tag: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_tag[sample.labels.get(ASK_LABEL, "")].append(sample)
    for tag, group in keys:
        yield group, by_tag.get(tag or "", [])


def _value(samples: list[Sample]) -> float | None:
    if not samples:
        return None
    value = samples[0].value
    return None if math.isnan(value) or math.isinf(value) else value


def _answered(
    plan: _Plan, grouped: _Packed, tagged: list[tuple[str, dict[str, _Ask]]], results: list[list[Sample]]
) -> _Answers:
    """Map (target, part, batch) to its number, from the results of the grouped, then the tagged queries."""
    answers: _Answers = {}
    for (_, keys), samples in zip(grouped, results, strict=False):
        for group, its in _unpacked(keys, samples):
            names = group.aggregation.keys
            if len(names) == 1:
                name = names[0]
                group.found = {
                    (sample.labels.get(name, ""),): sample.value for sample in its if math.isfinite(sample.value)
                }
            else:
                group.found = {
                    tuple(sample.labels.get(name, "") for name in names): sample.value
                    for sample in its
                    if math.isfinite(sample.value)
                }
    for target, part, batch, reads in plan.grouped:
        values = [sign * group.found[found] for sign, group, found in reads if found in group.found]
        # a bad-events read that found nothing is 0 (no errors yet); anything else is no data
        answers[(target, part, batch)] = sum(values) if values else (0.0 if part == "bad" else None)
    for (_, ids), samples in zip(tagged, results[len(grouped) :], strict=True):
        _collect(samples, ids, answers)
    for ask in plan.asks:
        answers.setdefault((ask.target, ask.part, ask.batch), None)
    return answers


def _grouped_queries(plan: _Plan) -> list[tuple[str, _Group]]:
    """One query per (aggregation, window, end), covering every ask that reads it."""
    return [(group.query(plan.escaped), group) for group in plan.groups.values()]


def _tagged_queries(plan: _Plan) -> list[tuple[str, dict[str, _Ask]]]:
    """Hand-written expressions, tagged and joined with `or` per batch, in chunks."""
    queries: list[tuple[str, dict[str, _Ask]]] = []
    for batch_index, (_, asks) in enumerate(sorted(plan.batches().items())):
        chunk: list[str] = []
        ids: dict[str, _Ask] = {}
        for index, ask in enumerate(asks):
            ask_id = f"{batch_index}.{index}"
            tagged = f'label_replace({ask.expression}, "{ASK_LABEL}", "{ask_id}", "", "")'
            if chunk and sum(map(len, chunk)) + len(tagged) > MAX_QUERY_LENGTH:
                queries.append((" or ".join(chunk), ids))
                chunk, ids = [], {}
            chunk.append(tagged)
            ids[ask_id] = ask
        if chunk:
            queries.append((" or ".join(chunk), ids))
    return queries


def _reach(window: timedelta | None) -> float:
    return 0.0 if window is None else window.total_seconds()


def costliest_first(grouped: _Packed, tagged: list[tuple[str, dict[str, _Ask]]]) -> list[int]:
    """The order to send the queries in (indexes into grouped + tagged): the longest windows first.

    Prometheus' cost of a read grows with the samples it covers, so a fleet's day-long reads take
    ten times as long as its five-minute ones. Sent first they run beside the short ones, instead
    of starting last and leaving the evaluation waiting on one of them while the cores idle.
    """
    reaches = [max(_reach(group.window) for _, group in keys) for _, keys in grouped]
    reaches += [max(_reach(ask.window) for ask in ids.values()) for _, ids in tagged]
    return sorted(range(len(reaches)), key=lambda index: -reaches[index])
