"""Flow recipe variants x seeds side by side: many flow_checkpoints.py runs in parallel until a deadline.

    python benchmarks/flow_seed_sweep.py --data flow.h5 [--jobs 12] [--minutes 7] [--seeds 0 1 2]
        [--variants a b] [--extra K=V ...]

The recipe search found that the training seed moves the Flow scores as much as any recipe change does
(flow_recipe_search.md, lessons 5 and 8), so a variant is only judged by its scores over several seeds.
Every variant of VARIANTS trains flow-quick with its overrides on each seed, in seed-major order (a deadline
leaves every variant with the same seeds), and is scored as flow_checkpoints.py scores a run at its last
step: 192 trajectories generated from the shared initial frame with the water balance, against the valid,
train and test splits; one JSON line per run in results/flow_checkpoints.jsonl. Made for a GPU machine,
where one tiny U-Net leaves the GPU mostly idle and a dozen runs side by side take little longer than one.
Runs still going at the deadline are stopped and leave no line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> overrides of flow-quick (train.steps, when given, is also the step the run is scored at)
VARIANTS: dict[str, list[str]] = {
    "base": [],                                      # flow-quick as it is (lines before 2026-11-23: window 3)
    "noise07": ["train.input_noise=0.07"],           # between the two noise levels of the sixth session
    "steps2500": ["train.steps=2500"],               # shorter: lesson 5 saw longer runs' breakthroughs grow alike
    "lr2e-3": ["train.lr=2.0e-3"],                   # a calmer end of the schedule, less seed-to-seed drift?
    "zeros": ["model.history_padding=zeros"],        # Wave's fix for telling the first steps apart
    "steps4000": ["train.steps=4000"],               # longer (the CPU demo could afford it)
    "lr1.5e-3": ["train.lr=1.5e-3"],                 # lr 2e-3 widened the crossing times: lower still?
    "lr1e-3": ["train.lr=1.0e-3"],
    "lr2e-3-steps2500": ["train.lr=2.0e-3", "train.steps=2500"],  # the wider spread, the breakthroughs sooner?
    "window5": ["model.window=5"],                   # more history to read the hidden permeability from the front
                                                     # (flow-quick's window since 2026-11-23)
    "window3": ["model.window=3"],                   # flow-quick's window before 2026-11-23
    "traj64": ["data.trajectories=64"],              # fewer pairs: nearer interpolation (512 narrowed the spread)
}


def steps_of(overrides: list[str]) -> int:
    steps = [int(item.split("=", 1)[1]) for item in overrides if item.startswith("train.steps=")]
    return steps[-1] if steps else 3000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/flow-sweep"))
    parser.add_argument("--jobs", type=int, default=12, help="runs side by side")
    parser.add_argument("--minutes", type=float, default=7.0, help="stop everything after this long")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)), help="training seeds per variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every run (after the variant's)")
    args = parser.parse_args()
    deadline = time.monotonic() + 60 * args.minutes
    jobs = [(name, seed) for seed in args.seeds for name in args.variants]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(job: tuple[str, int]) -> str:
        name, seed = job
        left = deadline - time.monotonic()
        if left < 30:
            return f"{name} seed {seed}: not started (deadline)"
        overrides = [*VARIANTS[name], *args.extra]
        command = [sys.executable, str(HERE / "flow_checkpoints.py"), "--stops", str(steps_of(overrides)),
                   "--data", str(args.data), "--out", str(args.out), "--seed", str(seed), f"{name}-s{seed}", *overrides]
        began = time.monotonic()
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=left)
        except subprocess.TimeoutExpired:
            return f"{name} seed {seed}: stopped at the deadline"
        status = "ok" if done.returncode == 0 else f"failed ({done.returncode}): {done.stderr[-400:]}"
        return f"{name} seed {seed}: {status} in {time.monotonic() - began:.0f} s"

    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(run, jobs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
