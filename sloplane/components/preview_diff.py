"""The intended-state difference between two recorded runs of a stack program.

`sloplane preview --diff BASE` runs the program at BASE and at the working tree under the SDK's
mocks (`preview_revisions.py`) and compares what each registered, resource by resource (keyed by
URN: type, parent chain and name, as Pulumi keys them), input by input. This is the one place that
decides what counts as a create, update, delete or replace; it is pure — recorded resources in,
steps out — so every rule is unit-tested without Pulumi or git.

It is not `pulumi preview`: there is no state, so no drift; no provider, so no provider-side diff
(defaults, computed fields, a provider's own replace rules). What is left is what a reviewer asks:
what does this change declare differently.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

KUBERNETES_PREFIX = "kubernetes:"
REPLACE_KEYS = ("apiVersion", "kind", "metadata.name", "metadata.namespace")
"""A Kubernetes object is another object when one of these changes: the provider deletes and creates it."""

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


@dataclass(frozen=True)
class Secret:
    """An input the program marked secret, as a keyed digest of its value.

    The digest's key lives for one `--diff` run only, so the two runs can tell whether a secret
    changed while nothing printed or left behind can be used to guess it.
    """

    digest: str


@dataclass(frozen=True)
class Resource:
    """One registration, as the diff needs it (`preview.Registration` without the SDK)."""

    urn: str
    type: str
    name: str
    parent: str | None
    inputs: Mapping[str, Any]
    provider: str | None = None


class _Missing:
    """The value on the side where a property does not exist (distinct from an explicit null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Change:
    """One property that differs: its path (`spec.groups[0].rules[3].expr`) and both values.

    `old` or `new` is `MISSING` where the property is added or removed. Secret values are `Secret`
    digests, never the value, so a report cannot show them by mistake.
    """

    path: str
    old: Any
    new: Any

    @property
    def secret(self) -> bool:
        """Whether either side is, or holds, a secret: reports print `[secret]` for it."""
        return _holds_secret(self.old) or _holds_secret(self.new)


class Op(StrEnum):
    """What applying the change would do to one resource, in Pulumi's words."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"

    @property
    def symbol(self) -> str:
        """Pulumi's mark for the step."""
        return {"create": "+", "update": "~", "delete": "-", "replace": "+-"}[self.value]


OP_ORDER = (Op.CREATE, Op.UPDATE, Op.DELETE, Op.REPLACE)
"""The order Pulumi's summary lists the counts in."""


@dataclass(frozen=True)
class Step:
    """One resource that changes. `changes` is empty for a create or delete (the whole resource)."""

    op: Op
    urn: str
    type: str
    name: str
    changes: tuple[Change, ...] = ()
    replace_because: tuple[str, ...] = ()
    """For a replace: the paths among `REPLACE_KEYS` that changed."""
    previous_type: str | None = None
    """For a replace whose kind or apiVersion changed: the type it had (the URN changed with it)."""

    @property
    def paths(self) -> list[str]:
        """The changed property paths, in document order."""
        return [change.path for change in self.changes]


@dataclass(frozen=True)
class Diff:
    """Every step, sorted by name then type, and how many resources stay as they are."""

    steps: tuple[Step, ...] = field(default_factory=tuple)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        """Whether anything would be created, updated, deleted or replaced."""
        return bool(self.steps)

    def counts(self) -> Counter[Op]:
        """Steps by operation."""
        return Counter(step.op for step in self.steps)

    def summary(self) -> str:
        """Pulumi's closing line, on one line: `Resources: + 1 to create ~ 2 to update 40 unchanged`."""
        counts = self.counts()
        parts = [f"{op.symbol} {counts[op]} to {op.value}" for op in OP_ORDER if counts[op]]
        return "Resources: " + " ".join([*parts, f"{self.unchanged} unchanged"])


class DuplicateUrnError(ValueError):
    """The program registers one URN twice: `pulumi up` would refuse it, so the diff does too."""


def diff_states(base: Iterable[Resource], head: Iterable[Resource]) -> Diff:
    """What turning the resources `base` declares into those `head` declares would do.

    Resources are matched by URN. A Kubernetes object whose kind or apiVersion changes gets a new
    type, hence a new URN: a deleted and a created Kubernetes object with the same parent and name
    are paired into one replace, which is what a reviewer needs to see.
    """
    before, after = _by_urn(base), _by_urn(head)
    steps: list[Step] = []
    unchanged = 0
    for urn in before.keys() & after.keys():
        step = _compare(before[urn], after[urn])
        if step is None:
            unchanged += 1
        else:
            steps.append(step)
    deleted = [before[urn] for urn in before.keys() - after.keys()]
    created = [after[urn] for urn in after.keys() - before.keys()]
    retyped = _retyped(deleted, created)
    for old, new in retyped:
        changes = tuple(property_changes(old.inputs, new.inputs))
        because = tuple(path for path in REPLACE_KEYS if any(c.path == path for c in changes))
        steps.append(Step(Op.REPLACE, new.urn, new.type, new.name, changes, because, old.type))
    paired = {old.urn for old, _ in retyped} | {new.urn for _, new in retyped}
    steps += [Step(Op.DELETE, r.urn, r.type, r.name) for r in deleted if r.urn not in paired]
    steps += [Step(Op.CREATE, r.urn, r.type, r.name) for r in created if r.urn not in paired]
    return Diff(tuple(sorted(steps, key=lambda s: (s.name, s.type, s.urn))), unchanged)


def _by_urn(resources: Iterable[Resource]) -> dict[str, Resource]:
    found: dict[str, Resource] = {}
    for resource in resources:
        if resource.urn in found:
            raise DuplicateUrnError(f"the program registers {resource.urn} twice (pulumi would refuse it)")
        found[resource.urn] = resource
    return found


def _compare(old: Resource, new: Resource) -> Step | None:
    """The update or replace of one resource whose URN stays, None when nothing changes."""
    changes = list(property_changes(old.inputs, new.inputs))
    if old.provider != new.provider:
        # Inputs cannot hold this key (brackets are not a property name): moving a resource to
        # another explicit provider (dd-staging -> dd-prod) is a change a reviewer must see.
        changes.insert(0, Change("(provider)", old.provider or MISSING, new.provider or MISSING))
    if not changes:
        return None
    because = tuple(p for p in REPLACE_KEYS if any(c.path == p for c in changes)) if _kubernetes(new) else ()
    return Step(Op.REPLACE if because else Op.UPDATE, new.urn, new.type, new.name, tuple(changes), because)


def _kubernetes(resource: Resource) -> bool:
    return resource.type.startswith(KUBERNETES_PREFIX) and not resource.type.startswith("kubernetes:pulumi:")


def _retyped(deleted: Sequence[Resource], created: Sequence[Resource]) -> list[tuple[Resource, Resource]]:
    """Kubernetes objects that lost one type and gained another under the same parent and name."""
    gone = {(r.parent, r.name): r for r in deleted if _kubernetes(r)}
    pairs = []
    for new in created:
        old = gone.pop((new.parent, new.name), None) if _kubernetes(new) else None
        if old is not None:
            pairs.append((old, new))
    return pairs


def property_changes(old: Any, new: Any, path: str = "") -> Iterator[Change]:
    """Every leaf that differs between two input trees, as Pulumi paths, in document order.

    Maps are compared key by key (sorted), lists index by index (an insertion shifts the rest, as
    in Pulumi's own diff); a secret is compared by digest and never descended into.
    """
    if isinstance(old, Secret) or isinstance(new, Secret):
        if old != new:
            yield Change(path or "(inputs)", old, new)
    elif isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(old.keys() | new.keys(), key=str):
            yield from property_changes(old.get(key, MISSING), new.get(key, MISSING), join_key(path, str(key)))
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            before = old[index] if index < len(old) else MISSING
            after = new[index] if index < len(new) else MISSING
            yield from property_changes(before, after, f"{path}[{index}]")
    elif not _same(old, new):
        yield Change(path or "(inputs)", old, new)


def _same(old: Any, new: Any) -> bool:
    """Equal values of the same kind: `True` is not `1`, though `1` and `1.0` are one number."""
    return bool(old == new) and isinstance(old, bool) == isinstance(new, bool)


def join_key(path: str, key: str) -> str:
    """`spec` + `groups` -> `spec.groups`; keys that are not identifiers are quoted as Pulumi does:
    `metadata.labels["app.kubernetes.io/name"]`, `data["checkout.json"]`."""
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _holds_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, Mapping):
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secret(v) for v in value)
    return False
