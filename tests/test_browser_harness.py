"""The real-browser harness (tests/browser.py), proven on small hand-written pages before generated ones use it.

Each page is written to `tmp_path` and opened in the module's headless Chromium: SVG bars are counted and their
fills read back as the browser computed them (attribute, style sheet, style attribute); a script that throws
and a page that reaches for the network show in the console, a clean page shows nothing there; the page read
with JavaScript off shows what a script would have replaced; a screenshot is a PNG of the viewport whose
pixels are the page's; the browser's processes end with it.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser import (
    VIEWPORT,
    PageLoadError,
    binaries,
    hex_colour,
    open_page,
    running_browser,
    screenshot,
)

pytest_plugins = ("tests.browser",)


def page(folder: Path, body: str, *, head: str = "", name: str = "page.html") -> Path:
    """A small HTML5 page; no favicon request (`data:`), so an HTTP server's 404 for it never shows."""
    path = folder / name
    path.write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>harness</title>'
        f'<link rel="icon" href="data:,">{head}</head><body>{body}</body></html>',
        encoding="utf-8",
    )
    return path


# (how the fill is written, the colour the browser computes)
FILLS = [
    ('fill="#2e7d32"', "#2e7d32"),
    ('fill="red"', "#ff0000"),
    ('style="fill: rgb(0, 0, 255)"', "#0000ff"),
    ('class="bad"', "#c62828"),  # from the style sheet
    ('class="bad" fill="#000000"', "#c62828"),  # a style sheet rule wins over the presentation attribute
    ('fill="rgba(0, 0, 0, 0.5)"', "#00000080"),
    ('fill="none"', "none"),
]


def test_svg_rects_are_counted_and_their_fills_read_back(browser, tmp_path: Path) -> None:
    bars = FILLS * 3
    rects = "".join(f'<rect x="{10 * i}" y="0" width="8" height="{i + 1}" {fill}/>' for i, (fill, _) in enumerate(bars))
    path = page(
        tmp_path,
        f'<svg id="chart" width="300" height="40" viewBox="0 0 300 40">{rects}<text x="0" y="35">SLO</text></svg>',
        head="<style>rect.bad { fill: #c62828 }</style>",
    )

    checked = open_page(browser, path)

    assert checked.count("#chart rect") == len(bars) == 21
    assert checked.count("#chart rect.bad") == 6
    assert checked.count("#chart circle") == 0
    assert checked.colours("#chart rect") == [colour for _, colour in bars]
    assert checked.styles("#chart rect", "fill")[:3] == ["rgb(46, 125, 50)", "rgb(255, 0, 0)", "rgb(0, 0, 255)"]
    assert checked.attributes("#chart rect", "height") == [str(i + 1) for i in range(len(bars))]
    assert checked.attributes("#chart rect", "fill")[2:4] == [None, None]
    assert checked.texts("#chart text") == ["SLO"]
    assert checked.problems() == []


def test_a_script_that_throws_is_reported(browser, tmp_path: Path) -> None:
    path = page(
        tmp_path,
        "<p>report</p><script>"
        'console.warn("deprecated option");'
        'console.error("cannot draw the chart");'
        'throw new Error("boom in the report");'
        "</script>",
    )

    checked = open_page(browser, path)

    errors = checked.errors()
    assert [entry.source for entry in errors] == ["console-api", "javascript"]
    assert "cannot draw the chart" in errors[0].message
    assert "Uncaught Error: boom in the report" in errors[1].message
    assert path.name in errors[1].message  # where it was thrown
    assert [entry.level for entry in checked.warnings()] == ["WARNING"]
    assert "deprecated option" in checked.warnings()[0].message
    assert len(checked.problems()) == 3


def test_a_late_error_is_reported_when_it_happens(browser, tmp_path: Path) -> None:
    path = page(tmp_path, '<script>setTimeout(() => { throw new TypeError("late") }, 200)</script>')

    checked = open_page(browser, path)

    errors = WebDriverWait(browser, 5).until(lambda _: checked.errors())
    assert "Uncaught TypeError: late" in errors[0].message


