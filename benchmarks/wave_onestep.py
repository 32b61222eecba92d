"""One-step diagnostics of a trained Wave run: does a single step from TRUE windows already drift?

    python benchmarks/wave_onestep.py RUN_DIR DATA.h5 [--trajectories 128]

For a few times t, feeds the true window (frames t-m+1..t of held-out test trajectories) to the model
and compares the predicted frame t+1 with the truth: mean |u| (the mass), RMSE with fresh labels and
with xi = 0, and the spread that the label alone produces. Prints a table (no files: a diagnostic).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from stochlift.data.trajectories import TrajectoryFile
from stochlift.lifting.pairs import ArraySource, PairSet
from stochlift.lifting.runs import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("--trajectories", type=int, default=128)
    args = parser.parse_args()
    model, config, _ = load_run(args.run)
    file = TrajectoryFile(args.data)
    u = file.read("test", slice(0, args.trajectories))[:, :, 0]
    frames = u.shape[1]
    pairs = PairSet(ArraySource(u[:, :, None]), config.model.window, config.model.history_padding)
    generator = torch.Generator().manual_seed(1)
    print("   t  true|u|   pred|u|  pred|u|(xi=0)  rmse    rmse(xi=0)  label-std")
    for t in sorted({1, 3, 8, 16, 24, 32, 48, frames - 2}):
        window, truth = pairs.batch(np.arange(len(u)) * pairs.pairs_per_trajectory + t)  # targets t + 1
        with torch.no_grad():
            xi = [torch.randn(len(window), model.label_dim, generator=generator) for _ in range(2)]
            fresh, again = (model(window, x)[:, 0].numpy() for x in xi)
            mean = model(window, torch.zeros_like(xi[0]))[:, 0].numpy()
        truth = truth[:, 0].numpy()
        rmse = lambda p: float(np.sqrt(np.mean((p - truth) ** 2)))  # noqa: B023 (called in this iteration only)
        label_std = float(np.sqrt(np.mean((fresh - again) ** 2) / 2))
        print(f"{t:4d}  {np.abs(truth).mean():.5f}  {np.abs(fresh).mean():.5f}  {np.abs(mean).mean():.5f}"
              f"        {rmse(fresh):.5f} {rmse(mean):.5f}     {label_std:.5f}")


if __name__ == "__main__":
    main()
