"""`stochlift report`: a self-contained HTML page for a tiny run, checked by parsing and in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from PIL import Image

from conftest import smooth_trajectories, tiny_config, tiny_meta
from stochlift.apps.report import browser
from stochlift.data.trajectories import write_trajectories
from stochlift.lifting.train import train
from stochlift.apps.report import build_report

SECTIONS = ("config", "training", "rollouts", "qoi", "curves", "forecast", "ranks", "metrics")
MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/gif": b"GIF8"}


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of <pre> blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.pre: list[str] = []
        self._in_pre = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_pre = self._in_pre or tag == "pre"
        if tag == "pre":
            self.pre.append("")

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data):
        if self._in_pre:
            self.pre[-1] += data


def parse(path: Path) -> _Tags:
    tags = _Tags()
    tags.feed(path.read_text(encoding="utf-8"))
    return tags


def decode_image(src: str) -> tuple[str, Image.Image]:
    """The data URI's mime type and its image, fully decoded (all frames of a GIF)."""
    match = re.fullmatch(r"data:(image/(?:png|gif));base64,([A-Za-z0-9+/=]+)", src)
    assert match, f"not a base64 PNG/GIF data URI: {src[:60]}"
    mime, data = match.group(1), base64.b64decode(match.group(2), validate=True)
    assert data.startswith(MAGIC[mime]), f"{mime} data URI does not start with the {mime} magic bytes"
    Image.open(io.BytesIO(data)).verify()
    image = Image.open(io.BytesIO(data))
    for frame in range(getattr(image, "n_frames", 1)):
        image.seek(frame)
        image.load()
    image.seek(0)
    assert image.format == mime.split("/")[1].upper() and image.width > 0 and image.height > 0
    return mime, image


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data, one_torch_thread) -> Path:
    run = tmp_path_factory.mktemp("report") / "run"
    train(tiny_config(tiny_data), run, progress=False)
    return run


@pytest.fixture(scope="module")
def report_html(tiny_run) -> Path:
    """The report of the tiny run with every default: samples drawn here, 2 x 4 forecasts."""
    return build_report(tiny_run, tiny_run.parent / "report.html", progress=False)


def test_report_is_self_contained_with_valid_images(report_html, tiny_run):
    tags = parse(report_html)
    images = [attrs for tag, attrs in tags.tags if tag == "img"]
    kinds = [decode_image(attrs["src"]) for attrs in images]
    # training, animation, snapshots, crossing time, mass, per-time curves, forecast curves, 2 rank histograms
    assert len(images) == 9 and all(attrs.get("alt") for attrs in images)
    gifs = [image for mime, image in kinds if mime == "image/gif"]
    assert len(gifs) == 1 and gifs[0].n_frames == 6  # the animation: one GIF frame per trajectory frame
    # nothing outside the file: no scripts, stylesheets, fonts, frames; links only to anchors in the page
    assert not [tag for tag, _ in tags.tags if tag in ("script", "link", "iframe", "object", "embed", "source")]
    for tag, attrs in tags.tags:
        for key in ("src", "href"):
            if attrs.get(key):
                assert attrs[key].startswith("data:" if key == "src" else "#"), (tag, attrs[key][:60])
    text = report_html.read_text(encoding="utf-8")
    assert "url(" not in text and "@import" not in text
    ids = [attrs.get("id") for tag, attrs in tags.tags if tag == "section"]
    assert ids == list(SECTIONS)
    assert "Skipped" not in text  # a wave run has every section
    assert yaml.safe_load(tags.pre[0]) == yaml.safe_load((tiny_run / "config.yaml").read_text())
    for score in ("distribution.crps", "distribution.spread_skill_ratio", "forecast.spread_skill_ratio", "mass_w2"):
        assert f"<code>{score}</code>" in text
    assert report_html.stat().st_size < 2_000_000


def require_browser() -> None:
    """Skip only where no Chromium or ChromeDriver is installed; a missing selenium package fails the test."""
    if browser.find_browser() is None:
        pytest.skip(f"no headless browser installed: {browser.unavailable_reason()}")


