"""Probabilistic scores of an ensemble x_1..x_M against a truth y (pure numpy, float64 arithmetic).

Conventions shared by every function here:
- The ensemble axis is axis 0: `ensemble` is [M, ...] and `truth` has the shape of one member.
- CRPS and energy score use the fair (unbiased) estimator, which scores a finite ensemble as if it had
  been drawn from its forecast distribution, so a small calibrated ensemble is not penalised for its size:
      CRPS_fair = mean_i |x_i - y| - 1/(2 M (M-1)) sum_{i,j} |x_i - x_j|
      ES_fair   = mean_i ||x_i - y|| - 1/(2 M (M-1)) sum_{i,j} ||x_i - x_j||   (L2 over the whole field)
  Both need M >= 2. In one dimension ES_fair equals CRPS_fair.
- Spread-skill ratio = sqrt(mean of the ensemble variance (ddof 1)) / RMSE of the ensemble mean, times
  sqrt((M + 1) / M), so a calibrated finite ensemble (truth exchangeable with the members) scores 1.
- Rank of the truth = number of members below it, ties broken uniformly at random: 0..M, M + 1 bins.
- Sliced W2 = sqrt(mean over random unit directions theta of W2(theta . x, theta . y)^2), the exact 1-D W2
  of `stochlift.metrics.wasserstein` on each projection (the samples are unpaired, of any sizes).

The "unpaired" functions score several observations (e.g. true trajectories from the same initial condition)
against one ensemble and average over the observations; they use sorting and Gram matrices, so no
[M, M, D] array of pairwise differences is ever built.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from stochlift.errors import StochliftError
from stochlift.metrics.wasserstein import wasserstein_1d_per_column

__all__ = [
    "crps_fair",
    "crps_fair_unpaired",
    "energy_distance",
    "energy_score_fair",
    "energy_score_fair_unpaired",
    "ensemble_ranks",
    "member_variance",
    "random_directions",
    "rank_histogram",
    "sliced_wasserstein2",
    "spread_skill_ratio",
    "spread_skill_terms",
]

_WORK_BYTES = 32 << 20  # target size of the float64 temporaries of one column or row block


def _members(ensemble: ArrayLike, truth: ArrayLike, min_members: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ensemble [M, ...] and truth [...] of matching shapes, finite, with M >= min_members."""
    ens = np.asarray(ensemble, dtype=np.float64)
    obs = np.asarray(truth, dtype=np.float64)
    if ens.ndim < 1 or ens.shape[1:] != obs.shape:
        raise StochliftError(f"ensemble must be [M, *truth.shape]; got ensemble {ens.shape} and truth {obs.shape}")
    if ens.shape[0] < min_members:
        raise StochliftError(f"the fair scores need an ensemble of at least {min_members} members, got {ens.shape[0]}")
    if not (np.isfinite(ens).all() and np.isfinite(obs).all()):
        raise StochliftError("ensemble or truth contains NaN or Inf values")
    return ens, obs


