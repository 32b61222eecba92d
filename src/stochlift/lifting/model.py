"""The lifted map F(window, xi) -> next frame: a backbone plus the output parametrisation and the loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from stochlift.config import ModelConfig
from stochlift.errors import StochliftError
from stochlift.lifting.labels import training_labels
from stochlift.lifting.outputs import ANCHORED, anchor
from stochlift.models import BACKBONES, build_backbone

if TYPE_CHECKING:
    from stochlift.lifting.pairs import PairSet


class LiftedModel(nn.Module):
    """Wraps a backbone that maps (window as channels, xi) -> one frame.

    output "residual": F = x_t + s * R(window, xi), with s the typical frame-to-frame change, so the
    network learns an O(1) update (the paper's Corollary 1); "second_order": F = 2 x_t - x_{t-1} + s * R;
    "direct": F = R (or sigmoid(R) for BCE). See stochlift.lifting.outputs.
    """

    calls_per_frame = 1  # one network call per generated frame: the point of the method
    pushforward = True  # train.unroll: it can train on its own rollouts, each step with a pair's fixed label
    residual_scale: torch.Tensor  # a buffer (register_buffer in __init__), declared for the type checker

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

    @classmethod
    def validate_config(cls, model: ModelConfig) -> None:
        if model.label_dim < 0:
            raise StochliftError(f"model.label_dim must be >= 0, got {model.label_dim}")
        if model.loss not in ("l2", "bce"):
            raise StochliftError(f"model.loss must be 'l2' or 'bce', got {model.loss!r}")
        if model.loss == "bce" and model.output != "direct":
            raise StochliftError("model.loss 'bce' predicts probabilities directly: set model.output to 'direct'")

    @classmethod
    def from_config(cls, config: ModelConfig) -> LiftedModel:
        """The backbone takes the window as channels and the label xi (d = model.label_dim)."""
        frame_shape = tuple(config.frame_shape or ())
        BACKBONES.get(config.backbone).check_frame(config.backbone, frame_shape, config.options, config.label_dim)
        backbone = build_backbone(config.backbone, in_channels=config.window * frame_shape[0],
                                  out_channels=frame_shape[0], label_dim=config.label_dim, **config.options)
        return cls(backbone, config)

    @classmethod
    def resolve_from_data(cls, config: ModelConfig, pairs: PairSet, seed: int) -> None:
        """Nothing beyond the shared residual scale (lifting/train.py resolve_config)."""

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """Standard-normal numbers per sample per generated frame: the label (nothing when d = 0)."""
        return (self.label_dim,) if self.label_dim else ()

    def training_noise(self, n_pairs: int, seed: int) -> LabelBank:
        """The fixed labels of the training pairs (Algorithm 1): drawn once, a pure function of the seed."""
        return LabelBank(training_labels(n_pairs, self.label_dim, seed) if self.label_dim else None)

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

    def loss(self, window: torch.Tensor, target: torch.Tensor, xi: torch.Tensor | None = None) -> torch.Tensor:
        """Plain regression (Eq. 6): mean squared error, or binary cross-entropy on logits."""
        self._check(window, xi)
        raw = self._raw(window, xi)
        if self.loss_name == "bce":
            return F.binary_cross_entropy_with_logits(raw, target)
        if self.output in ANCHORED:  # the same L2 loss, measured in units of the residual scale
            return F.mse_loss(raw, (target - anchor(window, self.output)) / self.residual_scale)
        return F.mse_loss(raw, target)


class LabelBank:
    """Each training pair's fixed label (None: d = 0, no label); the step does not matter."""

    def __init__(self, labels: torch.Tensor | None) -> None:
        self.labels = labels

    def batch(self, index: np.ndarray, step: int = 0) -> dict[str, torch.Tensor]:
        if self.labels is None:
            return {}
        return {"xi": self.labels[torch.from_numpy(np.asarray(index))]}
