"""The forecasting setting on trained runs: is the spread of a forecast ensemble as large as its error?

    python benchmarks/forecast_spread_skill.py DATA.h5 NAME=RUN_DIR [NAME=RUN_DIR ...]
        [--trajectories 64] [--samples 8] [--initial-frames 8]

For each run: `--samples` forecasts of each of the first `--trajectories` test trajectories, each started
from that trajectory's first `--initial-frames` frames (every Wave trajectory shares frame 0, so a forecast
needs some history to know its own medium), scored per time step and averaged over the forecast frames:
spread-skill ratio (1 = calibrated, 0 = no spread, as for a deterministic model), fair CRPS, energy score.
Writes benchmarks/results/forecast_spread_skill.{json,md} with the command, machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
from pathlib import Path

import torch

from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.evaluation.forecast import forecast_scores
from stochlift.io import atomic_path, write_json
from stochlift.lifting.runs import load_run

RESULTS = Path(__file__).resolve().parent / "results"
SCORES = ("spread_skill", "crps", "energy_score")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    parser.add_argument("--trajectories", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--initial-frames", type=int, default=8)
    args = parser.parse_args()
    file = TrajectoryFile(args.data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        truth = Path(tmp) / "truth.h5"
        write_trajectories(truth, file.meta, {"test": file.read("test", slice(0, args.trajectories))})
        for spec in args.runs:
            name, run = spec.split("=", 1)
            model, config, _ = load_run(run)
            scores = forecast_scores(model, truth, samples_per_trajectory=args.samples,
                                     initial_frames=args.initial_frames, seed=1)
            rows.append({"name": name, "run": run, "label_dim": config.model.label_dim,
                         **{k: scores.mean[k] for k in SCORES}})
            print(rows[-1])
    record = {
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "setting": {"trajectories": args.trajectories, "samples_per_trajectory": args.samples,
                    "initial_frames": args.initial_frames},
        "rows": rows,
    }
    table = "\n".join(["| run | d | spread-skill ratio | CRPS | energy score |", "|---|---|---|---|---|"] + [
        f"| {r['name']} | {r['label_dim']} | {r['spread_skill']:.3f} | {r['crps']:.5f} | {r['energy_score']:.4f} |"
        for r in rows])
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "forecast_spread_skill.json", record)
    with atomic_path(RESULTS / "forecast_spread_skill.md") as tmp:
        tmp.write_text(f"# Forecasting setting: spread-skill ratio\n\ncommand: `{record['command']}`  \n"
                       f"machine: {record['machine']}  \ndate: {record['date']}  \nsetting: {record['setting']}\n\n"
                       f"{table}\n")


if __name__ == "__main__":
    main()
