"""Wave quick preset: Stochastic Lifting against the deterministic regressor (d = 0), same data and budget.

    python benchmarks/wave_quick.py [--out runs/bench-wave-quick] [--variants sl,d0]

Prints a table and writes benchmarks/results/wave_quick.{json,md} with the command, machine and date.
Each variant is trained with the wave-quick config (d = 0 only changes model.label_dim), sampled 256 times
from the shared initial frame and compared with the 256 held-out test trajectories.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

from stochlift.config import apply_overrides, load_config
from stochlift.data.datasets import make_wave_dataset
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.io import atomic_path, write_json
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import train

VARIANTS = {"sl": [], "d0": ["model.label_dim=0"]}
KEYS = ("wct", "wct_relative", "mass_w2", "mass_w2_relative", "final_std_ratio", "mean_field_rmse", "std_field_rmse")
RESULTS = Path(__file__).resolve().parent / "results"


def run_variant(name: str, overrides: list[str], data: Path, out: Path) -> dict:
    config = apply_overrides(load_config("wave-quick"), [f"data.path={data}", *overrides])
    started = time.perf_counter()
    result = train(config, out / name, resume=(out / name / "checkpoint.safetensors").exists(), progress=True)
    trained = time.perf_counter()
    samples = out / f"{name}-samples.h5"
    sample_to_file(out / name, samples, trajectories=256, seed=1, progress=True)
    sampled = time.perf_counter()
    report, _ = evaluate_files(data, samples, out / f"{name}-metrics.json")
    return {
        "variant": name,
        "overrides": overrides,
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "final_loss": result.history[-1]["loss"],
        "train_seconds": round(trained - started, 1),
        "sample_seconds": round(sampled - trained, 1),
        **{k: report[k] for k in KEYS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-wave-quick"))
    parser.add_argument("--variants", default="sl,d0")
    args = parser.parse_args()
    data = args.out / "data.h5"
    started = time.perf_counter()
    if not data.exists():
        make_wave_dataset(data, preset="quick", seed=0)
    data_seconds = time.perf_counter() - started
    rows = [run_variant(name, VARIANTS[name], data, args.out) for name in args.variants.split(",")]
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''} torch {torch.__version__} "
        f"threads {torch.get_num_threads()}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "data_seconds": round(data_seconds, 1),
        "rows": rows,
    }
    header = ["variant", "final_loss", "train_seconds", *KEYS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[k]) for k in header) + " |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "wave_quick.json", record)
    with atomic_path(RESULTS / "wave_quick.md") as tmp:
        tmp.write_text(
            f"# Wave quick: SL vs d = 0\n\ncommand: `{record['command']}`  \nmachine: {record['machine']}  \n"
            f"date: {record['date']}\n\n{table}\n"
        )
    print(json.dumps(record, indent=2))


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
