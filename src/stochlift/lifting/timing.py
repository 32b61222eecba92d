"""Timing a training step on this machine: what `stochlift bench` reports and what the automatic recipe
divides a wall-clock budget by (so it lives here, below both)."""

from __future__ import annotations

import time
from typing import Any, cast

import numpy as np
import torch

from stochlift.lifting.generator import Generator


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(model: Generator, frame_shape: tuple[int, ...], batch: int, steps: int, device: torch.device,
                  dtype: torch.dtype | None, channels_last: bool, *, fused: bool = False,
                  compile: bool | str = False, warmup: int = 1) -> float:
    """Training steps per second: forward + backward + AdamW on random data, after `warmup` steps.

    `fused` takes AdamW's fused kernel (one launch for all parameters) instead of its foreach default;
    `compile` torch.compiles the loss (forward and backward; True or a mode name), compiled in the warm-up."""
    model = model.to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    fused_kernel: dict[str, Any] = {"fused": True} if fused else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **fused_kernel)
    window = torch.randn(batch, model.window, *frame_shape, device=device)
    target = torch.randn(batch, *frame_shape, device=device)
    noise = {k: v.to(device) for k, v in model.training_noise(batch, 0).batch(np.arange(batch), 0).items()}
    if channels_last and window.dim() == 5:  # the input as the first convolution reads it
        window = window.flatten(1, 2).contiguous(memory_format=torch.channels_last).view_as(window)
    loss_fn = model.loss
    if compile:
        loss_fn = torch.compile(model.loss, dynamic=False,
                                mode=None if compile in (True, "default") else cast(str, compile))  # a mode name

    def one() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(window, target, **noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(max(1, warmup)):
        one()
    _sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        one()
    _sync(device)
    return steps / (time.perf_counter() - began)

