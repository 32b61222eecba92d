"""Exact Wasserstein-2 distance between 1-D empirical measures.

The metrics compare ensembles in distribution (samples are not paired), and every quantity of interest
is scalar, so the exact 1-D formula applies: W2^2 = integral over q in [0, 1] of
(F_a^{-1}(q) - F_b^{-1}(q))^2, with F^{-1} the piecewise constant quantile function of each sample.

Both quantile functions are constant between the breakpoints {i/n} and {j/m}. Scaling the unit interval
by n*m makes those breakpoints the integers {i*m} and {j*n}, so the merged grid, the interval weights and
the sorted-sample index on each interval are all exact integer arithmetic (no float rounding can pick the
wrong order statistic). With n == m the grid is {i*n} and the formula reduces to
sqrt(mean((sort(a) - sort(b))^2)).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from stochlift.errors import StochliftError

__all__ = ["wasserstein_1d", "wasserstein_1d_per_column"]


def _as_samples(x: ArrayLike, name: str, ndim: int) -> np.ndarray:
    """Float64 array of the given rank with at least one finite sample, else StochliftError."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim:
        raise StochliftError(f"{name} must be a {ndim}-D array of samples, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise StochliftError(f"{name} is empty: the Wasserstein distance needs at least one sample")
    if not np.all(np.isfinite(arr)):
        raise StochliftError(f"{name} contains NaN or Inf values")
    return arr


def _merged_quantile_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index into sorted a, index into sorted b, and weight of each interval of the merged grid.

    Interval k is [left_k, left_{k+1}) in units of 1/(n*m); on it F_a^{-1} is the (left_k // m)-th
    order statistic of a and F_b^{-1} the (left_k // n)-th of b.
    """
    total = n * m
    left = np.union1d(np.arange(n, dtype=np.int64) * m, np.arange(m, dtype=np.int64) * n)
    weights = np.diff(np.append(left, total)) / total
    return left // m, left // n, weights


def wasserstein_1d_per_column(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """W2 between the empirical measures of column j of `a` [n, k] and column j of `b` [m, k], for each j.

    Vectorised over columns: the merged quantile grid depends only on n and m, so it is built once.
    """
    a = _as_samples(a, "a", ndim=2)
    b = _as_samples(b, "b", ndim=2)
    if a.shape[1] != b.shape[1]:
        raise StochliftError(f"a and b must have the same number of columns, got shapes {a.shape} and {b.shape}")
    idx_a, idx_b, weights = _merged_quantile_grid(a.shape[0], b.shape[0])
    diff = np.sort(a, axis=0)[idx_a] - np.sort(b, axis=0)[idx_b]
    return np.sqrt(weights @ (diff * diff))


def wasserstein_1d(a: ArrayLike, b: ArrayLike) -> float:
    """W2 between the empirical measures of two 1-D samples of any sizes (>= 1 each)."""
    a = _as_samples(a, "a", ndim=1)
    b = _as_samples(b, "b", ndim=1)
    return float(wasserstein_1d_per_column(a[:, None], b[:, None])[0])
