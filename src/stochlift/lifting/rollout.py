"""Algorithm 2: one-step-per-frame sampling with a fresh label for every sample at every step."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, TrajectoryWriter
from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs
from stochlift.lifting.fast import FastOptions, FastRollout
from stochlift.lifting.generator import Generator, as_module
from stochlift.lifting.labels import stream_seed
from stochlift.lifting.pairs import initial_window
from stochlift.lifting.runs import load_run, run_files  # noqa: F401  (load_run: imported from here)
from stochlift.progress import tqdm


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
    compile: bool | str = False,
    cuda_graph: bool = False,
    labels: str = "host",
    cudnn_benchmark: bool = False,
    constraint: nn.Module | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, trajectories [b, frames, *frame]) batch by batch, so callers can stream to disk.

    `initial` is [N, k, *frame]: k >= 1 given frames per trajectory, kept as the first k output frames.
    The labels of batch b come from their own stream (seed, b), drawn on the CPU whatever the device, so
    results depend on the seed and the batch size only (and, off the defaults, on the device's arithmetic).

    The speed options are those of `stochlift.lifting.fast` (device None: where the model is; "auto": CUDA
    when available; autocast "bf16"/"fp16", cuda_graph and cudnn_benchmark on GPUs only; channels_last;
    compile; labels "device": labels drawn on the device from the stream (seed, b) instead of on the CPU).
    batch_size "auto" fills the GPU (largest batch whose step fits in memory) or is 256 on the CPU; since
    the batch size picks the label streams, pass a number where samples must be reproducible across machines.
    With the default options the samples are bit-identical to the plain one-call-per-frame loop.
    `constraint` maps (last frame, network output) to each next frame (stochlift.problems.constraint_for).
    Memory grows with batch x frames; `rollout_chunks` streams long rollouts in bounded memory.
    """
    options = FastOptions(device=device, autocast=autocast, channels_last=channels_last, compile=compile,
                          cuda_graph=cuda_graph, labels=labels, cudnn_benchmark=cudnn_benchmark)
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
    batches: range | None = None,
    **speed,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (first row, first frame, frames [b, t <= chunk_frames, *frame]): `rollout_batches` cut in time.

    Each batch's rollout is handed out `chunk_frames` frames at a time (the first chunk starts with the given
    frames), so memory is bounded by batch x chunk_frames whatever the rollout's length. The samples are
    bit-identical to rollout_batches' for the same seed, batch size and options (same label streams, same
    steps). `speed` takes rollout_batches' options (device, autocast, channels_last, compile, cuda_graph,
    labels, cudnn_benchmark). `batches` (a range of batch indices; default all) rolls out only those
    batches, each with the label stream it has in the whole rollout: processes can share a rollout batch by
    batch and together give the one-process samples (stochlift.lifting.distributed.batch_shard).

    On a GPU the chunks are handed out one behind: chunk c is yielded once chunk c + 1 is queued, so the
    GPU computes while the caller writes (frames reach pinned host memory by asynchronous copies).
    """
    if not isinstance(chunk_frames, int) or isinstance(chunk_frames, bool) or chunk_frames < 1:
        raise StochliftError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
    yield from _rollout(model, initial, frames, chunk_frames, seed, batch_size, progress, FastOptions(**speed),
                        constraint, batches)


def _rollout(
    model: Generator, initial: np.ndarray | torch.Tensor, frames: int, chunk_frames: int | None, seed: int,
    batch_size: int | str, progress: bool, options: FastOptions, constraint: nn.Module | None,
    batches: range | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """The rollout loop of both APIs: (row, frame, [b, t, *frame]) with t = frames when chunk_frames is None.

    Per frame the host draws the labels (or the stepper does, labels="device") and queues one step and one
    asynchronous copy; it waits for the GPU only when it hands a chunk out, one chunk behind on CUDA.
    """
    initial = torch.as_tensor(np.asarray(initial, dtype=np.float32))
    check_initial(model, tuple(initial.shape))
    n, k = initial.shape[:2]
    if frames <= k:
        raise StochliftError(f"asked for {frames} frames but {k} are given as initial frames; ask for more")
    engine = FastRollout(as_module(model), tuple(initial.shape[2:]), options, constraint)
    if batch_size == "auto":
        batch_size = engine.auto_batch_size(limit=n)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise StochliftError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")
    starts = range(0, n, batch_size)
    chosen = range(len(starts)) if batches is None else batches
    if any(not 0 <= b < len(starts) for b in chosen):
        raise StochliftError(f"batches {chosen} outside the {len(starts)} batches of {n} rows at batch size "
                             f"{batch_size}")
    chunk = frames if chunk_frames is None else min(chunk_frames, frames)
    rows = sum(min(batch_size, n - starts[b]) for b in chosen)
    bar = tqdm(total=rows * (frames - k), desc="sample", unit="frame", disable=not progress)
    lagged = engine.device.type == "cuda"  # on the CPU every step is done once queued: nothing to overlap
    pending = None
    for b in chosen:
        start = starts[b]
        given = initial[start : start + batch_size]
        label_seed = stream_seed(seed, "rollout", b)
        generator = None if engine.draws_labels else torch.Generator().manual_seed(label_seed)
        stepper = engine.stepper(len(given))
        stepper.reseed(label_seed)
        stepper.load(initial_window(given, model.window, model.history_padding))
        for first in range(0, frames, chunk):
            out = engine.output(len(given), min(chunk, frames - first))
            for t in range(first, first + out.shape[1]):
                if t < k:
                    out[:, t - first] = given[:, t]
                    continue
                xi = None
                if generator is not None and model.noise_shape:
                    xi = torch.randn(len(given), *model.noise_shape, generator=generator)
                out[:, t - first].copy_(stepper.step(xi), non_blocking=True)
                bar.update(len(given))
            piece = (start, first, out, engine.mark())
            if not lagged:
                yield engine.collect(*piece)
                continue
            if pending is not None:
                yield engine.collect(*pending)
            pending = piece
    if pending is not None:
        yield engine.collect(*pending)
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
    if split not in file.splits:
        raise StochliftError(f"{file.path} has no split {split!r}; it has {list(file.splits)}")
    rows = file.splits[split]
    if rows == 0:
        raise StochliftError(f"{file.path}: split {split!r} holds no trajectories to start from")
    if frames < 1 or frames > file.meta.frames:
        raise StochliftError(f"initial frames must be between 1 and {file.meta.frames}, got {frames}")
    taken = file.read(split, slice(0, min(n, rows)), slice(0, frames))
    return taken[np.arange(n) % len(taken)]


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
    """Roll a trained run out from initial frames and write the trajectories (split 'generated'): in one call,
    `SamplingPipeline.from_run(run_dir, ...).to_file(out, ...)` (stochlift.lifting.sampling), which builds once
    for many calls and also samples into memory.

    Initial frames come from `initial` (a trajectory file; default: the run's own data file, test split; for a
    shipped model, run_dir "pretrained:NAME", the first frames of its test split that ship with it).
    `options` are the rollout's speed options (device, autocast, ...; default: the CPU, bit-exact).
    A run trained on The Well's files starts from normalised frames and writes physical units (well_sampling).
    The rollout streams to the file `chunk_frames` frames at a time (default: about STREAM_BYTES per batch,
    in whole HDF5 chunks), so memory does not grow with `frames`. `dtype` is the storage ("float32" or
    "uint8"; default: the initial frames' file's, so video stays uint8, its values clipped to [0, 1]).
    `constraint` names the projection of each generated frame (stochlift.problems.constraint_for; default: the
    run's model.constraint, "none" to switch it off), built from the initial frames' file's metadata.

    Launched by torchrun (`torchrun --nproc_per_node K -m stochlift sample ...`), each process rolls out
    a contiguous block of whole batches (each with its label stream) on its own GPU (or CPU) into a hidden
    part file beside `out`, and rank 0 merges the parts into `out`: the file equals the one-process file
    for the same seed and batch size, up to the devices' arithmetic (on CPUs with the same thread count, bit
    for bit), and appears only when every rank has finished. Several nodes need `out`'s folder shared.
    """
    from stochlift.lifting.sampling import SamplingPipeline, check_request  # it builds on this module

    check_request(trajectories, seed, batch_size)
    refuse_overwriting_inputs([out], [*run_files(run_dir), initial])
    pipeline = SamplingPipeline._load(run_dir, initial, initial_split, initial_count, constraint, options, dtype,
                                      stacklevel=3)  # its warnings point at our caller
    return pipeline.to_file(out, trajectories=trajectories, frames=frames, seed=seed, batch_size=batch_size,
                            progress=progress, chunk_frames=chunk_frames)


def part_path(out: str | os.PathLike, rank: int, world_size: int) -> Path:
    """Where rank `rank` of a sharded sample_to_file leaves its rows (hidden, beside the output)."""
    out = Path(out)
    return out.with_name(f".{out.name}.part{rank}-of-{world_size}")


def merge_parts(out: str | os.PathLike, meta: TrajectoryMeta, parts: list[tuple[Path, int]], batch_size: int,
                chunk_frames: int | None = None, time_chunk: int | None = None) -> Path:
    """Concatenate part files (path, rows; split 'generated'; a part of 0 rows has no file) in order into one
    trajectory file, piece by piece (bounded memory), stored values copied as they are. A missing or
    wrong-sized part is an error, and the output appears only complete (TrajectoryWriter). `time_chunk` caps
    the output's frames per HDF5 chunk as in sample_to_file (default: the writer's)."""
    for path, rows in parts:
        if rows and not path.is_file():
            raise StochliftError(f"part file {path} is missing (with several nodes, the output folder must be shared)")
        if rows and TrajectoryFile(path).splits.get("generated") != rows:
            raise StochliftError(f"part file {path} does not hold the {rows} rows expected")
    with TrajectoryWriter(out, meta, {"generated": sum(rows for _, rows in parts)}, time_chunk=time_chunk) as writer:
        chunk = chunk_frames or stream_chunk(batch_size, meta.frame_shape, meta.frames, writer.time_chunk)
        row = 0
        for path, n in parts:
            if not n:
                continue
            with TrajectoryFile(path) as part:
                for r in range(0, n, batch_size):
                    for t in range(0, meta.frames, chunk):
                        values = part.read("generated", slice(r, min(r + batch_size, n)), slice(t, t + chunk), raw=True)
                        writer.write("generated", row + r,
                                     {name: values[:, :, c] for c, name in enumerate(meta.field_names)}, frame_start=t)
            row += n
    return Path(out)


# sample_to_file holds at most STREAM_FRAMES frames of a batch at once (fewer when they would pass STREAM_BYTES
# as float32), whatever the number of frames asked for: memory does not grow with --frames
STREAM_FRAMES = 32
STREAM_BYTES = 256 << 20


def stream_chunk(batch: int, frame_shape: tuple[int, ...], frames: int, time_chunk: int = 1) -> int:
    """Frames per streamed piece: at most STREAM_FRAMES and about STREAM_BYTES for the batch, rounded down to
    whole HDF5 time chunks (partial chunks are read back from disk) when that leaves at least one, never more
    than `frames`."""
    per_frame = 4 * batch * int(np.prod(frame_shape))
    chunk = max(1, min(STREAM_FRAMES, STREAM_BYTES // per_frame))
    if chunk >= time_chunk > 1:
        chunk -= chunk % time_chunk
    return int(min(chunk, frames))

