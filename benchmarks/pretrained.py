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
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from stochlift.apps.bench import machine
from stochlift.apps.demo.video import pixel_metrics
from stochlift.apps.selection import train_best_of
from stochlift.config import apply_overrides, load_config
from stochlift.data.trajectories import TrajectoryFile
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.io import atomic_path, write_json
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.pretrained import pack_pretrained, pretrained_folder
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.runs import load_run, run_finished
from stochlift.lifting.train import train
from stochlift.problems import demos

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PRETRAINED = pretrained_folder()
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


DATA_COMMANDS = {"wave": "stochlift data wave --preset quick --seed 0 --out data.h5",
                 "flow": "stochlift data flow --preset quick --seed 0 --out data.h5",
                 "digits": "stochlift data digits --seed 0 --out data.h5"}


def pack(name: str, run: Path, work: Path) -> dict[str, Any]:
    """Pack the chosen run, then load the packed file by name, sample it as the demo samples and score it against
    the regenerated test split; write the model card beside it. Returns the card's numbers."""
    demo = MODELS[name]
    config = load_run(run)[1]
    data = Path(config.data.path)
    with TrajectoryFile(data) as file:
        test = file.splits["test"]
        video = file.meta.dtype == "uint8"
        given = min(config.model.window, file.meta.frames - 1) if video else 1
    out = PRETRAINED / f"{name}.safetensors"
    selection = run.parent / "selection.json"
    training = {"seed": config.train.seed, "demo": demo, "command": f"python benchmarks/pretrained.py --only {demo}"}
    if selection.is_file():
        training["selection"] = json.loads(selection.read_text())
    pack_pretrained(run, out, remake=DATA_COMMANDS[demo], initial_frames=given, training=training)
    started = time.perf_counter()
    samples = work / name / "pretrained_samples.h5"
    samples.unlink(missing_ok=True)
    sample_to_file(f"pretrained:{name}", samples, trajectories=test if video else 256, initial=data,
                   initial_split="test", initial_count=given, seed=SEED + 1, progress=False)
    seconds = time.perf_counter() - started
    if video:
        scores = pixel_metrics(data, samples, given)
        shown = {k: v for k, v in scores.items() if isinstance(v, float)}  # the demo's pixel statistics
    else:
        scores, _ = evaluate_files(data, samples, work / name / "pretrained_metrics.json")
        shown = {k: scores.get(k) for k in ("wct", "wct_relative", "mass_w2", "mass_w2_relative", "final_std_ratio")}
    record = {"name": name, "file_bytes": out.stat().st_size, "scores": shown, "sampling_seconds": seconds,
              "trajectories_scored": test, "given_frames": given, "steps": config.train.steps,
              "seed": config.train.seed, "command": " ".join(sys.argv), "machine": machine(),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(card(name, config, record))
    return record


TARGETS = """
Targets of the demos (docs/glossary.md): `wct_relative` and `mass_w2_relative` <= 0.5. The quick recipe is not
inside them on every seed or thread count: the scores move with floating-point differences alone
(docs/demos.md measured 0.16-0.58 for `wct_relative` over four seeds of the same recipe).
"""


def card(name: str, config: Any, record: dict[str, Any]) -> str:
    """The model card: what the model is, how it was made, how it scores, its limits."""
    demo = MODELS[name]
    scores = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                        for k, v in record["scores"].items())
    return f"""# {name}

The `{demo}` demo's model (preset `{name}`), shipped so that sampling needs no training:

    stochlift sample --run pretrained:{name} --out samples.h5
    stochlift demo --problem {demo} --pretrained

In Python: `stochlift.load_pretrained("{name}")` (`.model`, `.config`, `.initial_frames(n)`, `.card`).

## How it was made

- data: `{DATA_COMMANDS[demo]}` (the demo's quick data set, seed {SEED}); the file ships only the first
  {record['given_frames']} frame(s) of its {record['trajectories_scored']} test trajectories, where rollouts start
- training: preset `{name}` with `train.seed={record['seed']}`, {record['steps']} steps of batch
  {config.train.batch_size}, label dimension d = {config.model.label_dim}, window {config.model.window}, backbone
  `{config.model.backbone}`; weights: {"the EMA weights" if config.train.ema_decay else "the final weights"}
- command: `{record['command']}` on {record['machine'].get('cpu', 'a CPU')} ({record['date']})
- file: {record['file_bytes'] / 2**20:.1f} MiB (safetensors, weights only; no pickle)

## Scores

Sampled from the packed file (seed {SEED + 1}) and scored against the held-out test split, as the demo
scores (lower is better, except spread ratios and PSNR/SSIM; metric names: docs/glossary.md):

| metric | value |
|---|---|
{scores}
{TARGETS if demo in ("wave", "flow") else ""}
## Limits

- A quick-scale CPU model: small data ({record['trajectories_scored']} test trajectories), a narrow network and a
  short training; it shows the method and the tool, not the paper's accuracy.
- It generates only data like its training set: the same problem, grid, parameters and time step. Rolled
  out beyond the training horizon or started from other initial frames, its output is not validated.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[m.split("-")[0] for m in MODELS], action="append")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "pretrained")
    parser.add_argument("--stage", choices=("train", "pack", "all"), default="all")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = [n for n in MODELS if not args.only or n.split("-")[0] in args.only]
    records: dict[str, Any] = {}
    for name in names:
        started = time.perf_counter()
        run = trained_run(name, args.work)
        print(f"{name}: trained {run} ({time.perf_counter() - started:.0f} s in this invocation)", flush=True)
        if args.stage in ("pack", "all"):
            record = pack(name, run, args.work)
            print(f"{name}: packed ({record['file_bytes'] / 2**20:.1f} MiB) {record['scores']}", flush=True)
            records[name] = record
    if records:
        results = RESULTS / "pretrained.json"
        previous = json.loads(results.read_text()) if results.is_file() else {}
        write_json(results, {**previous, **records})
    print(f"done {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')} {sys.argv}")


if __name__ == "__main__":
    main()
