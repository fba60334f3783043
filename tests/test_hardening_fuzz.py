"""Hostile YAML and thousands of odd declarations: a declaration or a clean diagnostic, never a crash (issue 10).

- A property over the one YAML reader every file input shares (declarations, receivers, tokens):
  anchors and aliases up to bombs, recursive aliases and merges, deep nesting, huge scalars and
  numbers, odd encodings and corrupted bytes. Each input gives data or a clean, positioned
  diagnostic within a time and memory bound measured in this process (tracemalloc) — generous
  bounds that only an unbounded expansion would cross, not speed assertions.
- 10,000 generated and mutated declarations, loaded, and rendered and explained where valid: no
  exception escapes (an escaped exception is what the CLI reports as an internal error). The counts
  are printed in the test summary.
"""

from __future__ import annotations

import codecs
import random
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sloplane.evaluator.http.auth import TokenFileError, TokenStore
from sloplane.evaluator.notify.config import ReceiversFileError, load_receivers
from sloplane.interop import load_paths
from sloplane.render.bundle import fleet_files
from sloplane.semantics.explain import explain
from tests.conftest import summarised
from tests.strategies import declarations, mutate

SECONDS_BOUND = 20.0
"""Far above any legitimate load here (milliseconds); an unbounded expansion takes minutes."""
MEMORY_BOUND = 512 * 2**20
"""Python memory one input may take while read (tracemalloc peak); a bomb would take gigabytes."""

HEADER = "apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {name: fuzz}\n"
BODY = "spec:\n  service: checkout\n  owners: {team: payments}\n  objective: 99.9\n"


@st.composite
def anchored(draw: st.DrawFn) -> str:
    """A chain of anchors, each level a sequence (or mapping) of aliases to the one before: up to a bomb."""
    levels, fan_out = draw(st.integers(1, 14)), draw(st.integers(1, 12))
    as_mapping = draw(st.booleans())
    lines = ["  a0: &a0 [lol, lol]"]
    for level in range(1, levels + 1):
        if as_mapping:
            items = ", ".join(f"k{index}: *a{level - 1}" for index in range(fan_out))
            lines.append(f"  a{level}: &a{level} {{{items}}}")
        else:
            lines.append(f"  a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * fan_out)}]")
    if draw(st.booleans()):
        lines.append(f"  merged: {{<<: *a{levels}, extra: 1}}" if as_mapping else f"  used: *a{levels}")
    return "spec:\n" + "\n".join(lines) + "\n"


RECURSIVE = st.sampled_from(
    [
        "spec: &s\n  service: checkout\n  self: *s\n",
        "spec:\n  loop: &l [1, *l]\n",
        "spec:\n  m: &m {a: 1, <<: *m}\n",
        "spec:\n  a: &a {b: &b {c: *a}}\n",
    ]
)


@st.composite
def nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3000))
    if draw(st.booleans()):
        return f"spec:\n  deep: {'[' * depth}{']' * depth}\n"
    depth = min(depth, 400)
    keys = "".join(f"{'  ' * (level + 1)}k{level}:\n" for level in range(depth))
    return "spec:\n" + keys + "  " * (depth + 1) + "v\n"


@st.composite
def huge_scalars(draw: st.DrawFn) -> str:
    size = draw(st.sampled_from([10, 1000, 100_000, 2_000_000]))
    kind = draw(st.sampled_from(["string", "digits", "float", "exponent", "duration", "key"]))
    value = {
        "string": '"' + "x" * size + '"',
        "digits": "9" * size,
        "float": "9" * size + ".5",
        "exponent": f"1e{'9' * min(size, 5000)}",
        "duration": f"{'9' * min(size, 5000)}d",
        "key": "v",
    }[kind]
    field = {"digits": "objective", "float": "objective", "exponent": "objective", "duration": "window"}.get(kind, "x")
    if kind == "key":
        field = "k" * size
    return BODY + f"  {field}: {value}\n"


TEXTS = st.one_of(anchored(), RECURSIVE, nested(), huge_scalars(), st.just(BODY))


@st.composite
def encoded(draw: st.DrawFn) -> bytes:
    """A text with a declaration's header, in one of the encodings YAML allows or with bytes no encoding allows."""
    text = (HEADER if draw(st.booleans()) else "") + draw(TEXTS)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32", "utf-16-le", "latin-1"]))
    if encoding == "latin-1":
        text += "  note: café\n"  # é in Latin-1 is not UTF-8
    data = text.encode(encoding)
    if draw(st.integers(0, 4)) == 0:
        position = draw(st.integers(0, len(data)))
        noise = draw(st.sampled_from([b"\x00", b"\xff\xfe", b"\xef\xbb", b"\x1b[2J", b"\r", b"\t", b"\x85"]))
        data = data[:position] + noise + data[position:]
    return data


