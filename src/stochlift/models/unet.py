"""A U-Net whose diffusion-time input is replaced by an embedding of the label xi (FiLM modulation).

Standard diffusion-backbone practice (GroupNorm, residual blocks, stride-2 convolutions down, nearest
upsampling + convolution up, skip connections); the only change is what drives the modulation: a
two-layer MLP embedding of xi in R^d instead of a sinusoidal embedding of the diffusion time. With d = 0
there is no modulation at all and the network is a plain deterministic regressor.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from stochlift.errors import StochliftError

# Channel depths per resolution level; medium and large are the paper's (Appendix E).
DEPTH_PRESETS: dict[str, list[int]] = {
    "tiny": [16, 32, 64],
    "small": [32, 64, 128],
    "medium": [128, 256, 512],
    "large": [128, 256, 512, 1024],
}


def _groups(channels: int, groups: int) -> int:
    """The largest group count <= `groups` that divides `channels` (GroupNorm needs a divisor)."""
    return next(g for g in range(min(groups, channels), 0, -1) if channels % g == 0)


def pad_circular(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Periodic padding of the last two dims by `pad`, keeping x's memory format.

    The same values as F.pad(x, [pad] * 4, mode="circular"), which always returns a contiguous (NCHW)
    tensor: on channels_last activations that costs two layout copies per convolution, the largest
    cost after the convolutions themselves in a profile of the CPU rollout.
    """
    h, w = x.shape[-2:]
    fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
    out = torch.empty(*x.shape[:-2], h + 2 * pad, w + 2 * pad, dtype=x.dtype, device=x.device, memory_format=fmt)
    out[..., pad : pad + h, pad : pad + w] = x
    out[..., pad : pad + h, :pad] = x[..., :, w - pad :]
    out[..., pad : pad + h, pad + w :] = x[..., :, :pad]
    out[..., :pad, :] = out[..., h : h + pad, :]
    out[..., pad + h :, :] = out[..., pad : 2 * pad, :]
    return out


class Conv2d(nn.Conv2d):
    """nn.Conv2d whose circular padding keeps the memory format (see pad_circular); same parameters."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode == "circular" and len(set(self.padding)) == 1:
            return F.conv2d(pad_circular(input, cast(int, self.padding[0])), weight, bias, self.stride, 0,
                            self.dilation, self.groups)
        return super()._conv_forward(input, weight, bias)


# The convolution of each spatial rank: 2-D frames [C, H, W] (UNet), 1-D fields [C, X] (UNet1d)
CONVOLUTIONS: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: Conv2d}


def _conv3(c_in: int, c_out: int, padding_mode: str, stride: int = 1, spatial_dims: int = 2) -> nn.Module:
    return CONVOLUTIONS[spatial_dims](c_in, c_out, 3, stride=stride, padding=1, padding_mode=padding_mode)


def sinusoidal(t: torch.Tensor, width: int) -> torch.Tensor:
    """Transformer-style sin/cos features of a diffusion step t [B, 1] -> [B, width]."""
    half = width // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
    angles = t * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class LabelEmbedding(nn.Module):
    """xi in R^d -> R^width: two dense layers with GELU (the paper's replacement of the time embedding),
    or one linear layer, which keeps the modulation close to affine in xi (Appendix B's interpolant).
    Kind "sinusoidal" is the diffusion-time embedding the lifting label replaces (for the ARDM baseline):
    sin/cos features of the step t (d = 1), then the two GELU layers."""

    def __init__(self, label_dim: int, width: int, kind: str = "mlp") -> None:
        super().__init__()
        self.kind, self.width = kind, width
        self.net: nn.Module
        if kind == "sinusoidal":
            if label_dim != 1:
                raise ValueError(f"a sinusoidal time embedding takes one number per sample, not {label_dim}")
            self.net = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width), nn.GELU())
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(label_dim, width), nn.GELU(), nn.Linear(width, width), nn.GELU())
        elif kind == "linear":
            self.net = nn.Linear(label_dim, width)
        else:
            raise ValueError(f"label embedding must be 'mlp', 'linear' or 'sinusoidal', got {kind!r}")

    def forward(self, xi: torch.Tensor) -> torch.Tensor:
        return self.net(sinusoidal(xi, self.width) if self.kind == "sinusoidal" else xi)


class FiLMResBlock(nn.Module):
    """Pre-norm residual block; the label embedding sets a per-channel scale and shift after the second norm."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int, groups: int, padding_mode: str,
                 spatial_dims: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in, groups), c_in)
        self.conv1 = _conv3(c_in, c_out, padding_mode, spatial_dims=spatial_dims)
        self.norm2 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.conv2 = _conv3(c_out, c_out, padding_mode, spatial_dims=spatial_dims)
        self.film = nn.Linear(embed_dim, 2 * c_out) if embed_dim else None
        skip = (nn.Conv1d, nn.Conv2d)[spatial_dims - 1]
        self.skip = skip(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self._broadcast = (slice(None), slice(None)) + (None,) * spatial_dims  # [B, 2C] -> [B, 2C, 1, ...]

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x)))
        h = self.norm2(h)
        if self.film is not None and emb is not None:
            scale, shift = self.film(emb)[self._broadcast].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(F.gelu(h))
        return self.skip(x) + h


