"""Does the water balance fix the Flow rollouts? A trained Flow run sampled twice with the same labels: with
no constraint, and with `model.constraint=water_balance` (stochlift.problems.constraint_for).

    python benchmarks/flow_mass_balance.py RUN_DIR DATA.h5 [--trajectories 256] [--seed 1]

The truth's water in place grows by the injected volume less the producer's fractional-flow share; the
constraint scales each generated step's gains so that it does too. Prints and saves
(results/flow_mass_balance.{md,json}) the scores of both rollouts against DATA's test split.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from stochlift.config import CONSTRAINTS
from stochlift.data.trajectories import TrajectoryFile
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.io import atomic_path
from stochlift.lifting.rollout import sample_to_file

RESULTS = Path(__file__).resolve().parent / "results"


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in values]


def compare(run: str, data: str, trajectories: int, seed: int) -> dict:
    """Scores and mean water at a few frames of both rollouts, and of the truth."""
    truth = TrajectoryFile(data).read("test")
    picks = sorted({min(t, truth.shape[1] - 1) for t in (5, 20, 40, truth.shape[1] - 1)})
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for constraint in CONSTRAINTS:
            path = sample_to_file(run, Path(tmp) / f"{constraint}.h5", trajectories=trajectories, seed=seed,
                                  initial=data, constraint=constraint, progress=False)
            report, _ = evaluate_files(data, path)
            generated = TrajectoryFile(path).read("generated")
            rows[constraint] = {key: report[key] for key in ("wct_relative", "mass_w2_relative", "final_std_ratio")}
            rows[constraint]["mean_water"] = _rounded(generated.mean((2, 3, 4)).mean(0)[picks])
    return {"frames": picks, "truth_mean_water": _rounded(truth.mean((2, 3, 4)).mean(0)[picks]), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("--trajectories", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    record = {
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python {' '.join(sys.argv)}",
        "machine": f"{platform.machine()} {platform.processor()}, torch {torch.__version__}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **compare(args.run, args.data, args.trajectories, args.seed),
    }
    picks, rows = record["frames"], record["rows"]
    lines = ["# Flow rollouts with and without the water balance", "",
             f"Command: `{record['command']}`  ", f"Machine: {record['machine']}  ", f"Date: {record['date']}", "",
             f"| constraint | wct_relative | mass_w2_relative | final_std_ratio | mean water at frames {picks} |",
             "|---|---|---|---|---|",
             *(f"| {k} | {r['wct_relative']:.2f} | {r['mass_w2_relative']:.2f} | {r['final_std_ratio']:.2f} | "
               f"{r['mean_water']} |" for k, r in rows.items()),
             f"| truth | - | - | - | {record['truth_mean_water']} |", ""]
    print("\n".join(lines))
    for suffix, text in (("md", "\n".join(lines)), ("json", json.dumps(record, indent=2))):
        with atomic_path(RESULTS / f"flow_mass_balance.{suffix}") as tmp:
            Path(tmp).write_text(text)


if __name__ == "__main__":
    main()
