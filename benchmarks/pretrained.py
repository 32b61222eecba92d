"""Train and pack the pretrained quick checkpoints shipped in stochlift/pretrained/ (wave-quick, flow-quick,
digits-quick), each with its model card.

    OMP_NUM_THREADS=1 python benchmarks/pretrained.py [--only wave] [--work runs/pretrained] [--stage train|pack|all]

Stages, per model, each resumable (rerunning the command continues where it stopped):

- train: the demo's recipe exactly: the demo's quick data set (seed 0), the demo's preset, train.seed=0; Flow
  trains seeds 0 and 1 side by side and keeps the one that scores better on the valid split, as `stochlift
  demo --problem flow` does. One torch thread per training process (the machine is shared).
- pack: the chosen run's final weights (EMA weights when the run kept them), its resolved config, the data
  set's record and the first frames of its test split -> src/stochlift/pretrained/NAME.safetensors; then the
  packed file is loaded with `stochlift.load_pretrained`, sampled as the demo samples (256 trajectories, or
  one video per test video; seed 1) and scored against the regenerated test split; the scores, the command,
  the machine and the date go into NAME.md (the model card) and benchmarks/results/pretrained.json.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

from stochlift.apps.selection import train_best_of
from stochlift.config import apply_overrides, load_config
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.runs import run_finished
from stochlift.lifting.train import train
from stochlift.problems import demos

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SEED = 0  # the demo's default seed: data, training and (seed + 1) sampling
# pretrained name -> the demo that trains it
MODELS = {"wave-quick": "wave", "flow-quick": "flow", "digits-quick": "digits"}


def trained_run(name: str, work: Path) -> Path:
    """Make the demo's data set and train the demo's model in work/NAME (or finish it); the chosen run."""
    _, spec = demos()[MODELS[name]]
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data.h5"
    if not data.exists():
        spec.make_data(data, trajectories=None, frames=None, size=None, seed=SEED, progress=False)
    config = apply_overrides(load_config(spec.config), [f"train.seed={SEED}"])
    config.data.path = str(data)
    if spec.best_of == 1:
        run = out / "run"
        if not run_finished(run):
            train(config, run, resume=(run / CHECKPOINT_NAME).exists(), progress=False)
        return run
    return train_best_of(config, out / "run", range(SEED, SEED + spec.best_of), jobs=spec.best_of,
                         progress=False).chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[m.split("-")[0] for m in MODELS], action="append")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "pretrained")
    parser.add_argument("--stage", choices=("train", "pack", "all"), default="all")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = [n for n in MODELS if not args.only or n.split("-")[0] in args.only]
    for name in names:
        started = time.perf_counter()
        run = trained_run(name, args.work)
        print(f"{name}: trained {run} ({time.perf_counter() - started:.0f} s in this invocation)", flush=True)
        if args.stage in ("pack", "all"):
            raise SystemExit("pack: not written yet")
    print(f"done {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')} {sys.argv}")


if __name__ == "__main__":
    main()
