"""Per-time ensemble scores of generated trajectories, each given relative to its sampling floor.

For any state: trajectories [n, T, *state] with a frame a vector [C], a 1-D field [C, X] or a field on a
grid of any dimension [C, H, W], ... (axis 0 of a frame is always the variables/channels). A bare number
means little to a user ("is an energy score of 3.1 good?"); the same score between two halves of the true
ensemble says how small it can get with this many samples, so every score is reported as

    value  the score of a generated ensemble against held-out truth,
    floor  the same score between two independent halves of the truth, at the same sizes,
    ratio  value / floor: 1 is as good as a second sample of the truth; 2 is "twice the sampling noise".

The floor. The truth is split at random (seeded) into a reference half B of n_truth // 2 trajectories and
a half A of m = min(n_generated, n_truth - |B|); G' is a random subset of m generated trajectories. Then
floor = score(A, B) and value = score(G', B): the same ensemble size, the same reference half, so even
the biased estimators below compare like with like. Both are averaged over `n_splits` random splits
(seeded), which cuts the floor's noise; each split draws its own G', so generated trajectories beyond m
still count across splits. `truth_splits` gives the rows, to reproduce any number by hand.

Scores per time t >= initial_frames (the given frames are shared, so they are not scored):
  energy_score     fair energy score over whole frames, mean over the reference trajectories (unpaired)
  crps             fair CRPS, mean over the reference trajectories and every point of the frame
  spread_skill     spread / skill * sqrt((m + 1) / m), as in `stochlift.metrics.distribution` (1 is right)
  rank_deviation   RMS deviation from flat of the rank histogram of the reference among the ensemble,
                   relative to the flat count: sqrt(mean_b (counts_b (m + 1) / total - 1)^2), 0 is flat
  sliced_w2        sliced W2 of whole frames (`n_projections` random directions, the same for both sides)
  energy_distance  the biased (V-statistic) energy distance, 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| of
                   the two empirical measures: a proper divergence with a positive floor
  mean_w2          W2 of the per-trajectory spatial mean of each variable, averaged over the variables
  abs_mean_w2      the same for the spatial mean of |x| (the paper's mass, per variable)
                   For a vector state there is no spatial axis: these are the per-variable marginal W2 of
                   x_c and of |x_c|, averaged over the variables.
  spectrum_error   fields only (grids of >= 4 points per axis): the error in decades of the ensemble-mean
                   radially averaged power spectrum, mean over wavenumber shells (`stochlift.metrics.spectrum`)
  <qoi>_w2         W2 of each user quantity of interest (`stochlift.metrics.qoi`): per time for values
                   [n, T] (only the scored frames), once for a value per trajectory [n]

How to read a ratio. Proper scores (energy score, CRPS) have an ideal ratio of 1 and a compressed scale:
they mostly measure the truth's own spread, so even an ensemble collapsed onto the true mean scores only
about 1.4x its floor (for a Gaussian truth, in any dimension, the energy score of a point at the mean is
E||Y - mu|| and a calibrated ensemble's E||Y - mu|| / sqrt 2), so 1.1x is already a visible error.
Divergences (sliced W2, energy distance, W2 of summaries and QoIs, spectrum error, rank deviation) are
sampling noise at the floor, so a collapsed ensemble's ratio blows up, the more the larger the ensembles
(sliced W2 about 4x with 100 + 100 trajectories per side, 7-9x with 300-500; energy distance 20-100x), and
their ratios separate good from bad models far more sharply, at the price of more noise: two samples of
one law give sliced W2 ratios within about +-0.1 of 1 and energy-distance ratios within +-0.25 (one std,
a few hundred trajectories), the proper scores within +-0.003. Spread-skill is 1 for a calibrated ensemble
on both sides; its ratio < 1 means under-dispersion (0 for a collapsed ensemble). Any ratio can fall a
little below 1 by chance.

Time averages. Each score's `value` and `floor` are means over the scored frames; its headline `ratio` is
the mean over time of the per-time ratios, so late frames (large scores) do not drown early ones: the
criterion "mean over time of the ratios to the floor"; `ratio_of_means` (time-mean value / time-mean
floor) is given beside it as a check, steadier where a per-time floor is tiny (early frames that have
barely left the shared start). Undefined entries (a zero floor) are left out of the means and are None.

Memory (`field_scores_files`): as `distribution_scores_files`, blocks of frames of every row of both files
(at least one frame: (n_g + n_r) * frame float32 values, plus float64 working copies); the QoIs read whole
trajectories in chunks of `chunk_size` rows. Time: 2 * n_splits times the pooled sorts and Gram matrices
of `distribution_scores` per frame, at half the ensemble sizes (256 + 256 trajectories of 32x32, 4
splits: ~2 s per frame on one CPU core, most of it the per-point sorts of CRPS and ranks; fewer
`rank_points` or `n_splits` cut it).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from stochlift.data.readers import TrajectoryReader
from stochlift.errors import StochliftError
from stochlift.metrics.distribution import (
    _frames_per_block,
    _open_matching_pair,
    _rank_columns,
    _spread_skill,
    _stream_frames,
)
from stochlift.metrics.ensemble import (
    _pool_ranks,
    crps_fair_unpaired,
    energy_distance,
    energy_score_fair_unpaired,
    member_variance,
    random_directions,
)
from stochlift.metrics.field_result import FieldScores, Score
from stochlift.metrics.qoi import QoI, evaluate_qoi
from stochlift.metrics.spectrum import log_spectrum_error, radial_power_spectrum, shell_count
from stochlift.metrics.wasserstein import wasserstein_1d, wasserstein_1d_per_column

__all__ = ["FieldScores", "Score", "TruthSplit", "field_scores", "field_scores_files", "truth_splits"]

_SPLITS_KEY = zlib.crc32(b"field-scores-splits")
_RANKS_KEY = zlib.crc32(b"field-scores-ranks")
SIDES = ("value", "floor")  # the model's ensemble G' and the truth's half A, both against the half B


@dataclass(frozen=True)
class TruthSplit:
    """Row indices of one split: the reference half B, the floor's half A and the model's subset G'."""

    reference: np.ndarray  # rows of the truth, |B| = n_truth // 2
    truth_half: np.ndarray  # rows of the truth, disjoint from B, |A| = m
    generated: np.ndarray  # rows of the generated ensemble, |G'| = m


