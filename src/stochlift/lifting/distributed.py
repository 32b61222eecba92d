"""torch.distributed plumbing for training and sampling: process group from torchrun's environment,
devices, shards.

    torchrun --nproc_per_node 2 -m stochlift train --data wave.h5 --config wave-quick --out runs/wave
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 -m stochlift train ...
    torchrun --nproc_per_node 8 -m stochlift sample --run-dir runs/wave --out samples.h5 --trajectories 4096

Every rank computes the same global batch of a step (`StepBatches.global_batch(step)`)
and takes its contiguous shard; with equal shards, the mean of the ranks' shard-mean gradients (what DDP's
all-reduce gives) is the global batch's mean gradient, so N processes train the same model as one process
with the same global batch, up to float summation order.
"""

from __future__ import annotations

import atexit
import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist

from stochlift.errors import StochliftError
from stochlift.lifting.fast import resolve_device

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
T = TypeVar("T")


@dataclass
class DistContext:
    """Where this process stands: rank among world_size processes, its device, and who writes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if dist.is_available() and dist.is_initialized():
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over all ranks (itself when alone)."""
        if not self.enabled:
            return value
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of a tensor over all ranks (itself when alone)."""
        if not self.enabled:
            return value
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (so all ranks raise together instead of hanging)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())



def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def setup(device: str | torch.device = "auto") -> DistContext:
    """Join the process group torchrun describes (nccl on CUDA, gloo on the CPU), or run alone.

    With CUDA each process takes GPU `LOCAL_RANK`. A process group that already exists is used as it is:
    the group is made once per process and torn down at exit, never re-made, because a second
    init_process_group on torchrun's rendezvous store can read the first one's keys and hang.
    """
    if not launched_by_torchrun() and not (dist.is_available() and dist.is_initialized()):
        return DistContext(device=resolve_device(device))
    if not dist.is_available():
        raise StochliftError("this torch build has no torch.distributed; run without torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise StochliftError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs here; "
                "lower --nproc_per_node to the number of GPUs"
            )
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": resolved} if resolved.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30), **kwargs)
        atexit.register(_destroy)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=resolved)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(rows, rank: int, world_size: int):
    """The contiguous block of `rows` (length divisible by world_size) that belongs to `rank`."""
    size = len(rows) // world_size
    return rows[rank * size : (rank + 1) * size]


def batch_shard(rows: int, batch_size: int, rank: int, world_size: int) -> range:
    """The batches (of `batch_size` rows; the last may be short) that `rank` rolls out: a contiguous block of
    whole batches, as even as can be (a rank gets none when there are fewer batches than ranks). Whole
    batches keep each batch's label stream, so the ranks together give the one-process samples."""
    batches = -(-rows // batch_size)
    return range(batches * rank // world_size, batches * (rank + 1) // world_size)


def agree(ctx: DistContext, work: Callable[[], T]) -> T:
    """Run `work` here, then raise on every rank if it raised on any (one collective, also a barrier): no
    rank is left waiting for a rank that died, and none goes on past a failed step."""
    failure: Exception | None = None
    result = None
    try:
        result = work()
    except Exception as exc:  # re-raised below, after the ranks have agreed
        failure = exc
    if ctx.any(failure is not None):
        if failure is not None:
            raise failure
        raise StochliftError("another process of this torchrun failed (its error is in its output); stopping")
    return cast(T, result)  # work() returned


def check_batch(batch_size: int, world_size: int, grad_accum: int) -> int:
    """Rows per micro-batch on one rank; the global batch must split evenly (equal shards keep the
    all-reduced mean equal to the global mean)."""
    if batch_size % (world_size * grad_accum):
        raise StochliftError(
            f"train.batch_size={batch_size} must be divisible by world_size x train.grad_accum = "
            f"{world_size} x {grad_accum} = {world_size * grad_accum}; pick a batch size that is a multiple"
        )
    return batch_size // (world_size * grad_accum)


def autocast_dtype(precision: str, device: torch.device, explicit_device: bool) -> torch.dtype | None:
    """The autocast dtype of train.precision; mixed precision is a GPU feature.

    On the CPU, fp32 is used: an error when the config also says train.device=cpu (a contradiction the
    user wrote), a warning when "auto" found no GPU (the same config then runs on a laptop).
    """
    if precision not in PRECISIONS:
        raise StochliftError(f"train.precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is not None and device.type != "cuda":
        if explicit_device:
            raise StochliftError(f"train.precision={precision} needs a CUDA device; "
                                 "use train.precision=fp32 on the CPU")
        import warnings

        warnings.warn(f"train.precision={precision} ignored: no CUDA device, training in fp32", stacklevel=2)
        return None
    return dtype
