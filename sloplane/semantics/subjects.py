"""What is measured: one *subject* per SLO, or per stage of a staged SLO.

A staged SLO is measured once per stage, each with its own objective and selector labels; the
production stage also counts the events of stages marked `countsTowardProduction`. Every renderer
and the evaluator iterate subjects, so a stage means the same thing in a rule, a dashboard and a
gate decision. Series that sloplane records carry the subject's labels (`slo`, `service`, and
`stage` when staged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sloplane.declaration.model import Declaration, Spec
from sloplane.declaration.policy import Stage
from sloplane.declaration.sli import SLORef

T = TypeVar("T")


class Fleet(Mapping[str, Declaration]):
    """Every declaration by name: composites and dependencies are resolved against it.

    Also a memo for facts about the whole fleet (which windows each SLO records), so rendering n
    SLOs computes them once rather than n times.
    """

    def __init__(self, declarations: Iterable[Declaration]) -> None:
        self._by_name = {declaration.name: declaration for declaration in declarations}
        self._memo: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Declaration:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` once per fleet (declarations are immutable, so the answer cannot go stale)."""
        if key not in self._memo:
            self._memo[key] = compute()
        result: T = self._memo[key]
        return result


FleetLike = Mapping[str, Declaration]
"""What renderers accept: a Fleet, or any mapping of name to declaration (then nothing is memoised)."""


@dataclass(frozen=True)
class Subject:
    """One SLO, or one stage of it, with the labels its recorded series carry."""

    slo: str
    service: str
    team: str
    stage: str | None
    objective: float
    production: bool

    @property
    def labels(self) -> dict[str, str]:
        """Labels identifying this subject's series: slo, service and stage (when staged)."""
        labels = {"slo": self.slo, "service": self.service}
        if self.stage is not None:
            labels["stage"] = self.stage
        return labels

    @property
    def key(self) -> str:
        """`slo` or `slo/stage`, for messages and file names."""
        return self.slo if self.stage is None else f"{self.slo}/{self.stage}"


def subjects(declaration: Declaration) -> list[Subject]:
    """The SLO itself when unstaged, else one subject per stage in declaration order."""
    spec = declaration.spec
    base = {"slo": declaration.name, "service": spec.service, "team": spec.owners.team}
    if not spec.stages:
        return [Subject(**base, stage=None, objective=spec.objective, production=True)]
    production = spec.production_stage
    return [
        Subject(**base, stage=stage.name, objective=spec.stage_objective(stage), production=stage is production)
        for stage in spec.stages
    ]


def production_subject(declaration: Declaration) -> Subject:
    """The subject whose budget is "the SLO's": the production stage, or the unstaged SLO."""
    return next(subject for subject in subjects(declaration) if subject.production)


def counted_stages(spec: Spec, subject: Subject) -> list[Stage]:
    """Stages whose events a subject measures: its own, plus counted pre-production stages for production."""
    own = spec.stage(subject.stage) if subject.stage is not None else None
    if own is None:
        return []
    if not subject.production:
        return [own]
    return [own, *(stage for stage in spec.stages if stage.counts_toward_production and stage is not own)]


def component_labels(reference: SLORef, fleet: FleetLike) -> dict[str, str] | None:
    """Series labels of a composite's component (its production stage when none is named)."""
    target = fleet.get(reference.slo)
    if target is None:
        return None
    for subject in subjects(target):
        if (reference.stage is None and subject.production) or subject.stage == reference.stage:
            return subject.labels
    return None