def truth_splits(n_generated: int, n_truth: int, n_splits: int = 4, seed: int = 0) -> list[TruthSplit]:
    """The `n_splits` seeded splits scores and floors are averaged over (see the module docstring)."""
    if n_truth < 4:
        raise StochliftError(f"a floor needs at least 4 true trajectories (two halves of >= 2), got {n_truth}")
    if n_generated < 2:
        raise StochliftError(f"the fair scores need at least 2 generated trajectories, got {n_generated}")
    if n_splits < 1:
        raise StochliftError(f"n_splits must be >= 1, got {n_splits}")
    n_reference = n_truth // 2
    m = min(n_generated, n_truth - n_reference)
    splits = []
    for s in range(n_splits):
        rng = np.random.default_rng([seed, _SPLITS_KEY, s])
        order = rng.permutation(n_truth)
        splits.append(TruthSplit(np.sort(order[:n_reference]), np.sort(order[n_reference : n_reference + m]),
                                 np.sort(rng.choice(n_generated, m, replace=False))))
    return splits


@dataclass
class _Members:
    """What the scores need of one frame of an ensemble, computed once and then taken by rows."""

    flat: np.ndarray  # [n, D] float64
    projected: np.ndarray  # [n, n_projections]
    means: np.ndarray  # [n, C] spatial mean per variable
    abs_means: np.ndarray  # [n, C] spatial mean of |x| per variable
    spectra: np.ndarray | None  # [n, K] power spectrum (mean over variables), fields only

    @classmethod
    def of(cls, frame: np.ndarray, directions: np.ndarray) -> _Members:
        x = np.asarray(frame, dtype=np.float64)
        if not np.isfinite(x).all():
            raise StochliftError("a frame of the generated or true trajectories contains NaN or Inf")
        spatial = tuple(range(2, x.ndim))
        flat = x.reshape(len(x), -1)
        has_spectrum = bool(spatial) and shell_count(x.shape[2:]) >= 1
        return cls(flat, flat @ directions, x.mean(axis=spatial), np.abs(x).mean(axis=spatial),
                   radial_power_spectrum(x, len(spatial)).mean(axis=1) if has_spectrum else None)

    def take(self, rows: np.ndarray) -> _Members:
        return _Members(self.flat[rows], self.projected[rows], self.means[rows], self.abs_means[rows],
                        None if self.spectra is None else self.spectra[rows])


