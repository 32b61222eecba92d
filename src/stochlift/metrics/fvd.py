"""Fréchet Video Distance: the Fréchet distance between Gaussian fits of I3D features of two video sets.

    FVD = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

The features are the 400 Kinetics logits averaged over time (before softmax), as in the reference FVD
code (Unterthiner et al. 2019, anchors.md section 3); the 1024-d pre-logit features are available too.
Covariances are unbiased (divided by n - 1), as in tfgan's frechet_classifier_distance_from_activations.
Everything streams: features are computed batch by batch and folded into running Gaussian statistics,
so memory is bounded by one batch of videos, whatever the size of the sets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from stochlift.data.readers import TrajectoryReader
from stochlift.errors import StochliftError

FEATURE_KINDS = ("logits", "features")
# A function from videos [B, T, C, H, W] in [0, 1] to features [B, d]; the I3D one, or a stand-in in tests.
Extractor = Callable[[np.ndarray], np.ndarray]


class GaussianStats:
    """Running mean and covariance of feature vectors (Chan et al.'s pairwise update, float64)."""

    def __init__(self, dim: int | None = None) -> None:
        self.n = 0
        self.mean = np.zeros(dim) if dim else None
        self._m2 = np.zeros((dim, dim)) if dim else None  # sum of outer products of deviations

    def add(self, features: np.ndarray) -> None:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise StochliftError(f"features must be [n, d], got shape {list(x.shape)}")
        if len(x) == 0:
            return
        if self.mean is None:
            self.mean, self._m2 = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
        if x.shape[1] != len(self.mean):
            raise StochliftError(
                f"features of dimension {x.shape[1]} added to statistics of dimension {len(self.mean)}"
            )
        m = len(x)
        batch_mean = x.mean(axis=0)
        centred = x - batch_mean
        delta = batch_mean - self.mean
        total = self.n + m
        self._m2 += centred.T @ centred + np.outer(delta, delta) * (self.n * m / total)
        self.mean = self.mean + delta * (m / total)
        self.n = total

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise StochliftError(f"a covariance needs at least 2 videos, got {self.n}")
        assert self._m2 is not None  # set by the first add of a nonempty batch
        return self._m2 / (self.n - 1)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative round-off -> 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)) for covariance matrices C1, C2.

    Tr((C1 C2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
    C1^(1/2) C2 C1^(1/2) (same eigenvalues as C1 C2), which stays real and stable for singular covariances
    (fewer videos than feature dimensions), where scipy.linalg.sqrtm can return complex noise.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise StochliftError(
            f"mismatched Gaussian shapes: means {mu1.shape}, {mu2.shape}; covariances {cov1.shape}, {cov2.shape}"
        )
    if not all(np.isfinite(a).all() for a in (mu1, mu2, cov1, cov2)):
        raise StochliftError("the video features hold NaN or Inf (broken feature weights or videos); no FVD")
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    eigen = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_root = float(np.sqrt(np.clip(eigen, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_root)


def fvd_from_stats(real: GaussianStats, generated: GaussianStats) -> float:
    assert real.mean is not None and generated.mean is not None
    return frechet_distance(real.mean, real.cov, generated.mean, generated.cov)


def fvd_of_features(real: np.ndarray, generated: np.ndarray) -> float:
    """FVD of two feature sets [n, dim] held in memory (one Gaussian fit each)."""
    a, b = GaussianStats(), GaussianStats()
    a.add(real)
    b.add(generated)
    return fvd_from_stats(a, b)


def fvd_bootstrap(real: np.ndarray, generated: Sequence[np.ndarray], draws: int = 200, seed: int = 0) -> np.ndarray:
    """FVD of each generated feature set over `draws` resamples of the rows, [draws, len(generated)].

    Row i of every set belongs to test video i (its real clip and each model's clip from the same start), so
    a resample draws videos with replacement and keeps the pairs: every set sees the same resamples, and the
    share of resamples in which one set's FVD is below another's is a paired comparison. The std of a
    column is that FVD's sampling error over the test videos.
    """
    if any(len(g) != len(real) for g in generated):
        raise StochliftError(f"paired bootstrap needs one generated clip per real one ({len(real)}), got "
                             f"{[len(g) for g in generated]}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        rows = rng.integers(0, len(real), len(real))
        values.append([fvd_of_features(real[rows], g[rows]) for g in generated])
    return np.array(values)


# ----------------------------------------------------------------------------- I3D feature extraction


@dataclass
class I3DExtractor:
    """Videos [B, T, C, H, W] in [0, 1] -> I3D features, `batch_size` clips per network call.

    feature "logits" (400, the FVD standard) or "features" (1024, pre-logits); resize "tf1" (the reference FVD
    code's tf.image.resize_bilinear) or "half-pixel" (PyTorch / TF2 convention); quantize: round values to
    1/255 steps first, as if every video were stored as uint8 (real uint8 videos are unchanged by it).
    """

    model: torch.nn.Module
    device: torch.device
    batch_size: int = 16
    feature: str = "logits"
    resize: str = "tf1"
    quantize: bool = True

    @classmethod
    def from_weights(cls, path: str | os.PathLike, *, device: str = "cpu", **options) -> I3DExtractor:
        from stochlift.metrics.i3d import load_i3d

        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           "cpu" if device == "auto" else device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise StochliftError(f"device {device!r} asked for I3D, but torch sees no CUDA GPU")
        return cls(model=load_i3d(path, dev), device=dev, **options)

    def __post_init__(self) -> None:
        if self.feature not in FEATURE_KINDS:
            raise StochliftError(f"FVD feature must be one of {list(FEATURE_KINDS)}, got {self.feature!r}")
        if self.batch_size < 1:
            raise StochliftError(f"I3D batch size must be positive, got {self.batch_size}")

    @torch.inference_mode()
    def __call__(self, videos: np.ndarray) -> np.ndarray:
        from stochlift.metrics.i3d import preprocess

        out = []
        flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        if self.device.type == "cuda":  # TF32 convolutions would move the logits by ~1e-2: keep full float32
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            for start in range(0, len(videos), self.batch_size):
                batch = torch.as_tensor(np.asarray(videos[start : start + self.batch_size]), device=self.device)
                if self.quantize:
                    batch = quantize_unit(batch)
                result = self.model(preprocess(batch, resize=self.resize))
                out.append(getattr(result, self.feature).double().cpu().numpy())
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
        return np.concatenate(out) if out else np.zeros((0, 0))


def quantize_unit(videos: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to multiples of 1/255: what storing as a uint8 video would keep."""
    return torch.round(videos.float().clamp(0.0, 1.0) * 255.0) / 255.0


def stats_of(batches: Iterable[np.ndarray], extractor: Extractor) -> GaussianStats:
    """Gaussian statistics of the features of a stream of video batches [b, T, C, H, W]."""
    stats = GaussianStats()
    for batch in batches:
        stats.add(extractor(batch))
    return stats


def file_clips(file: TrajectoryReader, split: str, frames: slice, chunk_size: int = 16,
               rows: int | None = None) -> Iterator[np.ndarray]:
    """Clips [b, t, C, H, W] (values in [0, 1]) of the first `rows` rows of a split, `chunk_size` at a time."""
    n = file.splits[split] if rows is None else rows
    for start in range(0, n, chunk_size):
        yield file.read(split, slice(start, min(start + chunk_size, n)), frames)


def fvd_files(
    reference: TrajectoryReader, generated: TrajectoryReader, extractor: Extractor, *, reference_split: str,
    generated_split: str, frames: slice, chunk_size: int = 16,
) -> tuple[float, int, int]:
    """FVD between the clips `frames` of two files' splits; returns (fvd, real clips, generated clips)."""
    real = stats_of(file_clips(reference, reference_split, frames, chunk_size), extractor)
    fake = stats_of(file_clips(generated, generated_split, frames, chunk_size), extractor)
    return fvd_from_stats(real, fake), real.n, fake.n
