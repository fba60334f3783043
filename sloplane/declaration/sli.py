"""The service level indicator: exactly one of several ways to say what "good" means.

Every kind reduces to an *error ratio over a window*; the kinds differ in who writes the queries.
`ratio`, `raw` and `threshold` carry queries written by hand, per backend, with a `{{window}}`
placeholder (and `{{selector}}` where stages add labels). `http`, `latency`, `probe` and
`deployment` are shorthands from which sloplane derives the queries for every backend, which is what
makes a declaration portable between Prometheus and Datadog. `composite` combines other SLOs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from sloplane.declaration.types import (
    DatadogTagKey,
    DatadogTags,
    Duration,
    LabelName,
    Labels,
    MetricName,
    Name,
    PositiveFloat,
    SpecModel,
    with_string_shorthand,
)

WINDOW_PLACEHOLDER = "{{window}}"
SELECTOR_PLACEHOLDER = "{{selector}}"
SLOTH_WINDOW_PLACEHOLDER = "{{.window}}"


def normalise_placeholders(query: str) -> str:
    """Accept Sloth's `{{.window}}` and spaced `{{ window }}` as our `{{window}}`."""
    for variant in (SLOTH_WINDOW_PLACEHOLDER, "{{ window }}", "{{ .window }}"):
        query = query.replace(variant, WINDOW_PLACEHOLDER)
    return query.replace("{{ selector }}", SELECTOR_PLACEHOLDER)


class Backend(StrEnum):
    """A metrics system sloplane can read SLIs from and render monitoring for."""

    PROMETHEUS = "prometheus"
    DATADOG = "datadog"


class BackendQueries(SpecModel):
    """One query per backend; at least one. `{{window}}` stands for the window being measured."""

    prometheus: str | None = None
    datadog: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                key: normalise_placeholders(value) if isinstance(value, str) else value for key, value in data.items()
            }
        return data

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if self.prometheus is None and self.datadog is None:
            raise ValueError("give a query for at least one backend: prometheus or datadog")
        return self

    def for_backend(self, backend: Backend) -> str | None:
        """The query for one backend, or None when the declaration gives none."""
        return self.prometheus if backend is Backend.PROMETHEUS else self.datadog

    def backends(self) -> set[Backend]:
        """Backends this set of queries can be run against."""
        return {backend for backend in Backend if self.for_backend(backend) is not None}


def _require_one_numerator(errors: object, good: object) -> None:
    if (errors is None) == (good is None):
        raise ValueError("give exactly one of 'errors' or 'good' beside 'total'")


class RatioSLI(SpecModel):
    """Events: errors (or good) over total, each a query per backend."""

    errors: BackendQueries | None = None
    good: BackendQueries | None = None
    total: BackendQueries

    @model_validator(mode="after")
    def _errors_or_good(self) -> Self:
        _require_one_numerator(self.errors, self.good)
        return self

    @property
    def numerator(self) -> BackendQueries:
        """The errors or good queries, whichever the declaration gives."""
        numerator = self.errors if self.errors is not None else self.good
        assert numerator is not None  # guaranteed by _errors_or_good
        return numerator


class DatadogRatio(SpecModel):
    """Datadog good (or errors) and total queries for a kind whose PromQL sloplane derives itself."""

    errors: str | None = None
    good: str | None = None
    total: str

    @model_validator(mode="after")
    def _errors_or_good(self) -> Self:
        _require_one_numerator(self.errors, self.good)
        return self


class HttpErrors(SpecModel):
    """Which requests count as errors: status codes matched on a label ('5xx', '429', '503')."""

    label: LabelName = "code"
    codes: list[str] = Field(default_factory=lambda: ["5xx"], min_length=1)

    @model_validator(mode="after")
    def _codes_are_patterns(self) -> Self:
        for code in self.codes:
            if len(code) != 3 or not code[0].isdigit() or not all(c.isdigit() or c in "xX" for c in code):
                raise ValueError(f"status code pattern '{code}' should be three characters like 503 or 5xx")
        return self


class HttpSLI(SpecModel):
    """Portable request availability: one counter, selector labels and what counts as an error."""

    metric: MetricName
    selector: Labels = Field(default_factory=dict)
    errors: HttpErrors = Field(default_factory=HttpErrors)
    datadog_metric: str | None = None
    """Datadog's name for the counter; default: the Prometheus name without `_total`, plus `.count`."""
    datadog_tags: DatadogTags | None = None
    """Datadog's tags for the same requests, e.g. `{service: payments, env: prod}` for APM's
    `trace.http.request.hits`; default: the selector (the same names in both systems)."""
    datadog_status_tag: DatadogTagKey | None = None
    """The tag holding the status code in Datadog (APM: `http.status_code`); default: `errors.label`."""


class LatencySLI(SpecModel):
    """Share of requests faster than a threshold, read from a Prometheus histogram.

    The threshold must be one of the histogram's bucket boundaries (`le` label); sloplane cannot
    check that offline, so the renderers use it as written.
    """

    metric: MetricName
    """The histogram's base name, without `_bucket` / `_count`."""
    selector: Labels = Field(default_factory=dict)
    threshold: Duration
    datadog: DatadogRatio | None = None
    """Datadog has no histogram buckets of this shape: give its good/total queries explicitly."""


