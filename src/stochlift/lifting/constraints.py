"""Constraints on each generated frame: physics the data obey exactly and a network only learns roughly.

A constraint is a torch module `(previous [B, *frame], proposed [B, *frame]) -> next [B, *frame]` made of
fixed-shape tensor operations only, so it runs inside the one-step update on any device and inside a
captured CUDA graph (stochlift.lifting.fast). A run names its constraint in `model.constraint` (recorded in
its config); the physical constants come from the metadata of the data file the rollout starts from.

Why the Flow problem needs one: in the truth the water in place grows by exactly the injected volume less
what the producer takes out, the same in every trajectory until breakthrough (zero spread). A model whose
steps add 20 % too much water puts the integrated-mass QoI many of those (tiny) spreads away from the
truth, however good the fronts look (benchmarks/results/flow_mass_balance.md).
"""

from __future__ import annotations

import torch
from torch import nn

from stochlift.config import CONSTRAINTS
from stochlift.data.flow import FlowParams, fractional_flow
from stochlift.data.trajectories import TrajectoryMeta
from stochlift.errors import StochliftError

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


def constraint_for(name: str, meta: TrajectoryMeta) -> nn.Module | None:
    """The constraint `name` (model.constraint) for rollouts starting from a file with metadata `meta`."""
    if name == "none":
        return None
    if name == "water_balance":
        return water_balance_for(meta)
    raise StochliftError(f"unknown constraint {name!r}; choose from {list(CONSTRAINTS)}")
