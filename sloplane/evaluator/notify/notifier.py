"""The incident notifier: decisions in, pages and webhooks out, without ever slowing a gate.

`on_decision` (the evaluator's hook) only classifies the decision and writes to the outbox; a
dispatcher thread does the rest:

* Repeats: pipelines poll a failing gate (`--wait`), so one service failing on one revision is
  decided many times. Only the first decision per dedup key within `grouping.window` notifies;
  the rest are counted as suppressed.
* War rooms: a deployment-related failure is held for `grouping.wait`. If by then at least
  `grouping.minServices` services have failed on the same revision (or pipeline) within the
  window, one grouped event goes out instead of one page per service, and `on_war_room` is called
  (to open a major incident that freezes deployments; it runs on the dispatcher thread, after the
  room is recorded, and its exceptions are logged, not raised). Services failing later within the
  window join the room: the grouped event is sent again, with every member, under the same dedup
  key, to every member's receiver; PagerDuty merges it into the open incident.
* Roles: with `roles` in the receivers file, an incident goes to its owners by role (`roles.role_routes`:
  dev, ops, the dependency's ops, and the product owner on an exhausted budget), each notice saying its role
  and rule; the incident's own deployment route is held and grouped as above, the others are sent at once.
  Without `roles`, routing is by incident class exactly as before.
* Delivery: see `delivery`. Nothing is dropped: pending work is in the outbox file and a new
  notifier on the same file resumes it.

The outbox is a SQLite file by default; with replicas it is a PostgreSQL database (`outbox_postgres`:
every replica records, the one dispatching claims what it sends, so another can take over).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from sloplane.declaration.model import Declaration
from sloplane.evaluator.model import Decision
from sloplane.evaluator.notify.classify import Incident, IncidentClass, classify, incident
from sloplane.evaluator.notify.config import ReceiversConfig, ReceiversFileError, Routes, resolve_routes
from sloplane.evaluator.notify.delivery import DEFAULT_TIMEOUT, backoff, post
from sloplane.evaluator.notify.events import Notice, WarRoom, single_notice, war_room_notice
from sloplane.evaluator.notify.outbox import DEAD, HELD, PENDING, Delivery, HeldIncident, Outbox
from sloplane.evaluator.notify.roles import RoleRoute, role_routes, routed_notice, war_room_routed
from sloplane.evaluator.storage.postgres_conninfo import is_postgres_url

if TYPE_CHECKING:
    from sloplane.evaluator.notify.outbox_postgres import PostgresOutbox

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
WarRoomHook = Callable[[WarRoom], None]

IDLE_POLL_SECONDS = 1.0
"""Longest the dispatcher sleeps with nothing due; new work wakes it at once."""
FLUSH_POLL_SECONDS = 0.01
DELIVERED_RETENTION_SECONDS = 7 * 24 * 3600.0
"""Accepted deliveries are kept a week (for questions like "were we paged?"), then pruned."""
PRUNE_EVERY_SECONDS = 600.0
UNRECORDED_LIMIT = 10_000
"""Decisions kept in memory while the outbox cannot take them (a few minutes of a busy fleet failing)."""
UNRECORDED_PER_TRY = 50
"""Kept decisions recorded per try: a gate's answer waits for these, the dispatcher takes the rest."""


def utc_now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def open_outbox(target: str | Path | Outbox | PostgresOutbox) -> Outbox | PostgresOutbox:
    """An outbox as given; a `postgresql://` URL opens the PostgreSQL one; anything else names a SQLite file.

    PostgreSQL's driver is imported only for a URL, so the single-replica default never loads it.
    """
    if not isinstance(target, str | Path):
        return target
    if is_postgres_url(target):
        from sloplane.evaluator.notify.outbox_postgres import PostgresOutbox  # noqa: PLC0415 - psycopg only for a URL

        return PostgresOutbox(str(target))
    return Outbox(target)


