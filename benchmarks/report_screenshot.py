"""Render a `stochlift report` page in headless Chromium and save a full-page PNG screenshot.

    python benchmarks/report_screenshot.py demo/report.html [--out benchmarks/results/wave_demo_report.png]
                                                            [--width 1280]

Needs Debian's chromium + chromium-driver and the selenium package (`pip install -e ".[test]"`); see
stochlift.apps.report.browser. Prints every image of the page as the browser saw it and exits 1 if any did not load
(not complete, zero natural size, or not decodable), so the screenshot doubles as the check that the page
renders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stochlift.apps.report.browser import screenshot_page
from stochlift.errors import StochliftError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the report.html to render")
    parser.add_argument("--out", type=Path, help="PNG to write (default: the HTML path with .png)")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (default 1280)")
    args = parser.parse_args()
    out = args.out or args.html.with_suffix(".png")
    try:
        images = screenshot_page(args.html, out, width=args.width)
    except StochliftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for image in images:
        state = "loaded" if image.loaded else "NOT LOADED"
        print(f"  img {image.index:2d} {state:10s} {image.natural_width:5d} x {image.natural_height:<5d} "
              f"{image.src_start[:22]:22s} {image.alt}")
    failed = [image for image in images if not image.loaded]
    print(f"wrote {out}: {len(images)} images, {len(images) - len(failed)} loaded")
    return 1 if failed or not images else 0


if __name__ == "__main__":
    sys.exit(main())
