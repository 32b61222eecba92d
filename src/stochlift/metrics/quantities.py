"""Scalar quantities of interest of physics trajectories (paper Appendix D.4).

Each maps a trajectory (or each of its frames) to one number, so ensembles can be compared with the exact
1-D Wasserstein distance. The functions take one chunk [n, T, C, H, W] and return per-trajectory results,
so callers can stream an ensemble that does not fit in memory. The crossing time depends on the problem:
`RingCrossing` (Wave: the front reaches the boundary) or `CornerBreakthrough` (Flow: water reaches the
producer); for Flow the mass (mean |s| = mean s, since s >= 0) is the mean water saturation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from stochlift.errors import StochliftError

__all__ = [
    "CornerBreakthrough",
    "RingCrossing",
    "as_trajectories",
    "corner_breakthrough_time",
    "corner_mask",
    "crossing_time",
    "disconnected_water",
    "mass",
    "ring_mask",
]


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


def corner_mask(height: int, width: int, corner_size: int = 1) -> np.ndarray:
    """Boolean [H, W] mask of the `corner_size` x `corner_size` square in the last-row, last-column corner.

    That is the producer's corner in the Flow problem (injector at pixel (0, 0), producer opposite).
    """
    if corner_size < 1 or corner_size > min(height, width):
        raise StochliftError(f"corner_size must be in [1, {min(height, width)}] for {height}x{width} frames, "
                             f"got {corner_size}")
    mask = np.zeros((height, width), dtype=bool)
    mask[height - corner_size :, width - corner_size :] = True
    return mask


def corner_breakthrough_time(frames: ArrayLike, threshold: float = 0.5, corner_size: int = 1) -> np.ndarray:
    """Breakthrough time: first time any pixel of the producer's corner square exceeds `threshold`: [n].

    The maximum over the corner (any channel, any pixel), not the mean: water has arrived as soon as one
    path of it reaches the region, the same "any pixel" rule as `crossing_time`'s ring. Time is normalised
    to [0, 1] (frame i -> i / (T - 1)); a trajectory that never breaks through gets 1.0.
    """
    arr = as_trajectories(frames)
    corner = corner_mask(arr.shape[3], arr.shape[4], corner_size)
    hits = (arr[..., corner] > threshold).any(axis=(2, 3))  # [n, T]
    tau = np.argmax(hits, axis=1) / (arr.shape[1] - 1)
    tau[~hits.any(axis=1)] = 1.0
    return tau


def disconnected_water(frames: ArrayLike, level: float = 0.5) -> np.ndarray:
    """Share of each Flow frame's wet area (saturation > `level`) cut off from the injector pixel (0, 0): [n].

    Water enters only at the injector and displaces oil from there, so in a physical frame the wet region
    is one piece that holds the injector (the simulator's frames give 0). A generator that mixes training
    frames instead of moving the front makes islands of water: the paper's "disconnected flows". Frames
    [n, C, H, W], channel 0; 4-connected pieces; a frame with no wet pixel gives 0.
    """
    arr = np.asarray(frames)
    if arr.ndim != 4:
        raise StochliftError(f"frames must be [n, C, H, W], got shape {arr.shape}")
    shares = np.zeros(len(arr))
    for i, frame in enumerate(arr[:, 0]):
        wet = frame > level
        pieces, _ = ndimage.label(wet)
        if wet.any():
            source = pieces[0, 0]  # 0 when the injector pixel itself is dry: then no wet pixel is connected
            shares[i] = np.count_nonzero(wet & ((pieces != source) | (source == 0))) / np.count_nonzero(wet)
    return shares


@dataclass(frozen=True)
class RingCrossing:
    """The Wave problem's crossing time: the signed value exceeds `threshold` on the outer ring."""

    threshold: float = 0.05
    ring_width: int = 1

    def __post_init__(self) -> None:
        if self.ring_width < 1:
            raise StochliftError(f"ring_width must be >= 1, got {self.ring_width}")

    def __call__(self, frames: ArrayLike) -> np.ndarray:
        return crossing_time(frames, self.threshold, self.ring_width)

    def describe(self) -> dict[str, Any]:
        return {"crossing": "ring", "threshold": self.threshold, "ring_width": self.ring_width}


@dataclass(frozen=True)
class CornerBreakthrough:
    """The Flow problem's crossing time: saturation above `threshold` in the producer's corner square."""

    threshold: float = 0.5
    corner_size: int = 1

    def __post_init__(self) -> None:
        if self.corner_size < 1:
            raise StochliftError(f"corner_size must be >= 1, got {self.corner_size}")

    def __call__(self, frames: ArrayLike) -> np.ndarray:
        return corner_breakthrough_time(frames, self.threshold, self.corner_size)

    def describe(self) -> dict[str, Any]:
        return {"crossing": "corner", "threshold": self.threshold, "corner_size": self.corner_size}
