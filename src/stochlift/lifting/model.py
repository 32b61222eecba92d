"""The lifted map F(window, xi) -> next frame: a backbone plus the output parametrisation and the loss."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from stochlift.baselines.ardm import ARDM
from stochlift.config import ModelConfig
from stochlift.errors import StochliftError
from stochlift.lifting.outputs import ANCHORED, anchor
from stochlift.models import BACKBONES, DEPTH_PRESETS, build_backbone


class LiftedModel(nn.Module):
    """Wraps a backbone that maps (window as channels, xi) -> one frame.

    output "residual": F = x_t + s * R(window, xi), with s the typical frame-to-frame change, so the
    network learns an O(1) update (the paper's Corollary 1); "second_order": F = 2 x_t - x_{t-1} + s * R;
    "direct": F = R (or sigmoid(R) for BCE). See stochlift.lifting.outputs.
    """

    def __init__(self, backbone: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.window = config.window
        self.label_dim = config.label_dim
        self.output = config.output
        self.loss_name = config.loss
        self.history_padding = config.history_padding
        self.frame_shape = tuple(config.frame_shape) if config.frame_shape else None  # one frame, e.g. [C, H, W]
        self.register_buffer("residual_scale", torch.tensor(float(config.residual_scale or 1.0)))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """Standard-normal numbers per sample per generated frame: the label (nothing when d = 0)."""
        return (self.label_dim,) if self.label_dim else ()

    def step_inputs(self, labels: torch.Tensor, index: np.ndarray, seed: int, step: int) -> torch.Tensor | None:
        """The labels of one training batch: each pair's fixed label from the bank (None when d = 0)."""
        return labels[torch.from_numpy(np.asarray(index))] if self.label_dim else None

    def _raw(self, window: torch.Tensor, xi: torch.Tensor | None) -> torch.Tensor:
        return self.backbone(window.flatten(1, 2) if window.dim() > 3 else window.flatten(1), xi)

    def _check(self, window: torch.Tensor, xi: torch.Tensor | None) -> None:
        if window.shape[1] != self.window:
            raise StochliftError(f"window of {window.shape[1]} frames given, model expects {self.window}")
        if self.label_dim and (xi is None or xi.shape != (window.shape[0], self.label_dim)):
            raise StochliftError(f"labels must be [batch, {self.label_dim}]")

    def forward(self, window: torch.Tensor, xi: torch.Tensor | None = None) -> torch.Tensor:
        """The next frame [B, *frame] from a window [B, m, *frame] and labels [B, d]."""
        self._check(window, xi)
        raw = self._raw(window, xi)
        if self.loss_name == "bce":
            return torch.sigmoid(raw)
        if self.output in ANCHORED:
            return anchor(window, self.output) + self.residual_scale * raw
        return raw

    def loss(self, window: torch.Tensor, xi: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
        """Plain regression (Eq. 6): mean squared error, or binary cross-entropy on logits."""
        self._check(window, xi)
        raw = self._raw(window, xi)
        if self.loss_name == "bce":
            return F.binary_cross_entropy_with_logits(raw, target)
        if self.output in ANCHORED:  # the same L2 loss, measured in units of the residual scale
            return F.mse_loss(raw, (target - anchor(window, self.output)) / self.residual_scale)
        return F.mse_loss(raw, target)


def build_model(config: ModelConfig) -> LiftedModel | ARDM:
    """The model of a resolved config (frame_shape known: [C, H, W] images, [C, X] 1-D fields or [D] vectors):
    the lifted map, or with method "ardm" the diffusion baseline on the same backbone."""
    if not config.frame_shape:
        raise StochliftError("model.frame_shape is unknown; it is filled in from the training data")
    frame_shape = tuple(config.frame_shape)
    channels = frame_shape[0]
    options = dict(config.options)
    ardm = config.method == "ardm"
    spatial_dims = getattr(BACKBONES.get(config.backbone), "spatial_dims", None)  # the U-Nets' frame rank
    if ardm and spatial_dims:
        options["label_embedding"] = "sinusoidal"
        options.pop("label_planes", None)  # an ARDM has no lifting label to lay out as planes
    if spatial_dims:
        _check_unet(config.backbone, spatial_dims, frame_shape, options, 0 if ardm else config.label_dim)
    elif config.backbone == "mlp" and len(frame_shape) != 1:
        raise StochliftError(f"the mlp backbone takes vectors [D], got frames of shape {frame_shape}; set "
                             f"model.backbone={UNET_FOR_RANK.get(len(frame_shape) - 1, ('a U-Net',))[0]}")
    in_channels = (config.window + ardm) * channels  # an ARDM also takes the noisy next frame
    label_dim = 1 if ardm else config.label_dim  # an ARDM's "label" is the diffusion step
    backbone = build_backbone(config.backbone, in_channels=in_channels, out_channels=channels, label_dim=label_dim,
                              **options)
    return ARDM(backbone, config) if ardm else LiftedModel(backbone, config)


# the U-Net for frames of each spatial rank, and how such frames are written
UNET_FOR_RANK = {1: ("unet1d", "[C, X]"), 2: ("unet", "[C, H, W]")}


def _check_unet(name: str, spatial_dims: int, frame_shape: tuple[int, ...], options: dict, label_dim: int) -> None:
    """User errors in a U-Net's frame shape and options, named before the network is built."""
    if len(frame_shape) != 1 + spatial_dims:
        fits = UNET_FOR_RANK.get(len(frame_shape) - 1, ("mlp", ""))[0]
        raise StochliftError(f"the {name} backbone needs {UNET_FOR_RANK[spatial_dims][1]} frames, got frames of "
                             f"shape {frame_shape}; set model.backbone={fits}")
    depths = options.get("depths", "small")
    if isinstance(depths, str) and depths not in DEPTH_PRESETS:
        raise StochliftError(f"unknown U-Net depth preset {depths!r}; presets: {sorted(DEPTH_PRESETS)}")
    _check_divisible(frame_shape[1:], len(DEPTH_PRESETS[depths] if isinstance(depths, str) else depths))
    planes, pixels = options.get("label_planes", 0), math.prod(frame_shape[1:])
    if planes and label_dim == 0:
        raise StochliftError("model.options.label_planes lays out the label as planes: with model.label_dim=0 "
                             "(no label) set model.options.label_planes=0")
    if planes and label_dim != planes * pixels:
        raise StochliftError(f"model.options.label_planes={planes} reshapes the label into {planes} planes of "
                             f"{'x'.join(map(str, frame_shape[1:]))}: set model.label_dim={planes * pixels}, "
                             f"not {label_dim}")


def _check_divisible(spatial: tuple[int, ...], levels: int) -> None:
    factor = 2 ** (levels - 1)
    if any(s % factor for s in spatial):
        raise StochliftError(f"a U-Net with {levels} levels needs sizes divisible by {factor}, got {spatial}")
