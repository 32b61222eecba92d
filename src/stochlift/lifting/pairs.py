"""Training pairs (Markov window -> next frame) drawn from trajectories in memory or in an HDF5 file.

Pair p of trajectory i targets frame t = 1..T-1; its window is frames t-m .. t-1. The history before
frame 0 is padded exactly as rollouts start: by repeating frame 0 (the authors' demo), or with zero frames
(padding "zeros"), so the network can tell a step without history from one with little motion.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch

from stochlift.config import HISTORY_PADDINGS
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.lifting.outputs import anchor


def check_padding(padding: str) -> None:
    """A padding name PairSet and initial_window accept (a user error otherwise)."""
    if padding not in HISTORY_PADDINGS:
        raise StochliftError(f"history padding must be one of {list(HISTORY_PADDINGS)}, got {padding!r}")


def initial_window(initial: torch.Tensor, window: int, padding: str = "repeat") -> torch.Tensor:
    """The last `window` frames of histories [N, k, *frame]; a shorter history is padded in front by
    repeating its first frame, or with zero frames. Training pairs and rollouts both start this way."""
    check_padding(padding)
    k = initial.shape[1]
    if k >= window:
        return initial[:, k - window :]
    filler = initial[:, :1].expand(-1, window - k, *initial.shape[2:])
    return torch.cat([torch.zeros_like(filler) if padding == "zeros" else filler, initial], dim=1)


class FrameSource(Protocol):
    """Anything that hands out frame ranges of trajectories."""

    n_trajectories: int
    frames: int
    frame_shape: tuple[int, ...]

    def read(self, trajectory: int, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of one trajectory as [stop - start, *frame_shape] float32."""
        ...

    def run_metadata(self) -> dict[str, Any]:
        """Files (name -> JSON-able content) a run trained on this source keeps beside its checkpoint."""
        ...


class ArraySource:
    """Trajectories already in memory, [N, T, *frame_shape] (e.g. vector states for tests)."""

    def __init__(self, trajectories: np.ndarray | torch.Tensor) -> None:
        if np.iscomplexobj(trajectories) or (isinstance(trajectories, torch.Tensor) and trajectories.is_complex()):
            raise StochliftError("trajectories are complex; train on real and imaginary parts as separate "
                                 "channels (or fields)")
        data = np.asarray(trajectories, dtype=np.float32)
        if data.ndim < 3:
            raise StochliftError(f"trajectories must be [N, T, *state], got shape {data.shape}")
        if not np.isfinite(data).all():
            raise StochliftError("trajectories contain NaN or Inf")
        self.data = data
        self.n_trajectories, self.frames = data.shape[:2]
        self.frame_shape = tuple(data.shape[2:])

    def read(self, trajectory: int, start: int, stop: int) -> np.ndarray:
        return self.data[trajectory, start:stop]

    def run_metadata(self) -> dict[str, Any]:
        return {}


# A split (its first `limit` trajectories) at most this large as float32 is read once and served from memory
IN_MEMORY_BYTES = 256 * 2**20


class FileSource:
    """One split of a trajectory file. A small one (as float32 at most `in_memory_bytes`, by default
    IN_MEMORY_BYTES) is read whole on first use and batches are gathered from memory in one step: on a GPU
    a step otherwise waits on one small HDF5 read per pair. A larger split is read window by window."""

    def __init__(self, file: TrajectoryFile, split: str = "train", limit: int | None = None,
                 in_memory_bytes: int | None = None) -> None:
        if split not in file.splits:
            raise StochliftError(f"{file.path} has no split {split!r}; it has {list(file.splits)}")
        rows = file.splits[split]
        if rows == 0:
            raise StochliftError(f"{file.path}: split {split!r} holds no trajectories; nothing to train on")
        if limit is not None and not 1 <= limit <= rows:
            raise StochliftError(f"data.trajectories={limit}, but split {split!r} of {file.path} holds {rows} "
                                 "trajectories")
        self.file, self.split = file, split
        self.n_trajectories = limit or rows  # the first `limit` only
        self.frames = file.meta.frames
        self.frame_shape = file.meta.frame_shape
        cap = IN_MEMORY_BYTES if in_memory_bytes is None else in_memory_bytes
        self._in_memory = 4 * self.n_trajectories * self.frames * math.prod(self.frame_shape) <= cap
        self._data: np.ndarray | None = None

    @property
    def data(self) -> np.ndarray | None:
        """The split's trajectories [N, T, *frame] in memory, or None when the split is streamed."""
        if self._in_memory and self._data is None:
            self._data = self.file.read(self.split, slice(0, self.n_trajectories))
        return self._data

    def read(self, trajectory: int, start: int, stop: int) -> np.ndarray:
        data = self.data
        if data is not None:
            return data[trajectory, start:stop]
        return self.file.read(self.split, trajectory, slice(start, stop))

    def run_metadata(self) -> dict[str, Any]:
        return {}


