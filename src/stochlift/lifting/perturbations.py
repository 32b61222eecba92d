"""Batch perturbations of training: what a step feeds the model instead of the clean data windows.

Both draw nothing from global random state: input noise is a function of (seed, step), pushforward uses the
model and each pair's own fixed label, so a resumed run perturbs exactly as the uninterrupted one.

- InputNoise (train.input_noise, train.input_noise_length): one Gaussian field per sample, the same on
  every frame of its window, in units of the residual scale; the target stays clean, so the model learns to
  pull perturbed states back.
- Pushforward (train.unroll): the last frames of each window are the model's own predictions.

A perturbation is `prepare(batch)` once per step (on the rank's rows) and `apply(window, part)` per
micro-batch; the training loop applies them in order.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from stochlift.lifting.labels import stream_seed
from stochlift.lifting.pairs import PairSet

if TYPE_CHECKING:
    from stochlift.lifting.generator import Generator, TrainingNoise
    from stochlift.lifting.training import Batch


def smooth_field(noise: torch.Tensor, length: float, spatial_dims: int = 2) -> torch.Tensor:
    """White noise [..., *spatial] filtered over its last `spatial_dims` axes (2: [..., H, W], 1: [..., X]) by a
    periodic Gaussian of std `length` pixels, rescaled to unit variance per pixel (exactly, in expectation);
    vectors (spatial_dims 0) and length 0 pass unchanged."""
    if length <= 0 or spatial_dims == 0:
        return noise
    if spatial_dims == 1:
        fx = torch.fft.rfftfreq(noise.shape[-1])
        gain = torch.exp(-2 * (math.pi * length) ** 2 * fx**2)
        power = torch.fft.irfft(gain**2, n=noise.shape[-1])[0]
        return torch.fft.irfft(torch.fft.rfft(noise) * gain, n=noise.shape[-1]) / power.sqrt()
    h, w = noise.shape[-2:]
    fy, fx = torch.fft.fftfreq(h), torch.fft.rfftfreq(w)
    gain = torch.exp(-2 * (math.pi * length) ** 2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
    power = torch.fft.irfft2(gain**2, s=(h, w))[0, 0]  # variance of the filtered field per unit white variance
    return torch.fft.irfft2(torch.fft.rfft2(noise) * gain, s=(h, w)) / power.sqrt()


def perturbation(
    window: torch.Tensor, std: float | torch.Tensor, seed: int, step: int, *, rows: slice | None = None,
    global_batch: int | None = None, length: float = 0.0,
) -> torch.Tensor:
    """Input noise of one step: one Gaussian field per sample (white, or smooth over `length` pixels),
    repeated over the window's frames.

    The same field on every frame shifts the state but keeps its frame-to-frame changes; drawn from
    (seed, step) alone so a resumed run sees the same noise. Under data parallelism the noise of the whole
    global batch (`global_batch` windows) is drawn and `rows` of it taken, so every rank perturbs its shard
    exactly as a single process would.
    """
    generator = torch.Generator().manual_seed(stream_seed(seed, "input_noise", step))
    noise = torch.randn(global_batch or window.shape[0], 1, *window.shape[2:], generator=generator)
    noise = smooth_field(noise, length, spatial_dims=window.dim() - 3)  # window [B, m, C, *spatial]
    if rows is not None:
        noise = noise[rows]
    return (noise * std).expand_as(window)


@torch.no_grad()
def pushed_window(
    model: Generator, pairs: PairSet, index: np.ndarray, labels: torch.Tensor | None, unroll: int,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Input windows whose last frames come from the model's own rollout (the pushforward trick).

    Each pair is reached by rolling up to `unroll` steps from an earlier window of its trajectory, every
    step with that earlier pair's fixed training label; pairs near the start unroll only as far as the
    trajectory allows. The loss then teaches the model to pull its own errors back, not only white noise.
    `start` holds those earlier windows when they were read already (the DataLoader does); the rollout
    runs on the model's device.
    """
    steps = np.minimum(unroll, pairs.target_frames(index) - 1)
    window = pairs.batch(index - steps)[0] if start is None else start.clone()
    device = model.residual_scale.device
    window = window.to(device)
    for to_go in range(unroll, 0, -1):
        active = torch.from_numpy(steps >= to_go)
        if not active.any():
            continue
        active = active.to(device)
        current = window[active]
        xi = labels[torch.from_numpy(index - to_go)[active.cpu()]].to(device) if labels is not None else None
        window[active] = torch.cat([current[:, 1:], model(current, xi)[:, None].to(window.dtype)], dim=1)
    return window


class Perturbation(Protocol):
    def prepare(self, batch: Batch) -> None:
        """Once per step, on this rank's rows (e.g. draw the step's noise into batch.extra)."""
        ...

    def apply(self, window: torch.Tensor, part: Batch) -> torch.Tensor:
        """The window a micro-batch trains on (on the model's device)."""
        ...


class InputNoise:
    """`perturbation` of the rank's rows, drawn for the whole global batch (so data parallelism perturbs every
    shard as one process would); std in absolute units (train.input_noise x the residual scale)."""

    def __init__(self, std: float, length: float, seed: int, global_batch: int, rows: slice) -> None:
        self.std, self.length, self.seed, self.global_batch, self.rows = std, length, seed, global_batch, rows

    def prepare(self, batch: Batch) -> None:
        batch.extra["input_noise"] = perturbation(batch.window, self.std, self.seed, batch.step, rows=self.rows,
                                                  global_batch=self.global_batch, length=self.length)

    def apply(self, window: torch.Tensor, part: Batch) -> torch.Tensor:
        return window + part.extra["input_noise"].to(window.device, non_blocking=True)


class Pushforward:
    """`pushed_window` from the earlier windows the loader read (batch.extra["start"]), each step rolled with
    that earlier pair's own training label (a lifted model's: ARDMs train on true windows)."""

    def __init__(self, model: Generator, pairs: PairSet, noise: TrainingNoise, unroll: int) -> None:
        self.model, self.pairs, self.unroll = model, pairs, unroll
        self.labels = noise.batch(np.arange(pairs.n_pairs), 0).get("xi")  # every pair's label (None: d = 0)

    def prepare(self, batch: Batch) -> None:
        pass

    def apply(self, window: torch.Tensor, part: Batch) -> torch.Tensor:
        return pushed_window(self.model, self.pairs, part.index, self.labels, self.unroll, start=part.extra["start"])
