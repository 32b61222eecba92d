"""Scalar quantities of interest of physics trajectories (paper Appendix D.4), problem-independent parts.

Each maps a trajectory (or each of its frames) to one number, so ensembles can be compared with the exact
1-D Wasserstein distance. The functions take one chunk [n, T, C, H, W] and return per-trajectory results,
so callers can stream an ensemble that does not fit in memory. Where a crossing happens is the problem's
knowledge (stochlift.problems: the Wave ring, the Flow producer's corner); `region_crossing_time` is the
rule they share.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from numpy.typing import ArrayLike

from stochlift.errors import StochliftError

__all__ = ["as_trajectories", "frame_mass", "mass", "region_crossing_time"]


def as_trajectories(frames: ArrayLike, name: str = "frames") -> np.ndarray:
    """The chunk as an array [n, T, C, H, W] with at least two frames, else StochliftError."""
    arr = np.asarray(frames)
    if arr.ndim != 5:
        raise StochliftError(f"{name} must have shape [n_traj, T, C, H, W], got shape {arr.shape}")
    if arr.shape[1] < 2:
        raise StochliftError(f"{name} needs at least 2 frames for a normalised time grid, got T = {arr.shape[1]}")
    return arr


def mass(frames: ArrayLike) -> np.ndarray:
    """Mass m(x_t) = mean |u| over all C, H, W entries of each frame: [n, T] (float64).

    This is the paper's (1/n) ||x_t||_1, a discrete integral of |u| over the unit square.
    """
    arr = as_trajectories(frames)
    return np.abs(arr).mean(axis=(2, 3, 4), dtype=np.float64)


def frame_mass(frames: ArrayLike) -> np.ndarray:
    """The same mass for loose frames [n, C, H, W] (no time axis): [n] (float64)."""
    arr = np.asarray(frames)
    return np.abs(arr).reshape(len(arr), -1).mean(axis=1, dtype=np.float64)


def region_crossing_time(frames: ArrayLike, region: np.ndarray, threshold: float) -> np.ndarray:
    """First time a signed value exceeds `threshold` anywhere in `region` (a boolean [H, W] mask, any
    channel): [n]. Time is normalised to [0, 1] (frame i -> i / (T - 1)); a trajectory that never crosses
    gets 1.0, the end of the horizon, so the statistic stays defined. Signed: a trough below -threshold is
    not an arrival."""
    arr = as_trajectories(frames)
    # [n, T]: any channel, any pixel of the region
    hits = cast(np.ndarray, (arr[..., region] > threshold).any(axis=(2, 3)))
    tau = np.argmax(hits, axis=1) / (arr.shape[1] - 1)  # argmax finds the first True
    tau[~hits.any(axis=1)] = 1.0
    return tau
