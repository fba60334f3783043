"""Datadog metric queries of an SLI: event counts as `sum:<metric>{tags}.as_count()`, stage tags merged in.

The Datadog counterpart of `indicators.prometheus_queries`; the Datadog renderer and backend print from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sloplane.declaration.sli import SLI, Backend, HttpErrors
from sloplane.semantics.promql import expand_selector


def _handwritten(query: str | None, selector: dict[str, str]) -> str | None:
    return None if query is None else expand_selector(query, selector, Backend.DATADOG)


def datadog_metric_name(prometheus_name: str) -> str:
    """Datadog's OpenMetrics naming for a counter: `http_requests_total` -> `http_requests.count`."""
    base = prometheus_name.removesuffix("_total")
    return f"{base}.count"


def _datadog_filter(selector: dict[str, str], extra: tuple[str, ...] = ()) -> str:
    parts = [f"{key}:{value}" for key, value in sorted(selector.items())]
    parts.extend(extra)
    return "{" + (",".join(parts) if parts else "*") + "}"


def _datadog_code(label: str, code: str) -> str:
    """'5xx' -> 'code:5*' (Datadog wildcards match any suffix)."""
    lowered = code.lower()
    return f"{label}:{lowered[: lowered.index('x')]}*" if "x" in lowered else f"{label}:{lowered}"


def _datadog_errors_filter(tags: dict[str, str], errors: HttpErrors, status_tag: str) -> str:
    """Tags plus the error codes; several codes need Datadog's boolean filter syntax."""
    codes = [_datadog_code(status_tag, code) for code in errors.codes]
    if len(codes) == 1:
        return _datadog_filter(tags, (codes[0],))
    terms = [f"{key}:{value}" for key, value in sorted(tags.items())]
    terms.append("(" + " OR ".join(codes) + ")")
    return "{" + " AND ".join(terms) + "}"


@dataclass(frozen=True)
class DatadogQueries:
    """Datadog metric queries: bad (or good) events and all events, as counts."""

    total: str
    errors: str | None = None
    good: str | None = None


def datadog_queries(sli: SLI, selector: dict[str, str]) -> DatadogQueries | None:
    """Datadog event-count queries for an SLI, stage tags merged in; None without event counts.

    Raw and threshold SLIs have no event counts; their hand-written Datadog queries are used as given.
    """
    backend = Backend.DATADOG
    if sli.ratio is not None:
        total = _handwritten(sli.ratio.total.for_backend(backend), selector)
        numerator = _handwritten(sli.ratio.numerator.for_backend(backend), selector)
        if total is None or numerator is None:
            return None
        if sli.ratio.errors is not None:
            return DatadogQueries(total=total, errors=numerator)
        return DatadogQueries(total=total, good=numerator)
    if sli.http is not None:
        http = sli.http
        metric = http.datadog_metric or datadog_metric_name(http.metric)
        tags = {**(http.datadog_tags if http.datadog_tags is not None else http.selector), **selector}
        status_tag = http.datadog_status_tag or http.errors.label
        return DatadogQueries(
            total=f"sum:{metric}{_datadog_filter(tags)}.as_count()",
            errors=f"sum:{metric}{_datadog_errors_filter(tags, http.errors, status_tag)}.as_count()",
        )
    derived = sli.latency or sli.probe
    if derived is not None and derived.datadog is not None:
        ratio = derived.datadog

        def expand(query: str | None) -> str | None:
            return None if query is None else expand_selector(query, selector, backend)

        total = expand(ratio.total)
        assert total is not None
        return DatadogQueries(total=total, errors=expand(ratio.errors), good=expand(ratio.good))
    return None
