"""The shared work of experiments: data sets, trained runs, samples and timings, each made once and reused.

Runs are named by a label plus a hash of their full config, so two experiments that need the same model
(the table's SL row and the label-dimension sweep's d = 256, say) share one training, and a config change
can never silently reuse a stale model. Every product is written atomically and skipped when present,
and training resumes from its checkpoint, so a killed experiment continues where it stopped. Each product
is made under a file lock, so experiments run side by side share a workspace safely: the second one
waits for the first to finish a shared model, then reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch

from stochlift.apps.selection import train_side_by_side
from stochlift.config import RunConfig, apply_overrides, load_config
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.io import exclusive, write_json
from stochlift.lifting.fast import FastRollout
from stochlift.lifting.generator import as_module
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.runs import load_run, run_finished
from stochlift.lifting.train import train_or_resume
from stochlift.metrics.field_scores import field_scores_files
from stochlift.metrics.physics import PhysicsMetrics
from stochlift.problems import get_problem

# the field-level scores every experiment reports beside its own, each as value / truth-vs-truth floor (1 = as
# close to the truth as a second sample of it): (name in stochlift.metrics.field_scores, column heading)
FIELD_HEADLINES = (("sliced_w2", "sliced W2"), ("energy_score", "energy score"), ("spectrum_error", "spectrum"))


def field_ratios(scores: dict[str, Any]) -> dict[str, float | None]:
    """{"<score>_ratio": headline ratio to the floor} of a field-score record (Workspace.field_scores)."""
    return {f"{name}_ratio": scores["scores"].get(name, {}).get("ratio") for name, _ in FIELD_HEADLINES}


def config_hash(config: RunConfig) -> str:
    """Eight hex digits that change whenever a config value changes. Only values off the defaults enter,
    so a config key added to stochlift later (with a default) leaves the names of existing runs alone."""
    defaults = RunConfig().to_dict()
    changed = {section: {k: v for k, v in values.items() if k not in defaults[section] or defaults[section][k] != v}
               for section, values in config.to_dict().items()}
    return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]


def model_config(base: str, problem: str, data: Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """A training preset ("{problem}" filled in, e.g. wave-quick) with overrides, on a data file."""
    config = apply_overrides(load_config(base.format(problem=problem)), list(overrides))
    config.data.path = str(Path(data).resolve())
    return config


class PlannedRun(NamedTuple):
    """One model an experiment trains: `Workspace.run(*plan)` trains it, `train_parallel` many at once."""

    problem: str
    label: str
    config: RunConfig


@dataclass
class Workspace:
    """<root>/data, runs, samples and timings of one experiment scale."""

    root: Path
    progress: bool = True
    seconds: dict[str, float] = field(default_factory=dict)  # time spent per stage kind in this process

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Count the block's time under `name` when it made something (a reused product takes ~0 s)."""
        began = time.perf_counter()
        yield
        spent = time.perf_counter() - began
        if spent > 1.0:
            self.seconds[name] = self.seconds.get(name, 0.0) + spent

    def data(self, problem: str, preset: str, seed: int = 0, **shrink: int) -> Path:
        """The problem's data set of that preset, simulated the first time; `shrink` (trajectories,
        frames, size) makes a smaller one, for smoke tests."""
        maker = get_problem(problem)
        suffix = "".join(f"-{k}{v}" for k, v in sorted(shrink.items()))
        path = self.root / "data" / f"{problem}-{preset}-seed{seed}{suffix}.h5"
        with exclusive(path), self._stage("data"):
            if not path.is_file():
                self._say(f"simulating the {problem} data set ({preset}) -> {path}")
                maker.make_dataset(path, preset=preset, seed=seed, progress=self.progress, **shrink)
        return path

    def run_dir(self, problem: str, label: str, config: RunConfig) -> Path:
        return self.root / "runs" / problem / f"{label}-{config_hash(config)}"

    def run(self, problem: str, label: str, config: RunConfig) -> Path:
        """A trained run of this config (trained, or resumed, when not finished yet)."""
        run_dir = self.run_dir(problem, label, config)
        with self._stage("train"):
            if not run_finished(run_dir):
                self._say(f"training {problem} {label} -> {run_dir}")
            return train_or_resume(config, run_dir, progress=self.progress)

    def train_parallel(self, plans: Sequence[PlannedRun], jobs: int, threads: int | None = None) -> None:
        """Train the plans' unfinished runs in `jobs` processes side by side (`threads` torch threads each).

        A small model leaves a GPU mostly idle, its steps waiting on the CPU side, so several can share it.
        Each process takes its run's lock as `run` does, and the experiment afterwards finds the runs
        finished and reuses them; results are those of training one at a time.
        """
        if jobs < 2:
            return
        todo = {self.run_dir(*plan): plan.config for plan in plans}  # one entry per distinct run
        with self._stage("train"):  # train_side_by_side skips finished runs and names how many it trains
            train_side_by_side([(config, run_dir) for run_dir, config in todo.items()], jobs=jobs, threads=threads,
                               progress=self.progress)

    def samples(self, problem: str, label: str, run_dir: Path, trajectories: int, seed: int,
                initial: Path | None = None) -> Path:
        """`trajectories` rollouts of a run from the first frame of the test split."""
        path = self.root / "samples" / problem / f"{run_dir.name}-n{trajectories}-seed{seed}.h5"
        with exclusive(path), self._stage("sample"):
            if not path.is_file():
                self._say(f"sampling {trajectories} {problem} trajectories from {label}")
                sample_to_file(run_dir, path, trajectories=trajectories, seed=seed, initial=initial,
                               initial_split="test", progress=self.progress)
        return path

    def evaluate(self, data: Path, samples: Path) -> tuple[dict[str, Any], PhysicsMetrics]:
        """Crossing-time and mass scores of generated against held-out (test) trajectories."""
        # the experiments' problems (wave, flow) score with PhysicsMetrics, as their `evaluate` declares
        return cast(tuple[dict[str, Any], PhysicsMetrics], evaluate_files(data, samples))

    def field_scores(self, data: Path, samples: Path) -> dict[str, Any]:
        """Field-level scores of generated against held-out (test) trajectories, each with its truth-vs-truth
        floor (stochlift.metrics.field_scores: sliced W2 of frames, energy score, power-spectrum error, ...),
        computed once and kept beside the samples."""
        path = samples.with_name(samples.stem + ".field_scores.json")
        with exclusive(path):
            if not path.is_file():
                with self._stage("score"):
                    write_json(path, field_scores_files(data, samples).to_dict())
        return json.loads(path.read_text())

    def seconds_per_frame(self, problem: str, run_dir: Path, batch: int, frames: int) -> dict[str, float]:
        """Wall seconds to generate one frame of one trajectory at this batch size, measured once and kept."""
        path = self.root / "timings" / problem / f"{run_dir.name}-b{batch}-f{frames}.json"
        if path.is_file():
            return json.loads(path.read_text())
        from stochlift.apps.bench import (
            time_rollout,  # bench pulls in the device probes; only needed here
        )

        model, config, _ = load_run(run_dir)
        assert config.model.frame_shape is not None  # load_run built the model, which needs it
        engine = FastRollout(as_module(model), tuple(config.model.frame_shape))
        timed = time_rollout(engine, batch, frames, repeats=3)
        result = {"seconds_per_frame": timed["seconds"] / (batch * frames), "batch": batch, "frames": frames,
                  "network_calls_per_frame": model.calls_per_frame, "torch_threads": torch.get_num_threads()}
        write_json(path, result)
        return result

    def _say(self, message: str) -> None:
        if self.progress:
            print(f"[experiment] {message}", flush=True)
