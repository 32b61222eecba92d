"""Sampling as a pipeline: built once from a trained run, then called for arrays in memory or streamed to a file.

    pipe = SamplingPipeline.from_run("runs/wave")             # model, config, start, constraint, output transform
    videos = pipe(8, frames=64, seed=1)                       # [8, 64, *frame], in memory
    pipe.to_file("samples.h5", trajectories=4096, seed=1)     # streamed in bounded memory; sharded under torchrun

As diffusers keeps model, noise scheduler and pipeline apart, the concerns here are small separate pieces:
`resolve_start` (where initial frames come from: a trajectory file, a run on The Well's files, a shipped
model's first frames), `OutputTransform` (per batch: the finite check, The Well's de-normalisation, uint8
clipping), `output_meta` (the generated file's TrajectoryMeta) and `write_generated` (one process, or torchrun
ranks writing part files that rank 0 merges). `rollout.sample_to_file` is this pipeline in one call.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from stochlift.config import RunConfig
from stochlift.data.readers import open_trajectories
from stochlift.data.trajectories import TrajectoryMeta, TrajectoryWriter
from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs, require_disk, require_memory
from stochlift.lifting import distributed, rollout
from stochlift.lifting.fast import FastOptions
from stochlift.lifting.generator import Generator
from stochlift.lifting.pretrained import is_pretrained
from stochlift.lifting.runs import check_run_inputs, load_run, run_files
from stochlift.lifting.well_sampling import WellStart, well_start
from stochlift.problems import constraint_for

Pieces = Iterator[tuple[int, int, np.ndarray]]  # (first row, first frame, frames [b, t, *frame])

__all__ = ["OutputTransform", "SamplingPipeline", "SamplingStart", "output_meta", "resolve_start", "write_generated"]


def check_request(trajectories: int, seed: int, batch_size: int | str = 1) -> None:
    """The asked-for size, seed and batch, named as the CLI names them, before anything is loaded."""
    if isinstance(batch_size, int) and batch_size <= 0:
        raise StochliftError(f"--batch-size must be > 0 (or auto), got {batch_size}")
    if trajectories <= 0:
        raise StochliftError(f"--trajectories must be > 0, got {trajectories}")
    if seed < 0:
        raise StochliftError(f"--seed must be >= 0, got {seed}")


# ------------------------------------------------------------------------------------------------ the start


@dataclass
class SamplingStart:
    """Where rollouts begin: a trajectory file (or a shipped model's first frames, read alike) and its split,
    or a Well run's source (`well`, normalised frames); `count` given frames per trajectory."""

    source: Any  # TrajectoryFile | PretrainedStart | WellStart, each with a `meta`
    split: str | None
    count: int
    path: str | os.PathLike | None  # the --initial file, if one was given
    well: WellStart | None = None

    @property
    def meta(self) -> TrajectoryMeta:
        """The initial frames' metadata (for a Well run: the output's, in physical units)."""
        return self.source.meta

    def frames(self, n: int) -> np.ndarray:
        """[n, count, *frame] initial frames in the model's units, cycling through the source's rows."""
        if self.well is not None:
            return self.well.frames(n)
        return rollout.initial_frames(self.source, n, split=self.split, frames=self.count)


def resolve_start(run_dir: str | os.PathLike, *, initial: str | os.PathLike | None = None, split: str | None = None,
                  count: int = 1) -> tuple[Generator, RunConfig, SamplingStart]:
    """The run's model and config and where its rollouts start (default: the run's own data file, else a
    shipped model's first frames, else a Well run's data set), checked against the model before any rollout."""
    well = well_start(run_dir, initial=initial, split=split, count=count)
    model, config, data = load_run(run_dir) if well is None else (well.model, well.config, None)
    source: Any = well or (open_trajectories(initial) if initial is not None else data)
    if source is None:
        raise StochliftError(f"the run's data file {config.data.path} is gone: pass --initial FILE")
    if list(source.meta.frame_shape) != list(config.model.frame_shape or []):
        raise StochliftError(
            f"initial frames of shape {list(source.meta.frame_shape)} do not fit the model's {config.model.frame_shape}"
        )
    if well is None:
        check_run_inputs(run_dir, source, "--initial" if initial is not None else "the run's data")
    return model, config, SamplingStart(source, split, count, initial, well)


# ------------------------------------------------------------------------------------- output and metadata


@dataclass(frozen=True)
class OutputTransform:
    """What each generated batch goes through before it leaves the pipeline: a diverged rollout is an error,
    a Well run's frames go back to physical units, and frames stored as uint8 are clipped to [0, 1]."""

    dtype: str = "float32"
    well: WellStart | None = field(default=None, repr=False)  # de-normalises when set

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if not np.isfinite(batch).all():
            raise StochliftError("the rollout diverged (NaN or Inf); the model is unstable over this horizon")
        batch = batch if self.well is None else self.well.denormalize(batch)
        if self.dtype == "uint8":
            batch = np.clip(batch, 0.0, 1.0)
        return batch

    def inverse(self, frames: np.ndarray) -> np.ndarray:
        """Given frames in the data's units, as the model takes them (a Well run's: normalised)."""
        frames = np.asarray(frames, dtype=np.float32)
        return frames if self.well is None else self.well.normalize(frames)


def _time_grid(time: np.ndarray, frames: int) -> np.ndarray:
    """The data's time grid, extended at its own spacing when sampling runs longer than the data."""
    if frames <= len(time):
        return time[:frames]
    dt = time[1] - time[0] if len(time) > 1 else 1.0
    return time[0] + dt * np.arange(frames)


def output_meta(source: TrajectoryMeta, *, run: str, frames: int, seed: int, batch_size: int | str,
                initial_count: int, constraint: str, dtype: str) -> TrajectoryMeta:
    """The generated file's metadata: the initial frames' grid and fields, and how the samples were made
    (so a file says which run, seed, batch size and constraint reproduce it)."""
    return TrajectoryMeta(
        dataset_name=f"{source.dataset_name}-generated",
        problem=source.problem,
        field_names=source.field_names,
        time=_time_grid(source.time, frames),
        x=source.x,
        y=source.y,
        periodic=source.periodic,
        boundaries=source.boundaries,
        field_scales=source.field_scales,
        parameters={
            **source.parameters,
            "sampled_from_run": run,
            "sampling_seed": seed,
            "sampling_batch_size": batch_size,
            "initial_frames": initial_count,
            "sampling_constraint": constraint,
        },
        dtype=dtype,
    )


# --------------------------------------------------------------------------------------------------- writing


def write_generated(out: str | os.PathLike, meta: TrajectoryMeta, trajectories: int, *, batch_size: int | str,
                    rows: int, chunk_frames: int | None, time_chunk: int, options: FastOptions,
                    pieces: Callable[[int, dict, range | None, bool], Pieces]) -> Path:
    """Write `pieces(chunk, speed, batches, is_main)` (rows of the whole rollout) into `out`, split 'generated'.

    Alone, one process writes every batch. Launched by torchrun, each rank writes its contiguous block of whole
    batches (each with its label stream) into a hidden part file beside `out`, and rank 0 merges the parts:
    `out` appears only when every rank has finished, equal to the one-process file."""
    ctx = distributed.setup(options.device or "cpu")  # alone unless launched by torchrun

    def write(path: str | os.PathLike, speed: dict, batches: range | None, first_row: int, count: int) -> None:
        with TrajectoryWriter(path, meta, {"generated": count}, time_chunk=time_chunk) as writer:
            chunk = chunk_frames or rollout.stream_chunk(rows, meta.frame_shape, meta.frames, writer.time_chunk)
            for row, first, batch in pieces(chunk, speed, batches, ctx.is_main):
                writer.write("generated", row - first_row,
                             {name: batch[:, :, c] for c, name in enumerate(meta.field_names)}, frame_start=first)

    if ctx.world_size == 1:
        write(out, vars(options), None, 0, trajectories)
        return Path(out)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool):
        raise StochliftError("sampling with several processes needs a fixed batch size (it picks the label streams)")
    speed = {**vars(options), "device": str(ctx.device)}  # under torchrun: this rank's GPU (or the CPU)
    shards = [distributed.batch_shard(trajectories, batch_size, rank, ctx.world_size) for rank in range(ctx.world_size)]
    bounds = [(min(b.start * batch_size, trajectories), min(b.stop * batch_size, trajectories)) for b in shards]
    parts = [(rollout.part_path(out, rank, ctx.world_size), end - first) for rank, (first, end) in enumerate(bounds)]
    mine, (first_row, _) = parts[ctx.rank], bounds[ctx.rank]
    try:
        distributed.agree(ctx, lambda: write(mine[0], speed, shards[ctx.rank], first_row, mine[1]) if mine[1] else None)
        distributed.agree(ctx, lambda: rollout.merge_parts(out, meta, parts, rows, chunk_frames, time_chunk)
                          if ctx.is_main else None)
    finally:
        mine[0].unlink(missing_ok=True)
    return Path(out)


