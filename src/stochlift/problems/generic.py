"""Data of no built-in problem (`problem = "generic"`, what `stochlift data import` writes): any state.

Vectors, 1-D and 2-D fields are scored per time by `stochlift.metrics.field_scores`, each score relative to
its floor (the same score between two halves of the true ensemble): energy score, CRPS, spread-skill,
rank-histogram flatness, sliced W2 of whole frames, energy distance, W2 of the field mean and of the mean
|x| and, for fields, the power-spectrum error; user quantities of interest plug in (`qoi`). Another
problem's quantity (the Wave ring crossing, say) is never applied to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from stochlift.data.readers import TrajectoryReader
from stochlift.metrics.field_result import FieldScores
from stochlift.metrics.field_scores import field_scores_files
from stochlift.metrics.qoi import QoI
from stochlift.problems.base import Metrics, Problem, QuantityView, Target

# the ratios to the floor that say "calibrated" at a glance (issue 20's criterion: within 2x of the floor)
HEADLINE_SCORES = ("energy_score", "sliced_w2")
MIN_TRUTH = 4  # the floor compares two halves of the truth of at least two trajectories each


class GenericProblem(Problem):
    name = "generic"
    description = "any trajectories: vectors, 1-D or 2-D fields (imported or written by your own code)"
    selection_keys = ("energy_score_ratio", "sliced_w2_ratio")
    targets = tuple(Target(f"{name}_ratio", 2.0, f"{name.replace('_', ' ').replace('w2', 'W2')} / truth-vs-truth floor",
                           "issue 20's criterion: within twice the sampling noise of the truth itself")
                    for name in HEADLINE_SCORES)
    scores_qoi = True

    def evaluate(self, reference: TrajectoryReader, generated: TrajectoryReader, *, reference_split: str,
                 generated_split: str, qoi: Mapping[str, QoI] | None = None, **options: Any) -> GenericMetrics:
        n_truth, n_generated = reference.splits[reference_split], generated.splits[generated_split]
        scores, notes = None, []
        if n_truth >= MIN_TRUTH and n_generated >= 2:
            scores = field_scores_files(reference, generated, truth_split=reference_split,
                                        generated_split=generated_split, qoi=qoi)
        else:
            notes.append(f"field scores skipped: their floor needs {MIN_TRUTH} true trajectories (two halves of two) "
                         f"and 2 generated ones, got {n_truth} and {n_generated}")
        return GenericMetrics(scores, mean_abs(reference, reference_split), mean_abs(generated, generated_split), notes)

    def views(self, metrics: Metrics) -> list[QuantityView]:
        assert isinstance(metrics, GenericMetrics)
        return [QuantityView("mass", "series", "mass over time", "mean |x| over the state", metrics.mass_reference,
                             metrics.mass_generated, "Each trajectory's mean |x| over its state at each time: "
                             "ensemble mean and 5-95% band, true vs generated.")]


def mean_abs(file: TrajectoryReader, split: str, chunk_size: int = 64) -> np.ndarray:
    """Each trajectory's mean |x| over its state at each frame, [n, T] (float64), read chunk by chunk."""
    return np.concatenate([np.abs(chunk).reshape(*chunk.shape[:2], -1).mean(axis=2, dtype=np.float64)
                           for chunk in file.iter_chunks(split, chunk_size)])


class GenericMetrics:
    """Field scores with floors, and each trajectory's mean |x| per frame for the picture; `to_dict` adds each
    headline ratio as a top-level key (energy_score_ratio, sliced_w2_ratio, ...) beside the full record."""

    def __init__(self, scores: FieldScores | None, mass_reference: np.ndarray, mass_generated: np.ndarray,
                 notes: list[str]) -> None:
        self.scores, self.mass_reference = scores, mass_reference
        self.mass_generated, self.notes = mass_generated, notes

    def to_dict(self) -> dict[str, Any]:
        sizes = {"n_reference": len(self.mass_reference), "n_generated": len(self.mass_generated)}
        if self.scores is None:
            return {**sizes, "notes": list(self.notes)}
        ratios = {f"{name}_ratio": ratio for name, ratio in self.scores.ratios().items()}
        return {**ratios, **sizes, "field_scores": self.scores.to_dict()}

    def summary(self) -> str:
        return self.scores.summary() if self.scores is not None else "; ".join(self.notes)