def _rank_deviation(counts: np.ndarray) -> float:
    """RMS relative deviation of a histogram from flat: 0 when every bin holds total / bins."""
    return float(np.sqrt(np.mean((counts * len(counts) / counts.sum() - 1.0) ** 2)))


def _compare(ensemble: _Members, reference: _Members, columns: np.ndarray,
             rng: np.random.Generator) -> tuple[dict[str, float], np.ndarray]:
    """Every frame score of `ensemble` against `reference`, and the rank histogram counts [m + 1]."""
    m = len(ensemble.flat)
    counts = np.bincount(_pool_ranks(ensemble.flat[:, columns], reference.flat[:, columns], rng).ravel(),
                         minlength=m + 1)
    variance = float(member_variance(ensemble.flat).mean())
    squared_error = float(np.mean((reference.flat - ensemble.flat.mean(axis=0)) ** 2))
    spread_skill = _spread_skill(np.array(variance), np.array(squared_error), m)[0]
    scores = {
        "energy_score": energy_score_fair_unpaired(ensemble.flat, reference.flat),
        "crps": float(crps_fair_unpaired(ensemble.flat, reference.flat).mean()),
        "spread_skill": math.nan if spread_skill is None else spread_skill,
        "rank_deviation": _rank_deviation(counts),
        "sliced_w2": math.sqrt(float(np.mean(wasserstein_1d_per_column(ensemble.projected,
                                                                       reference.projected) ** 2))),
        "energy_distance": energy_distance(ensemble.flat, reference.flat, biased=True),
        "mean_w2": float(wasserstein_1d_per_column(ensemble.means, reference.means).mean()),
        "abs_mean_w2": float(wasserstein_1d_per_column(ensemble.abs_means, reference.abs_means).mean()),
    }
    if ensemble.spectra is not None:
        assert reference.spectra is not None  # the same frame shape as the ensemble's, so spectra too
        scores["spectrum_error"] = log_spectrum_error(ensemble.spectra.mean(axis=0), reference.spectra.mean(axis=0))
    return scores, counts