def check_sampling_size(out: str | os.PathLike, trajectories: int, frames: int, given: int, rows: int, piece: int,
                        window: int, meta: TrajectoryMeta) -> None:
    """Refuse a sampling job that cannot fit, before allocating or writing anything: memory (the initial
    frames, a batch's window buffers and streamed piece, the time grid and the per-row bookkeeping) and,
    for uncompressed (float32) output, disk."""
    frame = 4 * int(np.prod(meta.frame_shape))
    memory = 2 * trajectories * given * frame + rows * (3 * piece + 4 * window) * frame + 8 * (frames + trajectories)
    require_memory(memory, f"sampling {trajectories} trajectories of {frames} frames")
    if meta.dtype == "float32":
        require_disk(out, trajectories * frames * frame, f"writing {trajectories} trajectories of {frames} frames")


# -------------------------------------------------------------------------------------------------- pipeline


@dataclass
class SamplingPipeline:
    """A trained run made ready to sample, once: its model and config, where rollouts start, the constraint
    projecting each generated frame, the speed options and the output transform. Call it for arrays in
    memory, or `to_file` to stream into a trajectory file; both give the same frames for the same seed and
    batch size (the label streams depend on those only)."""

    run: str  # as recorded in the output: "pretrained:NAME", or the run directory's absolute path
    run_dir: str | os.PathLike
    model: Generator = field(repr=False)
    config: RunConfig = field(repr=False)
    start: SamplingStart = field(repr=False)
    constraint: str
    projection: nn.Module | None = field(repr=False)
    options: FastOptions
    transform: OutputTransform

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, *, initial: str | os.PathLike | None = None,
                 initial_split: str | None = None, initial_count: int = 1, constraint: str | None = None,
                 options: FastOptions | None = None, dtype: str | None = None) -> SamplingPipeline:
        """Load a run (a directory, or "pretrained:NAME") with the options of `sample_to_file`: `initial` a
        trajectory file to start from (default: the run's data, test split), `constraint` a projection name
        ("none" switches the run's off), `options` the rollout's speed options, `dtype` the storage."""
        return cls._load(run_dir, initial, initial_split, initial_count, constraint, options, dtype, stacklevel=3)

    @classmethod
    def _load(cls, run_dir: str | os.PathLike, initial: str | os.PathLike | None, split: str | None, count: int,
              constraint: str | None, options: FastOptions | None, dtype: str | None, *,
              stacklevel: int) -> SamplingPipeline:
        """from_run, with the frame its warnings point at (sample_to_file's caller when it builds one)."""
        model, config, start = resolve_start(run_dir, initial=initial, split=split, count=count)
        source = start.source
        if start.well is None and split is None and "test" not in source.splits:
            where = getattr(source, "path", "the data")
            chosen = source.default_split()
            warnings.warn(f"{where} has no test split: rollouts start from its {chosen!r} split"
                          + (", the data the model trained on" if chosen == "train" else ""), stacklevel=stacklevel)
        constraint = constraint or config.model.constraint
        projection = constraint_for(constraint, start.meta)
        run = str(run_dir) if is_pretrained(run_dir) else str(Path(run_dir).resolve())
        transform = OutputTransform(dtype or start.meta.dtype, start.well)
        return cls(run, run_dir, model, config, start, constraint, projection, options or FastOptions(), transform)

    def pieces(self, initial: np.ndarray, frames: int, *, chunk_frames: int, seed: int = 0,
               batch_size: int | str = 256, progress: bool = False, speed: dict | None = None,
               batches: range | None = None) -> Pieces:
        """The rollout from `initial` (model units), transformed, as (first row, first frame, frames) pieces."""
        speed = vars(self.options) if speed is None else speed
        chunks = rollout.rollout_chunks(self.model, initial, frames, chunk_frames=chunk_frames, seed=seed,
                                        batch_size=batch_size, progress=progress, constraint=self.projection,
                                        batches=batches, **speed)
        for row, first, batch in chunks:
            yield row, first, self.transform(batch)

    def __call__(self, trajectories: int | None = None, frames: int | None = None, *,
                 initial: np.ndarray | None = None, seed: int = 0, batch_size: int | str = 256,
                 progress: bool = False) -> np.ndarray:
        """[N, frames, *frame] float32 in the data's units (before any uint8 storage rounding). Starts from
        `initial` [N, k, *frame] (data units) when given, else from the run's start (`trajectories` rows,
        default 256); `frames` defaults to the start's."""
        if initial is None:
            trajectories = 256 if trajectories is None else trajectories
            check_request(trajectories, seed, batch_size)
            start = self.start.frames(trajectories)
        else:
            rollout.check_initial(self.model, tuple(np.shape(initial)))
            if trajectories is not None and trajectories != len(initial):
                raise StochliftError(f"{trajectories} trajectories asked for from {len(initial)} initial ones")
            check_request(len(initial), seed, batch_size)
            start = self.transform.inverse(initial)
        frames = frames or self.start.meta.frames
        shape = (len(start), frames, *start.shape[2:])
        require_memory(4 * int(np.prod(shape)), f"sampling {shape[0]} trajectories of {frames} frames in memory")
        out = np.empty(shape, dtype=np.float32)
        for row, first, batch in self.pieces(start, frames, chunk_frames=frames, seed=seed, batch_size=batch_size,
                                             progress=progress):
            out[row : row + len(batch), first : first + batch.shape[1]] = batch
        return out

    def to_file(self, out: str | os.PathLike, *, trajectories: int = 256, frames: int | None = None, seed: int = 0,
                batch_size: int | str = 256, progress: bool = True, chunk_frames: int | None = None) -> Path:
        """Roll out and write the trajectories into `out` (split 'generated'), as `sample_to_file` documents:
        streamed `chunk_frames` frames at a time, sharded over the ranks under torchrun."""
        check_request(trajectories, seed, batch_size)
        refuse_overwriting_inputs([out], [*run_files(self.run_dir), self.start.path])
        refuse_overwriting_inputs([out], [self.config.data.path])
        source = self.start.meta
        frames = frames or source.frames
        rows = min(batch_size if isinstance(batch_size, int) else trajectories, trajectories)  # "auto": at most all
        piece = chunk_frames or rollout.stream_chunk(rows, source.frame_shape, frames)
        check_sampling_size(out, trajectories, frames, self.start.count, rows, piece, self.model.window, source)
        initial = self.start.frames(trajectories)
        meta = output_meta(source, run=self.run, frames=frames, seed=seed, batch_size=batch_size,
                           initial_count=self.start.count, constraint=self.constraint, dtype=self.transform.dtype)

        def pieces(chunk: int, speed: dict, batches: range | None, is_main: bool) -> Pieces:
            return self.pieces(initial, frames, chunk_frames=chunk, seed=seed, batch_size=batch_size,
                               progress=progress and is_main, speed=speed, batches=batches)

        return write_generated(out, meta, trajectories, batch_size=batch_size, rows=rows, chunk_frames=chunk_frames,
                               time_chunk=piece, options=self.options, pieces=pieces)
