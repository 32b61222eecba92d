"""Ensemble scores of generated trajectories against true ones, per time step, streaming over files:
setting (a), and what both settings share (setting (b), forecasting, is in `stochlift.metrics.forecast`).

Two evaluation settings (all scores from `stochlift.metrics.ensemble`, on frames flattened to C*H*W values,
in the file's stored units):

(a) Distribution matching from a shared initial condition (the paper's setting): n_g generated trajectories
    and n_r true trajectories all start from the same initial frames and are not paired. At each time t
    every true trajectory is treated as one observation drawn from the law the generated ensemble forecasts,
    and the ensemble scores are averaged over the true trajectories:
      crps             mean over true j and grid points of CRPS_fair(generated_t, true_{j,t})
      energy_score     mean over true j of ES_fair(generated_t, true_{j,t}) (whole fields)
      energy_distance  unbiased 2 E||G - R|| - E||G - G'|| - E||R - R'|| (0 in expectation iff same law)
      sliced_w2        sliced W2 between the two ensembles of whole fields (both as samples)
      spread, skill    sqrt(mean member variance), RMSE of the generated mean against each true trajectory
      spread_skill     spread / skill * sqrt((n_g + 1) / n_g), the spread-skill ratio (1 is calibrated)
      rank histogram   rank of each true trajectory among the n_g generated members, n_g + 1 bins
    A calibrated generator (generated and true laws equal) scores ratio ~1 and a flat histogram.

Per-time curves cover every frame; time averages (`mean`) run over t >= initial_frames, the frames the
model generated (the given frames equal the truth's, or are shared by construction, and would only dilute
the averages). The spread-skill ratio's average is the ratio of the time-averaged variance and squared
error, not a mean of per-time ratios. Rank histograms are only accumulated over t >= initial_frames, on a
fixed random subsample of `rank_points` grid points (all points when rank_points is None or >= C*H*W);
neighbouring points are correlated, so the histogram's counts overstate its effective sample size.

Memory. (a) needs, at each time t, every member of both
ensembles at that time (sorting the pooled values per grid point gives the exact CRPS; Gram matrices give
the energy terms): it reads both files in blocks of frames of all rows (rows read chunk by chunk), the block
sized to `max_block_bytes` but never less than one frame of every member, (n_g + n_r) * C*H*W float32
values, plus float64 working copies of the frame being scored (up to 4x its float32 size). For 10,000 +
10,000 members of 64x64 fields that is ~0.33 GB per frame held and ~1.6 GB at peak with one frame per
block; a smaller max_block_bytes cannot go below it. Time: the pooled sorts cost O((n_g + n_r) log) per
grid point and the Gram matrices O(n_g (n_g + n_r) C*H*W) per frame (quick Wave preset, 256 + 256 members of
32x32 over 64 frames: ~15 s on one CPU core).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from stochlift.data.readers import TrajectoryReader, open_trajectories
from stochlift.errors import StochliftError
from stochlift.metrics.ensemble import (
    _pool_ranks,
    crps_fair_unpaired,
    energy_distance,
    energy_score_fair_unpaired,
    member_variance,
    random_directions,
)
from stochlift.metrics.wasserstein import wasserstein_1d_per_column

__all__ = ["EnsembleScores", "distribution_scores", "distribution_scores_files"]

_RANK_POINTS_KEY = zlib.crc32(b"rank-points")
_RANK_TIES_KEY = zlib.crc32(b"rank-ties")


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@dataclass
class EnsembleScores:
    """Per-time score curves, their averages over t >= initial_frames, and the rank histogram."""

    setting: str  # "distribution" (a) or "forecast" (b)
    ensemble_size: int  # members each truth is scored against: n_generated in (a), K in (b)
    n_truth: int
    n_generated: int
    initial_frames: int
    time: list[float]
    per_time: dict[str, list[float | None]]  # score name -> one value per frame (None: undefined)
    mean: dict[str, float | None]  # score name -> average over t >= initial_frames
    rank_histogram: list[int]  # counts [ensemble_size + 1], summed over t >= initial_frames
    rank_points: int  # grid points per frame that entered the rank histogram
    options: dict[str, Any] = field(default_factory=dict)  # seed, n_projections, ...
    rank_histogram_per_time: np.ndarray | None = field(default=None, repr=False)  # [T, ensemble_size + 1]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (the per-time rank histograms are left out; the sum is kept)."""
        return {
            "setting": self.setting,
            "ensemble_size": self.ensemble_size,
            "n_truth": self.n_truth,
            "n_generated": self.n_generated,
            "initial_frames": self.initial_frames,
            "time": [float(t) for t in self.time],
            "mean": dict(self.mean),
            "per_time": {name: list(values) for name, values in self.per_time.items()},
            "rank_histogram": [int(c) for c in self.rank_histogram],
            "rank_points": self.rank_points,
            "options": dict(self.options),
        }


