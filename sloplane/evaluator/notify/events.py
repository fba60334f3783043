"""The bodies sent: a PagerDuty Events API v2 trigger, and sloplane's own webhook body.

Both are rendered from one `Notice`, so a page and a chat message about an incident state the same
facts. The webhook body (`kind: sloplane.incident`, `version: 1`)::

    {
      "kind": "sloplane.incident",
      "version": 1,
      "class": "deployment" | "background",
      "dedupKey": "sloplane/checkout/abc123",      # stable per incident: repeats update, not re-page
      "summary": "...", "severity": "critical" | "error", "timestamp": "<decision time, ISO 8601>",
      "warRoom": null | {"key": "revision/abc123", "revision": ..., "pipeline": ...},
      "incidents": [                                # one entry; a war room has one per service
        {"service", "slo", "stage", "revision", "pipeline", "rollout", "decisionId", "outcome",
         "decidedAt", "burnRates": {"5m": 14.2, ...}, "budgetRemaining", "reasons": [{code, message, values}]}
      ],
      "links": [{"href": ..., "text": ...}]
    }

The summaries' wording is in `sloplane/templates/notify/`.

Severity: a release that breaches is `critical` (rolling back now is the fix and it is urgent);
a background breach is `error` (someone must look, but paging a release owner will not help).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sloplane.core.templating import render_line
from sloplane.evaluator.notify.classify import Incident, IncidentClass

SUMMARY_LIMIT = 1024
"""PagerDuty refuses longer summaries."""
SOURCE = "sloplane"
WEBHOOK_KIND = "sloplane.incident"
WEBHOOK_VERSION = 1


@dataclass(frozen=True)
class WarRoom:
    """Several services failing on one release: one incident, opened once, joined by later failures."""

    key: str
    """`revision/<rev>` or `pipeline/<id>`."""
    members: tuple[Incident, ...]

    @property
    def dedup_key(self) -> str:
        """`sloplane/war-room/<key>`: every update of the room lands on one PagerDuty incident."""
        return f"sloplane/war-room/{self.key}"

    @property
    def revision(self) -> str | None:
        """The release's revision, when grouped by one (or when every member shares it)."""
        revisions = {member.revision for member in self.members}
        return revisions.pop() if len(revisions) == 1 else None

    @property
    def pipeline(self) -> str | None:
        """The pipeline, when every member shares it."""
        pipelines = {member.pipeline for member in self.members}
        return pipelines.pop() if len(pipelines) == 1 else None

    @property
    def services(self) -> tuple[str, ...]:
        """The distinct services in the room, sorted."""
        return tuple(sorted({member.service for member in self.members}))


@dataclass(frozen=True)
class Notice:
    """What one notification says, whichever channel carries it."""

    kind: IncidentClass
    dedup_key: str
    summary: str
    severity: str
    timestamp: str
    component: str
    group: str
    custom_details: dict[str, Any]
    incidents: list[dict[str, Any]]
    war_room: dict[str, Any] | None = None
    links: list[dict[str, str]] = field(default_factory=list)

    def pagerduty(self, routing_key: str) -> dict[str, Any]:
        """The Events API v2 trigger."""
        event: dict[str, Any] = {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": self.dedup_key,
            "payload": {
                "summary": self.summary,
                "source": SOURCE,
                "severity": self.severity,
                "timestamp": self.timestamp,
                "component": self.component,
                "group": self.group,
                "class": self.kind.value,
                "custom_details": self.custom_details,
            },
        }
        if self.links:
            event["links"] = self.links
        return event

    def webhook(self) -> dict[str, Any]:
        """The documented `sloplane.incident` body."""
        return {
            "kind": WEBHOOK_KIND,
            "version": WEBHOOK_VERSION,
            "class": self.kind.value,
            "dedupKey": self.dedup_key,
            "summary": self.summary,
            "severity": self.severity,
            "timestamp": self.timestamp,
            "warRoom": self.war_room,
            "incidents": self.incidents,
            "links": self.links,
        }

    def to_json(self) -> dict[str, Any]:
        """For the outbox."""
        return {
            "kind": self.kind.value,
            "dedupKey": self.dedup_key,
            "summary": self.summary,
            "severity": self.severity,
            "timestamp": self.timestamp,
            "component": self.component,
            "group": self.group,
            "customDetails": self.custom_details,
            "incidents": self.incidents,
            "warRoom": self.war_room,
            "links": self.links,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notice:
        """The inverse of `to_json`."""
        return cls(
            kind=IncidentClass(data["kind"]),
            dedup_key=data["dedupKey"],
            summary=data["summary"],
            severity=data["severity"],
            timestamp=data["timestamp"],
            component=data["component"],
            group=data["group"],
            custom_details=data["customDetails"],
            incidents=data["incidents"],
            war_room=data["warRoom"],
            links=data["links"],
        )


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _severity(kind: IncidentClass) -> str:
    return "critical" if kind is IncidentClass.DEPLOYMENT else "error"


def _links(incidents: tuple[Incident, ...]) -> list[dict[str, str]]:
    runbooks = dict.fromkeys(i.runbook for i in incidents if i.runbook)
    return [{"href": url, "text": "Runbook"} for url in runbooks if url]


def single_notice(incident: Incident) -> Notice:
    """One service's incident."""
    summary = render_line(
        "notify/incident-summary.txt",
        service=incident.service,
        slo=incident.slo,
        stage=incident.stage,
        deployment=incident.kind is IncidentClass.DEPLOYMENT,
        release=incident.release,
        breaches=[reason["message"] for reason in incident.breaches()],
    )
    return Notice(
        kind=incident.kind,
        dedup_key=incident.dedup_key,
        summary=_clip(summary),
        severity=_severity(incident.kind),
        timestamp=incident.decided_at,
        component=incident.service,
        group=incident.slo,
        custom_details=incident.details(),
        incidents=[incident.details()],
        links=_links((incident,)),
    )


def war_room_notice(room: WarRoom) -> Notice:
    """One event for every service failing on a release."""
    services = room.services
    summary = render_line("notify/war-room-summary.txt", key=room.key, services=services)
    members = [member.details() for member in room.members]
    facts = {"key": room.key, "revision": room.revision, "pipeline": room.pipeline}
    return Notice(
        kind=IncidentClass.DEPLOYMENT,
        dedup_key=room.dedup_key,
        summary=_clip(summary),
        severity="critical",
        timestamp=max(member.decided_at for member in room.members),
        component=",".join(services),
        group="war-room",
        custom_details={"warRoom": room.key, "revision": room.revision, "pipeline": room.pipeline, "services": members},
        incidents=members,
        war_room=facts,
        links=_links(room.members),
    )
