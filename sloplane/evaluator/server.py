"""Assembling the evaluator service: backend, cache, decision log, controls, notifier, export, HTTP app.

`sloplane serve` and the tests build the same thing through `build_service` (or `build_app` for the
app alone), so what is tested is what runs. Tokens are required: an evaluator that anyone on the
network can ask to record decisions is an audit trail anyone can write to. The notifier and the S3
exporter run on their own threads, started and stopped with the service: a decision never waits
for a page to be delivered or a batch to be uploaded. So does verifying the decision log's hash chain
on start (`storage.chain_audit`): a broken chain is shown in `/readyz` and `/metrics` and logged, and
gates go on deciding by their policies (it is an audit finding, not a fault of the next release).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI

from sloplane.declaration.debt import ReliabilityDebt
from sloplane.evaluator.contracts import ReleaseControlsStore
from sloplane.evaluator.export import DecisionSource, FencedSource, PeriodicExporter, S3Location, s3_client
from sloplane.evaluator.governance.feedback import Sources, reclassify_due
from sloplane.evaluator.governance.quarterly_findings import governance_agenda
from sloplane.evaluator.governance.risk_now import BAND_NAMES, FleetRiskNow
from sloplane.evaluator.history.catalog import Catalog
from sloplane.evaluator.history.periodic import PeriodicRollup
from sloplane.evaluator.history.report_kinds import ReportSources
from sloplane.evaluator.history.status_board import StatusBoard, StoreRows
from sloplane.evaluator.http.app import create_app
from sloplane.evaluator.http.assessment_routes import AssessmentSources, Assessor
from sloplane.evaluator.http.auth import TokenStore
from sloplane.evaluator.http.metrics import EvaluatorMetrics
from sloplane.evaluator.http.report_routes import ReportDesk
from sloplane.evaluator.integrations.argocd import KubernetesApi, SyncWindowReconciler
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend
from sloplane.evaluator.measuring.health import PROBE_INTERVAL_SECONDS, HealthProbe
from sloplane.evaluator.notify import Notifier, WarRoom, load_receivers
from sloplane.evaluator.service import Evaluator, utc_now
from sloplane.evaluator.storage.chain_audit import ChainAudit
from sloplane.evaluator.storage.leadership import AdvisoryLockLeadership, Leadership, SoleLeader
from sloplane.evaluator.storage.open import (
    open_assessments,
    open_decision_log,
    open_feedback,
    open_release_controls,
    open_rollups,
)
from sloplane.evaluator.storage.postgres_conninfo import is_postgres_url
from sloplane.evaluator.storage.rollups import RollupError
from sloplane.semantics.subjects import Fleet

logger = logging.getLogger(__name__)

ROLLUP_TIMEOUT_SECONDS = 60.0
"""How long the periodic rollup waits for one range query (a week of the fleet's hours)."""


@dataclass(frozen=True)
class ServerConfig:
    """Where to read SLIs, where to record, who may ask."""

    prometheus: str | None
    """Prometheus's base URL; None: SLIs are read from Datadog only."""
    db: Path | str
    """The decision log: a SQLite file, or a `postgresql://` URL (then freezes, incidents and the outbox live in
    that database too, every replica shares them, and one leader does the singleton work)."""
    tokens: TokenStore
    staleness: timedelta = timedelta(minutes=5)
    timeout: float = 5.0
    controls: Path | str | None = None
    """The freezes and incidents store; None: the decision log's file or database."""
    receivers: Path | None = None
    """PagerDuty and webhook receivers (`--receivers`); None: no notifications."""
    outbox: Path | str | None = None
    """The notifier's outbox; None: `<db stem>-outbox.db` next to a SQLite log, or the log's database."""
    export_s3: str | None = None
    """`s3://bucket/prefix` to export the decision log to; None: no export."""
    export_interval: timedelta = timedelta(minutes=5)
    rollup_interval: timedelta | None = timedelta(hours=1)
    """How often the leader rolls the fleet's hours up into the database (`history.periodic`); None: never."""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    export_source: str | None = None
    """The folder under the prefix this evaluator writes; None: the decision log's file stem."""
    argocd_project: str | None = None
    """While a major incident is open, keep a deny sync window in this Argo CD AppProject; None: don't."""
    argocd_namespace: str = "argocd"
    argocd_applications: tuple[str, ...] = ("*",)
    health_interval: timedelta = timedelta(seconds=PROBE_INTERVAL_SECONDS)
    """How often the background probe asks an idle backend, and retries a decision log that failed."""
    public_status: bool = False
    """Serve `/status` and `/status.json` without a token, with the SLOs marked `statusPage.public`."""
    status_name: str = "sloplane"
    """The status page's name."""
    datadog: Callable[[float], DatadogCounts] | None = None
    """Makes the Datadog transport (given the timeout) when SLIs are read from Datadog; it holds the keys,
    which are therefore never a field of this config (nor in its repr)."""
    debts: tuple[ReliabilityDebt, ...] = ()
    """The reliability debt register read with the declarations: the quarterly review's governance findings."""


@dataclass
class EvaluatorService:
    """The HTTP app and what runs beside it; `start` and `close` the background threads."""

    app: FastAPI
    evaluator: Evaluator
    controls: ReleaseControlsStore
    notifier: Notifier | None = None
    exporter: PeriodicExporter | None = None
    sync_windows: SyncWindowReconciler | None = None
    probe: HealthProbe | None = None
    chain: ChainAudit | None = None

    leadership: Leadership = field(default_factory=SoleLeader)
    """Who does the singleton work (notification dispatch, the export, the deny window): this replica alone
    with SQLite; with PostgreSQL, whichever replica holds the advisory lock."""
    exporter_factory: Callable[[], PeriodicExporter | None] | None = None
    rollup_factory: Callable[[], PeriodicRollup | None] | None = None
    """Makes the periodic rollup (its store opened) each time this replica becomes the leader."""
    rollup: PeriodicRollup | None = None
    """Makes a fresh exporter each time this replica becomes the leader (an exporter runs once)."""
    closers: list[Callable[[], None]] = field(default_factory=list)
    """What else `close` closes (the status page's rollup reader)."""
    _leading: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start verifying the log's hash chain and probing health on every replica; the singleton work starts
        when this replica is (or becomes) the leader."""
        if self.chain is not None:
            self.chain.start()
        if self.probe is not None:
            self.probe.start()
        self.leadership.start()
        if self.leadership.is_leader:
            self.lead(True)

    def lead(self, leader: bool) -> None:
        """Start the singleton work on becoming the leader, stop it on stepping down (called by the election)."""
        with self._lock:
            if leader == self._leading:
                return
            self._leading = leader
            if leader:
                self._start_singletons()
            else:
                self._stop_singletons()

    def _start_singletons(self) -> None:
        if self.notifier is not None:
            self.notifier.start()
        if self.exporter_factory is not None:
            self.exporter = self.exporter_factory()
        if self.exporter is not None:
            self.exporter.start()
        if self.sync_windows is not None:
            self.sync_windows.start()
        if self.rollup_factory is not None:
            self.rollup = self._started_rollup(self.rollup_factory)

    @staticmethod
    def _started_rollup(factory: Callable[[], PeriodicRollup | None]) -> PeriodicRollup | None:
        """The rollup started, or None (logged) when its store cannot be opened: the rest of the leader's work
        goes on, and the next election tries again."""
        try:
            rollup = factory()
        except RollupError as error:
            logger.warning("no periodic rollup: %s", error)
            return None
        if rollup is not None:
            rollup.start()
        return rollup

    def _stop_rollup(self) -> None:
        if self.rollup is not None:
            self.rollup.stop()
            self.rollup.close()
            self.rollup = None

    def _stop_singletons(self) -> None:
        self._stop_rollup()
        if self.sync_windows is not None:
            self.sync_windows.stop()
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None if self.exporter_factory is not None else self.exporter
        if self.notifier is not None:
            self.notifier.pause()

    def close(self) -> None:
        """Stop the threads (a last export included), step down, and close the stores."""
        with self._lock:
            if self._leading:
                self._stop_rollup()
                if self.sync_windows is not None:
                    self.sync_windows.stop()
                if self.exporter is not None:
                    self.exporter.stop()
            self._leading = False
        self.leadership.stop()
        if self.notifier is not None:
            self.notifier.close()
        if self.probe is not None:
            self.probe.stop()
        for close in self.closers:
            close()
        self.controls.close()


def open_war_room(controls: ReleaseControlsStore) -> Callable[[WarRoom], None]:
    """A hook for the notifier: several services failing on one release opens a major incident that
    names no service, so it freezes every gate (`freezeOnMajorIncident`) until someone resolves it."""

    def hook(room: WarRoom) -> None:
        release = f"revision {room.revision}" if room.revision else room.key
        title = f"{len(room.services)} services failing on {release}: {', '.join(room.services)}"
        # No services named: a release breaking several services at once stops every release.
        controls.open_incident(title, "major", "sloplane-notifier", key=room.dedup_key, source="notifier")

    return hook


def _default_outbox(db: Path | str) -> Path | str:
    if is_postgres_url(db):
        return str(db)
    path = Path(db)
    return path.with_name(f"{path.stem}-outbox.db")


def _store_stem(db: Path | str) -> str:
    """The export's default source: the SQLite file's stem, or the database's name."""
    if is_postgres_url(db):
        return urlsplit(str(db)).path.strip("/") or "postgres"
    return Path(db).stem


def _notifier(fleet: Fleet, config: ServerConfig, controls: ReleaseControlsStore) -> Notifier | None:
    if config.receivers is None:
        return None
    outbox = config.outbox or _default_outbox(config.db)
    return Notifier(fleet, load_receivers(config.receivers), outbox, on_war_room=open_war_room(controls))


def _exporter(config: ServerConfig, log: DecisionSource) -> PeriodicExporter | None:
    if config.export_s3 is None:
        return None
    client = s3_client(config.s3_endpoint_url, config.s3_region)
    source = config.export_source or _store_stem(config.db)
    location = S3Location.parse(config.export_s3)
    fence = log.export_fence if isinstance(log, FencedSource) else None  # replicas share the log: fence rounds
    return PeriodicExporter(log, client, location, source=source, interval=config.export_interval, fence=fence)


def _sync_windows(config: ServerConfig, controls: ReleaseControlsStore) -> SyncWindowReconciler | None:
    if config.argocd_project is None:
        return None
    api = KubernetesApi.in_cluster()
    project, namespace = config.argocd_project, config.argocd_namespace
    return SyncWindowReconciler(controls, api, project, namespace, applications=config.argocd_applications)


def _report_backend(config: ServerConfig) -> PrometheusBackend | None:
    """Prometheus for the reports that replay it (`oncall`): a client of its own, as the rollup's, so that a
    report's minute-by-minute range queries neither wait on a gate's timeout nor open the gates' breaker."""
    if config.prometheus is None:
        return None
    return PrometheusBackend(config.prometheus, timeout=ROLLUP_TIMEOUT_SECONDS)


def build_service(fleet: Fleet, config: ServerConfig) -> EvaluatorService:
    """Everything `sloplane serve` runs, not yet started. Raises on a bad receivers file or S3 URL."""
    metrics = EvaluatorMetrics()

    def observe(seconds: float, outcome: str) -> None:
        metrics.observe_backend_request(backend="prometheus", outcome=outcome, seconds=seconds)

    def cache_lookup(hit: bool) -> None:
        metrics.record_cache(hit=hit)

    backend = (
        None
        if config.prometheus is None
        else PrometheusBackend(config.prometheus, timeout=config.timeout, observe=observe)
    )
    datadog = None if config.datadog is None else config.datadog(config.timeout)
    controls = open_release_controls(config.controls or config.db)
    log = open_decision_log(config.db)
    assessments = open_assessments(config.db)
    feedback = open_feedback(config.db)
    notifier = _notifier(fleet, config, controls)
    evaluator = Evaluator(
        fleet,
        backend,
        log,
        staleness=config.staleness,
        datadog=datadog,
        on_cache_lookup=cache_lookup,
        controls=controls,
        on_decision=None if notifier is None else notifier.on_decision,
        assessments=assessments,
    )
    if notifier is not None:
        metrics.watch_notifications(notifier.stats)
    metrics.watch_controls(
        lambda: len(controls.freezes(at=utc_now())), lambda: len(controls.open_major_incidents(utc_now()))
    )
    chain = ChainAudit(log)
    metrics.watch_chain(chain.state)
    metrics.watch_risk(FleetRiskNow(fleet, evaluator.evaluate, evaluator.now), BAND_NAMES)
    rows = StoreRows(lambda: open_rollups(config.db))
    report_backend = _report_backend(config)
    board = StatusBoard(evaluator, controls, rows, name=config.status_name)
    classifying = Sources(fleet, rows, log, report_backend)
    assessing = AssessmentSources(fleet, rows, log, controls, evaluator.evaluate)
    agenda = governance_agenda(
        rows, debts=config.debts, feedback=lambda since, until: feedback.reports(since=since, until=until)
    )
    app = create_app(
        evaluator,
        config.tokens,
        metrics,
        controls,
        chain,
        catalog=Catalog(evaluator, controls),
        status=(board, config.public_status),
        reports=ReportDesk(ReportSources(fleet, rows, log, controls, report_backend, agenda)),
        assessor=Assessor(assessments, assessing),
        feedback=(feedback, classifying),
    )
    also = None if notifier is None else notifier.record_unrecorded  # kept notices, retried on every replica
    probe = HealthProbe(evaluator.backend, log, config.health_interval.total_seconds(), also=also)
    sync_windows = _sync_windows(config, controls)
    service = EvaluatorService(app, evaluator, controls, notifier, None, sync_windows, probe, chain)
    service.closers += [rows.close, assessments.close, feedback.close]
    service.closers += [reader.close for reader in (backend, report_backend, datadog) if reader is not None]
    service.closers.append(log.close)  # last of all (`close` runs the closers after the threads that write it stop)
    service.exporter_factory = lambda: _exporter(config, log)
    if (config.prometheus is not None or config.datadog is not None) and config.rollup_interval is not None:
        # Backends of its own: a week of the fleet's hours may take longer than a gate's timeout, and its
        # faults must neither open the gates' circuit breaker nor count among their backend requests. Datadog's
        # rate limits are the process's one view (`SHARED_LIMITS`), whichever transport asks.
        prometheus = config.prometheus
        reader = None if prometheus is None else PrometheusBackend(prometheus, timeout=ROLLUP_TIMEOUT_SECONDS)
        if reader is not None:
            service.closers.insert(0, reader.close)
        make_datadog, interval = config.datadog, config.rollup_interval
        service.rollup_factory = lambda: PeriodicRollup(
            open_rollups(config.db),
            fleet,
            reader,
            interval=interval,
            datadog=None if make_datadog is None else make_datadog(ROLLUP_TIMEOUT_SECONDS),
            after_round=lambda until: reclassify_due(feedback, classifying, at=until),
        )
        metrics.watch_rollups(lambda: None if service.rollup is None else service.rollup.stats.as_series())
    if is_postgres_url(config.db):
        service.leadership = AdvisoryLockLeadership(str(config.db), on_change=service.lead)
    return service


def build_app(fleet: Fleet, config: ServerConfig) -> tuple[FastAPI, Evaluator]:
    """The HTTP app and the evaluator behind it (no notifier or export threads started)."""
    service = build_service(fleet, config)
    return service.app, service.evaluator