def _bounded(read: Any) -> Any:
    """Run `read()` and check the time and Python memory it took against the bounds."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        return read()
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < SECONDS_BOUND, f"reading took {elapsed:.1f} s"
        assert peak < MEMORY_BOUND, f"reading took {peak / 2**20:.0f} MiB"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=encoded())
def test_every_yaml_input_gives_data_or_a_clean_diagnostic_in_bounded_time_and_memory(
    folder: Path, data: bytes
) -> None:
    path = folder / "input.yaml"
    path.write_bytes(data)
    path.chmod(0o600)
    result = _bounded(lambda: load_paths([path]))
    lines = max(data.count(b"\n"), 1) + 1
    assert result.slos or result.errors or not result.diagnostics
    for diagnostic in result.diagnostics:
        assert diagnostic.path == str(path)
        assert 1 <= diagnostic.position.line <= lines, diagnostic.render()[:300]
        assert 0 < len(diagnostic.message) <= 2000, diagnostic.message[:300]
    for reader, refusal in ((TokenStore.from_file, TokenFileError), (load_receivers, ReceiversFileError)):
        message = _refusal(lambda reader=reader: reader(path), refusal)  # type: ignore[misc]
        assert message is None or (str(path) in message and len(message) <= 4000), message[:300]


def _refusal(read: Any, refusal: type[Exception]) -> str | None:
    """What `read` refused the file with (only its own error type may escape it), or None when it accepted it."""
    try:
        _bounded(read)
    except refusal as error:
        return str(error)
    return None


TALLY: Counter[str] = Counter()
"""What the 10,000 declarations came to, reported at the end of the module."""


report_tally = summarised("10,000-declaration fuzz", TALLY)


BASES, VARIANTS, EXAMPLES = 10, 10, 100
"""100 examples of 10 generated declarations, each loaded as drawn and in 9 mutated variants: 10,000."""
RENDER_EVERY = 4
"""Every 4th file's valid declarations are also rendered to every output (rendering costs ten times loading)."""


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(declarations(), min_size=BASES, max_size=BASES), st.randoms(use_true_random=False))
def test_ten_thousand_generated_and_mutated_declarations_cause_no_internal_error(
    folder: Path, bases: list[dict[str, Any]], rng: random.Random
) -> None:
    """Each file loads; what is valid explains, and every 4th file's valid declarations render too.

    hypothesis draws the declarations (the slow part: about 10 ms each); the mutations are a seeded
    `mutate`, so 10,000 variants cost what 1,000 draws do.
    """
    fleet = [variant for base in bases for variant in [base, *(mutate(base, rng) for _ in range(VARIANTS - 1))]]
    for index, document in enumerate(fleet):
        if isinstance(document.get("metadata"), dict):
            document["metadata"]["name"] = f"slo-{index}"  # distinct names: each document judged on its own
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump_all(fleet, sort_keys=False, allow_unicode=True), encoding="utf-8")
    TALLY["files"] += 1
    try:
        result = load_paths([path])
        files = fleet_files(result.declarations) if TALLY["files"] % RENDER_EVERY == 1 else {}
        for declaration in result.declarations:
            explain(declaration)
    except Exception as error:  # exactly what the CLI would report as an internal error
        TALLY["internal errors"] += 1
        raise AssertionError(f"internal error on generated input: {type(error).__name__}: {error}") from error
    TALLY["declarations"] += len(fleet)
    TALLY["valid"] += len(result.slos)
    TALLY["refused with diagnostics"] += len(fleet) - len(result.slos)
    TALLY["declarations rendered"] += len(result.declarations) if files else 0
    TALLY["files rendered"] += len(files)
    TALLY["internal errors"] += 0
    assert all(d.position.line >= 1 for d in result.diagnostics)


def test_utf16_and_utf32_declarations_read_as_yaml_allows(folder: Path) -> None:
    """YAML 1.2 allows UTF-16 and UTF-32 with a byte order mark: such files are declarations like any other."""
    text = HEADER + BODY + "  sli:\n    http: {metric: http_requests_total, selector: {job: checkout}}\n"
    for encoding, bom in (("utf-16-le", codecs.BOM_UTF16_LE), ("utf-32-be", codecs.BOM_UTF32_BE)):
        path = folder / f"{encoding}.yaml"
        path.write_bytes(bom + text.encode(encoding))
        result = load_paths([path])
        assert [slo.name for slo in result.slos] == ["fuzz"], [d.render() for d in result.diagnostics]
