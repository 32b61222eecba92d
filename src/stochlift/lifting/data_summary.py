"""What the automatic recipe knows about a training set (stochlift.lifting.recipe): its shape and size, whether
it starts from a shared frame, its value range, how many frames of history a linear one-step predictor can use,
and how many directions its one-step noise spans, from a sample of at most SAMPLE_BYTES."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from stochlift.data.trajectories import TrajectoryFile
from stochlift.data.well import WellSource, is_well_path
from stochlift.errors import StochliftError
from stochlift.lifting.pairs import FileSource, FrameSource

HISTORY_GAIN = 0.2  # another frame of history is worth it when it cuts the linear predictor's error by 20%
MAX_WINDOW = 5

SAMPLE_BYTES = 64 << 20  # summarize reads at most about this many bytes of float32 frames
HISTORY_FRAMES = 5  # the window test compares linear predictors from 1 .. HISTORY_FRAMES frames
REDUCED_COMPONENTS = 32  # states are projected on their leading principal components for the window test
NOISE_ENERGY = 0.9  # noise rank: principal directions of the one-step residual holding this share of it


@dataclass(frozen=True)
class DataSummary:
    """What the recipe needs to know about a training set."""

    frame_shape: tuple[int, ...]  # [D] vectors, [C, X] 1-D fields, [C, H, W] 2-D fields
    trajectories: int
    frames: int
    shared_start: bool  # every trajectory starts from the same frame
    value_range: tuple[float, float]
    periodic: bool = False
    # relative drop of a linear one-step predictor's held-out error from k to k + 1 frames of history, k = 1..
    history_gains: tuple[float, ...] = ()
    noise_rank: int | None = None  # principal directions holding NOISE_ENERGY of the one-step residual

    @property
    def state_size(self) -> int:
        return math.prod(self.frame_shape)

    @property
    def spatial_rank(self) -> int:
        """0 for vectors, 1 for 1-D fields [C, X], 2 for 2-D fields [C, H, W]."""
        return len(self.frame_shape) - 1

    @property
    def pairs(self) -> int:
        return self.trajectories * (self.frames - 1)

    @property
    def unit_range(self) -> bool:
        """All values in [0, 1] (probabilities, images): the BCE loss with a sigmoid output fits such data."""
        return self.value_range[0] >= 0.0 and self.value_range[1] <= 1.0

    def describe(self) -> str:
        start = "a shared start" if self.shared_start else "random starts"
        return (f"{self.trajectories} trajectories of {self.frames} frames of shape {list(self.frame_shape)} "
                f"({self.pairs} training pairs), {start}, values in [{self.value_range[0]:.3g}, "
                f"{self.value_range[1]:.3g}]")


def summarize(source: Any, *, periodic: bool = False, seed: int = 0, name: str = "the training data") -> DataSummary:
    """The summary of a FrameSource (e.g. `ArraySource`, `FileSource`), read in part: at most SAMPLE_BYTES;
    `name` says where the data come from in errors."""
    n, frames, shape = source.n_trajectories, source.frames, tuple(source.frame_shape)
    if frames < 2:
        raise StochliftError(f"trajectories need at least 2 frames (a start and a next frame), got {frames}")
    per_trajectory = 4 * frames * math.prod(shape)
    count = int(min(n, max(8, SAMPLE_BYTES // per_trajectory)))
    picks = np.sort(np.random.default_rng(seed).choice(n, size=count, replace=False))
    data = np.stack([source.read(int(i), 0, frames) for i in picks]).astype(np.float64)  # [n, T, *frame]
    if not np.isfinite(data).all():  # training would refuse them too, after a full read
        raise NonFiniteData(f"{name} contains NaN or Inf; clean or drop those trajectories before training")
    flat = data.reshape(count, frames, -1)
    starts = flat[:, 0]
    shared = bool(np.all(np.abs(starts - starts[0]) <= 1e-6 * (1.0 + np.abs(starts[0]))))
    gains, rank = _linear_predictability(flat, seed)
    return DataSummary(frame_shape=shape, trajectories=n, frames=frames, shared_start=shared,
                       value_range=(float(flat.min()), float(flat.max())), periodic=periodic,
                       history_gains=gains, noise_rank=rank)


def open_split(path: str | os.PathLike, split: str = "train") -> tuple[FrameSource, bool]:
    """One split of a stochlift trajectory file or of The Well's files, and whether it is periodic (no full read)."""
    if is_well_path(path):
        well = WellSource(path, split)
        return well, well.periodic
    file = TrajectoryFile(path)
    return FileSource(file, split), file.meta.periodic


