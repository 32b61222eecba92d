"""Where the crossing-time tail goes missing: the first steps from the shared start, or the rollout after them.

    python benchmarks/crossing_tail.py --run RUN_DIR [--starts 1 3 5 9] [--trajectories 256] [--name NAME]

All trajectories leave one shared frame x_0, so the first steps must create the whole spread of wave speeds
(or Flow's permeabilities) that later decides the crossing times. This rolls the trained run out from the
first k frames of each held-out test trajectory (k = 1: the shared start alone, as in table1; k > 1: the
truth's own first frames, which already carry its speed) and compares the generated crossing times with
the truth's, as a distribution (mean, std, 90th and 99th percentiles, the share beyond the truth's 90th
percentile) and trajectory by trajectory (the correlation of generated and true crossing times, which
is only meaningful for k > 1). If the tail comes back once the first frames are the truth's, the model's
dynamics carry it and its first steps (the label's map to a speed) do not draw it; if it stays missing,
the rollout loses it. The training split's own crossing times show whether the data hold the tail at all.

Writes benchmarks/results/crossing_tail_<NAME>.json and .md (with command, machine and date); samples go
next to the run's workspace (RUN_DIR/../../../samples/<problem>/), reused when present.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.apps.bench import machine
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.io import atomic_path, write_json
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.runs import load_run

RESULTS = Path(__file__).resolve().parent / "results"


def crossing_times(data: Path, other: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Crossing times (normalised to [0, 1], as WCT's) of the data's test split and of a split of `other`,
    by the data's problem (`stochlift evaluate`'s)."""
    _, metrics = evaluate_files(data, other, generated_split=split)
    return metrics.tau_reference, metrics.tau_generated


def summary(tau: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tail = np.quantile(truth, 0.9)
    return {"mean": float(tau.mean()), "std": float(tau.std()), "p90": float(np.quantile(tau, 0.9)),
            "p99": float(np.quantile(tau, 0.99)), "share_beyond_truth_p90": float(np.mean(tau > tail))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--starts", type=int, nargs="+", default=[1, 3, 5, 9])
    parser.add_argument("--trajectories", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    _, config, data = load_run(args.run)
    problem = data.meta.problem
    name = args.name or f"{problem}_{args.run.name}"
    samples_dir = args.run.parents[2] / "samples" / problem
    samples_dir.mkdir(parents=True, exist_ok=True)
    truth, train = crossing_times(data.path, data.path, "train")
    paired = truth[np.arange(args.trajectories) % len(truth)]  # rollout i starts from test trajectory i mod n
    rows: dict[str, Any] = {"truth (test)": summary(truth, truth), "truth (train)": summary(train, truth)}
    for k in args.starts:
        out = samples_dir / f"{args.run.name}-n{args.trajectories}-seed{args.seed}-start{k}.h5"
        if not out.is_file():
            sample_to_file(args.run, out, trajectories=args.trajectories, seed=args.seed, initial_split="test",
                           initial_count=k, progress=False)
        tau = crossing_times(data.path, out, "generated")[1]
        rows[f"from the first {k} true frame(s)"] = {**summary(tau, truth),
                                                     "correlation_with_own_truth": float(np.corrcoef(tau, paired)[0, 1])
                                                     if k > 1 and tau.std() > 0 else None}
    provenance = {"command": " ".join(["python", *sys.argv]), "machine": machine(), "load_average": os.getloadavg(),
                  "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                  "run": str(args.run), "run_config": config.to_dict()}
    write_json(RESULTS / f"crossing_tail_{name}.json", {**provenance, "rows": rows})
    lines = [f"# Crossing-time tail: {problem}, run `{args.run.name}`", "",
             f"- command: `{provenance['command']}`", f"- machine: {provenance['machine']['cpu']}, "
             f"load average {provenance['load_average'][0]:.1f}", f"- date: {provenance['date']}", "",
             f"{args.trajectories} rollouts, each from the first k frames of its own held-out test trajectory "
             "(k = 1: the shared start). Crossing times normalised to [0, 1] (as WCT's).", "",
             "| start | mean | std | 90th pct | 99th pct | share beyond the truth's 90th pct | corr. with own truth |",
             "|---|---|---|---|---|---|---|"]
    for label, r in rows.items():
        corr = r.get("correlation_with_own_truth")
        lines.append(f"| {label} | {r['mean']:.3f} | {r['std']:.3f} | {r['p90']:.3f} | {r['p99']:.3f} | "
                     f"{r['share_beyond_truth_p90']:.2f} | {'-' if corr is None else f'{corr:.2f}'} |")
    with atomic_path(RESULTS / f"crossing_tail_{name}.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
