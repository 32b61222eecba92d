"""The Wave problem: u_tt = c(x)^2 Laplace u in a random medium c, from a fixed Gaussian bump (paper 5.1).

Its quantities of interest are the crossing time (first time the signed field exceeds a threshold on the
outer ring of the grid, the authors' demo's region B) and the mass (mean |u|); the simulator and its
presets are stochlift.data.wave and stochlift.data.datasets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from stochlift.data.datasets import make_wave_dataset
from stochlift.data.readers import TrajectoryReader
from stochlift.errors import StochliftError
from stochlift.metrics.physics import PhysicsMetrics, evaluate_physics_files
from stochlift.metrics.quantities import as_trajectories, region_crossing_time
from stochlift.problems.base import Demo, Metrics, Problem, QuantityView
from stochlift.problems.physics import PHYSICS_SELECTION, PHYSICS_TARGETS, physics_views


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
    return region_crossing_time(arr, ring_mask(arr.shape[3], arr.shape[4], ring_width), threshold)


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



def _quick_data(out: str | os.PathLike, **kwargs: Any) -> Path:
    return make_wave_dataset(out, preset="quick", **kwargs)


class WaveProblem(Problem):
    name = "wave"
    description = "waves in a random medium from a fixed bump (32x32 quick, 64x64 paper)"
    demos = {"wave": Demo(make_data=_quick_data, config="wave-quick")}
    selection_keys = PHYSICS_SELECTION
    targets = PHYSICS_TARGETS

    def make_dataset(self, out: str | os.PathLike, *, preset: str = "quick", seed: int = 0, progress: bool = True,
                     **sizes: int | None) -> Path:
        return make_wave_dataset(out, preset=preset, seed=seed, progress=progress, **sizes)

    def evaluate(self, reference: TrajectoryReader, generated: TrajectoryReader, *, reference_split: str,
                 generated_split: str, **options: Any) -> PhysicsMetrics:
        """Crossing time on the outer ring (the file's qoi_crossing_threshold, default 0.05, and
        qoi_ring_width, default 1) and the mass."""
        params = reference.meta.parameters
        crossing = RingCrossing(threshold=float(params.get("qoi_crossing_threshold", 0.05)),
                                ring_width=int(params.get("qoi_ring_width", 1)))
        return evaluate_physics_files(reference, generated, crossing, reference_split=reference_split,
                                      generated_split=generated_split)

    def views(self, metrics: Metrics) -> list[QuantityView]:
        return physics_views(metrics, "the wave reaching the outer ring", "mass (mean |u| over the field)")