def _samples(x: ArrayLike, name: str, min_rows: int = 1) -> np.ndarray:
    """Float64 [n, D] array of finite samples with n >= min_rows."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise StochliftError(f"{name} must be [n_samples, D], got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise StochliftError(f"{name} needs at least {min_rows} samples, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise StochliftError(f"{name} contains NaN or Inf values")
    return arr


def _sorted_spread(sorted_members: np.ndarray) -> np.ndarray:
    """1/(2 M (M-1)) sum_{i,j} |x_i - x_j| from members sorted along axis 0.

    sum_{i,j} |x_i - x_j| = 2 sum_i (2i - M - 1) x_(i) with i = 1..M, an O(M) weighted sum after the sort.
    """
    m = sorted_members.shape[0]
    weights = 2.0 * np.arange(1, m + 1) - m - 1
    return np.tensordot(weights, sorted_members, axes=(0, 0)) / (m * (m - 1))


def crps_fair(ensemble: ArrayLike, truth: ArrayLike) -> np.ndarray:
    """Fair CRPS per point: ensemble [M, ...], truth [...] -> [...] (float64), M >= 2.

    CRPS_fair = mean_i |x_i - y| - 1/(2 M (M-1)) sum_{i,j} |x_i - x_j|, the second term from the sorted
    members (O(M log M) per point, no pairwise array). Members are centred first (the score is translation
    invariant) so large offsets do not cost precision.
    """
    ens, obs = _members(ensemble, truth)
    centre = ens.mean(axis=0)
    skill = np.abs(ens - obs).mean(axis=0)
    members_last = np.moveaxis(ens - centre, 0, -1).copy()  # sort along a contiguous axis: much faster
    members_last.sort(axis=-1)
    return skill - _sorted_spread(np.moveaxis(members_last, -1, 0))


def energy_score_fair(ensemble: ArrayLike, truth: ArrayLike) -> np.ndarray:
    """Fair energy score over whole fields: ensemble [M, ..., D], truth [..., D] -> [...] (float64), M >= 2.

    ES_fair = mean_i ||x_i - y|| - 1/(2 M (M-1)) sum_{i,j} ||x_i - x_j||, L2 norm over the last axis; leading
    axes after the ensemble axis are batch axes (e.g. trajectories, times). The pairwise term loops over
    members, so memory stays O(M * batch * D) like the ensemble itself. In 1-D (D = 1) it equals CRPS_fair.
    """
    ens, obs = _members(ensemble, truth)
    if ens.ndim < 2:
        raise StochliftError("energy_score_fair needs fields: ensemble [M, ..., D] and truth [..., D]")
    m = ens.shape[0]
    skill = np.linalg.norm(ens - obs, axis=-1).mean(axis=0)
    pair_sum = np.zeros(obs.shape[:-1])
    for i in range(m - 1):
        pair_sum += np.linalg.norm(ens[i + 1 :] - ens[i], axis=-1).sum(axis=0)
    return skill - pair_sum / (m * (m - 1))  # sum over i < j is half the sum over all (i, j)


def member_variance(ensemble: np.ndarray) -> np.ndarray:
    """Unbiased (ddof 1) variance over axis 0, shifted by member 0: exactly 0 when all members are equal.

    var = (sum d_i^2 - (sum d_i)^2 / M) / (M - 1) with d_i = x_i - x_0; the shift keeps the cancellation
    small (x_0 lies within the ensemble), and identical members give d = 0 exactly, not a rounding residue.
    """
    m = ensemble.shape[0]
    d = ensemble - ensemble[0]
    total = d.sum(axis=0)
    return np.maximum((np.einsum("i...,i...->...", d, d) - total * total / m) / (m - 1), 0.0)


def spread_skill_terms(ensemble: ArrayLike, truth: ArrayLike) -> tuple[float, float, int]:
    """(sum of the member variance (ddof 1), sum of squared ensemble-mean errors, number of points).

    Sums over every point of truth's shape, so streaming callers add them up chunk by chunk.
    """
    ens, obs = _members(ensemble, truth)
    variance = member_variance(ens)
    error = ens.mean(axis=0) - obs
    return float(variance.sum()), float(np.sum(error * error)), int(obs.size)


def spread_skill_ratio(ensemble: ArrayLike, truth: ArrayLike) -> float:
    """sqrt(mean var_ddof1) / sqrt(mean (ensemble mean - truth)^2) * sqrt((M+1)/M) over all points of truth.

    Both means run over every point (grid points and any batch axes) before the square roots, as in
    WeatherBench 2. Returns nan when the ensemble mean is exact everywhere (zero skill error).
    """
    m = np.shape(ensemble)[0] if np.ndim(ensemble) else 0
    variance, squared_error, _ = spread_skill_terms(ensemble, truth)
    if squared_error == 0.0:
        return float("nan")
    return float(np.sqrt(variance / squared_error) * np.sqrt((m + 1) / m))


def ensemble_ranks(ensemble: ArrayLike, truth: ArrayLike, rng: np.random.Generator) -> np.ndarray:
    """Rank of the truth among the members per point, 0..M: ensemble [M, ...], truth [...] -> int [...].

    rank = #{x_i < y} + U, U uniform on {0, ..., #{x_i == y}} (random tie-breaking, drawn from `rng`), so
    a truth tied with all members (e.g. a given initial frame) still gets a uniform rank.
    """
    ens, obs = _members(ensemble, truth, min_members=1)
    below = (ens < obs).sum(axis=0)
    ties = (ens == obs).sum(axis=0)
    return below + rng.integers(0, ties + 1)


def rank_histogram(ensemble: ArrayLike, truth: ArrayLike, rng: np.random.Generator) -> np.ndarray:
    """Counts [M + 1] of the truth's rank among the members over all points (see `ensemble_ranks`)."""
    m = np.shape(ensemble)[0]
    return np.bincount(ensemble_ranks(ensemble, truth, rng).ravel(), minlength=m + 1)


