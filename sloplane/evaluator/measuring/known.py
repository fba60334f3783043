"""What measuring knows of each declaration and subject before asking anyone, worked out once per measurer.

A cold evaluation plans and computes every subject of a fleet afresh: at 1,000 SLOs that is 19,000
grouped reads to look up and 9,000 windows to name. Declarations never change, so what does not
depend on the instant — a declaration's windows and their batch names, the fastest alert window, a
subject's grouped reads, how each read is printed — is worked out on first use and kept (`Known`);
a gate on a warm evaluator then plans from memory.

Equal aggregations of different subjects are made one object (`Known.reads`): the plan's lookup of
a grouped read (`batching._Plan.add_terms`) then matches by identity instead of comparing fields.
Kept apart from `measure`, which plans and computes with these; `semantics` says what they are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from sloplane.core.durations import format_duration
from sloplane.declaration.model import Declaration
from sloplane.evaluator.measuring.batching import _GroupKey
from sloplane.semantics.promql import Aggregation, EventTerms, Term
from sloplane.semantics.recording import SubjectReads, subject_reads
from sloplane.semantics.subjects import Fleet, Subject


@dataclass(frozen=True)
class Windows:
    """A declaration's windows: every one measured, with its batch name, and the fastest alert's."""

    declaration: Declaration
    windows: tuple[tuple[timedelta, str], ...]
    """Every alert window, the gate's analysis window and any extra one, shortest first, with `format_duration`."""
    fastest: timedelta
    """The fastest alert's long window: the burn rate that estimates exhaustion."""


@dataclass(frozen=True)
class Reads:
    """How one subject that is not a composite is read from Prometheus (its grouped reads share aggregations)."""

    declaration: Declaration
    reads: SubjectReads
    terms: EventTerms | None
    counted: tuple[Term, ...]
    """Samples of every series `terms.total` reads (`count_over_time`): whether data is fresh."""


class Known:
    """The memo: by declaration name and subject key, checked against the declaration object it was made from."""

    def __init__(self, fleet: Fleet, extra_windows: Iterable[timedelta] = ()) -> None:
        self.fleet = fleet
        self.extra_windows = tuple(extra_windows)
        self._windows: dict[str, Windows] = {}
        self._reads: dict[str, Reads] = {}
        self._aggregations: dict[Aggregation, Aggregation] = {}
        self._lock = threading.Lock()
        self.escaped: dict[str, str] = {}
        """Selector values as a regex matcher writes them (`batching._Plan.escaped`): the fleet's, so bounded."""
        self.templates: dict[_GroupKey, list[str]] = {}
        """Grouped reads' templates (`batching._Plan.templates`, which bounds it)."""

    def windows_of(self, declaration: Declaration) -> tuple[timedelta, ...]:
        """Every alert window, the gate's analysis window, and any extra window asked for."""
        spec = declaration.spec
        windows = {w for alert in spec.burn_rate_alerts() for w in (alert.long_window, alert.short_window)}
        windows.add(spec.effective_gate.analysis_window)
        windows.update(self.extra_windows)
        return tuple(sorted(windows))

    def windows(self, declaration: Declaration) -> Windows:
        """`windows_of` with batch names, and the fastest alert window."""
        found = self._windows.get(declaration.name)
        if found is not None and found.declaration is declaration:
            return found
        named = tuple((window, format_duration(window)) for window in self.windows_of(declaration))
        found = Windows(declaration, named, declaration.spec.burn_rate_alerts()[0].long_window)
        with self._lock:
            self._windows[declaration.name] = found
        return found

    def reads(self, declaration: Declaration, subject: Subject) -> Reads:
        """How a subject that is not a composite is read (`semantics.recording.subject_reads`)."""
        found = self._reads.get(subject.key)
        if found is not None and found.declaration is declaration:
            return found
        reads = subject_reads(declaration, subject, self.fleet)
        terms = reads.indicator.terms
        counted: tuple[Term, ...] = ()
        if terms is not None:
            terms = EventTerms(self._shared(terms.bad), self._shared(terms.total))
            counting = (Term(1, replace(t.aggregation, function="count_over_time"), t.values) for t in terms.total)
            counted = self._shared(tuple(counting))
        found = Reads(declaration, reads, terms, counted)
        with self._lock:
            self._reads[subject.key] = found
        return found

    def _shared(self, terms: tuple[Term, ...]) -> tuple[Term, ...]:
        """The terms with every aggregation replaced by the first equal one seen."""
        with self._lock:
            return tuple(
                Term(term.sign, self._aggregations.setdefault(term.aggregation, term.aggregation), term.values)
                for term in terms
            )
