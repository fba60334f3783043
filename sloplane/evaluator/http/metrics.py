"""The evaluator's own Prometheus metrics, served at /metrics.

A registry of its own rather than prometheus_client's global one: two evaluators in one process
(tests, an embedding application) keep separate counts, and nothing another library registers
globally leaks into the evaluator's page.

`sloplane_gate_decisions_total{slo, service, stage, decision}` is a contract, not a detail: SLOs
about the release process (`sli.deployment` with `source: sloplane`) read it, by those labels
(see `sloplane.core.names.SLOPLANE_DECISIONS_METRIC`). Its name and labels must not change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from sloplane.core.names import SLOPLANE_DECISIONS_METRIC
from sloplane.evaluator.model import Outcome
from sloplane.evaluator.storage.chain_audit import ChainState, ChainStatus

log = logging.getLogger(__name__)

DECISION_LABELS = ("slo", "service", "stage", "decision")
_OUTCOMES = frozenset(outcome.value for outcome in Outcome)
NOTIFICATION_STATES = ("pending", "held", "dead", "delivered")
"""Outbox states worth a gauge: `dead` above zero means a receiver refused an incident for good."""

BACKEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Up to 30 s: a month-long range query on a busy Prometheus can take seconds before it times out."""

DECISION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""A decision may wait for several backend reads in turn (every SLO of a service)."""


class DeclaredNames:
    """The SLO, service and stage names declarations give: the only values decision labels may take.

    A gate request names what it asks about, and a token holder can name anything; were those
    names labels, every invented one would mint series without limit. A name not declared is
    counted under the empty value, as a request that named nothing is.
    """

    def __init__(self, summaries: Iterable[Mapping[str, object]]) -> None:
        self._services: dict[str, str] = {}
        self._stages: dict[str, frozenset[str]] = {}
        for summary in summaries:
            name = str(summary["name"])
            self._services[name] = str(summary.get("service") or "")
            stages = summary.get("stages") or []
            self._stages[name] = frozenset(str(stage) for stage in stages) if isinstance(stages, list) else frozenset()
        self._declared_services = frozenset(service for service in self._services.values() if service)

    def labels(self, slo: str, stage: str | None, service: str | None = None) -> tuple[str, str, str]:
        """(slo, service, stage) label values, each only when declared.

        A declared SLO brings its declared service; an SLO nobody declared keeps the service the
        caller named when that service is declared (a `{service, slo}` request with a typo in the
        SLO still shows up under its service), and nothing else.
        """
        if slo not in self._services:
            return "", service if service in self._declared_services else "", ""
        stage_label = stage if stage is not None and stage in self._stages[slo] else ""
        return slo, self._services[slo], stage_label

    def __contains__(self, slo: object) -> bool:
        return slo in self._services


RISK_SCORE_HELP = "Tier-weighted share of SLOs with data that are at risk or exhausted (govern risk's score)."
RISK_NO_DATA_HELP = "Tier-weighted share of the fleet's SLOs without data (left out of the score)."
ROLLUP_SERIES = {
    "rounds": "Periodic rollup rounds run on this replica since it started.",
    "failed_rounds": "Rounds that failed whole (the store could not be written).",
    "rows": "Hourly rollup rows written by this replica.",
    "failed_subjects": "Subjects the last round could not read from Prometheus.",
    "last_success_timestamp_seconds": "When a round last read every subject (unix seconds).",
}
"""`sloplane_rollup_<name>` series and their help (`watch_rollups`)."""


class EvaluatorMetrics:
    """Counters and histograms of one evaluator, and their exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._decisions = Counter(
            SLOPLANE_DECISIONS_METRIC.removesuffix("_total"),
            "Gate decisions made, by SLO, service, stage and outcome (pass, fail, inconclusive, error).",
            DECISION_LABELS,
            registry=self.registry,
        )
        self._backend = Histogram(
            "sloplane_backend_request_seconds",
            "Time spent on requests to metric backends, by backend and outcome.",
            ("backend", "outcome"),
            buckets=BACKEND_BUCKETS,
            registry=self.registry,
        )
        self._cache = Counter(
            "sloplane_cache_requests",
            "Measurement cache lookups, by result (hit or miss).",
            ("result",),
            registry=self.registry,
        )
        self._decision_seconds = Histogram(
            "sloplane_decision_seconds",
            "Time taken to answer one gate request.",
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )
        for result in ("hit", "miss"):  # both series exist from the start, so a hit ratio is never undefined
            self._cache.labels(result=result)
        self._refusals = Counter(
            "sloplane_auth_refusals",
            "Requests the API refused a caller (401 or 403), by reason (see http.limits.RefusalReason).",
            ("reason",),
            registry=self.registry,
        )

    def record_decision(
        self,
        *,
        slo: str,
        service: str | None,
        stage: str | None,
        decision: Outcome | str,
        names: DeclaredNames | None = None,
    ) -> None:
        """Count one decision; an unknown service or an unstaged SLO is the empty label value.

        With `names`, only declared names become labels (see `DeclaredNames`); without, the
        caller vouches that the names are declared ones. The outcome must be one of the four.
        """
        if names is not None:
            slo, service, stage = names.labels(slo, stage, service)
        outcome = str(decision) if str(decision) in _OUTCOMES else Outcome.ERROR.value
        self._decisions.labels(slo=slo, service=service or "", stage=stage or "", decision=outcome).inc()

    def expect_refusals(self, reasons: Iterable[str]) -> None:
        """Create the refusal series at 0, so `increase()` over them is defined before the first refusal."""
        for reason in reasons:
            self._refusals.labels(reason=reason)

    def record_refusal(self, reason: str) -> None:
        """One refused request; `reason` is one of a closed set, never a value the caller chose."""
        self._refusals.labels(reason=reason).inc()

    def observe_decision_seconds(self, seconds: float) -> None:
        """How long one gate request took to answer."""
        self._decision_seconds.observe(seconds)

    def observe_backend_request(self, *, backend: str, outcome: str, seconds: float) -> None:
        """One request to a backend: its name (e.g. `prometheus`), `ok`/`error`/`timeout`, its duration."""
        self._backend.labels(backend=backend, outcome=outcome).observe(seconds)

    @contextmanager
    def time_backend_request(self, backend: str) -> Iterator[None]:
        """Time the block as one backend request: outcome `ok`, or `error` when it raises (and re-raise)."""
        started = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        finally:
            self.observe_backend_request(backend=backend, outcome=outcome, seconds=time.perf_counter() - started)

    def record_cache(self, *, hit: bool) -> None:
        """One measurement cache lookup."""
        self._cache.labels(result="hit" if hit else "miss").inc()

    def watch_notifications(self, stats: Callable[[], Mapping[str, int]]) -> None:
        """`sloplane_notifications{state}` from the notifier's outbox, read at every scrape."""

        def families() -> Iterable[Metric]:
            found = stats()
            gauge = GaugeMetricFamily(
                "sloplane_notifications", "Incident notifications in the outbox, by state.", labels=("state",)
            )
            for state in NOTIFICATION_STATES:
                gauge.add_metric((state,), float(found.get(state, 0)))
            yield gauge

        self.registry.register(_Scraped(families))

    def watch_controls(self, freezes: Callable[[], int], incidents: Callable[[], int]) -> None:
        """Freezes in force and major incidents open, read at every scrape (releases are stopped while > 0)."""

        def families() -> Iterable[Metric]:
            yield GaugeMetricFamily("sloplane_freezes_active", "Release freezes in force now.", value=freezes())
            yield GaugeMetricFamily(
                "sloplane_major_incidents_open", "Major incidents open now (each freezes releases).", value=incidents()
            )

        self.registry.register(_Scraped(families))

    def watch_chain(self, state: Callable[[], ChainState]) -> None:
        """The decision log's hash chain as verified on start (`storage.chain_audit`), read at every scrape.

        `sloplane_decision_chain_intact` is 1 or 0 once the walk has ended (0: broken, or the log could not
        be read) and absent while `sloplane_decision_chain_verifying` is 1; `..._records` counts the
        records that verified (before the first broken one).
        """

        def families() -> Iterable[Metric]:
            now = state()
            verifying = now.status is ChainStatus.VERIFYING
            yield GaugeMetricFamily(
                "sloplane_decision_chain_verifying",
                "1 while the decision log's hash chain is being verified (on start), else 0.",
                value=float(verifying),
            )
            if not verifying:
                yield GaugeMetricFamily(
                    "sloplane_decision_chain_intact",
                    "1 when the decision log's hash chain verified intact on start, 0 when broken or unreadable.",
                    value=float(now.status is ChainStatus.INTACT),
                )
            if now.report is not None:
                yield GaugeMetricFamily(
                    "sloplane_decision_chain_records",
                    "Decision records whose hash chain verified on start (up to the first broken one).",
                    value=float(now.report.records),
                )

        self.registry.register(_Scraped(families))

    def watch_rollups(self, stats: Callable[[], Mapping[str, float] | None]) -> None:
        """The periodic rollup (`history.periodic`) while this replica runs it, read at every scrape: rounds,
        rows written, subjects the last round could not read, and when a round last read every subject."""

        def families() -> Iterable[Metric]:
            found = stats()
            if found is None:
                return
            for name, help_text in ROLLUP_SERIES.items():
                if name in found:
                    yield GaugeMetricFamily(f"sloplane_rollup_{name}", help_text, value=found[name])

        self.registry.register(_Scraped(families))

    def watch_risk(self, report: Callable[[], Mapping[str, Any] | None], bands: Sequence[str]) -> None:
        """Fleet risk (`governance.risk`) read at scrape time: the fleet's and each service's score (the tier-weighted
        share at risk or exhausted; absent without data), the share without data, and the band as one series per
        band (1 for the current one, `unknown` included), so an alert can say `band="severe" == 1`."""

        def families() -> Iterable[Metric]:
            found = report()
            if found is None:
                return
            fleet = found["fleet"]
            if fleet["score"] is not None:
                yield GaugeMetricFamily("sloplane_fleet_risk_score", RISK_SCORE_HELP, value=fleet["score"])
            yield GaugeMetricFamily("sloplane_fleet_risk_no_data", RISK_NO_DATA_HELP, value=fleet["noData"])
            band = GaugeMetricFamily("sloplane_fleet_risk_band", "The fleet's risk band.", labels=("band",))
            for name in bands:
                band.add_metric((name,), float(fleet["band"] == name))
            yield band
            score = GaugeMetricFamily("sloplane_service_risk_score", RISK_SCORE_HELP, labels=("service",))
            by_band = GaugeMetricFamily(
                "sloplane_service_risk_band", "Each service's risk band.", labels=("service", "band")
            )
            for service in found["services"]:
                if service["score"] is not None:
                    score.add_metric((service["service"],), service["score"])
                for name in bands:
                    by_band.add_metric((service["service"], name), float(service["band"] == name))
            yield score
            yield by_band

        self.registry.register(_Scraped(families))

    def render(self) -> tuple[bytes, str]:
        """The exposition in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Scraped(Collector):
    """Metrics computed at scrape time; a failing source is logged and left out, never a failed scrape."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self._families())
        except Exception:  # a broken store must not take the evaluator's other metrics down with it
            log.exception("could not read a metric source at scrape time")
            return []

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the source is only read at scrape time (registering must not touch it)."""
        return []
