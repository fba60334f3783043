"""Incident notifications from gate decisions: PagerDuty and webhooks, grouped, deduplicated, durable.

The notices and the notifier are resolved on first use (`__getattr__`, PEP 562): the reports and governance
read `notify.classify`'s rules (which breach a release caused), and importing the package must not load the
notices' templates (jinja2) for them — `sloplane evaluate` starts without it (`tests/test_cli_startup.py`).
`classify` and `config` load nothing heavy and are imported as before (`classify` must be the function, not the
submodule of that name, whatever was imported first).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sloplane.evaluator.notify.classify import Incident, IncidentClass, classify
from sloplane.evaluator.notify.config import ReceiversConfig, ReceiversFileError, load_receivers, resolve_routes

if TYPE_CHECKING:
    from sloplane.evaluator.notify.events import Notice, WarRoom
    from sloplane.evaluator.notify.notifier import Notifier

_LATER = {"Notice": "events", "WarRoom": "events", "Notifier": "notifier"}

__all__ = [
    "Incident",
    "IncidentClass",
    "Notice",
    "Notifier",
    "ReceiversConfig",
    "ReceiversFileError",
    "WarRoom",
    "classify",
    "load_receivers",
    "resolve_routes",
]


def __getattr__(name: str) -> Any:
    """A package name, imported from its module when first asked for."""
    home = _LATER.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