def test_a_clean_page_has_no_console_errors(browser, tmp_path: Path) -> None:
    path = page(
        tmp_path,
        '<p id="state">loading</p>'
        '<script>document.getElementById("state").textContent = "ready"; console.log("drawn");</script>',
    )

    checked = open_page(browser, path)

    assert checked.problems() == []
    assert checked.text("#state") == "ready"
    # The console is read (an info message arrives), so the empty list above is not a console left unread.
    assert [(entry.level, entry.source) for entry in checked.console()] == [("INFO", "console-api")]
    assert '"drawn"' in checked.console()[0].message


def test_without_javascript_the_page_reads_as_written(browser, browser_without_javascript, tmp_path: Path) -> None:
    path = page(
        tmp_path,
        '<p id="budget">Budget left: 42%</p>'
        '<noscript><p id="hint">Charts need JavaScript; the figures above do not.</p></noscript>'
        '<svg width="20" height="10"><rect width="10" height="10" fill="#2e7d32"/></svg>'
        '<script>document.getElementById("budget").textContent = "drawn by script";</script>',
    )

    with_script = open_page(browser, path)
    assert with_script.text("#budget") == "drawn by script"
    assert "Charts need JavaScript" not in with_script.text()

    without = open_page(browser_without_javascript, path)
    assert without.text("#budget") == "Budget left: 42%"
    assert without.text("#hint") == "Charts need JavaScript; the figures above do not."
    assert "Budget left: 42%\n" in without.text()
    # The harness's own checks still work on a page whose scripts do not run.
    assert without.count("svg rect") == 1
    assert without.colours("svg rect") == ["#2e7d32"]
    assert without.problems() == []


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks, each checked against its CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    return chunks


