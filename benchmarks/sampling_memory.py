"""Peak memory of `stochlift sample` against the number of frames: it must not grow with --frames.

    OMP_NUM_THREADS=1 python benchmarks/sampling_memory.py [--frames 50 500 5000] [--trajectories 256]
        [--size 16] [--work runs/bench-sampling-memory] [--label after]

A tiny model (U-Net [4, 8], 2 training steps: its samples do not matter here) on a 16 x 16 Wave set;
then, for each frame count, a fresh process samples `--trajectories` trajectories of that length with
`sample_to_file` (batch 256, the CLI's default, so one batch holds them all) into a file and reports its
own peak RSS (getrusage ru_maxrss), and its RSS just before sampling (torch, the model and the data loaded).
Writes benchmarks/results/sampling_memory.{json,md} with the command, the machine and the date; `--label`
names the measured code in the results (several labels are kept side by side, e.g. before and after a
change: run the script with PYTHONPATH pointing at the other source tree).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "sampling_memory"

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from stochlift.lifting.rollout import sample_to_file, load_run
run, out, trajectories, frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
load_run(run)  # what sampling loads anyway, so `ready` counts it
ready = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0])
start = time.perf_counter()
sample_to_file(run, out, trajectories=trajectories, frames=frames, progress=False)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"rss_before_sampling_mb": ready / 1024, "peak_rss_mb": peak / 1024, "seconds": seconds}))
"""


def prepare(work: Path, size: int) -> Path:
    """A tiny Wave set of `size` x `size` frames and a tiny run trained on it for 2 steps."""
    from stochlift.config import apply_overrides, load_config
    from stochlift.data.datasets import make_wave_dataset
    from stochlift.lifting.checkpoint import CHECKPOINT_NAME
    from stochlift.lifting.train import train

    data, run = work / "data.h5", work / "run"
    if not data.exists():
        make_wave_dataset(data, trajectories=12, frames=8, size=size, progress=False)
    if not (run / CHECKPOINT_NAME).exists():
        config = apply_overrides(load_config(None), [
            "model.options={depths: [4, 8], mid_blocks: 1, embed_width: 8, groups: 2}", "model.label_dim=4",
            "train.steps=2", "train.batch_size=4", f"data.path={data}"])
        train(config, run, progress=False)
    return run


def measure(run: Path, out: Path, trajectories: int, frames: int, pixels: int) -> dict:
    """Sample in a fresh process; its peak RSS, its RSS before sampling, the seconds, the samples' size."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(run), str(out), str(trajectories), str(frames)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"sampling {frames} frames failed:\n{proc.stderr}")
    out.unlink()
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "generated_mb": 4 * trajectories * frames * pixels / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 500, 5000])
    parser.add_argument("--trajectories", type=int, default=256)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-sampling-memory"))
    parser.add_argument("--label", default="after", help="name of the measured code in the results")
    args = parser.parse_args()

    import stochlift
    from stochlift.apps.bench import machine
    from stochlift.io import write_json

    args.work.mkdir(parents=True, exist_ok=True)
    run = prepare(args.work, args.size)
    rows = []
    for frames in args.frames:
        result = {"frames": frames, **measure(run, args.work / f"samples_{frames}.h5", args.trajectories, frames,
                                              args.size**2)}
        rows.append(result)
        print(f"{args.label}: {frames:6d} frames: peak RSS {result['peak_rss_mb']:.0f} MiB "
              f"({result['rss_before_sampling_mb']:.0f} MiB before sampling; the samples are "
              f"{result['generated_mb']:.0f} MiB), {result['seconds']:.1f} s", flush=True)

    path = RESULTS / f"{NAME}.json"
    saved = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    saved["runs"][args.label] = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "source": str(Path(next(iter(stochlift.__path__))).resolve()),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "trajectories": args.trajectories,
        "frame": [1, args.size, args.size],
        "rows": rows,
    }
    write_json(path, saved)
    write_markdown(saved)
    print(f"wrote {path} and {RESULTS / f'{NAME}.md'}")


def write_markdown(saved: dict) -> None:
    """benchmarks/results/sampling_memory.md from the saved runs (all labels side by side)."""
    from stochlift.io import atomic_path

    lines = ["# Sampling memory against the number of frames", "",
             "`sample_to_file` with a tiny U-Net (batch 256, the CLI's default), each frame count in a fresh "
             "process; peak RSS from getrusage (MiB = 2^20 bytes). Made by "
             f"`python benchmarks/{NAME}.py` (see its docstring).", ""]
    for label, entry in saved["runs"].items():
        lines += [f"## {label}", "", f"{entry['trajectories']} trajectories of {entry['frame'][1]} x "
                  f"{entry['frame'][2]}: `{entry['command']}` on {entry['machine']['cpu']} "
                  f"({entry['machine']['cpu_count']} cores), {entry['date']}, source `{entry['source']}`.", "",
                  "| frames | samples (MiB) | RSS before sampling (MiB) | peak RSS (MiB) | growth over the first (MiB) "
                  "| seconds |", "|---|---|---|---|---|---|"]
        first = entry["rows"][0]["peak_rss_mb"]
        lines += [f"| {r['frames']:,} | {r['generated_mb']:.0f} | {r['rss_before_sampling_mb']:.0f} | "
                  f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - first:+.0f} | {r['seconds']:.1f} |"
                  for r in entry["rows"]]
        lines += [""] + [f"{note}" for note in entry.get("notes", [])] + ([""] if entry.get("notes") else [])
    with atomic_path(RESULTS / f"{NAME}.md") as tmp:
        tmp.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
