"""`EvaluatorService.close` closes what `build_service` opened: a process that builds servers again and again
(the test suite's workers, an embedding program) must not run out of file descriptors. A worker once reached
select()'s limit of 1,024 after a few hundred served tests, each leaving the decision log's SQLite handles and
the backends' pooled sockets open."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from tests.served_evaluator import build


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_served_evaluator_closes_every_file_and_socket_it_opened(tmp_path: Path) -> None:
    counts = []
    for index in range(2):
        folder = tmp_path / f"replica-{index}"
        folder.mkdir()
        gc.collect()  # what earlier tests left for the collector closes now, not inside the measurement
        before = _open_descriptors()
        service, _ = build(folder, "http://127.0.0.1:9")  # nothing listens: the rollup's round fails, as a leader's may
        service.start()
        service.close()
        gc.collect()
        counts.append(_open_descriptors() - before)
    assert all(count <= 0 for count in counts), counts  # a leak was +9 per server
