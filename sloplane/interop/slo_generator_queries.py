"""slo-generator's Prometheus SLI methods as sloplane SLIs, computing what its Prometheus backend computes.

How slo-generator 2.x builds PromQL (`slo_generator/backends/prometheus.py`), which this follows:

- the window: a query containing `[window` has it replaced by `[<step window>s`; any other query
  gets `[<step window>s]` appended. sloplane writes `{{window}}` in the same places;
- `good_bad_ratio`: `filter_good` and `filter_bad` (or `filter_valid`) are each wrapped in the
  `operators`, default `increase` then `sum`: `sum(increase(<filter>[window]))`, event counts over the
  window. With `filter_valid`, bad = valid - good. A filter that returns nothing counts as 0 events,
  so the numerator here gets `or vector(0)` (a missing error series means no errors). Those counts
  become our `ratio` SLI (good or errors, and total), which must yield event counts too;
- `query_sli`: the expression *is* the SLI (good ratio); it becomes `raw.errorRatio: 1 - (expr)`. An
  expression without `[window]` would get `[<window>s]` appended, which no PromQL expression other than
  a bare selector accepts, and a range vector is no SLI: it is refused;
- `distribution_cut`: a histogram's `_bucket` selector and `threshold_bucket` (the `le` value): good =
  `sum(increase(<expr with le="T">[window]))`, valid = the same over `_count`. A plain selector
  (equality matchers) of a `_seconds` histogram whose threshold is a whole number of milliseconds
  becomes our portable `latency` SLI (the same two reads, bad = count - bucket); any other becomes a
  `ratio` of the same bucket and count reads. The Prometheus backend ignores
  `good_below_threshold` (good is always below): so does the import, with a warning when it says false.

slo-generator reads only the first series of each answer; every read here is summed (one series).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sloplane.core.durations import format_duration
from sloplane.declaration.diagnostics import Loc
from sloplane.declaration.sli import WINDOW_PLACEHOLDER
from sloplane.declaration.validation import did_you_mean
from sloplane.interop.translation import SliTranslation

SLI_LOC: Loc = ("spec", "service_level_indicator")
METHODS = ("good_bad_ratio", "query_sli", "distribution_cut")
DEFAULT_OPERATORS = ("increase", "sum")
_COUNTERS = ("increase", "rate")
_SELECTOR = re.compile(
    r"^\s*(?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(?P<matchers>.*)\})?\s*(?:\[window\])?\s*$", re.DOTALL
)
_MATCHER = re.compile(
    r"\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')\s*(?:,\s*|$)"
)


def indicator(method: Any, measurement: Any) -> SliTranslation:
    """The SLI of one slo-generator SLO config (`spec.method`, `spec.service_level_indicator`)."""
    found = SliTranslation()
    if not isinstance(method, str):
        found.errors.append((("spec", "method") if method is not None else ("spec",), _method_message(method)))
        return found
    if not isinstance(measurement, dict):
        found.errors.append((SLI_LOC, "'service_level_indicator' must be a mapping of the method's fields"))
        return found
    readers: dict[str, Callable[[dict[str, Any], SliTranslation], None]] = {
        "good_bad_ratio": _good_bad_ratio,
        "query_sli": _query_sli,
        "distribution_cut": _distribution_cut,
    }
    reader = readers.get(method)
    if reader is None:
        found.errors.append((("spec", "method"), _method_message(method)))
        return found
    reader(measurement, found)
    return found


def _method_message(method: Any) -> str:
    if method is None:
        return f"missing 'method': one of {', '.join(METHODS)}"
    hint = did_you_mean(str(method), list(METHODS)) or f" (the Prometheus backend has {', '.join(METHODS)})"
    return f"method '{method}' is not supported{hint}"


def windowed(query: str) -> str:
    """slo-generator's window rule with our placeholder: `[window` replaced, else `[window]` appended."""
    query = query.strip()
    if "[window" in query:
        return query.replace("[window", "[" + WINDOW_PLACEHOLDER)
    return f"{query}[{WINDOW_PLACEHOLDER}]"


