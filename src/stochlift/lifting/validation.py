"""A validation score during training: nanoGPT's `estimate_loss`, for a generator.

A generator's training loss says how well it fits its labelled pairs, not whether its rollouts look like the
data. So every `train.validate_every` steps (and at the end) a few rollouts, one from the first frame of
each of the first `train.validation_trajectories` validation trajectories, are scored against those
trajectories in distribution (stochlift.metrics.distribution: fair energy score and spread-skill ratio,
averaged over the generated frames) and logged beside the loss. It costs one small rollout; it changes
nothing in training (its random streams are its own, and the weights are only read).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from stochlift.config import RunConfig
from stochlift.data.trajectories import TrajectoryFile
from stochlift.lifting.generator import Generator, as_module
from stochlift.lifting.pairs import FileSource, FrameSource
from stochlift.lifting.training import EMA
from stochlift.metrics.distribution import distribution_scores

VALIDATION_SPLIT = "valid"


@dataclass
class Validation:
    """The validation trajectories [n, T, *frame] and how to roll out against them."""

    truth: np.ndarray
    seed: int
    constraint: nn.Module | None = None
    display: dict[str, Any] = field(default_factory=dict)  # how its problem colours the fields (the run log's pictures)

    @classmethod
    def from_config(cls, config: RunConfig, source: FrameSource) -> Validation | None:
        """The run's validation set: its data file's "valid" split, when the file has one and the config
        asks for a score (train.validation_trajectories > 0); the fair scores need two trajectories at least."""
        n = config.train.validation_trajectories
        if n <= 0 or not isinstance(source, FileSource) or source.file.splits.get(VALIDATION_SPLIT, 0) < 2:
            return None
        from stochlift.problems import PROBLEMS, Problem, constraint_for, get_problem

        file: TrajectoryFile = source.file
        truth = file.read(VALIDATION_SPLIT, slice(0, max(2, min(n, file.splits[VALIDATION_SPLIT]))))
        problem = get_problem(file.meta.problem) if file.meta.problem in PROBLEMS else Problem()
        return cls(truth, config.train.seed, constraint_for(config.model.constraint, file.meta), problem.display(truth))

    def evaluate(self, model: Generator, ema: EMA | None = None) -> tuple[dict[str, float], np.ndarray]:
        """val_energy_score and val_spread_skill of rollouts of the model (its EMA weights when kept), and
        those rollouts [n, T, *frame]."""
        from stochlift.lifting.rollout import rollout

        sampled = model
        if ema is not None and ema.weights is not None:
            sampled = copy.deepcopy(model)
            ema.copy_to(as_module(sampled))
        generated = rollout(sampled, self.truth[:, :1], frames=self.truth.shape[1], seed=self.seed,
                            batch_size=len(self.truth), constraint=self.constraint)
        model.train()
        scores = distribution_scores(generated, self.truth, rank_points=64, n_projections=32, seed=self.seed)
        return {"val_energy_score": _number(scores.mean.get("energy_score")),
                "val_spread_skill": _number(scores.mean.get("spread_skill"))}, generated


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)

