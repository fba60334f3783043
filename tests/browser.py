"""Headless Chromium for tests of generated HTML pages (reports, the status page), driven by Selenium 4.

Why a real browser: whether an SVG chart draws its bars in the right colours, whether a page's script throws,
whether the page still reads without JavaScript, is decided by a browser's parser, style engine and script
engine; a check of the HTML text misses all three. The browser is Debian's `chromium` and its WebDriver
`chromium-driver` at the very same version (installed by `tools/install-system-packages.sh`, which `make
test` runs): browser builds a Python package would download cannot be fetched here, so Selenium is given both
paths and Selenium Manager never runs. A missing or mismatched install fails the tests that need it, loudly:
never a skip. `SLOPLANE_CHROMIUM` / `SLOPLANE_CHROMEDRIVER` name other binaries; otherwise Debian's real
binaries in `/usr/lib/chromium/` are used (not the `/usr/bin/chromium` launcher script, which sources
`/etc/chromium.d/`: extensions, API keys, flags), then whatever `chromium` and `chromedriver` are on PATH.

The browser: headless (`--headless=new`), `--no-sandbox` (CI runs as root), `--disable-gpu`, one device
pixel per CSS pixel and a fixed viewport (`VIEWPORT`, which is what a screenshot captures), its profile and
HOME in the pytest temporary folder, and no network beyond `file://` and loopback (`127.0.0.1`,
`localhost`): every other request goes to a proxy on a closed loopback port and every other host name fails
to resolve, so a page that reaches out shows it as a console error (`net::ERR_PROXY_CONNECTION_FAILED`)
instead of loading. `open_page` refuses any other URL. Page loads time out after `PAGE_LOAD_TIMEOUT`
seconds, scripts after `SCRIPT_TIMEOUT`, any WebDriver command after `COMMAND_TIMEOUT`.

Each test module gets its own browser (module scope: ~0.7 s to start, under 0.1 s per small page; each pytest-xdist
worker starts its own), quit at the module's end, the browser's processes with it. `browser` runs
JavaScript; `browser_without_javascript` (started only by modules that ask for it) has it switched off by
Chrome's content setting, as a reader who disabled it would: `<noscript>` shows and no page script runs,
while the harness' own checks still work.

Artifacts — screenshots (`screenshot`) and the chromedriver log — go to `$SLOPLANE_TEST_ARTIFACTS/browser/`
when that is set (CI can keep them), else to `browser/` in the pytest temporary folder (per xdist worker;
pytest keeps the last three runs): never into the source tree unless asked to. Screenshots are under
`screenshots/<test module>/<name>.png`.

Use (test modules load the fixtures with `pytest_plugins = ("tests.browser",)`):

    page = open_page(browser, tmp_path / "report.html")  # a Path, or a file:// or loopback URL
    assert page.problems() == []                        # console errors and warnings, page load included
    assert page.count("svg rect.bar") == 30
    assert page.colours("svg rect.bar", "fill")[:2] == ["#2e7d32", "#c62828"]
    assert page.attributes("svg rect.bar", "height")[0] == "12"
    shot = screenshot(browser, "report")                 # the PNG's path

    page = open_page(browser_without_javascript, tmp_path / "report.html")
    assert "99.9%" in page.text()

A page served over HTTP is asked for `/favicon.ico`: a server without one shows a 404 console error unless
the page names its icon (`<link rel="icon" href="data:,">`). Console messages logged after the load (a
timer's, an event's) are picked up by each later call of `console()`, `errors()`, `warnings()`,
`problems()`. A `PageCheck` belongs to the page it opened: once the browser opens another, using it raises.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

VIEWPORT = (1280, 800)
"""The page's viewport in CSS pixels (one device pixel each): what a screenshot captures, width × height."""
PAGE_LOAD_TIMEOUT = 20.0
SCRIPT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
"""Bounds every WebDriver command once the browser runs (a hung browser fails the test instead of stalling it);
starting it is bounded by Selenium: ~30 s for chromedriver to listen, 120 s for the browser's session."""
VERSION_TIMEOUT = 30.0