def _text(measurement: dict[str, Any], key: str, found: SliTranslation, *, required: bool = True) -> str | None:
    value = measurement.get(key)
    if value is None:
        if required:
            found.errors.append((SLI_LOC, f"missing '{key}'"))
        return None
    if not isinstance(value, str) or not value.strip():
        found.errors.append(((*SLI_LOC, key), f"'{key}' must be a PromQL query (text)"))
        return None
    return value


def _unknown_keys(measurement: dict[str, Any], known: tuple[str, ...], found: SliTranslation) -> None:
    """Keys slo-generator's Prometheus backend never reads: ignored, as it ignores them, with a warning."""
    for key in measurement:
        if str(key) not in known:
            hint = did_you_mean(str(key), list(known))
            found.warnings.append(((*SLI_LOC, str(key)), f"'{key}' is not read by this method and is ignored{hint}"))


def _operators(measurement: dict[str, Any], found: SliTranslation) -> tuple[str, ...] | None:
    """The counting function of `operators`: increase (or rate, read as increase) and then sum."""
    raw = measurement.get("operators", list(DEFAULT_OPERATORS))
    loc: Loc = (*SLI_LOC, "operators")
    if not isinstance(raw, list) or not raw or not all(isinstance(item, str) for item in raw):
        found.errors.append((loc, "'operators' must be a list such as [increase, sum]"))
        return None
    operators = tuple(item.strip() for item in raw)
    if operators[0] not in _COUNTERS or any(item != "sum" for item in operators[1:]):
        found.errors.append(
            (loc, f"operators {list(operators)} are not supported: sloplane imports [increase, sum] (or [rate, sum])")
        )
        return None
    if operators[0] == "rate":
        found.warnings.append(
            (loc, "rate is imported as increase: the same ratio, but sloplane's ratio queries count events")
        )
    if "sum" not in operators:
        found.warnings.append((loc, "slo-generator reads only the first series without sum; the import sums them"))
    return DEFAULT_OPERATORS


def counted(query: str) -> str:
    """`sum(increase(<query>[{{window}}]))`: event counts over the window, as slo-generator's default."""
    return f"sum(increase({windowed(query)}))"


def _good_bad_ratio(measurement: dict[str, Any], found: SliTranslation) -> None:
    _unknown_keys(measurement, ("filter_good", "filter_bad", "filter_valid", "operators"), found)
    good = _text(measurement, "filter_good", found)
    bad = _text(measurement, "filter_bad", found, required=False)
    valid = _text(measurement, "filter_valid", found, required=False)
    operators = _operators(measurement, found)
    if "filter_bad" not in measurement and "filter_valid" not in measurement:
        found.errors.append((SLI_LOC, "give 'filter_bad' or 'filter_valid' beside 'filter_good'"))
    if good is None or operators is None or (bad is None and valid is None):
        return
    if bad is not None and valid is not None:
        found.warnings.append(
            ((*SLI_LOC, "filter_valid"), "ignored: slo-generator uses filter_bad when both are given")
        )
    good_count = counted(good)
    if bad is not None:
        bad_count = f"{counted(bad)} or vector(0)"
        found.sli = {
            "ratio": {"errors": {"prometheus": bad_count}, "total": {"prometheus": f"{good_count} + ({bad_count})"}}
        }
        found.mapping = [
            (("spec", "sli", "ratio", "errors"), (*SLI_LOC, "filter_bad")),
            (("spec", "sli", "ratio", "total"), (*SLI_LOC, "filter_good")),
        ]
        return
    assert valid is not None
    found.sli = {
        "ratio": {"good": {"prometheus": f"{good_count} or vector(0)"}, "total": {"prometheus": counted(valid)}}
    }
    found.mapping = [
        (("spec", "sli", "ratio", "good"), (*SLI_LOC, "filter_good")),
        (("spec", "sli", "ratio", "total"), (*SLI_LOC, "filter_valid")),
    ]


def _query_sli(measurement: dict[str, Any], found: SliTranslation) -> None:
    _unknown_keys(measurement, ("expression",), found)
    expression = _text(measurement, "expression", found)
    if expression is None:
        return
    if "[window" not in expression:
        found.errors.append(
            (
                (*SLI_LOC, "expression"),
                "the expression has no [window]: slo-generator would append [<window>s] to it, which is no SLI; "
                "write [window] where each range goes",
            )
        )
        return
    found.sli = {"raw": {"errorRatio": {"prometheus": f"1 - ({windowed(expression)})"}}}
    found.mapping = [(("spec", "sli"), (*SLI_LOC, "expression"))]


