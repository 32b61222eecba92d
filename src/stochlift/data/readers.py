"""Open trajectories for reading whatever their format: our trajectory file, or The Well's files.

`open_trajectories(path)` gives a TrajectoryFile for our files and a WellTrajectories for The Well's (a
file, a folder of files, or a data set root with data/{train,valid,test}/), which reads through
stochlift.data.well.WellSource with TrajectoryFile's interface: `meta`, `splits`, `read`, `iter_chunks`,
`default_split`, `close`; values in physical units (as stored, not normalised). Evaluation and reports take
either.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, overload

import numpy as np

from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta
from stochlift.data.well import WellSource, is_well_path, split_folders
from stochlift.errors import StochliftError


class TrajectoryReader(Protocol):
    """What evaluation and reports read of trajectories (TrajectoryFile, WellTrajectories or a custom reader):
    TrajectoryFile's reading interface; typing only."""

    path: Path
    meta: TrajectoryMeta
    splits: dict[str, int]

    def read(self, split: str, rows: slice | int = ..., frames: slice = ...) -> np.ndarray: ...
    def iter_chunks(self, split: str, chunk_size: int = 64) -> Iterator[np.ndarray]: ...
    def default_split(self, preferred: str = "test") -> str: ...
    def close(self) -> None: ...


class WellTrajectories:
    """The Well's files read like a TrajectoryFile: splits are the data set's split folders (a root), or
    one split named after the folder (train/valid/test; "all" otherwise) for a file or a folder of files."""

    # TrajectoryFile's, on this class's splits and read (annotated so that they type-check on this class)
    default_split: Callable[..., str] = TrajectoryFile.default_split
    iter_chunks: Callable[..., Iterator[np.ndarray]] = TrajectoryFile.iter_chunks

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        folders = split_folders(self.path)
        if folders:
            self._sources = {s: WellSource(self.path, s, normalize=False) for s in folders}
        else:
            name = (self.path.parent if self.path.is_file() else self.path).name
            self._sources = {name if name in ("train", "valid", "test") else "all":
                             WellSource(self.path, normalize=False)}
        first = next(iter(self._sources.values()))
        for split, source in self._sources.items():
            if ((source.channels, source.frame_shape, source.frames)
                    != (first.channels, first.frame_shape, first.frames)):
                raise StochliftError(f"{self.path}: split {split!r} holds channels {list(source.channels)} of "
                                     f"{list(source.frame_shape)} x {source.frames} frames, unlike the others")
        self.meta = first.meta()
        self.splits = {split: source.n_trajectories for split, source in self._sources.items()}

    def _split(self, split: str) -> WellSource:
        if split not in self._sources:
            raise StochliftError(f"{self.path} has no split {split!r}; it has {list(self.splits)}")
        return self._sources[split]

    def read(self, split: str, rows: slice | int = slice(None), frames: slice = slice(None)) -> np.ndarray:
        """Rows of a split as [n, t, C, H, W] float32 in physical units (an int row gives [t, C, H, W])."""
        source = self._split(split)
        if isinstance(rows, (int, np.integer)):
            row = range(source.n_trajectories)[rows]  # negative rows count from the end; out of range: IndexError
            return source.read_rows(row, row + 1, frames, raw=True)[0]
        start, stop, step = rows.indices(source.n_trajectories)
        if step != 1:
            raise StochliftError(f"read rows with a step of 1, not {step}")
        return source.read_rows(start, max(start, stop), frames, raw=True)

    def close(self) -> None:
        for source in self._sources.values():
            source.close()

    def __enter__(self) -> WellTrajectories:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@overload
def open_trajectories(
    path: str | os.PathLike | TrajectoryFile | WellTrajectories,
) -> TrajectoryFile | WellTrajectories: ...
@overload
def open_trajectories(path: TrajectoryReader) -> TrajectoryReader: ...
def open_trajectories(path: str | os.PathLike | TrajectoryReader) -> TrajectoryReader:
    """A reader of `path` (our trajectory file or The Well's files); a reader given is handed back.

    Anything that is not a path is taken for a reader with the trajectory file interface (duck typing), so
    callers can pass in-memory or custom readers.
    """
    if not isinstance(path, (str, os.PathLike)):
        return path
    return WellTrajectories(path) if is_well_path(path) else TrajectoryFile(path)