def _check_initial(initial_frames: int, frames: int) -> None:
    if not 1 <= initial_frames < frames:
        raise StochliftError(f"initial_frames must be between 1 and {frames - 1} (frames - 1), got {initial_frames}")


def _rank_columns(dim: int, rank_points: int | None, seed: int) -> np.ndarray:
    """Sorted flat grid indices that enter the rank histogram: all, or a fixed random subsample."""
    if rank_points is not None and rank_points < 1:
        raise StochliftError(f"rank_points must be >= 1 (or None for every grid point), got {rank_points}")
    if rank_points is None or rank_points >= dim:
        return np.arange(dim)
    rng = np.random.default_rng([seed, _RANK_POINTS_KEY])
    return np.sort(rng.choice(dim, size=rank_points, replace=False))


def _spread_skill(variance: np.ndarray, squared_error: np.ndarray, m: int) -> list[float | None]:
    """Per-entry sqrt(variance / squared error) * sqrt((m + 1) / m); None where the error is zero."""
    out: list[float | None] = []
    for v, e in zip(np.atleast_1d(variance), np.atleast_1d(squared_error)):
        out.append(float(math.sqrt(v / e) * math.sqrt((m + 1) / m)) if e > 0 else None)
    return out


def _time_mean(values: np.ndarray, start: int) -> float | None:
    return _finite_or_none(float(np.mean(values[start:])))


# ------------------------------------------------------------------------- (a) distribution matching


class _DistributionScorer:
    """Scores of setting (a), one frame at a time (frames in any order, each exactly once)."""

    def __init__(self, n_generated: int, n_truth: int, frames: int, dim: int, *, initial_frames: int,
                 n_projections: int, rank_points: int | None, seed: int) -> None:
        if n_generated < 2:
            raise StochliftError(f"the fair scores need at least 2 generated trajectories, got {n_generated}")
        if n_truth < 2:
            raise StochliftError(f"the distribution setting needs at least 2 true trajectories, got {n_truth}")
        _check_initial(initial_frames, frames)
        self.n_generated, self.n_truth, self.frames, self.initial_frames = n_generated, n_truth, frames, initial_frames
        self.seed, self.n_projections = seed, n_projections
        self.directions = random_directions(dim, n_projections, seed)
        self.columns = _rank_columns(dim, rank_points, seed)
        self.values = {name: np.full(frames, np.nan) for name in
                       ("sliced_w2", "crps", "energy_score", "energy_distance", "variance", "squared_error")}
        self.ranks = np.zeros((frames, n_generated + 1), dtype=np.int64)
        self.done = np.zeros(frames, dtype=bool)

    def add_frame(self, t: int, generated: np.ndarray, truth: np.ndarray) -> None:
        """Frame t of every generated [n_g, D] and every true [n_r, D] trajectory."""
        g = np.asarray(generated, dtype=np.float64)
        r = np.asarray(truth, dtype=np.float64)
        if not (np.isfinite(g).all() and np.isfinite(r).all()):
            raise StochliftError(f"frame {t} of the generated or true trajectories contains NaN or Inf")
        v = self.values
        per_direction = wasserstein_1d_per_column(g @ self.directions, r @ self.directions)
        v["sliced_w2"][t] = math.sqrt(float(np.mean(per_direction**2)))
        v["crps"][t] = float(crps_fair_unpaired(g, r).mean())
        v["energy_score"][t] = energy_score_fair_unpaired(g, r)
        v["energy_distance"][t] = energy_distance(g, r)
        v["variance"][t] = float(member_variance(g).mean())
        v["squared_error"][t] = float(np.mean((r - g.mean(axis=0)) ** 2))
        if t >= self.initial_frames:
            rng = np.random.default_rng([self.seed, _RANK_TIES_KEY, t])
            ranks = _pool_ranks(g[:, self.columns], r[:, self.columns], rng)
            self.ranks[t] = np.bincount(ranks.ravel(), minlength=self.n_generated + 1)
        self.done[t] = True

    def result(self, time: ArrayLike) -> EnsembleScores:
        if not self.done.all():
            raise StochliftError(f"frames {np.flatnonzero(~self.done).tolist()} were never scored")
        v, k = self.values, self.initial_frames
        ratio = _spread_skill(v["variance"], v["squared_error"], self.n_generated)
        mean_ratio = _spread_skill(v["variance"][k:].mean(), v["squared_error"][k:].mean(), self.n_generated)[0]
        names = ("sliced_w2", "crps", "energy_score", "energy_distance")
        return EnsembleScores(
            setting="distribution",
            ensemble_size=self.n_generated,
            n_truth=self.n_truth,
            n_generated=self.n_generated,
            initial_frames=k,
            time=[float(x) for x in cast(Iterable[Any], time)],  # [T] times (ArrayLike admits scalars)
            per_time={
                **{name: [float(x) for x in v[name]] for name in names},
                "spread": [float(math.sqrt(x)) for x in v["variance"]],
                "skill": [float(math.sqrt(x)) for x in v["squared_error"]],
                "spread_skill": ratio,
            },
            mean={**{name: _time_mean(v[name], k) for name in names}, "spread_skill": mean_ratio},
            rank_histogram=self.ranks[k:].sum(axis=0).tolist(),
            rank_points=len(self.columns),
            options={"seed": self.seed, "n_projections": self.n_projections},
            rank_histogram_per_time=self.ranks,
        )


