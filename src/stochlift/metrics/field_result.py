"""The result of `stochlift.metrics.field_scores`: every score as value, floor and ratio, per time and averaged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FieldScores", "Score"]


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _divide(value: np.ndarray | float, floor: np.ndarray | float) -> np.ndarray:
    """value / floor, NaN where the floor is not positive and finite (no ratio to read)."""
    v, f = np.asarray(value, dtype=np.float64), np.asarray(floor, dtype=np.float64)
    ok = np.isfinite(f) & (f > 0)
    return np.where(ok, v / np.where(ok, f, 1.0), np.nan)


@dataclass
class Score:
    """One score: time-averaged value, floor and ratio, and the per-time curves (None for a once-only QoI)."""

    value: float | None  # mean over the scored frames of the model's score
    floor: float | None  # mean over the scored frames of the truth-vs-truth score
    ratio: float | None  # headline: mean over the scored frames of value / floor
    ratio_of_means: float | None  # value / floor of the time means
    per_time: dict[str, list[float | None]] | None = None  # "value", "floor", "ratio": one per scored frame

    @classmethod
    def from_per_time(cls, value: np.ndarray, floor: np.ndarray) -> Score:
        ratio = _divide(value, floor)
        mean_value, mean_floor = _finite_mean(value), _finite_mean(floor)
        return cls(
            value=_finite_or_none(mean_value),
            floor=_finite_or_none(mean_floor),
            ratio=_finite_or_none(_finite_mean(ratio)),
            ratio_of_means=_finite_or_none(float(_divide(mean_value, mean_floor))),
            per_time={name: [_finite_or_none(x) for x in curve]
                      for name, curve in (("value", value), ("floor", floor), ("ratio", ratio))},
        )

    @classmethod
    def from_once(cls, value: float, floor: float) -> Score:
        ratio = _finite_or_none(float(_divide(value, floor)))
        return cls(value=_finite_or_none(value), floor=_finite_or_none(floor), ratio=ratio, ratio_of_means=ratio)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "floor": self.floor, "ratio": self.ratio,
                               "ratio_of_means": self.ratio_of_means}
        if self.per_time is not None:
            out["per_time"] = {name: list(curve) for name, curve in self.per_time.items()}
        return out


@dataclass
class FieldScores:
    """Every score of a generated ensemble against the truth, relative to the truth-vs-truth floor."""

    scores: dict[str, Score]  # score name -> Score (see stochlift.metrics.field_scores for the names)
    frames: list[int]  # indices of the scored frames (t >= initial_frames)
    time: list[float]  # their physical times
    state_shape: list[int]  # one frame: [C], [C, X], [C, H, W], ...
    n_generated: int
    n_truth: int
    ensemble_size: int  # m: members per side (G' and the truth half A)
    reference_size: int  # |B|: the truth half both sides are scored against
    initial_frames: int
    rank_histogram: dict[str, list[int]]  # "value" (G' vs B), "floor" (A vs B): counts [m + 1], all frames, splits
    options: dict[str, Any] = field(default_factory=dict)  # n_splits, n_projections, rank_points, seed, ...

    def ratios(self) -> dict[str, float | None]:
        """{score name: headline ratio}."""
        return {name: score.ratio for name, score in self.scores.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (Python floats, ints, lists, None)."""
        return {
            "scores": {name: score.to_dict() for name, score in self.scores.items()},
            "frames": [int(t) for t in self.frames],
            "time": [float(t) for t in self.time],
            "state_shape": [int(n) for n in self.state_shape],
            "n_generated": int(self.n_generated),
            "n_truth": int(self.n_truth),
            "ensemble_size": int(self.ensemble_size),
            "reference_size": int(self.reference_size),
            "initial_frames": int(self.initial_frames),
            "rank_histogram": {side: [int(c) for c in counts] for side, counts in self.rank_histogram.items()},
            "options": {key: value.item() if isinstance(value, np.generic) else value
                        for key, value in self.options.items()},
        }

    def summary(self) -> str:
        """A text table: score, value, floor, ratio (headline: mean of per-time ratios), ratio of time means."""
        def number(x: float | None, spec: str) -> str:
            return format("-", ">" + spec.split(".")[0]) if x is None else format(x, spec)

        width = max(len("score"), *(len(name) for name in self.scores))
        lines = [f"{len(self.frames)} frames scored (t >= {self.initial_frames}); ensembles of {self.ensemble_size} "
                 f"against {self.reference_size} true trajectories, floor from two halves of the truth "
                 f"({self.options.get('n_splits', '?')} splits); ratio 1 = as good as the truth itself",
                 f"{'score':<{width}}  {'value':>10}  {'floor':>10}  {'ratio':>7}  {'ratio of means':>14}"]
        for name, s in self.scores.items():
            lines.append(f"{name:<{width}}  {number(s.value, '10.4g')}  {number(s.floor, '10.4g')}  "
                         f"{number(s.ratio, '7.2f')}  {number(s.ratio_of_means, '14.2f')}")
        return "\n".join(lines)
