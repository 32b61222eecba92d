"""Render a `stochlift report` page in headless Chromium and save a full-page PNG screenshot.

    python benchmarks/report_screenshot.py demo/report.html [--out benchmarks/results/report_wave.png]
                                                            [--width 1280]

Needs Debian's chromium + chromium-driver and the selenium package (`pip install -e ".[test]"`); see
stochlift.apps.report.browser. Prints every image of the page as the browser saw it and exits 1 if any did not load
(not complete, zero natural size, or not decodable), so the screenshot doubles as the check that the page
renders; an embedded MP4 video must decode too (its first frame is in the screenshot).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stochlift.apps.report.browser import full_page_screenshot, headless_chromium, image_status, open_page, video_status
from stochlift.errors import StochliftError
from stochlift.io import atomic_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the report.html to render")
    parser.add_argument("--out", type=Path, help="PNG to write (default: the HTML path with .png)")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (default 1280)")
    args = parser.parse_args()
    out = args.out or args.html.with_suffix(".png")
    try:
        with headless_chromium(width=args.width) as driver:
            open_page(driver, args.html)
            images, videos = image_status(driver), video_status(driver)
            data = full_page_screenshot(driver)
    except StochliftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    for image in images:
        state = "loaded" if image.loaded else "NOT LOADED"
        print(f"  img {image.index:2d} {state:10s} {image.natural_width:5d} x {image.natural_height:<5d} "
              f"{image.src_start[:22]:22s} {image.alt}")
    for video in videos:
        state = "playable" if video.playable else f"NOT PLAYABLE (error {video.error})"
        print(f"  video {video.index:2d} {state:10s} {video.video_width:5d} x {video.video_height:<5d} "
              f"{video.duration:.1f} s, controls {video.controls}")
    failed = [image for image in images if not image.loaded] + [video for video in videos if not video.playable]
    print(f"wrote {out}: {len(images)} images, {len(videos)} videos, {len(images) + len(videos) - len(failed)} fine")
    return 1 if failed or not images else 0


if __name__ == "__main__":
    sys.exit(main())
