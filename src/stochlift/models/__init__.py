"""Backbones by name: every backbone maps (window stacked as channels, label xi) -> one frame."""

from __future__ import annotations

from typing import Any

from torch import nn

from stochlift.errors import StochliftError
from stochlift.models.mlp import MLP
from stochlift.models.unet import DEPTH_PRESETS, UNet
from stochlift.models.unet1d import UNet1d

BACKBONES: dict[str, type[nn.Module]] = {"unet": UNet, "unet1d": UNet1d, "mlp": MLP}


def build_backbone(name: str, *, in_channels: int, out_channels: int, label_dim: int, **options: Any) -> nn.Module:
    """Instantiate a registered backbone; unknown names and options are user errors."""
    if name not in BACKBONES:
        raise StochliftError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    try:
        return BACKBONES[name](in_channels=in_channels, out_channels=out_channels, label_dim=label_dim, **options)
    except (TypeError, ValueError) as exc:
        raise StochliftError(f"bad options for backbone {name!r}: {exc}") from None
    except KeyError as exc:
        raise StochliftError(f"unknown preset {exc} for backbone {name!r}; presets: {sorted(DEPTH_PRESETS)}") from None


__all__ = ["BACKBONES", "DEPTH_PRESETS", "MLP", "UNet", "UNet1d", "build_backbone"]
