"""Training batches through a torch DataLoader: one item per step, a pure function of (seed, step, rank).

Item `step` is this rank's shard of that step's global batch `StepBatches.global_batch(step)` (uniform, or
with the first-step pairs drawn more often): the pair indices, their windows and targets (and, for
pushforward training, the earlier windows the unroll starts from). Because an item depends on nothing but
its step, what the training loop sees is the same with 0, 1 or 8 worker processes, before and after a resume.

Reads are chunk-aware: each batch's pairs are read in (trajectory, frame) order, which is the order of
the file's chunks (one trajectory, a run of frames, the whole frame per chunk), so pairs that share a chunk
are served from h5py's chunk cache and the disk is read front to back; the rows are then put back in
batch order. HDF5 handles are opened lazily in each worker (TrajectoryFile reopens after a fork).

A split of at most pairs.IN_MEMORY_BYTES (256 MiB as float32) is instead read once and held in memory, and a
batch is one indexing step (0.7 ms for 128 pairs of the 32x32 quick data, against 8 ms read pair by pair):
on a GPU the per-pair reads were most of a small model's step. Larger splits stream as follows.

Memory is bounded independently of the data set's size. Per process it holds, besides the model,
    - the batches in flight: (1 + workers * prefetch_factor) items of batch_size / world_size pairs, each
      (window + 1 [+ window for unroll]) frames;
    - h5py's chunk cache: TrajectoryFile.CHUNK_CACHE_BYTES (4 MiB) per field dataset opened;
    - the NaN/Inf check and fingerprint at start-up: one block of at most fingerprint.BLOCK_BYTES (8 MiB) at a time
      (read, stacked and tested: about 2.3 x that);
    - the residual scale (model.output "residual", estimated once): 2048 frame increments, read 256
      pairs at a time.
Nothing reads a large split whole, so a training set many times larger than RAM streams from disk. The one
term that grows with the data is the label bank (one fixed label per pair, Algorithm 1): n_pairs x
label_dim x 4 bytes, 256 bytes per pair at d = 64, i.e. 1/64 of the data for 64x64 frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from stochlift.lifting.distributed import shard
from stochlift.lifting.labels import batch_indices
from stochlift.lifting.pairs import PairSet

PREFETCH_FACTOR = 2  # items each worker keeps ready


def read_pairs(pairs: PairSet, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """pairs.batch(index), reading the pairs in file order (chunk by chunk) and returning them in batch order."""
    order = np.argsort(index, kind="stable")
    windows, targets = pairs.batch(index[order])
    inverse = torch.from_numpy(np.argsort(order, kind="stable"))
    return windows[inverse], targets[inverse]


class StepBatches(Dataset):
    """Map-style dataset over training steps: item `step` is this rank's part of that step's batch."""

    def __init__(
        self, pairs: PairSet, batch_size: int, seed: int, steps: int, *, rank: int = 0, world_size: int = 1,
        unroll: int = 0, start_weight: float = 1.0,
    ) -> None:
        self.pairs, self.batch_size, self.seed, self.steps = pairs, batch_size, seed, steps
        self.rank, self.world_size, self.unroll = rank, world_size, unroll
        self.weights = pairs.sampling_weights(start_weight)

    def global_batch(self, step: int) -> np.ndarray:
        """The pairs of a step's whole batch (every rank computes the same)."""
        return batch_indices(self.pairs.n_pairs, self.batch_size, self.seed, step, self.weights)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        index = shard(self.global_batch(step), self.rank, self.world_size)
        window, target = read_pairs(self.pairs, index)
        item = {"step": torch.tensor(step), "index": torch.from_numpy(index), "window": window, "target": target}
        if self.unroll:  # the windows that pushforward rolls out from (see train.pushed_window)
            back = np.minimum(self.unroll, self.pairs.target_frames(index) - 1)
            item["start"] = read_pairs(self.pairs, index - back)[0]
        return item


def step_loader(dataset: StepBatches, first: int, last: int, *, workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """Items first .. last-1 in order; `workers` processes prefetch the next ones (0: read in this process)."""
    extra: dict[str, Any] = {"persistent_workers": True, "prefetch_factor": PREFETCH_FACTOR} if workers else {}
    return DataLoader(
        dataset, batch_size=None, sampler=range(first, last), num_workers=workers, pin_memory=pin_memory, **extra
    )