def distribution_scores(
    generated: ArrayLike,
    truth: ArrayLike,
    *,
    initial_frames: int = 1,
    n_projections: int = 128,
    rank_points: int | None = 1024,
    seed: int = 0,
    time: ArrayLike | None = None,
) -> EnsembleScores:
    """Setting (a) on in-memory ensembles [n_g, T, *frame] and [n_r, T, *frame] (see the module docstring)."""
    g, r = np.asarray(generated), np.asarray(truth)
    if g.ndim < 3 or g.shape[1:] != r.shape[1:]:
        raise StochliftError(f"generated {g.shape} and truth {r.shape} must both be [n, T, *frame] with equal T, frame")
    frames, dim = g.shape[1], int(np.prod(g.shape[2:]))
    scorer = _DistributionScorer(len(g), len(r), frames, dim, initial_frames=initial_frames,
                                 n_projections=n_projections, rank_points=rank_points, seed=seed)
    for t in range(frames):
        scorer.add_frame(t, g[:, t].reshape(len(g), dim), r[:, t].reshape(len(r), dim))
    return scorer.result(np.arange(frames) if time is None else time)


def _open(file: TrajectoryReader | str | os.PathLike) -> TrajectoryReader:
    return open_trajectories(file)  # our file or The Well's (a reader given is handed back)


def _open_pair(
    truth: TrajectoryReader | str | os.PathLike, generated: TrajectoryReader | str | os.PathLike,
    truth_split: str | None, generated_split: str | None,
) -> tuple[TrajectoryReader, str, TrajectoryReader, str]:
    """Both files and their splits: the truth's 'test' and the generated file's only split by default."""
    ref, gen = _open(truth), _open(generated)
    ref_split = truth_split or ref.default_split("test")
    gen_split = generated_split or gen.default_split("generated")
    for f, s in ((ref, ref_split), (gen, gen_split)):
        if s not in f.splits:
            raise StochliftError(f"{f.path} has no split {s!r}; it has {list(f.splits)}")
    return ref, ref_split, gen, gen_split


def _read_frames(file: TrajectoryReader, split: str, frames: slice, chunk_size: int) -> np.ndarray:
    """Every row of a split for a block of frames, [n, t, C*H*W] float32, read `chunk_size` rows at a time."""
    n, dim = file.splits[split], int(np.prod(file.meta.frame_shape))
    count = len(range(*frames.indices(file.meta.frames)))
    out = np.empty((n, count, dim), dtype=np.float32)
    for r0 in range(0, n, chunk_size):
        r1 = min(r0 + chunk_size, n)
        out[r0:r1] = file.read(split, slice(r0, r1), frames).reshape(r1 - r0, count, dim)
    return out


