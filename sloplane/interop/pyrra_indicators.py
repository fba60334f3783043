"""Pyrra's indicators (`ratio`, `latency`, `latencyNative`, `bool_gauge`) as our SLIs.

Pyrra takes each metric as a bare PromQL vector selector and wraps it itself: a ratio is
`sum(rate(errors[w])) / sum(rate(total[w]))`, a latency `(total - success) / total` over histogram
`_count` and `_bucket{le}` rates, a native latency `1 - histogram_fraction(0, latency, ...)`, a bool
gauge `(count_over_time - sum_over_time) / count_over_time` of a 0/1 gauge. Our hand-written
queries must yield *event counts* over `{{window}}` (every recording rule, gate and dashboard adds
them up), so each selector is wrapped in `sum(increase(...[{{window}}]))` (or the over-time sums
for a gauge): the ratio of two increases over one window is the ratio of the two rates Pyrra divides.

Where our derived kinds say the same thing, they are used, because they are portable and checked:
a latency whose bucket and count selectors are the same plain equalities becomes our `latency`
(base name, selector, threshold from `le`), a bool gauge with a plain selector our `probe` (which
counts exactly Pyrra's samples). Anything else (regex matchers, differing selectors) stays a
`ratio` of the same selectors, so nothing is approximated.

`grouping` cannot be kept: Pyrra keeps one budget and one alert per group, while our recording
rules sum every query into one series per SLO (`semantics.promql.aggregated`). The SLO is imported
over all groups together, with a warning at `grouping` saying so.

Selectors are parsed here (a name and `label op "value"` matchers) rather than with a PromQL
library, so the importer has no dependency beyond ours and reports Pyrra's own rule, "must be a
vector selector", at the metric's line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sloplane.core.durations import DurationError, format_duration, parse_duration
from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.sli import WINDOW_PLACEHOLDER
from sloplane.interop.translation import SliTranslation
from sloplane.semantics.promql import quote

KINDS = ("ratio", "latency", "latencyNative", "bool_gauge")
"""Pyrra's indicator kinds, in the order Pyrra itself picks the first one given."""

_KEYS = {
    "ratio": ("errors", "total", "grouping"),
    "latency": ("success", "total", "grouping"),
    "latencyNative": ("latency", "total", "grouping"),
    "bool_gauge": ("metric", "grouping"),
}
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATORS = ("=~", "!~", "!=", "=")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
BUCKET_LABEL = "le"


class SelectorError(ValueError):
    """A metric that is not a PromQL vector selector; the message says where it stops being one."""


@dataclass(frozen=True)
class Matcher:
    """One `label op "value"` of a selector, the value unescaped."""

    label: str
    op: str
    value: str

    def promql(self) -> str:
        """The matcher as PromQL text, quoted the way every query we print is."""
        return f"{self.label}{self.op}{quote(self.value)}"


@dataclass(frozen=True)
class Selector:
    """A vector selector: a metric name and its matchers, as Pyrra reads `metric:`."""

    name: str
    matchers: tuple[Matcher, ...]

    def promql(self) -> str:
        """`name{a="1",b=~"x"}` (matchers in the order written), or the bare name."""
        if not self.matchers:
            return self.name
        return self.name + "{" + ",".join(m.promql() for m in self.matchers) + "}"

    def equalities(self, *, without: str | None = None) -> dict[str, str] | None:
        """The matchers as plain labels, or None when any of them is not an equality."""
        kept = [m for m in self.matchers if m.label != without]
        if any(m.op != "=" for m in kept) or len({m.label for m in kept}) != len(kept):
            return None
        return {m.label: m.value for m in kept}

    def matcher(self, label: str) -> Matcher | None:
        """The first matcher on a label, if any."""
        return next((m for m in self.matchers if m.label == label), None)


