"""Scalar quantities of interest of physics trajectories (paper Appendix D.4).

Each maps a trajectory (or each of its frames) to one number, so ensembles can be compared with the exact
1-D Wasserstein distance. Both functions take one chunk [n, T, C, H, W] and return per-trajectory results,
so callers can stream an ensemble that does not fit in memory.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from stochlift.errors import StochliftError

__all__ = ["as_trajectories", "crossing_time", "mass", "ring_mask"]


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


def ring_mask(height: int, width: int, ring_width: int = 1) -> np.ndarray:
    """Boolean [H, W] mask of the outer ring of `ring_width` pixels (the region B of the crossing time)."""
    if ring_width < 1:
        raise StochliftError(f"ring_width must be >= 1, got {ring_width}")
    rows = np.arange(height)
    cols = np.arange(width)
    edge_row = (rows < ring_width) | (rows >= height - ring_width)
    edge_col = (cols < ring_width) | (cols >= width - ring_width)
    return edge_row[:, None] | edge_col[None, :]


def crossing_time(frames: ArrayLike, threshold: float = 0.05, ring_width: int = 1) -> np.ndarray:
    """First time a signed value exceeds `threshold` anywhere in the outer ring (all channels): [n].

    Time is normalised to [0, 1] (frame i -> i / (T - 1)); a trajectory that never crosses gets 1.0, the
    end of the horizon, so the statistic stays defined. The comparison is signed, as in the paper: a
    trough below -threshold is not an arrival.
    """
    arr = as_trajectories(frames)
    ring = ring_mask(arr.shape[3], arr.shape[4], ring_width)
    hits = (arr[..., ring] > threshold).any(axis=(2, 3))  # [n, T]: any channel, any ring pixel
    tau = np.argmax(hits, axis=1) / (arr.shape[1] - 1)  # argmax finds the first True
    tau[~hits.any(axis=1)] = 1.0
    return tau
