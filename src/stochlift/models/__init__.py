"""Backbones by name: every backbone maps (window stacked as channels, label xi) -> one frame.

A backbone is an nn.Module built as `cls(in_channels=..., out_channels=..., label_dim=..., **options)` whose
forward takes `(x [B, in_channels, *spatial], xi [B, label_dim] or None)`. Its registry entry, a
BackboneSpec, says what it supports, so the core never tests a backbone's type: periodic padding (the
run's data decide it), a sinusoidal time embedding (what the ARDM baseline conditions on), label planes,
and which frame ranks it takes. Register one with one line:

    BACKBONES.register("my-net", BackboneSpec(MyNet, frame_ranks=(3,), periodic=True))
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from stochlift.errors import StochliftError
from stochlift.models.mlp import MLP
from stochlift.models.unet import DEPTH_PRESETS, UNet, check_unet
from stochlift.models.unet1d import UNet1d
from stochlift.registry import Registry

FrameCheck = Callable[[tuple[int, ...], dict[str, Any], int], None]
SET_BY_THE_RUN = ("in_channels", "out_channels", "label_dim")  # a backbone's arguments that are not options
FRAME_NAMES = {1: "[D]", 2: "[C, X]", 3: "[C, H, W]"}  # frames by rank: vectors, 1-D fields, 2-D fields


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone class and what it supports.

    frame_ranks: ranks of the frames it takes (1: vectors [C], 2: 1-D fields [C, X], 3: images [C, H, W]).
    periodic: takes `periodic=True/False` (circular padding); the run sets it from the data's boundaries.
    time_embedding: takes `label_embedding="sinusoidal"` with label_dim 1, a diffusion-step embedding.
    label_planes: takes `label_planes=k`, the label laid out as k extra input planes.
    check: named user errors of a frame shape and options (frame_shape, options, label_dim), before building.
    """

    cls: Callable[..., nn.Module]
    frame_ranks: tuple[int, ...] = (1, 2, 3)
    periodic: bool = False
    time_embedding: bool = False
    label_planes: bool = False
    check: FrameCheck | None = None

    def check_options(self, name: str, options: dict[str, Any]) -> None:
        """model.options against the constructor's signature: an unknown name is a user error with a "did you
        mean", instead of a TypeError from deep inside the build."""
        parameters = inspect.signature(self.cls).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return  # takes any keyword
        known = [p for p, parameter in parameters.items()
                 if p not in SET_BY_THE_RUN and parameter.kind is not inspect.Parameter.VAR_POSITIONAL]
        for option in options:
            if option in SET_BY_THE_RUN:
                raise StochliftError(f"model.options.{option} is set by the run (from the data and model.label_dim); "
                                     f"leave it out of model.options")
            if option not in known:
                close = difflib.get_close_matches(option, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise StochliftError(f"unknown option model.options.{option} for backbone {name!r}; {hint}"
                                     f"its options: {', '.join(known)}")

    def check_frame(self, name: str, frame_shape: tuple[int, ...], options: dict[str, Any], label_dim: int) -> None:
        self.check_options(name, options)
        if len(frame_shape) not in self.frame_ranks:
            wanted = " or ".join(FRAME_NAMES.get(rank, f"rank-{rank}") for rank in self.frame_ranks)
            raise StochliftError(f"the {name} backbone needs {wanted} frames, got frames of shape "
                                 f"{tuple(frame_shape)}; set model.backbone={backbone_for(len(frame_shape))}")
        if self.check is not None:
            self.check(frame_shape, options, label_dim)


BACKBONES: Registry[BackboneSpec] = Registry("backbone")
BACKBONES.register("unet", BackboneSpec(UNet, frame_ranks=(3,), periodic=True, time_embedding=True, label_planes=True,
                                        check=check_unet))
BACKBONES.register("unet1d", BackboneSpec(UNet1d, frame_ranks=(2,), periodic=True, time_embedding=True,
                                          label_planes=True, check=check_unet))
BACKBONES.register("mlp", BackboneSpec(MLP, frame_ranks=(1,)))


def backbone_for(rank: int) -> str:
    """The first registered backbone that takes frames of this rank (a hint in error messages)."""
    return next((name for name in BACKBONES.names() if rank in BACKBONES.get(name).frame_ranks), "?")


def build_backbone(name: str, *, in_channels: int, out_channels: int, label_dim: int, **options: Any) -> nn.Module:
    """Instantiate a registered backbone; unknown names and options are user errors."""
    spec = BACKBONES.get(name)
    spec.check_options(name, options)
    try:
        return spec.cls(in_channels=in_channels, out_channels=out_channels, label_dim=label_dim, **options)
    except (TypeError, ValueError) as exc:
        raise StochliftError(f"bad options for backbone {name!r}: {exc}") from None
    except KeyError as exc:
        raise StochliftError(f"unknown preset {exc} for backbone {name!r}; presets: {sorted(DEPTH_PRESETS)}") from None


__all__ = ["BACKBONES", "DEPTH_PRESETS", "MLP", "BackboneSpec", "UNet", "UNet1d", "build_backbone"]
