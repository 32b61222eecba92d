"""Which data a run trained on: a content fingerprint of the training split, and the data's identity.

`--resume` compares the fingerprint with the one the run recorded, so a run never continues on other data
that happens to sit at the same path, and continues on its own data wherever that has moved (a copy, a
new folder: `--resume --data NEWPATH`).

The choice: SHA-256 of the values the model trains on (the split's first `data.trajectories` rows, as
stored; The Well's files as normalised), read block by block. Training already reads every block once at
start-up to refuse NaN/Inf, so the fingerprint is computed in that same pass: one hash over bytes already in
memory (about 1 GB/s per core), not a second read. Cheaper stand-ins were rejected: the file's size, shape
or header cannot tell a replaced file with the same shape (the same simulation with another seed) from the
original, and a modification time changes with every copy and survives an edit in place. Video (uint8)
files are not NaN-checked; for them the hash alone reads the split, as stored bytes.

The fingerprint is SHA-256 over the blocks' own digests, in block order: under torchrun each rank reads and
hashes its share of the blocks and the digests are summed over ranks (each block's row is filled by one).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from stochlift.errors import StochliftError

if TYPE_CHECKING:
    from stochlift.data.trajectories import TrajectoryFile
    from stochlift.data.well import WellSource
    from stochlift.lifting.distributed import DistContext

BLOCK_BYTES = 8 << 20  # blocks of at most about this many bytes (as float32); fixed: it shapes the fingerprint


@dataclass
class Block:
    """One block of the training data: how to read it, and how to name it in an error."""

    read: Callable[[], np.ndarray]
    where: str


def scan(blocks: list[Block], ctx: DistContext, *, check_finite: bool = True) -> str:
    """Read every block (this rank's share), refuse NaN/Inf, and return the data's fingerprint."""
    digests = np.zeros((len(blocks), 32), dtype=np.uint8)
    bad = None
    for i, block in enumerate(blocks):
        if i % ctx.world_size != ctx.rank:
            continue
        values = np.ascontiguousarray(block.read())
        if check_finite and values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = block.where
            break
        digests[i] = np.frombuffer(hashlib.sha256(values.data).digest(), dtype=np.uint8)
    if ctx.any(bad is not None):
        raise StochliftError(bad or "NaN or Inf in the training data (found by another rank)")
    if ctx.enabled:
        digests = ctx.sum(torch.from_numpy(digests.astype(np.int64)).to(ctx.device)).cpu().numpy().astype(np.uint8)
    return "sha256:" + hashlib.sha256(digests.tobytes()).hexdigest()


def file_blocks(file: TrajectoryFile, split: str, rows: int) -> list[Block]:
    """Blocks of whole trajectories of the split's first `rows` rows, as stored (uint8 video as bytes)."""
    per = max(1, BLOCK_BYTES // (4 * file.meta.frames * math.prod(file.meta.frame_shape)))
    blocks = []
    for start in range(0, rows, per):
        stop = min(start + per, rows)
        blocks.append(Block(read=functools.partial(file.read, split, slice(start, stop), raw=True),
                            where=f"{file.path}: split {split!r} contains NaN or Inf (in trajectories "
                                  f"{start}..{stop - 1})"))
    return blocks


def well_blocks(well: WellSource) -> list[Block]:
    """The Well's files in blocks, as the model sees them (normalised)."""
    return [Block(read=functools.partial(well.read_block, f, r, t), where=well.describe_block(f, r, t))
            for f, r, t in well.blocks(BLOCK_BYTES)]


def array_fingerprint(data: np.ndarray) -> str:
    """The fingerprint of trajectories held in memory (one block)."""
    from stochlift.lifting.distributed import DistContext

    return scan([Block(read=lambda: data, where="the training trajectories contain NaN or Inf")], DistContext())


def data_identity(meta: Any, fingerprint: str | None, *, path: str | None, split: str, rows: int) -> dict[str, Any]:
    """What a run records about its training data (TrainingState.data): enough to check later inputs."""
    return {
        "fingerprint": fingerprint,
        "path": path,
        "split": split,
        "trajectories": rows,
        "problem": meta.problem if meta is not None else None,
        "field_names": list(meta.field_names) if meta is not None else None,
        "frame_shape": list(meta.frame_shape) if meta is not None else None,
        "dataset_name": meta.dataset_name if meta is not None else None,
    }


def check_same_kind(recorded: dict[str, Any], meta: Any, what: str) -> None:
    """Refuse frames of another problem or with other fields than the run trained on (shapes may agree)."""
    for key, found in (("problem", meta.problem), ("field_names", list(meta.field_names))):
        expected = recorded.get(key)
        if expected is not None and expected != found:
            raise StochliftError(f"{what} holds {key.replace('_', ' ')} {found!r}, but the run was trained on "
                                 f"{expected!r} data ({recorded.get('dataset_name') or recorded.get('path')})")
