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

from conftest import smooth_trajectories, tiny_config, tiny_meta, write_tiny
from stochlift.apps.report import browser, build_report
from stochlift.data.trajectories import write_trajectories
from stochlift.lifting.train import train

SECTIONS = ("rollouts", "statistics", "qoi", "scores", "forecast", "ranks", "metrics", "training", "glossary", "config")
MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/gif": b"GIF8"}
FRAMES = 6


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
def tiny_run(tmp_path_factory, one_torch_thread) -> Path:
    """A tiny Wave-like run whose data file holds 6 test trajectories (the floors need 4)."""
    folder = tmp_path_factory.mktemp("report")
    data = write_tiny(folder / "tiny.h5", splits={"train": 4, "valid": 2, "test": 6})
    run = folder / "run"
    train(tiny_config(data), run, progress=False)
    return run


def has_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def decode_video(src: str) -> int:
    """The frame count of an MP4 data URI, as imageio reads it back."""
    match = re.fullmatch(r"data:video/mp4;base64,([A-Za-z0-9+/=]+)", src)
    assert match, f"not a base64 MP4 data URI: {src[:60]}"
    import imageio.v3 as iio

    return len(iio.imread(base64.b64decode(match.group(1)), index=None, plugin="FFMPEG", extension=".mp4"))


@pytest.fixture(scope="module")
def report_html(tiny_run) -> Path:
    """The report of the tiny run with every default: samples drawn here, 2 x 4 forecasts."""
    return build_report(tiny_run, tiny_run.parent / "report.html", progress=False)


def test_report_is_self_contained_with_valid_images(report_html, tiny_run):
    tags = parse(report_html)
    images = [attrs for tag, attrs in tags.tags if tag == "img"]
    kinds = [decode_image(attrs["src"]) for attrs in images]
    videos = [attrs for tag, attrs in tags.tags if tag == "video"]
    # snapshots with the hidden field, mean/std maps, spectrum, crossing CDF, mass, scores over time, forecast,
    # rank histograms (generated, floor, forecast), training; the rollout video apart (an image when a GIF)
    gifs = [image for mime, image in kinds if mime == "image/gif"]
    if has_ffmpeg():  # a pausable MP4: controls, every frame of the rollout
        assert len(images) == 11 and not gifs and len(videos) == 1
        assert "controls" in videos[0] and decode_video(videos[0]["src"]) == FRAMES
    else:
        assert len(images) == 12 and len(gifs) == 1 and gifs[0].n_frames == FRAMES and not videos
    assert all(attrs.get("alt") for attrs in images)
    # nothing outside the file: no scripts, stylesheets, fonts, frames; links only to anchors in the page
    assert not [tag for tag, _ in tags.tags if tag in ("script", "link", "iframe", "object", "embed", "source")]
    for tag, attrs in tags.tags:
        for key in ("src", "href"):
            if attrs.get(key):
                assert attrs[key].startswith("data:" if key == "src" else "#"), (tag, attrs[key][:60])
    text = report_html.read_text(encoding="utf-8")
    assert "url(" not in text and "@import" not in text
    assert "normalised time" not in text  # one time axis throughout: the file's
    ids = [attrs.get("id") for tag, attrs in tags.tags if tag == "section"]
    assert ids == list(SECTIONS)
    assert "Skipped" not in text  # a wave run with enough test trajectories has every section
    # no absolute path of this machine; the config last, collapsed, as written
    assert str(tiny_run.resolve().parent) not in text and str(Path.home()) not in text
    assert text.index('id="headline"') < text.index("<nav>") < text.index('id="config"')
    assert "<details><summary>config.yaml" in text
    written = yaml.safe_load((tiny_run / "config.yaml").read_text())
    written["data"]["path"] = Path(written["data"]["path"]).name  # shown by its name
    assert yaml.safe_load(tags.pre[0]) == written
    for score in ("energy_score", "sliced_w2", "spread_skill", "forecast.spread_skill", "mass_w2"):
        assert f"<code>{score}</code></a>" in text  # in the metrics table, linked to the glossary
    for term in ("energy_score", "floor", "collapsed-ensemble"):
        assert f'id="term-{term.replace("_", "-")}"' in text
    assert report_html.stat().st_size < 2_000_000


