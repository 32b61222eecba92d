"""Output parametrisations: what the network's raw output R is added to (the "anchor").

- "direct": F = R; the network predicts x_{t+1} itself (sigmoid(R) under the BCE loss).
- "residual": F = x_t + s R, with s the std of x_{t+1} - x_t: the paper's Corollary 1, the update between
  consecutive frames is small, so the network learns it at its own scale.
- "second_order": F = 2 x_t - x_{t-1} + s R, with s the std of x_{t+1} - 2 x_t + x_{t-1}: for dynamics of
  second order in time (waves), the leapfrog extrapolation carries the motion and the network learns only
  the acceleration. The velocity, which a first-order residual re-learns at every step (and whose errors a
  conservative system never damps), comes from the window instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stochlift.config import ANCHORED, OUTPUTS

if TYPE_CHECKING:
    import torch

__all__ = ["ANCHORED", "OUTPUTS", "anchor"]


def anchor(window: torch.Tensor, output: str) -> torch.Tensor:
    """What s * R is added to, from a window [B, m, *frame] (oldest frame first)."""
    if output == "residual":
        return window[:, -1]
    if output == "second_order":
        return 2 * window[:, -1] - window[:, -2]
    raise ValueError(f"output {output!r} has no anchor")