class Notifier:
    """Classifies decisions into incidents and delivers them to the receivers declarations name."""

    def __init__(
        self,
        fleet: Mapping[str, Declaration],
        receivers: ReceiversConfig,
        outbox_path: str | Path | Outbox | PostgresOutbox,
        *,
        clock: Clock = utc_now,
        on_war_room: WarRoomHook | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        rng: random.Random | None = None,
    ) -> None:
        self.config = receivers
        role_problems = [f"{'.'.join(loc)}: {message}" for loc, message in receivers.role_problems()]
        try:
            self.routes: dict[str, Routes] = resolve_routes(fleet, receivers)
        except ReceiversFileError as error:  # every problem at once, the declarations' and the roles'
            raise ReceiversFileError([*error.problems, *role_problems]) from None
        if role_problems:
            raise ReceiversFileError(role_problems)
        owners = {declaration.spec.owners.team for declaration in fleet.values()}
        for key in receivers.unowned_teams(owners):
            log.warning("receivers file: %s names a team no SLO declares as its owner: nothing is routed by it", key)
        self._fleet = fleet
        self._runbooks = {name: declaration.spec.alerting.runbook for name, declaration in fleet.items()}
        self.outbox = open_outbox(outbox_path)
        """The notifier's durable state (`open_outbox`: a file, a PostgreSQL URL, or an outbox opened by the
        caller, for a password file or claim settings); `close` closes it whichever it is."""
        self._clock = clock
        self._on_war_room = on_war_room
        self._timeout = timeout
        self._rng = rng or random.Random()
        self._session = requests.Session()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned_at = 0.0
        self._unrecorded: deque[Decision] = deque()
        self._unrecorded_lock = threading.Lock()
        self._unrecording = threading.Lock()
        self.errors = 0
        """Faults recorded and survived (outbox writes from `on_decision`, dispatcher steps, callbacks)."""

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher thread (resuming whatever the outbox holds)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sloplane-notifier", daemon=True)
        self._thread.start()

    def pause(self, timeout: float = 15.0) -> None:
        """Stop the dispatcher after its current delivery, keeping the outbox open: a replica that stops being
        the leader still records notices (`on_decision`), and `start` resumes dispatching if it leads again."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        release = getattr(self.outbox, "release_claims", None)
        if release is not None:  # a shared outbox: hand this dispatcher's claims to the next leader at once
            release()

    def close(self, timeout: float = 15.0) -> None:
        """Stop the dispatcher after its current delivery and close the outbox; pending work stays.

        Decisions the outbox never took are tried once more, and any still left are logged by id: they are
        in the decision log, but their notifications are lost with this process.
        """
        self._record_unrecorded()
        if self._unrecorded:
            lost = ", ".join(decision.id for decision in list(self._unrecorded)[:20])
            log.error("%d notifications never recorded, lost on close (decisions %s)", len(self._unrecorded), lost)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._session.close()
        self.outbox.close()

    def flush(self, timeout: float, *, include_held: bool = False) -> bool:
        """Wait until nothing is pending (only delivered or dead, and held unless `include_held`).

        True when drained, False on timeout. For tests and orderly shutdowns.
        """
        deadline = time.monotonic() + timeout
        self._wake.set()
        while True:
            counts = self.outbox.counts()
            if counts[PENDING] == 0 and not (include_held and counts[HELD]):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(FLUSH_POLL_SECONDS)

    # -- observing --------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Deliveries by state, held incidents, and counters (suppressed, attempts, retries, warRooms...)."""
        counters = self.outbox.counters()
        names = ("suppressed", "attempts", "retries", "warRooms", "unrouted")
        return {**self.outbox.counts(), **{name: counters.get(name, 0) for name in names}, "errors": self.errors}

    def pending(self) -> list[dict[str, Any]]:
        """Deliveries not yet accepted by their receiver."""
        return [delivery.to_dict() for delivery in self.outbox.deliveries(PENDING)]

    def dead(self) -> list[dict[str, Any]]:
        """Deliveries refused for good, with the receiver's error."""
        return [delivery.to_dict() for delivery in self.outbox.deliveries(DEAD)]

    # -- the evaluator's hook ---------------------------------------------------------------------

    def on_decision(self, decision: Decision) -> None:
        """Classify and record; never raises (a notifier fault must not turn a gate answer into an error).

        A decision the outbox could not take (the database failed between the decision's record and this
        call) is kept in memory and recorded again before the next one, and by the dispatcher, so that a
        passing outage does not lose its notification; at most `UNRECORDED_LIMIT` are kept (then the oldest
        is dropped, counted in `errors` and logged).
        """
        self._record_unrecorded()
        try:
            self._record(decision)
        except Exception:
            self.errors += 1
            log.exception("could not record decision %s for notification; kept to try again", decision.id)
            self._keep_unrecorded(decision)

    def _keep_unrecorded(self, decision: Decision) -> None:
        with self._unrecorded_lock:
            if len(self._unrecorded) == UNRECORDED_LIMIT:
                dropped = self._unrecorded.popleft()
                self.errors += 1
                log.error("dropped the notification of decision %s: too many unrecorded", dropped.id)
            self._unrecorded.append(decision)

    def record_unrecorded(self) -> None:
        """Try the kept decisions again (the server's health round calls it on every replica, leader or not)."""
        try:
            self._record_unrecorded()
        except Exception:
            log.exception("could not try the kept notifications again")

    def _record_unrecorded(self) -> None:
        """Record the kept decisions, oldest first, until one fails again (it stays first); one thread at a time."""
        if not self._unrecorded or not self._unrecording.acquire(blocking=False):
            return
        try:
            for _ in range(min(len(self._unrecorded), UNRECORDED_PER_TRY)):  # a gate's thread is not a drain
                decision = self._unrecorded[0]
                try:
                    self._record(decision)
                except Exception:
                    return
                with self._unrecorded_lock:
                    if self._unrecorded and self._unrecorded[0] is decision:
                        self._unrecorded.popleft()
                log.info("recorded the notification of decision %s on a later try", decision.id)
        finally:
            self._unrecording.release()

    def unrecorded(self) -> int:
        """Decisions kept in memory because the outbox could not take them yet."""
        return len(self._unrecorded)

    def _receiver(self, slo: str, kind: IncidentClass) -> str | None:
        routes = self.routes.get(slo)
        if routes is not None:
            return routes.for_kind(kind.value)
        return self.config.defaults.deployment if kind is IncidentClass.DEPLOYMENT else self.config.defaults.background

    def _role_routes(self, facts: Incident) -> list[RoleRoute]:
        """The incident's routes by role; none without `roles` (or for an SLO the fleet does not declare)."""
        if self.config.roles is None:
            return []
        return role_routes(facts, self._fleet, self.config)

    def _record(self, decision: Decision) -> None:
        kind = classify(decision)
        if kind is None:
            return
        facts = incident(decision, kind, runbook=self._runbooks.get(decision.slo))
        routes = self._role_routes(facts)
        if routes:
            self._record_by_role(facts, routes)
            return
        receiver = self._receiver(decision.slo, kind)
        if receiver is None:
            self.outbox.bump("unrouted")
            log.warning(
                "SLO %s has a %s incident but no receiver; set a default in the receivers file", decision.slo, kind
            )
            return
        now = self._now()
        grouping = self.config.grouping
        with self.outbox.transaction():
            if self.outbox.recently_sent(facts.dedup_key, now - grouping.window.total_seconds()):
                self.outbox.bump("suppressed")
                return
            self.outbox.mark_sent(facts.dedup_key, now)
            if facts.group is None:
                self._enqueue({receiver}, single_notice(facts), now)
            else:
                self.outbox.hold(facts, receiver, now)
        self._wake.set()

    def _record_by_role(self, facts: Incident, routes: list[RoleRoute]) -> None:
        """Record one incident's role routes: the held one waits for grouping, the rest are enqueued now."""
        for route in routes:
            if route.receiver is None:
                self.outbox.bump("unrouted")
                log.warning(
                    "SLO %s: no receiver for the %s role of team %s (%s); set roles.%s in the receivers file",
                    facts.slo,
                    route.role,
                    route.team,
                    route.rule,
                    route.role,
                )
        routed = [(route, route.receiver) for route in routes if route.receiver is not None]
        if not routed:
            return
        now = self._now()
        with self.outbox.transaction():
            if self.outbox.recently_sent(facts.dedup_key, now - self.config.grouping.window.total_seconds()):
                self.outbox.bump("suppressed")
                return
            self.outbox.mark_sent(facts.dedup_key, now)
            for route, receiver in routed:
                if route.held:
                    self.outbox.hold(facts, receiver, now)
                else:
                    self._enqueue({receiver}, routed_notice(single_notice(facts), route), now)
        self._wake.set()

    def _alone(self, facts: Incident) -> Notice:
        """A held incident released on its own: under roles, the notice of its held (dev) route."""
        notice = single_notice(facts)
        held = next((route for route in self._role_routes(facts) if route.held), None)
        return notice if held is None else routed_notice(notice, held)

    def _room(self, room: WarRoom) -> Notice:
        notice = war_room_notice(room)
        return notice if self.config.roles is None else war_room_routed(notice)

    # -- the dispatcher ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock().timestamp()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
                idle = self._idle()
            except Exception:  # a full disk or a locked file must not end delivery for good
                self.errors += 1
                log.exception("notifier dispatcher step failed; retrying")
                idle = IDLE_POLL_SECONDS
            self._wake.wait(idle)
            self._wake.clear()

    def _idle(self) -> float:
        oldest = self.outbox.oldest_held()
        release = None if oldest is None else oldest + self.config.grouping.wait.total_seconds()
        due = [t for t in (release, self.outbox.next_delivery()) if t is not None]
        if not due:
            return IDLE_POLL_SECONDS
        return min(IDLE_POLL_SECONDS, max(0.0, min(due) - self._now()))

    def _step(self) -> None:
        self._record_unrecorded()
        now = self._now()
        if now - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self.outbox.prune(now - DELIVERED_RETENTION_SECONDS, now - self.config.grouping.window.total_seconds())
            self._pruned_at = now
        for room in self._release(now):
            self._opened(room)
        for delivery in self.outbox.due_deliveries(self._now()):
            if self._stop.is_set():
                return
            self._deliver(delivery)

    def _opened(self, room: WarRoom) -> None:
        log.warning("war room %s opened: %s", room.key, ", ".join(room.services))
        if self._on_war_room is None:
            return
        try:
            self._on_war_room(room)
        except Exception:
            self.errors += 1
            log.exception("on_war_room callback failed for %s", room.key)

    def _enqueue(self, receivers: set[str], notice: Notice, now: float) -> None:
        for name in sorted(receivers):
            receiver = self.config.receivers[name]
            for channel, configured in (("pagerduty", receiver.pagerduty), ("webhook", receiver.webhook)):
                if configured is not None:
                    self.outbox.enqueue(name, channel, notice, now)

    # -- grouping ---------------------------------------------------------------------------------

    def _release(self, now: float) -> list[WarRoom]:
        """Decide, for every held incident whose wait is over, whether it goes alone or in a war room."""
        opened: list[WarRoom] = []
        handled: set[int] = set()
        with self.outbox.transaction():
            for held in self.outbox.due(now - self.config.grouping.wait.total_seconds()):
                if held.id not in handled:
                    room = self._release_one(held, now, handled)
                    if room is not None:
                        opened.append(room)
        return opened

    def _release_one(self, held: HeldIncident, now: float, handled: set[int]) -> WarRoom | None:
        group = held.incident.group
        assert group is not None  # only groupable incidents are held
        since = now - self.config.grouping.window.total_seconds()
        members = self.outbox.war_room(group, since)
        if members is not None:  # join the open room
            members = _merge(members, [(held.incident, held.receiver)])
            self.outbox.save_war_room(group, members, None)
            self._enqueue({r for _, r in members}, self._room(WarRoom(group, _incidents(members))), now)
            self._mark(handled, [held.id])
            return None
        peers = self.outbox.in_group(group, since)
        if len({peer.incident.service for peer in peers}) < self.config.grouping.min_services:
            self._enqueue({held.receiver}, self._alone(held.incident), now)
            self._mark(handled, [held.id])
            return None
        members = _merge([], [(peer.incident, peer.receiver) for peer in peers])
        room = WarRoom(group, _incidents(members))
        self.outbox.save_war_room(group, members, now)
        self._enqueue({r for _, r in members}, self._room(room), now)
        self._mark(handled, [peer.id for peer in peers if peer.state == HELD])
        self.outbox.bump("warRooms")
        return room

    def _mark(self, handled: set[int], ids: list[int]) -> None:
        handled.update(ids)
        self.outbox.release(ids)

    # -- delivery ---------------------------------------------------------------------------------

    def _deliver(self, delivery: Delivery) -> None:
        receiver = self.config.receivers.get(delivery.receiver)
        pagerduty = receiver.pagerduty if receiver is not None else None
        webhook = receiver.webhook if receiver is not None else None
        if delivery.channel == "pagerduty" and pagerduty is not None:
            attempt = post(
                self._session, pagerduty.url, delivery.notice.pagerduty(pagerduty.routing_key), {}, self._timeout
            )
        elif delivery.channel == "webhook" and webhook is not None:
            attempt = post(self._session, webhook.url, delivery.notice.webhook(), dict(webhook.headers), self._timeout)
        else:
            self.outbox.dead(delivery.id, f"receiver '{delivery.receiver}' has no {delivery.channel} channel any more")
            return
        self.outbox.bump("attempts")
        if attempt.delivered:
            self.outbox.delivered(delivery.id, self._now())
            return
        error = attempt.error or "unknown error"
        attempts = delivery.attempts + 1
        limit = self.config.retry.max_attempts
        if not attempt.retry or (limit and attempts >= limit):
            reason = error if not attempt.retry else f"gave up after {attempts} attempts: {error}"
            log.error("notification %s to %s dead: %s", delivery.notice.dedup_key, delivery.receiver, reason)
            self.outbox.dead(delivery.id, reason)
            return
        wait = (
            attempt.retry_after if attempt.retry_after is not None else backoff(attempts, self.config.retry, self._rng)
        )
        log.warning("notification to %s failed (%s); retry in %.2fs", delivery.receiver, error, wait)
        self.outbox.bump("retries")
        self.outbox.retry(delivery.id, self._now() + wait, error)


def _merge(members: list[tuple[Incident, str]], joining: list[tuple[Incident, str]]) -> list[tuple[Incident, str]]:
    """Members keyed by (service, SLO); a newer incident of the same pair replaces the older one."""
    merged = {(member.service, member.slo): (member, receiver) for member, receiver in [*members, *joining]}
    return list(merged.values())


def _incidents(members: list[tuple[Incident, str]]) -> tuple[Incident, ...]:
    return tuple(member for member, _ in members)
