"""The pieces the training loop (lifting/train.py) is built from, each small and checkpointable.

- Batch: one step's rows on this rank (pairs, windows, targets, the method's training noise, extras such
  as input noise), split into micro-batches.
- EMA: an exponential moving average of the weights (train.ema_decay; off at 0), saved as "ema.*" tensors.
- MixedPrecision: autocast and, for fp16, the gradient scaler, whose state the checkpoint carries.
- learning_rate: linear warm-up, then cosine decay to zero or constant.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from stochlift.config import RunConfig


def learning_rate(config: RunConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to zero (Table 3) or constant."""
    t = config.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.schedule == "constant":
        return t.lr
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@dataclass
class Batch:
    """A step's rows on this rank: pair indices, windows [b, m, *frame], targets, the method's noise
    (keyword arguments of its loss) and per-step extras of the perturbations; all row-aligned."""

    step: int
    index: np.ndarray
    window: torch.Tensor
    target: torch.Tensor
    noise: dict[str, torch.Tensor]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def parts(self, count: int) -> list[Batch]:
        """`count` equal micro-batches (gradient accumulation)."""
        size = len(self.index) // count
        return [self._rows(slice(k * size, (k + 1) * size)) for k in range(count)]

    def _rows(self, rows: slice) -> Batch:
        return Batch(self.step, self.index[rows], self.window[rows], self.target[rows],
                     {k: v[rows] for k, v in self.noise.items()}, {k: v[rows] for k, v in self.extra.items()})

    def to(self, device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(target, noise) on the device."""
        return (self.target.to(device, non_blocking=True), {k: v.to(device) for k, v in self.noise.items()})


class EMA:
    """Exponential moving average of a model's weights; with decay 0 it keeps nothing and does nothing."""

    PREFIX = "ema."

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()} if decay else None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self.weights is not None:
            for k, v in model.state_dict().items():
                self.weights[k].lerp_(v, 1 - self.decay)

    def load(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        """The averaged weights of a checkpoint ("ema.*" tensors)."""
        if self.weights is not None:
            self.weights = {k[len(self.PREFIX):]: v.to(device) for k, v in tensors.items() if k.startswith(self.PREFIX)}

    def copy_to(self, model: nn.Module) -> None:
        """Put the averaged weights into the model (the weights sampling uses)."""
        if self.weights is not None:
            model.load_state_dict(self.weights)


class MixedPrecision:
    """Autocast in `dtype` (None: fp32) and, for fp16, a gradient scaler; `step` also clips gradients."""

    def __init__(self, dtype: torch.dtype | None, device: torch.device) -> None:
        self.dtype, self.device = dtype, device
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, model: nn.Module, grad_clip: float) -> None:
        if grad_clip:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state(self) -> dict[str, torch.Tensor] | None:
        """The scaler's state as checkpoint tensors (None when there is no scaler)."""
        if not self.scaler.is_enabled():
            return None
        return {"scaler.scale": self.scaler.get_scale() * torch.ones(1),
                "scaler.growth_tracker": torch.tensor([self.scaler.state_dict()["_growth_tracker"]])}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.scaler.is_enabled() and "scaler.scale" in tensors:
            self.scaler.load_state_dict({**self.scaler.state_dict(), "scale": tensors["scaler.scale"].item(),
                                         "_growth_tracker": int(tensors["scaler.growth_tracker"].item())})