def test_headline_card_judges_the_problems_targets(report_html):
    text = report_html.read_text(encoding="utf-8")
    card = text[text.index('id="headline"') : text.index("<nav>")]
    for key in ("wct_relative", "mass_w2_relative"):  # the Wave problem's targets (stochlift.problems)
        assert f"<code>{key}</code>" in card
    assert card.count("&le; 0.5") == 2
    assert re.search(r'class="verdict (pass|fail)"', card)
    badges = re.findall(r'class="badge (pass|fail|none)"', card)
    assert len(badges) == 2
    assert "collapsed ensemble" in card and "energy score" in card and "sliced W2" in card


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
        videos = browser.video_status(driver)
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
        title = driver.title
        shot = browser.full_page_screenshot(driver)
    assert len(images) == expected >= 11
    not_loaded = [image for image in images if not image.loaded]
    assert not not_loaded, f"images that did not load: {not_loaded}"
    assert all(image.complete and image.natural_width > 0 for image in images)
    if has_ffmpeg():  # the MP4 decodes in Chromium and can be paused (controls)
        assert len(videos) == 1 and videos[0].playable and videos[0].controls, videos
        assert videos[0].video_width >= 800  # larger than the old 80-dpi GIF
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
    """A reference (test split of 4, the floors' minimum, and a train split to train on) and a generated file of
    `problem` with the tiny run's frame shape."""
    meta = tiny_meta()
    meta.problem = problem
    reference, generated = tmp_path / "reference.h5", tmp_path / "generated.h5"
    write_trajectories(reference, meta, {"test": smooth_trajectories(4, seed=1),
                                         "train": smooth_trajectories(4, seed=3)})
    write_trajectories(generated, meta, {"generated": smooth_trajectories(4, seed=2)})
    return reference, generated


@pytest.mark.parametrize("problem", ["generic", "video"])
def test_report_skips_sections_that_do_not_apply(tmp_path, problem, one_torch_thread):
    reference, generated = _pair_files(tmp_path, problem)
    run = tmp_path / "run"  # trained on that problem's data: a report refuses a reference of another problem
    train(tiny_config(reference, "train.steps=1"), run, progress=False)
    out = build_report(run, tmp_path / "r.html", reference=reference, generated=generated,
                       forecast_trajectories=0, progress=False)
    text = out.read_text(encoding="utf-8")
    tags = parse(out)
    for attrs in (attrs for tag, attrs in tags.tags if tag == "img"):
        decode_image(attrs["src"])
    alts = [attrs["alt"] for tag, attrs in tags.tags if tag == "img"]
    assert "crossing-time CDFs, true vs generated" not in alts
    assert "per-time scores with floor and collapsed reference" in alts and "power spectra, true vs generated" in alts
    assert "Skipped: turned off" in text  # forecast_trajectories = 0
    assert str(tmp_path) not in text and "from <code>generated.h5</code>" in text  # the file's name, not its path
    card = text[text.index('id="headline"') : text.index("<nav>")]
    if problem == "generic":  # mass applies, crossing time does not; targets: ratios to the floor <= 2
        assert "mass over time" in alts and "No crossing-time plot" in text and "<code>wct</code>" not in text
        assert "<code>energy_score_ratio</code>" in card and card.count("&le; 2") == 2
    else:
        assert "mass over time" not in alts and "Skipped: no quantities of interest" in text
        assert "no targets for video data" in card


def test_report_cli(tiny_run, tmp_path, run_cli_inprocess):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"wct": 0.125, "note": "from elsewhere", "per_time": [1, 2]}))
    out = tmp_path / "cli.html"
    result = run_cli_inprocess("report", "--run", tiny_run, "--out", out, "--metrics", metrics,
                               "--forecast-trajectories", "1", "--forecast-samples", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    text = out.read_text(encoding="utf-8")
    assert "<summary>metrics.json as written" in text and "from elsewhere" in text and "1 x 2" in text
    assert str(tmp_path) not in text

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