DEBIAN_FOLDER = Path("/usr/lib/chromium")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
ARTIFACTS_ENV = "SLOPLANE_TEST_ARTIFACTS"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
CLOSED_PROXY = "http://127.0.0.1:9"
"""Where every non-loopback request is sent (the discard port, closed here): it fails instead of leaving."""
JAVASCRIPT_OFF = {"profile.managed_default_content_settings.javascript": 2}
"""Chrome's content setting for JavaScript, 2 = block: what a reader who switched it off gets."""

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # Chromium refuses to run as root with its sandbox, and CI runs as root.
    "--disable-gpu",
    "--disable-dev-shm-usage",  # /dev/shm can be small in containers: shared memory in /tmp instead.
    f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
    "--force-device-scale-factor=1",
    "--hide-scrollbars",
    "--mute-audio",
    "--lang=en-US",
    # No network: a proxy nobody listens on for everything but loopback (bypassed by default), and no
    # name resolves but localhost; no background traffic (updates, metrics, sync, safe browsing, translate).
    f"--proxy-server={CLOSED_PROXY}",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--password-store=basic",
)


class ChromiumMissingError(RuntimeError):
    """Chromium or its WebDriver is not installed, or the two are not the same version."""


class PageLoadError(RuntimeError):
    """The browser showed its own error page instead of the page asked for (missing file, refused connection)."""


@dataclass(frozen=True)
class Binaries:
    chromium: Path
    chromedriver: Path
    chromium_version: str
    chromedriver_version: str


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _find(env: str, debian: Path, names: tuple[str, ...]) -> Path | None:
    named = os.environ.get(env)
    if named:
        if not _executable(Path(named)):
            raise ChromiumMissingError(f"{env}={named} is not an executable file")
        return Path(named)
    if _executable(debian):
        return debian
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def _version(binary: Path) -> str:
    """`X.Y.Z.W` from `--version` (`Chromium 156.0.8078.114 …`, `ChromeDriver 156.0.8078.114 (…)`)."""
    try:
        completed = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ChromiumMissingError(f"{binary} --version failed: {error}") from error
    match = re.search(r"\b(\d+\.\d+\.\d+\.\d+)\b", completed.stdout)
    if completed.returncode != 0 or match is None:
        raise ChromiumMissingError(
            f"{binary} --version exited {completed.returncode}: {(completed.stdout + completed.stderr).strip()!r}"
        )
    return match.group(1)


@cache
def binaries() -> Binaries:
    """Chromium and chromedriver, found once per process; their major versions must agree (chromedriver's rule)."""
    chromium = _find("SLOPLANE_CHROMIUM", DEBIAN_FOLDER / "chromium", CHROMIUM_NAMES)
    chromedriver = _find("SLOPLANE_CHROMEDRIVER", DEBIAN_FOLDER / "chromedriver", ("chromedriver",))
    missing = [
        package for package, found in (("chromium", chromium), ("chromium-driver", chromedriver)) if found is None
    ]
    if chromium is None or chromedriver is None:
        raise ChromiumMissingError(
            f"Debian package(s) {', '.join(missing)} not installed (looked in {DEBIAN_FOLDER} and on PATH): "
            "run tools/install-system-packages.sh (`make test` does)"
        )
    found = Binaries(chromium, chromedriver, _version(chromium), _version(chromedriver))
    if found.chromium_version.split(".")[0] != found.chromedriver_version.split(".")[0]:
        raise ChromiumMissingError(
            f"{chromium} is version {found.chromium_version} but {chromedriver} is {found.chromedriver_version}: "
            "chromedriver drives its own major version only (Debian's chromium and chromium-driver go together)"
        )
    return found


@dataclass
class _BrowserState:
    """What the harness keeps about one driver: where its screenshots go and which page is current."""

    screenshots: Path
    page: int = 0


_STATES: weakref.WeakKeyDictionary[webdriver.Chrome, _BrowserState] = weakref.WeakKeyDictionary()


def _state(driver: webdriver.Chrome) -> _BrowserState:
    state = _STATES.get(driver)
    if state is None:
        raise ValueError("not a browser of tests/browser.py: use the `browser` fixture or running_browser()")
    return state


def start_browser(
    *, folder: Path, screenshots: Path, javascript: bool = True, log: Path | None = None
) -> webdriver.Chrome:
    """A new headless Chromium in its own profile under `folder`. The caller quits it (or uses `running_browser`)."""
    found = binaries()
    profile = folder / "profile"
    home = folder / "home"
    profile.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(found.chromium)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.page_load_strategy = "normal"
    if not javascript:
        options.add_experimental_option("prefs", JAVASCRIPT_OFF)
    # HOME for what Chromium writes outside its profile (NSS's ~/.pki); nothing of the caller's environment
    # that would change the browser (proxies) reaches it.
    environment = {
        key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy") and key != "HOME"
    }
    service = Service(
        executable_path=str(found.chromedriver),
        log_output=str(log) if log is not None else subprocess.DEVNULL,
        env={**environment, "HOME": str(home)},
    )
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.command_executor.client_config.timeout = COMMAND_TIMEOUT
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(SCRIPT_TIMEOUT)
        driver.implicitly_wait(0)
        _fit_viewport(driver)
    except BaseException:
        driver.quit()
        raise
    _STATES[driver] = _BrowserState(screenshots=screenshots)
    return driver


