"""A 500-frame rollout of the ball scene stays bounded: train balls-quick briefly, roll out far past the
32-frame training videos with streaming, and check each frame's pixel mean and std against the training data.

    OMP_NUM_THREADS=1 python benchmarks/balls_long_rollout.py [--steps 600] [--videos 8] [--frames 500]
        [--work runs/bench-balls-long]

Writes benchmarks/results/balls_long_rollout.{json,md} (numbers, command, machine, date, times),
balls_long_rollout.gif (every 5th frame, true clip on top while it lasts), balls_long_rollout.mp4 (every
frame) and balls_long_rollout_stats.png (pixel mean and std per frame against the training range).
The check: the per-frame pixel mean and std of every generated frame lie within the range those two take
over all frames of all training videos (widened by `--tolerance` of that range on both sides).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from stochlift.apps.demo.video import file_frame_statistics
from stochlift.apps.plots import _new_figure, _save_png
from stochlift.apps.plots.video import save_video_grid
from stochlift.config import apply_overrides, load_config
from stochlift.data.synthetic_video import make_bouncing_balls
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.io import atomic_path, write_json
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import train

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "balls_long_rollout"


def _stats_plot(path: Path, stats: dict[str, np.ndarray], limits: dict[str, tuple[float, float]], given: int) -> None:
    fig = _new_figure(9.6, 3.6)
    for ax, key in zip(fig.subplots(1, 2), ("mean", "std")):
        values = stats[key]
        for row in values:
            ax.plot(row, lw=0.7, alpha=0.8)
        ax.axhspan(*limits[key], color="0.5", alpha=0.2, label="training range")
        ax.axvline(given - 1, color="k", lw=0.8, ls=":")
        ax.set_xlabel("frame (training videos have 32)")
        ax.set_ylabel(f"pixel {key} of a frame")
    fig.axes[0].legend(loc="lower right")
    fig.suptitle("500-frame rollouts of balls-quick, one line per video")
    _save_png(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/bench-balls-long"))
    parser.add_argument("--steps", type=int, default=600, help="training steps (balls-quick has 3000)")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--chunk-frames", type=int, default=50, help="frames per streamed piece")
    parser.add_argument("--tolerance", type=float, default=0.05, help="of the training range, on both sides")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    data = args.work / "balls.h5"
    if not data.exists():
        make_bouncing_balls(data, seed=0)
    seconds["data"] = time.perf_counter() - clock
    config = apply_overrides(load_config("balls-quick"), [f"train.steps={args.steps}"])
    config.data.path = str(data)
    run = args.work / f"run-{args.steps}"
    clock = time.perf_counter()
    result = train(config, run, resume=(run / CHECKPOINT_NAME).exists(), progress=True)
    seconds["train"] = time.perf_counter() - clock

    given = config.model.window
    samples = args.work / f"samples-{args.frames}.h5"
    clock = time.perf_counter()
    sample_to_file(run, samples, trajectories=args.videos, frames=args.frames, initial_split="test",
                   initial_count=given, seed=1, progress=True, chunk_frames=args.chunk_frames)
    seconds["sample"] = time.perf_counter() - clock

    train_stats = file_frame_statistics(data, "train")
    gen_stats = file_frame_statistics(samples)
    limits, checks = {}, {}
    for key in ("mean", "std"):
        low, high = float(train_stats[key].min()), float(train_stats[key].max())
        pad = args.tolerance * (high - low)
        limits[key] = (low - pad, high + pad)
        values = gen_stats[key][:, given:]
        inside = (values >= limits[key][0]) & (values <= limits[key][1])
        checks[key] = {
            "training_range": [low, high],
            "generated_range": [float(values.min()), float(values.max())],
            "fraction_inside": float(inside.mean()),
            "first_frame_outside": int(np.argmax(~inside.all(axis=0))) + given if not inside.all() else None,
            "generated_per_100_frames": [float(v) for v in values.mean(axis=0)[::100]],
        }
    bounded = all(c["fraction_inside"] == 1.0 for c in checks.values())
    # what bounded does not tell: videos whose last 100 frames stand still (a frozen ball, or an empty scene)
    videos = TrajectoryFile(samples).read("generated", slice(None), slice(-100, None))
    change = np.abs(np.diff(videos, axis=1)).max(axis=(1, 2, 3, 4))
    still = change < 0.02
    empty = gen_stats["std"][:, -100:].max(axis=1) < 0.01
    behaviour = {"videos_still_in_last_100_frames": int(still.sum()),
                 "of_them_empty_scenes": int((still & empty).sum())}

    args.results.mkdir(parents=True, exist_ok=True)
    true = TrajectoryFile(data).read("test", slice(0, min(4, args.videos)))
    generated = TrajectoryFile(samples).read("generated", slice(0, min(4, args.videos)))
    save_video_grid(args.results / f"{NAME}.gif", true, generated, fps=10, scale=2, frames=slice(0, None, 5))
    try:
        save_video_grid(args.results / f"{NAME}.mp4", true, generated, fps=25, scale=2)
    except StochliftError as exc:  # no imageio-ffmpeg: the GIF has to do
        print(f"no MP4: {exc}")
    _stats_plot(args.results / f"{NAME}_stats.png", gen_stats, limits, given)

    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
                   f"torch {torch.__version__} threads {torch.get_num_threads()}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "train_steps": args.steps,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "videos": args.videos,
        "frames": args.frames,
        "given_frames": given,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "chunk_frames": args.chunk_frames,
        "streamed_piece_mib": round(args.videos * args.chunk_frames * 3 * 32 * 32 * 4 / 2**20, 2),
        "whole_rollout_mib": round(args.videos * args.frames * 3 * 32 * 32 * 4 / 2**20, 2),
        "tolerance": args.tolerance,
        "bounded": bounded,
        "checks": checks,
        **behaviour,
    }
    write_json(args.results / f"{NAME}.json", record)
    lines = [
        f"# 500-frame rollout of the ball scene ({'bounded' if bounded else 'NOT bounded'})", "",
        f"Command: `{record['command']}`  ",
        f"Machine: {record['machine']}  ",
        f"Date: {record['date']}  ",
        f"Times: {', '.join(f'{k} {v:.0f} s' for k, v in record['seconds'].items())}", "",
        (f"balls-quick trained for {args.steps} steps (final BCE loss {record['final_loss']:.4f}), then "
         f"{args.videos} videos rolled out for {args.frames} frames from {given} given test frames each "
         f"(training videos have 32 frames), streamed to the file."), "",
        "| per-frame pixel | training range | generated range (frames >= given) | fraction inside |",
        "|---|---|---|---|",
    ]
    for key, c in checks.items():
        lines.append(f"| {key} | {c['training_range'][0]:.4f} .. {c['training_range'][1]:.4f} | "
                     f"{c['generated_range'][0]:.4f} .. {c['generated_range'][1]:.4f} | {c['fraction_inside']:.3f} |")
    lines += ["", (f"Videos standing still over their last 100 frames (no pixel changes by 0.02 or more from one "
                   f"frame to the next): {behaviour['videos_still_in_last_100_frames']} of {args.videos}, "
                   f"{behaviour['of_them_empty_scenes']} of them empty scenes (pixel std < 0.01). The stats figure "
                   "shows each video's pixel mean and std over the 500 frames; the GIF shows every 5th frame of the "
                   "first 4.")]
    lines += ["", (f"Streamed {args.chunk_frames} frames at a time: {record['streamed_piece_mib']} MiB of frames "
                   f"in memory instead of {record['whole_rollout_mib']} MiB for the whole rollout."), "",
              f"![stats]({NAME}_stats.png)", "", f"![rollouts]({NAME}.gif)", ""]
    with atomic_path(args.results / f"{NAME}.md") as tmp:
        tmp.write_text("\n".join(lines))
    print("\n".join(lines))
    print(json.dumps({"bounded": bounded, "seconds": record["seconds"]}))


if __name__ == "__main__":
    main()
