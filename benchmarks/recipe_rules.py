"""Find the automatic recipe's rules by experiment: vary one setting of `auto_recipe` at a time, score.

    OMP_NUM_THREADS=1 python benchmarks/recipe_rules.py --study lr [--study d ...] [--shard 0/2]
    python benchmarks/recipe_rules.py --report        # rewrite benchmarks/results/recipe_rules.md only

Every run: draw a training set of N trajectories of a study problem (benchmarks/recipe_problems.py;
training set and seed change together), take `auto_recipe`'s config for it with the study's settings
changed, train it (one thread), roll out 1,024 (vectors) or 256 (fields) trajectories from the starts of a
fresh true ensemble A, and score every frame against another, B: the energy score and sliced W2 as ratios
to their floor (A against B) and the spread ratio (docs/auto_recipe.md uses these). Results are appended
to benchmarks/results/recipe_rules.jsonl, one line per run with its key; finished keys are skipped, so the
script resumes. `--shard i/k` runs every k-th planned run, for k processes side by side. After each run the
script starts itself afresh (os.execv), so the plan and the recipe are read again: a study can be reordered
or added while it runs.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import itertools
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_problems import PROBLEMS, floor_scores, problem_data, summary_scores, time_scores
from stochlift.bench import machine

from stochlift.config import apply_overrides
from stochlift.io import atomic_path, write_json
from stochlift.lifting.pairs import ArraySource
from stochlift.lifting.recipe import auto_recipe, summarize
from stochlift.lifting.rollout import rollout
from stochlift.lifting.train import train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
JSONL, REPORT = RESULTS / "recipe_rules.jsonl", RESULTS / "recipe_rules.md"
CACHE = ROOT / ".cache" / "recipe_rules"
TRUTH_SEEDS = (1_000_001, 1_000_002)  # the true ensembles A and B of every (problem, start)
SHARED = ("shared", "random")
START_WEIGHTED = {"model.window": 2, "model.history_padding": "zeros", "train.start_weight": 8}


def grid(study: str, problems: list[str], sizes: list[int], starts: tuple[str, ...], seeds: list[int],
         settings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"study": study, "problem": p, "n": n, "start": s, "seed": seed, "set": dict(st)}
            for seed, p, n, s, st in itertools.product(seeds, problems, sizes, starts, settings)]


def studies() -> dict[str, list[dict[str, Any]]]:
    """The planned runs of each study (one setting varied around the recipe), cheapest and most telling first."""
    lg = ["lg4"]
    fields = []
    planes = {1: {"model.options.label_planes": 1, "model.label_dim": 32},  # one line of the 32-point field
              8: {"model.options.label_planes": 8, "model.label_dim": 256}}  # the recipe's d, as 8 lines
    for problem, start, seed, settings in [
        ("ac1d", "shared", 0, {}), ("ac1d", "random", 0, {}), ("ac1d", "shared", 0, planes[1]),
        ("ac1d", "shared", 0, START_WEIGHTED), ("ac1d", "shared", 0, {"model.label_dim": 0}),
        ("ac1d", "shared", 0, planes[8]), ("ac1d", "shared", 0, {"model.label_dim": 1024}),
        ("ac1d", "shared", 0, {"model.label_dim": 64}), ("ac2d", "shared", 0, {}), ("wave", "shared", 0, {}),
        ("ac1d", "shared", 0, {"train.lr": 1e-3}), ("ac1d", "shared", 1, {}), ("ac1d", "random", 1, {}),
        ("ac2d", "random", 0, {}), ("ac2d", "shared", 0, {"model.label_dim": 0}),
    ]:
        fields += grid("fields", [problem], [128], (start,), [seed], [settings])
    return {
        "auto": grid("auto", lg, [64, 256, 1024, 4096], SHARED, [0], [{}])
        + grid("auto", lg, [64, 256, 1024], SHARED, [1, 2], [{}]) + grid("auto", lg, [4096], SHARED, [1], [{}]),
        "d": grid("d", lg, [64, 256, 1024], SHARED, [0, 1], [{"model.label_dim": v} for v in (16, 64, 256, 1024)])
        + grid("d", lg, [256], SHARED, [0, 1], [{"model.label_dim": 0}]),
        # 4,096 trajectories: under-fitting at d = 1024? a wider MLP, a smaller d, or twice the steps
        "large": grid("large", lg, [4096], ("shared",), [0], [{"model.options.hidden": 256}, {"model.label_dim": 512},
                                                               {"steps_x": 2}]),
        # trajectories or pairs? lg4short has 7 pairs per trajectory instead of 31
        "dT": grid("dT", ["lg4short"], [1024], SHARED, [0], [{"model.label_dim": v} for v in (64, 256, 1024)]),
        "dT4096": grid("dT", ["lg4short"], [4096], SHARED, [0], [{"model.label_dim": v} for v in (256, 1024)]),
        "lr": grid("lr", lg, [256, 1024], SHARED, [0], [{"train.lr": v} for v in (1e-3, 2e-2)])
        + grid("lr", lg, [256], SHARED, [0], [{"train.lr": 1e-4}]),
        "steps": grid("steps", lg, [256], SHARED, [0], [{"steps_x": v} for v in (0.33, 3)]),
        "steps1024": grid("steps", lg, [1024], SHARED, [0], [{"steps_x": v} for v in (0.33, 3)]),
        "width": grid("width", lg, [64, 1024], ("shared",), [0], [{"model.options.hidden": v} for v in (64, 512)]),
        "window": grid("window", lg, [256], SHARED, [0], [{"model.window": 3}]),
        # from a shared start, the first step alone makes the spread: a two-frame window with zero padding
        # tells it apart and lets train.start_weight draw its pairs 8x as often
        "start": grid("start", lg, [256, 1024], ("shared",), [0], [START_WEIGHTED]),
        "fields": fields,
    }


# ------------------------------------------------------------------------------------------ one run


def run_key(run: dict[str, Any]) -> str:
    settings = ",".join(f"{k}={v}" for k, v in sorted(run["set"].items())) or "recipe"
    return f"{run['study']}/{run['problem']}/{run['start']}/N{run['n']}/seed{run['seed']}/{settings}"


def truth(problem: str, start: str) -> tuple[np.ndarray, np.ndarray, dict[str, list[float]]]:
    """The true ensembles A and B and their floor scores, computed once and kept under .cache/."""
    p = PROBLEMS[problem]
    out = []
    for seed in TRUTH_SEEDS:
        path = CACHE / f"truth_{problem}_{start}_{seed}.npy"
        if not path.is_file():
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, problem_data(p, p.ensemble, start == "shared", seed))
        out.append(np.load(path))
    floors = CACHE / f"floors_{problem}_{start}.json"
    if not floors.is_file():
        write_json(floors, floor_scores(out[0], out[1]))
    return out[0], out[1], json.loads(floors.read_text())


def configure(run: dict[str, Any], summary) -> Any:
    config, _ = auto_recipe(summary)
    settings = dict(run["set"])
    factor = settings.pop("steps_x", None)
    if factor is not None:
        settings["train.steps"] = max(1, round(config.train.steps * factor))
    if "train.steps" in settings:
        settings.setdefault("train.warmup_steps", min(config.train.warmup_steps, settings["train.steps"] // 10))
    return apply_overrides(config, [f"{k}={v}" for k, v in settings.items()])


def execute(run: dict[str, Any]) -> dict[str, Any]:
    p = PROBLEMS[run["problem"]]
    shared = run["start"] == "shared"
    data = problem_data(p, run["n"], shared, 1000 * run["seed"] + run["n"])
    summary = summarize(ArraySource(data), periodic=p.channel_axis)
    config = configure(run, summary)
    config.train.seed = run["seed"]
    truth_a, truth_b, floors = truth(run["problem"], run["start"])
    with tempfile.TemporaryDirectory(dir=CACHE) as run_dir:
        began = time.perf_counter()
        result = train(config, run_dir, source=ArraySource(data), periodic=p.channel_axis, progress=False)
        seconds = time.perf_counter() - began
    generated = rollout(result.model, truth_a[:, :1], p.frames, seed=run["seed"] + 7, batch_size=256)
    curves = time_scores(generated, truth_b, floors)
    m, t = config.model, config.train
    return {
        "key": run_key(run), **run, **summary_scores(curves),
        "config": {"window": m.window, "label_dim": m.label_dim, "backbone": m.backbone, "lr": t.lr,
                   "batch": t.batch_size, "steps": t.steps, "warmup": t.warmup_steps, "options": m.options,
                   "input_noise": t.input_noise},
        "summary": {"history_gains": summary.history_gains, "noise_rank": summary.noise_rank,
                    "pairs": summary.pairs},
        "final_loss": result.history[-1]["loss"], "train_seconds": seconds, "seconds_per_step": seconds / t.steps,
        "curves": {k: [round(v, 5) for v in vals] for k, vals in curves.items()},
        "date": datetime.date.today().isoformat(),
    }


# --------------------------------------------------------------------------------------- bookkeeping


def load_results() -> list[dict[str, Any]]:
    if not JSONL.is_file():
        return []
    return [json.loads(line) for line in JSONL.read_text().splitlines() if line.strip()]


def append_result(record: dict[str, Any]) -> None:
    JSONL.parent.mkdir(parents=True, exist_ok=True)
    with open(JSONL, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(json.dumps(record) + "\n")


def setting_label(record: dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(record["set"].items())) or "recipe"


def write_report(command: str) -> None:
    """benchmarks/results/recipe_rules.md: per study, one row per (problem, start, N, setting), seeds across."""
    records = load_results()
    lines = ["# Recipe rules: ratios to the floor by setting and seed", "",
             "Written by `benchmarks/recipe_rules.py` (see its docstring and docs/auto_recipe.md). Each cell is",
             "`SW2 ratio / ES ratio / spread` (means over frames 1..T-1; ratios to the truth-vs-truth floor, 1.0 =",
             "the sampling error of the law; spread = generated / true total std). Columns are seeds (training set",
             "and training seed together); `mean SW2` is over the seeds.", "",
             f"Last command: `{command}`  ", f"Machine: {json.dumps(machine())}  ",
             f"Date: {datetime.date.today().isoformat()}", ""]
    by_study: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_study.setdefault(r["study"], []).append(r)
    for study, rows in by_study.items():
        seeds = sorted({r["seed"] for r in rows})
        lines += [f"## {study}", "", "| problem | start | N | setting | m | d | steps | "
                  + " | ".join(f"seed {s}" for s in seeds) + " | mean SW2 | mean spread | s/step |",
                  "|" + "---|" * (9 + len(seeds) + 1)]
        groups: dict[tuple, dict[int, dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault((r["problem"], r["start"], r["n"], setting_label(r)), {})[r["seed"]] = r
        for (problem, start, n, label), by_seed in sorted(groups.items(), key=lambda kv: kv[0][:4]):
            first = next(iter(by_seed.values()))
            cells = [f"{by_seed[s]['sw2_ratio']:.2f} / {by_seed[s]['es_ratio']:.2f} / {by_seed[s]['spread']:.2f}"
                     if s in by_seed else "" for s in seeds]
            sw2 = np.mean([r["sw2_ratio"] for r in by_seed.values()])
            spread = np.mean([r["spread"] for r in by_seed.values()])
            sps = np.mean([r["seconds_per_step"] for r in by_seed.values()])
            c = first["config"]
            lines.append(f"| {problem} | {start} | {n} | {label} | {c['window']} | {c['label_dim']} | {c['steps']} | "
                         + " | ".join(cells) + f" | {sw2:.2f} | {spread:.2f} | {sps:.3f} |")
        lines.append("")
    REPORT.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="append", default=[], help="study name (repeatable)")
    parser.add_argument("--shard", default="0/1", help="i/k: run every k-th planned run, starting at i")
    parser.add_argument("--report", action="store_true", help="only rewrite the markdown report")
    parser.add_argument("--list", action="store_true", help="list the planned runs and exit")
    args = parser.parse_args()
    command = "python benchmarks/recipe_rules.py " + shlex.join(sys.argv[1:])
    plan = studies()
    unknown = set(args.study) - set(plan)
    if unknown:
        parser.error(f"unknown studies {sorted(unknown)}; known: {sorted(plan)}")
    runs = [r for s in args.study for r in plan[s]]
    index, count = (int(x) for x in args.shard.split("/"))
    runs = runs[index::count]
    if args.list:
        print("\n".join(run_key(r) for r in runs))
        return
    torch.set_num_threads(1)
    CACHE.mkdir(parents=True, exist_ok=True)
    done = {r["key"] for r in load_results()}
    pending = [run for run in runs if run_key(run) not in done]
    if args.report or not pending:
        write_report(command)
        return
    record = execute(pending[0])
    record["command"] = command
    append_result(record)
    print(f"{record['key']}: SW2 {record['sw2_ratio']:.2f} ES {record['es_ratio']:.2f} spread "
          f"{record['spread']:.2f} ({record['train_seconds']:.0f} s)", flush=True)
    write_report(command)
    # start afresh for the next run: the plan (and the recipe) are read again, so they can change meanwhile
    os.execv(sys.executable, [sys.executable, *sys.argv])

if __name__ == "__main__":
    main()