def _fit_viewport(driver: webdriver.Chrome) -> None:
    """Headless Chromium takes room for a window frame it does not draw: size the window so the viewport is VIEWPORT."""
    for _ in range(3):
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        if tuple(inner) == VIEWPORT:
            return
        outer = driver.get_window_size()
        driver.set_window_size(
            outer["width"] + VIEWPORT[0] - int(inner[0]), outer["height"] + VIEWPORT[1] - int(inner[1])
        )
    raise RuntimeError(f"the browser's viewport stays {inner}, not {VIEWPORT}")


@contextmanager
def running_browser(
    *, folder: Path, screenshots: Path, javascript: bool = True, log: Path | None = None
) -> Iterator[webdriver.Chrome]:
    """`start_browser`, quit on the way out: chromedriver and every browser process it started end with it."""
    driver = start_browser(folder=folder, screenshots=screenshots, javascript=javascript, log=log)
    try:
        yield driver
    finally:
        # Selenium's quit ends the session and then stops chromedriver's process, even when the session is gone.
        driver.quit()


@pytest.fixture(scope="session")
def browser_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`$SLOPLANE_TEST_ARTIFACTS/browser`, else `browser/` in the pytest temporary folder (per xdist worker)."""
    named = os.environ.get(ARTIFACTS_ENV)
    folder = Path(named).resolve() / "browser" if named else tmp_path_factory.getbasetemp() / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _module_browser(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, artifacts: Path, *, javascript: bool
) -> Iterator[webdriver.Chrome]:
    module = request.module.__name__.rsplit(".", 1)[-1]
    kind = "browser" if javascript else "browser-nojs"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with running_browser(
        folder=tmp_path_factory.mktemp(f"{kind}-{module}"),
        screenshots=artifacts / "screenshots" / module,
        javascript=javascript,
        log=artifacts / f"chromedriver-{module}-{kind}-{worker}.log",
    ) as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, browser_artifacts: Path
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with JavaScript, one per test module."""
    yield from _module_browser(request, tmp_path_factory, browser_artifacts, javascript=True)


