"""The ARDM recipe search: which schedule, parameterisation, sampler, weights and learning rate make the
strongest autoregressive diffusion baseline at each number of steps S, on the quick Wave and Flow data.

    python benchmarks/ardm_recipe.py --stage NAME [--stage NAME ...] [--worker K/N] [--trajectories 64]

Each row trains table1's quick ARDM (configs/experiments/table1.yaml: the same backbone, data, batch and
budget as SL; residual output, Huber loss, clean conditioning) with the row's overrides into the quick
workspace (results/quick/_work, so runs are shared with `stochlift experiment table1` and an interrupted
row continues), then samples it with every sampling variant the row asks for, without retraining: DDPM or
DDIM, and the raw or the EMA weights of the same checkpoint. Each variant generates `--trajectories`
trajectories from the shared initial frame (table1's sampling seed), scored against the held-out test set.
One JSON line per (row, variant) goes to benchmarks/results/ardm_recipe_search.jsonl; rows already there
are skipped, so the search resumes. `--worker K/N` takes every N-th row starting at K (run N processes,
one thread each). `--report` prints the table of everything recorded so far.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from stochlift.apps.bench import machine
from stochlift.apps.experiments import load_settings
from stochlift.apps.experiments.workspace import Workspace, model_config
from stochlift.baselines.sampler import build_sampler
from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.lifting.checkpoint import CHECKPOINT_NAME, load_weights, read_checkpoint
from stochlift.lifting.rollout import initial_frames, rollout
from stochlift.lifting.runs import load_run
from stochlift.problems import constraint_for

RESULTS = Path(__file__).resolve().parent / "results" / "ardm_recipe_search.jsonl"
WORKSPACE = Path("results/quick/_work")

# the schedule and parameterisation candidates (model.* overrides); "acdm" is table1's quick ARDM as it was
RECIPES = {
    "acdm": [],
    "cos-eps": ["model.diffusion_schedule=cosine"],
    "cos-v": ["model.diffusion_schedule=cosine", "model.prediction=v"],
    "cos-x0": ["model.diffusion_schedule=cosine", "model.prediction=x0"],
    "cos-zt-v": ["model.diffusion_schedule=cosine", "model.zero_terminal_snr=true", "model.prediction=v"],
    "lin-zt-v": ["model.zero_terminal_snr=true", "model.prediction=v"],
    "cos-zt-v-shift4": ["model.diffusion_schedule=cosine", "model.zero_terminal_snr=true", "model.prediction=v",
                        "model.snr_shift=4"],
}
EMA = "train.ema_decay=0.995"  # 1,000 steps: a horizon of ~200 steps, the initial weights' share e^-5
SAMPLING = (("ddpm", "raw"), ("ddpm", "ema"), ("ddim", "raw"), ("ddim", "ema"))


class Row(NamedTuple):
    name: str
    problem: str
    steps: int  # S
    overrides: tuple[str, ...]
    sampling: tuple[tuple[str, str], ...] = SAMPLING


def _grid(stage: str, problems, steps, recipes, extra: tuple[str, ...] = (), suffix: str = "") -> list[Row]:
    return [Row(f"{stage}-{problem}-S{s}-{recipe}{suffix}", problem, s, (*RECIPES[recipe], EMA, *extra))
            for problem in problems for s in steps for recipe in recipes]


STAGES: dict[str, list[Row]] = {
    # stage 1: the schedule x parameterisation candidates at the fewest and a middling number of steps. Run
    # as `--stage schedule --worker 1/2` (cos-v, cos-eps) beside `--stage zero-terminal` (one worker each);
    # the acdm rows (worker 0/2) were not trained: table1's quick ARDM is that recipe (its raw weights train
    # identically; results/quick/table1)
    "schedule": _grid("schedule", ("wave", "flow"), (2, 10), ("acdm", "cos-v", "cos-zt-v", "cos-eps")),
    "zero-terminal": [*_grid("schedule", ("wave", "flow"), (2,), ("cos-zt-v", "cos-zt-v-shift4")),
                      *_grid("schedule", ("wave", "flow"), (10,), ("cos-zt-v",))],
    "schedule2": _grid("schedule", ("wave", "flow"), (2, 10), ("cos-x0", "lin-zt-v")),
    # what the machine's time allowed after the first two rows (both Wave S = 2): the two v-prediction
    # schedules on Flow and at S = 10, two workers (--worker 0/2 and 1/2); the same row names as above
    "few-steps": [*_grid("schedule", ("flow",), (2,), ("cos-zt-v",)),
                  *_grid("schedule", ("wave",), (10,), ("cos-zt-v",)),
                  *_grid("schedule", ("flow",), (10,), ("cos-zt-v",)),
                  *_grid("schedule", ("wave",), (10,), ("cos-v",)),
                  *_grid("schedule", ("flow",), (2, 10), ("cos-v",))],
    # the learning rate of the chosen recipe: SL's 3e-3 (every row above) against 1e-3, at S = 2
    "lr": _grid("lr", ("wave", "flow"), (2,), ("cos-zt-v",), extra=("train.lr=1e-3",), suffix="-lr1e-3"),
    # why Flow's ARDM breaks through late or never: Huber's bounded gradient on the rare large changes of a
    # breakthrough (against SL's L2), and ACDM's noisy conditioning (with cos-v: zero terminal SNR would
    # leave nothing of the condition at the first reverse step)
    "flow": [*_grid("flow", ("flow",), (2,), ("cos-zt-v",), extra=("model.loss=l2",), suffix="-l2"),
             *_grid("flow", ("flow",), (2,), ("cos-v",), extra=("model.conditioning=noisy",), suffix="-noisy")],
    # Flow's answer tried on Wave: the L2 loss
    "loss": _grid("loss", ("wave",), (2,), ("cos-zt-v",), extra=("model.loss=l2",), suffix="-l2"),
}


def _variant_path(ws: Workspace, row: Row, run: Path, sampler: str, weights: str, n: int, seed: int) -> Path:
    return ws.root / "samples" / row.problem / f"{run.name}-{sampler}-{weights}-n{n}-seed{seed}.h5"


def sample_variant(run: Path, out: Path, sampler: str, weights: str, trajectories: int, seed: int) -> dict[str, Any]:
    """Roll the run out with `sampler` and its raw or EMA weights from the test split's first frame (as
    `stochlift sample` does, the run's constraint included) and write the trajectories to `out`."""
    model, config, data = load_run(run)
    if weights == "raw":
        load_weights(model, read_checkpoint(run / CHECKPOINT_NAME)[0], prefix="model.")
    model.sampler = build_sampler(sampler, model.schedule, model.prediction)
    projection = constraint_for(config.model.constraint, data.meta)
    generated = rollout(model, initial_frames(data, trajectories, split="test"), data.meta.frames, seed=seed,
                        batch_size=64, constraint=projection)
    finite = bool(np.isfinite(generated).all())
    if finite:
        write_trajectories(out.with_suffix(".tmp.h5"), data.meta, {"generated": generated})
        os.replace(out.with_suffix(".tmp.h5"), out)
    truth = data.read("test", slice(0, 64))
    return {"finite": finite, "max_abs_over_truth": float(np.nanmax(np.abs(generated)) / np.abs(truth).max())}


