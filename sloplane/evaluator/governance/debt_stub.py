"""`govern debt --draft`: the stub of a reliability debt item for an SLO that missed its objective with no open debt.

Why a stub that does not validate: an item with placeholder text would count as open debt and silence the very
warning that asked for it. The stub names the SLO, its owner and the evidence (the period missed, its numbers),
and leaves the cause, the plan, the tracker link and the due date empty: `sloplane validate` names each field
until a person has filled it in and moved the file next to the declarations.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from sloplane.declaration.debt import DEBT_KIND
from sloplane.declaration.model import API_VERSION, Declaration

REVISIT_AFTER = timedelta(days=30)
"""A drafted item's revisit date: a month, the next review of a known violation."""


def _quoted(text: str) -> str:
    """A YAML scalar that reads back as `text` whatever it holds (a JSON string is a YAML flow scalar)."""
    return json.dumps(text, ensure_ascii=False)


def stub_name(declaration: Declaration, numbers: dict[str, Any]) -> str:
    """The item's name: the SLO's and the period's (`2025-10`, or a rolling window's end date), within 63
    characters, an RFC 1123 name."""
    label = numbers["label"].split("/")[-1][:10].lower().replace(":", "").replace("t", "-")
    suffix = f"-{label.strip('-')}"
    return declaration.name[: 63 - len(suffix)].rstrip("-") + suffix


def debt_stub(declaration: Declaration, numbers: dict[str, Any], today: date) -> str:
    """The stub's YAML text for `declaration`, which missed its objective in the period `numbers` describes."""
    spec = declaration.spec
    owner = spec.owners.dev or spec.owners.ops
    owner_name, contact = (owner.name, owner.contact) if owner else (spec.owners.team, "")
    sli = "no data" if numbers["sli"] is None else f"{numbers['sli'] * 100:.4g}%"
    evidence = (
        f"{declaration.name} missed its objective in {numbers['label']}: SLI {sli}, objective {numbers['objective']}%, "
        f"{numbers['badEvents']:.6g} bad of {numbers['events']:.6g} events, budget used {numbers['budgetUsed']:.0%}"
    )
    return "\n".join(
        [
            f"# Drafted by `sloplane govern debt --draft` on {today.isoformat()}. Fill in the cause, the plan, the",
            "# tracker link and the due date, then move this file next to the declarations. It does not validate",
            "# until then, on purpose: a placeholder item would count as open debt.",
            f"apiVersion: {API_VERSION}",
            f"kind: {DEBT_KIND}",
            "metadata:",
            f"  name: {stub_name(declaration, numbers)}",
            "spec:",
            f"  slos: [{declaration.name}]",
            "  kind: known-violation",
            f"  owner: {{name: {_quoted(owner_name)}, contact: {_quoted(contact or 'TODO: how to reach the owner')}}}",
            '  cause: ""',
            "  evidence:",
            f"    - {_quoted(evidence)}",
            "  remediation:",
            '    plan: ""',
            '    tracker: ""',
            "    due: null",
            f"  opened: {today.isoformat()}",
            f"  revisit: {(today + REVISIT_AFTER).isoformat()}",
            "  status: open",
            "",
        ]
    )