def _first_row(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """Width, height and the top row's pixels of an 8-bit RGB or RGBA PNG (the top row needs no row above)."""
    chunks = _png_chunks(data)
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, interlace) == (8, 0)
    channels = {2: 3, 6: 4}[colour_type]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 1 + width * channels
    assert len(raw) == height * stride
    assert {raw[row * stride] for row in range(height)} <= {0, 1, 2, 3, 4}  # each row's filter type
    kind, row = raw[0], bytearray(raw[1:stride])
    for i in range(len(row)):
        left = row[i - channels] if i >= channels else 0
        # None, Sub, Up, Average, Paeth with an all-zero row above: Up adds 0, Paeth predicts `left`.
        row[i] = (row[i] + {0: 0, 1: left, 2: 0, 3: left // 2, 4: left}[kind]) % 256
    pixels = [tuple(row[i : i + channels])[:3] for i in range(0, len(row), channels)]
    return width, height, pixels


def test_a_screenshot_is_a_png_of_the_viewport(browser, tmp_path: Path) -> None:
    path = page(
        tmp_path,
        '<div id="mark" style="position:absolute;left:0;top:0;width:100px;height:50px;background:#0000ff"></div>',
        head="<style>html, body { margin: 0; background: #ff0000 }</style>",
    )
    checked = open_page(browser, path)

    shot = screenshot(browser, "red-page-blue-mark")
    element = checked.screenshot("blue-mark", "#mark")

    assert shot.name == "red-page-blue-mark.png"
    assert shot.parent.name == "test_browser_harness"
    assert os.environ.get("SLOPLANE_TEST_ARTIFACTS") or Path(__file__).parent not in shot.parents
    width, height, top = _first_row(shot.read_bytes())
    assert (width, height) == VIEWPORT
    assert top == [(0, 0, 255)] * 100 + [(255, 0, 0)] * (VIEWPORT[0] - 100)
    width, height, top = _first_row(element.read_bytes())
    assert (width, height) == (100, 50)
    assert set(top) == {(0, 0, 255)}
    with pytest.raises(ValueError, match="screenshot's name"):
        screenshot(browser, "../escape")


def test_an_outside_request_is_refused_and_reported(browser, tmp_path: Path) -> None:
    path = page(tmp_path, '<img src="https://example.com/pixel.png" alt="x"><img src="http://192.0.2.1/p.png" alt="y">')

    checked = open_page(browser, path)

    failed = [entry.message for entry in checked.errors() if entry.source == "network"]
    assert len(failed) == 2
    # The harness's closed proxy refused them: not merely a machine without a route out.
    assert all("Failed to load resource: net::ERR_PROXY_CONNECTION_FAILED" in message for message in failed)
    with pytest.raises(ValueError, match="loopback pages only"):
        open_page(browser, "https://example.com/")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """tmp_path over HTTP on 127.0.0.1 (a free port): the base URL."""
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_loopback_page_loads(browser, tmp_path: Path, served: str) -> None:
    page(tmp_path, '<h1 id="status">All SLOs met</h1>', name="status.html")
    (tmp_path / "bare.html").write_text("<!doctype html><title>bare</title><p>no icon named</p>", encoding="utf-8")

    checked = open_page(browser, f"{served}/status.html")
    assert checked.title == "harness"
    assert checked.text("#status") == "All SLOs met"
    assert checked.problems() == []

    # A served page that names no icon makes the browser ask for /favicon.ico: the server's 404 shows.
    bare = open_page(browser, f"{served.replace('127.0.0.1', 'localhost')}/bare.html")
    assert [entry.message for entry in bare.errors()] == [
        f"{served.replace('127.0.0.1', 'localhost')}/favicon.ico - "
        "Failed to load resource: the server responded with a status of 404 (File not found)"
    ]


def test_a_page_that_does_not_load_is_an_error(browser, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no page at"):
        open_page(browser, tmp_path / "missing.html")
    with pytest.raises(PageLoadError, match="could not load file://"):
        open_page(browser, (tmp_path / "missing.html").as_uri())
    with pytest.raises(PageLoadError, match=re.escape("could not load http://127.0.0.1:1/")):
        open_page(browser, "http://127.0.0.1:1/")  # tcpmux: nothing listens


def test_a_page_check_belongs_to_its_page(browser, tmp_path: Path) -> None:
    first = open_page(browser, page(tmp_path, "<p>one</p>", name="one.html"))
    second = open_page(browser, page(tmp_path, "<p>two</p><p>three</p>", name="two.html"))

    assert second.count("p") == 2
    with pytest.raises(RuntimeError, match="no longer the browser's page"):
        first.count("p")


def test_the_browser_is_debians_chromium_at_its_drivers_version(browser) -> None:
    found = binaries()
    assert found.chromium_version == found.chromedriver_version
    assert browser.capabilities["browserVersion"] == found.chromium_version
    assert browser.execute_script("return [window.innerWidth, window.innerHeight, window.devicePixelRatio]") == [
        *VIEWPORT,
        1,
    ]
    assert "HeadlessChrome" in browser.execute_script("return navigator.userAgent")


def _descendants(root: int) -> set[int]:
    """Every process under `root`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_closed_browser_leaves_no_process(tmp_path: Path) -> None:
    with running_browser(folder=tmp_path / "browser", screenshots=tmp_path / "shots") as driver:
        assert driver.service.process is not None
        chromedriver = driver.service.process.pid
        processes = {chromedriver, *_descendants(chromedriver)}
        assert len(processes) >= 3  # chromedriver, the browser and its helpers

    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in processes if _alive(pid)] == []


@pytest.mark.parametrize(
    ("computed", "expected"),
    [
        ("rgb(46, 125, 50)", "#2e7d32"),
        ("rgba(0, 0, 0, 0.5)", "#00000080"),
        ("rgba(255, 255, 255, 1)", "#ffffff"),
        ("none", "none"),
        ('url("#gradient")', 'url("#gradient")'),
    ],
)
def test_hex_colour(computed: str, expected: str) -> None:
    assert hex_colour(computed) == expected
