"""Sloth SLI plugins that sloplane knows, written out as event-count queries.

A Sloth SLI plugin is Go code that, given options, returns one error-ratio query. sloplane cannot
run Go, but the common plugins (github.com/slok/sloth-common-sli-plugins, and the example plugin in
Sloth's own repository) build the same few shapes: errors over total of one counter, or a histogram's
count minus its bucket. Each is described here by the counters it reads, so the import becomes a
`ratio` SLI of *event counts* (`increase` over the window) rather than an opaque ratio, and keeps the
Argo minEvents guard, recorded period events and the evaluator's `events` meaningful.

Any other plugin is an error naming its id: its query cannot be known without running it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.sli import WINDOW_PLACEHOLDER
from sloplane.interop.translation import ImportProblemError

_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*'
_FILTER = re.compile(rf"^{_MATCHER}(,{_MATCHER})*$")
_ERROR_CODES = 'code=~"(5..|429)"'


@dataclass(frozen=True)
class PluginQueries:
    """The errors and total queries a plugin stands for, both event counts over the window."""

    errors: str
    total: str


def _count(metric: str, matchers: list[str]) -> str:
    """`sum(increase(metric{matchers}[{{window}}]))`: events of one counter over the window."""
    inside = ",".join(matcher for matcher in matchers if matcher)
    return f"sum(increase({metric}{{{inside}}}[{WINDOW_PLACEHOLDER}]))"


class _Options:
    """A plugin's options with the checks Sloth's plugins make, failing at the option's own line."""

    def __init__(self, options: Mapping[str, str], loc: Loc) -> None:
        self._options = options
        self._loc = loc

    def _at(self, name: str) -> Loc:
        return (*self._loc, name) if name in self._options else self._loc

    def text(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self._options.get(name, "").strip()
        if required and not value:
            raise ImportProblemError(self._loc, f"the plugin needs the option '{name}'")
        return value or default

    def filter(self, *, required: bool = False) -> str:
        """Label matchers to add to every selector (`a="b",c="d"`, braces and commas trimmed)."""
        value = self.text("filter", required=required).strip("{},")
        if value and not _FILTER.match(value):
            raise ImportProblemError(self._at("filter"), f"'{value}' is not a list of label matchers like a=\"b\"")
        return value

    def bucket(self) -> str:
        value = self.text("bucket", required=True)
        try:
            float(value)
        except ValueError:
            raise ImportProblemError(self._at("bucket"), f"bucket '{value}' is not a number (an `le` bound)") from None
        return value

    def flag(self, name: str) -> bool:
        value = self.text(name).lower()
        if value not in ("", "true", "false", "1", "0", "t", "f"):
            raise ImportProblemError(self._at(name), f"'{value}' is not true or false")
        return value in ("true", "1", "t")


def _getting_started(options: _Options) -> PluginQueries:
    """Sloth's example plugin (examples/plugins/getting-started): 5xx and 429 of one job's HTTP requests."""
    job = f'job="{options.text("job", required=True)}"'
    matchers = [options.filter(), job]
    metric = "http_request_duration_seconds_count"
    return PluginQueries(_count(metric, [*matchers, _ERROR_CODES]), _count(metric, matchers))


def _availability(metric: str, *, filter_required: bool = False) -> Callable[[_Options], PluginQueries]:
    """5xx and 429 responses over all responses of one request counter."""

    def build(options: _Options) -> PluginQueries:
        selected = options.filter(required=filter_required)
        return PluginQueries(_count(metric, [selected, _ERROR_CODES]), _count(metric, [selected]))

    return build


def _apiserver_latency(options: _Options) -> PluginQueries:
    """Kubernetes API requests (not WATCH) slower than the bucket: all requests minus the bucket's."""
    selected, bucket = options.filter(), options.bucket()
    watch = 'verb!="WATCH"'
    count = _count("apiserver_request_duration_seconds_count", [selected, watch])
    fast = _count("apiserver_request_duration_seconds_bucket", [selected, f'le="{bucket}"', watch])
    return PluginQueries(f"{count} - {fast}", count)


def _go_http_latency(options: _Options) -> PluginQueries:
    """slok/go-http-metrics requests slower than the bucket; `exclude_errors` leaves 5xx out of both."""
    bucket, selected = options.bucket(), options.filter(required=True)
    if options.flag("exclude_errors"):
        selected += ',code!~"5.."'
    count = _count("http_request_duration_seconds_count", [selected])
    fast = _count("http_request_duration_seconds_bucket", [selected, f'le="{bucket}"'])
    return PluginQueries(f"{count} - {fast}", count)


def _coredns_availability(options: _Options) -> PluginQueries:
    """CoreDNS responses whose rcode matches `custom_rcode_regex` (default SERVFAIL)."""
    selected = options.filter()
    rcode = options.text("custom_rcode_regex", default="SERVFAIL")
    metric = "coredns_dns_responses_total"
    return PluginQueries(_count(metric, [selected, f'rcode=~"{rcode}"']), _count(metric, [selected]))


PLUGINS: dict[str, Callable[[_Options], PluginQueries]] = {
    "getting_started_availability": _getting_started,
    "sloth-common/kubernetes/apiserver/availability": _availability("apiserver_request_total"),
    "sloth-common/kubernetes/apiserver/latency": _apiserver_latency,
    "sloth-common/slok-go-http-metrics/availability": _availability(
        "http_request_duration_seconds_count", filter_required=True
    ),
    "sloth-common/slok-go-http-metrics/latency": _go_http_latency,
    "sloth-common/coredns/availability": _coredns_availability,
}
"""Plugin id -> its queries from its options."""


def plugin_queries(plugin_id: str, options: Mapping[str, str], id_loc: Loc, options_loc: Loc) -> PluginQueries:
    """The queries a known plugin stands for; an unknown plugin or a bad option fails at its line."""
    build = PLUGINS.get(plugin_id)
    if build is None:
        known = ", ".join(sorted(PLUGINS))
        raise ImportProblemError(
            id_loc,
            f"SLI plugin '{plugin_id}' is not one sloplane can translate (it knows {known}); "
            "write its queries as sli.events (error and total queries)",
        )
    return build(_Options(options, options_loc))