def test_report_loads_every_image_in_headless_chromium(report_html, tmp_path):
    require_browser()
    expected = sum(tag == "img" for tag, _ in parse(report_html).tags)
    with browser.headless_chromium(width=1280) as driver:
        browser.open_page(driver, report_html)
        images = browser.image_status(driver)
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
        title = driver.title
        shot = browser.full_page_screenshot(driver)
    assert len(images) == expected == 9
    not_loaded = [image for image in images if not image.loaded]
    assert not not_loaded, f"images that did not load: {not_loaded}"
    assert all(image.complete and image.natural_width > 0 for image in images)
    assert [name for name in fetched if not name.startswith("data:")] == []  # nothing fetched from outside
    assert title.startswith("stochlift report")
    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(shot)
    page = Image.open(screenshot)
    assert page.format == "PNG" and page.width == 1280 and page.height > 3000  # the whole page, not one screen
    # the screenshot is not blank: the embedded figures put many colours on it
    assert len(page.convert("RGB").getcolors(1 << 24)) > 100


def test_screenshot_helper_writes_png(report_html, tmp_path):
    require_browser()
    images = browser.screenshot_page(report_html, tmp_path / "shot.png", width=900)
    assert all(image.loaded for image in images)
    assert Image.open(tmp_path / "shot.png").width == 900


def _pair_files(tmp_path: Path, problem: str) -> tuple[Path, Path]:
    """A reference (test split) and a generated file of `problem` with the tiny run's frame shape."""
    meta = tiny_meta()
    meta.problem = problem
    reference, generated = tmp_path / "reference.h5", tmp_path / "generated.h5"
    write_trajectories(reference, meta, {"test": smooth_trajectories(3, seed=1)})
    write_trajectories(generated, meta, {"generated": smooth_trajectories(4, seed=2)})
    return reference, generated


@pytest.mark.parametrize("problem", ["generic", "video"])
def test_report_skips_sections_that_do_not_apply(tiny_run, tmp_path, problem):
    reference, generated = _pair_files(tmp_path, problem)
    out = build_report(tiny_run, tmp_path / "r.html", reference=reference, generated=generated,
                       forecast_trajectories=0, progress=False)
    text = out.read_text(encoding="utf-8")
    tags = parse(out)
    for attrs in (attrs for tag, attrs in tags.tags if tag == "img"):
        decode_image(attrs["src"])
    alts = [attrs["alt"] for tag, attrs in tags.tags if tag == "img"]
    assert "crossing-time distributions" not in alts and "per-time metric curves" in alts
    assert "Skipped: turned off" in text  # forecast_trajectories = 0
    if problem == "generic":  # mass applies, crossing time does not
        assert "mass over time" in alts and "No crossing-time plot" in text and "<code>wct</code>" not in text
    else:
        assert "mass over time" not in alts and "Skipped: no quantities of interest" in text


def test_report_cli(tiny_run, tmp_path, run_cli_inprocess):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"wct": 0.125, "note": "from elsewhere", "per_time": [1, 2]}))
    out = tmp_path / "cli.html"
    result = run_cli_inprocess("report", "--run", tiny_run, "--out", out, "--metrics", metrics,
                               "--forecast-trajectories", "1", "--forecast-samples", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    text = out.read_text(encoding="utf-8")
    assert "From the metrics file" in text and "from elsewhere" in text and "1 x 2" in text

    missing = run_cli_inprocess("report", "--run", tmp_path / "nope", "--out", tmp_path / "x.html")
    assert missing.returncode == 2 and missing.stderr_lines == [f"error: no such run directory: {tmp_path / 'nope'}"]
    reference, _ = _pair_files(tmp_path, "wave")
    short = tmp_path / "short.h5"
    write_trajectories(short, tiny_meta(frames=4), {"generated": smooth_trajectories(2, frames=4)})
    mismatch = run_cli_inprocess("report", "--run", tiny_run, "--out", tmp_path / "y.html",
                                 "--reference", reference, "--generated", short)
    assert mismatch.returncode == 2 and len(mismatch.stderr_lines) == 1
    assert mismatch.stderr_lines[0].startswith("error: reference frames 6")
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "y.html").exists()
