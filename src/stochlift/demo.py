"""The end-to-end demo: data -> training -> sampling -> evaluation -> pictures -> report, on the quick preset.

Each stage writes its output atomically and is skipped when that output already exists and was made from
the same inputs (stochlift.demo_stages), and training resumes from its checkpoint, so re-running an
interrupted demo continues where it stopped, and re-running it with other arguments redoes what they change.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from stochlift.errors import StochliftError
from stochlift.config import apply_overrides, load_config
from stochlift.data.datasets import make_wave_dataset
from stochlift.data.flow_datasets import make_flow_dataset
from stochlift.data.trajectories import TrajectoryFile
from stochlift.demo_stages import DemoStages
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.selection import train_best_of
from stochlift.lifting.train import train
from stochlift.metrics.evaluate import evaluate_files
from stochlift.report import build_report
from stochlift import plots

# the quick data set of each demo problem (held out for comparison: 256 wave, 192 flow test trajectories)
DATASETS: dict[str, Callable[..., Path]] = {"wave": make_wave_dataset, "flow": make_flow_dataset}
DEMO_SAMPLES = 256  # generated trajectories, compared with all held-out test trajectories
# training seeds tried side by side, the best on the validation split kept (stochlift.lifting.selection): a
# Flow rollout's breakthrough times swing with the training seed (flow_recipe_search.md, lesson 15)
DEMO_BEST_OF = {"wave": 1, "flow": 2}
SHOWN = 4  # trajectories in the animation


class StageClock:
    """Seconds per stage of a demo: `lap(stage)` books the time since the previous lap (or the start)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage], self._last = now - self._last, now


@dataclass
class DemoResult:
    out: Path
    metrics: dict[str, Any]
    files: dict[str, Path]
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        keys = ("wct", "wct_relative", "mass_w2", "mass_w2_relative", "final_std_ratio")
        lines = [f"demo finished in {sum(self.seconds.values()):.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in self.seconds.items())})"]
        lines += [f"  {k:18s} {self.metrics[k]:.4f}" for k in keys if self.metrics.get(k) is not None]
        lines += [f"  {name:18s} {path}" for name, path in self.files.items()]
        return "\n".join(lines)


def run_demo(
    out: str | os.PathLike,
    *,
    problem: str = "wave",
    seed: int = 0,
    overrides: list[str] | tuple[str, ...] = (),
    trajectories: int | None = None,
    frames: int | None = None,
    size: int | None = None,
    samples: int = DEMO_SAMPLES,
    best_of: int | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run (or continue) the demo in `out`; returns the metrics and the files written.

    `overrides` change the training config (e.g. "train.steps=500"); `trajectories`, `frames` and
    `size` shrink the quick data set (for smoke tests). `best_of` K > 1 trains seeds seed .. seed + K - 1
    side by side and keeps the one that scores best on the validation split (default: DEMO_BEST_OF).
    """
    from stochlift.demo_video import VIDEO_DATASETS, run_video_demo

    if best_of is not None and best_of < 1:
        raise StochliftError(f"best_of must be >= 1, got {best_of}")
    if best_of not in (None, 1) and problem not in DATASETS:
        raise StochliftError(f"best_of chooses among seeds by crossing times and mass: wave and flow only, "
                             f"not {problem!r}")
    if problem in VIDEO_DATASETS:  # the shipped video benchmarks: their own stages and pictures (demo_video.py)
        return run_video_demo(out, problem=problem, seed=seed, overrides=overrides, trajectories=trajectories,
                              frames=frames, size=size, samples=None if samples == DEMO_SAMPLES else samples,
                              progress=progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "data": out / "data.h5",
        "run": out / "run",
        "samples": out / "samples.h5",
        "metrics": out / "metrics.json",
        "animation": out / "rollouts.gif",
        "crossing_times": out / "crossing_times.png",
        "mass": out / "mass.png",
        "snapshots": out / "snapshots.png",
        "report": out / "report.html",
    }
    clock = StageClock()
    if problem not in DATASETS:
        raise StochliftError(f"unknown demo problem {problem!r}; choose from {sorted(DATASETS) + sorted(VIDEO_DATASETS)}")
    config = apply_overrides(load_config(f"{problem}-quick"), [f"train.seed={seed}", *overrides])  # fails fast
    best_of = DEMO_BEST_OF[problem] if best_of is None else best_of
    stages = DemoStages(out, progress=progress)  # a stage is reused only when made from the same inputs
    made = stages.prepare("data", {"problem": problem, "preset": "quick", "seed": seed, "trajectories": trajectories,
                                   "frames": frames, "size": size},
                          [files["data"], files["data"].with_name(files["data"].name + ".parts")])
    made = stages.prepare("train", {"data": made, "config": config.to_dict(), "best_of": best_of}, [files["run"]])
    stages.prepare("sample", {"train": made, "samples": samples, "seed": seed + 1}, [files["samples"]])
    if not files["data"].exists():
        DATASETS[problem](files["data"], preset="quick", trajectories=trajectories, frames=frames, size=size,
                          seed=seed, progress=progress)
    clock.lap("data")
    config.data.path = str(files["data"])
    if best_of == 1:
        if not files["samples"].exists():
            train(config, files["run"], resume=(files["run"] / CHECKPOINT_NAME).exists(), progress=progress)
    else:  # the runs go to run/seed<K>; the one chosen on the validation split is sampled below
        files["run"] = train_best_of(config, files["run"], range(seed, seed + best_of), progress=progress).chosen
    clock.lap("train")
    if not files["samples"].exists():
        sample_to_file(files["run"], files["samples"], trajectories=samples, seed=seed + 1, progress=progress)
    clock.lap("sample")
    report, metrics = evaluate_files(files["data"], files["samples"], files["metrics"])
    _draw(files, problem, metrics, report)
    clock.lap("evaluate")
    # the page reuses the data, samples and metrics above; only the forecasting setting samples anew
    build_report(files["run"], files["report"], reference=files["data"], generated=files["samples"],
                 metrics=files["metrics"], seed=seed, progress=progress)
    clock.lap("report")
    return DemoResult(out=out, metrics=report, files={k: v for k, v in files.items() if k != "run"}, seconds=clock.seconds)


def _draw(files: dict[str, Path], problem: str, metrics: Any, report: dict[str, Any]) -> None:
    """The pictures: animation of true vs generated rollouts, QoI distributions, snapshots."""
    true = TrajectoryFile(files["data"]).read("test", slice(0, SHOWN))[:, :, 0]
    generated = TrajectoryFile(files["samples"]).read("generated", slice(0, SHOWN))[:, :, 0]
    display = plots.field_display(problem, true)
    plots.save_rollout_animation(files["animation"], true, generated, title=problem, **display)
    plots.save_crossing_time_plot(files["crossing_times"], metrics.tau_reference, metrics.tau_generated, report)
    plots.save_mass_plot(files["mass"], metrics.mass_reference, metrics.mass_generated)
    plots.save_snapshot_grid(files["snapshots"], true, generated, **display)
