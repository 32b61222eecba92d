"""Progress bars that suit where they are shown.

On a terminal (and in a notebook) this is tqdm's bar. Anywhere else (a log file, CI, `nohup`) every redraw of
a bar stays in the file as a carriage-return-separated copy (one demo left 1,635 of them, 162 KB), so there the
bar's state is written as a plain line instead, at most every LINE_EVERY_S seconds and once at the end:

    train:  40%|####      | 1200/3000 [03:10<04:45, 6.3it/s, loss=0.0123, pairs_per_s=201]

Use `from stochlift.progress import tqdm` wherever a bar is made; it takes tqdm's arguments.
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

from tqdm.asyncio import tqdm as _terminal_tqdm
from tqdm.auto import tqdm as _auto_tqdm

LINE_EVERY_S = 10.0
NOTEBOOK = _auto_tqdm is not _terminal_tqdm  # tqdm.auto chose its notebook widget: no stream to write lines to


def on_terminal(stream: Any = None) -> bool:
    """Whether `stream` (default: stderr) is an interactive terminal."""
    isatty = getattr(stream or sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class PlainLines:
    """A stream for tqdm that writes each redraw as a line of its own: carriage returns become line ends and
    the blanks that erase a longer previous redraw are dropped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        for piece in re.split(r"[\r\n]+", text):
            if piece.strip():
                self.stream.write(piece.rstrip() + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class tqdm(_auto_tqdm):
    """tqdm, writing plain lines instead of redraws when its stream is not a terminal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        stream = kwargs.get("file") or sys.stderr
        if not NOTEBOOK and not kwargs.get("disable") and not on_terminal(stream):
            kwargs.update(file=PlainLines(stream), mininterval=max(kwargs.get("mininterval", 0), LINE_EVERY_S),
                          ascii=True)
        super().__init__(*args, **kwargs)
