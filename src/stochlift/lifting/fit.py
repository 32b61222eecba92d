"""The three-line path for a scientist with an array of trajectories: fit, sample, score.

    gen = stochlift.fit(X, budget="10m")            # X [N, T, *state]: vectors, 1-D or 2-D fields
    ens = gen.sample(x0, frames=50, n=256)          # x0: one state, or histories [k, *state] / [n, k, *state]
    print(stochlift.score(ens, truth).summary())    # every score with its truth-vs-truth floor

`fit` chooses the recipe from the data (stochlift.lifting.recipe: backbone, window, label dimension, batch,
learning rate, warm-up and steps, within the budget) and trains with the same loop as `stochlift train`, into
a run directory (a temporary one unless `out` is given), so the result can also be sampled, reported and
resumed from the command line.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from stochlift.config import RunConfig
from stochlift.errors import StochliftError
from stochlift.lifting.generator import Generator
from stochlift.lifting.pairs import ArraySource
from stochlift.lifting.recipe import RECIPE_FILE, Choice, recipe_for_source
from stochlift.lifting.rollout import rollout
from stochlift.lifting.train import train
from stochlift.metrics.field_result import FieldScores
from stochlift.metrics.field_scores import field_scores
from stochlift.metrics.qoi import QoI


@dataclass
class FittedGenerator:
    """A trained generator with what sampling it needs; `run_dir` holds it as a `stochlift train` run."""

    model: Generator
    config: RunConfig
    run_dir: Path
    choices: list[Choice]

    def sample(self, x0: ArrayLike, frames: int, n: int = 256, *, seed: int = 0, batch_size: int = 256) -> np.ndarray:
        """An ensemble [n, frames, *state] from `x0`: one state [*state] shared by all n, a history [k, *state]
        shared by all, or one history per member [n, k, *state]; the given frames come first."""
        shape = tuple(self.config.model.frame_shape or ())
        start = np.asarray(x0, dtype=np.float32)
        if start.shape == shape:
            start = start[None, None]
        elif start.shape[1:] == shape:
            start = start[None]
        if start.shape[2:] != shape or start.ndim != len(shape) + 2:
            raise StochliftError(f"x0 of shape {list(np.shape(x0))} does not fit states of shape {list(shape)}: give "
                                 f"one state {list(shape)}, a history [k, {', '.join(map(str, shape))}] or one per "
                                 "member [n, k, ...]")
        if len(start) == 1:
            start = np.repeat(start, n, axis=0)
        elif len(start) != n:
            raise StochliftError(f"x0 holds {len(start)} histories; give one (shared) or n = {n}")
        return rollout(self.model, start, frames, seed=seed, batch_size=batch_size)


def fit(
    trajectories: ArrayLike,
    *,
    budget: str | float | None = None,
    overrides: Sequence[str] = (),
    out: str | os.PathLike | None = None,
    periodic: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> FittedGenerator:
    """Train a generator on trajectories [N, T, *state] with the automatic recipe (within `budget`, e.g.
    "10m"); `overrides` ("train.steps=500", ...) change the chosen config; `periodic` says the fields wrap
    around. The recipe's choices and warnings are printed when `progress` is on."""
    source = ArraySource(np.asarray(trajectories))
    recipe = recipe_for_source(source, budget, overrides=overrides, periodic=periodic, seed=seed)
    if progress:
        print(recipe.describe())
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="stochlift-fit-")) / "run"
    result = train(recipe.config, run_dir, source=source, periodic=periodic, progress=progress,
                   files={RECIPE_FILE: recipe.to_dict()})
    return FittedGenerator(result.model, result.config, run_dir, recipe.choices)


def score(ensemble: ArrayLike, truth: ArrayLike, *, initial_frames: int = 1, qoi: Mapping[str, QoI] | None = None,
          seed: int = 0) -> FieldScores:
    """Every per-time score of a generated ensemble [n, T, *state] against true trajectories [m, T, *state],
    each with its floor (the same score between two halves of the truth) and ratio; `.summary()` is a table."""
    return field_scores(ensemble, truth, initial_frames=initial_frames, qoi=qoi, seed=seed)
