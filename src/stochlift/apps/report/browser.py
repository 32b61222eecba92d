"""Headless Chromium, for checking that an HTML page (the report) renders, and for screenshots of it.

Drives a locally installed Chromium and its ChromeDriver (Debian: `apt-get install chromium chromium-driver`,
giving /usr/bin/chromium and /usr/bin/chromedriver) through Selenium (`pip install selenium`, in the `test`
extra). Both paths are always passed explicitly, so Selenium Manager never runs and nothing is downloaded.
Other locations: set STOCHLIFT_CHROMIUM and STOCHLIFT_CHROMEDRIVER.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stochlift.errors import StochliftError
from stochlift.io import atomic_path

__all__ = [
    "BrowserPaths",
    "PageImage",
    "find_browser",
    "full_page_screenshot",
    "headless_chromium",
    "image_status",
    "open_page",
    "screenshot_page",
    "unavailable_reason",
]

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_NAMES = ("chromedriver",)
INSTALL_HINT = "install one with `apt-get install chromium chromium-driver` and `pip install selenium`"


@dataclass(frozen=True)
class BrowserPaths:
    browser: str
    driver: str


def _which(env: str, names: tuple[str, ...]) -> str | None:
    override = os.environ.get(env)
    if override:
        return override if Path(override).is_file() else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_browser() -> BrowserPaths | None:
    """The Chromium binary and its ChromeDriver (env overrides, then PATH), or None if either is missing."""
    browser = _which("STOCHLIFT_CHROMIUM", BROWSER_NAMES)
    driver = _which("STOCHLIFT_CHROMEDRIVER", DRIVER_NAMES)
    return BrowserPaths(browser, driver) if browser and driver else None


def unavailable_reason() -> str | None:
    """Why no page can be rendered here (no browser, no driver, no selenium), or None when one can."""
    missing = []
    if not _which("STOCHLIFT_CHROMIUM", BROWSER_NAMES):
        missing.append(f"no Chromium binary ({' / '.join(BROWSER_NAMES)}; or set STOCHLIFT_CHROMIUM)")
    if not _which("STOCHLIFT_CHROMEDRIVER", DRIVER_NAMES):
        missing.append("no chromedriver (or set STOCHLIFT_CHROMEDRIVER)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the Python package selenium is not installed")
    return f"{'; '.join(missing)}: {INSTALL_HINT}" if missing else None


@contextmanager
def headless_chromium(width: int = 1280, height: int = 900, *, page_timeout: float = 60) -> Iterator[Any]:
    """A Selenium WebDriver on headless Chromium with a throwaway profile; quit on exit."""
    reason = unavailable_reason()
    if reason:
        raise StochliftError(f"cannot start a headless browser: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = find_browser()
    assert paths is not None
    with tempfile.TemporaryDirectory(prefix="stochlift-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = paths.browser
        for arg in (
            "--headless=new",
            "--no-sandbox",  # root in containers and CI has no usable sandbox
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            f"--window-size={width},{height}",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path=paths.driver), options=options)
        try:
            driver.set_page_load_timeout(page_timeout)
            yield driver
        finally:
            driver.quit()


# Waits for every <img> to settle (decode() resolves or rejects), then reports each one.
_IMAGE_STATUS_JS = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
Promise.allSettled(images.map((img) => img.decode())).then((results) => done(images.map((img, i) => ({
  index: i,
  alt: img.alt,
  src_start: (img.getAttribute("src") || "").slice(0, 40),
  complete: img.complete,
  natural_width: img.naturalWidth,
  natural_height: img.naturalHeight,
  decoded: results[i].status === "fulfilled",
}))));
"""


@dataclass(frozen=True)
class PageImage:
    """One <img> of a rendered page, as the browser sees it."""

    index: int
    alt: str
    src_start: str
    complete: bool
    natural_width: int
    natural_height: int
    decoded: bool

    @property
    def loaded(self) -> bool:
        return self.complete and self.natural_width > 0 and self.natural_height > 0 and self.decoded


def open_page(driver: Any, html: str | os.PathLike, *, timeout: float = 60) -> None:
    """Load a local HTML file and wait until the document has finished loading."""
    from selenium.webdriver.support.ui import WebDriverWait

    path = Path(html).resolve()
    if not path.is_file():
        raise StochliftError(f"no such file: {path}")
    driver.get(path.as_uri())
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return document.readyState") == "complete")


def image_status(driver: Any, *, timeout: float = 60) -> list[PageImage]:
    """Every <img> of the loaded page after it has settled: complete, natural size, decoded."""
    driver.set_script_timeout(timeout)
    return [PageImage(**entry) for entry in driver.execute_async_script(_IMAGE_STATUS_JS)]


def full_page_screenshot(driver: Any) -> bytes:
    """PNG bytes of the whole page, not only the viewport (Chrome DevTools' captureBeyondViewport)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    clip = {"x": 0, "y": 0, "width": max(1, int(size["width"])), "height": max(1, int(size["height"])), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    return base64.b64decode(shot["data"])


def screenshot_page(html: str | os.PathLike, png: str | os.PathLike, *, width: int = 1280) -> list[PageImage]:
    """Render a local HTML file in headless Chromium, write a full-page PNG screenshot (atomically).

    Returns the page's images as the browser saw them, so callers can check that all of them loaded.
    """
    with headless_chromium(width=width) as driver:
        open_page(driver, html)
        images = image_status(driver)
        data = full_page_screenshot(driver)
    with atomic_path(png) as tmp:
        tmp.write_bytes(data)
    return images
