"""FVD on the shipped digits benchmark: Stochastic Lifting against the deterministic regressor (d = 0) and
copying the last given frame, on the 256 test videos of the digits demo's data set.

    OMP_NUM_THREADS=2 python benchmarks/digits_fvd.py [--work runs/bench-digits-fvd] [--samples 10]
        [--i3d-weights .cache/i3d_kinetics400.safetensors]

Stages (each kept in --work, so a rerun continues): the demo's data set (Stochastic Moving Digits, 32x32,
20 frames, 1,024 train / 256 test videos, seed 0); two runs of configs/digits-quick.yaml, one as it is
(d = 32) and one with `model.label_dim=0`, same seed and budget; `--samples` rollouts per test video from
its first m = 3 frames (the Markov window).

Protocol (a scaled-down BAIR protocol, stated in the results): context 3 frames, 16 predicted frames
(frames 3..18); FVD between the I3D Kinetics-400 logits of the 256 real and 256 generated 16-frame clips of
predicted frames only (context out, the first sample of each test video; TF1 bilinear resize to 224,
values quantised to uint8 steps); best-of-N PSNR/SSIM over the N samples of each test video, averaged over
the test videos. The regressor and the copy baseline are deterministic, so their best-of-N is their one
prediction. Writes benchmarks/results/digits_fvd.{json,md} and digits_fvd_grid.png / .gif.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from stochlift.apps.plots import save_snapshot_grid
from stochlift.apps.plots.video import save_video_grid
from stochlift.config import apply_overrides, load_config
from stochlift.data.trajectories import TrajectoryFile
from stochlift.io import atomic_path, write_json
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import train
from stochlift.metrics.fvd import I3DExtractor, fvd_bootstrap, fvd_of_features
from stochlift.metrics.video import BestOfN, prepare
from stochlift.problems import get_problem

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "digits_fvd"
CONTEXT, PREDICTED = 3, 16
# row name -> (run directory in --work, overrides of configs/digits-quick.yaml)
CACHED = ("none (cached in --work by an earlier run of the same command; the first run took 1,032 s for the "
          "1,024 clips, 2 threads beside a training job)")
MODELS = {"SL (d = 32)": ("run-sl", []), "regressor (d = 0)": ("run-d0", ["model.label_dim=0"])}


def trained_run(run: Path, data: Path, overrides: list[str]) -> Path:
    """Train digits-quick with `overrides` in `run`, or finish it (a finished run resumes to a no-op).
    The two runs can be trained in parallel beforehand with the CLI (`stochlift train --data DATA --out RUN
    --config digits-quick train.seed=0 [model.label_dim=0]`): same config, so this picks them up."""
    config = apply_overrides(load_config("digits-quick"), ["train.seed=0", *overrides])
    config.data.path = str(data)
    train(config, run, resume=(run / CHECKPOINT_NAME).exists())
    return run


def generated_videos(work: Path, run: Path, data: Path, samples: int, videos: int) -> np.ndarray:
    """[samples, videos, CONTEXT + PREDICTED, 1, H, W]: row j of the sample file starts from test video j mod V."""
    path = work / f"samples-{run.name}.h5"
    if not path.exists():
        sample_to_file(run, path, trajectories=samples * videos, frames=CONTEXT + PREDICTED, initial=data,
                       initial_split="test", initial_count=CONTEXT, seed=1)
    with TrajectoryFile(path) as f:
        out = f.read("generated", slice(0, samples * videos))
    return prepare(out).reshape(samples, videos, *out.shape[1:])


def copy_last_frame(truth: np.ndarray) -> np.ndarray:
    """The baseline that predicts no motion: every predicted frame is the last given one."""
    out = truth.copy()
    out[:, CONTEXT:] = truth[:, CONTEXT - 1 : CONTEXT]
    return out[None]


def feature_path(work: Path, name: str) -> Path:
    return work / f"i3d-{name.split()[0].lower()}.npy"


def features(work: Path, name: str, clips: np.ndarray, extractor: I3DExtractor) -> np.ndarray:
    """I3D logits of the clips, kept in --work (the slow part: about a second per clip on a CPU core)."""
    path = feature_path(work, name)
    if not path.exists():
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, extractor(clips))
    return np.load(path)


def scores(truth: np.ndarray, samples: np.ndarray, real: np.ndarray, fake: np.ndarray) -> dict:
    """FVD of the first sample per video against the truth, best-of-N PSNR/SSIM over all samples."""
    predicted = slice(CONTEXT, CONTEXT + PREDICTED)
    best = BestOfN()
    for v in range(truth.shape[0]):
        best.add(samples[:, v, predicted], truth[v, predicted])
    result = best.result()
    return {"fvd": fvd_of_features(real, fake), "samples_per_video": samples.shape[0],
            **{k: result[k] for k in ("psnr_best", "ssim_best", "psnr_mean", "ssim_mean", "sample_spread")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/bench-digits-fvd"))
    parser.add_argument("--samples", type=int, default=10, help="rollouts per test video (best-of-N)")
    parser.add_argument("--i3d-weights", type=Path, default=Path(".cache/i3d_kinetics400.safetensors"))
    parser.add_argument("--batch", type=int, default=8, help="clips per I3D call")
    args = parser.parse_args()
    started = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "data.h5"
    if not data.exists():
        get_problem("video").demos["digits"].make_data(data, trajectories=None, frames=None, size=None, seed=0,
                                                       progress=True)
    with TrajectoryFile(data) as f:
        truth = prepare(f.read("test", slice(None), slice(0, CONTEXT + PREDICTED)))
    videos = truth.shape[0]
    generated = {"copy last frame": copy_last_frame(truth)}
    seconds = {}
    for name, (run_name, overrides) in MODELS.items():
        tick = time.time()
        run = trained_run(args.work / run_name, data, overrides)
        generated[name] = generated_videos(args.work, run, data, args.samples if "SL" in name else 1, videos)
        seconds[f"train+sample {name}"] = time.time() - tick

    tick = time.time()
    extractor = I3DExtractor.from_weights(args.i3d_weights, batch_size=args.batch)
    computed = [name for name in ["truth", *generated] if not feature_path(args.work, name).exists()]
    real = features(args.work, "truth", truth[:, CONTEXT:], extractor)
    fakes = {name: features(args.work, name, videos_[0][:, CONTEXT:], extractor) for name, videos_ in generated.items()}
    rows = {name: scores(truth, generated[name], real, fake) for name, fake in fakes.items()}
    resampled = fvd_bootstrap(real, list(fakes.values()))
    for name, column in zip(fakes, resampled.T):
        rows[name]["fvd_bootstrap_std"] = float(column.std())
    sl_column = list(fakes).index("SL (d = 32)")
    paired = {name: float((resampled[:, sl_column] < column).mean()) for name, column in zip(fakes, resampled.T)
              if name != "SL (d = 32)"}
    seconds["i3d + metrics"] = time.time() - tick

    sl, d0, copy = rows["SL (d = 32)"], rows["regressor (d = 0)"], rows["copy last frame"]
    checks = {"SL FVD < regressor FVD": sl["fvd"] < d0["fvd"], "SL FVD < copy FVD": sl["fvd"] < copy["fvd"],
              "SL best-of-N SSIM > regressor SSIM": sl["ssim_best"] > d0["ssim_best"]}
    command = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python {' '.join(sys.argv)}"
    record = {
        "command": command, "machine": f"{platform.machine()} {platform.processor()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads", "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "protocol": {"test_videos": videos, "context_frames": CONTEXT, "predicted_frames": PREDICTED,
                     "fvd_clips": "predicted frames 3..18, context out, first sample of each test video",
                     "fvd_feature": "I3D Kinetics-400 logits, TF1 bilinear resize to 224, uint8 quantisation",
                     "best_of_n": f"{args.samples} samples per test video for SL; 1 for the deterministic rows"},
        "i3d_features_computed_now": computed,
        "rows": rows, "checks": checks, "bootstrap_share_sl_lower": paired, "seconds": seconds,
        "total_seconds": time.time() - started,
    }
    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / f"{NAME}.json", record)
    lines = [f"# FVD on the digits benchmark ({videos} test videos)", "",
             f"command: `{command}`  ", f"machine: {record['machine']}  ", f"date: {record['date']}", "",
             "I3D features computed by this invocation: " + (", ".join(computed) or CACHED) + ".", "",
             "Protocol: " + "; ".join(f"{k}: {v}" for k, v in record["protocol"].items()) + ".", "",
             "FVD +- its bootstrap std over the test videos (200 resamples of the 256 video/clip pairs).", "",
             "| model | FVD | best-of-N SSIM | best-of-N PSNR | mean SSIM | sample spread | N |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['fvd']:.1f} +- {r['fvd_bootstrap_std']:.1f} | {r['ssim_best']:.3f} | "
                     f"{r['psnr_best']:.2f} | "
                     f"{r['ssim_mean']:.3f} | {r['sample_spread']:.4f} | {r['samples_per_video']} |")
    lines += ["", *[f"- {k}: **{'yes' if v else 'NO'}**" for k, v in checks.items()], "",
              "Paired bootstrap (the same 200 resamples of test videos for every row): SL's FVD is the lower one in "
              + ", ".join(f"{100 * share:.0f}% of the resamples against {name}" for name, share in paired.items())
              + ".",
              "",
              "![grid](digits_fvd_grid.png)", "",
              "The grid: 3 test videos (true, top) and SL's first sample of each (bottom); columns from the last "
              "given frame (t = 0) through the 16 predicted ones. `digits_fvd_grid.gif`: 8 videos, every frame.", ""]
    with atomic_path(RESULTS / f"{NAME}.md") as tmp:
        tmp.write_text("\n".join(lines))
    shown = slice(0, 3)
    save_snapshot_grid(RESULTS / f"{NAME}_grid.png", truth[shown, 2:], generated["SL (d = 32)"][0, shown, 2:],
                       value_range=(0.0, 1.0), cmap="gray")
    save_video_grid(RESULTS / f"{NAME}_grid.gif", truth[:8], generated["SL (d = 32)"][0, :8], fps=4, scale=3)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
