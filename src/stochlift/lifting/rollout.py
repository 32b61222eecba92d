"""Algorithm 2: one-step-per-frame sampling with a fresh label for every sample at every step."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from stochlift.data.readers import open_trajectories
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, TrajectoryWriter
from stochlift.errors import StochliftError
from stochlift.lifting.fast import FastOptions, FastRollout
from stochlift.lifting.generator import Generator
from stochlift.lifting.labels import stream_seed
from stochlift.lifting.pairs import initial_window
from stochlift.lifting.runs import load_run
from stochlift.problems import constraint_for


@torch.inference_mode()
def rollout_batches(
    model: Generator,
    initial: np.ndarray | torch.Tensor,
    frames: int,
    *,
    seed: int = 0,
    batch_size: int | str = 256,
    progress: bool = False,
    device: str | torch.device | None = None,
    autocast: str | None = None,
    channels_last: bool = False,
    compile: bool = False,
    cuda_graph: bool = False,
    constraint: nn.Module | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, trajectories [b, frames, *frame]) batch by batch, so callers can stream to disk.

    `initial` is [N, k, *frame]: k >= 1 given frames per trajectory, kept as the first k output frames.
    The labels of batch b come from their own stream (seed, b), drawn on the CPU whatever the device, so
    results depend on the seed and the batch size only (and, off the defaults, on the device's arithmetic).

    The speed options are those of `stochlift.lifting.fast` (device None: where the model is; "auto": CUDA
    when available; autocast "bf16"/"fp16" and cuda_graph on GPUs only; channels_last; compile).
    batch_size "auto" fills the GPU (largest batch whose step fits in memory) or is 256 on the CPU; since
    the batch size picks the label streams, pass a number where samples must be reproducible across machines.
    With the default options the samples are bit-identical to the plain one-call-per-frame loop.
    `constraint` maps (last frame, network output) to each next frame (stochlift.problems.constraint_for).
    Memory grows with batch x frames; `rollout_chunks` streams long rollouts in bounded memory.
    """
    options = FastOptions(device=device, autocast=autocast, channels_last=channels_last, compile=compile,
                          cuda_graph=cuda_graph)
    for start, _, out in _rollout(model, initial, frames, None, seed, batch_size, progress, options, constraint):
        yield start, out


@torch.inference_mode()
def rollout_chunks(
    model: Generator,
    initial: np.ndarray | torch.Tensor,
    frames: int,
    *,
    chunk_frames: int = 64,
    seed: int = 0,
    batch_size: int | str = 256,
    progress: bool = False,
    constraint: nn.Module | None = None,
    **speed,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (first row, first frame, frames [b, t <= chunk_frames, *frame]): `rollout_batches` cut in time.

    Each batch's rollout is handed out `chunk_frames` frames at a time (the first chunk starts with the given
    frames), so memory is bounded by batch x chunk_frames whatever the rollout's length. The samples are
    bit-identical to rollout_batches' for the same seed, batch size and options (same label streams, same
    steps). `speed` takes rollout_batches' options (device, autocast, channels_last, compile, cuda_graph).
    """
    if not isinstance(chunk_frames, int) or isinstance(chunk_frames, bool) or chunk_frames < 1:
        raise StochliftError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
    yield from _rollout(model, initial, frames, chunk_frames, seed, batch_size, progress, FastOptions(**speed),
                        constraint)


def _rollout(
    model: Generator, initial: np.ndarray | torch.Tensor, frames: int, chunk_frames: int | None, seed: int,
    batch_size: int | str, progress: bool, options: FastOptions, constraint: nn.Module | None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """The rollout loop of both APIs: (row, frame, [b, t, *frame]) with t = frames when chunk_frames is None."""
    initial = torch.as_tensor(np.asarray(initial, dtype=np.float32))
    check_initial(model, tuple(initial.shape))
    n, k = initial.shape[:2]
    if frames <= k:
        raise StochliftError(f"asked for {frames} frames but {k} are given as initial frames; ask for more")
    engine = FastRollout(model, tuple(initial.shape[2:]), options, constraint)
    if batch_size == "auto":
        batch_size = engine.auto_batch_size(limit=n)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise StochliftError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")
    chunk = frames if chunk_frames is None else min(chunk_frames, frames)
    bar = tqdm(total=n * (frames - k), desc="sample", unit="frame", disable=not progress)
    for b, start in enumerate(range(0, n, batch_size)):
        given = initial[start : start + batch_size]
        generator = torch.Generator().manual_seed(stream_seed(seed, "rollout", b))
        stepper = engine.stepper(len(given))
        stepper.load(initial_window(given, model.window, model.history_padding))
        for first in range(0, frames, chunk):
            out = engine.output(len(given), min(chunk, frames - first))
            for t in range(first, first + out.shape[1]):
                if t < k:
                    out[:, t - first] = given[:, t]
                    continue
                xi = torch.randn(len(given), *model.noise_shape, generator=generator) if model.noise_shape else None
                out[:, t - first].copy_(stepper.step(xi), non_blocking=True)
                bar.update(len(given))
            engine.synchronize()
            yield start, first, out.numpy()
    bar.close()


def check_initial(model: Generator, shape: tuple[int, ...]) -> None:
    """Initial frames must be [N, k, *frame] with the model's frame: a user error named before any torch error."""
    frame = model.frame_shape
    if len(shape) < 3 or (frame is not None and shape[2:] != tuple(frame)):
        wanted = f"[N, k, {', '.join(map(str, frame))}]" if frame is not None else "[N, k, *frame]"
        raise StochliftError(f"initial frames of shape {list(shape)} given; the model expects {wanted}: N "
                             f"trajectories, k >= 1 given frames each, frames of shape {list(frame or ['...'])}")