def run_row(ws: Workspace, row: Row, trajectories: int, done: set[tuple[str, str, str]]) -> None:
    todo = [(s, w) for s, w in row.sampling if (row.name, s, w) not in done]
    if not todo:
        return
    table = load_settings("table1", "quick")
    data = ws.data(row.problem, table["data_preset"])
    overrides = [*table["train_overrides"], *table["ardm_overrides"], f"model.diffusion_steps={row.steps}",
                 *row.overrides]
    config = model_config(table["base"], row.problem, data, overrides)
    began = time.perf_counter()
    run = ws.run(row.problem, f"ardm-search-{row.name}", config)
    trained_seconds = time.perf_counter() - began
    log = json.loads((run / "train_log.json").read_text())["history"]
    for sampler, weights in todo:
        if weights == "ema" and not config.train.ema_decay:
            continue
        seed = table.get("sample_seed", 1)
        path = _variant_path(ws, row, run, sampler, weights, trajectories, seed)
        began = time.perf_counter()
        stability = sample_variant(run, path, sampler, weights, trajectories, seed) if not path.is_file() else \
            {"finite": True, "max_abs_over_truth": _max_ratio(path, data)}
        sample_seconds = time.perf_counter() - began
        scores = _scores(data, path) if stability["finite"] else {}
        record = {
            "row": row.name, "problem": row.problem, "S": row.steps, "overrides": list(row.overrides),
            "sampler": sampler, "weights": weights, "trajectories": trajectories, "run": str(run),
            "train_steps": config.train.steps, "final_loss": log[-1]["loss"],
            "loss_at_half": log[len(log) // 2 - 1]["loss"], "train_seconds_this_call": round(trained_seconds, 1),
            "sample_seconds": round(sample_seconds, 1), **stability, **scores,
            "load_average": os.getloadavg(), "machine": machine(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }
        with open(RESULTS, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{row.name} {sampler} {weights}: wct/std {record.get('wct_relative')} "
              f"wim/std {record.get('wim_relative')} max {stability['max_abs_over_truth']:.2f}", flush=True)


def _max_ratio(path: Path, data: Path) -> float:
    generated = TrajectoryFile(path).read("generated", slice(None))
    return float(np.abs(generated).max() / np.abs(TrajectoryFile(data).read("test", slice(0, 64))).max())


def _scores(data: Path, samples: Path) -> dict[str, Any]:
    report, _ = evaluate_files(data, samples)
    return {"wct": report["wct"], "wct_relative": report["wct_relative"], "wim": report["mass_w2"],
            "wim_relative": report["mass_w2_relative"], "final_std_ratio": report.get("final_std_ratio")}


def recorded() -> list[dict[str, Any]]:
    if not RESULTS.is_file():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def report() -> str:
    """Every recorded variant, one line each, grouped by problem and S."""
    lines = ["| problem | S | row | sampler | weights | WCT/std | WIM/std | final spread | max / truth | loss |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(recorded(), key=lambda r: (r["problem"], r["S"], r["row"], r["sampler"], r["weights"])):
        cells = [r["problem"], str(r["S"]), r["row"], r["sampler"], r["weights"], _f(r.get("wct_relative")),
                 _f(r.get("wim_relative")), _f(r.get("final_std_ratio")), _f(r["max_abs_over_truth"]),
                 f"{r['final_loss']:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "diverged" if x is None else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", action="append", choices=sorted(STAGES), default=[])
    parser.add_argument("--worker", default="0/1", help="K/N: take every N-th row starting at K")
    parser.add_argument("--trajectories", type=int, default=64)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.report:
        print(report())
        return
    torch.set_num_threads(1)
    k, n = (int(x) for x in args.worker.split("/"))
    rows = [row for stage in args.stage for row in STAGES[stage]][k::n]
    ws = Workspace(WORKSPACE, progress=False)
    for row in rows:
        done = {(r["row"], r["sampler"], r["weights"]) for r in recorded() if r["trajectories"] == args.trajectories}
        run_row(ws, row, args.trajectories, done)


if __name__ == "__main__":
    main()
