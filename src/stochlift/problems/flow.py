"""The Flow problem: water floods oil through a random porous medium, injector to producer (paper 5.2).

Its quantities of interest are the breakthrough time (water in the producer's corner square) and the mass
(mean saturation: the water in place); a physical check counts water islands cut off from the injector
(the paper's "disconnected flows"); sampling can project every frame onto the wells' water balance. The
simulator and its presets are stochlift.data.flow and stochlift.data.flow_datasets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy import ndimage
from torch import nn

from stochlift.data.flow import FlowParams, fractional_flow
from stochlift.data.flow_datasets import make_flow_dataset
from stochlift.data.readers import TrajectoryReader
from stochlift.data.trajectories import TrajectoryMeta
from stochlift.errors import StochliftError
from stochlift.metrics.physics import PhysicsMetrics, evaluate_physics_files
from stochlift.metrics.quantities import as_trajectories, region_crossing_time
from stochlift.problems.base import UNIT_RANGE_DISPLAY, Demo, Metrics, Problem, QuantityView
from stochlift.problems.physics import PHYSICS_SELECTION, PHYSICS_TARGETS, physics_views

# a Flow frame "has islands" when more than this share of its wet area is cut off from the injector
ISLAND_SHARE = 0.05


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
    return region_crossing_time(arr, corner_mask(arr.shape[3], arr.shape[4], corner_size), threshold)


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


WATER_BALANCE_KEYS = ("rate", "porosity", "extent", "producer_cell", "shape", "mu_w", "mu_o", "swc", "sor")


class WaterBalance(nn.Module):
    """Project a generated Flow step onto the wells' water balance, with saturations kept in [swc, 1 - sor].

    The step's changes are first clipped to the saturation bounds. Its losses are kept; its gains are
    scaled by one factor c in [0, max_scale] (each cell capped at 1 - sor) so that the water in place grows
    by `inflow` (saturation x cells per frame) less the producer's share, inflow x f_w(s_producer), with f_w
    averaged over the step's two ends (trapezoid; the end taken from the proposed frame). On the truth this
    estimate of a frame's change is off by 1e-3 of a frame's inflow at most (quick data set); c is found by
    bisection, which keeps the operation a fixed sequence of tensor operations.
    """

    def __init__(self, inflow: float, producer: tuple[int, int], params: FlowParams, *, max_scale: float = 4.0,
                 iterations: int = 30) -> None:
        super().__init__()
        self.inflow, self.producer, self.params = float(inflow), tuple(producer), params
        self.max_scale, self.iterations = float(max_scale), int(iterations)

    def target(self, previous: torch.Tensor, proposed: torch.Tensor) -> torch.Tensor:
        """[B] water the step should add (saturation x cells): inflow less the producer's trapezoid share."""
        i, j = self.producer
        low, high = self.params.swc, 1.0 - self.params.sor
        f_before = fractional_flow(previous[:, 0, i, j], self.params)
        f_after = fractional_flow(proposed[:, 0, i, j].clamp(low, high), self.params)
        return self.inflow * (1.0 - 0.5 * (f_before + f_after))

    def forward(self, previous: torch.Tensor, proposed: torch.Tensor) -> torch.Tensor:
        low, high = self.params.swc, 1.0 - self.params.sor
        change = torch.minimum(torch.maximum(proposed - previous, low - previous), high - previous)
        loss, gain = change.clamp(max=0.0), change.clamp(min=0.0)
        room = (high - previous).clamp(min=0.0)
        need = (self.target(previous, proposed) - loss.flatten(1).sum(1)).view(-1, *[1] * (gain.dim() - 1))
        lo = torch.zeros_like(need)
        hi = torch.full_like(need, self.max_scale)
        for _ in range(self.iterations):  # largest c with sum(min(c gain, room)) <= need
            mid = 0.5 * (lo + hi)
            added = torch.minimum(mid * gain, room).flatten(1).sum(1).view_as(need)
            fits = added <= need
            lo, hi = torch.where(fits, mid, lo), torch.where(fits, hi, mid)
        return (previous + loss + torch.minimum(lo * gain, room)).clamp(low, high)


