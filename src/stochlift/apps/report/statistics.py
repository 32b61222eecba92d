"""What the report computes from whole ensembles beyond the scores: per-point moments, power spectra, and
the collapsed ensemble that every score is also given for.

Each file is read once, in chunks of trajectories, into float64 running sums ([T, *state] each), so memory
stays a few frames' worth per trajectory whatever the ensemble size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.metrics.spectrum import radial_power_spectrum, shell_count

COLLAPSED_SPLIT = "collapsed"
COLLAPSED_MEMBERS = 2  # identical members: every score of a point ensemble is the same for any count >= 2


@dataclass
class EnsembleSummary:
    """Per-point moments of one ensemble, and its mean power spectrum at a few frames."""

    n: int
    mean: np.ndarray  # [T, *state] float64
    std: np.ndarray  # [T, *state] float64 (ddof 0)
    spectra: np.ndarray | None  # [F, K]: mean over members and channels at `spectrum_frames`; None for vectors


def shown_frames(initial_frames: int, frames: int, count: int = 4) -> list[int]:
    """`count` frames evenly spaced from the first generated one to the last (fewer when there are fewer)."""
    first = min(max(initial_frames, 0), frames - 1)
    return sorted({int(round(i)) for i in np.linspace(first, frames - 1, min(count, frames - first))})


def has_spectrum(state_shape: tuple[int, ...]) -> bool:
    """A power spectrum needs a field (1 or 2 spatial axes) of at least 4 points per axis."""
    return len(state_shape) >= 2 and shell_count(tuple(state_shape[1:])) >= 1


def summarise(file: Any, split: str, spectrum_frames: list[int], chunk_size: int = 32) -> EnsembleSummary:
    """Moments [T, *state] and spectra [F, K] of every trajectory of `split` (our file or The Well's reader)."""
    n = file.splits[split]
    state = tuple(file.meta.frame_shape)
    spatial_ndim = len(state) - 1
    total = np.zeros((file.meta.frames, *state))
    squares = np.zeros_like(total)
    spectra = None
    for r0 in range(0, n, chunk_size):
        chunk = np.asarray(file.read(split, slice(r0, min(r0 + chunk_size, n))), dtype=np.float64)
        total += chunk.sum(axis=0)
        squares += np.square(chunk).sum(axis=0)
        if has_spectrum(state) and spectrum_frames:
            power = radial_power_spectrum(chunk[:, spectrum_frames], spatial_ndim)  # [n, F, C, K]
            spectra = power.sum(axis=0).mean(axis=1) + (0.0 if spectra is None else spectra)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))  # rounding can dip just below 0
    return EnsembleSummary(n, mean, std, None if spectra is None else spectra / n)


def write_collapsed(path: Path, reference: Any, mean: np.ndarray) -> TrajectoryFile:
    """A file whose ensemble sits on the true per-point mean (split "collapsed"): what a model without spread,
    such as d = 0, would at best give. Scored like a generated file, it draws the collapsed reference line."""
    meta = dataclasses.replace(reference.meta, dtype="float32", dataset_name=f"{reference.meta.dataset_name} (mean)")
    members = np.repeat(mean[None].astype(np.float32), COLLAPSED_MEMBERS, axis=0)
    write_trajectories(path, meta, {COLLAPSED_SPLIT: members})
    return TrajectoryFile(path)


def static_fields(file: Any, split: str, rows: int) -> dict[str, np.ndarray]:
    """The first `rows` trajectories' static per-trajectory fields by name ({} for a reader without them)."""
    if not isinstance(file, TrajectoryFile):
        return {}
    return {name: np.asarray(file.read_static(split, name, slice(0, rows)), dtype=np.float64)
            for name in file.static_field_names(split)}