def summarize_file(path: str | os.PathLike, split: str = "train", *, seed: int = 0) -> DataSummary:
    """The summary of one split of a trajectory file (periodic when its file says so)."""
    source, periodic = open_split(path, split)
    return summarize(source, periodic=periodic, seed=seed, name=f"{path}: split {split!r}")


def _linear_predictability(flat: np.ndarray, seed: int) -> tuple[tuple[float, ...], int | None]:
    """(history gains, noise rank) of trajectories [n, T, D] from ridge predictors of x_{t+1} - x_t.

    Fitted on half the trajectories, scored on the other half, so extra history that only fits noise does
    not count as a gain. States are reduced to their leading principal components for the features.
    """
    n, frames, dim = flat.shape
    longest = min(HISTORY_FRAMES, frames - 1)  # windows of 1 .. longest frames, scored on the same targets
    if n < 4 or longest < 1:
        return (), None
    mean = flat.mean(axis=(0, 1))
    centred = flat - mean
    pooled = centred.reshape(-1, dim)
    rows = pooled[np.random.default_rng(seed).choice(len(pooled), size=min(len(pooled), 4096), replace=False)]
    _, _, vt = np.linalg.svd(rows, full_matrices=False)
    reduced = centred @ vt[: min(REDUCED_COMPONENTS, dim)].T  # [n, T, r]
    order = np.random.default_rng(seed + 1).permutation(n)
    fit, test = order[: n // 2], order[n // 2 :]

    def features(idx: np.ndarray, k: int) -> np.ndarray:
        cols = [reduced[idx, longest - 1 - j : frames - 1 - j] for j in range(k)]  # x_t, x_{t-1}, ...
        x = np.concatenate(cols, axis=-1).reshape(-1, k * reduced.shape[-1])
        return np.concatenate([x, np.ones((len(x), 1))], axis=1)

    def increments(states: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return (states[idx, longest:] - states[idx, longest - 1 : frames - 1]).reshape(-1, states.shape[-1])

    def residual(states: np.ndarray, k: int) -> np.ndarray:
        a, b = features(fit, k), features(test, k)
        gram = a.T @ a
        ridge = 1e-6 * np.trace(gram) / len(gram) * np.eye(len(gram))
        return increments(states, test) - b @ np.linalg.solve(gram + ridge, a.T @ increments(states, fit))

    # the gains are measured on the reduced states, where the predictable part lives: in the full state the
    # fine scales no linear map of a few components predicts would swamp them
    errors = [float(np.mean(residual(reduced, k) ** 2)) for k in range(1, longest + 1)]
    gains = tuple(float(1 - errors[k + 1] / errors[k]) if errors[k] > 0 else 0.0 for k in range(len(errors) - 1))
    return gains, _effective_rank(residual(centred, _window_from_gains(gains)))


def _effective_rank(residual: np.ndarray) -> int:
    """Principal directions holding NOISE_ENERGY of the residual's energy."""
    rows = residual[: 4096]
    small = rows @ rows.T if rows.shape[0] < rows.shape[1] else rows.T @ rows
    energy = np.sort(np.clip(np.linalg.eigvalsh(small), 0, None))[::-1]
    if energy.sum() <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(energy) / energy.sum(), NOISE_ENERGY) + 1)


def _window_from_gains(gains: tuple[float, ...]) -> int:
    """1 + the number of leading history frames each of which cuts the linear prediction error by HISTORY_GAIN."""
    window = 1
    for gain in gains:
        if gain < HISTORY_GAIN or window >= MAX_WINDOW:
            break
        window += 1
    return window


class NonFiniteData(StochliftError):
    """The sampled training data hold NaN or Inf (`recipe_for_file` then names where, as training would)."""
