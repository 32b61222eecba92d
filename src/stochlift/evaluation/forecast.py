"""The forecasting setting (b) with a model: K samples rolled out of every held-out trajectory's own first
frames, scored as they come (`forecast_scores`) or written to a file (`write_forecast_samples`) that
`stochlift.metrics.forecast.forecast_scores_files` scores the same. Conventions: stochlift.metrics.forecast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from stochlift.data.readers import TrajectoryReader
from stochlift.data.trajectories import TrajectoryMeta, TrajectoryWriter
from stochlift.errors import StochliftError
from stochlift.lifting.labels import stream_seed
from stochlift.lifting.rollout import rollout_batches
from stochlift.metrics.distribution import EnsembleScores, _check_initial, _open
from stochlift.metrics.forecast import ForecastAccumulator

__all__ = ["forecast_batches", "forecast_scores", "write_forecast_samples"]


def forecast_batches(
    model: Any,
    truth: TrajectoryReader | str | os.PathLike,
    split: str | None = None,
    *,
    samples_per_trajectory: int = 8,
    initial_frames: int = 1,
    frames: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    constraint: nn.Module | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first generated row, batch [b, frames, *frame]) of the forecast ensembles of a truth split.

    Generated row g = i*K + s is sample s of truth row i, rolled out from truth row i's first
    `initial_frames` frames. Batch b (rows b*batch_size ..) draws its labels from the stream
    (seed, "forecast", b), so the samples depend on seed and batch_size only. `constraint`: the projection
    of each generated frame (stochlift.problems.constraint_for), if the model samples with one.
    """
    file = _open(truth)
    split = split or file.default_split("test")
    frames = frames or file.meta.frames
    if samples_per_trajectory < 1 or batch_size < 1:
        raise StochliftError(
            f"samples_per_trajectory and batch_size must be >= 1, got {samples_per_trajectory} and {batch_size}"
        )
    _check_initial(initial_frames, frames)
    total = file.splits[split] * samples_per_trajectory
    for b, g0 in enumerate(range(0, total, batch_size)):
        rows = np.arange(g0, min(g0 + batch_size, total)) // samples_per_trajectory
        given = file.read(split, slice(int(rows[0]), int(rows[-1]) + 1), slice(0, initial_frames))[rows - rows[0]]
        batch_seed = stream_seed(seed, "forecast", b)
        for _, out in rollout_batches(model, given, frames, seed=batch_seed, batch_size=len(given),
                                      constraint=constraint):
            if not np.isfinite(out).all():
                raise StochliftError("the rollout diverged (NaN or Inf); the model is unstable over this horizon")
            yield g0, out


def forecast_scores(
    model: Any,
    truth: TrajectoryReader | str | os.PathLike,
    split: str | None = None,
    *,
    samples_per_trajectory: int = 8,
    initial_frames: int = 1,
    frames: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    chunk_size: int = 64,
    rank_points: int | None = 1024,
    constraint: nn.Module | None = None,
) -> EnsembleScores:
    """Setting (b): roll K samples out of every truth trajectory's own first frames and score them.

    Streams the truth split `chunk_size` trajectories at a time; the generated samples (from
    `forecast_batches`, so they depend on seed and batch_size, not on chunk_size) are scored as they come
    and never written. Returns per-time curves and averages over t >= initial_frames.
    """
    file = _open(truth)
    split = split or file.default_split("test")
    frames = frames or file.meta.frames
    if frames > file.meta.frames:
        raise StochliftError(f"the truth has {file.meta.frames} frames; cannot score {frames}")
    if chunk_size < 1:
        raise StochliftError(f"chunk_size must be >= 1, got {chunk_size}")
    k, n = samples_per_trajectory, file.splits[split]
    accumulator = ForecastAccumulator(frames, k, initial_frames=initial_frames, rank_points=rank_points, seed=seed)
    stream = forecast_batches(model, file, split, samples_per_trajectory=k, initial_frames=initial_frames,
                              frames=frames, seed=seed, batch_size=batch_size, constraint=constraint)
    pending: list[np.ndarray] = []  # generated rows from `ready` on, not yet scored
    ready = 0
    for i0 in range(0, n, chunk_size):
        i1 = min(i0 + chunk_size, n)
        while ready + sum(len(p) for p in pending) < i1 * k:
            pending.append(next(stream)[1])
        rows = np.concatenate(pending)
        take = i1 * k - ready
        pending, ready = ([rows[take:]] if take < len(rows) else []), i1 * k
        chunk = file.read(split, slice(i0, i1), slice(0, frames))
        accumulator.add(chunk, rows[:take].reshape(i1 - i0, k, *rows.shape[1:]), first_row=i0)
    scores = accumulator.result(file.meta.time[:frames])
    scores.options.update(truth_split=split, batch_size=batch_size)
    return scores


def write_forecast_samples(
    model: Any,
    truth: TrajectoryReader | str | os.PathLike,
    out: str | os.PathLike,
    split: str | None = None,
    *,
    samples_per_trajectory: int = 8,
    initial_frames: int = 1,
    frames: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    constraint: nn.Module | None = None,
) -> Path:
    """Write the forecast ensembles of `forecast_batches` to a file (split 'generated', K rows per truth row).

    The same arguments give exactly the samples `forecast_scores` scores, so scoring the file with
    `forecast_scores_files` reproduces its result.
    """
    file = _open(truth)
    split = split or file.default_split("test")
    frames = frames or file.meta.frames
    if frames > file.meta.frames:
        raise StochliftError(f"the truth has {file.meta.frames} frames; cannot forecast {frames} for scoring")
    src = file.meta
    meta = TrajectoryMeta(
        dataset_name=f"{src.dataset_name}-forecast",
        problem=src.problem,
        field_names=src.field_names,
        time=src.time[:frames],
        x=src.x,
        y=src.y,
        periodic=src.periodic,
        field_scales=src.field_scales,
        parameters={
            **src.parameters,
            "forecast_of": str(file.path.resolve()),
            "forecast_split": split,
            "samples_per_trajectory": samples_per_trajectory,
            "initial_frames": initial_frames,
            "sampling_seed": seed,
            "sampling_batch_size": batch_size,
        },
    )
    total = file.splits[split] * samples_per_trajectory
    with TrajectoryWriter(out, meta, {"generated": total}) as writer:
        for row, batch in forecast_batches(model, file, split, samples_per_trajectory=samples_per_trajectory,
                                           initial_frames=initial_frames, frames=frames, seed=seed,
                                           batch_size=batch_size, constraint=constraint):
            writer.write("generated", row, {name: batch[:, :, c] for c, name in enumerate(meta.field_names)})
    return Path(out)
