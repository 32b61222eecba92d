"""The lifting labels: one fixed xi ~ N(0, I_d) per training pair, and fresh ones at sampling time.

Every random stream is derived from the run's seed and a purpose name, so labels, batch order and
sampling noise are reproducible independently of each other (and after a resume).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from stochlift.errors import StochliftError


def stream_seed(seed: int, purpose: str, *extra: int) -> int:
    """A 63-bit seed for one named random stream of a run (labels, batches, sampling, ...)."""
    if int(seed) < 0 or any(int(e) < 0 for e in extra):
        raise StochliftError(f"seeds must be >= 0, got {seed}"
                             + (f" (stream {purpose!r}, {list(extra)})" if extra else ""))
    entropy = [int(seed), zlib.crc32(purpose.encode()), *map(int, extra)]
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> np.uint64(1))


def training_labels(n_pairs: int, label_dim: int, seed: int) -> torch.Tensor:
    """The label bank [n_pairs, d]: drawn once, kept for the whole run (Algorithm 1).

    It is a pure function of (n_pairs, d, seed), so a resumed run rebuilds exactly the same labels
    instead of storing them.
    """
    generator = torch.Generator().manual_seed(stream_seed(seed, "labels"))
    return torch.randn(n_pairs, label_dim, generator=generator)


def batch_indices(n_pairs: int, batch_size: int, seed: int, step: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Training pairs of one step, with replacement, uniform or with probabilities `weights` (summing to 1);
    a function of (seed, step) alone, so resume is exact."""
    rng = np.random.default_rng(stream_seed(seed, "batches", step))
    return rng.integers(0, n_pairs, batch_size) if weights is None else rng.choice(n_pairs, batch_size, p=weights)
