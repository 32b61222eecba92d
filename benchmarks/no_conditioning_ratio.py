"""The direct jump x_0 -> x_{T-1} against the rollout at the paper's pairs-per-label-dimension ratio.

    python benchmarks/no_conditioning_ratio.py [--problem wave] [--label-dim 8] [--out results]

`stochlift experiment no_conditioning` trains both models with the quick recipe's label dimension (Wave
d = 256 for the jump's 128 training pairs), where a map affine in the label interpolates the jump's pairs.
The paper's jump had 16 pairs per label dimension (1,024 trajectories, d = 64); at the quick scale that is
d = 128 / 16 = 8. This trains both models at that d with the experiment's budget (1,000 steps), in the
experiment's workspace (OUT/quick/_work, so runs are shared and reused), and scores their last frames as
the experiment does. Writes benchmarks/results/no_conditioning_ratio.{json,md} with command, machine, date.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from stochlift.bench import machine
from stochlift.data.trajectories import TrajectoryFile
from stochlift.experiments import load_settings
from stochlift.experiments.no_conditioning import endpoints_file, last_frame_scores
from stochlift.experiments.workspace import Workspace, model_config
from stochlift.io import atomic_path, write_json

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["mass_w2_relative", "mean_field_error_relative", "std_field_error_relative", "spread_ratio",
           "spectrum_error_decades", "gradient_ratio"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="wave", choices=["wave", "flow"])
    parser.add_argument("--label-dim", type=int, default=8)
    parser.add_argument("--out", default="results", help="the experiments' results folder (workspace OUT/quick/_work)")
    args = parser.parse_args()
    settings = load_settings("no_conditioning", "quick")
    ws = Workspace(Path(args.out) / "quick" / "_work", progress=True)
    data = ws.data(args.problem, settings["data_preset"])
    ends = endpoints_file(data, ws.root / "data" / f"{data.stem}-endpoints.h5")
    overrides = [*settings["train_overrides"], f"model.label_dim={args.label_dim}"]
    models = {"rollout": ("sl", data, overrides), "direct": ("sl-direct", ends, [*overrides, "model.window=1"])}
    truth = TrajectoryFile(data).read("test", slice(None), slice(-1, None))[:, 0]
    scores = {}
    for name, (label, path, extra) in models.items():
        run = ws.run(args.problem, label, model_config(settings["base"], args.problem, path, extra))
        samples = ws.samples(args.problem, label, run, settings["trajectories"], settings["sample_seed"])
        generated = TrajectoryFile(samples).read("generated", slice(None), slice(-1, None))[:, 0]
        scores[name] = last_frame_scores(truth, generated, args.problem)
    record = {"command": " ".join(["python", *sys.argv]), "machine": machine(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "problem": args.problem, "label_dim": args.label_dim, "overrides": overrides, "scores": scores}
    rows = [f"| {name} | " + " | ".join(f"{s[c]:.2f}" for c in COLUMNS) + " |" for name, s in scores.items()]
    table = "\n".join([f"| model | {' | '.join(COLUMNS)} |", "|---" * (len(COLUMNS) + 1) + "|", *rows])
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"no_conditioning_ratio_{args.problem}_d{args.label_dim}"
    write_json(RESULTS / f"{stem}.json", record)
    header = [f"# The direct jump at d = {args.label_dim} ({args.problem})", "",
              f"command: `{record['command']}`  ", f"machine: {_describe(record['machine'])}  ",
              f"date: {record['date']}  ", f"training overrides: {overrides}", ""]
    with atomic_path(RESULTS / f"{stem}.md") as tmp:
        tmp.write_text("\n".join(header) + "\nLast frames from the shared initial condition against the held-out "
                       "ones, scored as in `stochlift experiment no_conditioning` (errors relative to the truth's "
                       f"spread; spread ratio and gradient ratio: 1 is right).\n\n{table}\n")


def _describe(machine_info: dict) -> str:
    return f"{machine_info['cpu']}, {machine_info['cpu_count']} cores, torch {machine_info['torch']}"


if __name__ == "__main__":
    main()