class _FloorScorer:
    """Accumulates every score of both sides over splits and scored frames (frames in any order, once each)."""

    def __init__(self, n_generated: int, n_truth: int, frame_shape: tuple[int, ...], frames: int, *,
                 initial_frames: int, n_splits: int, n_projections: int, rank_points: int | None,
                 seed: int) -> None:
        if len(frame_shape) < 1:
            raise StochliftError("trajectories must be [n, T, *state] with a state of at least one axis "
                                 "([C] for C variables; a single series is [n, T, 1])")
        if not 1 <= initial_frames < frames:
            raise StochliftError(f"initial_frames must be between 1 and {frames - 1} (frames - 1), "
                                 f"got {initial_frames}")
        self.n_generated, self.n_truth, self.frame_shape = n_generated, n_truth, tuple(frame_shape)
        self.frames, self.initial_frames, self.seed = frames, initial_frames, seed
        self.splits = truth_splits(n_generated, n_truth, n_splits, seed)
        dim = int(np.prod(frame_shape))
        self.directions = random_directions(dim, n_projections, seed)
        self.columns = _rank_columns(dim, rank_points, seed)
        self.options = {"n_splits": n_splits, "n_projections": n_projections, "rank_points": len(self.columns),
                        "seed": seed}
        self.m = len(self.splits[0].generated)
        scored = frames - initial_frames
        self.values: dict[str, np.ndarray] = {}  # name -> [n_splits, 2 sides, scored frames]
        self.once: dict[str, np.ndarray] = {}  # name -> [n_splits, 2 sides] (QoIs with one value per trajectory)
        self.histograms = np.zeros((2, self.m + 1), dtype=np.int64)
        self.done = np.zeros(scored, dtype=bool)

    def _store(self, name: str, split: int, side: int, index: int | slice, value: Any) -> None:
        if name not in self.values:
            self.values[name] = np.full((len(self.splits), 2, self.frames - self.initial_frames), np.nan)
        self.values[name][split, side, index] = value

    def add_frame(self, t: int, generated: np.ndarray, truth: np.ndarray) -> None:
        """Frame t >= initial_frames of every generated [n_g, *state] and true [n_r, *state] trajectory."""
        g, r = _Members.of(generated, self.directions), _Members.of(truth, self.directions)
        i = t - self.initial_frames
        for s, split in enumerate(self.splits):
            reference = r.take(split.reference)
            for side, ensemble in enumerate((g.take(split.generated), r.take(split.truth_half))):
                rng = np.random.default_rng([self.seed, _RANKS_KEY, t, s, side])
                scores, counts = _compare(ensemble, reference, self.columns, rng)
                for name, value in scores.items():
                    self._store(name, s, side, i, value)
                self.histograms[side] += counts
        self.done[i] = True

    def add_qoi(self, name: str, generated: np.ndarray, truth: np.ndarray) -> None:
        """A QoI's values of every generated and true trajectory: [n] each, or [n, T] each."""
        key = f"{name}_w2"
        if key in self.values or key in self.once:
            raise StochliftError(f"the quantity of interest {name!r} clashes with the score {key!r}; rename it")
        if generated.ndim != truth.ndim:
            raise StochliftError(f"quantity of interest {name!r} gave [n] for one ensemble and [n, T] for the other")
        for s, split in enumerate(self.splits):
            reference = truth[split.reference]
            for side, ensemble in enumerate((generated[split.generated], truth[split.truth_half])):
                if ensemble.ndim == 1:
                    self.once.setdefault(key, np.full((len(self.splits), 2), np.nan))[s, side] = wasserstein_1d(
                        ensemble, reference)
                else:
                    k = self.initial_frames
                    self._store(key, s, side, slice(None), wasserstein_1d_per_column(ensemble[:, k:], reference[:, k:]))

    def result(self, time: ArrayLike) -> FieldScores:
        if not self.done.all():
            missing = (np.flatnonzero(~self.done) + self.initial_frames).tolist()
            raise StochliftError(f"frames {missing} were never scored")
        scores = {name: Score.from_per_time(v.mean(axis=0)[0], v.mean(axis=0)[1]) for name, v in self.values.items()}
        scores.update({name: Score.from_once(v.mean(axis=0)[0], v.mean(axis=0)[1]) for name, v in self.once.items()})
        scored = range(self.initial_frames, self.frames)
        return FieldScores(
            scores=scores,
            frames=list(scored),
            time=[float(np.asarray(time)[t]) for t in scored],
            state_shape=list(self.frame_shape),
            n_generated=self.n_generated,
            n_truth=self.n_truth,
            ensemble_size=self.m,
            reference_size=len(self.splits[0].reference),
            initial_frames=self.initial_frames,
            rank_histogram={side: self.histograms[j].tolist() for j, side in enumerate(SIDES)},
            options=dict(self.options),
        )


def _check_qoi(qoi: Mapping[str, QoI] | None) -> dict[str, QoI]:
    qoi = dict(qoi or {})
    for name, function in qoi.items():
        if not callable(function):
            raise StochliftError(f"quantity of interest {name!r} is not a function")
    return qoi