class ProbeSLI(SpecModel):
    """Synthetic probes (blackbox exporter `probe_success`) for services with little real traffic."""

    metric: MetricName = "probe_success"
    selector: Labels = Field(default_factory=dict)
    target: str | None = None
    """The URL probed; when given, sloplane also renders the Probe object that produces the series."""
    module: str = "http_2xx"
    prober: str = "blackbox-exporter:9115"
    interval: Duration | None = None
    datadog: DatadogRatio | None = None


class RawSLI(SpecModel):
    """A query that already yields the error ratio over `{{window}}`; no event counts available."""

    error_ratio: BackendQueries


class ThresholdOperator(StrEnum):
    """How a sample compares with the threshold to count as good."""

    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"


class ThresholdSLI(SpecModel):
    """Samples of a gauge are good when `query op value` (OpenSLO's thresholdMetric)."""

    query: BackendQueries
    op: ThresholdOperator
    value: float = Field(strict=True)


class CompositeMethod(StrEnum):
    """How component SLOs combine: weighted average of error ratios, or the worst of them."""

    WEIGHTED = "weighted"
    WORST_OF = "worstOf"


class SLORef(SpecModel):
    """A reference to another SLO by name, optionally one of its stages."""

    slo: Name
    stage: Name | None = None

    __get_pydantic_json_schema__ = with_string_shorthand("the SLO's name")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"slo": data} if isinstance(data, str) else data


class CompositeComponent(SLORef):
    """One part of a composite SLO, with its weight in a weighted composite."""

    weight: PositiveFloat = 1.0


class CompositeSLI(SpecModel):
    """A user journey across services: its error ratio is computed from its components' ratios."""

    method: CompositeMethod = CompositeMethod.WEIGHTED
    components: list[CompositeComponent] = Field(min_length=2)


class DeploymentMeasure(StrEnum):
    """What a release-process SLO counts as bad."""

    SUCCESS_RATE = "successRate"
    """Bad: deployments that failed (aborted, degraded, or failed their gate)."""
    ROLLBACK_RATE = "rollbackRate"
    """Bad: deployments that were rolled back (automatically or by hand)."""


class DeploymentSource(StrEnum):
    """Where the deployment events come from."""

    ARGO_ROLLOUTS = "argoRollouts"
    """Argo Rollouts controller metric `rollout_events_total{reason=...}`."""
    SLOPLANE = "sloplane"
    """The evaluator's own `sloplane_gate_decisions_total{decision=...}`."""


class DeploymentSLI(SpecModel):
    """An SLO about the release process itself: deployment success rate or rollback frequency.

    `badReasons` / `allReasons` override which event reasons (Argo) or decisions (sloplane) count,
    for controllers that name them differently.
    """

    measure: DeploymentMeasure
    source: DeploymentSource = DeploymentSource.ARGO_ROLLOUTS
    selector: Labels = Field(default_factory=dict)
    bad_reasons: list[str] | None = None
    all_reasons: list[str] | None = None


SLI_KINDS = ("ratio", "http", "latency", "probe", "raw", "threshold", "composite", "deployment")


class SLI(SpecModel):
    """Exactly one kind of indicator."""

    ratio: RatioSLI | None = None
    http: HttpSLI | None = None
    latency: LatencySLI | None = None
    probe: ProbeSLI | None = None
    raw: RawSLI | None = None
    threshold: ThresholdSLI | None = None
    composite: CompositeSLI | None = None
    deployment: DeploymentSLI | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [kind for kind in SLI_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one SLI kind ({', '.join(SLI_KINDS)}); found {found}")
        return self

    def backends(self) -> set[Backend]:
        """Backends this SLI can be read from; composites answer empty (their parts decide)."""
        if self.ratio is not None:
            return self.ratio.numerator.backends() & self.ratio.total.backends()
        if self.http is not None:
            return set(Backend)
        derived = self.latency or self.probe
        if derived is not None:
            return {Backend.PROMETHEUS} | ({Backend.DATADOG} if derived.datadog is not None else set())
        if self.raw is not None:
            return self.raw.error_ratio.backends()
        if self.threshold is not None:
            return self.threshold.query.backends()
        if self.deployment is not None:
            return {Backend.PROMETHEUS}
        return set()

    @property
    def kind(self) -> str:
        """Name of the kind given, e.g. 'http'."""
        return next(kind for kind in SLI_KINDS if getattr(self, kind) is not None)

    def handwritten_queries(self) -> dict[tuple[str, ...], str]:
        """Every query the author wrote by hand, keyed by its field path under `sli`.

        Lints and the stage-selector check look at these; derived queries are correct by construction.
        """
        queries: dict[tuple[str, ...], str] = {}
        holders: list[tuple[tuple[str, ...], BackendQueries | None]] = []
        if self.ratio is not None:
            holders += [
                (("ratio", "errors"), self.ratio.errors),
                (("ratio", "good"), self.ratio.good),
                (("ratio", "total"), self.ratio.total),
            ]
        for kind in ("latency", "probe"):
            derived = getattr(self, kind)
            if derived is not None and derived.datadog is not None:
                for part in ("errors", "good", "total"):
                    query = getattr(derived.datadog, part)
                    if query is not None:
                        queries[(kind, "datadog", part)] = query
        if self.raw is not None:
            holders.append((("raw", "errorRatio"), self.raw.error_ratio))
        if self.threshold is not None:
            holders.append((("threshold", "query"), self.threshold.query))
        for path, holder in holders:
            if holder is None:
                continue
            for backend in Backend:
                query = holder.for_backend(backend)
                if query is not None:
                    queries[(*path, backend.value)] = query
        return queries
