"""A small MLP backbone for vector-valued states (and for checking the method on processes with known laws)."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from stochlift.errors import StochliftError


class MLP(nn.Module):
    """F(window, xi) = MLP([flattened window, xi]); with d = 0 it regresses on the window alone."""

    def __init__(
        self, in_channels: int, out_channels: int, label_dim: int, hidden: int = 128, layers: int = 3
    ) -> None:
        super().__init__()
        self.label_dim = label_dim
        widths = [in_channels + label_dim] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            mods += [nn.Linear(a, b), nn.GELU()]
        mods.append(nn.Linear(widths[-1], out_channels))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor, xi: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        if self.label_dim > 0:
            if xi is None:
                raise StochliftError(f"this model takes labels xi of dimension {self.label_dim}; got none")
            x = torch.cat([x, xi], dim=1)
        return self.net(x)