def rollout(model: Generator, initial: np.ndarray | torch.Tensor, frames: int, **kwargs) -> np.ndarray:
    """All trajectories at once, [N, frames, *frame] (for small ensembles; use rollout_batches for big ones)."""
    return np.concatenate([batch for _, batch in rollout_batches(model, initial, frames, **kwargs)])


def initial_frames(file: TrajectoryFile, n: int, *, split: str | None = None, frames: int = 1) -> np.ndarray:
    """The first `frames` frames of n trajectories of a file's split, cycling through its rows."""
    split = split or file.default_split()
    rows = file.splits[split]
    if frames < 1 or frames > file.meta.frames:
        raise StochliftError(f"initial frames must be between 1 and {file.meta.frames}, got {frames}")
    taken = file.read(split, slice(0, min(n, rows)), slice(0, frames))
    return taken[np.arange(n) % len(taken)]


def _time_grid(time: np.ndarray, frames: int) -> np.ndarray:
    """The data's time grid, extended at its own spacing when sampling runs longer than the data."""
    if frames <= len(time):
        return time[:frames]
    dt = time[1] - time[0] if len(time) > 1 else 1.0
    return time[0] + dt * np.arange(frames)


def sample_to_file(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    trajectories: int = 256,
    frames: int | None = None,
    initial: str | os.PathLike | None = None,
    initial_split: str | None = None,
    initial_count: int = 1,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    options: FastOptions | None = None,
    chunk_frames: int | None = None,
    dtype: str | None = None,
    constraint: str | None = None,
) -> Path:
    """Roll a trained run out from initial frames and write the trajectories (split 'generated').

    Initial frames come from `initial` (a trajectory file; default: the run's own data file, test split).
    `options` are the rollout's speed options (device, autocast, ...; default: the CPU, bit-exact).
    A run trained on The Well's files starts from normalised frames and writes physical units (well_sampling).
    The rollout streams to the file `chunk_frames` frames at a time (default: about STREAM_BYTES per batch,
    in whole HDF5 chunks), so memory does not grow with `frames`. `dtype` is the storage ("float32" or
    "uint8"; default: the initial frames' file's, so video stays uint8, its values clipped to [0, 1]).
    `constraint` names the projection of each generated frame (stochlift.problems.constraint_for; default: the
    run's model.constraint, "none" to switch it off), built from the initial frames' file's metadata.
    """
    from stochlift.lifting.well_sampling import well_start

    if trajectories <= 0:
        raise StochliftError(f"--trajectories must be > 0, got {trajectories}")
    well = well_start(run_dir, trajectories, initial=initial, split=initial_split, count=initial_count)
    model, config, data = load_run(run_dir) if well is None else (well.model, well.config, None)
    source = well or (open_trajectories(initial) if initial is not None else data)
    if source is None:
        raise StochliftError(f"the run's data file {config.data.path} is gone: pass --initial FILE")
    if list(source.meta.frame_shape) != list(config.model.frame_shape):
        raise StochliftError(
            f"initial frames of shape {list(source.meta.frame_shape)} do not fit the model's {config.model.frame_shape}"
        )
    frames = frames or source.meta.frames
    constraint = constraint or config.model.constraint
    projection = constraint_for(constraint, source.meta)
    start = initial_frames(source, trajectories, split=initial_split, frames=initial_count) if well is None else well.frames
    meta = TrajectoryMeta(
        dataset_name=f"{source.meta.dataset_name}-generated",
        problem=source.meta.problem,
        field_names=source.meta.field_names,
        time=_time_grid(source.meta.time, frames),
        x=source.meta.x,
        y=source.meta.y,
        periodic=source.meta.periodic,
        boundaries=source.meta.boundaries,
        field_scales=source.meta.field_scales,
        parameters={
            **source.meta.parameters,
            "sampled_from_run": str(Path(run_dir).resolve()),
            "sampling_seed": seed,
            "sampling_batch_size": batch_size,
            "initial_frames": initial_count,
            "sampling_constraint": constraint,
        },
        dtype=dtype or source.meta.dtype,
    )
    with TrajectoryWriter(out, meta, {"generated": trajectories}) as writer:
        speed = vars(options) if options is not None else {}
        rows = min(batch_size if isinstance(batch_size, int) else trajectories, trajectories)  # "auto": at most all
        chunk = chunk_frames or stream_chunk(rows, meta.frame_shape, frames, writer.time_chunk)
        for row, first, batch in rollout_chunks(model, start, frames, chunk_frames=chunk, seed=seed,
                                                batch_size=batch_size, progress=progress, constraint=projection,
                                                **speed):
            if not np.isfinite(batch).all():
                raise StochliftError("the rollout diverged (NaN or Inf); the model is unstable over this horizon")
            batch = batch if well is None else well.denormalize(batch)
            if meta.dtype == "uint8":
                batch = np.clip(batch, 0.0, 1.0)
            writer.write("generated", row, {name: batch[:, :, c] for c, name in enumerate(meta.field_names)},
                         frame_start=first)
    return Path(out)


STREAM_BYTES = 256 << 20  # sample_to_file's default float32 frames held per batch before they go to the file


def stream_chunk(batch: int, frame_shape: tuple[int, ...], frames: int, time_chunk: int = 1) -> int:
    """Frames per streamed piece: about STREAM_BYTES for the batch, rounded down to whole HDF5 time chunks
    (partial chunks cost a read-modify-write) when that leaves at least one, never more than `frames`."""
    per_frame = 4 * batch * int(np.prod(frame_shape))
    chunk = max(1, STREAM_BYTES // per_frame)
    if chunk >= time_chunk > 1:
        chunk -= chunk % time_chunk
    return int(min(chunk, frames))
