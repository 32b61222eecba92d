"""One point of the Flow recipe search: train flow-quick with overrides, then sample with and without the
water balance and score both.

    python benchmarks/flow_recipe.py NAME --data flow.h5 [--seed K] [SECTION.KEY=VALUE ...]

Trains into runs/flow-recipe/NAME (continuing an interrupted run), samples 256 trajectories from the
shared initial frame with labels seeded K + 1 (as the demo does), and appends one JSON line (the scores of
both rollouts, the training time, the command, machine and date) to benchmarks/results/flow_recipe_search.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_mass_balance import compare

from stochlift.config import RunConfig, apply_overrides, load_config
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.train import train

RESULTS = Path(__file__).resolve().parent / "results"


def recipe_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """The arguments of a recipe-search run: NAME --data --out --seed OVERRIDES (shared by flow_checkpoints)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("name")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(default_out))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*")
    return parser


def recipe_config(args: argparse.Namespace) -> RunConfig:
    """flow-quick with the run's seed and overrides, on the run's data file."""
    config = apply_overrides(load_config("flow-quick"), [f"train.seed={args.seed}", *args.overrides])
    config.data.path = str(args.data)
    return config


def main() -> None:
    args = recipe_parser(__doc__.splitlines()[0], "runs/flow-recipe").parse_intermixed_args()
    run = args.out / args.name
    config = recipe_config(args)
    started = time.perf_counter()
    train(config, run, resume=(run / CHECKPOINT_NAME).exists(), progress=True)
    seconds = time.perf_counter() - started
    record = {
        "name": args.name, "overrides": args.overrides, "seed": args.seed, "train_seconds": round(seconds, 1),
        **compare(str(run), str(args.data), 256, args.seed + 1),
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python {' '.join(sys.argv)}",
        "machine": f"{platform.machine()} {platform.processor()}, torch {torch.__version__}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(record["rows"], indent=2))
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "flow_recipe_search.jsonl", "a") as log:  # one appended line; a crash loses only it
        log.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