def water_balance_for(meta: TrajectoryMeta) -> WaterBalance:
    """The WaterBalance of a Flow data file, from the physics its metadata records (make_flow_dataset's)."""
    missing = [key for key in WATER_BALANCE_KEYS if key not in meta.parameters]
    if meta.problem != "flow" or missing:
        raise StochliftError(f"model.constraint water_balance needs a Flow data file (stochlift data flow); "
                             f"{meta.dataset_name!r} is {meta.problem!r} data"
                             + (f" without {', '.join(missing)} in its metadata" if missing else ""))
    p = meta.parameters
    params = FlowParams(mu_w=float(p["mu_w"]), mu_o=float(p["mu_o"]), swc=float(p["swc"]), sor=float(p["sor"]))
    rows, cols = (int(n) for n in meta.frame_shape[-2:])
    grid = [int(n) for n in p["shape"]]
    # the producer's cell on the stored grid (area-resampled data keep the corner cells in the corner pixels)
    producer = (int(p["producer_cell"][0]) * rows // grid[0], int(p["producer_cell"][1]) * cols // grid[1])
    dt = float(meta.time[1] - meta.time[0])
    area = float(p["extent"][0]) * float(p["extent"][1])
    inflow = float(p["rate"]) * dt / (float(p["porosity"]) * area) * rows * cols
    return WaterBalance(inflow, producer, params)


def _quick_data(out: str | os.PathLike, **kwargs: Any) -> Path:
    return make_flow_dataset(out, preset="quick", **kwargs)


class FlowProblem(Problem):
    name = "flow"
    description = "two-phase flow through a random porous medium (32x32 quick, 96x96 paper)"
    # a Flow rollout's breakthrough times swing with the training seed (flow_recipe_search.md, lesson 15): the
    # demo trains two seeds side by side and keeps the better on the validation split
    demos = {"flow": Demo(make_data=_quick_data, config="flow-quick", best_of=2)}
    selection_keys = PHYSICS_SELECTION
    targets = PHYSICS_TARGETS

    def make_dataset(self, out: str | os.PathLike, *, preset: str = "quick", seed: int = 0, progress: bool = True,
                     **sizes: int | None) -> Path:
        return make_flow_dataset(out, preset=preset, seed=seed, progress=progress, **sizes)

    def evaluate(self, reference: TrajectoryReader, generated: TrajectoryReader, *, reference_split: str,
                 generated_split: str, **options: Any) -> PhysicsMetrics:
        """Water breakthrough in the producer's corner square (qoi_corner_size pixels, default 1/8 of the
        side; qoi_crossing_threshold, default 0.5) and the mass."""
        params, meta = reference.meta.parameters, reference.meta
        if meta.x is None or meta.y is None:
            raise StochliftError("the flow reference records no x and y grid (the corner square is sized from them)")
        side = min(len(meta.x), len(meta.y))
        crossing = CornerBreakthrough(threshold=float(params.get("qoi_crossing_threshold", 0.5)),
                                      corner_size=int(params.get("qoi_corner_size", max(1, round(side / 8)))))
        return evaluate_physics_files(reference, generated, crossing, reference_split=reference_split,
                                      generated_split=generated_split)

    def views(self, metrics: Metrics) -> list[QuantityView]:
        return physics_views(metrics, "water breakthrough in the producer's corner",
                             "mass (mean water saturation)")

    def display(self, reference: np.ndarray) -> dict[str, Any]:
        return dict(UNIT_RANGE_DISPLAY)

    frame_check_descriptions = {
        "frames_with_islands": f"water islands (more than {ISLAND_SHARE:.0%} of the wet area, s > 0.5, cut off from "
                               "the injector)"}

    def frame_checks(self, frames: np.ndarray) -> dict[str, float]:
        """The share of frames with water islands (> ISLAND_SHARE of the wet area cut off from the injector)."""
        return {"frames_with_islands": float(np.mean(disconnected_water(frames) > ISLAND_SHARE))}