# -------------------------------------------------------------------------- unpaired: many observations


def crps_fair_unpaired(ensemble: ArrayLike, observations: ArrayLike) -> np.ndarray:
    """Mean over observations j of CRPS_fair(ensemble, y_j), per point: [M, P] and [N, P] -> [P].

    mean_j CRPS_fair = 1/(M N) sum_{i,j} |x_i - y_j| - 1/(2 M (M-1)) sum_{i,k} |x_i - x_k|. One stable sort
    of the pooled M + N values per point gives both sums: a member at pooled position p pairs with the
    observations before and after it, sum_{i,j} |x_i - y_j| = sum_p z_p (#other-set before p - #other-set
    after p), and tied cross pairs cancel. O((M + N) log(M + N)) per point; column blocks bound memory.
    """
    ens = _samples(ensemble, "ensemble", min_rows=2)
    obs = _samples(observations, "observations")
    if ens.shape[1] != obs.shape[1]:
        raise StochliftError(f"ensemble {ens.shape} and observations {obs.shape} must have the same columns")
    m, n, p = ens.shape[0], obs.shape[0], ens.shape[1]
    out = np.empty(p)
    block = max(1, _WORK_BYTES // (40 * (m + n)))
    position = np.arange(m + n)
    for c0 in range(0, p, block):
        g, y = ens[:, c0 : c0 + block], obs[:, c0 : c0 + block]
        centre = g.mean(axis=0)
        pooled = np.concatenate([g - centre, y - centre]).T.copy()  # [columns, M + N]: sort a contiguous axis
        order = np.argsort(pooled, axis=-1, kind="stable")
        z = np.take_along_axis(pooled, order, axis=-1)
        is_member = order < m
        members_upto = np.cumsum(is_member, axis=-1)  # members at positions <= p
        obs_before = position + 1 - members_upto  # for a member at p: observations before it
        coeff = np.where(is_member, 2 * obs_before - n, 2 * members_upto - m)
        cross = (coeff * z).sum(axis=-1) / (m * n)
        spread = (np.where(is_member, 2 * members_upto - m - 1, 0) * z).sum(axis=-1) / (m * (m - 1))
        out[c0 : c0 + block] = cross - spread
    return out


def _norm_sum(a: np.ndarray, b: np.ndarray, *, same: bool = False) -> float:
    """sum_{i,j} ||a_i - b_j|| over all ordered pairs, from Gram matrices in row blocks (no [n, m, D] array).

    ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b: callers centre the data first so the cancellation stays small.
    With same=True (b is a), the diagonal is exactly 0.
    """
    sq_a, sq_b = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    block = max(1, _WORK_BYTES // (8 * max(len(b), 1)))
    total = 0.0
    for r0 in range(0, len(a), block):
        gram = a[r0 : r0 + block] @ b.T
        squared = sq_a[r0 : r0 + block, None] + sq_b[None, :] - 2.0 * gram
        np.maximum(squared, 0.0, out=squared)  # rounding can dip just below 0
        if same:
            rows = np.arange(len(squared))
            squared[rows, r0 + rows] = 0.0
        total += float(np.sqrt(squared).sum())
    return total


def _unpaired_fields(ensemble: ArrayLike, observations: ArrayLike, min_obs: int) -> tuple[np.ndarray, np.ndarray]:
    ens = _samples(ensemble, "ensemble", min_rows=2)
    obs = _samples(observations, "observations", min_rows=min_obs)
    if ens.shape[1] != obs.shape[1]:
        raise StochliftError(f"ensemble {ens.shape} and observations {obs.shape} must have the same columns")
    centre = ens.mean(axis=0)
    return ens - centre, obs - centre


def energy_score_fair_unpaired(ensemble: ArrayLike, observations: ArrayLike) -> float:
    """Mean over observations j of ES_fair(ensemble, y_j): ensemble [M, D], observations [N, D] -> float.

    = 1/(M N) sum_{i,j} ||x_i - y_j|| - 1/(2 M (M-1)) sum_{i,k} ||x_i - x_k||, via Gram matrices.
    """
    ens, obs = _unpaired_fields(ensemble, observations, min_obs=1)
    m, n = len(ens), len(obs)
    return _norm_sum(ens, obs) / (m * n) - _norm_sum(ens, ens, same=True) / (2 * m * (m - 1))


def energy_distance(x: ArrayLike, y: ArrayLike, *, biased: bool = False) -> float:
    """Energy distance 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| between samples [n, D] and [m, D].

    Unbiased by default: the within-sample means exclude i == k (U-statistics), so it is 0 in expectation
    when both samples come from the same law and can then come out slightly negative; it is > 0 in
    expectation otherwise. biased=True gives the V-statistic (within-sample means over all n^2 pairs, the
    energy distance of the two empirical measures): never negative, and > 0 in expectation even for one
    law, a positive sampling floor that a score relative to its floor can divide by.
    """
    xs, ys = _unpaired_fields(x, y, min_obs=2)
    n, m = len(xs), len(ys)
    within_x, within_y = (n * n, m * m) if biased else (n * (n - 1), m * (m - 1))
    return (
        2.0 * _norm_sum(xs, ys) / (n * m)
        - _norm_sum(xs, xs, same=True) / within_x
        - _norm_sum(ys, ys, same=True) / within_y
    )


def _pool_ranks(pool: np.ndarray, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each value among the pool members, per column, ties at random: [M, S], [N, S] -> int [N, S].

    Equals `ensemble_ranks` with the pool broadcast to every value (same draws from `rng`), but costs one
    stable sort of the M + N pooled values per column instead of M * N comparisons. With the pool first, a
    run of equal values sorts as its pool members, then its values: the pool members at or before a
    value's position are those <= it, and the pool members before its run are those < it.
    """
    m, n, s = pool.shape[0], values.shape[0], pool.shape[1]
    pooled = np.concatenate([pool, values]).T.copy()  # [S, M + N]
    order = np.argsort(pooled, axis=-1, kind="stable")
    z = np.take_along_axis(pooled, order, axis=-1)
    pool_upto = np.cumsum(order < m, axis=-1)
    position = np.broadcast_to(np.arange(m + n), z.shape)
    run_start = np.where(np.concatenate([np.ones((s, 1), bool), z[:, 1:] != z[:, :-1]], axis=1), position, 0)
    run_start = np.maximum.accumulate(run_start, axis=-1)
    pool_before_run = np.where(run_start > 0, np.take_along_axis(pool_upto, np.maximum(run_start - 1, 0), -1), 0)
    is_value = order >= m
    column = np.broadcast_to(np.arange(s)[:, None], z.shape)
    at_most = np.empty((n, s), dtype=np.int64)
    below = np.empty((n, s), dtype=np.int64)
    rows, cols = order[is_value] - m, column[is_value]
    at_most[rows, cols] = pool_upto[is_value]
    below[rows, cols] = pool_before_run[is_value]
    return below + rng.integers(0, at_most - below + 1)


# --------------------------------------------------------------------------------------------- sliced W2


def random_directions(dim: int, n_projections: int = 128, seed: int = 0) -> np.ndarray:
    """[dim, n_projections] unit vectors, uniform on the sphere (normalised Gaussians from default_rng(seed))."""
    if dim < 1 or n_projections < 1:
        raise StochliftError(f"need dim >= 1 and n_projections >= 1, got {dim} and {n_projections}")
    directions = np.random.default_rng(seed).standard_normal((dim, n_projections))
    return directions / np.linalg.norm(directions, axis=0, keepdims=True)


def sliced_wasserstein2(x: ArrayLike, y: ArrayLike, n_projections: int = 128, seed: int = 0) -> float:
    """Sliced W2 between samples x [n, D] and y [m, D] (whole fields flattened to D; any n, m >= 1).

    SW2 = sqrt(mean_k W2(x theta_k, y theta_k)^2) over `random_directions(D, n_projections, seed)`, each
    projection scored with the exact 1-D W2 (`wasserstein_1d_per_column`). A pure shift y = x + v gives
    sqrt(mean_k (theta_k . v)^2), whose expectation over directions is |v| / sqrt(D).
    """
    xs, ys = _samples(x, "x"), _samples(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise StochliftError(f"x {xs.shape} and y {ys.shape} must have the same number of columns")
    directions = random_directions(xs.shape[1], n_projections, seed)
    per_direction = wasserstein_1d_per_column(xs @ directions, ys @ directions)
    return float(np.sqrt(np.mean(per_direction**2)))
