"""`serve --log-level` / $SLOPLANE_LOG_LEVEL: what the evaluator's pod sets is read, and a wrong value is refused.

The component rendered `SLOPLANE_LOG_LEVEL` for a long time while nothing read it; now `serve` does, so a
value it refuses would crash-loop the pod: the renderer refuses it first, from the same list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from sloplane.cli.serve import LOG_LEVELS as SERVE_LEVELS
from sloplane.cli.serve import configure_logging
from sloplane.render.evaluator_settings import LOG_LEVELS, EvaluatorSettings
from tests.conftest import run_cli


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("sloplane")
    handlers, root_level, our_level = list(root.handlers), root.level, ours.level
    yield
    root.handlers[:], root.level = handlers, root_level
    ours.setLevel(our_level)


def test_the_renderer_allows_exactly_what_serve_takes() -> None:
    assert LOG_LEVELS == SERVE_LEVELS


def test_a_level_serve_would_refuse_is_refused_when_rendering() -> None:
    with pytest.raises(ValueError, match="log_level must be one of debug, info, warning, error, not 'verbose'"):
        EvaluatorSettings(name="e", namespace="m", image="i:1", prometheus_url="http://p:9090", log_level="verbose")


@pytest.mark.usefixtures("restored_logging")
def test_our_log_at_the_level_others_at_warning() -> None:
    logging.getLogger().handlers.clear()
    configure_logging("info")
    assert logging.getLogger("sloplane.evaluator.export").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("psycopg.pool").getEffectiveLevel() == logging.WARNING


def test_serve_refuses_an_unknown_level_before_anything_else() -> None:
    result = run_cli("serve", "examples", "--tokens", "none.yaml", "--log-level", "loud")
    assert result.code == 2
    assert "'loud' is not one of" in result.stderr
    assert "$SLOPLANE_LOG_LEVEL" in result.stderr
    assert "Traceback" not in result.stderr
