"""Inputs that shape the rendered objects must be plain values, known when the program runs.

A namespace, a label, a path or a setting decides what every child looks like, and a preview (ours or
Pulumi's) must know it. Pulumi delivers an input that depends on another resource as an `Output` even
when its value is known, and an `Output` formatted into a Kubernetes name becomes the text "Calling
__str__ on an Output[T] …" — silently. So the schema marks these inputs plain, and a component given
an `Output` for one refuses it as an input error naming the property, instead of rendering nonsense.
Values merely passed through (tokens, receivers, keys: secrets) stay Inputs.
"""

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pulumi


def camel(name: str) -> str:
    """The schema's (and every other language's) spelling of an argument: `rule_labels` -> `ruleLabels`."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _holds_output(value: Any, depth: int = 0) -> bool:
    if isinstance(value, pulumi.Output):
        return True
    if depth >= 3 or isinstance(value, str | bytes):
        return False
    if isinstance(value, Mapping):
        return any(_holds_output(item, depth + 1) for item in value.values())
    if isinstance(value, Sequence):
        return any(_holds_output(item, depth + 1) for item in value)
    return False


class NotPlainError(pulumi.RunError):
    """An `Output` where a plain value is needed; names the property both ways it is spelt (Python's
    snake_case, the schema's camelCase) so the hosting provider can report it as an input error."""

    def __init__(self, owner: str, key: str) -> None:
        self.property_path = camel(key)
        self.reason = (
            "must be a plain value known when the program runs (it shapes the rendered objects), "
            "not an Output of another resource"
        )
        spelt = f"'{key}'" if self.property_path == key else f"'{key}' ({self.property_path})"
        super().__init__(f"{owner}: {spelt} {self.reason}")


def require_plain(owner: str, args: Mapping[str, Any], passed_through: Collection[str] = ()) -> None:
    """Refuse an `Output` in any argument but `passed_through` (see the module docstring)."""
    for key, value in args.items():
        if key not in passed_through and _holds_output(value):
            raise NotPlainError(owner, key)
