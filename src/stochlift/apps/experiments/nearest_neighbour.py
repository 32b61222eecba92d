"""Appendix C: does the model generate new samples or retrieve memorised ones?

For each generated trajectory g: its nearest training trajectory n(g), and n(g)'s own nearest training
neighbour n'(g). The ratio |g - n(g)| / |n(g) - n'(g)| is near 1 when g is as far from the training set
as training samples are from each other (a new sample) and near 0 when g copies one. Held-out true
trajectories give the reference value of genuinely new samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from stochlift.apps.experiments import ExperimentResult
from stochlift.apps.experiments.table1 import models
from stochlift.apps.experiments.workspace import PlannedRun, Workspace, model_config
from stochlift.apps.plots.experiments import save_field_grid, save_ratio_histogram
from stochlift.data.trajectories import TrajectoryFile


def nearest(queries: torch.Tensor, pool: torch.Tensor, exclude_self: bool = False,
            chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(index, distance) of each query's nearest row of `pool` (rows flattened), in chunks of queries."""
    index, distance = [], []
    for start in range(0, len(queries), chunk):
        d = torch.cdist(queries[start : start + chunk], pool)
        if exclude_self:
            rows = torch.arange(start, start + len(d))
            d[torch.arange(len(d)), rows] = float("inf")
        best = d.min(dim=1)
        index.append(best.indices.numpy())
        distance.append(best.values.numpy())
    return np.concatenate(index), np.concatenate(distance)


def novelty_ratios(samples: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: the ratio, its nearest training index and that one's nearest training neighbour."""
    pool = torch.from_numpy(train.reshape(len(train), -1).astype(np.float64))
    queries = torch.from_numpy(samples.reshape(len(samples), -1).astype(np.float64))
    nn_index, nn_distance = nearest(queries, pool)
    own_index, own_distance = nearest(pool, pool, exclude_self=True)
    return nn_distance / np.maximum(own_distance[nn_index], 1e-30), nn_index, own_index[nn_index]


def planned_runs(ws: Workspace, settings: dict[str, Any]) -> list[PlannedRun]:
    """The table's SL model on each problem."""
    _, _, sl_overrides = models(settings)[0]
    return [PlannedRun(problem, "sl", model_config(settings["base"], problem, ws.data(
        problem, settings["data_preset"], **settings.get("data_shrink", {})), sl_overrides))
        for problem in settings["problems"]]


def run(ws: Workspace, settings: dict[str, Any], folder: Path) -> ExperimentResult:
    numbers, figures, findings = {}, [], []
    for problem, plan in zip(settings["problems"], planned_runs(ws, settings)):
        data = ws.data(problem, settings["data_preset"], **settings.get("data_shrink", {}))
        run_dir = ws.run(*plan)
        samples = ws.samples(problem, "sl", run_dir, settings["trajectories"], settings.get("sample_seed", 1))
        file = TrajectoryFile(data)
        train = file.read("train", slice(None))
        generated = TrajectoryFile(samples).read("generated", slice(None))
        held_out = file.read("test", slice(0, len(generated)))
        ratio, nn_index, nn_own = novelty_ratios(generated, train)
        reference, _, _ = novelty_ratios(held_out, train)
        numbers[problem] = {
            "generated": {"median": float(np.median(ratio)), "p05": float(np.quantile(ratio, 0.05)),
                          "min": float(ratio.min()), "n": int(len(ratio))},
            "held_out_truth": {"median": float(np.median(reference)), "p05": float(np.quantile(reference, 0.05)),
                               "min": float(reference.min()), "n": int(len(reference))},
        }
        save_ratio_histogram(folder / f"nearest_neighbour_{problem}_ratios.png",
                             [("generated (SL)", ratio), ("held-out truth", reference)],
                             f"{problem}: whole-trajectory nearest-neighbour ratios")
        shown = np.random.default_rng(0).choice(len(generated), size=min(2, len(generated)), replace=False)
        frames = np.linspace(0, train.shape[1] - 1, 5).round().astype(int)
        rows = []
        for i in shown:
            rows += [(f"generated {i}", generated[i, frames, 0]), ("nearest training", train[nn_index[i], frames, 0]),
                     ("its nearest training", train[nn_own[i], frames, 0])]
        save_field_grid(folder / f"nearest_neighbour_{problem}.png", problem, rows, [f"t = {t}" for t in frames],
                        reference=train[:, frames[1:], 0])
        figures += [f"nearest_neighbour_{problem}.png", f"nearest_neighbour_{problem}_ratios.png"]
        g, h = numbers[problem]["generated"], numbers[problem]["held_out_truth"]
        findings.append(f"{problem}: median ratio {g['median']:.2f} for generated trajectories, {h['median']:.2f} for "
                        f"held-out true ones; the smallest generated ratio is {g['min']:.2f} (0 would be a copy).")
    lines = ["Whole trajectories: distance to the nearest training trajectory / that trajectory's distance to its own "
             "nearest training neighbour (about 1: new; near 0: memorised).", "",
             "| problem | set | median | 5% quantile | min | n |", "|---|---|---|---|---|---|"]
    for problem, sets in numbers.items():
        for name, s in sets.items():
            lines.append(f"| {problem} | {name} | {s['median']:.2f} | {s['p05']:.2f} | {s['min']:.2f} | {s['n']} |")
    return ExperimentResult(table="\n".join(lines), numbers=numbers, figures=figures, findings=findings)
