"""Ensemble scores in the forecasting setting (b), streaming over files; setting (a) and the shared
score record are in `stochlift.metrics.distribution`; rolling a model out for it is
`stochlift.evaluation.forecast`.

(b) Forecasting: K samples per held-out true trajectory, each rolled out from that trajectory's own first
    `initial_frames` frames; every truth is scored against its own K-member ensemble and the scores are
    averaged over the true trajectories (spread-skill: ratio of the averaged variance and squared error).
    File convention: a generated file for this setting holds K samples per truth row, in truth order:
    generated rows i*K .. i*K + K - 1 belong to truth row i (`write_forecast_samples` writes one).

Per-time curves cover every frame; time averages (`mean`) run over t >= initial_frames, the frames the
model generated (the given frames equal the truth's, or are shared by construction, and would only dilute
the averages). The spread-skill ratio's average is the ratio of the time-averaged variance and squared
error, not a mean of per-time ratios. Rank histograms are only accumulated over t >= initial_frames, on a
fixed random subsample of `rank_points` grid points (all points when rank_points is None or >= C*H*W);
neighbouring points are correlated, so the histogram's counts overstate its effective sample size.

Memory. (b) streams the truth in chunks of `chunk_size` trajectories: it holds one chunk, its K samples per
truth and one rollout batch, never the whole file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.metrics.distribution import (
    _RANK_TIES_KEY,
    EnsembleScores,
    _check_initial,
    _open_pair,
    _rank_columns,
    _spread_skill,
    _time_mean,
)
from stochlift.metrics.ensemble import (
    crps_fair,
    energy_score_fair,
    member_variance,
)

__all__ = ["ForecastAccumulator", "forecast_scores_files"]

class ForecastAccumulator:
    """Setting (b): add chunks of true trajectories with their K-member ensembles, then call `result()`.

    Only float64 running sums per time ([T] values and [T, K + 1] rank counts) are kept between chunks.
    """

    def __init__(self, frames: int, samples_per_trajectory: int, *, initial_frames: int = 1,
                 rank_points: int | None = 1024, seed: int = 0) -> None:
        if samples_per_trajectory < 2:
            raise StochliftError(f"the fair scores need >= 2 samples per trajectory, got {samples_per_trajectory}")
        _check_initial(initial_frames, frames)
        self.frames, self.k, self.initial_frames = frames, samples_per_trajectory, initial_frames
        self.rank_points, self.seed = rank_points, seed
        self.columns: np.ndarray | None = None
        self.frame_shape: tuple[int, ...] | None = None
        self.sums = {name: np.zeros(frames) for name in ("crps", "energy_score", "variance", "squared_error")}
        self.ranks = np.zeros((frames, samples_per_trajectory + 1), dtype=np.int64)
        self.n = 0
        self.points = 0

    def add(self, truth: ArrayLike, ensemble: ArrayLike, first_row: int) -> None:
        """truth [c, T, *frame] (rows first_row .. first_row + c - 1) and ensemble [c, K, T, *frame]."""
        tr, en = np.asarray(truth), np.asarray(ensemble)
        c = tr.shape[0]
        if tr.ndim < 3 or en.shape != (c, self.k, *tr.shape[1:]) or tr.shape[1] != self.frames:
            raise StochliftError(
                f"truth must be [c, {self.frames}, *frame] and ensemble [c, {self.k}, {self.frames}, *frame]; "
                f"got {tr.shape} and {en.shape}"
            )
        if self.frame_shape is None:
            self.frame_shape = tr.shape[2:]
            self.points = int(np.prod(self.frame_shape))
            self.columns = _rank_columns(self.points, self.rank_points, self.seed)
        elif tr.shape[2:] != self.frame_shape:
            raise StochliftError(f"frames of shape {tr.shape[2:]} after frames of shape {self.frame_shape}")
        if c == 0:
            return
        dim, s = self.points, self.sums
        for t in range(self.frames):  # one time at a time: float64 temporaries are [K, c, D]
            y = tr[:, t].reshape(c, dim).astype(np.float64)
            x = np.moveaxis(en[:, :, t].reshape(c, self.k, dim), 1, 0).astype(np.float64)
            s["crps"][t] += float(crps_fair(x, y).sum())
            s["energy_score"][t] += float(energy_score_fair(x, y).sum())
            s["variance"][t] += float(member_variance(x).sum())
            s["squared_error"][t] += float(np.sum((x.mean(axis=0) - y) ** 2))
            if t >= self.initial_frames:
                self._add_ranks(t, x[:, :, self.columns], y[:, self.columns], first_row)
        self.n += c

    def _add_ranks(self, t: int, members: np.ndarray, truth: np.ndarray, first_row: int) -> None:
        """Ranks [c, S]; ties are broken by a generator keyed on (seed, row, t), so chunking never matters."""
        ranks = (members < truth).sum(axis=0)
        ties = (members == truth).sum(axis=0)
        for i in np.flatnonzero(ties.any(axis=1)):
            rng = np.random.default_rng([self.seed, _RANK_TIES_KEY, first_row + int(i), t])
            ranks[i] += rng.integers(0, ties[i] + 1)
        self.ranks[t] += np.bincount(ranks.ravel(), minlength=self.k + 1)

    def result(self, time: ArrayLike | None = None, n_generated: int | None = None) -> EnsembleScores:
        if self.n == 0:
            raise StochliftError("no true trajectories were given")
        s, k, kk = self.sums, self.initial_frames, self.k
        crps = s["crps"] / (self.n * self.points)
        es = s["energy_score"] / self.n
        variance = s["variance"] / (self.n * self.points)
        squared_error = s["squared_error"] / (self.n * self.points)
        return EnsembleScores(
            setting="forecast",
            ensemble_size=kk,
            n_truth=self.n,
            n_generated=n_generated if n_generated is not None else self.n * kk,
            initial_frames=k,
            time=[float(x) for x in (np.arange(self.frames) if time is None else cast(Iterable[Any], time))],
            per_time={
                "crps": [float(x) for x in crps],
                "energy_score": [float(x) for x in es],
                "spread": [float(math.sqrt(x)) for x in variance],
                "skill": [float(math.sqrt(x)) for x in squared_error],
                "spread_skill": _spread_skill(variance, squared_error, kk),
            },
            mean={
                "crps": _time_mean(crps, k),
                "energy_score": _time_mean(es, k),
                "spread_skill": _spread_skill(variance[k:].mean(), squared_error[k:].mean(), kk)[0],
            },
            rank_histogram=self.ranks[k:].sum(axis=0).tolist(),
            rank_points=len(cast(np.ndarray, self.columns)),  # set by the first add (self.n > 0)
            options={"seed": self.seed},
            rank_histogram_per_time=self.ranks,
        )


def forecast_scores_files(
    truth: TrajectoryFile | str | os.PathLike,
    generated: TrajectoryFile | str | os.PathLike,
    *,
    samples_per_trajectory: int | None = None,
    truth_split: str | None = None,
    generated_split: str | None = None,
    initial_frames: int | None = None,
    chunk_size: int = 64,
    rank_points: int | None = 1024,
    seed: int = 0,
) -> EnsembleScores:
    """Setting (b) on a generated file with K samples per truth row in truth order (rows i*K .. i*K + K - 1).

    K and initial_frames default to the generated file's `samples_per_trajectory` and `initial_frames`
    attributes (written by `write_forecast_samples`). The generated file may be shorter in time than the
    truth; the truth's first frames are scored.
    """
    ref, ref_split, gen, gen_split = _open_pair(truth, generated, truth_split, generated_split)
    params = gen.meta.parameters
    k = int(samples_per_trajectory or params.get("samples_per_trajectory", 0))
    if k < 1:
        raise StochliftError(
            f"{gen.path} does not say how many samples it holds per truth: pass samples_per_trajectory"
        )
    initial_frames = int(initial_frames if initial_frames is not None else params.get("initial_frames", 1))
    n, frames = ref.splits[ref_split], gen.meta.frames
    if gen.splits[gen_split] != n * k:
        raise StochliftError(
            f"{gen.path} split {gen_split!r} has {gen.splits[gen_split]} rows; {n} truths x {k} samples need {n * k}"
        )
    if gen.meta.frame_shape != ref.meta.frame_shape or frames > ref.meta.frames:
        raise StochliftError(
            f"generated frames {frames} x {list(gen.meta.frame_shape)} do not fit the truth's "
            f"{ref.meta.frames} x {list(ref.meta.frame_shape)}"
        )
    if chunk_size < 1:
        raise StochliftError(f"chunk_size must be >= 1, got {chunk_size}")
    accumulator = ForecastAccumulator(frames, k, initial_frames=initial_frames, rank_points=rank_points, seed=seed)
    for i0 in range(0, n, chunk_size):
        i1 = min(i0 + chunk_size, n)
        chunk = ref.read(ref_split, slice(i0, i1), slice(0, frames))
        samples = gen.read(gen_split, slice(i0 * k, i1 * k))
        accumulator.add(chunk, samples.reshape(i1 - i0, k, *samples.shape[1:]), first_row=i0)
    scores = accumulator.result(ref.meta.time[:frames])
    scores.options.update(truth_split=ref_split, generated_split=gen_split)
    return scores