def field_scores(
    generated: ArrayLike,
    truth: ArrayLike,
    *,
    initial_frames: int = 1,
    qoi: Mapping[str, QoI] | None = None,
    n_splits: int = 4,
    n_projections: int = 128,
    rank_points: int | None = 1024,
    seed: int = 0,
    time: ArrayLike | None = None,
) -> FieldScores:
    """Scores of in-memory ensembles [n_g, T, *state] and [n_r, T, *state] with floors (module docstring).

    `qoi` maps names to functions of frames [n, T, *state] (see `stochlift.metrics.qoi`); `time` gives the
    physical times of the T frames (default 0..T-1).
    """
    g, r = np.asarray(generated), np.asarray(truth)
    if g.ndim < 2 or g.shape[1:] != r.shape[1:]:
        raise StochliftError(f"generated {g.shape} and truth {r.shape} must both be [n, T, *state] with equal T, state")
    if time is not None and np.shape(time) != (g.shape[1],):
        raise StochliftError(f"time must give one value per frame ({g.shape[1]}), got shape {np.shape(time)}")
    functions = _check_qoi(qoi)
    scorer = _FloorScorer(len(g), len(r), g.shape[2:], g.shape[1], initial_frames=initial_frames,
                          n_splits=n_splits, n_projections=n_projections, rank_points=rank_points, seed=seed)
    for t in range(initial_frames, g.shape[1]):
        scorer.add_frame(t, g[:, t], r[:, t])
    for name, function in functions.items():
        scorer.add_qoi(name, evaluate_qoi(name, function, g), evaluate_qoi(name, function, r))
    return scorer.result(np.arange(g.shape[1]) if time is None else time)


def _qoi_values(file: TrajectoryReader, split: str, functions: dict[str, QoI],
                chunk_size: int) -> dict[str, np.ndarray]:
    """Every QoI of every trajectory of a split, read `chunk_size` whole trajectories at a time."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in functions}
    n = file.splits[split]
    for r0 in range(0, n, chunk_size):
        chunk = file.read(split, slice(r0, min(r0 + chunk_size, n)), slice(None))
        for name, function in functions.items():
            parts[name].append(evaluate_qoi(name, function, chunk))
    return {name: np.concatenate(values) for name, values in parts.items()}


def field_scores_files(
    truth: TrajectoryReader | str | os.PathLike,
    generated: TrajectoryReader | str | os.PathLike,
    *,
    truth_split: str | None = None,
    generated_split: str | None = None,
    initial_frames: int | None = None,
    qoi: Mapping[str, QoI] | None = None,
    n_splits: int = 4,
    chunk_size: int = 64,
    max_block_bytes: int = 256 << 20,
    n_projections: int = 128,
    rank_points: int | None = 1024,
    seed: int = 0,
) -> FieldScores:
    """`field_scores` of two trajectory files, streamed in blocks of frames (module docstring, Memory).

    Either argument may be a path or any reader with TrajectoryFile's interface: `splits` {name: rows},
    `meta.frames`, `meta.frame_shape` (the state shape), `meta.time`, `meta.parameters`, `path`,
    `default_split(preferred)` and `read(split, rows: slice, frames: slice) -> [rows, frames, *state]`.
    Splits default to the truth's 'test' and the generated file's only split; initial_frames to the
    generated file's `initial_frames` parameter (written by `stochlift sample`), else 1. QoIs read whole
    trajectories, `chunk_size` at a time.
    """
    ref, ref_split, gen, gen_split, initial_frames = _open_matching_pair(
        truth, generated, truth_split, generated_split, initial_frames, chunk_size)
    functions = _check_qoi(qoi)
    n_g, n_r, frames, shape = gen.splits[gen_split], ref.splits[ref_split], ref.meta.frames, tuple(ref.meta.frame_shape)
    scorer = _FloorScorer(n_g, n_r, shape, frames, initial_frames=initial_frames, n_splits=n_splits,
                          n_projections=n_projections, rank_points=rank_points, seed=seed)
    block = _frames_per_block(n_g + n_r, int(np.prod(shape)), frames, max_block_bytes)
    for t, g, r in _stream_frames((gen, gen_split), (ref, ref_split), range(initial_frames, frames), block, chunk_size):
        scorer.add_frame(t, g.reshape(n_g, *shape), r.reshape(n_r, *shape))
    if functions:
        generated_values = _qoi_values(gen, gen_split, functions, chunk_size)
        truth_values = _qoi_values(ref, ref_split, functions, chunk_size)
        for name in functions:
            scorer.add_qoi(name, generated_values[name], truth_values[name])
    scores = scorer.result(ref.meta.time)
    scores.options.update(truth_split=ref_split, generated_split=gen_split, frames_per_block=block)
    return scores