class PairSet:
    """All (window, next frame) pairs of a source, addressed by a flat pair index."""

    def __init__(self, source: FrameSource, window: int, padding: str = "repeat") -> None:
        if window < 1:
            raise StochliftError(f"the Markov window must be >= 1, got {window}")
        if source.frames < max(window, 2):
            raise StochliftError(
                f"trajectories have {source.frames} frames, fewer than the Markov window ({window}) "
                "plus a target frame; use longer trajectories or a smaller model.window"
            )
        check_padding(padding)
        self.source, self.window, self.padding = source, window, padding
        self.pairs_per_trajectory = source.frames - 1
        self.n_pairs = source.n_trajectories * self.pairs_per_trajectory

    def locate(self, pair: int) -> tuple[int, int]:
        """(trajectory, target frame) of a pair index."""
        trajectory, offset = divmod(int(pair), self.pairs_per_trajectory)
        return trajectory, offset + 1

    def sampling_weights(self, start_weight: float = 1.0) -> np.ndarray | None:
        """Probabilities of drawing each pair when the pairs of the first m - 1 steps (targets 1 .. m-1, whose
        windows are padded before frame 0) are drawn `start_weight` times as often as the others (None:
        uniform). From a shared x_0 those few pairs create the whole spread of the trajectories."""
        if start_weight == 1.0:
            return None
        weights = np.where(self.target_frames(np.arange(self.n_pairs)) < self.window, start_weight, 1.0)
        return weights / weights.sum()

    def target_frames(self, pairs: np.ndarray) -> np.ndarray:
        """The target frame index of each pair (vectorised `locate`)."""
        return np.asarray(pairs) % self.pairs_per_trajectory + 1

    def get(self, pair: int) -> tuple[np.ndarray, np.ndarray]:
        """(window [m, *frame], target [*frame]) of one pair."""
        trajectory, t = self.locate(pair)
        frames = self.source.read(trajectory, max(0, t - self.window), t + 1)
        window = initial_window(torch.from_numpy(frames[None, :-1]), self.window, self.padding)[0]
        return window.numpy(), frames[-1]

    def batch(self, pairs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked windows [B, m, *frame] and targets [B, *frame] as float32 tensors."""
        data = getattr(self.source, "data", None)
        if data is not None:
            return self._gather(data, np.asarray(pairs, dtype=np.int64))
        windows, targets = zip(*(self.get(p) for p in pairs))
        return torch.from_numpy(np.stack(windows)), torch.from_numpy(np.stack(targets))

    def _gather(self, data: np.ndarray, pairs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch` from trajectories in memory: one indexing step instead of a read per pair, padded as
        `initial_window` pads (frame 0 repeated, or zeros, where the window reaches before frame 0)."""
        trajectory, offset = np.divmod(pairs, self.pairs_per_trajectory)
        target = offset + 1
        frames = target[:, None] - self.window + np.arange(self.window)  # [B, m]; < 0 before frame 0
        windows = data[trajectory[:, None], np.maximum(frames, 0)]
        if self.padding == "zeros":
            windows[frames < 0] = 0
        windows, targets = (np.ascontiguousarray(a, dtype=np.float32) for a in (windows, data[trajectory, target]))
        return torch.from_numpy(windows), torch.from_numpy(targets)

    def increment_scale(self, output: str = "residual", n_samples: int = 2048, seed: int = 0) -> float:
        """Standard deviation of x_{t+1} - anchor (x_t for "residual") over a random subset of pairs.

        Used to scale the residual output anchor + s * R so the network regresses an O(1) quantity
        (the paper's Corollary 1: the update is small, so learn it at its own scale).
        """
        return self._sampled_std(lambda windows, targets: targets - anchor(windows, output), n_samples, seed)

    def frame_scale(self, n_samples: int = 2048, seed: int = 0) -> float:
        """Standard deviation of the frames themselves (the ARDM divides its condition window by it)."""
        return self._sampled_std(lambda windows, targets: targets, n_samples, seed)

    def largest(self, quantity, n_samples: int = 2048, seed: int = 0) -> float:
        """max |quantity(windows, targets)| over a random subset of pairs (the ARDM's clip bound)."""
        return float(self._sampled(quantity, n_samples, seed).abs().max())

    def _sampled_std(self, quantity, n_samples: int, seed: int) -> float:
        scale = float(self._sampled(quantity, n_samples, seed).std())
        return scale if scale > 0 else 1.0

    def _sampled(self, quantity, n_samples: int, seed: int) -> torch.Tensor:
        picks = np.sort(np.random.default_rng(seed).choice(self.n_pairs, size=min(n_samples, self.n_pairs),
                                                           replace=False))
        values = []
        for start in range(0, len(picks), 256):  # a few windows at a time: memory n_samples x one frame
            values.append(quantity(*self.batch(picks[start : start + 256])))
        return torch.cat(values)
