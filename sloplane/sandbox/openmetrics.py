"""Series and the OpenMetrics writer that turns them into promtool's input.

A `Series` is what every traffic shape produces and what the server stores: a name, labels, a kind
and samples in time order. The writer is kept apart from the traffic model because its rules come
from promtool, not from SLIs: how families are named and typed, how numbers are spelled exactly, and
how a long history is cut into one file per 2h block so promtool converts it in seconds.

What promtool 2.42 does with OpenMetrics (found by trying): it stores every sample under the name
written on the sample line and ignores `# TYPE` for storage. `# TYPE http_requests counter` and
`# TYPE http_requests_total counter` followed by `http_requests_total{...}` lines both give the
series `http_requests_total`; a counter sample line without `_total` is stored without it; a family
name that does not match its samples, repeated `# TYPE` lines, interleaved families and interleaved
series are all accepted silently. A sample whose timestamp is not after the previous one of the same series is
dropped silently, and a file without the final `# EOF` is refused. So this module writes OpenMetrics
by the rules (family `http_requests`, samples `http_requests_total`, histograms as one family of
`_bucket`/`_count` series) and checks sample order itself (in `Series`) instead of relying on promtool.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


@dataclass(frozen=True)
class Series:
    """One time series: name, labels, counter or gauge, and (unix seconds, value) samples in time order.

    `name` is the name queried (`http_requests_total`); the OpenMetrics family is derived when writing.
    """

    name: str
    labels: Mapping[str, str]
    kind: Literal["counter", "gauge"]
    samples: Sequence[tuple[float, float]]

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")
        for label in self.labels:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} on {self.name}")
        if self.kind not in ("counter", "gauge"):
            raise ValueError(f"kind must be 'counter' or 'gauge', got {self.kind!r}")
        previous = -math.inf
        for timestamp, _ in self.samples:
            if not timestamp > previous:
                raise ValueError(f"{self.identity}: sample times must increase strictly (promtool drops the rest)")
            previous = timestamp

    @property
    def identity(self) -> str:
        """`name{labels}` with sorted labels: what Prometheus considers the same series."""
        return self.name + _format_labels(self.labels)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels.items())) + "}"


def _number(value: float) -> str:
    """Exact text for a float: repr round-trips, and OpenMetrics spells infinities `+Inf`/`-Inf`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _family(series: Series, histograms: set[str]) -> tuple[str, str]:
    """(family, OpenMetrics type) of a series: counters are `<family>_total`, histogram parts grouped."""
    if series.kind == "gauge":
        return series.name, "gauge"
    if series.name.endswith("_total"):
        return series.name.removesuffix("_total"), "counter"
    for suffix in _HISTOGRAM_SUFFIXES:
        base = series.name.removesuffix(suffix)
        if series.name.endswith(suffix) and base in histograms:
            return base, "histogram"
    return series.name, "unknown"


def _families(series: Iterable[Series]) -> dict[tuple[str, str], list[Series]]:
    """Series grouped by family in first-appearance order (OpenMetrics forbids interleaved families)."""
    members = list(series)
    histograms = {
        item.name.removesuffix("_bucket")
        for item in members
        if item.kind == "counter" and item.name.endswith("_bucket") and "le" in item.labels
    }
    families: dict[tuple[str, str], list[Series]] = {}
    kinds: dict[str, str] = {}
    seen: set[str] = set()
    for item in members:
        if item.identity in seen:
            raise ValueError(f"series {item.identity} given twice")
        seen.add(item.identity)
        family, kind = _family(item, histograms)
        if kinds.setdefault(family, kind) != kind:
            raise ValueError(f"metric family {family} would be both {kinds[family]} and {kind}")
        families.setdefault((family, kind), []).append(item)
    return families


def write_openmetrics(series: Iterable[Series], path: Path) -> Path:
    """Write series as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`; returns path.

    Counters `x_total` go under `# TYPE x counter`, histogram parts under `# TYPE x histogram`, other
    counters as `unknown` (OpenMetrics counters must end in `_total`); series one after another,
    samples in time order, then `# EOF`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for (family, kind), members in _families(series).items():
            out.write(f"# TYPE {family} {kind}\n")
            for item in members:
                prefix = item.identity
                out.writelines(f"{prefix} {_number(value)} {_number(stamp)}\n" for stamp, value in item.samples)
        out.write("# EOF\n")
    return path


BLOCK_SECONDS = 2 * 3600
"""promtool 2.42 cuts OpenMetrics input into 2h blocks aligned to the epoch."""


def _split_by_block(series: Series) -> dict[int, Series]:
    """The series' samples per 2h block (key: block start in seconds), in one pass over sorted samples."""
    parts: dict[int, Series] = {}
    samples = series.samples
    first = 0
    while first < len(samples):
        key = int(samples[first][0] // BLOCK_SECONDS) * BLOCK_SECONDS
        last = bisect.bisect_left(samples, float(key + BLOCK_SECONDS), lo=first, key=lambda sample: sample[0])
        parts[key] = Series(series.name, series.labels, series.kind, samples[first:last])
        first = last
    return parts


def write_openmetrics_blocks(series: Iterable[Series], folder: Path) -> list[Path]:
    """One OpenMetrics file per 2h block, for `create-blocks-from openmetrics` to read once each.

    promtool 2.42 parses its whole input once per block it creates, so one file holding a week
    (84 blocks) takes minutes; per-block files take seconds and can be converted in parallel.
    """
    by_block: dict[int, list[Series]] = {}
    for item in series:
        for key, part in _split_by_block(item).items():
            by_block.setdefault(key, []).append(part)
    return [write_openmetrics(parts, Path(folder) / f"series-{key}.om") for key, parts in sorted(by_block.items())]