class _Scanner:
    """Reads a selector left to right; every failure names the character position it stopped at."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def skip_space(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def fail(self, expected: str) -> SelectorError:
        found = repr(self.text[self.at]) if self.at < len(self.text) else "the end"
        return SelectorError(
            f"'{self.text}' is not a PromQL vector selector: expected {expected} at character {self.at + 1}, "
            f'found {found} (Pyrra takes a metric with matchers, like http_requests_total{{job="api"}})'
        )

    def pattern(self, pattern: re.Pattern[str]) -> str | None:
        self.skip_space()
        match = pattern.match(self.text, self.at)
        if match is None:
            return None
        self.at = match.end()
        return match.group()

    def literal(self, *choices: str) -> str | None:
        self.skip_space()
        found = next((c for c in choices if self.text.startswith(c, self.at)), None)
        if found is not None:
            self.at += len(found)
        return found

    def string(self) -> str:
        """A PromQL string: "double" or 'single' quoted with Go escapes, or `raw`."""
        self.skip_space()
        quote_char = self.text[self.at] if self.at < len(self.text) else ""
        if quote_char not in ('"', "'", "`"):
            raise self.fail("a quoted value")
        end = self.at + 1
        value: list[str] = []
        while end < len(self.text) and self.text[end] != quote_char:
            if self.text[end] == "\\" and quote_char != "`":
                char, end = self._escape(end, quote_char)
                value.append(char)
                continue
            value.append(self.text[end])
            end += 1
        if end >= len(self.text):
            self.at = end
            raise self.fail(f"a closing {quote_char}")
        self.at = end + 1
        return "".join(value)

    def _escape(self, at: int, quote_char: str) -> tuple[str, int]:
        """One escape sequence starting at the backslash: (the character, where reading goes on)."""
        code = self.text[at + 1 : at + 2]
        if code == quote_char:
            return code, at + 2
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code], at + 2
        width = _HEX_ESCAPES.get(code)
        digits = self.text[at + 2 : at + 2 + width] if width else ""
        if width and len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
            return chr(int(digits, 16)), at + 2 + width
        self.at = at
        raise self.fail("a valid escape sequence")


def parse_selector(text: str) -> Selector:
    """`name{label op "value", ...}`; a name given as `__name__="..."` counts as the name."""
    scanner = _Scanner(text)
    name = scanner.pattern(_NAME) or ""
    matchers: list[Matcher] = []
    if scanner.literal("{"):
        while not scanner.literal("}"):
            label = scanner.pattern(_LABEL)
            if label is None:
                raise scanner.fail("a label name or '}'")
            op = scanner.literal(*_OPERATORS)
            if op is None:
                raise scanner.fail("one of = != =~ !~")
            matchers.append(Matcher(label, op, scanner.string()))
            if not scanner.literal(",") and not scanner.text.startswith("}", _skipped(scanner)):
                raise scanner.fail("',' or '}'")
    scanner.skip_space()
    if scanner.at != len(text):
        raise scanner.fail("the end of the selector")
    named = next((m for m in matchers if m.label == "__name__" and m.op == "="), None)
    if named is not None and not name:
        name = named.value
        matchers.remove(named)
    if not name:
        raise SelectorError(f"'{text}' has no metric name (Pyrra needs one, e.g. http_requests_total{{...}})")
    return Selector(name, tuple(matchers))


def _skipped(scanner: _Scanner) -> int:
    scanner.skip_space()
    return scanner.at


def _counted(function: str, selector: Selector) -> str:
    """`sum(function(selector[{{window}}]))`: events (or samples) over the window, one series."""
    return f"sum({function}({selector.promql()}[{WINDOW_PLACEHOLDER}]))"


def _queries(numerator: str, numerator_query: str, total_query: str) -> dict[str, Any]:
    return {"ratio": {numerator: {"prometheus": numerator_query}, "total": {"prometheus": total_query}}}


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def threshold_of(bound: str) -> str | None:
    """Our latency threshold for a bucket bound `le`, when our `latency` SLI would select that bucket.

    The renderer matches whole seconds as `le=~"N(\\.0)?"` (Prometheus 2 and 3 spellings) and other
    bounds by the shortest float text; a bound spelled otherwise (`0.50`), `+Inf`, or finer than a
    millisecond (which our durations cannot say) is None, and the indicator stays a ratio.
    """
    try:
        seconds = float(bound)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds <= 0 or abs(seconds * 1000 - round(seconds * 1000)) > 1e-9:
        return None
    threshold = timedelta(milliseconds=round(seconds * 1000))
    rendered = threshold.total_seconds()
    spellings = {f"{int(rendered)}", f"{int(rendered)}.0"} if rendered.is_integer() else {repr(rendered)}
    return format_duration(threshold) if bound in spellings else None


class _Reader:
    """Reads one indicator's fields, collecting every problem rather than stopping at the first."""

    def __init__(self, body: dict[str, Any], loc: Loc, result: SliTranslation) -> None:
        self.body = body
        self.loc = loc
        self.result = result

    def selector(self, part: str | None, what: str) -> Selector | None:
        """The selector under `part.metric` (or `metric` itself), or None with an error at its line."""
        holder = self.body.get(part) if part is not None else self.body
        holder_loc = (*self.loc, part) if part is not None else self.loc
        if not isinstance(holder, dict):
            where = holder_loc if part in self.body else self.loc
            self.result.errors.append((where, f"{what} must be set: give '{part}: {{metric: <selector>}}'"))
            return None
        metric = holder.get("metric")
        if not isinstance(metric, str) or not metric.strip():
            self.result.errors.append(((*holder_loc, "metric"), f"{what} metric must be set (a PromQL selector)"))
            return None
        try:
            return parse_selector(metric)
        except SelectorError as error:
            self.result.errors.append(((*holder_loc, "metric"), f"{what} metric: {error}"))
            return None

    def grouping(self) -> None:
        """A warning at `grouping`: sloplane measures the SLO over every group at once."""
        grouping = self.body.get("grouping")
        loc = (*self.loc, "grouping")
        if grouping is None or grouping == []:
            return
        if not isinstance(grouping, list) or not all(isinstance(label, str) for label in grouping):
            self.result.errors.append((loc, "grouping must be a list of label names"))
            return
        labels = ", ".join(grouping)
        self.result.warnings.append(
            (
                loc,
                f"grouping by ({labels}) is not kept: Pyrra keeps a budget and alerts per group, sloplane one "
                f"SLO over all of them together, so one group burning its budget alone may not alert; "
                f"declare one SLO per {labels} value to keep that",
            )
        )

    def unknown_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.body:
            if key not in allowed:
                message = f"unknown key '{key}' is ignored (Pyrra knows: {', '.join(allowed)})"
                self.result.warnings.append(((*self.loc, key), message))


