"""A preview diff as text for a terminal, JSON for scripts, and one Markdown pull-request comment.

Pure: a `Diff` in, a string out. Values are shown only as short excerpts around where they start
to differ (a PromQL expression or a dashboard's JSON is long; the changed number is what matters)
and a secret is always `[secret]` — the diff only ever holds its digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from sloplane.components.preview_diff import MISSING, Change, Diff, Op, Secret, Step

MARKER = "<!-- sloplane-preview -->"
"""The comment's first line: CI finds the comment it wrote before by it and edits it in place."""

COMMENT_LIMIT = 64_000
"""GitHub refuses comments over 65,536 characters; this leaves room for what CI wraps around it."""

NOT_PULUMI_PREVIEW = (
    "This is not `pulumi preview`: the stack program ran offline under the Pulumi SDK's mocks at both "
    "revisions, and this is the difference in what it declares. No state, so no drift; no providers, "
    "so no provider diff, defaults or computed values."
)

EXCERPT = 100
"""Characters of a value shown around its first difference."""


class ReportFormat(StrEnum):
    """`--format`: how the diff is printed."""

    TEXT = "text"
    MARKDOWN = "markdown"
    JSON = "json"


def report(diff: Diff, output_format: ReportFormat, heading: str) -> str:
    """The diff in the chosen format; `heading` says which stack and revisions were compared."""
    if output_format is ReportFormat.JSON:
        return json_report(diff)
    if output_format is ReportFormat.MARKDOWN:
        return markdown_report(diff, heading)
    return text_report(diff, heading)


def json_report(diff: Diff) -> str:
    """A list of steps `{"op", "type", "name", "urn", "paths"}`; replaces also say why."""
    steps = []
    for step in diff.steps:
        entry: dict[str, Any] = {"op": step.op.value, "type": step.type, "name": step.name, "urn": step.urn}
        entry["paths"] = step.paths
        if step.op is Op.REPLACE:
            entry["replaceBecause"] = list(step.replace_because)
            if step.previous_type:
                entry["previousType"] = step.previous_type
        steps.append(entry)
    return json.dumps(steps, indent=2)


def text_report(diff: Diff, heading: str) -> str:
    """Pulumi-like lines: one per step, its changed paths under it, the summary last."""
    lines = [heading, ""]
    lines += list(_step_lines(diff)) or ["  (no changes)"]
    return "\n".join([*lines, "", diff.summary()])


def markdown_report(diff: Diff, heading: str, limit: int = COMMENT_LIMIT) -> str:
    """One pull-request comment shaped like pulumi/actions': marker, heading, summary, the steps in
    `<details>`, trimmed from the end to `limit` characters with a line saying how much was cut."""
    head = [MARKER, f"#### sloplane preview: {heading}", "", f"> {NOT_PULUMI_PREVIEW}", "", f"**{diff.summary()}**", ""]
    if not diff.changed:
        return "\n".join([*head, "No changes."])
    body = list(_step_lines(diff))
    fence = "`" * max(3, 1 + max((len(run) for line in body for run in re.findall("`+", line)), default=0))
    opening = ["<details>", f"<summary>{len(diff.steps)} resource(s) change</summary>", "", f"{fence}diff"]
    closing = [fence, "", "</details>"]

    def comment(shown: list[str], cut: int) -> str:
        note = [f"... {cut} more line(s) trimmed: run `sloplane preview --diff` for all of them"] if cut else []
        return "\n".join([*head, *opening, *shown, *note, *closing])

    text = comment(body, 0)
    shown = len(body)
    while len(text) > limit and shown > 0:
        shown = max(0, shown - max(1, (len(text) - limit) // 80))  # about one line per 80 characters over
        text = comment(body[:shown], len(body) - shown)
    return text


def _step_lines(diff: Diff) -> Iterator[str]:
    for step in diff.steps:
        yield _step_title(step)
        for change in step.changes:
            yield "    " + change_line(change)


def _step_title(step: Step) -> str:
    title = f"{step.op.symbol} {step.type}  {step.name}"
    if step.previous_type:
        title += f"  (was {step.previous_type})"
    if step.replace_because:
        title += f"  [replace: {', '.join(step.replace_because)} changed]"
    return title


def change_line(change: Change) -> str:
    """`~ path: old => new`, `+ path: new`, `- path: old`; excerpts around the first difference."""
    if change.old is MISSING:
        return f"+ {change.path}: {_shown(change.new)}"
    if change.new is MISSING:
        return f"- {change.path}: {_shown(change.old)}"
    old, new = _excerpts(_plain(change.old), _plain(change.new))
    return f"~ {change.path}: {old} => {new}"


def _plain(value: Any) -> str:
    """A value as JSON text, secrets as `[secret]`."""
    if isinstance(value, Secret):
        return "[secret]"
    return json.dumps(_masked(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _masked(value: Any) -> Any:
    if isinstance(value, Secret):
        return "[secret]"
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _shown(value: Any) -> str:
    return _cut(_plain(value), 0)


def _excerpts(old: str, new: str) -> tuple[str, str]:
    """Both texts cut to `EXCERPT` characters from a little before the first character they differ in."""
    common = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
    start = max(0, common - EXCERPT // 3) if max(len(old), len(new)) > EXCERPT else 0
    return _cut(old, start), _cut(new, start)


def _cut(text: str, start: int) -> str:
    excerpt = text[start : start + EXCERPT]
    if start > 0:
        excerpt = "…" + excerpt
    if start + EXCERPT < len(text):
        excerpt += f"… ({len(text):,} characters)"
    return excerpt
