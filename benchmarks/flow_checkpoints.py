"""How the Flow scores move during one training run: snapshots of flow-quick scored on valid, train and test.

    python benchmarks/flow_checkpoints.py NAME --data flow.h5 [--seed K] [--stops 1500 2000 2500 3000] [OVERRIDES]

Trains into runs/flow-checkpoints/NAME, stopping (and resuming exactly) at each step of --stops; at each stop
the run is copied aside, 192 trajectories are generated from the shared initial frame (with the run's
constraint, labels seeded K + 1), and their crossing-time and mass scores are computed against each split
of the data file. One JSON line per stop goes to benchmarks/results/flow_checkpoints.jsonl. Answers two
questions of the recipe search: do the scores of one run swing as much as those of different seeds, and
does the small validation split rank snapshots as the test split does?
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_recipe import recipe_config, recipe_parser

from stochlift.apps.bench import machine
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import train

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = recipe_parser(__doc__.splitlines()[0], "runs/flow-checkpoints")
    parser.add_argument("--stops", type=int, nargs="+", default=[1500, 2000, 2500, 3000])
    args = parser.parse_intermixed_args()
    run = args.out / args.name
    config = recipe_config(args)
    for stop in sorted(args.stops):
        train(config, run, resume=(run / CHECKPOINT_NAME).exists(), stop_after=stop, progress=True)
        snapshot = args.out / f"{args.name}-{stop}"
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(run, snapshot)
        samples = snapshot / "samples.h5"
        sample_to_file(snapshot, samples, trajectories=192, seed=args.seed + 1, initial_split="test", progress=False)
        record = {"name": args.name, "seed": args.seed, "overrides": args.overrides, "step": stop}
        for split in ("valid", "train", "test"):
            report, metrics = evaluate_files(args.data, samples, reference_split=split)
            record[split] = {"wct_relative": round(report["wct_relative"], 3),
                             "mass_w2_relative": round(report["mass_w2_relative"], 3)}
        record["tau_mean"] = round(float(metrics.tau_generated.mean()), 4)
        record["tau_std"] = round(float(metrics.tau_generated.std()), 4)
        record.update({
            "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python {' '.join(sys.argv)}",
            "machine": machine(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        })
        print(json.dumps(record), flush=True)
        RESULTS.mkdir(exist_ok=True)
        with open(RESULTS / "flow_checkpoints.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