def _ratio(reader: _Reader) -> dict[str, Any] | None:
    errors = reader.selector("errors", "ratio errors")
    total = reader.selector("total", "ratio total")
    if errors is None or total is None:
        return None
    if errors == total:
        reader.result.warnings.append(
            ((*reader.loc, "errors", "metric"), "ratio errors metric is the total metric: every event is an error")
        )
    reader.result.mapping += [
        (("spec", "sli", "ratio", "errors"), (*reader.loc, "errors", "metric")),
        (("spec", "sli", "ratio", "total"), (*reader.loc, "total", "metric")),
    ]
    return _queries("errors", _counted("increase", errors), _counted("increase", total))


def _plain_latency(success: Selector, total: Selector) -> dict[str, Any] | None:
    """Our `latency` SLI when bucket and count are one histogram under the same plain selector."""
    base = success.name.removesuffix("_bucket")
    bound = success.matcher(BUCKET_LABEL)
    if not (success.name.endswith("_bucket") and total.name == f"{base}_count" and bound and bound.op == "="):
        return None
    selector = success.equalities(without=BUCKET_LABEL)
    threshold = threshold_of(bound.value)
    if selector is None or selector != total.equalities() or threshold is None:
        return None
    return {"latency": {"metric": base, "selector": selector, "threshold": threshold}}