@dataclass(frozen=True)
class _Selector:
    metric: str
    matchers: str
    """The text inside the braces, as written (without a trailing comma)."""
    equalities: dict[str, str] | None
    """The matchers as labels when every one is a plain `label="value"` without escapes, else None."""


def _selector(expression: str) -> _Selector | None:
    """A single series selector (`name{matchers}`, optionally `[window]`); None for anything else."""
    match = _SELECTOR.match(expression)
    if match is None:
        return None
    text = (match["matchers"] or "").strip().rstrip(",").strip()
    labels: dict[str, str] = {}
    plain = True
    position = 0
    while position < len(text):
        matcher = _MATCHER.match(text, position)
        if matcher is None or matcher.end() == position:
            return None
        value = matcher["value"][1:-1]
        plain = plain and matcher["op"] == "=" and "\\" not in value and matcher["label"] not in labels
        labels[matcher["label"]] = value
        position = matcher.end()
    return _Selector(match["metric"], text, labels if plain else None)


def _threshold(value: Any, found: SliTranslation) -> tuple[str, Decimal] | None:
    """The `le` text slo-generator writes (`f"{value}"`) and its number."""
    loc: Loc = (*SLI_LOC, "threshold_bucket")
    if value is None:
        found.errors.append((SLI_LOC, "missing 'threshold_bucket' (the `le` bucket bound good requests fall under)"))
        return None
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = Decimal("NaN")
    if isinstance(value, bool) or not number.is_finite() or number <= 0:
        found.errors.append((loc, f"'threshold_bucket' must be a positive bucket bound such as 0.25, not '{text}'"))
        return None
    return text, number


def _latency_threshold(text: str, number: Decimal) -> str | None:
    """Our duration for a bound in seconds, when our `le` matcher selects the very bucket slo-generator's does."""
    milliseconds = number * 1000
    if milliseconds != milliseconds.to_integral_value():
        return None
    duration = timedelta(milliseconds=int(milliseconds))
    seconds = duration.total_seconds()
    ours = str(int(seconds)) if seconds.is_integer() else repr(seconds)
    same = text == ours or (seconds.is_integer() and text == f"{int(seconds)}.0")
    return format_duration(duration) if same else None


def _distribution_cut(measurement: dict[str, Any], found: SliTranslation) -> None:
    _unknown_keys(measurement, ("expression", "threshold_bucket", "good_below_threshold"), found)
    expression = _text(measurement, "expression", found)
    bound = _threshold(measurement.get("threshold_bucket"), found)
    if measurement.get("good_below_threshold", True) is not True:
        found.warnings.append(
            (
                (*SLI_LOC, "good_below_threshold"),
                "slo-generator's Prometheus backend ignores good_below_threshold: requests under the bound are good",
            )
        )
    selector = _selector(expression) if expression is not None else None
    if expression is not None and (selector is None or not selector.metric.endswith("_bucket")):
        found.errors.append(
            ((*SLI_LOC, "expression"), "the expression must be one histogram selector: <name>_bucket{matchers}")
        )
    if selector is None or bound is None or not selector.metric.endswith("_bucket"):
        return
    base = selector.metric.removesuffix("_bucket")
    found.mapping = [(("spec", "sli"), (*SLI_LOC, "expression"))]
    threshold = _latency_threshold(*bound) if "_seconds" in base else None
    if selector.equalities is not None and "le" not in selector.equalities and threshold is not None:
        found.sli = {"latency": {"metric": base, "selector": selector.equalities, "threshold": threshold}}
        return
    le = f'le="{bound[0]}"'
    good_matchers = f"{selector.matchers}, {le}" if selector.matchers else le
    total_selector = f"{base}_count{{{selector.matchers}}}" if selector.matchers else f"{base}_count"
    found.sli = {
        "ratio": {
            "good": {"prometheus": f"{counted(f'{selector.metric}{{{good_matchers}}}')} or vector(0)"},
            "total": {"prometheus": counted(total_selector)},
        }
    }