@pytest.fixture(scope="module")
def browser_without_javascript(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, browser_artifacts: Path
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with JavaScript switched off (Chrome's content setting), one per test module."""
    yield from _module_browser(request, tmp_path_factory, browser_artifacts, javascript=False)


@dataclass(frozen=True)
class ConsoleEntry:
    """One message of the browser's console: `SEVERE` (errors), `WARNING`, `INFO`, `DEBUG`; its source
    (`javascript` for an uncaught exception, `console-api`, `network`, ...), and Chrome's text."""

    level: str
    source: str
    message: str

    def __str__(self) -> str:
        return f"{self.level} {self.source}: {self.message}"


def _drain(driver: webdriver.Chrome) -> list[ConsoleEntry]:
    """The console messages logged since the last read (chromedriver hands each out once)."""
    return [
        ConsoleEntry(str(entry.get("level", "")), str(entry.get("source", "")), str(entry.get("message", "")))
        for entry in driver.get_log("browser")
    ]


def page_url(target: Path | str) -> str:
    """A file's `file://` URL, or the URL itself when it is `file:`, `about:blank` or http(s) on loopback."""
    if isinstance(target, Path) or ("://" not in target and not target.startswith("about:")):
        path = Path(target).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no page at {path}")
        return path.as_uri()
    parts = urlsplit(target)
    if parts.scheme == "file" or target == "about:blank":
        return target
    if parts.scheme in {"http", "https"} and parts.hostname in LOOPBACK_HOSTS:
        return target
    raise ValueError(f"the browser opens files and loopback pages only, not {target!r}")


@dataclass
class PageCheck:
    """The page a browser opened, and what to ask of it. Selectors are CSS (`document.querySelectorAll`)."""

    driver: webdriver.Chrome
    url: str
    _page: int
    _console: list[ConsoleEntry] = field(default_factory=list)

    def _current(self) -> webdriver.Chrome:
        if _state(self.driver).page != self._page:
            raise RuntimeError(f"{self.url} is no longer the browser's page: open_page opened another since")
        return self.driver

    def _all(self, script: str, *arguments: Any) -> list[Any]:
        return list(self._current().execute_script(script, *arguments))

    @property
    def title(self) -> str:
        return str(self._current().title)

    def console(self) -> list[ConsoleEntry]:
        """Every console message since the page began loading, including those logged since the last call."""
        self._console += _drain(self._current())
        return list(self._console)

    def errors(self) -> list[ConsoleEntry]:
        return [entry for entry in self.console() if entry.level == "SEVERE"]

    def warnings(self) -> list[ConsoleEntry]:
        return [entry for entry in self.console() if entry.level == "WARNING"]

    def problems(self) -> list[ConsoleEntry]:
        """Errors and warnings: what a clean page has none of."""
        return [entry for entry in self.console() if entry.level in {"SEVERE", "WARNING"}]

    def count(self, selector: str) -> int:
        return int(self._current().execute_script("return document.querySelectorAll(arguments[0]).length", selector))

    def texts(self, selector: str) -> list[str]:
        """Each match's rendered text (`innerText` for HTML, `textContent` for SVG), in document order."""
        return [
            str(text)
            for text in self._all(
                "return Array.from(document.querySelectorAll(arguments[0]),"
                " e => e.innerText !== undefined ? e.innerText : e.textContent)",
                selector,
            )
        ]

    def text(self, selector: str = "body") -> str:
        """The first match's rendered text: what a reader sees (`innerText`: nothing of hidden elements)."""
        texts = self.texts(selector)
        if not texts:
            raise LookupError(f"nothing matches {selector!r} in {self.url}")
        return texts[0]

    def attributes(self, selector: str, name: str) -> list[str | None]:
        """Each match's attribute as written (`None` where absent)."""
        return self._all(
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.getAttribute(arguments[1]))",
            selector,
            name,
        )

    def styles(self, selector: str, css_property: str) -> list[str]:
        """Each match's computed value of a CSS property (`fill` → `rgb(46, 125, 50)`, whether from an attribute,
        a style sheet or a style attribute)."""
        return [
            str(value)
            for value in self._all(
                "return Array.from(document.querySelectorAll(arguments[0]),"
                " e => getComputedStyle(e).getPropertyValue(arguments[1]))",
                selector,
                css_property,
            )
        ]

    def colours(self, selector: str, css_property: str = "fill") -> list[str]:
        """`styles` with colours as `#rrggbb` (`#rrggbbaa` when not opaque); other values (`none`, `url(...)`) as
        computed."""
        return [hex_colour(value) for value in self.styles(selector, css_property)]

    def screenshot(self, name: str, selector: str | None = None) -> Path:
        return screenshot(self._current(), name, selector)


def open_page(driver: webdriver.Chrome, target: Path | str) -> PageCheck:
    """Load a page (a file, or a file:// or loopback URL) and wait for its `load` event; the console from then on.

    Raises `PageLoadError` when the browser shows its own error page instead (no such file, connection
    refused), and Selenium's `TimeoutException` after `PAGE_LOAD_TIMEOUT` seconds."""
    state = _state(driver)
    url = page_url(target)
    _drain(driver)  # what the previous page logged late is not this page's
    state.page += 1
    driver.get(url)
    location = str(driver.execute_script("return window.location.href"))
    if location.startswith("chrome-error://"):
        raise PageLoadError(f"the browser could not load {url}: {driver.title!r}")
    page = PageCheck(driver=driver, url=url, _page=state.page)
    page.console()
    return page


_SCREENSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def screenshot(driver: webdriver.Chrome, name: str, selector: str | None = None) -> Path:
    """The viewport as a PNG (`VIEWPORT` pixels), or the first match of `selector` (its box), written to the
    artifacts' `screenshots/<module>/<name>.png`; its path."""
    if not _SCREENSHOT_NAME.fullmatch(name):
        raise ValueError(f"a screenshot's name is letters, digits, '.', '_' and '-', not {name!r}")
    folder = _state(driver).screenshots
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name if name.endswith(".png") else f"{name}.png")
    if selector is None:
        png = driver.get_screenshot_as_png()
    else:
        png = driver.find_element(By.CSS_SELECTOR, selector).screenshot_as_png
    path.write_bytes(png)
    return path


_RGB = re.compile(r"rgba?\(\s*(\d+),\s*(\d+),\s*(\d+)(?:,\s*([\d.]+))?\s*\)")


def hex_colour(value: str) -> str:
    """`rgb(46, 125, 50)` → `#2e7d32`, `rgba(0, 0, 0, 0.5)` → `#00000080`; anything else unchanged."""
    match = _RGB.fullmatch(value.strip())
    if match is None:
        return value
    red, green, blue, alpha = match.groups()
    colour = f"#{int(red):02x}{int(green):02x}{int(blue):02x}"
    if alpha is not None and float(alpha) < 1:
        colour += f"{round(float(alpha) * 255):02x}"
    return colour
