"""The metrics backends a command reads: `--prometheus URL`, `--datadog SITE|URL`, or both.

Shared by `evaluate`, `gate`, `burn` and `serve`, so every command names and checks them alike.
Datadog's keys come from the environment (`DD_API_KEY`, `DD_APP_KEY`) and never from an option:
options end up in shell history and process listings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import typer

from sloplane.cli.common import parse_window
from sloplane.evaluator.measuring.backends.datadog import DatadogCounts, api_url
from sloplane.evaluator.measuring.backends.prometheus import PrometheusBackend

PrometheusOption = Annotated[str | None, typer.Option("--prometheus", help="Read SLIs from this Prometheus.")]
DatadogOption = Annotated[
    str | None,
    typer.Option(
        "--datadog",
        help="Read SLIs from Datadog: a site (datadoghq.com, datadoghq.eu, us3/us5/ap1/ap2.datadoghq.com, "
        "ddog-gov.com) or an API URL; keys from $DD_API_KEY and $DD_APP_KEY.",
    ),
]
DatadogDelayOption = Annotated[
    str, typer.Option("--datadog-delay", help="Leave out this much of Datadog's newest data (it arrives late).")
]
DEFAULT_DATADOG_DELAY = "1m"
"""Datadog's metric intake lags by tens of seconds; a minute keeps the newest, still-filling bucket out."""


@dataclass(frozen=True)
class DatadogSettings:
    """Where Datadog is and how to ask it (the keys are not shown in a repr)."""

    url: str
    api_key: str
    app_key: str
    delay: timedelta

    def __repr__(self) -> str:
        return f"DatadogSettings(url={self.url!r}, delay={self.delay!r})"

    def counts(self, timeout: float = 10.0) -> DatadogCounts:
        """The Datadog transport these settings describe."""
        return DatadogCounts(self.url, self.api_key, self.app_key, delay=self.delay, timeout=timeout)


def datadog_settings(site: str | None, delay: str) -> DatadogSettings | None:
    """The Datadog to read from `--datadog`, or None; BadParameter for a bad site or missing keys."""
    if site is None:
        return None
    try:
        url = api_url(site)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--datadog") from None
    api_key, app_key = os.environ.get("DD_API_KEY", ""), os.environ.get("DD_APP_KEY", "")
    missing = [name for name, value in (("DD_API_KEY", api_key), ("DD_APP_KEY", app_key)) if not value.strip()]
    if missing:
        raise typer.BadParameter(f"set {' and '.join(missing)} to read from Datadog", param_hint="--datadog")
    return DatadogSettings(url, api_key.strip(), app_key.strip(), _delay(delay))


def _delay(text: str) -> timedelta:
    """`--datadog-delay`: a duration, or zero (`0s`) to read up to the evaluation instant."""
    if text.strip() in {"0", "0s", "0m"}:
        return timedelta(0)
    return parse_window(text, "--datadog-delay")


def backends(
    prometheus: str | None, datadog: str | None, delay: str
) -> tuple[PrometheusBackend | None, DatadogCounts | None]:
    """The backends named by the options; at least one must be."""
    if prometheus is None and datadog is None:
        raise typer.BadParameter("give --prometheus URL, --datadog SITE, or both")
    settings = datadog_settings(datadog, delay)
    return (
        None if prometheus is None else PrometheusBackend(prometheus),
        None if settings is None else settings.counts(),
    )
