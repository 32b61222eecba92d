"""The HTML of `stochlift report`: sections, tables, embedded figures and the page around them.

Everything is inline (images as data URIs, CSS in a <style> element) so the page is one file that opens
anywhere, offline.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stochlift.errors import StochliftError


@dataclass
class Section:
    anchor: str
    title: str
    body: str


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "n/a" if not math.isfinite(float(value)) else f"{float(value):.4g}"
    return str(value)


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def image_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    raise StochliftError("an embedded image is neither PNG nor GIF")  # a bug in this module if ever seen


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure(data: bytes, alt: str, caption: str = "", css_class: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    attr = f' class="{css_class}"' if css_class else ""
    return f'<figure{attr}><img src="{data_uri(data, image_mime(data))}" alt="{esc(alt)}">{cap}</figure>'


def video_figure(data: bytes, alt: str, caption: str = "") -> str:
    """An MP4 as a pausable, looping <video> (muted, so browsers let it start by itself); a GIF as an image."""
    if data[4:8] != b"ftyp":
        return figure(data, alt, caption, "wide")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure class="wide"><video controls loop muted autoplay playsinline preload="auto" '
            f'src="{data_uri(data, "video/mp4")}" aria-label="{esc(alt)}"></video>{cap}</figure>')


def details(summary: str, body: str) -> str:
    """A collapsed block (opens on a click): for what a reader rarely needs, such as the config."""
    return f"<details><summary>{esc(summary)}</summary>{body}</details>"


def note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def table(rows: Iterable[tuple[Any, ...]], header: tuple[str, ...] = ("metric", "value", "meaning"),
          css_class: str = "") -> str:
    """Rows of (name, value, *more); numbers right-aligned, `name` as code. A cell given as Markup is not escaped."""

    def cell(value: Any) -> str:
        if isinstance(value, Markup):
            return f"<td>{value}</td>"
        numeric = isinstance(value, int | float | np.number) and not isinstance(value, bool)
        return f'<td class="num">{esc(fmt(value))}</td>' if numeric or value is None else f"<td>{esc(fmt(value))}</td>"

    def name_cell(name: Any) -> str:
        return f"<td>{name}</td>" if isinstance(name, Markup) else f"<td><code>{esc(name)}</code></td>"

    body = "".join(f"<tr>{name_cell(name)}{''.join(cell(v) for v in rest)}</tr>" for name, *rest in rows)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    attr = f' class="{css_class}"' if css_class else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Markup(str):
    """HTML that a table cell shows as it is (a badge, a link)."""


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       max-width: 1180px; margin: 1.5em auto; padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
h3 { margin-bottom: 0.3em; }
.meta { color: #555; font-size: 0.92em; margin-top: 0; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.3em 1.1em; list-style: none; padding: 0; font-size: 0.92em; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; border-radius: 4px; }
figure { margin: 1em 0; }
figure img, figure video { max-width: 100%; height: auto; border: 1px solid #eee; }
figure.wide img, figure.wide video { width: 100%; }
figcaption { color: #555; font-size: 0.9em; margin-top: 0.3em; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.row figure { flex: 1 1 420px; margin: 0.5em 0; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 0.8em; }
.card { border: 1px solid #d0d7de; border-radius: 10px; padding: 0.9em 1.2em 1em; margin: 1em 0 1.2em;
        background: #fbfcfd; box-shadow: 0 1px 3px rgba(0, 0, 0, 0.06); }
.card h2 { border: none; margin: 0 0 0.4em; font-size: 1.35em; }
.card table { margin: 0.5em 0; }
.card p { margin: 0.4em 0; }
.verdict { display: inline-block; padding: 0.15em 0.7em; border-radius: 999px; font-weight: 600; }
.pass { background: #e6f4ea; color: #137333; }
.fail { background: #fce8e6; color: #a50e0e; }
.none { background: #eef0f2; color: #444; }
.badge { display: inline-block; padding: 0 0.55em; border-radius: 999px; font-weight: 600; font-size: 0.9em; }
dl.glossary dt { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-weight: 600; margin-top: 0.5em; }
dl.glossary dd { margin-left: 1.5em; color: #333; }
details { margin: 0.6em 0; }
details summary { cursor: pointer; font-weight: 600; }
"""


def page(title: str, meta: str, headline: str, sections: list[Section]) -> str:
    """The whole document: title, one line about the run, the headline card, a table of contents, the sections."""
    nav = "".join(f'<li><a href="#{s.anchor}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{s.anchor}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class=\"meta\">{meta} Written by stochlift report on {esc(stamp)}.</p>"
        f"{headline}<nav><ul>{nav}</ul></nav>{body}</body></html>\n"
    )