class UNet(nn.Module):
    """F(window, xi): the Markov window stacked as input channels, xi through FiLM in every block.

    Frames are [C, H, W]; subclasses change `spatial_dims` (UNet1d: fields [C, X]) and nothing else.

    Args:
        in_channels: window length m times the channels of one frame.
        out_channels: channels of one frame.
        label_dim: d; 0 gives the deterministic regressor.
        depths: channels per level (a list, or a preset name from DEPTH_PRESETS).
        blocks_per_level: residual blocks per level on the way down (and up).
        mid_blocks: residual blocks at the coarsest level.
        embed_width: width of the label embedding.
        label_embedding: "mlp" (two GELU layers, the paper's), "linear" (one linear layer), or
            "sinusoidal" (a diffusion-time embedding, label_dim 1: the ARDM baseline's).
        groups: GroupNorm groups.
        periodic: circular padding in every convolution (periodic domains).
        label_planes: k > 0 also feeds xi, reshaped to k planes of the frame's size (d = k H W), as input
            channels: a spatial label, whose every pixel can steer its own neighbourhood, besides the
            global FiLM modulation (which moves whole channels at once).
    """

    spatial_dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        label_dim: int,
        depths: list[int] | str = "small",
        blocks_per_level: int = 1,
        mid_blocks: int = 2,
        embed_width: int = 256,
        label_embedding: str = "mlp",
        groups: int = 8,
        periodic: bool = False,
        label_planes: int = 0,
    ) -> None:
        super().__init__()
        dims = self.spatial_dims
        if label_planes < 0 or (label_planes and label_dim == 0):
            raise ValueError(f"label_planes must be >= 0 and needs a label (label_dim > 0), got {label_planes}")
        depths = DEPTH_PRESETS[depths] if isinstance(depths, str) else list(depths)
        pad = "circular" if periodic else "zeros"
        embed = embed_width if label_dim > 0 else 0
        self.label_dim, self.label_planes = label_dim, label_planes
        self.embedding = LabelEmbedding(label_dim, embed_width, label_embedding) if label_dim > 0 else None

        def block(c_in: int, c_out: int) -> FiLMResBlock:
            return FiLMResBlock(c_in, c_out, embed, groups, pad, dims)

        self.stem = _conv3(in_channels + label_planes, depths[0], pad, spatial_dims=dims)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, width in enumerate(depths):
            self.down.append(nn.ModuleList(block(width, width) for _ in range(blocks_per_level)))
            if i + 1 < len(depths):
                self.downsample.append(_conv3(width, depths[i + 1], pad, stride=2, spatial_dims=dims))
        self.mid = nn.ModuleList(block(depths[-1], depths[-1]) for _ in range(mid_blocks))
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(depths))):
            width = depths[i]
            self.up.append(nn.ModuleList(block(2 * width if j == 0 else width, width) for j in range(blocks_per_level)))
            if i > 0:
                self.upsample.append(_conv3(width, depths[i - 1], pad, spatial_dims=dims))
        self.out_norm = nn.GroupNorm(_groups(depths[0], groups), depths[0])
        self.out = _conv3(depths[0], out_channels, pad, spatial_dims=dims)

    def forward(self, x: torch.Tensor, xi: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embedding(xi) if self.embedding is not None else None
        if self.label_planes:
            if xi is None:
                raise StochliftError(f"this model takes labels xi of {self.label_planes} planes; got none")
            x = torch.cat([x, xi.view(x.shape[0], self.label_planes, *x.shape[2:])], dim=1)
        h = self.stem(x)
        skips = []
        for i, blocks in enumerate(self.down):
            for blk in cast(nn.ModuleList, blocks):
                h = blk(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        for blk in self.mid:
            h = blk(h, emb)
        for i, blocks in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in cast(nn.ModuleList, blocks):
                h = blk(h, emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.gelu(self.out_norm(h)))


def check_unet(frame_shape: tuple[int, ...], options: dict, label_dim: int) -> None:
    """User errors in a U-Net's frame shape and options, named before the network is built."""
    depths = options.get("depths", "small")
    if isinstance(depths, str) and depths not in DEPTH_PRESETS:
        raise StochliftError(f"unknown U-Net depth preset {depths!r}; presets: {sorted(DEPTH_PRESETS)}")
    levels = len(DEPTH_PRESETS[depths] if isinstance(depths, str) else depths)
    factor = 2 ** (levels - 1)
    if any(s % factor for s in frame_shape[1:]):
        raise StochliftError(f"a U-Net with {levels} levels needs sizes divisible by {factor}, got {frame_shape[1:]}")
    planes, pixels = options.get("label_planes", 0), math.prod(frame_shape[1:])
    if planes and label_dim == 0:
        raise StochliftError("model.options.label_planes lays out the label as planes: with model.label_dim=0 "
                             "(no label) set model.options.label_planes=0")
    if planes and label_dim != planes * pixels:
        raise StochliftError(f"model.options.label_planes={planes} reshapes the label into {planes} planes of "
                             f"{'x'.join(map(str, frame_shape[1:]))}: set model.label_dim={planes * pixels}, "
                             f"not {label_dim}")
