"""Streaming distribution metrics between a reference and a generated ensemble of physics trajectories.

The two ensembles are not paired: every score compares distributions. Chunks [n_i, T, C, H, W] are
consumed one at a time; only O(n*T) scalars (crossing times, masses) and O(T*C*H*W) float64 running sums
are kept, so ensembles of 10,000 trajectories never sit in memory at once.

Conventions:
- Frame 0 is the given initial condition (identical in both ensembles), so every time average runs over
  t = 1..T-1. Including it would dilute the scores with a term that is zero by construction.
- Relative scores divide by the reference spread. For mass this is a ratio of means,
  mean_t W2_t / mean_t std_t, rather than a mean of ratios: a time with zero spread (the fixed initial
  frame, or a frame before the wave spreads) cannot divide by zero, and since the W2 distance from a
  point mass to a distribution is at least that distribution's std, a model collapsed onto one
  trajectory scores >= 1 at every time and hence also in the ratio of means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from stochlift.data.readers import TrajectoryReader
from stochlift.errors import StochliftError
from stochlift.metrics.quantities import as_trajectories, mass
from stochlift.metrics.wasserstein import wasserstein_1d, wasserstein_1d_per_column

__all__ = ["Crossing", "PhysicsEvaluator", "PhysicsMetrics", "evaluate_physics", "evaluate_physics_files"]

Crossing = Callable[[np.ndarray], np.ndarray]  # a chunk [n, T, C, H, W] -> n crossing times in [0, 1]


@dataclass
class PhysicsMetrics:
    """Distribution scores of a generated ensemble against a reference one (see the module docstring)."""

    wct: float
    wct_relative: float | None
    mass_w2: float
    mass_w2_relative: float | None
    mass_w2_per_time: list[float]
    mean_field_rmse: float
    std_field_rmse: float
    final_std_ratio: float | None
    n_reference: int
    n_generated: int
    threshold: float | None
    ring_width: int | None
    tau_reference: np.ndarray = field(repr=False)
    tau_generated: np.ndarray = field(repr=False)
    mass_reference: np.ndarray = field(repr=False)
    mass_generated: np.ndarray = field(repr=False)
    crossing: dict[str, Any] = field(default_factory=dict)  # which crossing time, with its settings

    def to_dict(self) -> dict[str, Any]:
        """The scores as plain JSON-able Python values (the raw per-trajectory arrays are left out)."""
        return {
            "wct": self.wct,
            "wct_relative": self.wct_relative,
            "mass_w2": self.mass_w2,
            "mass_w2_relative": self.mass_w2_relative,
            "mass_w2_per_time": list(self.mass_w2_per_time),
            "mean_field_rmse": self.mean_field_rmse,
            "std_field_rmse": self.std_field_rmse,
            "final_std_ratio": self.final_std_ratio,
            "n_reference": self.n_reference,
            "n_generated": self.n_generated,
            "threshold": self.threshold,
            "ring_width": self.ring_width,
            # another crossing time than the Wave ring names itself and its settings (Wave keys unchanged)
            **({} if self.crossing.get("crossing", "ring") == "ring" else
               {k: v for k, v in self.crossing.items() if k not in ("threshold", "ring_width")}),
        }


class _Ensemble:
    """Per-trajectory quantities and per-pixel float64 running sums of one ensemble."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.n = 0
        self.frame_shape: tuple[int, ...] | None = None
        self.taus: list[np.ndarray] = []
        self.masses: list[np.ndarray] = []
        self.total: np.ndarray | None = None
        self.total_sq: np.ndarray | None = None

    def add(self, chunk: np.ndarray, crossing: Callable[[np.ndarray], np.ndarray]) -> None:
        if self.total is None:
            self.frame_shape = chunk.shape[1:]
            self.total = np.zeros(self.frame_shape, dtype=np.float64)
            self.total_sq = np.zeros(self.frame_shape, dtype=np.float64)
        for trajectory in chunk:  # one at a time: float64 temporaries stay O(T*C*H*W), not O(chunk)
            values = trajectory.astype(np.float64)
            self.total += values
            self.total_sq += values * values
        self.taus.append(np.asarray(crossing(chunk), dtype=np.float64))
        self.masses.append(mass(chunk))
        self.n += chunk.shape[0]

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel mean and std (ddof 0) fields [T, C, H, W]."""
        assert self.total is not None and self.total_sq is not None  # result() asks only after an add
        mean = self.total / self.n
        var = np.maximum(self.total_sq / self.n - mean * mean, 0.0)  # rounding can dip just below 0
        return mean, np.sqrt(var)


def _ratio(num: float, den: float) -> float | None:
    """num / den, or None when the reference spread den is zero (a relative score is then undefined)."""
    return float(num / den) if den > 0 else None


def _rmse(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x - y))))


class PhysicsEvaluator:
    """Accumulate reference and generated chunks in any order, then call `result()`.

    `crossing` maps a chunk [n, T, C, H, W] to n crossing times in [0, 1]: the problem's (the Wave ring,
    the Flow producer's corner: stochlift.problems). Its `describe()` dict, when it has one, reports its
    settings in the metrics.
    """

    def __init__(self, crossing: Crossing) -> None:
        self.crossing = crossing
        describe = getattr(crossing, "describe", None)
        described: dict[str, Any] = describe() if describe is not None else {"crossing": "custom"}
        self._described = dict(described)
        self.threshold = described.get("threshold")
        self.ring_width = described.get("ring_width")
        self._reference = _Ensemble("reference")
        self._generated = _Ensemble("generated")

    def add_reference(self, chunk: ArrayLike) -> None:
        """Add a chunk [n_i, T, C, H, W] of true trajectories."""
        self._add(self._reference, chunk)

    def add_generated(self, chunk: ArrayLike) -> None:
        """Add a chunk [n_i, T, C, H, W] of generated trajectories."""
        self._add(self._generated, chunk)

    def _add(self, ensemble: _Ensemble, chunk: ArrayLike) -> None:
        arr = as_trajectories(chunk, f"{ensemble.name} chunk")
        self._check_frame_shape(ensemble.name, arr.shape)
        if not np.all(np.isfinite(arr)):
            raise StochliftError(f"{ensemble.name} chunk of shape {arr.shape} contains NaN or Inf values")
        if arr.shape[0]:
            ensemble.add(arr, self.crossing)

    def _check_frame_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """Every chunk of both ensembles must share T, C, H, W (ensemble sizes may differ)."""
        for other in (self._reference, self._generated):
            if other.frame_shape is not None and other.frame_shape != shape[1:]:
                raise StochliftError(
                    f"{name} chunk has shape {shape} but earlier {other.name} chunks have shape "
                    f"[n, {', '.join(map(str, other.frame_shape))}]: T, C, H, W must match"
                )

    def result(self) -> PhysicsMetrics:
        """The scores over everything added so far."""
        for ensemble in (self._reference, self._generated):
            if ensemble.n == 0:
                raise StochliftError(f"no {ensemble.name} trajectories were given")
        ref, gen = self._reference, self._generated
        tau_ref, tau_gen = np.concatenate(ref.taus), np.concatenate(gen.taus)
        mass_ref, mass_gen = np.concatenate(ref.masses), np.concatenate(gen.masses)

        wct = wasserstein_1d(tau_ref, tau_gen)
        mass_w2_per_time = wasserstein_1d_per_column(mass_ref, mass_gen)
        mass_w2 = float(mass_w2_per_time[1:].mean())
        mean_ref, std_ref = ref.mean_std()
        mean_gen, std_gen = gen.mean_std()
        return PhysicsMetrics(
            wct=wct,
            wct_relative=_ratio(wct, float(tau_ref.std())),
            mass_w2=mass_w2,
            mass_w2_relative=_ratio(mass_w2, float(mass_ref[:, 1:].std(axis=0).mean())),
            mass_w2_per_time=[float(v) for v in mass_w2_per_time],
            mean_field_rmse=_rmse(mean_gen[1:], mean_ref[1:]),
            std_field_rmse=_rmse(std_gen[1:], std_ref[1:]),
            final_std_ratio=_ratio(float(std_gen[-1].mean()), float(std_ref[-1].mean())),
            n_reference=ref.n,
            n_generated=gen.n,
            threshold=self.threshold,
            ring_width=self.ring_width,
            tau_reference=tau_ref,
            tau_generated=tau_gen,
            mass_reference=mass_ref,
            mass_generated=mass_gen,
            crossing=dict(self._described),
        )


def evaluate_physics(
    reference_chunks: Iterable[ArrayLike], generated_chunks: Iterable[ArrayLike], crossing: Crossing
) -> PhysicsMetrics:
    """Score two streams of chunks [n_i, T, C, H, W] (e.g. generators reading from disk)."""
    evaluator = PhysicsEvaluator(crossing)
    for chunk in reference_chunks:
        evaluator.add_reference(chunk)
    for chunk in generated_chunks:
        evaluator.add_generated(chunk)
    return evaluator.result()


def evaluate_physics_files(reference: TrajectoryReader, generated: TrajectoryReader, crossing: Crossing, *,
                           reference_split: str, generated_split: str, chunk_size: int = 64) -> PhysicsMetrics:
    """`evaluate_physics` of two files' splits, streamed chunk by chunk."""
    return evaluate_physics(reference.iter_chunks(reference_split, chunk_size),
                            generated.iter_chunks(generated_split, chunk_size), crossing)