def _latency(reader: _Reader) -> dict[str, Any] | None:
    success = reader.selector("success", "latency success")
    total = reader.selector("total", "latency total")
    if success is None or total is None:
        return None
    bound = success.matcher(BUCKET_LABEL)
    if bound is None:
        message = "latency success metric must have an le matcher (the histogram bucket of the target latency)"
        reader.result.errors.append(((*reader.loc, "success", "metric"), message))
        return None
    success_loc: Loc = (*reader.loc, "success", "metric")
    total_loc: Loc = (*reader.loc, "total", "metric")
    plain = _plain_latency(success, total)
    if plain is not None:
        reader.result.mapping += [(("spec", "sli", "latency", "threshold"), success_loc)]
        reader.result.mapping += [(("spec", "sli", "latency"), total_loc)]
        return plain
    reader.result.mapping += [
        (("spec", "sli", "ratio", "good"), success_loc),
        (("spec", "sli", "ratio", "total"), total_loc),
    ]
    return _queries("good", _counted("increase", success), _counted("increase", total))


def _latency_native(reader: _Reader) -> dict[str, Any] | None:
    """Native histograms: bad events are the count times the share slower than `latency`, as Pyrra computes."""
    total = reader.selector("total", "latencyNative total")
    latency = reader.body.get("latency")
    latency_loc: Loc = (*reader.loc, "latency")
    seconds: float | None = None
    if not isinstance(latency, str) or not latency.strip():
        reader.result.errors.append((latency_loc if "latency" in reader.body else reader.loc, _LATENCY_MISSING))
    else:
        try:
            seconds = parse_duration(latency).total_seconds()
        except DurationError as error:
            reader.result.errors.append((latency_loc, f"latencyNative latency: {error}"))
    if total is None or seconds is None:
        return None
    histogram = f"sum(increase({total.promql()}[{WINDOW_PLACEHOLDER}]))"
    events = f"histogram_count({histogram})"
    slower = f"{events} * (1 - histogram_fraction(0, {_seconds_text(seconds)}, {histogram}))"
    reader.result.mapping += [(("spec", "sli", "ratio", "errors"), latency_loc)]
    reader.result.mapping += [(("spec", "sli", "ratio"), (*reader.loc, "total", "metric"))]
    return _queries("errors", slower, events)


_LATENCY_MISSING = "latencyNative latency must be set (the latency requests should be faster than, e.g. 200ms)"


def _bool_gauge(reader: _Reader) -> dict[str, Any] | None:
    """A 0/1 gauge: good samples are its sum over the window, all samples its count (our `probe`)."""
    gauge = reader.selector(None, "bool_gauge")
    if gauge is None:
        return None
    reader.result.mapping += [(("spec", "sli"), (*reader.loc, "metric"))]
    selector = gauge.equalities()
    if selector is not None:
        return {"probe": {"metric": gauge.name, "selector": selector}}
    return _queries("good", _counted("sum_over_time", gauge), _counted("count_over_time", gauge))


_TRANSLATORS = {"ratio": _ratio, "latency": _latency, "latencyNative": _latency_native, "bool_gauge": _bool_gauge}


def indicator_sli(indicator: Any, loc: Loc) -> SliTranslation:
    """Our `sli` for Pyrra's `spec.indicator` (at `loc`), with its mapping, warnings and errors."""
    result = SliTranslation()
    if not isinstance(indicator, dict):
        result.errors.append((loc, f"indicator must be set: one of {', '.join(KINDS)}"))
        return result
    given = [kind for kind in KINDS if indicator.get(kind) is not None]
    for key in indicator:
        if key not in KINDS:
            result.warnings.append(
                ((*loc, key), f"unknown indicator '{key}' is ignored (Pyrra knows: {', '.join(KINDS)})")
            )
    if len(given) != 1:
        found = ", ".join(given) if given else "none"
        result.errors.append((loc, f"give exactly one of {', '.join(KINDS)}; found {found}"))
        return result
    kind = given[0]
    body = indicator[kind]
    kind_loc: Loc = (*loc, kind)
    if not isinstance(body, dict):
        result.errors.append((kind_loc, f"{kind} must be a mapping of {', '.join(_KEYS[kind])}"))
        return result
    reader = _Reader(body, kind_loc, result)
    reader.unknown_keys(_KEYS[kind])
    reader.grouping()
    result.sli = _TRANSLATORS[kind](reader)
    result.mapping.append((("spec", "sli"), kind_loc))
    return result
