"""Incident notifications from gate decisions: PagerDuty and webhooks, grouped, deduplicated, durable."""

from sloplane.evaluator.notify.classify import Incident, IncidentClass, classify
from sloplane.evaluator.notify.config import ReceiversConfig, ReceiversFileError, load_receivers, resolve_routes
from sloplane.evaluator.notify.events import Notice, WarRoom
from sloplane.evaluator.notify.notifier import Notifier

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
