"""The end-to-end demo: data -> training -> sampling -> evaluation -> pictures -> report, on the quick preset.

Each stage writes its output atomically and is skipped when that output already exists and was made from
the same inputs (apps/demo/stages.py), and training resumes from its checkpoint, so re-running an
interrupted demo continues where it stopped, and re-running it with other arguments redoes what they change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stochlift.apps import plots
from stochlift.apps.demo.stages import DemoResult, DemoStages, StageClock
from stochlift.apps.report import build_report
from stochlift.apps.selection import train_best_of
from stochlift.config import apply_overrides, load_config
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import train
from stochlift.problems import Problem, demos

DEMO_SAMPLES = 256  # generated trajectories, compared with all held-out test trajectories
SHOWN = 4  # trajectories in the animation


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
    pretrained: bool = False,
) -> DemoResult:
    """Run (or continue) the demo `problem` (a demo name: stochlift.problems.demos()) in `out`; returns the
    metrics and the files written.

    `overrides` change the training config (e.g. "train.steps=500"); `trajectories`, `frames` and
    `size` shrink the quick data set (for smoke tests). `best_of` K > 1 trains seeds seed .. seed + K - 1
    side by side and keeps the one that scores best on the validation split (default: the demo's).
    `pretrained` skips training: the model shipped for the demo's preset (stochlift.lifting.pretrained) is used.
    """
    from stochlift.apps.demo.video import run_video_demo

    known = demos()
    if problem not in known:
        raise StochliftError(f"unknown demo problem {problem!r}; choose from {list(known)}")
    owner, spec = known[problem]
    if best_of is not None and best_of < 1:
        raise StochliftError(f"best_of must be >= 1, got {best_of}")
    if best_of not in (None, 1) and not owner.selection_keys:
        choosers = [name for name, (p, _) in known.items() if p.selection_keys]
        raise StochliftError(f"best_of chooses among seeds by the problem's own scores: {' and '.join(choosers)} "
                             f"only, not {problem!r}")
    if pretrained and (overrides or best_of not in (None, 1)):
        raise StochliftError("--pretrained uses the shipped model as it was trained; training overrides and "
                             "--best-of need a demo that trains")
    if spec.video:  # the shipped video benchmarks: their own stages and pictures (apps/demo/video.py)
        return run_video_demo(out, problem=problem, seed=seed, overrides=overrides, trajectories=trajectories,
                              frames=frames, size=size, samples=None if samples == DEMO_SAMPLES else samples,
                              progress=progress, pretrained=pretrained)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "data": out / "data.h5",
        "run": out / "run",
        "samples": out / "samples.h5",
        "metrics": out / "metrics.json",
        "animation": out / "rollouts.gif",
        "snapshots": out / "snapshots.png",
        "report": out / "report.html",
    }
    clock = StageClock()
    config = apply_overrides(load_config(spec.config), [f"train.seed={seed}", *overrides])  # fails fast
    best_of = spec.best_of if best_of is None else best_of
    stages = DemoStages(out, progress=progress)  # a stage is reused only when made from the same inputs
    made = stages.prepare("data", {"problem": problem, "preset": "quick", "seed": seed, "trajectories": trajectories,
                                   "frames": frames, "size": size},
                          [files["data"], files["data"].with_name(files["data"].name + ".parts")])
    made = stages.prepare("train", {"data": made, "config": config.to_dict(), "best_of": best_of}, [files["run"]])
    stages.prepare("sample", {"train": made, "samples": samples, "seed": seed + 1}, [files["samples"]])
    if not files["data"].exists():
        spec.make_data(files["data"], trajectories=trajectories, frames=frames, size=size, seed=seed,
                       progress=progress)
    clock.lap("data")
    config.data.path = str(files["data"])
    if pretrained:
        files["run"] = pretrained_demo_run(spec.config, files["run"], files["data"])
    elif best_of == 1:
        if not files["samples"].exists():
            train(config, files["run"], resume=(files["run"] / CHECKPOINT_NAME).exists(), progress=progress)
    else:  # the runs go to run/seed<K>; the one chosen on the validation split is sampled below
        files["run"] = train_best_of(config, files["run"], range(seed, seed + best_of), progress=progress).chosen
    clock.lap("train")
    if not files["samples"].exists():
        sample_to_file(files["run"], files["samples"], trajectories=samples, seed=seed + 1, progress=progress)
    clock.lap("sample")
    report, metrics = evaluate_files(files["data"], files["samples"], files["metrics"])
    _draw(files, owner, metrics, report)
    clock.lap("evaluate")
    # the page reuses the data, samples and metrics above; only the forecasting setting samples anew
    build_report(files["run"], files["report"], reference=files["data"], generated=files["samples"],
                 metrics=files["metrics"], seed=seed, progress=progress)
    clock.lap("report")
    return DemoResult(out=out, metrics=report, files={k: v for k, v in files.items() if k != "run"},
                      seconds=clock.seconds)


def pretrained_demo_run(name: str, run: Path, data: Path) -> Path:
    """The shipped model `name` unpacked as the demo's run on its data (once; a run trained here is refused)."""
    from stochlift.lifting.pretrained import pretrained_names, unpack_pretrained

    if name not in pretrained_names():
        raise StochliftError(f"no pretrained model for this demo (preset {name}); shipped: {pretrained_names()}")
    log = run / "train_log.json"
    unpacked = json.loads(log.read_text()).get("pretrained") if log.is_file() else None
    if (run / CHECKPOINT_NAME).exists() and unpacked != name:
        raise StochliftError(f"{run.parent} holds a demo trained there; choose another --out for --pretrained")
    return unpack_pretrained(name, run, data)


def _draw(files: dict[str, Path], problem: Problem, metrics: Any, report: dict[str, Any]) -> None:
    """The pictures: animation of true vs generated rollouts, the problem's quantities, snapshots."""
    true = TrajectoryFile(files["data"]).read("test", slice(0, SHOWN))[:, :, 0]
    generated = TrajectoryFile(files["samples"]).read("generated", slice(0, SHOWN))[:, :, 0]
    display = problem.display(true)
    plots.save_rollout_animation(files["animation"], true, generated, title=problem.name, **display)
    for view in problem.views(metrics):  # e.g. crossing_times.png, mass.png
        files[view.key] = files["data"].with_name(f"{view.key}.png")
        plots.save_quantity_plot(files[view.key], view.kind, view.reference, view.generated, label=view.label,
                                 metrics=report)
    plots.save_snapshot_grid(files["snapshots"], true, generated, **display)
