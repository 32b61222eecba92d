"""One point of the Wave recipe search: train wave-quick with overrides, sample, evaluate, diagnose.

    python benchmarks/wave_recipe.py NAME --data wave.h5 [--train-trajectories N] [SECTION.KEY=VALUE ...]

Appends one JSON line (metrics, timings, first-step diagnostics, command, machine, date) to
benchmarks/results/wave_recipe_search.jsonl. The first-step diagnostic measures how much of the spread of
the first frame (where all trajectories leave the same initial condition) the model reproduces: with
the labels it was trained on, and with fresh labels as in sampling.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from stochlift.config import apply_overrides, load_config
from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.lifting.labels import training_labels
from stochlift.lifting.model import LiftedModel
from stochlift.lifting.pairs import initial_window
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import train

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = ("wct_relative", "mass_w2_relative", "final_std_ratio", "mean_field_rmse", "std_field_rmse")


def first_step_spread(model: LiftedModel, data: TrajectoryFile, label_dim: int, seed: int) -> dict[str, float]:
    """Std of the first frame's change along its mean pattern: truth, trained labels, fresh labels."""
    frames = data.read("train", slice(None), slice(0, 2))[:, :, 0]
    n, pairs_per_trajectory = len(frames), data.meta.frames - 1
    change = (frames[:, 1] - frames[:, 0]).reshape(n, -1)
    pattern = change.mean(0) / np.linalg.norm(change.mean(0))
    window = initial_window(torch.from_numpy(frames[:, :1, None]), model.window, model.history_padding)
    trained = training_labels(n * pairs_per_trajectory, label_dim, seed)[::pairs_per_trajectory] if label_dim else None
    fresh = torch.randn(n, label_dim, generator=torch.Generator().manual_seed(0)) if label_dim else None
    with torch.no_grad():
        spread = {
            name: float(((model(window, xi)[:, 0].numpy() - frames[:, 0]).reshape(n, -1) @ pattern).std())
            for name, xi in (("trained", trained), ("fresh", fresh))
        }
    truth = float((change @ pattern).std())
    return {"first_step_std_true": truth, **{f"first_step_std_{k}_labels": v for k, v in spread.items()}}


def subset(data: Path, n_train: int, out: Path) -> Path:
    """The same file with only the first n_train training trajectories."""
    f = TrajectoryFile(data)
    splits = {s: f.read(s, slice(0, n_train) if s == "train" else slice(None)) for s in f.splits}
    write_trajectories(out, f.meta, splits)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/recipe"))
    parser.add_argument("--train-trajectories", type=int)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    run = args.out / args.name
    data = args.data
    if args.train_trajectories:
        data = subset(args.data, args.train_trajectories, args.out / f"{args.name}-data.h5")
    config = apply_overrides(load_config("wave-quick"), args.overrides)
    config.data.path = str(data)
    started = time.perf_counter()
    result = train(config, run, progress=False)
    trained = time.perf_counter()
    sample_to_file(run, run / "samples.h5", trajectories=256, seed=1, progress=False)
    sampled = time.perf_counter()
    report, _ = evaluate_files(args.data, run / "samples.h5")
    record = {
        "name": args.name,
        "overrides": args.overrides,
        "train_trajectories": TrajectoryFile(data).splits["train"],
        "final_loss": result.history[-1]["loss"],
        "train_seconds": round(trained - started),
        "sample_seconds": round(sampled - trained),
        **{k: report[k] for k in KEYS},
        **first_step_spread(result.model, TrajectoryFile(data), config.model.label_dim, config.train.seed),
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()} torch {torch.__version__} threads {torch.get_num_threads()}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(record))
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "wave_recipe_search.jsonl", "a") as log:  # an append-only log, one line per run
        log.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
