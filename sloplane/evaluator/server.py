"""Assembling the evaluator service: backend, cache, decision log, tokens, metrics, HTTP app.

`sloplane serve` and the tests build the same thing through `build_app`, so what is tested is what
runs. Tokens are required: an evaluator that anyone on the network can ask to record decisions is
an audit trail anyone can write to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from sloplane.evaluator.api import create_app
from sloplane.evaluator.auth import TokenStore
from sloplane.evaluator.backends.prometheus import PrometheusBackend
from sloplane.evaluator.metrics import EvaluatorMetrics
from sloplane.evaluator.service import Evaluator
from sloplane.evaluator.store import SqliteDecisionLog
from sloplane.subjects import Fleet


@dataclass(frozen=True)
class ServerConfig:
    """Where to read SLIs, where to record, who may ask."""

    prometheus: str
    db: Path
    tokens: TokenStore
    staleness: timedelta = timedelta(minutes=5)
    timeout: float = 5.0


def build_app(fleet: Fleet, config: ServerConfig) -> tuple[FastAPI, Evaluator]:
    """The HTTP app and the evaluator behind it, wired to one metrics registry."""
    metrics = EvaluatorMetrics()

    def observe(seconds: float, outcome: str) -> None:
        metrics.observe_backend_request(backend="prometheus", outcome=outcome, seconds=seconds)

    def cache_lookup(hit: bool) -> None:
        metrics.record_cache(hit=hit)

    backend = PrometheusBackend(config.prometheus, timeout=config.timeout, observe=observe)
    evaluator = Evaluator(
        fleet, backend, SqliteDecisionLog(config.db), staleness=config.staleness, on_cache_lookup=cache_lookup
    )
    return create_app(evaluator, config.tokens, metrics), evaluator
