"""What the diffusion network predicts: the noise (epsilon), the clean sample (x0) or the velocity (v).

With z_t = a z_0 + s eps (a = sqrt(abar_t), s = sqrt(1 - abar_t)) each is a linear function of the other
two, so the sampler only ever needs both estimates (clean, noise), whatever the network outputs. The
choice matters at few steps: an epsilon estimate turns into a clean one through 1 / a, which is ~100 at
the noisiest step of a short linear schedule and infinite at zero terminal SNR; x0 and v have no such
division there (v = a eps - s z_0, Salimans and Ho 2022).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

PREDICTIONS = ("epsilon", "x0", "v")  # model.prediction

Factor = float | torch.Tensor  # a number (sampling: one step t) or a tensor broadcasting against z (training)


class Estimate(NamedTuple):
    """The network's output read as both an estimate of z_0 and one of the noise eps."""

    clean: torch.Tensor
    noise: torch.Tensor


def read_output(kind: str, output: torch.Tensor, z: torch.Tensor, a: Factor, s: Factor) -> Estimate:
    """(clean, noise) estimates from the network's `output` at z_t = a z_0 + s eps."""
    if kind == "epsilon":
        return Estimate((z - s * output) / a, output)
    if kind == "x0":
        return Estimate(output, (z - a * output) / s)
    if kind == "v":
        return Estimate(a * z - s * output, s * z + a * output)
    raise ValueError(f"unknown prediction {kind!r}; choose from {list(PREDICTIONS)}")


def training_target(kind: str, clean: torch.Tensor, noise: torch.Tensor, a: Factor, s: Factor) -> torch.Tensor:
    """What the network is fitted to at z_t = a clean + s noise."""
    if kind == "epsilon":
        return noise
    if kind == "x0":
        return clean
    if kind == "v":
        return a * noise - s * clean
    raise ValueError(f"unknown prediction {kind!r}; choose from {list(PREDICTIONS)}")