def _open_matching_pair(
    truth: TrajectoryReader | str | os.PathLike, generated: TrajectoryReader | str | os.PathLike,
    truth_split: str | None, generated_split: str | None, initial_frames: int | None, chunk_size: int,
) -> tuple[TrajectoryReader, str, TrajectoryReader, str, int]:
    """`_open_pair`, checked to hold the same frames, with initial_frames defaulting to the generated file's
    `initial_frames` parameter (written by `stochlift sample`), else 1."""
    if chunk_size < 1:
        raise StochliftError(f"chunk_size must be >= 1, got {chunk_size}")
    ref, ref_split, gen, gen_split = _open_pair(truth, generated, truth_split, generated_split)
    if (ref.meta.frames, tuple(ref.meta.frame_shape)) != (gen.meta.frames, tuple(gen.meta.frame_shape)):
        raise StochliftError(
            f"truth frames {ref.meta.frames} x {list(ref.meta.frame_shape)} and generated frames "
            f"{gen.meta.frames} x {list(gen.meta.frame_shape)} must match"
        )
    if initial_frames is None:
        initial_frames = int(gen.meta.parameters.get("initial_frames", 1))
    return ref, ref_split, gen, gen_split, initial_frames


def _frames_per_block(rows: int, dim: int, frames: int, max_block_bytes: int) -> int:
    """Frames read at once so that `rows` float32 rows of `dim` values fit max_block_bytes (at least one)."""
    return int(np.clip(max_block_bytes // (4 * rows * dim), 1, frames))


def _stream_frames(
    generated: tuple[TrajectoryReader, str], truth: tuple[TrajectoryReader, str], frames: range, block: int,
    chunk_size: int,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(t, every generated row's frame t [n_g, D], every true row's [n_r, D]) for t in `frames` (a step-1
    range), both files read `block` frames at a time."""
    for t0 in range(frames.start, frames.stop, block):
        t1 = min(t0 + block, frames.stop)
        g = _read_frames(*generated, slice(t0, t1), chunk_size)
        r = _read_frames(*truth, slice(t0, t1), chunk_size)
        for t in range(t0, t1):
            yield t, g[:, t - t0], r[:, t - t0]
        del g, r


def distribution_scores_files(
    truth: TrajectoryReader | str | os.PathLike,
    generated: TrajectoryReader | str | os.PathLike,
    *,
    truth_split: str | None = None,
    generated_split: str | None = None,
    initial_frames: int | None = None,
    chunk_size: int = 64,
    max_block_bytes: int = 256 << 20,
    n_projections: int = 128,
    rank_points: int | None = 1024,
    seed: int = 0,
) -> EnsembleScores:
    """Setting (a) on two trajectory files, streamed in blocks of frames (see the module docstring's Memory).

    Splits default to the truth file's 'test' and the generated file's only split; initial_frames defaults
    to the generated file's `initial_frames` attribute (written by `stochlift sample`), else 1.
    """
    ref, ref_split, gen, gen_split, initial_frames = _open_matching_pair(
        truth, generated, truth_split, generated_split, initial_frames, chunk_size)
    n_g, n_r, frames = gen.splits[gen_split], ref.splits[ref_split], ref.meta.frames
    dim = int(np.prod(ref.meta.frame_shape))
    scorer = _DistributionScorer(n_g, n_r, frames, dim, initial_frames=initial_frames,
                                 n_projections=n_projections, rank_points=rank_points, seed=seed)
    block = _frames_per_block(n_g + n_r, dim, frames, max_block_bytes)
    for t, g, r in _stream_frames((gen, gen_split), (ref, ref_split), range(frames), block, chunk_size):
        scorer.add_frame(t, g, r)
    scores = scorer.result(ref.meta.time)
    scores.options.update(truth_split=ref_split, generated_split=gen_split, frames_per_block=block)
    return scores


# ------------------------------------------------------------------------------------- (b) forecasting
