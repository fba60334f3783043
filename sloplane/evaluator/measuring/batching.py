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

from sloplane.evaluator.measuring.backends.base import Sample
from sloplane.semantics.promql import Aggregation, Term

ASK_LABEL = "sloplane_ask"
"""The label a tagged operand's samples carry, naming the ask (or grouped read) they answer."""
MAX_QUERY_LENGTH = 20_000
"""Tagged `or` queries are split beyond this many characters: Prometheus' cost grows faster than
their length (measured: 10k-25k character chunks are several times cheaper per operand than 100k)."""


@dataclass(frozen=True)
class _Ask:
    """One number wanted: for a target, a part (bad, total, ratio, fresh), in a batch."""

    target: str
    part: str
    batch: str
    expression: str


@dataclass(frozen=True)
class _GroupedAsk:
    """One number wanted, as a signed sum of grouped reads over a window (ending at `end`)."""

    target: str
    part: str
    batch: str
    terms: tuple[Term, ...]
    window: timedelta | None
    end: datetime | None = None


@dataclass
class _Plan:
    asks: list[_Ask] = field(default_factory=list)
    grouped: list[_GroupedAsk] = field(default_factory=list)

    def add(self, target: str, part: str, batch: str, expression: str) -> None:
        self.asks.append(_Ask(target, part, batch, expression))

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
        self.grouped.append(_GroupedAsk(target, part, batch, terms, window, end))

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
            found[grouped.target] += [
                term.aggregation.query([term.values], grouped.window, grouped.end) for term in grouped.terms
            ]
        return found


def _collect(samples: list[Sample], ids: dict[str, _Ask], answers: dict[tuple[str, str, str], float | None]) -> None:
    """Answers from a tagged query's samples (by their `sloplane_ask` label)."""
    by_ask: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        ask_id = sample.labels.get(ASK_LABEL)
        if ask_id in ids:
            by_ask[ask_id].append(sample)
    for ask_id, found in by_ask.items():
        ask = ids[ask_id]
        answers[(ask.target, ask.part, ask.batch)] = _value(found)


_GroupKey = tuple[Aggregation, timedelta | None, datetime | None]
"""What one grouped read is: an aggregation over a window (ending now, or at an instant)."""

PACK_BELOW = 2_000
"""Grouped reads shorter than this are tagged and sent several to a query: a gate for one SLO then
costs two HTTP requests instead of twenty. Long reads (a whole fleet's selectors) go alone, in
parallel, because Prometheus evaluates the operands of one query one after the other."""


def _packed(grouped: list[tuple[str, _GroupKey]]) -> list[tuple[str, list[tuple[str | None, _GroupKey]]]]:
    """Grouped reads as queries: long ones alone, short ones tagged and joined with `or`.

    Each query comes with its reads as (tag, key); the tag is None for a read sent alone.
    """
    queries: list[tuple[str, list[tuple[str | None, _GroupKey]]]] = []
    chunk: list[str] = []
    keys: list[tuple[str | None, _GroupKey]] = []
    length = 0
    for index, (query, key) in enumerate(grouped):
        if len(query) >= PACK_BELOW:
            queries.append((query, [(None, key)]))
            continue
        tag = f"g{index}"
        tagged = f'label_replace({query}, "{ASK_LABEL}", "{tag}", "", "")'
        if chunk and length + len(tagged) > MAX_QUERY_LENGTH:
            queries.append((" or ".join(chunk), keys))
            chunk, keys, length = [], [], 0
        chunk.append(tagged)
        keys.append((tag, key))
        length += len(tagged) + 4
    if chunk:
        queries.append((" or ".join(chunk), keys))
    return queries


def _unpacked(
    keys: list[tuple[str | None, _GroupKey]], samples: list[Sample]
) -> Iterable[tuple[_GroupKey, list[Sample]]]:
    """The samples of each read of a (possibly packed) query."""
    if len(keys) == 1 and keys[0][0] is None:
        yield keys[0][1], samples
        return
    by_tag: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_tag[sample.labels.get(ASK_LABEL, "")].append(sample)
    for tag, key in keys:
        yield key, by_tag.get(tag or "", [])


def _value(samples: list[Sample]) -> float | None:
    if not samples:
        return None
    value = samples[0].value
    return None if math.isnan(value) or math.isinf(value) else value


def _answered(
    plan: _Plan,
    grouped: list[tuple[str, list[tuple[str | None, _GroupKey]]]],
    tagged: list[tuple[str, dict[str, _Ask]]],
    results: list[list[Sample]],
) -> dict[tuple[str, str, str], float | None]:
    """Map (target, part, batch) to its number, from the results of the grouped, then the tagged queries."""
    answers: dict[tuple[str, str, str], float | None] = {}
    found: dict[_GroupKey, dict[tuple[str, ...], float]] = {}
    for (_, keys), samples in zip(grouped, results, strict=False):
        for key, part in _unpacked(keys, samples):
            found[key] = {
                tuple(sample.labels.get(name, "") for name in key[0].keys): sample.value
                for sample in part
                if math.isfinite(sample.value)
            }
    for grouped_ask in plan.grouped:
        values = [
            term.sign * found[(term.aggregation, grouped_ask.window, grouped_ask.end)][term.values]
            for term in grouped_ask.terms
            if term.values in found[(term.aggregation, grouped_ask.window, grouped_ask.end)]
        ]
        # a bad-events read that found nothing is 0 (no errors yet); anything else is no data
        value = sum(values) if values else (0.0 if grouped_ask.part == "bad" else None)
        answers[(grouped_ask.target, grouped_ask.part, grouped_ask.batch)] = value
    for (_, ids), samples in zip(tagged, results[len(grouped) :], strict=True):
        _collect(samples, ids, answers)
    for ask in plan.asks:
        answers.setdefault((ask.target, ask.part, ask.batch), None)
    return answers


def _grouped_queries(asks: list[_GroupedAsk]) -> list[tuple[str, _GroupKey]]:
    """One query per (aggregation, window, end), covering every ask that reads it."""
    wanted: dict[_GroupKey, set[tuple[str, ...]]] = defaultdict(set)
    for ask in asks:
        for term in ask.terms:
            wanted[(term.aggregation, ask.window, ask.end)].add(term.values)
    return [
        (aggregation.query(values, window, end), (aggregation, window, end))
        for (aggregation, window, end), values in wanted.items()
    ]


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


def _period_unanswered(plan: _Plan, answers: dict[tuple[str, str, str], float | None], key: str) -> bool:
    """Whether a target asked for its period and every period answer came back empty."""
    asked = [(a.target, a.part, a.batch) for a in plan.asks if a.target == key and a.batch.startswith("period:")]
    asked += [(a.target, a.part, a.batch) for a in plan.grouped if a.target == key and a.batch.startswith("period:")]
    return bool(asked) and all(answers.get(found) is None for found in asked)
